"""The CUDA generator: its indexing rules, its naming, and compile checks of everything it can
emit — every registry elementwise op in every dtype, reductions, fused model groups — for
sm_80 and sm_90 with NVRTC (the compiler cupy uses) and with nvcc, batched into one
translation unit per compiler call. A deliberately broken kernel must fail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import graphc as gc
from graphc import dtypes as D
from graphc.backends import cuda_codegen as cg
from graphc.backends import cuda_compile
from graphc.ops.registry import REGISTRY, OpDef

ARCHS = ["sm_80", "sm_90"]


def _compilers():
    out = []
    reason_nvrtc = "NVRTC not installed (pip install nvidia-cuda-nvrtc, the dev extra)"
    out.append(
        pytest.param(
            "nvrtc", marks=pytest.mark.skipif(cuda_compile.nvrtc() is None, reason=reason_nvrtc)
        )
    )
    out.append(
        pytest.param(
            "nvcc",
            marks=pytest.mark.skipif(
                cuda_compile.nvcc() is None, reason="nvcc (CUDA toolkit) not on PATH"
            ),
        )
    )
    return out


def _compile(compiler, arch, source):
    fn = cuda_compile.nvrtc_compile if compiler == "nvrtc" else cuda_compile.nvcc_compile
    return fn(source, arch)


# --- indexing --------------------------------------------------------------------------------


def test_same_shape_inputs_are_read_flat_and_scalars_at_zero():
    ix = cg.plan_indexing((4, 5), [(4, 5), (), (1, 1)])
    assert ix.modes == ("flat", "scalar", "scalar")
    assert (ix.rows, ix.cols, ix.strides) == (20, 1, ())


def test_broadcast_inputs_get_zero_strides_and_contiguous_dims_merge():
    ix = cg.plan_indexing((2, 3, 4), [(2, 3, 4), (4,)])
    assert ix.modes == ("flat", "strided")
    # (2, 3) merge for the bias (both stride 0), then the last axis is separate
    assert ix.dims == (6, 4) and ix.strides == ((0, 1),)
    ix = cg.plan_indexing((2, 3, 4), [(3, 1)])
    assert ix.dims == (2, 3, 4) and ix.strides == ((0, 1, 0),)


def test_reducing_leading_axes_reads_through_strides():
    ix = cg.plan_indexing((6, 5), [(6, 5)], reduce_axes=(0,))
    assert ix.modes == ("strided",)
    assert (ix.rows, ix.cols) == (5, 6)
    assert ix.dims == (5, 6) and ix.strides == ((1, 5),)
    ix = cg.plan_indexing((6, 5), [(6, 5)], reduce_axes=(1,))
    assert ix.modes == ("flat",) and (ix.rows, ix.cols) == (6, 5)


def test_one_source_serves_every_batch_size():
    group = cg.single_op_group(REGISTRY["add"], (D.float32, D.float32), D.float32)
    small = cg.elementwise_launch(group, (8, 10), [(8, 10), (10,)])
    large = cg.elementwise_launch(group, (512, 10), [(512, 10), (10,)])
    assert small.kernel == large.kernel
    assert small.scalars != large.scalars


def test_kernel_names_are_content_hashes_that_follow_the_dtype():
    f32 = cg.single_op_group(REGISTRY["exp"], (D.float32,), D.float32)
    f64 = cg.single_op_group(REGISTRY["exp"], (D.float64,), D.float64)
    k32, k64 = (cg.elementwise_kernel(g, ("flat",), 0) for g in (f32, f64))
    assert k32.name.startswith("gc_ew_") and k32.name != k64.name
    assert k32 == cg.elementwise_kernel(f32, ("flat",), 0)
    assert "double" in k64.body and "double" not in k32.body


def test_generated_identifiers_never_contain_user_names():
    x = gc.placeholder(gc.float32, (3, 4), name='x_evil";system("rm")')
    y = gc.exp(x, name="y__user_name_xyz") * 2.0
    group, inputs = cg.group_from_nodes([y.op, y.op.inputs[0].op], [y])
    kernel = cg.elementwise_launch(group, (3, 4), [(3, 4), ()]).kernel
    assert inputs[0] is x
    assert "evil" not in kernel.source and "user_name" not in kernel.source


def test_half_is_computed_in_float_and_rounded_after_every_op():
    group = cg.Group(
        (D.float16,),
        (cg.Step(REGISTRY["exp"], (0,), D.float16), cg.Step(REGISTRY["square"], (1,), D.float16)),
        (2,),
    )
    body = cg.elementwise_kernel(group, ("flat",), 0).body
    assert "const float v1 = gc_h2f(gc_f2h(exp(v0)));" in body
    assert "out0[i] = gc_f2h(v2);" in body


def test_float32_division_stays_in_float_and_integer_division_in_double():
    div = REGISTRY["divide"]
    f = cg.elementwise_kernel(
        cg.single_op_group(div, (D.float32,) * 2, D.float32), ("flat", "flat"), 0
    ).body
    i = cg.elementwise_kernel(
        cg.single_op_group(div, (D.int32,) * 2, D.float64), ("flat", "flat"), 0
    ).body
    assert "((float)v0 / v1)" in f and "double" not in f
    assert "((double)v0 / v1)" in i


def test_integer_max_starts_from_the_dtype_minimum():
    assert cg.reduction_identity(REGISTRY["reduce_max"], D.int8) == "-128"
    assert cg.reduction_identity(REGISTRY["reduce_min"], D.uint8) == "255"
    assert cg.reduction_identity(REGISTRY["reduce_max"], D.int64) == "(-9223372036854775807LL - 1)"
    assert cg.reduction_identity(REGISTRY["reduce_max"], D.float32) == "-INFINITY"


def test_few_long_rows_split_over_blocks_and_many_rows_do_not():
    group = cg.Group((D.float16,), (), (), cg.Reduction(REGISTRY["reduce_mean"], 0, (0,)))
    launches, scratch, acc = cg.reduction_plan(group, (1 << 20,), [(1 << 20,)])
    assert len(launches) == 2 and scratch == (1, launches[0].grid[1]) and acc is D.float32
    assert launches[0].kernel.out_dtypes == (D.float32,)  # partials in float
    assert launches[1].kernel.out_dtypes == (D.float16,)
    assert launches[1].scalars[-1] == 1 << 20  # the mean divides by all
    group = cg.Group((D.float32,), (), (), cg.Reduction(REGISTRY["reduce_sum"], 0, (1,)))
    launches, scratch, _ = cg.reduction_plan(group, (4096, 10), [(4096, 10)])
    assert len(launches) == 1 and scratch is None and launches[0].block == 32


def test_group_from_nodes_refuses_what_has_no_scalar_form():
    x = gc.placeholder(gc.float32, (3, 4))
    y = gc.matmul(x, gc.transpose(x))
    with pytest.raises(gc.UnimplementedError, match="not an elementwise op"):
        cg.group_from_nodes([y.op], [y])


# --- compile checks --------------------------------------------------------------------------


def _registry_kernels():
    """One kernel per registry signature and layout, and every reduction in every dtype."""
    kernels, broadcast = [], set()
    for op, dtypes, attrs, out in cg.registry_signatures():
        group = cg.single_op_group(op, dtypes, out, attrs)
        shapes = [(4, 5)] * len(dtypes)
        kernels.append(cg.elementwise_launch(group, (4, 5), shapes).kernel)
        # broadcast and scalar operands: index code is the same for every dtype, so once per op
        if len(dtypes) > 1 and op not in broadcast:
            broadcast.add(op)
            shapes = [(4, 5), (5,), ()][: len(dtypes)]
            kernels.append(cg.elementwise_launch(group, (4, 5), shapes).kernel)
    for name in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"):
        for dtype in D.ALL:
            if dtype is D.bool_:
                continue
            # strided two-pass, flat one-pass
            for shape, axes in [((1 << 16, 4), (0,)), ((4096, 64), (1,))]:
                group = cg.Group((dtype,), (), (), cg.Reduction(REGISTRY[name], 0, axes))
                kernels += [la.kernel for la in cg.reduction_plan(group, shape, [shape])[0]]
    return kernels


def _model_kernels():
    """Fused groups of the benchmark models: the elementwise chain and an MLP training step."""
    from graphc.ops.nn import relu

    x = gc.placeholder(gc.float32, (1 << 20,))
    y = gc.sqrt(gc.abs(gc.exp(-((gc.sin(x) * 0.5 + 1.0) ** 2)) - gc.tanh(x)) + 1e-3) * gc.sigmoid(x)
    total = gc.reduce_sum(y)
    h = gc.placeholder(gc.float32, (64, 100))
    b = gc.placeholder(gc.float32, (100,))
    g = gc.placeholder(gc.float32, (64, 100))
    act = relu(h + b)
    dz = gc.where(gc.greater(act, 0.0), g, gc.zeros_like(g))
    db = gc.reduce_sum(dz, axis=0)
    z = gc.placeholder(gc.float32, (64, 10))
    zmax = gc.placeholder(gc.float32, (64, 1))
    softmax_denominator = gc.reduce_sum(gc.exp(z - zmax), axis=1, keepdims=True)

    def ops_of(t, stop):
        seen, stack, out = set(), [t.op], []
        while stack:
            op = stack.pop()
            if op in seen or op in stop:
                continue
            seen.add(op)
            if op.op.kind in ("elementwise", "reduction"):
                out.append(op)
                stack.extend(i.op for i in op.inputs)
        return out

    kernels = []
    for result, feeds, full in [
        (y, [x], (1 << 20,)),
        (act, [h, b], (64, 100)),
        (dz, [h, b, g], (64, 100)),
    ]:
        group, ins = cg.group_from_nodes(ops_of(result, {f.op for f in feeds}), [result])
        kernels.append(cg.elementwise_launch(group, full, [i.shape for i in ins]).kernel)
    for result, feeds, full in [
        (total, [x], (1 << 20,)),
        (db, [h, b, g], (64, 100)),
        (softmax_denominator, [z, zmax], (64, 10)),
    ]:
        group, ins = cg.group_from_nodes(ops_of(result, {f.op for f in feeds}), [result])
        kernels += [la.kernel for la in cg.reduction_plan(group, full, [i.shape for i in ins])[0]]
    return kernels


@pytest.fixture(scope="module")
def everything():
    """Every kernel in one translation unit, compiled by each available compiler for each
    architecture at once (NVRTC runs outside the GIL, nvcc in its own process)."""
    with gc.Graph().as_default():
        kernels = _registry_kernels() + _model_kernels()
    source = cg.module_source(kernels)
    jobs = [
        (c, a)
        for c in ("nvrtc", "nvcc")
        for a in ARCHS
        if (cuda_compile.nvrtc() if c == "nvrtc" else cuda_compile.nvcc()) is not None
    ]
    with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        futures = {job: pool.submit(_compile, *job, source) for job in jobs}
        return kernels, {job: f.result() for job, f in futures.items()}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("compiler", _compilers())
def test_every_kernel_compiles_for_the_gpu(everything, compiler, arch):
    kernels, results = everything
    assert len({k.name for k in kernels}) > 400
    result = results[(compiler, arch)]
    assert result.ok, result.log[:4000]
    assert result.cubin_bytes > 0


@pytest.mark.parametrize("compiler", _compilers())
def test_a_broken_kernel_fails_to_compile(compiler):
    bad = OpDef("bad", infer=None, expr="no_such_function({0})", kind="elementwise")
    good = cg.single_op_group(REGISTRY["exp"], (D.float32,), D.float32)
    kernels = [
        cg.elementwise_kernel(good, ("flat",), 0),
        cg.elementwise_kernel(cg.single_op_group(bad, (D.float32,), D.float32), ("flat",), 0),
    ]
    result = _compile(compiler, "sm_90", cg.module_source(kernels))
    assert not result.ok
    assert "no_such_function" in result.log


def test_single_kernel_source_is_self_contained():
    """What NVRTC gets for one kernel is the prelude plus that kernel, nothing else."""
    group = cg.single_op_group(REGISTRY["sigmoid"], (D.float16,), D.float16)
    kernel = cg.elementwise_kernel(group, ("flat",), 0)
    assert kernel.source.startswith(cg.PRELUDE) and kernel.source.endswith(kernel.body)
    assert np.char.count(kernel.source, "__global__") == 1
