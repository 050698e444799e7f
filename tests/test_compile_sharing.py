"""What a deep model's compile shares between identical layers, and what it frees: one
FusedKernel (one rendering, one entry point) per structure of fused group, pointer tables
of a plan split into parts made from data, and the compiler's working graph freed when the
plan is built. Speed is measured by ``python -m benchmarks --workload compile-scaling``;
these tests check what is shared and that results do not change."""

from __future__ import annotations

import gc as collector
import re

import numpy as np
import pytest

import graphc as gc
from graphc.backends import host_compile, numpy_backend

WIDTH = 16


def _mlp(depth):
    x = gc.placeholder(gc.float32, (None, WIDTH), name="x")
    y = gc.placeholder(gc.float32, (None, WIDTH), name="y")
    h = x
    for i in range(depth):
        w = gc.Variable(gc.random_normal((WIDTH, WIDTH), stddev=0.3, seed=i))
        b = gc.Variable(gc.zeros((WIDTH,)))
        h = gc.relu(h @ w + b)
    loss = gc.reduce_mean((h - y) ** 2)
    train = gc.train.AdamOptimizer(1e-2).minimize(loss)
    return x, y, loss, train


def _fused_steps(plan):
    return [s for s in plan.steps if s.kind == "fused" and s.loop_shape]


def test_identical_layers_share_one_fused_kernel(monkeypatch):
    rendered = []
    render = host_compile._render
    monkeypatch.setattr(host_compile, "_KERNELS", {})
    monkeypatch.setattr(host_compile, "_RENDERED", {})
    monkeypatch.setattr(
        host_compile, "_render", lambda *a, **k: rendered.append(1) or render(*a, **k)
    )
    with gc.Graph().as_default():
        x, y, loss, train = _mlp(8)
        plan = gc.compile([train, loss], feed_shapes={x: (64, WIDTH), y: (64, WIDTH)})
    kernels = [host_compile.fused_kernel(s, plan.slots) for s in _fused_steps(plan)]
    kernels = [k for k in kernels if k is not None]
    distinct = {id(k) for k in kernels}
    # each layer fuses its bias add + relu, the relu's gradient, the bias gradient's sum
    # and the Adam updates: 8 layers' groups of each structure are one kernel
    assert len(kernels) >= 8 * 3
    assert len(distinct) <= len(kernels) // 4
    # a loop is rendered once for all the kernels that share its source (kernels of one
    # source differ in their sizes and strides, which are run-time arguments)
    assert len(rendered) <= len(distinct)
    assert len({k.name for k in kernels}) == len(rendered)
    # the shared kernel is what each step would have had on its own
    for s in _fused_steps(plan):
        shared = host_compile.fused_kernel(s, plan.slots)
        own = host_compile._fused_kernel(s, plan.slots)
        assert shared == own


def test_a_kernel_differs_where_its_steps_differ():
    """Shapes, dtypes and stores are part of the key: no two different groups share."""
    with gc.Graph().as_default():
        a = gc.placeholder(gc.float32, (32, 64), name="a")
        b = gc.placeholder(gc.float32, (32, 32), name="b")
        c = gc.placeholder(gc.float64, (32, 64), name="c")
        outs = [gc.tanh(a) * 2.0 + 1.0, gc.tanh(b) * 2.0 + 1.0, gc.tanh(c) * 2.0 + 1.0]
        plan = gc.compile(outs)
    steps = _fused_steps(plan)
    assert len(steps) == 3
    kernels = [host_compile.fused_kernel(s, plan.slots) for s in steps]
    assert len({id(k) for k in kernels}) == 3
    assert kernels[0].source == kernels[1].source  # same loop, other sizes (run-time dims)
    assert kernels[0].scalars != kernels[1].scalars
    assert kernels[0].source != kernels[2].source  # float vs double


def _train(monkeypatch, chunk_lines, steps=3):
    monkeypatch.setattr(numpy_backend, "CHUNK_LINES", chunk_lines)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, WIDTH)).astype(np.float32)
    Y = rng.standard_normal((64, WIDTH)).astype(np.float32)
    with gc.Graph().as_default() as g:
        x, y, loss, train = _mlp(10)
        with gc.Session(g) as sess:
            sess.run(gc.global_variables_initializer())
            losses = [sess.run([train, loss], {x: X, y: Y})[1] for _ in range(steps)]
            weights = sess.run(gc.trainable_variables())
            sources = [exe.source for exe in sess._cache.values()]
    return losses, weights, sources


@pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)
def test_pointer_tables_as_data_in_a_split_plan_compute_the_same_bits(monkeypatch, tmp_path):
    """Compiled loops in a plan split into parts take their pointer tables from one
    ``make_ptables`` call per part: the same loops over the same buffers, bit for bit."""
    monkeypatch.setenv("GRAPHC_CC_SYNC", "1")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numpy_backend, "_CC_MIN_ELEMS", 1)
    whole = _train(monkeypatch, 10**9)
    parts = _train(monkeypatch, 9)
    split = max(parts[2], key=len)
    assert re.search(r"make_ptables\(PT\d+, \(", split)
    assert "ptable(" not in split.replace("make_ptables(", "")
    assert "make_ptables" not in max(whole[2], key=len)
    assert "ptable(" in max(whole[2], key=len)
    for w, p in zip(whole[0], parts[0], strict=True):
        assert w == p
    for w, p in zip(whole[1], parts[1], strict=True):
        np.testing.assert_array_equal(w, p)
    assert parts[0][-1] < parts[0][0]


def test_compile_leaves_no_cyclic_garbage_of_its_working_graph():
    """The compiler's networkx graph is emptied once the plan is built: what compiling
    leaves behind is freed by reference counting, not by the cyclic collector walking it."""
    with gc.Graph().as_default():
        x, y, loss, train = _mlp(20)
        collector.collect()
        was = collector.isenabled()
        collector.disable()
        try:
            plan = gc.compile([train, loss], feed_shapes={x: (8, WIDTH), y: (8, WIDTH)})
            freed = collector.collect()
        finally:
            if was:
                collector.enable()
    assert plan.stats["nodes_before"] > 900
    assert freed < plan.stats["nodes_before"] // 10


# --- compiled steps' numpy fallbacks, shared by structure --------------------------------------

needs_cc = pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)


def _fallback_only(monkeypatch):
    """Compiled loops planned, their library never loaded: every compiled step runs its
    numpy fallback."""
    monkeypatch.setattr(numpy_backend, "_USE_CC", True)
    monkeypatch.setattr(numpy_backend, "_CC_MIN_ELEMS", 1)
    monkeypatch.setattr(host_compile, "request", lambda kernels, on_ready, background=None: None)


@needs_cc
@pytest.mark.parametrize("chunk_lines", [10**9, 9])
def test_fallbacks_of_identical_layers_share_one_function_and_compute_the_same_bits(
    monkeypatch, chunk_lines
):
    monkeypatch.setattr(numpy_backend, "_USE_CC", False)
    numpy_only = _train(monkeypatch, chunk_lines)
    _fallback_only(monkeypatch)
    shared = _train(monkeypatch, chunk_lines)
    source = max(shared[2], key=len)
    defs = re.findall(r"^def (F\d+)\(", source, re.M)
    calls = re.findall(r"\b(F\d+)\(", source)
    # 10 layers: each structure's function is defined once and called once per layer
    assert defs and len(calls) - len(defs) >= 3 * 10
    # their lines name no slot, kernel or variable of their own: only parameters
    for block in re.findall(r"^def F\d+\(.*?(?=^\S|\Z)", source, re.M | re.S):
        assert not re.search(r"\b[skn]\d+", block)
    for w, s in zip(numpy_only[0], shared[0], strict=True):
        assert w == s
    for w, s in zip(numpy_only[1], shared[1], strict=True):
        np.testing.assert_array_equal(w, s)


@needs_cc
def test_a_kernel_failing_in_a_shared_fallback_names_its_op_and_the_users_line(monkeypatch):
    from graphc.ops import elementwise as E

    _fallback_only(monkeypatch)

    def fails(*args, out=None):
        raise FloatingPointError("boom")

    monkeypatch.setitem(numpy_backend.LOWERINGS, E.TANH, fails)
    x = gc.placeholder(gc.float32, (None, WIDTH))
    h = x
    for _ in range(4):
        h = gc.tanh(h * 2.0 + 1.0)  # the failing line
    with gc.Session() as sess:
        with pytest.raises(gc.OpError) as err:
            sess.run(h, {x: np.ones((64, WIDTH), np.float32)})
        (exe,) = sess._cache.values()
    assert "def F0(" in exe.source
    message = str(err.value)
    assert "tanh" in message and "boom" in message
    assert f"{__file__}:" in message and "float32(64, 16)" in message
