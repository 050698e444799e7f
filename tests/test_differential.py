"""Random graphs (seeded generator): every optimize level gives the reference's results."""

import numpy as np
import pytest

import graphc as gc

UNARY = [
    gc.tanh,
    gc.sin,
    gc.neg,
    gc.abs,
    gc.sigmoid,
    lambda t: gc.exp(gc.tanh(t)),
    lambda t: t * 1.0,
    lambda t: gc.neg(-t),
    lambda t: gc.square(gc.tanh(t)),
    lambda t: gc.log(1.0 + gc.exp(gc.tanh(t))),
]
BINARY = [
    gc.add,
    gc.subtract,
    gc.multiply,
    gc.maximum,
    gc.minimum,
    lambda a, b: a * 0.5 + b,
    lambda a, b: gc.where(gc.greater(a, b), a, b),
]


def random_graph(rng, x, shape):
    """A DAG of ~25 ops over (rows, cols) values, with reuse, constants, broadcasting, a
    matmul, transposes, reductions and a few repeated subexpressions for CSE."""
    values = [x, gc.tanh(x)]
    for _ in range(int(rng.integers(15, 30))):
        r = rng.random()
        a = values[int(rng.integers(len(values)))]
        if r < 0.35:
            values.append(UNARY[int(rng.integers(len(UNARY)))](a))
        elif r < 0.7:
            b = values[int(rng.integers(len(values)))]
            values.append(BINARY[int(rng.integers(len(BINARY)))](a, b))
        elif r < 0.8:
            c = gc.constant(rng.standard_normal(shape[1]))  # broadcast along rows
            values.append(a + c)
        elif r < 0.87:
            values.append(gc.transpose(gc.transpose(a)) * 0.9)
        elif r < 0.93:
            red = gc.reduce_max if rng.random() < 0.5 else gc.reduce_sum
            values.append(a - red(a, axis=int(rng.integers(2)), keepdims=True))
        else:
            w = gc.constant(rng.standard_normal((shape[1], shape[1])) * 0.3)
            values.append(gc.tanh(gc.matmul(a, w)))
    outs = values[-3:] + [gc.reduce_sum(values[-1]), gc.reduce_mean(values[-2], axis=0)]
    return outs


@pytest.mark.parametrize("seed", range(12))
def test_random_graph_agrees_at_every_level(seed):
    rng = np.random.default_rng(seed)
    rows = int(rng.choice([1, 7, 300]))  # 300 x 257 spans several row tiles
    shape = (rows, 257 if rows == 300 else 5)
    x = gc.placeholder(gc.float64, (None, shape[1]))
    outs = random_graph(rng, x, shape)
    X = rng.standard_normal(shape)
    results = {}
    for level in (0, 1, 2):
        with gc.Session(optimize=level) as sess:
            results[level] = sess.run(outs, {x: X})
    for level in (1, 2):
        for got, want in zip(results[level], results[0], strict=False):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_random_training_step_agrees_with_the_reference(seed):
    rng = np.random.default_rng(100 + seed)
    x = gc.placeholder(gc.float64, (None, 6))
    w = gc.Variable(rng.standard_normal((6, 6)) * 0.3)
    h = random_graph(rng, gc.matmul(x, w), (9, 6))[0]
    loss = gc.reduce_sum(h * h)
    (g,) = gc.gradients(loss, [w])
    step = gc.assign_sub(w, 0.01 * g)
    X = rng.standard_normal((9, 6))
    runs = {}
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            sess.run(w.initializer)
            runs[level] = [sess.run([step, loss], {x: X})[1] for _ in range(3)]
            runs[level].append(sess.run(w))
    for got, want in zip(runs[2], runs[0], strict=False):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
