"""Fused groups compiled for the CPU (backends/host_compile) against the numpy tiles they
replace: the same values to float rounding, NaN, Inf and signed zeros included, for every
elementwise op with a scalar expression, broadcasting, and each final reduction."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

import graphc as gc
from graphc.backends import host_compile, numpy_backend
from graphc.ops import elementwise as E

pytestmark = pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e30, 0.5, -2.5, 88.0, -104.0])


def _values(rng, shape, dtype):
    a = rng.standard_normal(shape) * 3
    flat = a.reshape(-1)
    flat[: len(SPECIAL)] = SPECIAL[: flat.size]
    return rng.permutation(flat).reshape(shape).astype(dtype)


def _both(fetches, feeds, monkeypatch):
    """Results with the numpy tiles and with compiled loops."""
    monkeypatch.setattr(numpy_backend, "_USE_CC", False)
    with gc.Session() as sess:
        want = sess.run(fetches, feeds)
    monkeypatch.setattr(numpy_backend, "_USE_CC", True)
    with gc.Session() as sess:
        got = sess.run(fetches, feeds)
    return want, got


def _close(want, got, rtol, atol=1e-37):
    for w, g in zip(want, got, strict=True):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_array_equal(np.isnan(w), np.isnan(g))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        # signed zeros: where numpy gives -0.0, so does the loop
        np.testing.assert_array_equal(np.signbit(w[w == 0]), np.signbit(g[w == 0]))


UNARY = [
    op
    for op in E.__dict__.values()
    if isinstance(op, type(E.EXP))
    and op.kind == "elementwise"
    and isinstance(op.expr, str)
    and "{1}" not in op.expr
    and op.name not in ("logical_not", "is_nan", "is_finite")
]
BINARY = [E.ADD, E.SUBTRACT, E.MULTIPLY, E.DIVIDE, E.POW, E.MAXIMUM, E.MINIMUM, E.MOD, E.FLOORDIV]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_elementwise_op_matches_numpy_with_nan_and_inf(cc, monkeypatch, dtype):
    rng = np.random.default_rng(0)
    x = gc.placeholder(dtype, (40, 33), name="x")
    y = gc.placeholder(dtype, (33,), name="y")
    outs = []
    with np.errstate(all="ignore"):
        for op in UNARY:  # each op fused with a multiply after it (a group of two)
            outs.append(op(x) * 1.5)
        for op in BINARY:
            outs.append(op(x * 1.0, y))
        outs.append(gc.where(x > y, x * 2.0, y - 1.0))
        feeds = {x: _values(rng, (40, 33), dtype), y: _values(rng, (33,), dtype)}
        want, got = _both(outs, feeds, monkeypatch)
    rtol = 4e-6 if dtype == np.float32 else 1e-13
    failed = []
    for op, w, g in zip([*UNARY, *BINARY, "where"], want, got, strict=True):
        name = getattr(op, "name", op)
        try:
            _close([w], [g], rtol * (10 if name in ("pow", "erf") else 1))
        except AssertionError as e:
            failed.append(f"{name}: {str(e)[:300]}")
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize(
    "reduce,axis,keepdims",
    [
        (gc.reduce_sum, None, False),
        (gc.reduce_sum, 0, False),
        (gc.reduce_sum, 1, True),
        (gc.reduce_mean, (0, 2), False),
        (gc.reduce_mean, 2, False),
        (gc.reduce_max, 1, False),
        (gc.reduce_min, None, True),
        (gc.reduce_max, (0, 1), False),
        (gc.reduce_prod, 2, False),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_final_reductions_match_numpy(cc, monkeypatch, reduce, axis, keepdims, dtype):
    rng = np.random.default_rng(1)
    x = gc.placeholder(dtype, (30, 7, 50), name="x")
    b = gc.placeholder(dtype, (7, 1), name="b")
    finite = rng.standard_normal((30, 7, 50)).astype(dtype)
    special = finite.copy()
    special[3, 2, 5], special[9, 0, 0], special[0, 6, 49] = np.nan, np.inf, -np.inf
    for data in (finite, special):
        with np.errstate(all="ignore"):
            t = gc.tanh(x * 0.5 + b)
            want, got = _both(
                [reduce(t, axis=axis, keepdims=keepdims), t],
                {x: data, b: np.linspace(-1, 1, 7, dtype=dtype)[:, None]},
                monkeypatch,
            )
        _close(want, got, 2e-5)


def test_the_chain_runs_as_one_compiled_call(cc, monkeypatch):
    x = gc.placeholder(gc.float32, (None,), name="x")
    s = gc.reduce_sum(gc.sqrt(gc.abs(gc.tanh(gc.exp(-x * x) * 3.0 + 1.0) ** 2 - 0.5) + 1.0))
    X = np.random.default_rng(2).standard_normal(100_000).astype(np.float32)
    with gc.Session() as sess:
        sess.run(s, {x: X})
        exe = sess._executable([s], [], {x: X})
        assert exe._gen.compiled, "the chain's fused step compiled"
        assert all(exe._gen.ns[f"C{i}"] is not None for i in exe._gen.compiled)
        np.testing.assert_allclose(
            sess.run(s, {x: X}),
            float(
                np.sqrt(np.abs(np.tanh(np.exp(-X * X) * 3 + 1) ** 2 - 0.5) + 1)
                .astype(np.float64)
                .sum()
            ),
            rtol=1e-5,
        )
        assert "C0(Q0)" in exe.source.replace(" ", "") or "(Q" in exe.source


def test_non_contiguous_feeds_and_training(cc, monkeypatch):
    rng = np.random.default_rng(3)
    big = rng.standard_normal((64, 40)).astype(np.float32)
    x = gc.placeholder(gc.float32, (64, 20), name="x")
    w = gc.Variable(rng.standard_normal((20, 8)).astype(np.float32), name="w")
    loss = gc.reduce_mean(gc.tanh(x @ w) ** 2)
    train = gc.train.AdamOptimizer(0.01).minimize(loss)
    results = {}
    for use in (False, True):
        monkeypatch.setattr(numpy_backend, "_USE_CC", use)
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            results[use] = [sess.run([train, loss], {x: big[:, ::2]})[1] for _ in range(5)]
            results[use].append(sess.run(w))
            if use:  # Adam's m, v and w updates store into the variables in the loop
                exe = sess._executable([loss], [train], {x: big[:, ::2]})
                assert len(exe._gen._folded) >= 3 and ":= V.get(" in exe.source
    np.testing.assert_allclose(results[True][-1], results[False][-1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results[True][:-1], results[False][:-1], rtol=1e-4)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: gc.train.GradientDescentOptimizer(0.1),
        lambda: gc.train.MomentumOptimizer(0.1, 0.9),
        lambda: gc.train.RMSPropOptimizer(0.01),
    ],
)
def test_optimizer_updates_agree_with_the_numpy_path(cc, monkeypatch, optimizer):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((32, 16)).astype(np.float32)
    W0 = rng.standard_normal((16, 24)).astype(np.float32)
    results = {}
    for use in (False, True):
        monkeypatch.setattr(numpy_backend, "_USE_CC", use)
        with gc.Graph().as_default():
            x = gc.placeholder(gc.float32, (32, 16), name="x")
            w = gc.Variable(W0, name="w")
            loss = gc.reduce_sum(gc.sigmoid(x @ w) ** 2)
            train = optimizer().minimize(loss)
            with gc.Session() as sess:
                sess.run(gc.global_variables_initializer())
                for _ in range(4):
                    sess.run(train, {x: X})
                results[use] = sess.run(w)
    np.testing.assert_allclose(results[True], results[False], rtol=1e-5, atol=1e-6)


def test_an_lstm_cell_reads_its_split_gates_in_place(cc, monkeypatch):
    rng = np.random.default_rng(5)
    x = gc.placeholder(gc.float32, (16, 8), name="x")
    c0 = gc.placeholder(gc.float32, (16, 8), name="c")
    w = gc.constant(rng.standard_normal((8, 32)).astype(np.float32), name="w")
    i, j, f, o = gc.split(x @ w, 4, axis=1)
    c = c0 * gc.sigmoid(f + 1.0) + gc.sigmoid(i) * gc.tanh(j)
    h = gc.tanh(c) * gc.sigmoid(o)
    loss = gc.reduce_sum(h * h)
    grads = gc.gradients(loss, [x, c0])
    feeds = {
        x: rng.standard_normal((16, 8)).astype(np.float32),
        c0: rng.standard_normal((16, 8)).astype(np.float32),
    }
    want, got = _both([h, c, *grads], feeds, monkeypatch)
    _close(want, got, 1e-5, atol=1e-6)  # gradients: sums of rounded products
    with gc.Session() as sess:
        sess.run(h, feeds)
        exe = sess._executable([h], [], feeds)
        assert any(exe._gen._views_read(s) for s in exe.plan.steps if s.kind == "fused")
        assert ".strides == " in exe.source


def _unrolled_lstm(rng, steps=3, batch=16, depth=5, units=8):
    x = gc.placeholder(gc.float32, (steps, batch, depth), name="x")
    w = gc.Variable(rng.standard_normal((depth + units, 4 * units)).astype(np.float32) * 0.3)
    c = h = gc.zeros((batch, units), gc.float32)
    for t in range(steps):
        i, j, f, o = gc.split(gc.concat([x[t], h], 1) @ w, 4, axis=1)
        c = c * gc.sigmoid(f + 1.0) + gc.sigmoid(i) * gc.tanh(j)
        h = gc.tanh(c) * gc.sigmoid(o)
    loss = gc.reduce_sum(h * h)
    (grad,) = gc.gradients(loss, [w])
    return x, [h, loss, grad]


@pytest.mark.parametrize("compiled", [True, False])
def test_fused_steps_write_their_parts_of_a_concat_in_place(cc, monkeypatch, compiled):
    # an LSTM: h joins the next step's concat([x, h]); the backward's four gate gradients
    # join one matrix. Their fused steps write into the concat's buffer; the concat copies
    # only x. Compiled loops and numpy tiles against the reference executor.
    rng = np.random.default_rng(6)
    x, fetches = _unrolled_lstm(rng)
    feeds = {x: rng.standard_normal((3, 16, 5)).astype(np.float32)}
    monkeypatch.setattr(numpy_backend, "_USE_CC", compiled)
    init = gc.global_variables_initializer()
    with gc.Session(optimize=0) as sess:
        sess.run(init)
        want = sess.run(fetches, feeds)
    with gc.Session() as sess:
        sess.run(init)
        got = sess.run(fetches, feeds)
        again = sess.run(fetches, feeds)  # the second run reuses the arena's views
        exe = sess._executable(fetches, [], feeds)
    gen = exe._gen
    assert gen._part_of and gen._concat_copies
    concats = [s for s in exe.plan.steps if s.op.name == "concat"]
    copies = [c for s in concats for c in gen._concat_copies.get(s.index, [None] * 9)]
    assert len(copies) < sum(len(s.inputs) for s in concats)  # some parts are never copied
    if compiled:
        assert any(gen._out_views(exe.plan.steps[i]) for i in gen.compiled)
    for w, g, a in zip(want, got, again, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a, g)


def test_without_a_compiler_the_numpy_tiles_run(monkeypatch):
    monkeypatch.setenv("GRAPHC_NO_CC", "1")
    assert host_compile.compiler() is None
    assert "GRAPHC_NO_CC" in host_compile.unavailable_reason()
    x = gc.placeholder(gc.float32, (64, 64), name="x")
    y = gc.reduce_sum(gc.exp(x) * 2.0 + 1.0, axis=1)
    feeds = {x: np.ones((64, 64), np.float32)}
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(y, feeds), 64 * (2 * np.e + 1), rtol=1e-6)
        exe = sess._executable([y], [], feeds)
        assert not exe._gen.compiled and "C0" not in exe.source


def test_the_disk_cache_is_reused_and_written_atomically(cc, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    x = gc.placeholder(gc.float32, (300,), name="x")
    y = gc.exp(x) * 2.0 + gc.sin(x)
    feeds = {x: np.linspace(-3, 3, 300, dtype=np.float32)}
    with gc.Session() as sess:
        first = sess.run(y, feeds)
    libs = sorted((tmp_path / "kernels").glob("gc_*.so"))
    assert len(libs) == 1 and not _build_leftovers(tmp_path)
    host_compile._loaded.clear()  # a fresh process: load from disk, no build

    def no_build(*args, **kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(host_compile.subprocess, "run", no_build)
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, feeds), first)
    assert sorted((tmp_path / "kernels").glob("gc_*.so")) == libs


def test_loops_split_over_threads_give_the_single_threaded_results_bit_for_bit(cc, monkeypatch):
    # rows of blocks (a long 1-D loop, a 2-D loop over a concat's part, an in-place
    # optimizer update): each block runs the same code however many threads share them
    monkeypatch.setattr(host_compile, "PARALLEL_MIN_ELEMS", 1)
    rng = np.random.default_rng(7)
    n = 3 * 8192 + 5
    x = gc.placeholder(gc.float32, (n,), name="x")
    m = gc.placeholder(gc.float32, (37, 300), name="m")
    v = gc.Variable(np.zeros(n, np.float32))
    y = gc.tanh(x * 2.0 + 1.0) * gc.exp(-x * x) + gc.sigmoid(x)
    part = gc.concat([m, gc.tanh(m * 0.5) * 3.0], axis=1)
    step = v.assign_sub(gc.sqrt(gc.abs(x)) * 0.1)
    feeds = {
        x: rng.standard_normal(n).astype(np.float32),
        m: rng.standard_normal((37, 300)).astype(np.float32),
    }
    results = {}
    for t in ("1", "2", "3"):
        monkeypatch.setenv("GRAPHC_CC_THREADS", t)
        with gc.Session() as sess:
            sess.run(v.initializer)
            results[t] = sess.run([y, part, step], feeds)
            exe = sess._executable([y, part, step], [], feeds)
            assert exe._gen.compiled
            assert all(k.scalars[-2] == int(t) for k in exe._gen.compiled.values())
    for t in ("2", "3"):
        for a, b in zip(results["1"], results[t], strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_thread_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("GRAPHC_CC_THREADS", "3")
    assert host_compile.threads() == 3
    monkeypatch.setenv("GRAPHC_CC_THREADS", "")
    assert host_compile.threads() >= 1
    monkeypatch.setenv("GRAPHC_CC_THREADS", "many")
    with pytest.warns(UserWarning, match="GRAPHC_CC_THREADS"):
        assert host_compile.threads() == 1


def _build_leftovers(root):
    """A build's source and half-written library, left in the cache."""
    return [p for p in root.rglob("*") if p.suffix in (".cc", ".tmp")]


def _tiny_kernel(name):
    return SimpleNamespace(name=name, source=f'extern "C" void {name}(void** p) {{ (void)p; }}')


def test_builds_of_one_library_at_once_compile_it_once(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    compiles = []
    real = host_compile._compile

    def counted(*args, **kwargs):
        compiles.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(host_compile, "_compile", counted)
    kernels = [_tiny_kernel("gc_test_built_once")]
    with ThreadPoolExecutor(3) as pool:  # each waits on the library's lock file
        libs = list(pool.map(lambda _: host_compile._build(kernels), range(3)))
    assert len(set(libs)) == 1 and libs[0].exists()
    assert len(compiles) == 1
    assert not _build_leftovers(tmp_path)


def test_a_build_outlives_the_process_that_started_it(tmp_path):
    # the process exits (os._exit: no cleanup, no waiting) while its build runs in the
    # background: the compiler's shell still renames the library into the cache
    name = "gc_test_orphan_build"
    code = (
        "import os, time\n"
        "from types import SimpleNamespace\n"
        "from graphc.backends import host_compile as h\n"
        f"k = SimpleNamespace(name={name!r}, source={_tiny_kernel(name).source!r})\n"
        "h.request([k], lambda found: None, background=True)\n"
        "folder = h.cache_dir()\n"
        "while not list(folder.glob('*.cc')):\n"
        "    time.sleep(0.01)\n"
        "time.sleep(0.3)\n"  # the shell starts right after the source is written
        "os._exit(0)\n"
    )
    env = {**os.environ, "GRAPHC_CACHE_DIR": str(tmp_path)}
    env.pop("GRAPHC_CC_SYNC", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    folder = tmp_path / "kernels"
    deadline = time.monotonic() + 120
    while not list(folder.glob("gc_*.so")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (lib,) = folder.glob("gc_*.so")
    assert hasattr(ctypes.CDLL(str(lib)), name)
    while _build_leftovers(tmp_path) and time.monotonic() < deadline:  # the shell's rm
        time.sleep(0.05)
    assert not _build_leftovers(tmp_path)
