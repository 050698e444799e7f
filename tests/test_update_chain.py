"""Consecutive optimizer updates as one compiled loop (numpy_backend._chain_lines,
host_compile.update_chain_kernel): Adam's m, v and variable updates read the gradient once
and write each buffer once; the variables come out as with one loop per update, or with the
numpy tiles, for float32 and float64, NaN/Inf gradients, plans split into parts, and when the
library is not loaded (the updates run one by one)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends import host_compile, numpy_backend

pytestmark = pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)


def _adam(dtype, grads, optimizer=None):
    """Variables of odd shapes trained by Adam on fed gradients; their values after each step."""
    rng = np.random.default_rng(0)
    shapes = [(37, 23), (5,), (300, 7)]
    gc.reset_default_graph()
    ws = [gc.Variable(rng.standard_normal(s).astype(dtype)) for s in shapes]
    gs = [gc.placeholder(gc.as_dtype(dtype), s) for s in shapes]
    opt = optimizer() if optimizer else gc.train.AdamOptimizer(0.01)
    train = opt.apply_gradients(list(zip(gs, ws, strict=True)))
    out = []
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for step in grads:
            sess.run(train, dict(zip(gs, step, strict=True)))
            out.append(sess.run(ws))
        exe = sess._executable([], [train], dict(zip(gs, grads[0], strict=True)))
        chained = dict(exe._gen._chain_arrays)
    return out, chained


def _grads(dtype, steps=3, special=False):
    rng = np.random.default_rng(1)
    out = []
    for _ in range(steps):
        step = [rng.standard_normal(s).astype(dtype) for s in [(37, 23), (5,), (300, 7)]]
        if special:
            step[0][3, 4], step[0][5, 6], step[2][10, 1] = np.nan, np.inf, -np.inf
        out.append(step)
    return out


def _same(got, want):
    for g_step, w_step in zip(got, want, strict=True):
        for g, w in zip(g_step, w_step, strict=True):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, equal_nan=True)


def _no_chains(monkeypatch):
    monkeypatch.setattr(numpy_backend._Generator, "_chain_lines", lambda self, s, u, lines: lines)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("special", [False, True])
def test_adam_as_one_loop_per_variable_matches_one_loop_per_update(cc, monkeypatch, dtype, special):
    grads = _grads(dtype, special=special)
    got, chained = _adam(dtype, grads)
    assert len(chained) == 3  # one chain per variable
    with monkeypatch.context() as mp:
        _no_chains(mp)
        want, none = _adam(dtype, grads)
    assert not none
    _same(got, want)
    monkeypatch.setattr(numpy_backend, "_USE_CC", False)  # the numpy tiles
    tiles, _ = _adam(dtype, grads)
    _same(got, tiles)


def test_updates_run_one_by_one_until_the_library_is_loaded(cc, monkeypatch):
    grads = _grads(np.float32)
    want, _ = _adam(np.float32, grads)
    # no library ever loads: every chain's D flag is False, each update runs on its own
    monkeypatch.setattr(host_compile, "request", lambda kernels, on_ready, background=None: None)
    got, chained = _adam(np.float32, grads)
    assert chained
    _same(got, want)


def test_a_plan_split_into_parts_passes_the_chain_on(cc, monkeypatch):
    grads = _grads(np.float32)
    want, _ = _adam(np.float32, grads)
    monkeypatch.setattr(numpy_backend, "CHUNK_LINES", 7)  # parts end inside the chains
    got, chained = _adam(np.float32, grads)
    assert chained
    _same(got, want)
    monkeypatch.setattr(host_compile, "request", lambda kernels, on_ready, background=None: None)
    got, _ = _adam(np.float32, grads)
    _same(got, want)


def test_a_later_update_reading_an_earlier_variable_stops_the_chain(cc, monkeypatch):
    # b's update reads a itself (after a's update, by a control dependency): a loop that
    # read every input first would see a's old value, so b's update is not joined
    def run():
        gc.reset_default_graph()
        a = gc.Variable(np.arange(12, dtype=np.float32).reshape(3, 4))
        b = gc.Variable(np.ones((3, 4), np.float32))
        g = gc.placeholder(gc.float32, (3, 4))
        new_a = gc.assign(a, a * 2.0 + g)
        with gc.control_dependencies([new_a.op]):
            new_b = gc.assign(b, b * 0.5 + a.read_value() * 3.0)
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            feed = {g: np.full((3, 4), 0.25, np.float32)}
            for _ in range(2):
                sess.run(gc.group(new_a, new_b), feed)
            return sess.run([a, b])

    got = run()
    monkeypatch.setattr(numpy_backend, "_USE_CC", False)
    want = run()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_other_optimizers_chain_too(cc, monkeypatch):
    grads = _grads(np.float32)
    for make in (
        lambda: gc.train.RMSPropOptimizer(0.01, momentum=0.9),
        lambda: gc.train.AdagradOptimizer(0.1),
        lambda: gc.train.MomentumOptimizer(0.1, 0.9),
    ):
        got, _ = _adam(np.float32, grads, make)
        with monkeypatch.context() as mp:
            mp.setattr(numpy_backend, "_USE_CC", False)
            want, _ = _adam(np.float32, grads, make)
        _same(got, want)


def test_variables_of_one_shape_share_a_loop_and_a_member_heads_no_chain(cc, monkeypatch):
    # a, b, c of one shape, all reading g: a's and b's updates join one loop; c's reads a
    # (after a's update) and stops it. From b, c's update could start a loop of its own, but
    # b's lines do not run when the first loop did, so b heads none.
    def run():
        gc.reset_default_graph()
        rng = np.random.default_rng(8)
        a, b, c = (gc.Variable(rng.standard_normal((6, 5)).astype(np.float32)) for _ in "abc")
        g = gc.placeholder(gc.float32, (6, 5))
        new_a = gc.assign(a, a * 2.0 + g)
        new_b = gc.assign(b, b * 0.5 + g)
        with gc.control_dependencies([new_a.op, new_b.op]):
            new_c = gc.assign(c, c * 0.25 + a.read_value() * g)
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            feed = {g: np.full((6, 5), 0.5, np.float32)}
            for _ in range(3):
                sess.run(gc.group(new_a, new_b, new_c), feed)
            return sess.run([a, b, c])

    got = run()
    monkeypatch.setattr(numpy_backend, "_USE_CC", False)
    want = run()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_adam_over_variables_of_one_shape(cc, monkeypatch):
    rng = np.random.default_rng(9)
    grads = [[rng.standard_normal((30, 20)).astype(np.float32) for _ in range(3)] for _ in range(3)]

    def run():
        gc.reset_default_graph()
        r = np.random.default_rng(10)
        ws = [gc.Variable(r.standard_normal((30, 20)).astype(np.float32)) for _ in range(3)]
        gs = [gc.placeholder(gc.float32, (30, 20)) for _ in range(3)]
        train = gc.train.AdamOptimizer(0.01).apply_gradients(list(zip(gs, ws, strict=True)))
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            out = []
            for step in grads:
                sess.run(train, dict(zip(gs, step, strict=True)))
                out.append(sess.run(ws))
            exe = sess._executable([], [train], dict(zip(gs, grads[0], strict=True)))
            return out, dict(exe._gen._chain_arrays)

    got, chains = run()
    assert len(chains) == 3  # one loop per variable: the variables share no buffer
    monkeypatch.setattr(numpy_backend, "_USE_CC", False)
    _same(got, run()[0])
