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
