"""Compile time linear in model size: a long plan's generated code is split into parts (each
compiled on its own), and a Session's first run takes the plan ``gc.compile`` just made for
the same signature. Speed itself is measured by ``python -m benchmarks --workload
compile-scaling``; these tests check that the results do not change."""

import numpy as np
import pytest

import graphc as gc
from graphc.backends import numpy_backend

LEVELS = (1, 2)


def _mlp(depth, width=8):
    x = gc.placeholder(gc.float32, (None, width), name="x")
    y = gc.placeholder(gc.float32, (None, width), name="y")
    h = x
    for i in range(depth):
        w = gc.Variable(gc.random_normal((width, width), stddev=0.3, seed=i))
        b = gc.Variable(gc.zeros((width,)))
        h = gc.relu(h @ w + b)
    loss = gc.reduce_mean((h - y) ** 2)
    train = gc.train.AdamOptimizer(1e-2).minimize(loss)
    return x, y, h, loss, train


def _train(optimize, chunk_lines, monkeypatch, steps=3, batch=300):
    """Losses, final output and a weight after ``steps`` Adam steps of a deep MLP, with
    the generated code split every ``chunk_lines`` lines (a large number: not split)."""
    monkeypatch.setattr(numpy_backend, "CHUNK_LINES", chunk_lines)
    rng = np.random.default_rng(0)
    # batch 300 > one tile of a width-8 row: the fused steps loop over tiles
    X = rng.standard_normal((batch, 8)).astype(np.float32)
    Y = rng.standard_normal((batch, 8)).astype(np.float32)
    with gc.Graph().as_default() as g:
        x, y, h, loss, train = _mlp(12)
        with gc.Session(g, optimize=optimize) as sess:
            sess.run(gc.global_variables_initializer())
            losses = [sess.run([train, loss], {x: X, y: Y})[1] for _ in range(steps)]
            out = sess.run(h, {x: X})
            weight = sess.run(gc.trainable_variables()[0])
            sources = [exe.source for exe in sess._cache.values()]
    return losses, out, weight, sources


@pytest.mark.parametrize("optimize", LEVELS)
def test_code_split_into_parts_computes_what_one_function_does(optimize, monkeypatch):
    whole = _train(optimize, 10**9, monkeypatch)
    parts = _train(optimize, 7, monkeypatch)
    assert not any("run_part" in s for s in whole[3])
    longest = max(parts[3], key=len)  # the training step's
    assert "def run_part1(" in longest and "def ARENA_part1(" in longest
    np.testing.assert_allclose(parts[0], whole[0], rtol=1e-6)
    np.testing.assert_allclose(parts[1], whole[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts[2], whole[2], rtol=1e-5, atol=1e-6)
    assert parts[0][-1] < parts[0][0]


def test_a_traced_run_of_a_split_plan_is_compiled_on_first_use(monkeypatch, tmp_path):
    monkeypatch.setattr(numpy_backend, "CHUNK_LINES", 5)
    with gc.Graph().as_default():
        x, y, h, loss, train = _mlp(6)
        X = np.ones((4, 8), np.float32)
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            expect = sess.run(loss, {x: X, y: X})
            (exe,) = [e for e in sess._cache.values() if len(e.feed_tensors) == 2]
            assert "def run_traced" not in exe.source  # not compiled until asked for
            got = sess.run(loss, {x: X, y: X}, trace=str(tmp_path / "t.json"))
            assert "def run_traced_part1(" in exe.source
            assert len(exe.plan.timings) == len(exe.plan.steps)
    assert got == expect


def test_a_kernel_failing_in_a_later_part_names_the_users_line(monkeypatch):
    monkeypatch.setattr(numpy_backend, "CHUNK_LINES", 3)
    a = gc.placeholder(gc.float32, (None, 3))
    b = gc.placeholder(gc.float32, (None, 3))
    h = a
    for _ in range(10):
        h = gc.tanh(h) * 2.0
    z = h + b  # shapes only clash at run time, in the last part
    with gc.Session(optimize=1) as sess, pytest.raises(gc.OpError) as err:
        sess.run(z, {a: np.ones((2, 3), np.float32), b: np.ones((4, 3), np.float32)})
    assert f"{__file__}" in str(err.value) and "add" in str(err.value)


# --- a Session's first run reuses the plan gc.compile made -------------------------------------


def test_the_first_run_takes_the_plan_compile_made():
    x, y, h, loss, train = _mlp(3)
    plan = gc.compile([train, loss], feed_shapes={x: (4, 8), y: (4, 8)})
    assert plan.reuses == 0
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        sess.run([train, loss], {x: np.ones((4, 8)), y: np.ones((4, 8))})
        plans = [exe.plan for exe in sess._cache.values()]
    assert plan.reuses == 1 and any(p is plan for p in plans)
    # the same signature again: the same plan; another feed shape: a new one
    assert gc.compile([train, loss], feed_shapes={x: (4, 8), y: (4, 8)}) is plan
    assert gc.compile([train, loss], feed_shapes={x: (5, 8), y: (5, 8)}) is not plan
    assert plan.reuses == 2


def test_a_plan_is_reused_after_the_graph_grew_but_not_with_user_passes():
    x, y, h, loss, train = _mlp(2)
    shapes = {x: (4, 8), y: (4, 8)}
    plan = gc.compile(loss, feed_shapes=shapes)
    gc.constant(1.0)  # ops are only added, never changed: what loss reaches is the same
    assert gc.compile(loss, feed_shapes=shapes) is plan and plan.reuses == 1

    def mark(g):
        return None

    assert gc.compile(loss, feed_shapes=shapes, passes=[mark]) is not plan
    assert gc.compile(loss, feed_shapes=shapes, optimize=1) is not plan
    assert gc.compile(loss, feed_shapes=shapes, backend="reference") is not plan
    assert plan.reuses == 1


def test_kept_plans_do_not_keep_their_graph_alive():
    import gc as pygc
    import weakref

    with gc.Graph().as_default() as g:
        x = gc.placeholder(gc.float32, (None, 3))
        gc.compile(gc.reduce_sum(x * 2.0), feed_shapes={x: (2, 3)})
    ref = weakref.ref(g)
    del g, x
    pygc.collect()
    assert ref() is None
