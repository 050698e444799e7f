"""Control flow on the cupy backend, with numpy standing in for cupy and the host harness
running the generated kernels (as tests/test_cupy_backend.py): the loop runs on the host,
every body step on the "device" (no body step falls back to the host), and the values,
gradients and variable updates match the numpy backend's."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends import cuda_host
from graphc.backends import cupy_backend as cb

pytestmark = pytest.mark.skipif(
    cuda_host.host_compiler() is None,
    reason="the host harness needs g++ to compile generated kernels",
)

SMALL = {"block": 32, "max_grid": 4}
host_kernels = cuda_host.host_module  # one host build per kernel set, for every test


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as g:
        yield g


@pytest.fixture
def device(monkeypatch):
    """Sessions with backend="cupy" over numpy; records which executables ran a step on the
    host. Returns (plans built by the session, host runs as (executable, op name))."""
    built, host_runs = [], []

    def make(plan, **options):
        exe = cb.CupyExecutable(plan, xp=np, compile_kernels=host_kernels, **SMALL, **options)
        built.append(exe)
        return exe

    real = cb.CupyExecutable._run_on_host

    def on_host(self, step, ctx, buffers, ins):
        host_runs.append((self, step.op.name))
        return real(self, step, ctx, buffers, ins)

    monkeypatch.setattr(cb, "make_cupy_executable", make)
    monkeypatch.setattr(cb.CupyExecutable, "_run_on_host", on_host)
    return built, host_runs


def _bodies(exes):
    """Every body executable under ``exes``, nested bodies included."""
    out, todo = [], [e for exe in exes for e, _ in exe._bodies.values()]
    while todo:
        exe = todo.pop()
        out.append(exe)
        todo += [e for e, _ in exe._bodies.values()]
    return out


def _assert_on_device(built, host_runs, min_bodies=1):
    bodies = _bodies(built)
    assert len(bodies) >= min_bodies
    assert all(not b._host_steps for b in bodies), [b._host_steps for b in bodies]
    assert not [op for exe, op in host_runs if exe in bodies]
    for exe in built:  # the control steps themselves are no host steps
        for step in exe.plan.steps:
            if step.op.name in ("cond", "while_loop", "scan"):
                assert step.index not in exe._host_steps


def _both(fetches, feeds, init=True):
    out = []
    for backend in ("numpy", "cupy"):
        with gc.Session(backend=backend) as sess:
            if init:
                sess.run(gc.global_variables_initializer())
            out.append(sess.run(fetches, feeds))
    return out


def _close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_scan_lstm_forward_gradients_and_training_run_their_bodies_on_the_device(device):
    built, host_runs = device
    rng = np.random.default_rng(0)
    n_in, units = 5, 8
    xs = gc.placeholder(gc.float32, (None, 4, n_in), name="xs")  # time, batch, inputs
    w = gc.Variable(rng.normal(size=(n_in + units, 4 * units)).astype(np.float32) * 0.3)
    b = gc.Variable(np.zeros(4 * units, np.float32))

    def cell(carry, x):
        c, h = carry
        i, f, g, o = gc.split(gc.concat([x, h], 1) @ w + b, 4, axis=1)
        c = gc.sigmoid(f + 1.0) * c + gc.sigmoid(i) * gc.tanh(g)
        return (c, gc.sigmoid(o) * gc.tanh(c))

    zeros = gc.zeros((4, units))
    _, hs = gc.scan(cell, xs, initializer=(zeros, zeros))
    loss = gc.reduce_mean((hs - 0.25) ** 2)
    grads = gc.gradients(loss, [w, b])
    train = gc.train.GradientDescentOptimizer(0.5).minimize(loss)
    feed = {xs: rng.normal(size=(6, 4, n_in)).astype(np.float32)}
    want, got = _both([hs, loss] + grads, feed)
    _close(got, want)
    built.clear()
    losses = []
    for backend in ("numpy", "cupy"):
        with gc.Session(backend=backend) as sess:
            sess.run(gc.global_variables_initializer())
            losses.append([sess.run([train, loss], feed)[1] for _ in range(5)])
            losses[-1].append(sess.run(loss, feed))
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    assert losses[1][-1] < losses[1][0]
    _assert_on_device(built, host_runs, min_bodies=2)  # the forward and the reverse scan


def test_while_loops_decide_on_the_host_and_iterate_on_the_device(device):
    built, host_runs = device
    x = gc.placeholder(gc.float64, (), name="x")
    root = gc.while_loop(lambda y: gc.abs(y * y - x) > 1e-12, lambda y: 0.5 * (y + x / y), [x])
    n = gc.placeholder(gc.int32, ())
    i, total = gc.while_loop(
        lambda i, s: i < n, lambda i, s: (i + 1, s + i), (gc.constant(0), gc.constant(0))
    )
    v = gc.placeholder(gc.float64, (3,))
    grad = gc.gradients(
        gc.while_loop(lambda k, y: k < 3, lambda k, y: (k + 1, y * v), (0, v))[1], v
    )[0]
    for feeds in ({x: 2.0, n: 5, v: [1.0, 2.0, -0.5]}, {x: 9.0, n: 0, v: [0.5, 0.5, 3.0]}):
        want, got = _both([root, i, total, grad], feeds, init=False)
        _close(got, want, rtol=1e-12, atol=0)
    assert got[1] == 0 and abs(got[0] - 3.0) < 1e-12
    _assert_on_device(built, host_runs, min_bodies=4)


def test_cond_assigns_the_device_variable_only_in_the_taken_branch(device):
    built, host_runs = device
    p = gc.placeholder(gc.bool, ())
    w = gc.Variable(np.array([1.0, 2.0], np.float32))
    xs = gc.placeholder(gc.float32, (None,))
    picked = gc.cond(p, lambda: w.assign_add([1.0, 1.0]), lambda: w * 0.0)
    mapped = gc.cond(p, lambda: gc.map_fn(lambda e: e * e, xs), lambda: -xs)
    for backend in ("numpy", "cupy"):
        with gc.Session(backend=backend) as sess:
            sess.run(gc.global_variables_initializer())
            assert sess.run(picked, {p: False}).tolist() == [0.0, 0.0]
            assert sess.run(w).tolist() == [1.0, 2.0]
            assert sess.run(picked, {p: True}).tolist() == [2.0, 3.0]
            assert sess.run(picked, {p: True}).tolist() == [3.0, 4.0]
            assert sess.run(w).tolist() == [3.0, 4.0]
            assert sess.run(mapped, {p: True, xs: [1.0, 2.0, 3.0]}).tolist() == [1.0, 4.0, 9.0]
            assert sess.run(mapped, {p: False, xs: [1.0, 2.0]}).tolist() == [-1.0, -2.0]
    _assert_on_device(built, host_runs, min_bodies=4)


def test_a_plan_with_a_control_op_is_not_captured_as_a_cuda_graph():
    i = gc.while_loop(lambda i: i < 3, lambda i: i + 1, [gc.constant(0)])
    plan = gc.compile(i, backend="cupy")
    exe = cb.CupyExecutable(plan, xp=np, compile_kernels=host_kernels, cuda_graph=True, **SMALL)
    assert "loops on the host" in exe.capture_refused and not exe._cuda_graph
