"""Placeholders without a shape (``tf.placeholder(tf.float32)``, unknown rank): every op's
shape rule accepts them, and the plan resolves the shapes from the feeds, as TF does."""

import numpy as np
import pytest

import graphc as gc
import graphc.compat.v1 as tf
from graphc import dtypes as D
from graphc.ops.registry import REGISTRY


def _cases():
    for name, op in sorted(REGISTRY.items()):
        if op.samples is None or op.kind in ("source", "state") or op.stateful:
            continue
        for k in range(len(op.samples(np.random.default_rng(0)))):
            yield pytest.param(name, k, id=f"{name}-{k}")


@pytest.mark.parametrize("name,k", list(_cases()))
def test_every_rule_accepts_unknown_rank_and_runs_as_with_known_shapes(name, k):
    op = REGISTRY[name]
    arrays, attrs = op.samples(np.random.default_rng(0))[k]
    arrays = [np.asarray(a) for a in arrays]
    results = []
    for shaped in (True, False):
        g = gc.Graph()
        with g.as_default():
            phs = [gc.placeholder(D.as_dtype(a.dtype), a.shape if shaped else None) for a in arrays]
            out = op(*phs, **attrs)
            outs = list(out) if isinstance(out, tuple) else [out]
            with gc.Session(graph=g) as sess:
                results.append(sess.run(outs, dict(zip(phs, arrays, strict=True))))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


def test_readme_linear_regression_with_unshaped_placeholders_fed_lists():
    tf.set_random_seed(1)
    X = tf.placeholder(tf.float32)
    Y = tf.placeholder(tf.float32)
    W = tf.Variable(tf.random_normal([1]), name="weight")
    b = tf.Variable(tf.random_normal([1]), name="bias")
    hypothesis = W * X + b
    cost = tf.reduce_mean(tf.square(hypothesis - Y))
    train = tf.train.GradientDescentOptimizer(learning_rate=0.01).minimize(cost)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(2001):
            sess.run(train, feed_dict={X: [1, 2, 3], Y: [1, 2, 3]})
        c, w, bb = sess.run([cost, W, b], feed_dict={X: [1, 2, 3], Y: [1, 2, 3]})
        assert c < 1e-4 and abs(w[0] - 1) < 0.02 and abs(bb[0]) < 0.05
        # the graph runs for other feed shapes too (a new plan for each)
        np.testing.assert_allclose(
            sess.run(hypothesis, {X: [[5.0], [6.0]]}),
            [[w[0] * 5 + bb[0]], [w[0] * 6 + bb[0]]],
            rtol=1e-5,
        )


def test_w_times_x_minus_y_without_bias():
    X, Y = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
    W = tf.Variable([0.5], name="w")
    cost = tf.reduce_mean(tf.square(W * X - Y))
    step = tf.train.GradientDescentOptimizer(0.1).minimize(cost)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(100):
            sess.run(step, {X: [1, 2, 3], Y: [2, 4, 6]})
        np.testing.assert_allclose(sess.run(W), [2.0], rtol=1e-4)


@pytest.mark.parametrize(
    "fn,ref",
    [
        (tf.reduce_max, np.max),
        (tf.reduce_min, np.min),
        (tf.reduce_sum, np.sum),
        (tf.reduce_mean, np.mean),
        (tf.reduce_prod, np.prod),
        (tf.reduce_logsumexp, None),
    ],
)
def test_reductions_with_axes_on_unknown_rank(fn, ref):
    x = tf.placeholder(tf.float32)
    v = np.array([[1.0, 5.0, 2.0], [2.0, 3.0, 0.5]], np.float32)
    outs = [fn(x), fn(x, axis=1), fn(x, axis=-1, keepdims=True), fn(x, reduction_indices=[0])]
    with tf.Session() as sess:
        got = sess.run(outs, {x: v})
    if ref is None:
        ref = lambda a, axis=None, keepdims=False: np.log(  # noqa: E731
            np.sum(np.exp(a), axis=axis, keepdims=keepdims)
        )
    want = [ref(v), ref(v, axis=1), ref(v, axis=-1, keepdims=True), ref(v, axis=0)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5)


def test_reduction_gradient_on_unknown_rank():
    x = tf.placeholder(tf.float32)
    y = tf.reduce_sum(tf.reduce_max(x, axis=-1) * tf.reduce_mean(x, axis=0))
    (g,) = tf.gradients(y, [x])
    v = np.array([[1.0, 5.0], [2.0, 3.0]], np.float32)
    with tf.Session() as sess:
        got = sess.run(g, {x: v})
    eps, num = 1e-3, np.zeros_like(v, dtype=np.float64)
    f = lambda a: np.sum(a.max(-1) * a.mean(0))  # noqa: E731
    for i in np.ndindex(v.shape):
        d = np.zeros_like(v, dtype=np.float64)
        d[i] = eps
        num[i] = (f(v + d) - f(v - d)) / (2 * eps)
    np.testing.assert_allclose(got, num, rtol=1e-3, atol=1e-3)


def test_argmax_squeeze_expand_slice_stack_on_unknown_rank():
    x = tf.placeholder(tf.float32)
    v = np.array([[[1.0, 5.0, 2.0]], [[7.0, 3.0, 0.5]]], np.float32)  # (2, 1, 3)
    outs = [
        tf.argmax(x, axis=-1),
        tf.argmax(x, 0),
        tf.squeeze(x, [1]),
        tf.squeeze(x),
        tf.expand_dims(x, -1),
        x[:, 0, 1:],
        x[..., 0],
        tf.stack([x, x], axis=1),
    ]
    with tf.Session() as sess:
        got = sess.run(outs, {x: v})
    want = [
        v.argmax(-1),
        v.argmax(0),
        v.squeeze(1),
        v.squeeze(),
        v[..., None],
        v[:, 0, 1:],
        v[..., 0],
        np.stack([v, v], axis=1),
    ]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_softmax_classifier_on_unshaped_placeholders():
    x, y = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
    w = tf.Variable(tf.zeros([2, 2]))
    logits = tf.matmul(x, w)
    cost = tf.reduce_mean(-tf.reduce_sum(y * tf.log(tf.nn.softmax(logits)), axis=1))
    step = tf.train.GradientDescentOptimizer(0.5).minimize(cost)
    xs = [[1, 0], [0, 1], [1, 0.2], [0.1, 1]]
    ys = [[1, 0], [0, 1], [1, 0], [0, 1]]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(50):
            sess.run(step, {x: xs, y: ys})
        pred = sess.run(tf.argmax(logits, 1), {x: xs})
    assert pred.tolist() == [0, 1, 0, 1]


def test_shape_functions_and_common_ops_on_unknown_rank():
    x = tf.placeholder(tf.float32)
    v = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    outs = [
        tf.shape(x),
        tf.size(x),
        tf.rank(x),
        tf.transpose(x),
        tf.reshape(x, [-1]),
        tf.nn.softmax(x),
        tf.nn.relu(x - 2),
        tf.concat([x, x], 0),
        tf.tile(x, [1, 2]),
        tf.pad(x, [[1, 0], [0, 0]]),
        tf.matmul(x, x),
        tf.gradients(tf.reduce_sum(tf.transpose(x) * tf.constant([[1.0, 2.0], [3.0, 4.0]])), [x])[
            0
        ],
    ]
    with tf.Session() as sess:
        got = sess.run(outs, {x: v})
    e = np.exp(v - v.max(-1, keepdims=True))
    want = [
        [2, 2],
        4,
        2,
        v.T,
        v.ravel(),
        e / e.sum(-1, keepdims=True),
        np.maximum(v - 2, 0),
        np.concatenate([v, v]),
        np.tile(v, [1, 2]),
        np.pad(v, [[1, 0], [0, 0]]),
        v @ v,
        np.array([[1.0, 3.0], [2.0, 4.0]]),
    ]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_matmul_of_an_unshaped_placeholder_is_a_matrix_product_as_in_tf1():
    X, Y = tf.placeholder(tf.float32), tf.placeholder(tf.int32)
    W = tf.Variable(tf.zeros([3, 4]))
    logits = tf.matmul(X, W)
    assert logits.shape.as_list() == [None, 4]  # TF 1.x's MatMul says (?, 4) too
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=Y, logits=logits))
    mean, var = tf.nn.moments(X, [0])
    step = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(50):
            sess.run(step, {X: np.eye(3)[[0, 1, 2, 0]], Y: [0, 1, 2, 0]})
        assert sess.run(tf.argmax(logits, 1), {X: np.eye(3)}).tolist() == [0, 1, 2]
        m, v = sess.run([mean, var], {X: [[1.0, 2.0], [3.0, 6.0]]})
    assert m.tolist() == [2.0, 4.0] and v.tolist() == [1.0, 4.0]
