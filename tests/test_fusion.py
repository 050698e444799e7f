"""Elementwise fusion: the benchmark chain becomes one tiled kernel; boundaries have reasons."""

import math

import numpy as np

import graphc as gc

N = 1 << 18  # 4 tiles of 64K elements: exercises the tile loop, stays fast


def chain(x):
    """The benchmark's 12 elementwise ops, then a sum."""
    y = gc.tanh(gc.exp(-x * x) * 3.0 + 1.0)
    y = gc.sigmoid(y * y - 0.5) * 2.0
    y = gc.sqrt(gc.abs(y) + 1.0) - 1.0
    return gc.reduce_sum(y)


def test_chain_fuses_into_at_most_three_kernels_with_peak_under_three_arrays():
    x = gc.placeholder(gc.float32, (None,))
    s = chain(x)
    plan = gc.compile(s, feed_shapes={x: (N,)})
    assert plan.stats["kernels"] <= 3
    assert plan.stats["peak_bytes"] <= 3 * N * 4
    fused = [st for st in plan.steps if st.kind == "fused"]
    assert fused and fused[-1].body[-1].op.name == "reduce_sum"  # the group ends in the sum


def test_fused_chain_matches_the_reference_across_tiles():
    x = gc.placeholder(gc.float64, (None,))
    s = chain(x)
    X = np.random.default_rng(0).standard_normal(N + 123)  # a ragged last tile
    with gc.Session(optimize=0) as ref, gc.Session(optimize=2) as opt:
        np.testing.assert_allclose(opt.run(s, {x: X}), ref.run(s, {x: X}), rtol=1e-12)


def test_row_tiles_broadcast_a_bias_and_reduce_per_row():
    x = gc.placeholder(gc.float64, (None, 300))
    b = gc.constant(np.linspace(-1, 1, 300))
    rows = gc.reduce_max(gc.tanh(x + b) * 2.0, axis=1)  # reduction off the tiled axis
    cols = gc.reduce_mean(gc.exp(x - b), axis=0)  # ... and across it
    X = np.random.default_rng(1).standard_normal((700, 300))  # 218 rows per tile
    plan = gc.compile([rows, cols], feed_shapes={x: X.shape})
    assert sum(st.kind == "fused" for st in plan.steps) == 2
    with gc.Session(optimize=0) as ref, gc.Session(optimize=2) as opt:
        got, want = opt.run([rows, cols], {x: X}), ref.run([rows, cols], {x: X})
        for a, b_ in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b_, rtol=1e-12)


def test_a_value_used_outside_the_group_is_materialized():
    x = gc.placeholder(gc.float32, (8,))
    h = gc.exp(x) * 2.0
    out = gc.matmul(gc.reshape(h, (2, 4)), gc.ones((4, 1)))
    plan = gc.compile([out, gc.reduce_sum(h + 1.0)], feed_shapes={x: (8,)})
    fused = [st for st in plan.steps if st.kind == "fused"]
    assert len(fused) == 1 and len(fused[0].outputs) == 2


def test_fusion_boundaries_name_their_reason():
    x = gc.placeholder(gc.float32, (4, 4))
    y = gc.matmul(gc.exp(x) + 1.0, x)
    plan = gc.compile(y, feed_shapes={x: (4, 4)})
    assert any("matmul" in why for _, _, why in plan.boundaries)
    assert "fusion boundaries" in plan.report()


def test_branches_that_meet_fuse_into_one_kernel():
    x = gc.placeholder(gc.float64, (None,))
    y = x * gc.sigmoid(x) + gc.nn.softplus(x) * gc.tanh(x)  # several branches of x
    plan = gc.compile(y, feed_shapes={x: (1 << 16,)})
    assert plan.stats["kernels"] == 1
    # a wide body keeps many values alive: its tiles shrink so its scratch stays small
    assert plan.stats["peak_bytes"] <= 3 * (1 << 16) * 8
    X = np.random.default_rng(2).standard_normal(1 << 16)
    with gc.Session(optimize=0) as ref, gc.Session(optimize=2) as opt:
        np.testing.assert_allclose(opt.run(y, {x: X}), ref.run(y, {x: X}), rtol=1e-12)


def test_groups_that_wait_for_each_other_stay_apart():
    x = gc.placeholder(gc.float64, (6,))
    a = gc.exp(x) + 1.0
    s = gc.reduce_sum(a)  # a reduction outside a's group...
    b = a * s + gc.tanh(x)  # ...that b's group needs: no cycle allowed
    plan = gc.compile(b, feed_shapes={x: (6,)})
    X = np.linspace(-1, 1, 6)
    with gc.Session(optimize=0) as ref, gc.Session(optimize=2) as opt:
        np.testing.assert_allclose(opt.run(b, {x: X}), ref.run(b, {x: X}), rtol=1e-12)
    assert plan.stats["kernels"] >= 2


def test_a_lone_erf_is_a_group_of_its_own_and_a_lone_tanh_is_not():
    # numpy has no erf ufunc (its kernel is a formula of many passes), so erf alone is worth
    # a fused kernel (compiled for the host where a compiler is); tanh alone is one ufunc call
    x = gc.placeholder(gc.float64, (None,))
    e, t = gc.erf(x), gc.tanh(x)
    plan = gc.compile([e, t], feed_shapes={x: (1000,)})
    fused = [st for st in plan.steps if st.kind == "fused"]
    assert [[b.op.name for b in st.body] for st in fused] == [["erf"]]
    X = np.linspace(-6, 6, 1001)
    with gc.Session(optimize=2) as sess:
        got = sess.run(e, {x: X})
    # the fused kernel (libm's erf when compiled, the numpy formula when not) within 3 ulps
    np.testing.assert_array_max_ulp(got, np.array([math.erf(v) for v in X]), maxulp=3)
