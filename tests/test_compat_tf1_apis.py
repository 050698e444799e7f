"""The TF 1.x APIs that tutorials use, written as the tutorials write them. The expected
numbers were printed by TensorFlow 2.21's ``tensorflow.compat.v1`` running the same code
(``tf.contrib`` is gone from TF 2, so the contrib layers were checked against the same
model written with ``tf.get_variable``/``tf.nn.moments``, the math contrib used)."""

import os

import numpy as np
import pytest

import graphc as gc
import graphc.compat.v1 as tf


def _init_and_run(fetches, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches, feed)


# --- tf.contrib as a package -------------------------------------------------------------------


def test_contrib_imports_as_a_package_and_by_module_path():
    import graphc.compat.v1.contrib.layers as layers
    from graphc.compat.v1.contrib import rnn
    from graphc.compat.v1.contrib.layers import fully_connected

    assert rnn.BasicLSTMCell is tf.contrib.rnn.BasicLSTMCell
    assert fully_connected is tf.contrib.layers.fully_connected is layers.fully_connected
    assert tf.contrib.slim.arg_scope is tf.contrib.framework.arg_scope
    with pytest.raises(tf.MissingAPIError, match="contrib.learn is not available"):
        tf.contrib.learn  # noqa: B018


def test_misspelled_names_suggest_the_close_one():
    with pytest.raises(tf.MissingAPIError, match="did you mean reduce_sum"):
        tf.reduct_sum  # noqa: B018
    with pytest.raises(AttributeError, match="did you mean fully_connected"):
        tf.contrib.layers.fully_conected  # noqa: B018
    with pytest.raises(AttributeError, match="did you mean AdamOptimizer"):
        tf.train.AdamOptimiser  # noqa: B018
    assert not hasattr(tf, "reduct_sum")


# --- tf.contrib.layers, arg_scope --------------------------------------------------------------


def test_fully_connected_and_batch_norm_match_tensorflow():
    x = tf.constant(np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4))
    h = tf.contrib.layers.fully_connected(
        x,
        3,
        weights_initializer=tf.constant_initializer(0.1),
        biases_initializer=tf.constant_initializer(0.2),
    )
    h2 = tf.contrib.layers.fully_connected(
        h,
        2,
        activation_fn=None,
        weights_initializer=tf.constant_initializer(-0.3),
        normalizer_fn=tf.contrib.layers.batch_norm,
        normalizer_params={"is_training": True, "updates_collections": None, "decay": 0.9},
    )
    names = sorted(v.op.name for v in tf.global_variables())
    assert names == [
        "fully_connected/biases",
        "fully_connected/weights",
        "fully_connected_1/BatchNorm/beta",
        "fully_connected_1/BatchNorm/moving_mean",
        "fully_connected_1/BatchNorm/moving_variance",
        "fully_connected_1/weights",
    ]
    moving_mean = [v for v in tf.global_variables() if v.op.name.endswith("moving_mean")][0]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        hv, h2v = sess.run([h, h2])
        mm = sess.run(moving_mean)
    np.testing.assert_allclose(
        hv[:, 0], [0, 0, 0.13043478, 0.26956522, 0.40869564, 0.5478261], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        h2v[:, 1], [1.091262, 1.091262, 0.4616878, -0.20985806, -0.8814039, -1.5529498], rtol=1e-4
    )
    np.testing.assert_allclose(mm, [-0.02034783] * 2, rtol=1e-4)  # updated with the layer


def test_arg_scope_gives_defaults_that_calls_override():
    x = tf.constant(np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4))
    fc = tf.contrib.layers.fully_connected
    with tf.contrib.framework.arg_scope(
        [fc], weights_initializer=tf.constant_initializer(0.5), activation_fn=tf.nn.sigmoid
    ):
        a = fc(x, 2)
        b = fc(x, 2, activation_fn=None)
    c = fc(x, 2)  # outside: ReLU and Xavier again
    av, bv, cv = _init_and_run([a, b, c])
    np.testing.assert_allclose(av[:, 0], [0.24179621, 0.75820386], rtol=1e-5)
    np.testing.assert_allclose(bv[:, 0], [-1.1428571, 1.1428572], rtol=1e-5)
    assert (cv >= 0).all()


def test_contrib_dropout_is_on_by_default_and_batch_norm_updates_go_to_update_ops():
    x = tf.ones([1000, 4])
    d = tf.contrib.layers.dropout(x, keep_prob=0.5)
    y = tf.contrib.layers.batch_norm(x * tf.constant([1.0, 2.0, 3.0, 4.0]), is_training=True)
    dv = _init_and_run(d)
    assert set(np.unique(dv)) <= {0.0, 2.0} and 0.3 < (dv == 0).mean() < 0.7
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == 2 and y.shape.as_list() == [1000, 4]
    assert tf.contrib.layers.dropout(x, is_training=False) is x


# --- static RNNs from tf.contrib.rnn -----------------------------------------------------------


def test_contrib_rnn_static_rnn_uses_the_enclosing_scope_initializer():
    xs = [tf.constant(np.full((2, 3), 0.1 * (k + 1), np.float32)) for k in range(4)]
    with tf.variable_scope("rnn", initializer=tf.constant_initializer(0.05)):
        cell = tf.contrib.rnn.MultiRNNCell(
            [tf.contrib.rnn.BasicLSTMCell(4), tf.contrib.rnn.GRUCell(3)]
        )
        outs, state = tf.contrib.rnn.static_rnn(cell, xs, dtype=tf.float32)
    first, again = _init_and_run(outs[-1]), _init_and_run(outs[-1])
    np.testing.assert_array_equal(first, again)  # deterministic: the constant initializer
    assert len(outs) == 4 and first.shape == (2, 3)
    assert any(v.op.name.endswith("cell_0/basic_lstm_cell/kernel") for v in tf.global_variables())


def test_sequence_loss_matches_tensorflow():
    rng = np.random.RandomState(0)
    logits = tf.constant(rng.randn(2, 3, 5).astype(np.float32))
    targets = tf.constant([[1, 2, 4], [0, 3, 3]])
    weights = tf.constant([[1.0, 1.0, 0.0], [1.0, 0.5, 1.0]])
    loss = tf.contrib.seq2seq.sequence_loss
    a, b, c = _init_and_run(
        [
            loss(logits, targets, weights),
            loss(logits, targets, weights, average_across_batch=False),
            loss(logits, targets, weights, average_across_timesteps=False),
        ]
    )
    np.testing.assert_allclose(a, 2.0482907, rtol=1e-5)
    np.testing.assert_allclose(b, [2.4168196, 1.7534672], rtol=1e-5)
    np.testing.assert_allclose(c, [2.327121, 2.4600396, 0.87300646], rtol=1e-5)


# --- tf.nn additions ---------------------------------------------------------------------------


def test_top_k_values_indices_and_gradient_match_tensorflow():
    x = tf.constant([[1.0, 5.0, 3.0, 5.0], [4.0, 2.0, 8.0, 0.0]])
    values, indices = tf.nn.top_k(x, k=2)
    g = tf.gradients(tf.reduce_sum(values * tf.constant([[1.0, 2.0], [3.0, 4.0]])), [x])[0]
    v, i, gv = _init_and_run([values, indices, g])
    assert v.tolist() == [[5, 5], [8, 4]] and i.tolist() == [[1, 3], [2, 0]]
    assert i.dtype == np.int32 and gv.tolist() == [[0, 1, 0, 2], [4, 0, 3, 0]]
    assert tf.math.top_k is tf.nn.top_k
    assert tf.nn.top_k(x, 3).indices.shape.as_list() == [2, 3]  # TF's namedtuple


def test_conv1d_matches_tensorflow():
    x = tf.constant(np.arange(42, dtype=np.float32).reshape(2, 7, 3) / 10)
    w = tf.constant(np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4))
    valid = tf.nn.conv1d(x, w, stride=1, padding="VALID")
    same = tf.nn.conv1d(x, w, stride=2, padding="SAME")
    a, b = _init_and_run([valid, same])
    assert a.shape == (2, 6, 4) and b.shape == (2, 4, 4)
    np.testing.assert_allclose(a[0, 0], [0.41304347, 0.54347825, 0.67391306, 0.80434787], rtol=1e-5)
    np.testing.assert_allclose(b[1, 3], [-7.7565217, -6.7130437, -5.669565, -4.626087], rtol=1e-5)


def test_scatter_update_matches_tensorflow():
    v = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))
    u = tf.scatter_update(v, [0, 2], [[9.0, 9.0, 9.0], [7.0, 7.0, 7.0]])
    w = tf.Variable(np.arange(4, dtype=np.float32))
    u2 = tf.scatter_update(w, 1, 42.0)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(u).tolist() == [[9, 9, 9], [3, 4, 5], [7, 7, 7], [9, 10, 11]]
        assert sess.run(v).tolist() == [[9, 9, 9], [3, 4, 5], [7, 7, 7], [9, 10, 11]]
        assert sess.run(u2).tolist() == [0, 42, 2, 3]


@pytest.mark.parametrize("loss_fn", ["nce_loss", "sampled_softmax_loss"])
def test_word2vec_style_sampled_losses_train(loss_fn):
    vocab, dim, batch = 50, 8, 32
    tf.set_random_seed(3)
    inputs = tf.placeholder(tf.int32, shape=[batch])
    labels = tf.placeholder(tf.int32, shape=[batch, 1])
    embeddings = tf.Variable(tf.random_uniform([vocab, dim], -1.0, 1.0))
    embed = tf.nn.embedding_lookup(embeddings, inputs)
    weights = tf.Variable(tf.truncated_normal([vocab, dim], stddev=1.0 / np.sqrt(dim)))
    biases = tf.Variable(tf.zeros([vocab]))
    per_example = getattr(tf.nn, loss_fn)(
        weights=weights,
        biases=biases,
        labels=labels,
        inputs=embed,
        num_sampled=10,
        num_classes=vocab,
    )
    loss = tf.reduce_mean(per_example)
    step = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    rng = np.random.RandomState(0)
    words = rng.randint(0, vocab, size=batch)
    feed = {inputs: words, labels: ((words + 1) % vocab)[:, None]}  # the next word follows
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first = np.mean([sess.run(loss, feed) for _ in range(5)])
        for _ in range(150):
            sess.run(step, feed)
        last = np.mean([sess.run(loss, feed) for _ in range(5)])
    assert per_example.shape.as_list() == [batch] and last < 0.5 * first


def test_log_uniform_sampler_gives_unique_classes_and_expected_counts():
    true = tf.constant([[0], [3]], dtype=tf.int64)
    sampled, true_count, sampled_count = tf.nn.log_uniform_candidate_sampler(true, 1, 20, True, 100)
    s, tc, sc = _init_and_run([sampled, true_count, sampled_count])
    assert len(set(s.tolist())) == 20 and s.min() >= 0 and s.max() < 100
    assert tc.shape == (2, 1) and (tc > 0).all() and (sc > 0).all() and tc[0, 0] > tc[1, 0]


# --- optimizers --------------------------------------------------------------------------------


def _five_steps(opt):
    w = tf.Variable([1.0, -2.0, 0.5])
    loss = tf.reduce_sum(tf.square(w - tf.constant([0.3, 0.1, -0.4]))) + tf.reduce_sum(w)
    step = opt.minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(5):
            sess.run(step)
        return sess.run(w)


@pytest.mark.parametrize(
    "make,want",
    [
        (
            lambda: tf.train.AdadeltaOptimizer(learning_rate=1.0, rho=0.9, epsilon=1e-6),
            [0.98362064, -1.9836072, 0.48361292],
        ),
        (
            lambda: tf.train.FtrlOptimizer(
                0.5, l1_regularization_strength=0.01, l2_regularization_strength=0.1
            ),
            [-0.09837838, -0.6716748, -0.667595],
        ),
        (
            lambda: tf.train.FtrlOptimizer(
                0.5, learning_rate_power=-0.3, initial_accumulator_value=0.2
            ),
            [-0.19587141, -0.41317001, -0.87295914],
        ),
    ],
)
def test_adadelta_and_ftrl_match_tensorflow(make, want):
    np.testing.assert_allclose(_five_steps(make()), want, rtol=1e-5, atol=1e-6)


def test_new_optimizers_are_in_gc_train_and_keep_tf_slot_names():
    assert gc.train.AdadeltaOptimizer is tf.train.AdadeltaOptimizer
    w = tf.Variable([1.0, 2.0], name="w")
    opt = tf.train.FtrlOptimizer(0.1)
    opt.minimize(tf.reduce_sum(w * w))
    assert sorted(v.op.name for v in opt.variables()) == ["w/Ftrl", "w/Ftrl_1"]


# --- tf.data -----------------------------------------------------------------------------------


def test_dataset_map_batch_repeat_one_shot_iterator_matches_tensorflow():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    y = np.arange(5, dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    dataset = dataset.map(lambda a, b: (a * 2.0, b + 1)).batch(2).repeat(2)
    features, label = dataset.make_one_shot_iterator().get_next()
    assert features.shape.as_list() == [None, 2] and label.dtype is tf.int64
    got = []
    with tf.Session() as sess:
        while True:
            try:
                a, b = sess.run([features, label])
            except tf.errors.OutOfRangeError:
                break
            got.append((a.tolist(), b.tolist()))
    assert got == [
        ([[0, 2], [4, 6]], [1, 2]),
        ([[8, 10], [12, 14]], [3, 4]),
        ([[16, 18]], [5]),
        ([[0, 2], [4, 6]], [1, 2]),
        ([[8, 10], [12, 14]], [3, 4]),
        ([[16, 18]], [5]),
    ]


def test_initializable_iterator_reads_placeholders_fed_to_its_initializer():
    xp = tf.placeholder(tf.float32, [None, 2])
    iterator = tf.data.Dataset.from_tensor_slices(xp).batch(3).make_initializable_iterator()
    total = tf.reduce_sum(iterator.get_next(), axis=1)
    out = []
    with tf.Session() as sess:
        with pytest.raises(gc.GraphcError, match="initializer"):
            sess.run(total)
        for data in (np.ones((4, 2), np.float32), np.arange(6, dtype=np.float32).reshape(3, 2)):
            sess.run(iterator.initializer, feed_dict={xp: data})
            while True:
                try:
                    out.extend(sess.run(total).tolist())
                except tf.errors.OutOfRangeError:
                    break
    assert out == [2, 2, 2, 2, 1, 5, 9]


def test_dataset_shuffle_is_a_permutation_and_training_loop_over_epochs():
    x = np.arange(20, dtype=np.float32)[:, None]
    y = 3 * x + 1
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(buffer_size=20, seed=1)
    bx, by = dataset.batch(4).repeat().make_one_shot_iterator().get_next()
    w, b = tf.Variable([[0.0]]), tf.Variable([0.0])
    loss = tf.reduce_mean(tf.square(tf.matmul(bx, w) + b - by))
    step = tf.train.AdamOptimizer(0.05).minimize(loss)
    seen = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(5):
            seen.extend(sess.run(bx).ravel().tolist())
        assert sorted(seen) == list(range(20)) and seen != list(range(20))
        for _ in range(1500):
            sess.run(step)
        assert abs(sess.run(w)[0, 0] - 3) < 0.1


# --- the queue-based CSV input path ------------------------------------------------------------


def _csv(tmp_path, rows=7):
    path = tmp_path / "data.csv"
    path.write_text("a,b,c,y\n" + "".join(f"{k},{k * 0.5},{-k},{k % 2}\n" for k in range(rows)))
    return str(path)


def test_csv_queue_input_matches_tensorflow(tmp_path):
    filename_queue = tf.train.string_input_producer(
        [_csv(tmp_path)], shuffle=False, name="filename_queue"
    )
    reader = tf.TextLineReader(skip_header_lines=1)
    key, value = reader.read(filename_queue)
    xy = tf.decode_csv(value, record_defaults=[[0.0], [0.0], [0.0], [0]])
    train_x_batch, train_y_batch = tf.train.batch([xy[0:-1], xy[-1:]], batch_size=3)
    got = []
    with tf.Session() as sess:
        coord = tf.train.Coordinator()
        threads = tf.train.start_queue_runners(sess=sess, coord=coord)
        for _ in range(3):
            x_batch, y_batch = sess.run([train_x_batch, train_y_batch])
            got.append((x_batch.tolist(), y_batch.ravel().tolist()))
        coord.request_stop()
        coord.join(threads)
    assert got == [
        ([[0, 0, 0], [1, 0.5, -1], [2, 1, -2]], [0, 1, 0]),
        ([[3, 1.5, -3], [4, 2, -4], [5, 2.5, -5]], [1, 0, 1]),
        ([[6, 3, -6], [0, 0, 0], [1, 0.5, -1]], [0, 0, 1]),
    ]  # the next epoch


def test_csv_queue_ends_after_num_epochs_and_shuffle_batch(tmp_path):
    queue = tf.train.string_input_producer([_csv(tmp_path, rows=6)], num_epochs=1, shuffle=False)
    _, value = tf.TextLineReader(skip_header_lines=1).read(queue)
    a, b, c, y = tf.decode_csv(value, record_defaults=[[0.0], [0.0], [0.0], [0]])
    xs, ys = tf.train.shuffle_batch(
        [tf.stack([a, b, c]), y], batch_size=2, capacity=10, min_after_dequeue=2, seed=0
    )
    seen = []
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        coord = tf.train.Coordinator()
        tf.train.start_queue_runners(sess=sess, coord=coord)
        try:
            while not coord.should_stop():
                seen.extend(sess.run(xs)[:, 0].tolist())
        except tf.errors.OutOfRangeError:
            coord.request_stop()
    assert sorted(seen) == [0, 1, 2, 3, 4, 5]


def test_decode_csv_reports_a_bad_field(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2\n3,x\n")
    _, value = tf.TextLineReader().read(tf.train.string_input_producer([str(path)], shuffle=False))
    cols = tf.decode_csv(value, record_defaults=[[0.0], [0.0]])
    with tf.Session() as sess:
        assert sess.run(cols) == [1.0, 2.0]
        with pytest.raises(gc.GraphcError, match="'x'"):
            sess.run(cols)
    assert os.path.exists(path)


def test_reinitializable_iterator_switches_between_train_and_test_data():
    train = tf.data.Dataset.from_tensor_slices(np.arange(6, dtype=np.float32)).batch(4)
    test = tf.data.Dataset.from_tensor_slices(np.array([10.0, 20.0], np.float32)).batch(4)
    iterator = tf.data.Iterator.from_structure(train.output_types, train.output_shapes)
    batch = iterator.get_next()
    train_init, test_init = iterator.make_initializer(train), iterator.make_initializer(test)
    with tf.Session() as sess:
        sess.run(train_init)
        assert sess.run(batch).tolist() == [0, 1, 2, 3]
        sess.run(test_init)
        assert sess.run(batch).tolist() == [10, 20]
        with pytest.raises(tf.errors.OutOfRangeError):
            sess.run(batch)
        sess.run(train_init)
        assert sess.run(tf.reduce_sum(batch)) == 6.0
