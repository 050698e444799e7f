"""The cupy backend's lowerings of shape and indexing ops, keyed by OpDef: each runs on the
device with the array module ``xp`` (cupy, or numpy standing in for it in tests), so the
arrays never leave the device. Elementwise ops, reductions, matmul and assigns are lowered in
``cupy_backend`` itself (generated kernels, cuBLAS); an op in neither table runs its numpy
kernel on the host between a download and an upload.

A lowering is ``fn(xp, node, out, *inputs, **attrs) -> array | tuple``. ``out`` is the step's
planned output buffer when it has exactly one (else None); a lowering that writes into it
allocates nothing, which is what a captured CUDA Graph needs (``ALLOCATION_FREE``). Views
(reshape, squeeze, split…) are copied into their planned buffers by the caller, a device
copy that allocates nothing either."""

from __future__ import annotations

import numpy as np

from ..errors import NumericsError
from ..ops.array import (
    CONCAT,
    EXPAND_DIMS,
    FILL,
    FILL_LIKE,
    FLATTEN_BATCH,
    GATHER,
    GATHER_GRAD,
    GETITEM,
    GETITEM_GRAD,
    ONE_HOT,
    PAD,
    RESHAPE,
    RESHAPE_LIKE,
    SPLIT,
    SPLIT_LIKE,
    SQUEEZE,
    TILE,
    TILE_GRAD,
    TRANSPOSE,
)
from ..ops.linalg import EINSUM, TENSORDOT, TENSORDOT_GRAD, _tensordot_axes, tensordot_grad_with
from ..ops.nn import CLASS_LABELS, ONE_HOT_LIKE
from ..ops.reduce import ARGMAX, ARGMIN, REDUCE_ALL, REDUCE_ANY
from ..ops.state import CHECK_NUMERICS


def _reshape(xp, node, out, x, shape):
    return xp.reshape(x, shape)


def _reshape_like(xp, node, out, x, like):
    return xp.reshape(x, like.shape)


def _transpose(xp, node, out, x, perm):
    return xp.transpose(x, perm)


def _expand_dims(xp, node, out, x, axis):
    return xp.expand_dims(x, axis)


def _squeeze(xp, node, out, x, axis):
    return xp.squeeze(x, axis)


def _concat(xp, node, out, *xs, axis):
    return (
        xp.concatenate(xs, axis=axis, out=out) if out is not None else xp.concatenate(xs, axis=axis)
    )


def _split(xp, node, out, x, sizes, axis):
    return tuple(xp.split(x, [int(i) for i in np.cumsum(sizes)[:-1]], axis=axis))


def _split_like(xp, node, out, g, *likes, axis):
    return _split(xp, node, out, g, [t.shape[axis] for t in likes], axis)


def _gather(xp, node, out, params, idx, axis):
    # cupy wraps integer-array indices out of range where numpy raises (its documented
    # difference, in take and in scatter_add alike), so neither gather nor its gradient
    # touches memory outside the table: _gather_check finds them on the device, without
    # synchronising, and the step fails before it updates anything
    return (
        xp.take(params, idx, axis=axis, out=out)
        if out is not None
        else xp.take(params, idx, axis=axis)
    )


def _gather_grad(xp, node, out, g, idx, params, axis):
    result = xp.zeros(params.shape, dtype=g.dtype)
    moved = xp.moveaxis(result, axis, 0)
    gm = g.reshape(params.shape[:axis] + (-1,) + params.shape[axis + 1 :]) if idx.ndim != 1 else g
    _scatter_add(xp)(moved, idx.reshape(-1), xp.moveaxis(gm, axis, 0))
    return result


def _scatter_add(xp):
    """``np.add.at`` on the host; cupy's own scatter-add on the device."""
    if xp is np or getattr(xp, "__name__", "") != "cupy":
        return np.add.at
    import cupyx

    return cupyx.scatter_add


def _one_hot(xp, node, out, idx, depth, on, off, axis, dtype):
    hot = xp.arange(depth) == idx[..., None]
    result = xp.where(hot, xp.asarray(on, dtype.np), xp.asarray(off, dtype.np))
    return xp.moveaxis(result, -1, axis) if axis != -1 else result


def _getitem(xp, node, out, x, key):
    return x[key]  # basic indexing (slices, ints, None): a view


def _getitem_grad(xp, node, out, g, x, key):
    result = xp.zeros(x.shape, dtype=g.dtype)
    result[key] = g
    return result


def _tile(xp, node, out, x, multiples):
    return xp.tile(x, multiples)


def _tile_grad(xp, node, out, g, x, multiples):
    split_shape = []
    for k, d in zip(multiples, x.shape, strict=True):
        split_shape += [k, d]
    return g.reshape(split_shape).sum(axis=tuple(range(0, 2 * len(multiples), 2)))


def _pad(xp, node, out, x, paddings, mode, constant_values):
    if mode == "constant":
        return xp.pad(x, paddings, mode="constant", constant_values=constant_values)
    return xp.pad(x, paddings, mode=mode)


def _fill(xp, node, out, shape, value, dtype):
    return xp.full(shape, value, dtype=dtype.np)


def _fill_like(xp, node, out, like, value, dtype):
    return xp.full(like.shape, value, dtype=dtype.np)


def _einsum(xp, node, out, *xs, subscripts, output):
    return xp.einsum(",".join(subscripts) + "->" + output, *xs, optimize=len(xs) > 2)


def _tensordot(xp, node, out, a, b, axes):
    return xp.tensordot(a, b, axes=_tensordot_axes(axes, a.ndim, b.ndim))


def _tensordot_grad(xp, node, out, g, a, b, axes, which):
    return tensordot_grad_with(xp, g, a, b, axes, which)


def _flatten_batch(xp, node, out, x):
    return x.reshape(x.shape[0], -1)


def _one_hot_like(xp, node, out, idx, like):
    return (xp.arange(like.shape[-1]) == idx[..., None]).astype(like.dtype)


def _argmax(xp, node, out, x, axis, output_type):
    return xp.argmax(x, axis=axis).astype(output_type.np)


def _argmin(xp, node, out, x, axis, output_type):
    return xp.argmin(x, axis=axis).astype(output_type.np)


def _any(xp, node, out, x, axis, keepdims, **_):
    return xp.any(x, axis=axis, keepdims=keepdims)


def _all(xp, node, out, x, axis, keepdims, **_):
    return xp.all(x, axis=axis, keepdims=keepdims)


def _first_bad(xp, values, bad):
    """(whether any of ``bad`` is set, the flat index of the first, its value in ``values``)
    as one small int64 device array."""
    flat, bad = values.reshape(-1), bad.reshape(-1)
    first = xp.argmax(bad)  # a device scalar: take, not indexing, reads at it
    found = (xp.take(bad, first), first, xp.take(flat, first))
    return xp.stack([v.astype(np.int64) for v in found])


def _gather_check(xp, node, params, idx, axis):
    """Indices out of ``[-n, n)``, found on the device (numpy's IndexError otherwise)."""
    n = params.shape[axis]
    if idx.size == 0:
        return None
    summary = _first_bad(xp, idx, (idx < -n) | (idx >= n))

    def explain(found):
        if not found[0]:
            return None
        return f"index {found[2]} is out of bounds for axis {axis} with size {n}"

    return summary, explain


def _class_labels(xp, node, out, labels, *logits, depth, caller):
    return labels  # checked on the device by _class_labels_check


def _class_labels_check(xp, node, labels, *logits, depth, caller):
    """The labels' range check, computed on the device where the labels are: (whether any
    is bad, the flat index of the first bad one, its value), read back later by the executable
    in one small copy; ``explain`` turns that into the numpy kernel's message."""
    if labels.size == 0:
        return None
    if depth is None:  # the classes are the logits' last dimension (unknown when built)
        depth = logits[0].shape[-1] if logits[0].ndim else 0
    summary = _first_bad(xp, labels, (labels < 0) | (labels >= depth))
    shape = labels.shape

    def explain(found):
        if not found[0]:
            return None
        where = [int(i) for i in np.unravel_index(int(found[1]), shape)]
        return (
            f"{caller}: label {found[2]} at index {where} is outside the valid range "
            f"[0, {depth}) of the {depth} classes"
        )

    return summary, explain


LOWERINGS = {
    RESHAPE: _reshape,
    RESHAPE_LIKE: _reshape_like,
    TRANSPOSE: _transpose,
    EXPAND_DIMS: _expand_dims,
    SQUEEZE: _squeeze,
    CONCAT: _concat,
    SPLIT: _split,
    SPLIT_LIKE: _split_like,
    GATHER: _gather,
    GATHER_GRAD: _gather_grad,
    ONE_HOT: _one_hot,
    GETITEM: _getitem,
    GETITEM_GRAD: _getitem_grad,
    TILE: _tile,
    TILE_GRAD: _tile_grad,
    PAD: _pad,
    FILL: _fill,
    FILL_LIKE: _fill_like,
    EINSUM: _einsum,
    TENSORDOT: _tensordot,
    TENSORDOT_GRAD: _tensordot_grad,
    FLATTEN_BATCH: _flatten_batch,
    ONE_HOT_LIKE: _one_hot_like,
    ARGMAX: _argmax,
    ARGMIN: _argmin,
    REDUCE_ANY: _any,
    REDUCE_ALL: _all,
    CLASS_LABELS: _class_labels,
}


def _check_numerics(xp, ctx, node, out, x, message):
    return x  # checked on the device by _check_numerics_check


def _check_numerics_check(xp, node, x, message):
    """NaN and Inf counts of ``x``, computed on the device; the numpy kernel's error."""
    if x.dtype.kind != "f":
        return None
    summary = xp.stack([xp.isnan(x).sum(), xp.isinf(x).sum()]).astype(np.int64)

    def explain(found):
        if not found.any():
            return None
        return NumericsError(
            f"check_numerics failed: {message} ({int(found[0])} NaN, {int(found[1])} Inf in "
            f"'{node.inputs[0].name}', shape {tuple(x.shape)})",
            node.location,
        )

    return summary, explain


# The stateful ops lowered here: ``fn(xp, ctx, node, out, *inputs, **attrs)`` and the attrs
# predicate of the instances it handles (``cupy_backend.STATE_LOWERINGS``).
STATE_LOWERINGS = {CHECK_NUMERICS: (_check_numerics, lambda attrs: True)}

# Run-time checks of values, keyed by OpDef: ``check(xp, node, *inputs, **attrs)`` returns None
# or ``(summary, explain)``: a small device array computed without synchronising, and a
# function of its host copy that returns the error (a message, or a GraphcError to raise as
# it is), or None when the values were fine. The
# executable reads the summaries back before the run's first variable update (or host step)
# and at its end, so a bad value fails the run before it changes any state, without stopping
# the device in the middle of the step.
CHECKS = {
    GATHER: _gather_check,
    CLASS_LABELS: _class_labels_check,
    CHECK_NUMERICS: _check_numerics_check,
}

# The lowerings that allocate no device memory when their output is planned (views, or
# ``out=``): a plan whose other device lowerings are all here can be captured.
ALLOCATION_FREE = frozenset(
    {RESHAPE, RESHAPE_LIKE, TRANSPOSE, EXPAND_DIMS, SQUEEZE, CONCAT, SPLIT, SPLIT_LIKE, GETITEM}
)
