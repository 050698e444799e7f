"""graphc.compat.v1 piece by piece: TF 1.x's argument names and defaults, variable
scopes, initializers, layers, losses, and the clear errors for what graphc does not do."""

import warnings

import numpy as np
import pytest

import graphc as gc
import graphc.compat.v1 as tf


def _run(fetches, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches, feed)


# --- dtypes, sources, the old argument spellings ----------------------------------------------


def test_dtypes_and_dtype_strings():
    assert tf.float32 is gc.float32 and tf.float is gc.float32 and tf.bool is gc.bool_
    assert tf.placeholder("float").dtype is gc.float32
    assert tf.placeholder("double", [2]).dtype is gc.float64
    assert tf.as_dtype("int64") is tf.int64 and tf.dtypes.float16 is gc.float16
    assert tf.cast(tf.constant([1.5]), "int32").dtype is gc.int32


def test_constant_scalar_fills_shape_and_fill_zeros_ones():
    c, f = tf.constant(0.1, shape=[2, 3]), tf.fill([2, 2], 7)
    z, o = tf.zeros([2], tf.int32), tf.ones_like(c)
    cv, fv, zv, ov = _run([c, f, z, o])
    np.testing.assert_array_equal(cv, np.full((2, 3), 0.1, np.float32))
    assert fv.tolist() == [[7, 7], [7, 7]] and zv.dtype == np.int32 and ov.shape == (2, 3)


def test_reductions_take_reduction_indices_and_keep_dims():
    x = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    new = tf.reduce_sum(x, axis=1, keepdims=True)
    old = tf.reduce_sum(x, reduction_indices=[1], keep_dims=True)
    mean_all = tf.reduce_mean(x)
    assert old.shape == (2, 1)
    a, b, m = _run([new, old, mean_all])
    assert a.tolist() == b.tolist() == [[3.0], [12.0]] and m == 2.5
    assert tf.reduce_max(x, 0).shape == (3,)


def test_argmax_dimension_and_arg_max():
    x = tf.constant([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
    a, b, c = _run([tf.argmax(x, 1), tf.arg_max(x, 1), tf.argmin(x, dimension=0)])
    assert a.tolist() == b.tolist() == [1, 0] and c.tolist() == [0, 1, 1]
    assert a.dtype == np.int64


def test_squeeze_dims_expand_dims_dim_and_one_hot_defaults():
    x = tf.placeholder(tf.float32, [None, 1, 3])
    assert tf.squeeze(x, squeeze_dims=[1]).shape == (None, 3)
    assert tf.expand_dims(tf.constant([1, 2]), dim=0).shape == (1, 2)
    oh = tf.one_hot([0, 2], 3)
    oh_int = tf.one_hot([1], 2, on_value=5, off_value=-1)
    assert oh.dtype is gc.float32 and oh_int.dtype is gc.int32
    v, w = _run([oh, oh_int])
    assert v.tolist() == [[1, 0, 0], [0, 0, 1]] and w.tolist() == [[-1, 5]]


def test_div_is_floor_division_for_integers_only():
    i = tf.div(tf.constant(-7), tf.constant(2))
    f = tf.div(tf.constant(-7.0), tf.constant(2.0))
    assert _run([i, f]) == [-4, -3.5]


def test_matmul_adjoint_and_add_n():
    a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    got = _run([tf.matmul(a, a, adjoint_a=True), tf.add_n([a, a, a])])
    np.testing.assert_allclose(got[0], np.array([[1, 3], [2, 4]]) @ [[1, 2], [3, 4]])
    np.testing.assert_allclose(got[1], 3 * np.array([[1, 2], [3, 4]]))


# --- variable scopes and get_variable -----------------------------------------------------------


def test_get_variable_names_follow_variable_scopes_not_name_scopes():
    with tf.variable_scope("model"):
        with tf.name_scope("ignored"):
            w = tf.get_variable("w", [2, 3])
            op = tf.identity(w, name="out")
    assert w.name == "model/w:0"
    assert op.name == "model/ignored/out:0"


def test_reuse_rules():
    with tf.variable_scope("layer"):
        w = tf.get_variable("w", [3])
    with pytest.raises(gc.GraphcError, match="already exists.*reuse=True"):
        with tf.variable_scope("layer"):
            tf.get_variable("w", [3])
    with tf.variable_scope("layer", reuse=True):
        assert tf.get_variable("w", [3]) is w
        with pytest.raises(gc.NotFoundError, match="layer/v does not exist"):
            tf.get_variable("v", [3])
        with tf.variable_scope("inner", reuse=False):  # reuse cannot be switched off
            assert tf.get_variable_scope().reuse is True
    with pytest.raises(gc.ShapeError, match="share"):
        with tf.variable_scope("layer", reuse=True):
            tf.get_variable("w", [4])
    for _ in range(2):
        with tf.variable_scope("auto", reuse=tf.AUTO_REUSE):
            a = tf.get_variable("a", [1])
    assert len([v for v in tf.global_variables() if v.name == "auto/a:0"]) == 1 and a.shape == (1,)


def test_reuse_variables_on_the_current_scope():
    with tf.variable_scope("rnn") as scope:
        first = tf.get_variable("w", [2])
        scope.reuse_variables()
        assert tf.get_variable("w", [2]) is first


def test_scope_initializer_default_and_glorot_limits():
    with tf.variable_scope("s", initializer=tf.constant_initializer(0.5)):
        half = tf.get_variable("half", [2, 2])
    glorot = tf.get_variable("glorot", [300, 100])
    count = tf.get_variable("count", [], dtype=tf.int32)
    hv, gv, cv = _run([half, glorot, count])
    assert (hv == 0.5).all() and cv == 0
    limit = np.sqrt(6 / 400)
    assert np.abs(gv).max() <= limit and np.abs(gv).max() > 0.95 * limit
    assert abs(gv.std() - limit / np.sqrt(3)) < 0.01


def test_initializers_scale_by_the_fans():
    tf.set_random_seed(0)
    he = tf.get_variable("he", [3, 3, 64, 64], initializer=tf.variance_scaling_initializer(2.0))
    xavier = tf.get_variable("x", [200, 200], initializer=tf.contrib.layers.xavier_initializer())
    tn = tf.get_variable("tn", [1000], initializer=tf.truncated_normal_initializer(stddev=0.1))
    hv, xv, tv = _run([he, xavier, tn])
    assert abs(hv.std() - np.sqrt(2 / (9 * 64))) < 0.005  # fan_in = 3 * 3 * 64
    assert np.abs(xv).max() <= np.sqrt(6 / 400)
    assert np.abs(tv).max() <= 0.2


def test_regularizers_are_collected_into_the_regularization_loss():
    w = tf.get_variable(
        "w",
        [2],
        initializer=tf.constant_initializer([3.0, 4.0]),
        regularizer=tf.contrib.layers.l2_regularizer(0.1),
    )
    reg = tf.losses.get_regularization_loss()
    assert _run(reg) == pytest.approx(0.1 * 25 / 2)
    assert w.name == "w:0"


# --- layers -----------------------------------------------------------------------------------


def test_layer_names_count_up_and_reuse_shares():
    x = tf.placeholder(tf.float32, [None, 4])
    tf.layers.dense(x, 3)
    tf.layers.dense(x, 3)
    tf.layers.dense(x, 2, name="head")
    names = sorted(v.name for v in tf.trainable_variables())
    assert names == [
        "dense/bias:0",
        "dense/kernel:0",
        "dense_1/bias:0",
        "dense_1/kernel:0",
        "head/bias:0",
        "head/kernel:0",
    ]
    before = len(tf.global_variables())
    tf.layers.dense(x, 2, name="head", reuse=True)
    assert len(tf.global_variables()) == before


def test_layers_compute_what_they_say(rng):
    x = tf.placeholder(tf.float32, [None, 6, 6, 2])
    c = tf.layers.conv2d(
        x,
        3,
        3,
        padding="same",
        activation=tf.nn.relu,
        kernel_initializer=tf.ones_initializer(),
        bias_initializer=tf.constant_initializer(-1.0),
    )
    p = tf.layers.max_pooling2d(c, 2, 2)
    f = tf.layers.flatten(p)
    d = tf.layers.dropout(f, rate=0.5)  # training=False by default: the identity
    assert c.shape == (None, 6, 6, 3) and f.shape == (None, 27)
    xv = rng.random((2, 6, 6, 2)).astype(np.float32)
    cv, fv, dv = _run([c, f, d], {x: xv})
    window = np.pad(xv.sum(-1), ((0, 0), (1, 1), (1, 1)))
    direct = sum(window[:, i : i + 6, j : j + 6] for i in range(3) for j in range(3)) - 1
    np.testing.assert_allclose(cv[..., 0], np.maximum(direct, 0), rtol=1e-5)
    np.testing.assert_array_equal(fv, dv)


def test_batch_normalization_layer_trains_and_infers(rng):
    x = tf.placeholder(tf.float32, [None, 3])
    training = tf.placeholder(tf.bool)
    y = tf.layers.batch_normalization(x, momentum=0.5, training=training)
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert len(updates) == 2 and y.shape == (None, 3)
    xv = (rng.standard_normal((50, 3)) * 4 + 10).astype(np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        yt, _ = sess.run([y, updates], {x: xv, training: True})
        moving = sess.run("batch_normalization/moving_mean:0")
        yi = sess.run(y, {x: xv, training: False})
    np.testing.assert_allclose(yt.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(moving, 0.5 * xv.mean(0), rtol=1e-5)
    # inference uses the moving statistics: mean 0.5 * batch mean, variance 0.5 + 0.5 * var
    expected = (xv - 0.5 * xv.mean(0)) / np.sqrt(0.5 + 0.5 * xv.var(0) + 1e-3)
    np.testing.assert_allclose(yi, expected, rtol=1e-4)


# --- tf.nn ------------------------------------------------------------------------------------


def test_v1_softmax_cross_entropy_stops_gradients_into_labels():
    labels = tf.Variable([[0.2, 0.8]])
    logits = tf.Variable([[1.0, 2.0]])
    v1 = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    v2 = tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
    assert tf.gradients(v1, labels) == [None]
    g2, g_logits = _run([tf.gradients(v2, labels)[0], tf.gradients(v1, logits)[0]])
    p = np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum()
    np.testing.assert_allclose(g_logits[0], p - [0.2, 0.8], rtol=1e-5)
    np.testing.assert_allclose(g2[0], -np.log(p), rtol=1e-5)


def test_dropout_keep_prob_placeholder_scales_and_keeps_shape():
    x = tf.ones([400, 50])
    keep_prob = tf.placeholder(tf.float32)
    y = tf.nn.dropout(x, keep_prob)
    assert y.shape == (400, 50)
    with tf.Session() as sess:
        kept = sess.run(y, {keep_prob: 0.25})
        full = sess.run(y, {keep_prob: 1.0})
    assert set(np.unique(kept)) == {0.0, 4.0} and abs((kept > 0).mean() - 0.25) < 0.02
    assert (full == 1).all()


def test_softmax_default_axis_moments_keep_dims_and_in_top_k():
    logits = tf.constant([[1.0, 3.0, 2.0], [0.0, 0.0, 5.0]])
    mean, var = tf.nn.moments(logits, axes=[1], keep_dims=True)
    top2 = tf.nn.in_top_k(logits, tf.constant([2, 0]), 2)
    top1 = tf.nn.in_top_k(logits, tf.constant([1, 2]), 1)
    s, m, v, t2, t1 = _run([tf.nn.softmax(logits), mean, var, top2, top1])
    np.testing.assert_allclose(s.sum(1), 1, rtol=1e-6)
    assert m.shape == (2, 1) and v[0, 0] == pytest.approx(2 / 3)
    assert t2.tolist() == [True, True] and t1.tolist() == [True, True]


def test_conv2d_transpose_is_the_adjoint_of_conv2d(rng):
    """<conv2d(x, w), y> == <x, conv2d_transpose(y, w)>."""
    xv = rng.standard_normal((2, 6, 6, 3))
    wv = rng.standard_normal((3, 3, 3, 4))
    yv = rng.standard_normal((2, 3, 3, 4))
    conv = tf.nn.conv2d(tf.constant(xv), tf.constant(wv), [1, 2, 2, 1], "SAME")
    back = tf.nn.conv2d_transpose(
        tf.constant(yv), tf.constant(wv), [2, 6, 6, 3], [1, 2, 2, 1], "SAME"
    )
    c, b = _run([conv, back])
    assert np.sum(c * yv) == pytest.approx(np.sum(xv * b), rel=1e-10)


# --- losses -----------------------------------------------------------------------------------


def test_losses_reduce_by_nonzero_weights_and_collect():
    pred = tf.constant([1.0, 2.0, 4.0])
    labels = tf.constant([1.0, 1.0, 1.0])
    mse = tf.losses.mean_squared_error(labels, pred)
    weighted = tf.losses.absolute_difference(labels, pred, weights=tf.constant([0.0, 1.0, 2.0]))
    sparse = tf.losses.sparse_softmax_cross_entropy(tf.constant([0]), tf.constant([[0.0, 0.0]]))
    total = tf.losses.get_total_loss()
    m, w, s, t = _run([mse, weighted, sparse, total])
    assert m == pytest.approx(10 / 3) and w == pytest.approx((1 + 6) / 2)
    assert s == pytest.approx(np.log(2)) and t == pytest.approx(m + w + s)


# --- sessions, no-ops and what is missing -------------------------------------------------------


def test_session_config_and_v2_switches_are_accepted():
    tf.disable_v2_behavior()
    tf.logging.set_verbosity(tf.logging.ERROR)
    config = tf.ConfigProto(log_device_placement=False, allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    with tf.Session(config=config) as sess:
        assert sess.run(tf.constant(3) * 2) == 6


def test_summaries_write_tensorboard_event_files(tmp_path):
    # tf.summary used to be a no-op; it now writes through gc.summary (issue 13)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loss = tf.constant(1.5)
    tf.summary.scalar("loss", loss)
    tf.summary.histogram("h", loss)
    merged = tf.summary.merge_all()
    writer = tf.summary.FileWriter(str(tmp_path), tf.get_default_graph())
    with tf.Session() as sess:
        summary, value = sess.run([merged, loss])
    writer.add_summary(summary, 1)
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert value == 1.5 and isinstance(summary, bytes)
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.5)]
    assert acc.Histograms("h")[0].histogram_value.num == 1
    assert acc.Tags()["graph"]


def test_image_summaries_are_no_ops_that_warn_once():
    img = tf.zeros((1, 4, 4, 3))
    with pytest.warns(UserWarning, match="image summaries are no-ops"):
        tf.summary.image("img", img)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second use stays quiet
        tf.summary.image("img2", img)


@pytest.mark.parametrize(
    "path,hint",
    [
        ("contrib.learn", "tf.contrib"),
        ("estimator", "Session"),
        ("PaddingFIFOQueue", "FIFOQueue"),
        ("train.batch_join", "tf.train.batch"),
        ("nn.fractional_max_pool", ""),
        ("keras", "tf.layers"),
        ("math.cumprod", ""),
    ],
)
def test_missing_apis_raise_a_clear_error_naming_them(path, hint):
    parts = path.split(".")
    with pytest.raises(gc.UnimplementedError, match=f"tf.{path} is not available.*{hint}"):
        obj = tf
        for p in parts:
            obj = getattr(obj, p)
    parent = tf
    for p in parts[:-1]:
        parent = getattr(parent, p)
    assert not hasattr(parent, parts[-1])  # still an AttributeError for hasattr


def test_cond_chooses_between_branches_and_runs_only_the_taken_ones_effects():
    flag = tf.placeholder(tf.bool)
    x = tf.ones([4000])
    dropped = tf.cond(flag, lambda: tf.nn.dropout(x, 0.5), lambda: x)
    pair = tf.cond(flag, lambda: (x * 2, x), lambda: (x, x * 3))
    assert dropped.shape == (4000,)
    v = tf.Variable(1.0)
    set_v = tf.cond(flag, lambda: tf.assign(v, 2.0), lambda: v + 0.0)
    with tf.Session() as sess:
        on, off = sess.run(dropped, {flag: True}), sess.run(dropped, {flag: False})
        assert [v[0] for v in sess.run(pair, {flag: False})] == [1.0, 3.0]
        sess.run(tf.global_variables_initializer())
        assert sess.run(set_v, {flag: False}) == 1.0 and sess.run(v) == 1.0
        assert sess.run(set_v, {flag: True}) == 2.0 and sess.run(v) == 2.0
    assert set(np.unique(on)) == {0.0, 2.0} and (off == 1).all()


def test_loops_scan_map_fn_and_case():
    i = tf.while_loop(lambda i: i < 3, lambda i: i + 1, [0])
    k, s = tf.while_loop(lambda k, s: k < 4, lambda k, s: [k + 1, s + k], [0, 0])
    xs = tf.constant([1.0, 2.0, 3.0])
    cum = tf.scan(lambda a, x: a + x, xs)
    sq = tf.map_fn(lambda x: x * x, xs)
    n = tf.placeholder(tf.int32, [])
    c = tf.case([(tf.less(n, 0), lambda: tf.constant(-1))], default=lambda: tf.constant(1))
    with tf.Session() as sess:
        assert sess.run(i) == 3 and sess.run([k, s]) == [4, 6]
        assert sess.run(cum).tolist() == [1.0, 3.0, 6.0]
        assert sess.run(sq).tolist() == [1.0, 4.0, 9.0]
        assert sess.run(c, {n: -3}) == -1 and sess.run(c, {n: 3}) == 1


# --- shapes given as tensors, and more of what tutorials reach for ------------------------------


def test_shapes_from_tf_shape_follow_the_run_time_batch():
    x = tf.placeholder(tf.float32, [None, 2, 3])
    eps = tf.random_normal(tf.shape(x), mean=1.0, stddev=tf.sqrt(4.0), seed=1)
    zeros = tf.zeros(tf.shape(x))
    flat = tf.reshape(x, [tf.shape(x)[0], -1])
    back = tf.reshape(flat, [-1, tf.shape(x)[1], 3])
    assert eps.shape == zeros.shape == (None, 2, 3)
    assert flat.shape == (None, 6) and back.shape == (None, 2, 3)
    assert x.shape[1:].num_elements() == 6  # TensorShape slices stay TensorShapes
    xv = np.arange(5 * 6, dtype=np.float32).reshape(5, 2, 3)
    with tf.Session() as sess:
        e, z, f, b = sess.run([eps, zeros, flat, back], {x: xv})
        big = sess.run(tf.random_normal(tf.shape(x), stddev=2.0), {x: np.zeros((4000, 2, 3))})
    assert e.shape == z.shape == (5, 2, 3) and (z == 0).all()
    np.testing.assert_array_equal(f, xv.reshape(5, 6))
    np.testing.assert_array_equal(b, xv)
    assert abs(big.std() - 2.0) < 0.05


def test_dynamic_shapes_graphc_cannot_infer_are_refused():
    x = tf.placeholder(tf.float32, [None, None])
    with pytest.raises(gc.ShapeError, match="one run-time dimension"):
        tf.reshape(x, [tf.shape(x)[0], tf.shape(x)[1], -1])


def test_metrics_accuracy_streams_over_batches():
    labels = tf.placeholder(tf.int64, [None])
    preds = tf.placeholder(tf.int64, [None])
    acc, update = tf.metrics.accuracy(labels=labels, predictions=preds)
    assert tf.local_variables() and not set(tf.local_variables()) & set(tf.global_variables())
    with tf.Session() as sess:
        sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        assert sess.run(update, {labels: [1, 2], preds: [1, 0]}) == 0.5
        assert sess.run(update, {labels: [3, 3], preds: [3, 3]}) == 0.75
        assert sess.run(acc) == 0.75
        sess.run(tf.local_variables_initializer())
        assert sess.run(acc) == 0.0


def test_conv2d_transpose_layer_upsamples(rng):
    x = tf.placeholder(tf.float32, [None, 7, 7, 4])
    same = tf.layers.conv2d_transpose(x, 2, 5, strides=2, padding="same")
    valid = tf.layers.conv2d_transpose(x, 3, 3, strides=2)
    assert same.shape == (None, 14, 14, 2) and valid.shape == (None, 15, 15, 3)
    assert tf.get_default_graph().get_tensor_by_name("conv2d_transpose/kernel:0").shape == (
        5,
        5,
        2,
        4,
    )
    out = _run(same, {x: rng.standard_normal((2, 7, 7, 4)).astype(np.float32)})
    assert out.shape == (2, 14, 14, 2)
    with pytest.raises(gc.ShapeError, match="maps"):
        tf.nn.conv2d_transpose(x, tf.zeros([3, 3, 2, 4]), [1, 10, 10, 2], [1, 2, 2, 1], "SAME")


def test_contrib_fully_connected_device_and_gfile(tmp_path):
    x = tf.placeholder(tf.float32, [None, 3])
    with tf.device("/gpu:0"):
        y = tf.contrib.layers.fully_connected(
            x, 2, activation_fn=None, weights_initializer=tf.ones_initializer()
        )
    names = [v.name for v in tf.trainable_variables()]
    assert names == ["fully_connected/weights:0", "fully_connected/biases:0"]
    assert _run(y, {x: [[1.0, 2.0, 3.0]]}).tolist() == [[6.0, 6.0]]
    logdir = str(tmp_path / "logs" / "run1")
    tf.gfile.MakeDirs(logdir)
    assert tf.gfile.Exists(logdir) and tf.gfile.IsDirectory(logdir)
    tf.gfile.DeleteRecursively(str(tmp_path / "logs"))
    assert not tf.io.gfile.exists(logdir)


def test_lrn_matches_its_formula_and_differentiates(rng):
    x = rng.random((2, 3, 3, 7))
    y = tf.nn.lrn(tf.constant(x), depth_radius=2, bias=2.0, alpha=0.1, beta=0.75)
    sq = np.pad(x**2, ((0, 0), (0, 0), (0, 0), (2, 2)))
    expected = x / (2.0 + 0.1 * sum(sq[..., k : k + 7] for k in range(5))) ** 0.75
    np.testing.assert_allclose(_run(y), expected, rtol=1e-12)
    gc.test.check_gradients(lambda t: tf.nn.local_response_normalization(t, 1, 1.0, 0.5, 0.5), [x])


def test_scripts_written_as_tf_compat_v1_run_too():
    tf.compat.v1.disable_eager_execution()
    x_data = np.random.default_rng(0).random(100).astype(np.float32)
    y_data = x_data * 0.1 + 0.3
    W = tf.compat.v1.Variable(tf.compat.v1.random_uniform([1], -1.0, 1.0, seed=3))
    b = tf.compat.v1.Variable(tf.zeros([1]))
    loss = tf.reduce_mean(tf.square(W * x_data + b - y_data))
    train = tf.compat.v1.train.GradientDescentOptimizer(0.5).minimize(loss)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.initialize_all_variables())
        for _ in range(201):
            sess.run(train)
        w, bias = sess.run([W, b])
    np.testing.assert_allclose([w[0], bias[0]], [0.1, 0.3], atol=1e-3)


def test_get_checkpoint_state_finds_the_newest_save(tmp_path):
    assert tf.train.get_checkpoint_state(str(tmp_path)) is None
    step = tf.Variable(0, name="global_step", trainable=False)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for i in (1, 2):
            sess.run(tf.assign(step, i))
            saver.save(sess, str(tmp_path / "model.ckpt"), global_step=step)
    ckpt = tf.train.get_checkpoint_state(str(tmp_path))
    assert ckpt.model_checkpoint_path == str(tmp_path / "model.ckpt-2")
    assert tf.train.checkpoint_exists(ckpt.model_checkpoint_path)
    with tf.Session() as sess:
        saver.restore(sess, ckpt.model_checkpoint_path)
        assert step.eval() == 2


def test_variables_accept_tfs_placement_options():
    v = tf.Variable(tf.zeros([2]), name="v", use_resource=True, caching_device="/cpu:0")
    assert isinstance(v, tf.Variable) and v.name == "v:0"
    with pytest.raises(TypeError):
        tf.Variable(1.0, trainabel=False)  # a misspelt argument is still an error


def test_dropout_rate_spellings_agree_with_tf():
    x = tf.ones([500, 40])
    by_rate = tf.nn.dropout(x, rate=0.25, seed=1)
    layer_on = tf.layers.dropout(x, rate=0.25, training=True, seed=2)
    layer_off = tf.layers.dropout(x, rate=0.25)
    a, b, c = _run([by_rate, layer_on, layer_off])
    for kept in (a, b):
        assert set(np.unique(kept)) == {0.0, np.float32(1 / 0.75)}
        assert abs((kept > 0).mean() - 0.75) < 0.02
    assert (c == 1).all()
    assert _run(tf.nn.l2_loss(tf.constant([3.0, 4.0]))) == 12.5
    with pytest.raises(gc.GraphcError, match="exactly one of keep_prob"):
        tf.nn.dropout(x)


# --- recurrent cells ------------------------------------------------------------------------------


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_basic_lstm_cell_is_tfs_math_with_tfs_variable_names(rng):
    x = tf.placeholder(tf.float64, [None, 3])
    cell = tf.nn.rnn_cell.BasicLSTMCell(4, forget_bias=1.0)
    state = cell.zero_state(2, tf.float64)
    out, (c1, h1) = cell(x, state)
    out2, _ = cell(out[:, :3], (c1, h1))  # a second call shares the weights
    assert [v.name for v in tf.trainable_variables()] == [
        "basic_lstm_cell/kernel:0",
        "basic_lstm_cell/bias:0",
    ]
    xv = rng.standard_normal((2, 3))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        kernel = sess.run("basic_lstm_cell/kernel:0")
        got_h, got_c = sess.run([out, c1], {x: xv})
    gates = np.concatenate([xv, np.zeros((2, 4))], 1) @ kernel
    i, j, f, o = np.split(gates, 4, axis=1)
    c = _sigmoid(i) * np.tanh(j)  # c0 = 0, so f only scales 0
    np.testing.assert_allclose(got_c, c, rtol=1e-12)
    np.testing.assert_allclose(got_h, np.tanh(c) * _sigmoid(o), rtol=1e-12)
    assert kernel.shape == (7, 16) and out2.shape == (2, 4)


def test_gru_cell_matches_its_formula(rng):
    x = tf.constant(rng.standard_normal((2, 3)))
    h0 = tf.constant(rng.standard_normal((2, 5)))
    out, _ = tf.nn.rnn_cell.GRUCell(5)(x, h0)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got, gk, gb, ck, cb, xv, hv = sess.run(
            [
                out,
                "gru_cell/gates/kernel:0",
                "gru_cell/gates/bias:0",
                "gru_cell/candidate/kernel:0",
                "gru_cell/candidate/bias:0",
                x,
                h0,
            ]
        )
    assert (gb == 1).all() and (cb == 0).all()
    r, u = np.split(_sigmoid(np.concatenate([xv, hv], 1) @ gk + gb), 2, axis=1)
    cand = np.tanh(np.concatenate([xv, r * hv], 1) @ ck + cb)
    np.testing.assert_allclose(got, u * hv + (1 - u) * cand, rtol=1e-12)


def test_dynamic_rnn_unrolls_like_static_rnn_and_stacks(rng):
    x = tf.placeholder(tf.float64, [None, 6, 3])
    cells = [tf.nn.rnn_cell.BasicRNNCell(4), tf.nn.rnn_cell.LSTMCell(2)]
    stacked = tf.nn.rnn_cell.MultiRNNCell(cells)
    outputs, state = tf.nn.dynamic_rnn(stacked, x, dtype=tf.float64)
    with tf.variable_scope("again"):
        same, _ = tf.nn.static_rnn(stacked, tf.unstack(x, 6, 1), dtype=tf.float64)
    assert outputs.shape == (None, 6, 2) and state[1].h.shape == (None, 2)
    names = sorted(v.name for v in tf.trainable_variables())
    assert names == [
        "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/bias:0",
        "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/kernel:0",
        "rnn/multi_rnn_cell/cell_1/lstm_cell/bias:0",
        "rnn/multi_rnn_cell/cell_1/lstm_cell/kernel:0",
    ]
    (fw, bw), _ = tf.nn.bidirectional_dynamic_rnn(
        tf.nn.rnn_cell.GRUCell(3), tf.nn.rnn_cell.GRUCell(3), x, dtype=tf.float64
    )
    xv = rng.standard_normal((5, 6, 3))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        o, s, f, b = sess.run([outputs, same, fw, bw], {x: xv})
    np.testing.assert_allclose(o, np.stack(s, axis=1), rtol=1e-12)  # same cell, same weights
    assert f.shape == b.shape == (5, 6, 3)


def test_layer_objects_create_once_and_share():
    x = tf.placeholder(tf.float32, [None, 4])
    dense = tf.layers.Dense(3, activation=tf.nn.relu, kernel_initializer=tf.ones_initializer())
    first, second = dense(x), dense(x * 2)
    head = tf.layers.Dense(2, name="head")
    out = tf.layers.Dropout(0.5)(head(first), training=False)
    names = [v.name for v in tf.trainable_variables()]
    assert names == ["dense/kernel:0", "dense/bias:0", "head/kernel:0", "head/bias:0"]
    assert dense.kernel.name == "dense/kernel:0" and len(dense.trainable_variables) == 2
    a, b, o = _run([first, second, out], {x: [[1.0, 1.0, 1.0, 1.0]]})
    assert a.tolist() == [[4.0, 4.0, 4.0]] and b.tolist() == [[8.0, 8.0, 8.0]]
    assert o.shape == (1, 2)


def test_ops_built_inside_a_session_block_join_the_sessions_graph():
    """The Udacity-course pattern: the graph is built under ``graph.as_default()`` and the
    initializer inside ``with tf.Session(graph=graph)`` — TF makes that graph the default."""
    graph = tf.Graph()
    with graph.as_default():
        weights = tf.Variable(tf.truncated_normal([3, 2], seed=1))
        total = tf.reduce_sum(weights)
    with tf.Session(graph=graph) as session:
        tf.global_variables_initializer().run()
        assert tf.get_default_graph() is graph
        assert np.isfinite(session.run(total))
    assert tf.get_default_graph() is not graph


def test_app_flags_parse_the_command_line():
    tf.app.flags.DEFINE_integer("compat_test_steps", 100, "steps")
    tf.app.flags.DEFINE_boolean("compat_test_fake", False, "fake data")
    rest = tf.app.flags.FLAGS(["prog", "--compat_test_steps=7", "--compat_test_fake", "-x"])
    assert tf.flags.FLAGS.compat_test_steps == 7 and tf.flags.FLAGS.compat_test_fake is True
    assert rest == ["prog", "-x"]
    tf.app.flags.FLAGS(["prog"])
    assert tf.app.flags.FLAGS.compat_test_steps == 100
