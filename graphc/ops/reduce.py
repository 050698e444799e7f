"""Reductions over axes, argmax/argmin, and ``sum_to_like`` (the autodiff driver's
tool for undoing broadcasting)."""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError
from ..shapes import (
    broadcast_axes,
    fully_known,
    normalize_axes,
    normalize_axis,
    num_elements,
)
from .array import (
    broadcast_like,
    cast,
    expand_dims,
    identity,
    reshape,
    size,
    squeeze,
    stop_gradient,
)
from .elementwise import divide, equal, exp, log, not_equal
from .registry import OpDef, register
from .sources import constant, convert


def _reduce_infer(ins, attrs):
    x, axes, keep = ins[0], attrs["axis"], attrs["keepdims"]
    if x.dtype.is_bool and attrs.get("numeric", True):
        raise DTypeError(f"cannot reduce a bool tensor numerically: {x.describe()} (cast it first)")
    if x.shape is None:  # axes None: every axis of a tensor whose rank is known only at run time
        return [(x.dtype, () if axes is None and not keep else None)]
    axes = _resolve_axes(ins, attrs)["axis"]
    if keep:
        return [(x.dtype, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))]
    return [(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))]


def _resolve_axes(ins, attrs):
    """The axes as sorted non-negative ints once the input's rank is known: a reduction
    built on a tensor of unknown rank keeps the axes as written (``None``: all of them,
    negative ones from the end) until the plan knows the fed shape."""
    x, axes = ins[0], attrs["axis"]
    if x.shape is None:
        return attrs
    return {**attrs, "axis": normalize_axes(axes, len(x.shape))}


def _unknown_rank_axes(axis):
    """``axis`` as written, in an order that ``_keep`` can put back one by one: the
    non-negative axes ascending, then the negative ones from -1 down."""
    axes = (axis,) if isinstance(axis, int) else tuple(int(a) for a in axis)
    return tuple(sorted({a for a in axes if a >= 0})) + tuple(
        sorted({a for a in axes if a < 0}, reverse=True)
    )


def _keep(op, t):
    """``t`` (a reduced value) with the reduced axes put back as size 1."""
    if op.attrs["keepdims"] or op.attrs["axis"] is None:  # None: t is a scalar, it broadcasts
        return t
    for a in op.attrs["axis"]:
        t = expand_dims(t, a)
    return t


def _sum_grad(op, g):
    return [broadcast_like(_keep(op, g), op.inputs[0])]


def _mean_grad(op, g):
    x, y = op.inputs[0], op.outputs[0]
    n_in, n_out = num_elements(x.shape), num_elements(y.shape)
    if n_in is not None and n_out is not None:
        scale = n_out / max(n_in, 1)
        return [broadcast_like(_keep(op, g) * scale, x)]
    count = cast(divide(size_of(x), size_of(y)), g.dtype)
    return [broadcast_like(_keep(op, divide(g, count)), x)]


def _extreme_grad(op, g):
    x, y = op.inputs[0], op.outputs[0]
    hit = cast(equal(x, _keep(op, y)), x.dtype)  # ties share the gradient, as in TF
    count = _keep(op, reduce_sum(hit, axis=op.attrs["axis"], keepdims=op.attrs["keepdims"]))
    return [hit * _keep(op, g) / count]


def _prod_grad(op, g):
    # d prod / d x_i = prod / x_i; exact for non-zero inputs
    x, y = op.inputs[0], op.outputs[0]
    return [broadcast_like(_keep(op, g * y), x) / x]


def _reduced(fn, x, axis, keepdims, out):
    """``fn`` over ``axis`` in x's dtype, written into ``out`` when one is given."""
    r = np.asarray(fn(x, axis=axis, keepdims=keepdims), dtype=x.dtype)
    if out is not None:
        out[...] = r
        return out
    return r


def _max(x, axis, keepdims, out=None, **_):
    return _reduced(np.max, x, axis, keepdims, out)


def _min(x, axis, keepdims, out=None, **_):
    return _reduced(np.min, x, axis, keepdims, out)


def _prod(x, axis, keepdims, out=None, **_):
    return _reduced(np.prod, x, axis, keepdims, out)


def _any(x, axis, keepdims, out=None, **_):
    return _reduced(np.any, x, axis, keepdims, out)


def _all(x, axis, keepdims, out=None, **_):
    return _reduced(np.all, x, axis, keepdims, out)


def _sum(x, axis, keepdims, out=None, **_):
    return np.sum(x, axis=axis, keepdims=keepdims, dtype=x.dtype, out=out)


def _mean(x, axis, keepdims, out=None, **_):
    if x.dtype.kind == "f":
        return np.mean(x, axis=axis, keepdims=keepdims, dtype=x.dtype, out=out)
    r = np.mean(x, axis=axis, keepdims=keepdims).astype(x.dtype)
    if out is not None:
        out[...] = r
        return out
    return r


def _samples(rng):
    return [
        ([rng.standard_normal((3, 4))], {"axis": (1,), "keepdims": False}),
        ([rng.standard_normal((2, 3, 4))], {"axis": (0, 2), "keepdims": True}),
        ([rng.standard_normal((3, 4))], {"axis": (0, 1), "keepdims": False}),
    ]


def reduction(name, kernel, grad, c_init=None, c_combine=None, c_finalize=None):
    """``c_init``/``c_combine`` (over ``{a}``, ``{b}``) are the reduction's scalar form for
    generated kernels; ``c_finalize`` (over ``{a}`` and the count ``{n}``) ends it."""
    return register(
        OpDef(
            name,
            _reduce_infer,
            numpy=kernel,
            grad=grad,
            kind="reduction",
            samples=_samples,
            extra={
                "c_init": c_init,
                "c_combine": c_combine,
                "c_finalize": c_finalize,
                "resolve": _resolve_axes,
            },
        )
    )


REDUCE_SUM = reduction("reduce_sum", _sum, _sum_grad, "0", "{a} + {b}")
REDUCE_MEAN = reduction("reduce_mean", _mean, _mean_grad, "0", "{a} + {b}", "{a} / {n}")
# NaN wins, as in numpy (CUDA's max/min would drop it)
REDUCE_MAX = reduction(
    "reduce_max", _max, _extreme_grad, "-INFINITY", "(({a} >= {b} || {a} != {a}) ? {a} : {b})"
)
REDUCE_MIN = reduction(
    "reduce_min", _min, _extreme_grad, "INFINITY", "(({a} <= {b} || {a} != {a}) ? {a} : {b})"
)
REDUCE_PROD = reduction("reduce_prod", _prod, _prod_grad, "1", "{a} * {b}")


def _bool_reduce_infer(ins, attrs):
    if not ins[0].dtype.is_bool:
        raise DTypeError(f"expected a bool tensor, got {ins[0].describe()}")
    return _reduce_infer(ins, {**attrs, "numeric": False})


def _bool_samples(rng):
    return [([rng.random((3, 4)) > 0.5], {"axis": (1,), "keepdims": False})]


REDUCE_ANY = register(
    OpDef(
        "reduce_any",
        _bool_reduce_infer,
        numpy=_any,
        kind="reduction",
        differentiable=False,
        samples=_bool_samples,
        extra={"resolve": _resolve_axes},
    )
)
REDUCE_ALL = register(
    OpDef(
        "reduce_all",
        _bool_reduce_infer,
        numpy=_all,
        kind="reduction",
        differentiable=False,
        samples=_bool_samples,
        extra={"resolve": _resolve_axes},
    )
)


def _reduce_fn(opdef, doc):
    def fn(input_tensor, axis=None, keepdims=False, name=None):
        x = convert(input_tensor)
        if x.shape is None:
            # TF1's placeholder("float") of unknown shape: the axes are resolved (and checked)
            # when the plan knows the fed shape
            axes = None if axis is None else _unknown_rank_axes(axis)
            if axes == ():
                return x
            return opdef(x, name=name, axis=axes, keepdims=bool(keepdims))
        axes = normalize_axes(axis, len(x.shape))
        if not axes:
            return x
        return opdef(x, name=name, axis=axes, keepdims=bool(keepdims))

    fn.__name__ = fn.__qualname__ = opdef.name
    fn.__doc__ = doc
    return fn


reduce_sum = _reduce_fn(REDUCE_SUM, "Sum over ``axis`` (None: all axes).")
reduce_mean = _reduce_fn(REDUCE_MEAN, "Mean over ``axis``.")
reduce_max = _reduce_fn(REDUCE_MAX, "Maximum over ``axis``; ties share the gradient.")
reduce_min = _reduce_fn(REDUCE_MIN, "Minimum over ``axis``.")
reduce_prod = _reduce_fn(REDUCE_PROD, "Product over ``axis``.")
reduce_any = _reduce_fn(REDUCE_ANY, "Logical or over ``axis``.")
reduce_all = _reduce_fn(REDUCE_ALL, "Logical and over ``axis``.")


def reduce_logsumexp(input_tensor, axis=None, keepdims=False, name=None):
    """``log(sum(exp(x)))`` computed stably (the max is subtracted first)."""
    x = convert(input_tensor)
    m = stop_gradient(reduce_max(x, axis=axis, keepdims=True))
    s = log(reduce_sum(exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims and x.shape is None:
        return reduce_sum(s, axis=axis, keepdims=False, name=name)  # drop the size-1 axes
    if not keepdims:
        axes = normalize_axes(axis, len(x.shape))
        s = (
            reshape(s, [d for i, d in enumerate(s.shape) if i not in axes])
            if fully_known(s.shape)
            else _squeeze_axes(s, axes)
        )
    return s if name is None else _named(s, name)


def _squeeze_axes(t, axes):
    return squeeze(t, axis=axes)


def _named(t, name):
    return identity(t, name=name)


# --- argmax / argmin --------------------------------------------------------------------------


def _arg_infer(ins, attrs):
    x, axis = ins[0], attrs["axis"]
    if x.shape is None:
        return [(attrs["output_type"], None)]
    axis = _resolve_arg_axis(ins, attrs)["axis"]
    return [(attrs["output_type"], tuple(d for i, d in enumerate(x.shape) if i != axis))]


def _resolve_arg_axis(ins, attrs):
    if ins[0].shape is None:
        return attrs
    return {**attrs, "axis": normalize_axis(attrs["axis"], len(ins[0].shape))}


def _arg_axis(x, axis):
    axis = 0 if axis is None else int(axis)
    return axis if x.shape is None else normalize_axis(axis, len(x.shape))


def _arg_samples(rng):
    return [([rng.standard_normal((3, 4))], {"axis": 1, "output_type": D.int64})]


def _argmax(x, axis, output_type):
    return np.argmax(x, axis=axis).astype(output_type.np)


def _argmin(x, axis, output_type):
    return np.argmin(x, axis=axis).astype(output_type.np)


ARGMAX = register(
    OpDef(
        "argmax",
        _arg_infer,
        differentiable=False,
        kind="reduction",
        samples=_arg_samples,
        extra={"resolve": _resolve_arg_axis},
        numpy=_argmax,
    )
)
ARGMIN = register(
    OpDef(
        "argmin",
        _arg_infer,
        differentiable=False,
        kind="reduction",
        samples=_arg_samples,
        extra={"resolve": _resolve_arg_axis},
        numpy=_argmin,
    )
)


def argmax(input, axis=None, output_type=D.int64, name=None):  # noqa: A002 - TF's name
    """Index of the largest value along ``axis`` (default 0, as in TF)."""
    x = convert(input)
    return ARGMAX(x, name=name, axis=_arg_axis(x, axis), output_type=D.as_dtype(output_type))


def argmin(input, axis=None, output_type=D.int64, name=None):  # noqa: A002
    x = convert(input)
    return ARGMIN(x, name=name, axis=_arg_axis(x, axis), output_type=D.as_dtype(output_type))


# --- sum_to_like: undo broadcasting -----------------------------------------------------------


def _sum_to_like(g, like):
    """``g`` summed over the axes along which ``like`` was broadcast, in ``like``'s shape."""
    axes = broadcast_axes(g.shape, like.shape)
    r = g.sum(axis=axes, keepdims=True) if axes else g
    return r.reshape(like.shape)


SUM_TO_LIKE = register(
    OpDef(
        "sum_to_like",
        lambda ins, a: [(ins[0].dtype, ins[1].shape)],
        numpy=_sum_to_like,
        kind="reduction",
        grad=lambda op, g: [broadcast_like(g, op.inputs[0]), None],
        samples=lambda rng: [([rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 1))], {})],
    )
)


def sum_to_like(g, x):
    """Sum ``g`` over the axes along which ``x`` was broadcast, giving ``x``'s shape."""
    gs, xs = g.shape, x.shape
    if gs is not None and xs is not None and fully_known(gs) and fully_known(xs):
        if tuple(gs) == tuple(xs):
            return g
        axes = broadcast_axes(gs, xs)
        r = reduce_sum(g, axis=axes, keepdims=True) if axes else g
        return reshape(r, xs)
    return SUM_TO_LIKE(g, x)


def size_of(x):
    return size(x)


def count_nonzero(x, axis=None, keepdims=False, dtype=D.int64, name=None):
    x = convert(x)
    nz = cast(not_equal(x, constant(0, dtype=x.dtype)), dtype)
    return reduce_sum(nz, axis=axis, keepdims=keepdims, name=name)
