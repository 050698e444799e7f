"""The generated CUDA kernels' arithmetic, run on the CPU: every elementwise op of the registry
in every dtype its rule accepts, reductions, and fused groups, against numpy.

The kernels are compiled once, all in one shared library, from exactly the source the cupy
backend hands NVRTC, with ``cuda_host_shim.h`` standing in for the CUDA runtime (real
threads per block, real barriers). Launches use tiny blocks and grids so the grid-stride
loops and the shared-memory reduction tree take several turns."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import dtypes as D
from graphc.backends import cuda_codegen as cg
from graphc.backends import cuda_host
from graphc.ops.registry import REGISTRY

pytestmark = pytest.mark.skipif(
    cuda_host.host_compiler() is None,
    reason="the host harness needs g++ to compile generated kernels",
)

SHAPE = (5, 7)
BROADCAST = [(5, 7), (7,), (5, 1)]  # operand k of a broadcasting case has shape k % 3
EW = {"block": 4, "max_grid": 2}  # 8 threads for 35 elements: the loop turns 5 times
RED = {"block": 8}

# relative tolerance per result dtype: results computed in the same precision as numpy may
# still differ by the last bits of libm's and numpy's own exp/log/sin implementations
RTOL = {D.float16: 2.0**-10, D.float32: 2.0**-21, D.float64: 2.0**-48}


def _sample_range(op):
    """Per operand, the finite range of the op's own samples — its valid domain (log > 0,
    divisors > 0…) — and the NaN/Inf values they hold (is_nan's samples are made of them)."""
    arrays, _ = op.samples(np.random.default_rng(0))[0]
    ranges = []
    for a in arrays:
        a = np.asarray(a, np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-2.0, 2.0)
        ranges.append((lo, hi, tuple(np.unique(a[~np.isfinite(a)]))))
    return ranges


def _values(rng, dtype, shape, lo, hi, special=(), nonnegative=False):
    if dtype is D.bool_:
        return rng.random(shape) > 0.5
    x = rng.uniform(lo, hi, shape)
    if nonnegative:
        x = np.abs(x)
    if dtype.is_integer:  # small integers of the domain's sign: no overflow
        x = np.clip(np.trunc(x * 2), -3, 3)
        x = np.abs(x) if dtype.np.kind == "u" else x
    elif special:
        x.flat[: len(special)] = special
    return np.ascontiguousarray(x.astype(dtype.np))


def _case_inputs(op, dtypes, attrs, layout, seed):
    rng = np.random.default_rng(seed)
    ranges = _sample_range(op)
    # C leaves float -> unsigned conversion of negatives undefined (numpy wraps): avoid it
    unsigned_target = "dtype" in attrs and attrs["dtype"].np.kind == "u"
    shapes = (
        [SHAPE] * len(dtypes)
        if layout == "flat"
        else [BROADCAST[k % 3] for k in range(len(dtypes))]
    )
    return [
        _values(rng, d, s, *ranges[min(k, len(ranges) - 1)], nonnegative=unsigned_target)
        for k, (d, s) in enumerate(zip(dtypes, shapes, strict=True))
    ]


def _ew_cases():
    cases = []
    for op, dtypes, attrs, out in cg.registry_signatures():
        for layout in ("flat", "broadcast") if len(dtypes) > 1 else ("flat",):
            cases.append((op, dtypes, attrs, out, layout))
    return cases


EW_CASES = _ew_cases()


def _ew_launch(op, dtypes, attrs, out, inputs):
    group = cg.single_op_group(op, dtypes, out, attrs)
    full = np.broadcast_shapes(*(a.shape for a in inputs))
    return cg.elementwise_launch(group, full, [a.shape for a in inputs], **EW)


RED_OPS = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"]
RED_DTYPES = [D.float16, D.float32, D.float64, D.int32, D.int8, D.int64, D.uint8]
RED_AXES = [((6, 40), (1,)), ((40, 6), (0,)), ((6, 40), (0, 1)), ((3, 4, 20), (0, 2))]


def _red_input(dtype, shape, seed, op_name):
    rng = np.random.default_rng(seed)
    if op_name == "reduce_prod":  # products stay representable (no signed overflow)
        if dtype.is_floating:
            x = rng.uniform(0.9, 1.1, shape)
        elif dtype.np.kind == "u":
            x = rng.choice([1, 3], shape, p=[0.9, 0.1])
        else:
            x = rng.choice([-1, 1, 2], shape, p=[0.3, 0.65, 0.05])
    elif dtype.is_floating:
        x = rng.uniform(-2, 2, shape)
    else:
        x = rng.integers(0 if dtype.np.kind == "u" else -9, 9, shape)
    return x.astype(dtype.np)


def _red_group(op, dtype, axes):
    return cg.Group((dtype,), (), (), cg.Reduction(op, 0, axes))


RED_CASES = [
    (name, d, shape, axes, two_stage)
    for name in RED_OPS
    for d in RED_DTYPES
    for shape, axes in RED_AXES
    for two_stage in (False, True)
]


def _red_plan(name, dtype, shape, axes, two_stage):
    group = _red_group(REGISTRY[name], dtype, axes)
    # two_stage: split every row over several blocks (as for a few long rows on a GPU)
    return cg.reduction_plan(
        group, shape, [shape], min_rows_per_pass=10**9 if two_stage else 0, cols_per_thread=1, **RED
    )


def _chain(x):
    """The benchmark's kind of elementwise chain: twelve ops, then a sum."""
    y = gc.sin(x) * 0.5 + 1.0
    y = gc.exp(-y * y) - gc.tanh(x)
    y = gc.sqrt(gc.abs(y) + 1e-3) * gc.sigmoid(x)
    return y


def _fused_cases():
    """(name, build(feeds) -> (nodes, outputs), feed arrays): groups built with the public API."""
    rng = np.random.default_rng(3)

    def chain():
        x = gc.placeholder(gc.float32, (64, 33))
        y = _chain(x)
        return [x], [y], gc.reduce_sum(y)

    def mlp_forward():
        x = gc.placeholder(gc.float32, (16, 10))
        b = gc.placeholder(gc.float32, (10,))
        return [x, b], [gc.relu(x + b)], None

    def mlp_backward():
        h = gc.placeholder(gc.float32, (16, 10))
        g = gc.placeholder(gc.float32, (16, 10))
        return [h, g], [gc.where(gc.greater(h, 0.0), g, gc.zeros_like(g))], None

    def bias_grad():
        h = gc.placeholder(gc.float32, (16, 10))
        g = gc.placeholder(gc.float32, (16, 10))
        dz = gc.where(gc.greater(h, 0.0), g, gc.zeros_like(g))
        return [h, g], [dz], gc.reduce_sum(dz, axis=0)

    def sgd():
        w = gc.placeholder(gc.float32, (10, 4))
        gw = gc.placeholder(gc.float32, (10, 4))
        return [w, gw], [w - 0.01 * gw], None

    def softmax_rows():
        z = gc.placeholder(gc.float32, (8, 12))
        m = gc.placeholder(gc.float32, (8, 1))
        e = gc.exp(z - m)
        return [z, m], [e], gc.reduce_sum(e, axis=1, keepdims=True)

    def half_chain():
        x = gc.placeholder(gc.float16, (9, 13))
        y = gc.cast(gc.square(x) * 0.5 + x, gc.float32)
        return [x], [y], gc.reduce_mean(y, axis=1)

    cases = [chain, mlp_forward, mlp_backward, bias_grad, sgd, softmax_rows, half_chain]
    return [(f.__name__, f, rng) for f in cases]


def _group_nodes(feeds, result):
    """The ops between ``feeds`` and ``result`` that are not sources (fills are constants)."""
    feed_ops = {t.op for t in feeds}
    nodes, seen, stack = [], set(), [result.op]
    while stack:
        op = stack.pop()
        if op in seen or op in feed_ops:
            continue
        seen.add(op)
        if op.op.kind in ("elementwise", "reduction"):
            nodes.append(op)
        stack.extend(t.op for t in op.inputs)
    return nodes


@pytest.fixture(scope="module")
def host():
    """Every kernel of this file in one shared library (one g++ run)."""
    kernels = []
    for k, (op, dtypes, attrs, out, layout) in enumerate(EW_CASES):
        kernels.append(
            _ew_launch(op, dtypes, attrs, out, _case_inputs(op, dtypes, attrs, layout, k)).kernel
        )
    for case in RED_CASES:
        kernels += [launch.kernel for launch in _red_plan(*case)[0]]
    return cuda_host.HostModule(kernels)


@pytest.mark.parametrize(
    "case",
    range(len(EW_CASES)),
    ids=[
        f"{c[0].name}-{'-'.join(d.name for d in c[1])}"
        f"{'-to-' + c[2]['dtype'].name if c[2] else ''}-{c[4]}"
        for c in EW_CASES
    ],
)
def test_every_elementwise_op_matches_numpy(host, case):
    op, dtypes, attrs, out, layout = EW_CASES[case]
    inputs = _case_inputs(op, dtypes, attrs, layout, case)
    launch = _ew_launch(op, dtypes, attrs, out, inputs)
    want = np.asarray(op.numpy(*inputs, **attrs))
    got = np.empty(want.shape, out.np)
    host.launch(launch, inputs + [got])
    assert want.dtype == got.dtype
    if out.is_floating:
        np.testing.assert_allclose(got, want, rtol=RTOL[out], atol=0, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "case",
    RED_CASES,
    ids=[
        f"{n}-{d.name}-{'x'.join(map(str, s))}-axes{''.join(map(str, a))}-{2 if t else 1}pass"
        for n, d, s, a, t in RED_CASES
    ],
)
def test_reductions_match_numpy(host, case):
    name, dtype, shape, axes, two_stage = case
    op = REGISTRY[name]
    x = _red_input(dtype, shape, RED_CASES.index(case), name)
    launches, scratch, acc = _red_plan(*case)
    assert (scratch is not None) == two_stage
    # half reductions accumulate in float32 and round once (numpy's float16 sum would
    # round after every addition): the reference does the same
    ref = x.astype(np.float32) if dtype is D.float16 else x
    want = np.asarray(op.numpy(ref, axis=axes, keepdims=False)).astype(dtype.np)
    got = np.empty(want.shape, dtype.np)
    if scratch is None:
        host.launch(launches[0], [x, got])
    else:
        partials = np.empty(scratch, acc.np)
        host.launch(launches[0], [x, partials])
        host.launch(launches[1], [partials, got])
    if dtype.is_floating:
        # float sums are reassociated (a tree instead of numpy's pairwise order)
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype] * 64, atol=RTOL[dtype] * 64)
    else:
        np.testing.assert_array_equal(got, want)


def test_nan_propagates_like_numpy():
    """maximum/minimum and reduce_max/min let NaN win, as numpy does (CUDA's fmaxf would not)."""
    x = np.array([[1.0, np.nan, -2.0, 3.0]] * 3, np.float32)
    y = np.array([[np.nan, 0.0, -1.0, 4.0]] * 3, np.float32)
    binary = {
        name: cg.elementwise_launch(
            cg.single_op_group(REGISTRY[name], (D.float32, D.float32), D.float32),
            x.shape,
            [x.shape, y.shape],
            **EW,
        )
        for name in ("maximum", "minimum")
    }
    reduce = {
        name: cg.reduction_plan(
            _red_group(REGISTRY[name], D.float32, (1,)), x.shape, [x.shape], **RED
        )[0][0]
        for name in ("reduce_max", "reduce_min")
    }
    module = cuda_host.HostModule([la.kernel for la in [*binary.values(), *reduce.values()]])
    for name, launch in binary.items():
        got = np.empty_like(x)
        module.launch(launch, [x, y, got])
        np.testing.assert_array_equal(got, REGISTRY[name].numpy(x, y))
    for launch in reduce.values():
        got = np.empty(3, np.float32)
        module.launch(launch, [x, got])
        assert np.isnan(got).all()


def _run_fused(module, case):
    """Launch a fused case's kernels; returns the elementwise outputs and the reduction."""
    got = [np.empty(t.shape, t.dtype.np) for t in case["outs"]]
    module.launch(case["launch"], case["ins"] + got)
    reduced = case["reduced"]
    if reduced is None:
        return got, None
    out = np.empty(tuple(reduced.shape), reduced.dtype.np)
    launches, scratch, acc = case["reduction"]
    if scratch is None:
        module.launch(launches[0], case["rins"] + [out])
    else:
        partials = np.empty(scratch, acc.np)
        module.launch(launches[0], case["rins"] + [partials])
        module.launch(launches[1], [partials, out])
    return got, out


@pytest.fixture(scope="module")
def fused():
    """Each fused case built in its own graph, run by the reference session, and turned into
    kernels with ``group_from_nodes``; all kernels in one host module."""
    cases = {}
    for name, build, rng in _fused_cases():
        graph = gc.Graph()
        with graph.as_default():
            feeds, outs, reduced = build()
            values = [rng.uniform(0.1, 2.0, t.shape).astype(t.dtype.np) for t in feeds]
            feed = dict(zip(feeds, values, strict=True))
            group, inputs = cg.group_from_nodes(_group_nodes(feeds, outs[0]), outs)
            rgroup, rinputs = (
                cg.group_from_nodes(_group_nodes(feeds, reduced), [reduced])
                if reduced is not None
                else (None, [])
            )
            with gc.Session(graph=graph) as sess:
                want = sess.run(outs + ([reduced] if reduced is not None else []), feed)
                # non-feed inputs of a group are constants (weak scalars, zeros_like fills)
                consts = [t for t in {*inputs, *rinputs} if t not in feed]
                arrays = {**feed, **dict(zip(consts, sess.run(consts, feed), strict=True))}
        ins = [np.ascontiguousarray(arrays[t]) for t in inputs]
        rins = [np.ascontiguousarray(arrays[t]) for t in rinputs]
        full = tuple(outs[0].shape)
        case = {
            "outs": outs,
            "ins": ins,
            "rins": rins,
            "reduced": reduced,
            "want": want,
            "launch": cg.elementwise_launch(group, full, [a.shape for a in ins], **EW),
        }
        if reduced is not None:
            case["reduction"] = cg.reduction_plan(rgroup, full, [a.shape for a in rins], **RED)
        cases[name] = case
    kernels = [c["launch"].kernel for c in cases.values()]
    kernels += [
        la.kernel for c in cases.values() if c["reduced"] is not None for la in c["reduction"][0]
    ]
    return cuda_host.HostModule(kernels), cases


@pytest.mark.parametrize("name", [name for name, _, _ in _fused_cases()])
def test_fused_groups_match_the_reference_session(fused, name):
    module, cases = fused
    case = cases[name]
    got, reduced = _run_fused(module, case)
    for g, w in zip(got, case["want"], strict=False):
        np.testing.assert_allclose(g, w, rtol=RTOL[D.as_dtype(g.dtype)] * 4, atol=1e-6)
    if reduced is not None:
        dtype = case["reduced"].dtype
        np.testing.assert_allclose(reduced, case["want"][-1], rtol=RTOL[dtype] * 64, atol=1e-5)
