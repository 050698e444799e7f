"""tf.reverse, tf.cumsum, tf.norm, tf.math.reduce_std / reduce_variance,
tf.unsorted_segment_sum / mean, tf.matrix_transpose, tf.layers.conv1d / max_pooling1d /
average_pooling1d and tf.contrib.layers.layer_norm. The expected numbers are TensorFlow
2.21's ``tf.compat.v1`` on the same inputs (layer_norm, whose contrib is gone from TF 2:
its formula in numpy)."""

import numpy as np
import pytest

import graphc.compat.v1 as tf

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) % 5 - 2) / 3


@pytest.fixture(autouse=True)
def _fresh_graph():
    tf.reset_default_graph()
    yield


def _run(t):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(t)


def test_reverse_and_cumsum_match_tensorflow():
    x = tf.constant(X)
    np.testing.assert_allclose(_run(tf.reverse(x, [1])), X[:, ::-1])
    np.testing.assert_allclose(_run(tf.reverse(x, axis=[0, 2])), X[::-1, :, ::-1])
    np.testing.assert_allclose(_run(tf.cumsum(x, axis=1)), np.cumsum(X, 1), rtol=1e-6)
    got = _run(tf.cumsum(x, axis=2, exclusive=True, reverse=True))
    np.testing.assert_allclose(got.ravel()[:8], [0, 1 / 3, 1 / 3, 0, -1, -1 / 3, 0, 0], atol=1e-6)
    ints = _run(tf.cumsum(tf.constant([1, 2, 3, 4])))
    assert ints.dtype == np.int32 and ints.tolist() == [1, 3, 6, 10]


def test_norms_moments_and_segments_match_tensorflow():
    x = tf.constant(X)
    ids = tf.constant([0, 2, 0])
    got = _run(
        [
            tf.norm(x),
            tf.norm(x, axis=-1),
            tf.norm(x, ord=1, axis=1, keepdims=True),
            tf.norm(x, ord=np.inf, axis=2),
            tf.math.reduce_std(x, axis=1),
            tf.math.reduce_variance(x),
            tf.unsorted_segment_sum(x[0], ids, 3),
            tf.math.unsorted_segment_mean(x[0], ids, 3),
            tf.matrix_transpose(x),
        ]
    )
    np.testing.assert_allclose(got[0], 2.2608, atol=1e-4)
    np.testing.assert_allclose(
        got[1].ravel(), [0.8165, 1.0, 1.0541, 1.0, 0.8165, 0.8165], atol=1e-4
    )
    assert got[2].shape == (2, 1, 4)
    np.testing.assert_allclose(got[2].ravel()[:4], [5 / 3, 5 / 3, 1.0, 2 / 3], atol=1e-4)
    np.testing.assert_allclose(got[3], np.abs(X).max(2), atol=1e-6)
    np.testing.assert_allclose(got[4], X.std(1), atol=1e-5)
    np.testing.assert_allclose(got[5], 0.2122, atol=1e-4)
    np.testing.assert_allclose(got[6], [X[0, 0] + X[0, 2], np.zeros(4), X[0, 1]], atol=1e-6)
    np.testing.assert_allclose(got[7], [(X[0, 0] + X[0, 2]) / 2, np.zeros(4), X[0, 1]], atol=1e-6)
    np.testing.assert_allclose(got[8], X.transpose(0, 2, 1))


def test_their_gradients_match_tensorflow():
    x = tf.constant(X)
    ids = tf.constant([0, 2, 0])
    loss = (
        tf.reduce_sum(tf.cumsum(x, axis=1, exclusive=True) * tf.constant(X))
        + tf.reduce_sum(tf.norm(x, axis=-1))
        + tf.reduce_sum(tf.unsorted_segment_sum(x[0], ids, 3) ** 2)
    )
    g = _run(tf.gradients(loss, x)[0])
    np.testing.assert_allclose(
        g.ravel()[:8],
        [-0.4832, 0.2584, -2.3333, 0.0749, 2.3333, -1.3333, -1.6667, -0.3333],
        atol=1e-4,
    )


def test_conv1d_and_pooling1d_layers_match_tensorflow():
    # TF 2.21's tf.compat.v1.layers needs Keras 2; the reference is the same layer built
    # from tf.nn.conv1d + bias + relu and tf.nn.max_pool / avg_pool there
    x = tf.placeholder(tf.float32, [None, 9, 3])
    init = tf.constant_initializer(np.linspace(-1, 1, 36).reshape(3, 3, 4))
    y = tf.layers.conv1d(
        x,
        4,
        3,
        strides=2,
        padding="same",
        activation=tf.nn.relu,
        kernel_initializer=init,
        bias_initializer=tf.constant_initializer(0.1),
    )
    p = tf.layers.max_pooling1d(y, 2, 2)
    a = tf.layers.average_pooling1d(x, 3, 1, padding="same")
    g = tf.gradients(tf.reduce_sum(p * p), x)[0]
    data = (np.arange(54, dtype=np.float32).reshape(2, 9, 3) % 7 - 3) / 4
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        yv, pv, av, gv = sess.run([y, p, a, g], {x: data})
    names = sorted(v.name for v in tf.trainable_variables())
    assert names == ["conv1d/bias:0", "conv1d/kernel:0"]
    assert yv.shape == (2, 5, 4) and pv.shape == (2, 2, 4) and av.shape == (2, 9, 3)
    np.testing.assert_allclose(yv.ravel()[:4], [0.90714, 0.86429, 0.82143, 0.77857], atol=1e-5)
    np.testing.assert_allclose(
        av.ravel()[:6], [-0.375, -0.125, 0.125, 0, -1 / 3, -1 / 12], atol=1e-5
    )
    np.testing.assert_allclose(
        gv.ravel()[:6], [-1.56571, -0.02449, 1.51673, 3.05796, 4.59918, 6.14041], atol=1e-4
    )


def test_contrib_layer_norm():
    x = tf.placeholder(tf.float32, [None, 3, 4])
    y = tf.contrib.layers.layer_norm(x, begin_norm_axis=1, begin_params_axis=-1)
    z = tf.contrib.layers.layer_norm(x, begin_norm_axis=-1, scope="last")
    names = sorted(v.name for v in tf.global_variables())
    assert names == ["LayerNorm/beta:0", "LayerNorm/gamma:0", "last/beta:0", "last/gamma:0"]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        yv, zv = sess.run([y, z], {x: X})
    flat = X.reshape(2, -1)
    want = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-12)
    np.testing.assert_allclose(yv, want.reshape(X.shape), rtol=1e-5, atol=1e-5)
    want = (X - X.mean(-1, keepdims=True)) / np.sqrt(X.var(-1, keepdims=True) + 1e-12)
    np.testing.assert_allclose(zv, want, rtol=1e-4, atol=1e-4)


def test_sort_masks_diagonals_meshgrid_match_tensorflow():
    X2 = np.array([[3.0, 1.0, 2.0, 5.0], [0.0, -1.0, 4.0, 4.5]], np.float32)
    x = tf.constant(X2)
    got = _run(
        [
            tf.sort(x),
            tf.sort(x, direction="DESCENDING"),
            tf.argsort(x),
            tf.sequence_mask([1, 3, 0], 4, dtype=tf.float32),
            tf.sequence_mask(tf.constant([2, 1])),
            tf.is_inf(tf.constant([1.0, np.inf, -np.inf, np.nan])),
            tf.nn.zero_fraction(x),
            tf.diag_part(tf.constant(X2[:, :2])),
            tf.diag(tf.constant([1.0, 2.0])),
            tf.trace(tf.constant(X2[:, :2])),
            tf.meshgrid(tf.constant([1, 2, 3]), tf.constant([4, 5]))[0],
            tf.meshgrid(tf.constant([1, 2, 3]), tf.constant([4, 5]), indexing="ij")[1],
            tf.erf(tf.constant([0.5, -1.0])),
        ]
    )
    want = [
        [[1, 2, 3, 5], [-1, 0, 4, 4.5]],
        [[5, 3, 2, 1], [4.5, 4, 0, -1]],
        [[1, 2, 0, 3], [1, 0, 2, 3]],
        [[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]],
        [[True, True], [True, False]],
        [False, True, True, False],
        0.125,
        [3, -1],
        [[1, 0], [0, 2]],
        2.0,
        [[1, 2, 3], [1, 2, 3]],
        [[4, 5], [4, 5], [4, 5]],
        [0.5205, -0.8427],
    ]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, atol=1e-4)
    assert got[2].dtype == np.int32 and got[4].dtype == np.bool_


def test_learning_rate_schedules_and_moving_averages_match_tensorflow():
    gs = tf.Variable(0, trainable=False)
    inc = tf.assign_add(gs, 1)
    lr = [
        tf.train.piecewise_constant(gs, [3, 6], [1.0, 0.5, 0.1]),
        tf.train.polynomial_decay(0.1, gs, 5, 0.01, power=2.0),
        tf.train.polynomial_decay(0.1, gs, 3, 0.01, cycle=True),
        tf.train.inverse_time_decay(0.1, gs, 2, 0.5),
        tf.train.inverse_time_decay(0.1, gs, 2, 0.5, staircase=True),
        tf.train.natural_exp_decay(0.1, gs, 2, 0.5),
        tf.train.cosine_decay(0.1, gs, 5, alpha=0.1),
    ]
    w = tf.Variable([1.0, 2.0])
    ema = tf.train.ExponentialMovingAverage(0.9)
    double = tf.assign(w, w * 2)
    with tf.control_dependencies([double]):
        ema_op = ema.apply([w])
    avg = ema.average(w)
    # TF 2.21, steps 0, 1, 4 and 7
    want = {
        0: [1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
        1: [1.0, 0.0676, 0.07, 0.08, 0.1, 0.07788, 0.091406],
        4: [0.5, 0.0136, 0.04, 0.05, 0.05, 0.036788, 0.018594],
        7: [0.1, 0.01, 0.03, 0.036364, 0.04, 0.017377, 0.01],
    }
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(8):
            if step in want:
                np.testing.assert_allclose(sess.run(lr), want[step], atol=1e-6)
                assert tf.train.global_step(sess, gs) == step
            sess.run(inc)
        sess.run(ema_op)
        sess.run(ema_op)
        # reading the shadow does not run the update it was made under
        np.testing.assert_allclose(sess.run(avg), [1.39, 2.78], rtol=1e-6)
        np.testing.assert_allclose(sess.run(w), [4.0, 8.0])
    assert avg.name == "Variable_1/ExponentialMovingAverage:0"
    assert "Variable_1/ExponentialMovingAverage" in ema.variables_to_restore()


def test_slim_repeat_stack_and_embed_sequence():
    slim = tf.contrib.slim
    x = tf.placeholder(tf.float32, [None, 8, 8, 3])
    net = slim.repeat(x, 2, slim.conv2d, 4, [3, 3], scope="conv1")
    flat = slim.flatten(net)
    out = slim.stack(flat, slim.fully_connected, [16, 8], scope="fc")
    emb = tf.contrib.layers.embed_sequence(tf.constant([[1, 2], [3, 0]]), 5, 6)
    names = {v.name for v in tf.trainable_variables()}
    assert {"conv1/conv1_1/weights:0", "conv1/conv1_2/weights:0", "fc/fc_1/weights:0"} <= names
    assert "EmbedSequence/embeddings:0" in names
    assert out.shape.as_list() == [None, 8] and emb.shape.as_list() == [2, 2, 6]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(out, {x: np.ones((2, 8, 8, 3))}).shape == (2, 8)
