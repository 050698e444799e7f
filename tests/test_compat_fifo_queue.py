"""``tf.FIFOQueue`` / ``tf.RandomShuffleQueue`` with queue runners and
``tf.data.TextLineDataset``, written the way TF 1.x tutorials use them. The expected
values were checked against TensorFlow 2.21's ``tf.compat.v1`` (same programs)."""
# ruff: noqa: B007

import gzip

import numpy as np
import pytest

import graphc.compat.v1 as tf
from graphc.compat.fifo_queue import QueueBlockedError


@pytest.fixture(autouse=True)
def _fresh_graph():
    tf.reset_default_graph()
    yield


def test_the_increment_queue_of_the_threading_and_queues_guide():
    q = tf.FIFOQueue(3, "float")
    init = q.enqueue_many(([0.0, 0.0, 0.0],))
    x = q.dequeue()
    y = x + 1
    q_inc = q.enqueue([y])
    with tf.Session() as sess:
        init.run()
        q_inc.run()
        q_inc.run()
        q_inc.run()
        q_inc.run()
        size = sess.run(q.size())
        out = [sess.run(x) for _ in range(3)]
    assert size == 3
    assert out == [1.0, 1.0, 2.0]  # TF 1.x prints the same


def test_queue_runner_fills_a_queue_for_dequeue_many():
    q = tf.FIFOQueue(capacity=10, dtypes=[tf.float32], shapes=[[]])
    counter = tf.Variable(0.0)
    enqueue_op = q.enqueue(tf.assign_add(counter, 1.0))
    qr = tf.train.QueueRunner(q, [enqueue_op] * 2)
    tf.train.add_queue_runner(qr)
    batch = q.dequeue_many(4)
    assert batch.shape.as_list() == [4]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        coord = tf.train.Coordinator()
        threads = tf.train.start_queue_runners(sess=sess, coord=coord)
        first, second = sess.run(batch), sess.run(batch)
        coord.request_stop()
        coord.join(threads)
    np.testing.assert_array_equal(first, [1, 2, 3, 4])
    np.testing.assert_array_equal(second, [5, 6, 7, 8])


def test_create_threads_starts_one_runner():
    q = tf.FIFOQueue(4, tf.int32, shapes=[[]])
    qr = tf.train.QueueRunner(q, [q.enqueue(7)])
    x = q.dequeue()
    with tf.Session() as sess:
        coord = tf.train.Coordinator()
        enqueue_threads = qr.create_threads(sess, coord=coord, start=True)
        assert [sess.run(x) for _ in range(3)] == [7, 7, 7]
        coord.request_stop()
        coord.join(enqueue_threads)


def test_feeding_a_queue_with_placeholders_two_components_and_close():
    xs = tf.placeholder(tf.float32, [None, 2])
    ys = tf.placeholder(tf.int32, [None])
    q = tf.FIFOQueue(capacity=50, dtypes=[tf.float32, tf.int32], shapes=[[2], []])
    enqueue = q.enqueue_many([xs, ys])
    xb, yb = q.dequeue_many(3)
    rest_x, rest_y = q.dequeue_up_to(3)
    close = q.close()
    with tf.Session() as sess:
        sess.run(enqueue, {xs: np.arange(10.0).reshape(5, 2), ys: np.arange(5)})
        assert sess.run(q.size()) == 5
        a, b = sess.run([xb, yb])
        np.testing.assert_array_equal(a, [[0, 1], [2, 3], [4, 5]])
        np.testing.assert_array_equal(b, [0, 1, 2])
        assert a.dtype == np.float32 and b.dtype == np.int32
        sess.run(close)
        assert sess.run(q.is_closed())
        a, b = sess.run([rest_x, rest_y])  # fewer than 3: the queue is closed
        np.testing.assert_array_equal(b, [3, 4])
        with pytest.raises(tf.errors.OutOfRangeError):
            sess.run(rest_x)
        with pytest.raises(tf.errors.CancelledError, match="closed"):
            sess.run(enqueue, {xs: np.zeros((1, 2)), ys: [1]})


def test_named_components_dequeue_as_a_dict():
    q = tf.FIFOQueue(5, [tf.float32, tf.int64], shapes=[[], []], names=["x", "label"])
    enqueue = q.enqueue({"x": 1.5, "label": tf.constant(3, tf.int64)})
    out = q.dequeue()
    with tf.Session() as sess:
        sess.run(enqueue)
        got = sess.run(out)
    assert got == {"x": 1.5, "label": 3}


def test_each_session_has_its_own_queue_contents():
    q = tf.FIFOQueue(5, tf.int32, shapes=[[]])
    put = q.enqueue_many([[1, 2]])
    with tf.Session() as a, tf.Session() as b:
        a.run(put)
        assert a.run(q.size()) == 2 and b.run(q.size()) == 0


def test_where_tf_would_hang_graphc_says_why():
    q = tf.FIFOQueue(2, tf.int32)
    x = q.dequeue()
    too_many = q.enqueue_many([[1, 2, 3]])
    with tf.Session() as sess:
        with pytest.raises(QueueBlockedError, match="block here for ever") as info:
            sess.run(x)
        assert "test_compat_fifo_queue.py" in str(info.value)
        with pytest.raises(QueueBlockedError, match="capacity 2"):
            sess.run(too_many)
    tf.reset_default_graph()
    q = tf.FIFOQueue(2, tf.int32)
    tf.train.add_queue_runner(tf.train.QueueRunner(q, [q.enqueue(1)]))
    x = q.dequeue()
    with tf.Session() as sess, pytest.raises(QueueBlockedError, match="start_queue_runners"):
        sess.run(x)


def test_wrong_components_are_refused_where_the_queue_is_used():
    q = tf.FIFOQueue(3, [tf.float32, tf.int32], shapes=[[2], []])
    with pytest.raises(tf.errors.InvalidArgumentError, match="2 component"):
        q.enqueue([1.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="holds int32"):
        q.enqueue([tf.zeros([2]), tf.constant(1.0)])
    bad = q.enqueue([tf.placeholder(tf.float32), 1])
    with tf.Session() as sess, pytest.raises(ValueError, match=r"shape \(3,\)"):
        sess.run(bad, {bad.inputs[0]: [1.0, 2.0, 3.0]})
    unshaped = tf.FIFOQueue(3, tf.float32)
    with pytest.raises(ValueError, match="shapes="):
        unshaped.dequeue_many(2)


def test_reader_queue_runner_pipeline_ends_with_out_of_range(tmp_path):
    """A reader feeding an example queue through a runner: when the files are read
    ``num_epochs`` times, the runner closes the queue and the training loop ends the
    way TF's does (OutOfRangeError caught, coordinator stopped)."""
    path = tmp_path / "data.csv"
    path.write_text("".join(f"{i},{2 * i + 1}\n" for i in range(10)))
    filename_queue = tf.train.string_input_producer([str(path)], num_epochs=2, shuffle=False)
    reader = tf.TextLineReader()
    _, value = reader.read(filename_queue)
    x, y = tf.decode_csv(value, record_defaults=[[0.0], [0.0]])
    examples = tf.FIFOQueue(capacity=8, dtypes=[tf.float32, tf.float32], shapes=[[], []])
    tf.train.add_queue_runner(tf.train.QueueRunner(examples, [examples.enqueue([x, y])]))
    xb, yb = examples.dequeue_many(4)
    w = tf.Variable(0.0)
    b = tf.Variable(0.0)
    loss = tf.reduce_mean(tf.square(w * xb + b - yb))
    train = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
    steps = 0
    with tf.Session() as sess:
        sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        coord = tf.train.Coordinator()
        threads = tf.train.start_queue_runners(sess=sess, coord=coord)
        try:
            while not coord.should_stop():
                sess.run(train)
                steps += 1
        except tf.errors.OutOfRangeError:
            pass
        finally:
            coord.request_stop()
        coord.join(threads)
    assert steps == 5  # 20 examples, 4 per batch


def test_random_shuffle_queue_mixes_and_keeps_every_element():
    q = tf.RandomShuffleQueue(
        capacity=20, min_after_dequeue=5, dtypes=[tf.int32], shapes=[[]], seed=1
    )
    data = tf.placeholder(tf.int32, [None])
    put = q.enqueue_many([data])
    out = q.dequeue_many(10)
    with tf.Session() as sess:
        sess.run(put, {data: np.arange(15)})
        first = sess.run(out)
        sess.run(q.close())
        rest = sess.run(q.dequeue_up_to(10))
    assert sorted(first.tolist() + rest.tolist()) == list(range(15))
    assert first.tolist() != list(range(10))


# --- tf.data.TextLineDataset ------------------------------------------------------------------


def _csv(tmp_path, name="iris.csv", rows=7):
    path = tmp_path / name
    lines = ["sepal,petal,label"] + [f"{i / 2},{i % 3 + 0.5},{i % 3}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_line_dataset_parsed_with_decode_csv_in_map(tmp_path):
    path = _csv(tmp_path)

    def parse(line):
        sepal, petal, label = tf.decode_csv(line, record_defaults=[[0.0], [0.0], [0]])
        return tf.stack([sepal, petal]), label

    dataset = tf.data.TextLineDataset(str(path)).skip(1).map(parse).batch(3)
    features, labels = dataset.make_one_shot_iterator().get_next()
    assert features.shape.as_list() == [None, 2] and labels.dtype is tf.int32
    got = []
    with tf.Session() as sess:
        while True:
            try:
                got.append(sess.run([features, labels]))
            except tf.errors.OutOfRangeError:
                break
    assert [len(b[1]) for b in got] == [3, 3, 1]
    np.testing.assert_allclose(got[0][0], [[0, 0.5], [0.5, 1.5], [1.0, 2.5]])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), [i % 3 for i in range(7)])


def test_text_line_dataset_lines_are_bytes_without_line_endings(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"first line\r\nsecond\n\nlast")
    line = tf.data.TextLineDataset([str(path)]).make_one_shot_iterator().get_next()
    assert line.dtype is tf.string and line.shape.as_list() == []
    with tf.Session() as sess:
        got = [sess.run(line) for _ in range(4)]
        with pytest.raises(tf.errors.OutOfRangeError):
            sess.run(line)
    assert got == [b"first line", b"second", b"", b"last"]


def test_text_line_dataset_from_a_fed_list_of_files_and_gzip(tmp_path):
    a, b = _csv(tmp_path, "a.csv", 2), tmp_path / "b.csv.gz"
    with gzip.open(b, "wt") as f:
        f.write("h\n9,9,2\n")
    filenames = tf.placeholder(tf.string, shape=[None])
    plain = tf.data.TextLineDataset(filenames).repeat(2)
    it = plain.make_initializable_iterator()
    line = it.get_next()
    packed = tf.data.TextLineDataset(str(b), compression_type="GZIP")
    gz = packed.make_one_shot_iterator().get_next()
    with tf.Session() as sess:
        sess.run(it.initializer, feed_dict={filenames: [str(a)]})
        assert len([sess.run(line) for _ in range(6)]) == 6
        with pytest.raises(tf.errors.OutOfRangeError):
            sess.run(line)
        assert [sess.run(gz), sess.run(gz)] == [b"h", b"9,9,2"]


def test_text_line_dataset_names_a_missing_file(tmp_path):
    line = tf.data.TextLineDataset(str(tmp_path / "nope.csv")).make_one_shot_iterator().get_next()
    with tf.Session() as sess, pytest.raises(tf.errors.OpError, match="nope.csv") as info:
        sess.run(line)
    assert "test_compat_fifo_queue.py" in str(info.value)


def test_a_loader_thread_feeds_the_queue_while_the_main_thread_trains():
    """The "feed a queue from a Python thread" pattern: the loader's enqueue waits for room,
    the training loop's dequeue waits for data, and closing the queue with
    cancel_pending_enqueues ends the loader."""
    import threading

    X = np.random.RandomState(0).rand(200, 3).astype(np.float32)
    Y = X @ np.array([1.0, 2.0, 3.0], np.float32) + 0.5
    x_in = tf.placeholder(tf.float32, [None, 3])
    y_in = tf.placeholder(tf.float32, [None])
    q = tf.FIFOQueue(capacity=50, dtypes=[tf.float32, tf.float32], shapes=[[3], []])
    enqueue_op = q.enqueue_many([x_in, y_in])
    close_op = q.close(cancel_pending_enqueues=True)
    xb, yb = q.dequeue_many(20)
    w = tf.Variable(tf.zeros([3]))
    b = tf.Variable(0.0)
    loss = tf.reduce_mean(tf.square(tf.reduce_sum(xb * w, 1) + b - yb))
    train = tf.train.GradientDescentOptimizer(0.3).minimize(loss)
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    coord = tf.train.Coordinator()
    fed = []

    def load_and_enqueue():
        i = 0
        while not coord.should_stop():
            j = (i * 10) % 200
            try:
                sess.run(enqueue_op, feed_dict={x_in: X[j : j + 10], y_in: Y[j : j + 10]})
            except tf.errors.CancelledError:
                return
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                fed.append(e)
                return
            fed.append(j)
            i += 1

    t = threading.Thread(target=load_and_enqueue, daemon=True)
    t.start()
    for step in range(200):
        _, last = sess.run([train, loss])
    coord.request_stop()
    sess.run(close_op)
    coord.join([t], stop_grace_period_secs=30)
    assert not t.is_alive()
    assert not [e for e in fed if isinstance(e, Exception)]
    assert last < 1e-4 and len(fed) >= 400  # 200 batches of 20 from enqueues of 10


def test_slice_input_producer_feeds_train_batch_as_in_tensorflow():
    images = np.arange(20, dtype=np.float32).reshape(10, 2)
    labels = np.arange(10, dtype=np.int32)
    image, label = tf.train.slice_input_producer([images, labels], num_epochs=2, shuffle=False)
    xb, yb = tf.train.batch([image, label], batch_size=4, allow_smaller_final_batch=True)
    out = []
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        coord = tf.train.Coordinator()
        threads = tf.train.start_queue_runners(sess=sess, coord=coord)
        try:
            while True:
                x, y = sess.run([xb, yb])
                np.testing.assert_array_equal(x[:, 0], 2 * y)
                out.append(y.tolist())
        except tf.errors.OutOfRangeError:
            pass
        coord.request_stop()
        coord.join(threads)
    # TF 2.21 prints the same five batches
    assert out == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1], [2, 3, 4, 5], [6, 7, 8, 9]]
    tf.reset_default_graph()
    (k,) = tf.train.slice_input_producer([labels], num_epochs=1, shuffle=True, seed=3)
    n = tf.train.range_input_producer(4, num_epochs=1, shuffle=False)
    with tf.Session() as sess:
        epoch = [int(sess.run(k)) for _ in range(10)]
        assert sorted(epoch) == list(range(10)) and epoch != list(range(10))
        assert [int(sess.run(n)) for _ in range(4)] == [0, 1, 2, 3]


def test_text_line_dataset_the_iris_tutorial_way(tmp_path):
    """decode_csv into a dict of features and a popped label, as TF's iris tutorial
    parses its CSV (TF 2.21 gives the same batches)."""
    path = tmp_path / "iris_training.csv"
    path.write_text(
        "120,4,setosa,versicolor,virginica\n6.4,2.8,5.6,2.2,2\n5.0,2.3,3.3,1.0,1\n"
        "4.9,2.5,4.5,1.7,2\n4.9,3.1,1.5,0.1,0\n5.7,3.8,1.7,0.3,0\n"
    )
    names = ["SepalLength", "SepalWidth", "PetalLength", "PetalWidth", "Species"]

    def _parse_line(line):
        fields = tf.decode_csv(line, record_defaults=[[0.0], [0.0], [0.0], [0.0], [0]])
        features = dict(zip(names, fields))
        label = features.pop("Species")
        return features, label

    ds = tf.data.TextLineDataset(str(path)).skip(1).map(_parse_line).batch(2)
    features, label = ds.make_one_shot_iterator().get_next()
    x = tf.stack([features[k] for k in names[:-1]], axis=1)
    with tf.Session() as sess:
        f, lab, xv = sess.run([features, label, x])
        assert sorted(f) == sorted(names[:-1]) and lab.tolist() == [2, 1]
        np.testing.assert_allclose(xv, [[6.4, 2.8, 5.6, 2.2], [5.0, 2.3, 3.3, 1.0]], rtol=1e-6)
        assert sess.run(label).tolist() == [2, 0]
        assert sess.run(label).tolist() == [0]
