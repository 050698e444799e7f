"""Shape and layout ops: cast, reshape, transpose, concat, split, slicing, gather,
one_hot, broadcast, tile, pad, fill, identity, stop_gradient, shape/size.

Ops whose output shape depends on another tensor's run-time shape take that tensor as a
``like`` input (``reshape_like``, ``broadcast_like``, ``fill_like``): gradients need them
when the batch dimension is unknown until a feed arrives."""

from __future__ import annotations

import builtins

import numpy as np

from .. import dtypes as D
from ..errors import GraphcError, ShapeError
from ..ir.node import Tensor
from ..shapes import (
    as_shape,
    broadcast_shapes,
    dims_compatible,
    format_shape,
    fully_known,
    known_rank,
    merge_dim,
    normalize_axis,
    num_elements,
)
from .registry import OpDef, register
from .sources import constant, convert


def _randn(rng, *shape):
    return rng.standard_normal(shape)


# --- cast -------------------------------------------------------------------------------------


def _cast_grad(op, g):
    x = op.inputs[0]
    if x.dtype.is_floating and op.outputs[0].dtype.is_floating:
        return [cast(g, x.dtype)]
    return [None]


def _cast(x, dtype, out=None):
    if out is None:
        return x.astype(dtype.np)
    np.copyto(out, x, casting="unsafe")
    return out


CAST = register(
    OpDef(
        "cast",
        lambda ins, a: [(a["dtype"], ins[0].shape)],
        numpy=_cast,
        expr="(({T}){0})",
        kind="elementwise",
        grad=_cast_grad,
        samples=lambda rng: [([_randn(rng, 3, 4)], {"dtype": D.float32})],
    )
)


def cast(x, dtype, name=None):
    """Convert ``x`` to ``dtype`` (the only way graphc changes a dtype)."""
    x = convert(x)
    dtype = D.as_dtype(dtype)
    if x.dtype is dtype:
        return x
    return CAST(x, name=name, dtype=dtype)


def to_float(x, name=None):
    """``x`` cast to float32 (TF's ``to_float``)."""
    return cast(x, D.float32, name=name)


# --- identity, stop_gradient ------------------------------------------------------------------


def _identity(x, out=None):
    if out is None:
        return x
    np.copyto(out, x)
    return out


IDENTITY = register(
    OpDef(
        "identity",
        lambda ins, a: [(ins[0].dtype, ins[0].shape)],
        numpy=_identity,
        expr="{0}",
        kind="elementwise",
        grad=lambda op, g: [g],
        samples=lambda rng: [([_randn(rng, 3, 4)], {})],
    )
)

STOP_GRADIENT = register(
    OpDef(
        "stop_gradient",
        lambda ins, a: [(ins[0].dtype, ins[0].shape)],
        numpy=_identity,
        expr="{0}",
        kind="elementwise",
        grad=lambda op, g: [None],
        differentiable=False,
        samples=lambda rng: [([_randn(rng, 3, 4)], {})],
    )
)


def identity(x, name=None):
    """A new node with ``x``'s value (a name to fetch, or a point for control dependencies)."""
    return IDENTITY(convert(x), name=name)


def stop_gradient(x, name=None):
    """The value of ``x``, but gradients do not flow through it (``detach`` / ``no_grad``)."""
    return STOP_GRADIENT(convert(x), name=name)


# --- reshape ----------------------------------------------------------------------------------


def _reshape_infer(ins, attrs):
    x = ins[0]
    target = list(attrs["shape"])
    if target.count(-1) > 1:
        raise ShapeError("reshape: at most one dimension may be -1")
    n = num_elements(x.shape)
    known = [d for d in target if d != -1]
    if any(not isinstance(d, int) or d < 0 for d in known):
        raise ShapeError(f"reshape: bad target shape {tuple(target)}")
    if -1 in target:
        rest = int(np.prod(known, dtype=np.int64))
        if n is not None:
            if rest == 0 or n % rest:
                raise ShapeError(f"cannot reshape {n} elements into {tuple(target)}")
            target[target.index(-1)] = n // rest
        else:
            target[target.index(-1)] = None
    elif n is not None and n != int(np.prod(target, dtype=np.int64)):
        raise ShapeError(f"cannot reshape {x.shape} ({n} elements) into {tuple(target)}")
    return [(x.dtype, tuple(target))]


def _reshape_grad(op, g):
    return [reshape_like(g, op.inputs[0])]


def _reshape(x, shape):
    return np.reshape(x, shape)


def _reshape_like(x, like):
    return np.reshape(x, like.shape)


RESHAPE = register(
    OpDef(
        "reshape",
        _reshape_infer,
        numpy=_reshape,
        kind="shape",
        grad=_reshape_grad,
        samples=lambda rng: [
            ([_randn(rng, 3, 4)], {"shape": (2, -1)}),
            ([_randn(rng, 2, 3, 4)], {"shape": (6, 4)}),
        ],
    )
)

RESHAPE_LIKE = register(
    OpDef(
        "reshape_like",
        lambda ins, a: [(ins[0].dtype, ins[1].shape)],
        numpy=_reshape_like,
        kind="shape",
        grad=lambda op, g: [reshape_like(g, op.inputs[0]), None],
        samples=lambda rng: [([_randn(rng, 3, 4), _randn(rng, 2, 6)], {})],
    )
)


def _flatten_batch_infer(ins, attrs):
    x = ins[0]
    if x.shape is None:
        return [(x.dtype, (None, None))]
    if not x.shape:
        raise ShapeError(f"flatten_batch needs a tensor of rank >= 1: {x.describe()}")
    rest = num_elements(x.shape[1:])
    return [(x.dtype, (x.shape[0], rest))]


def _flatten_batch(x):
    return np.reshape(x, (x.shape[0], -1))


# TF's ``reshape(x, [tf.shape(x)[0], -1])`` and ``tf.layers.flatten`` on a tensor whose rank
# is known only when it is fed: keep the first axis, merge the others
FLATTEN_BATCH = register(
    OpDef(
        "flatten_batch",
        _flatten_batch_infer,
        numpy=_flatten_batch,
        kind="shape",
        grad=lambda op, g: [reshape_like(g, op.inputs[0])],
        samples=lambda rng: [([_randn(rng, 2, 3, 4)], {}), ([_randn(rng, 3)], {})],
    )
)


def flatten_batch(x, name=None):
    """``x`` as (first axis, everything else)."""
    return FLATTEN_BATCH(convert(x), name=name)


def _shape_value(shape, what, instead):
    """A shape argument as Python ints. A constant int vector (``gc.shape`` of a tensor whose
    shape is static is one) reads as its value; any other tensor has no value while the
    graph is built, so it is a ShapeError that says what to use instead."""
    if not isinstance(shape, Tensor):
        return shape
    value = shape.op.attrs.get("value") if shape.op.type == "const" else None
    if value is not None and value.ndim == 1 and shape.dtype.is_integer:
        return [int(d) for d in value]
    raise ShapeError(
        f"{what} needs a static shape (a tuple of ints), got {shape.describe()}; for "
        f"a shape known only at run time use {instead}"
    )


def reshape(x, shape, name=None):
    """``shape`` may hold one -1; it is inferred from the element count."""
    x = convert(x)
    shape = _shape_value(shape, "reshape", "gc.reshape_like(x, other_tensor)")
    try:
        shape = tuple(-1 if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        raise ShapeError(
            f"reshape needs a shape of integers (one may be -1), got {list(shape)}"
        ) from None
    if x.shape is not None and tuple(x.shape) == shape:
        return x
    return RESHAPE(x, name=name, shape=shape)


def reshape_like(x, like, name=None):
    """``x`` reshaped to ``like``'s run-time shape."""
    x, like = convert(x), convert(like)
    if fully_known(like.shape):
        return reshape(x, like.shape, name=name)
    return RESHAPE_LIKE(x, like, name=name)


# --- transpose --------------------------------------------------------------------------------


def _transpose_infer(ins, attrs):
    x, perm = ins[0], attrs["perm"]
    if x.shape is None:
        return [(x.dtype, None)]
    if perm is None:  # built on an unknown rank: reverse the axes
        perm = tuple(reversed(builtins.range(len(x.shape))))
    if sorted(perm) != list(builtins.range(len(x.shape))):
        raise ValueError(f"transpose: perm {perm} is not a permutation of {len(x.shape)} axes")
    return [(x.dtype, tuple(x.shape[p] for p in perm))]


def _transpose(x, perm):
    return np.transpose(x, perm)


TRANSPOSE = register(
    OpDef(
        "transpose",
        _transpose_infer,
        numpy=_transpose,
        kind="shape",
        grad=lambda op, g: [
            TRANSPOSE(g, perm=None)
            if op.attrs["perm"] is None
            else transpose(g, tuple(np.argsort(op.attrs["perm"])))
        ],
        samples=lambda rng: [([_randn(rng, 2, 3, 4)], {"perm": (2, 0, 1)})],
    )
)


def transpose(x, perm=None, name=None):
    """Permute axes; ``perm=None`` reverses them (``.T``)."""
    x = convert(x)
    if perm is None:
        if x.shape is None:  # numpy reverses the axes of the fed value
            return TRANSPOSE(x, name=name, perm=None)
        perm = tuple(reversed(builtins.range(len(x.shape))))
    perm = tuple(int(p) % len(perm) for p in perm)
    if perm == tuple(builtins.range(len(perm))):
        return x
    return TRANSPOSE(x, name=name, perm=perm)


def matrix_transpose(x, name=None):
    """Swap the last two axes (a batch of matrices transposed)."""
    x = convert(x)
    r = len(x.shape)
    return transpose(x, tuple(builtins.range(r - 2)) + (r - 1, r - 2), name=name)


# --- expand_dims / squeeze --------------------------------------------------------------------


def expand_dims(x, axis, name=None):
    """Insert a dimension of size 1 at ``axis``."""
    x = convert(x)
    if x.shape is None:  # unknown rank: numpy places a negative axis at run time
        return EXPAND_DIMS(x, name=name, axis=int(axis))
    r = len(x.shape) + 1
    axis = normalize_axis(int(axis), r)
    shape = list(x.shape)
    shape.insert(axis, 1)
    if fully_known(x.shape):
        return reshape(x, shape, name=name)
    return EXPAND_DIMS(x, name=name, axis=axis)


def _expand_dims(x, axis):
    return np.expand_dims(x, axis)


EXPAND_DIMS = register(
    OpDef(
        "expand_dims",
        lambda ins, a: [
            (
                ins[0].dtype,
                None
                if ins[0].shape is None
                else ins[0].shape[: a["axis"]] + (1,) + ins[0].shape[a["axis"] :],
            )
        ],
        numpy=_expand_dims,
        kind="shape",
        grad=lambda op, g: [reshape_like(g, op.inputs[0])],
        samples=lambda rng: [([_randn(rng, 3, 4)], {"axis": 1})],
    )
)


def _squeeze_infer(ins, attrs):
    x, axes = ins[0], attrs["axis"]
    if x.shape is None:
        return [(x.dtype, None)]
    if axes is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    axes = tuple(a % len(x.shape) for a in axes)
    return [(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))]


def _squeeze(x, axis):
    return np.squeeze(x, axis)


SQUEEZE = register(
    OpDef(
        "squeeze",
        _squeeze_infer,
        numpy=_squeeze,
        kind="shape",
        grad=lambda op, g: [reshape_like(g, op.inputs[0])],
        samples=lambda rng: [([_randn(rng, 3, 1, 4)], {"axis": (1,)})],
    )
)


def squeeze(x, axis=None, name=None):
    """Remove dimensions of size 1 (all of them, or those in ``axis``)."""
    x = convert(x)
    if x.shape is None:  # unknown rank: numpy squeezes (and checks) at run time
        axes = (
            None
            if axis is None
            else tuple(int(a) for a in (axis if isinstance(axis, (list, tuple)) else [axis]))
        )
        return SQUEEZE(x, name=name, axis=axes)
    r = len(x.shape)
    if axis is None:
        if any(d is None or isinstance(d, str) for d in x.shape):
            raise ShapeError(f"squeeze without axis needs a fully known shape: {x.describe()}")
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = tuple(
            sorted(
                {
                    normalize_axis(int(a), r)
                    for a in (axis if isinstance(axis, (list, tuple)) else [axis])
                }
            )
        )
        for a in axes:
            if isinstance(x.shape[a], int) and x.shape[a] != 1:
                raise ShapeError(
                    f"squeeze: axis {a} of {x.describe()} has size {x.shape[a]}, not 1"
                )
    if not axes:
        return x
    return SQUEEZE(x, name=name, axis=axes)


# --- concat / split / stack -------------------------------------------------------------------


def _concat_infer(ins, attrs):
    axis = attrs["axis"]
    first = ins[0]
    for t in ins[1:]:
        if t.dtype is not first.dtype:
            raise TypeError(f"concat: mixed dtypes {first.dtype} and {t.dtype}")
    if any(t.shape is None for t in ins):
        return [(first.dtype, None)]
    r = len(first.shape)
    out = list(first.shape)
    total = 0
    for t in ins:
        if len(t.shape) != r:
            raise ValueError(f"concat: ranks differ ({first.shape} and {t.shape})")
        for i, (a, b) in enumerate(zip(out, t.shape)):
            if i != axis and not dims_compatible(a, b):
                raise ValueError(f"concat: shapes {first.shape} and {t.shape} differ in axis {i}")
            if i != axis:
                out[i] = merge_dim(a, b)
        d = t.shape[axis]
        total = total + d if isinstance(total, int) and isinstance(d, int) else None
    out[axis] = total
    return [(first.dtype, tuple(out))]


def _concat(*xs, axis, out=None):
    # out=: the plan gives concat an arena buffer (a fresh 256 KiB array per call, an LSTM's
    # gate gradients, cost page faults on every step)
    return np.concatenate(xs, axis=axis, out=out)


CONCAT = register(
    OpDef(
        "concat",
        _concat_infer,
        numpy=_concat,
        kind="shape",
        grad=lambda op, g: list(split_like(g, op.inputs, axis=op.attrs["axis"])),
        samples=lambda rng: [([_randn(rng, 2, 3), _randn(rng, 2, 5)], {"axis": 1})],
    )
)


def concat(values, axis, name=None):
    """Join tensors along an existing axis."""
    values = [convert(v) for v in values]
    if len(values) == 1:
        return values[0]
    r = values[0].shape and len(values[0].shape)
    return CONCAT(*values, name=name, axis=normalize_axis(int(axis), r) if r else int(axis))


def _split_like_infer(ins, attrs):
    g, axis = ins[0], attrs["axis"]
    if g.shape is not None:  # a negative axis (built on an unknown rank) from the end
        axis = normalize_axis(axis, len(g.shape))
    outs = []
    for t in ins[1:]:
        shape = (
            None
            if g.shape is None or t.shape is None
            else tuple(
                t.shape[i] if i == axis else merge_dim(g.shape[i], t.shape[i])
                for i in builtins.range(len(g.shape))
            )
        )
        outs.append((g.dtype, shape))
    return outs


def _views(x, sizes, axis):
    """Views of ``x`` along ``axis`` (basic slicing: np.split's own Python costs ~10x more)."""
    lead, out, start = (builtins.slice(None),) * axis, [], 0
    for n in sizes:
        out.append(x[lead + (builtins.slice(start, start + n),)])
        start += n
    return tuple(out)


def _split_like_kernel(g, *likes, axis):
    axis = axis % g.ndim  # negative when built on an unknown rank
    return _views(g, [t.shape[axis] for t in likes], axis)


SPLIT_LIKE = register(
    OpDef(
        "split_like",
        _split_like_infer,
        numpy=_split_like_kernel,
        kind="shape",
        grad=lambda op, *gs: (
            [
                concat(
                    [g if g is not None else zeros_like(t) for g, t in zip(gs, op.outputs)],
                    op.attrs["axis"],
                )
            ]
            + [None] * (len(op.inputs) - 1)
        ),
        samples=lambda rng: [
            ([_randn(rng, 2, 8), _randn(rng, 2, 3), _randn(rng, 2, 5)], {"axis": 1})
        ],
    )
)


def split_like(x, likes, axis, name=None):
    """Split ``x`` along ``axis`` into pieces as long as ``likes`` are (run-time shapes)."""
    sizes = [t.shape[axis] if t.shape is not None else None for t in likes]
    if all(isinstance(s, int) for s in sizes):
        return split(x, sizes, axis=axis, name=name)
    out = SPLIT_LIKE(x, *likes, name=name, axis=axis)
    return out if isinstance(out, tuple) else (out,)


def _split_sizes(d, sizes, where):
    """``sizes`` made concrete for a dimension of size ``d``: every entry -1 (two or more)
    splits into that many equal parts, one -1 takes what the others leave (TF's two forms,
    when the dimension or the rank was unknown as the split was built)."""
    if -1 in sizes:
        if len(sizes) > 1 and all(s == -1 for s in sizes):
            if d % len(sizes):
                raise ShapeError(f"split: dimension {where} ({d}) is not divisible by {len(sizes)}")
            return (d // len(sizes),) * len(sizes)
        rest = d - (sum(sizes) + 1)
        if rest < 0:
            raise ShapeError(f"split: sizes {list(sizes)} exceed dimension {where} ({d})")
        sizes = tuple(rest if s == -1 else s for s in sizes)
    if sum(sizes) != d:
        raise ShapeError(f"split: sizes {list(sizes)} do not add up to dimension {where} ({d})")
    return sizes


def _split_infer(ins, attrs):
    x, sizes = ins[0], attrs["sizes"]
    if x.shape is None:
        return [(x.dtype, None)] * len(sizes)
    axis = normalize_axis(attrs["axis"], len(x.shape))
    d = x.shape[axis]
    if isinstance(d, int):
        sizes = _split_sizes(d, sizes, axis)
    elif len(sizes) > 1 and all(s == -1 for s in sizes):
        sizes = (None,) * len(sizes)
    else:
        sizes = tuple(None if s == -1 else s for s in sizes)
    return [(x.dtype, x.shape[:axis] + (s,) + x.shape[axis + 1 :]) for s in sizes]


def _resolve_split(ins, attrs):
    """Concrete sizes and a non-negative axis once the fed shape is known."""
    x = ins[0]
    if x.shape is None:
        return attrs
    axis = normalize_axis(attrs["axis"], len(x.shape))
    d = x.shape[axis]
    sizes = _split_sizes(d, attrs["sizes"], axis) if isinstance(d, int) else attrs["sizes"]
    return {**attrs, "sizes": sizes, "axis": axis}


def _split_kernel(x, sizes, axis):
    if axis < 0 or -1 in sizes:  # built on an unknown rank and not resolved by the plan
        axis = normalize_axis(axis, x.ndim)
        sizes = _split_sizes(x.shape[axis], sizes, axis)
    return _views(x, sizes, axis)


SPLIT = register(
    OpDef(
        "split",
        _split_infer,
        numpy=_split_kernel,
        kind="shape",
        grad=lambda op, *gs: [
            concat(
                [g if g is not None else zeros_like(t) for g, t in zip(gs, op.outputs)],
                op.attrs["axis"],
            )
        ],
        samples=lambda rng: [
            ([_randn(rng, 2, 6)], {"sizes": (1, 2, 3), "axis": 1}),
            ([_randn(rng, 2, 6)], {"sizes": (2, 4), "axis": -1}),
        ],
        extra={"resolve": _resolve_split},
    )
)


def split(value, num_or_size_splits, axis=0, name=None):
    """Split into equal parts (an int) or parts of the given sizes (one may be -1: the
    rest); returns a list. With an unknown rank or dimension, the sizes are checked and
    made concrete when the plan knows the fed shape, as TF checks them at run time."""
    x = convert(value)
    if isinstance(num_or_size_splits, (int, np.integer)):
        n = int(num_or_size_splits)
        if n < 1:
            raise ShapeError(f"split into {n} parts: the number of parts must be positive")
        sizes = (-1,) * n if n > 1 else (-1,)
    else:
        sizes = tuple(int(s) for s in num_or_size_splits)
        if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
            raise ShapeError(
                f"split: sizes {list(sizes)} may hold one -1 (the rest) and no other negative"
            )
    if x.shape is not None:
        axis = normalize_axis(int(axis), len(x.shape))
        if isinstance(x.shape[axis], int):
            sizes = _split_sizes(x.shape[axis], sizes, axis)
    out = SPLIT(x, name=name, sizes=sizes, axis=int(axis))
    return list(out) if isinstance(out, tuple) else [out]


def stack(values, axis=0, name=None):
    """Join tensors along a new axis."""
    values = [convert(v) for v in values]
    if not values:
        raise ShapeError("stack needs at least one tensor")
    if values[0].shape is None:
        return concat([expand_dims(v, int(axis)) for v in values], int(axis), name=name)
    r = known_rank(values[0], "stack") + 1
    axis = normalize_axis(int(axis), r)
    return concat([expand_dims(v, axis) for v in values], axis, name=name)


def unstack(value, num=None, axis=0, name=None):
    """The slices of ``value`` along ``axis``, that axis removed: the inverse of ``stack``.
    ``num`` is needed when that axis's size is not static (TF: "Cannot infer num")."""
    x = convert(value)
    n = num
    if x.shape is not None:
        axis = normalize_axis(int(axis), len(x.shape))
        n = num or x.shape[axis]
    if not isinstance(n, (int, np.integer)):
        raise ShapeError(
            f"unstack cannot infer num from shape {format_shape(x.shape)} (axis {axis}): "
            f"pass num=, the number of slices: {x.describe()}"
        )
    return [squeeze(p, int(axis)) for p in split(x, int(n), axis=axis, name=name)]


# --- slicing (__getitem__) --------------------------------------------------------------------


def _slice_len(d, sl):
    if sl == builtins.slice(None):  # a full slice keeps the dim, symbolic ones ("N") too
        return d
    return len(builtins.range(*sl.indices(d))) if isinstance(d, int) else None


def _normalize_index(key, rank):
    """``key`` as a tuple of ints, slices and None, with the Ellipsis expanded."""
    if not isinstance(key, tuple):
        key = (key,)
    for k in key:
        if isinstance(k, Tensor):
            raise GraphcError("indexing with a tensor is not supported; use gc.gather")
        if not (k is None or k is Ellipsis or isinstance(k, (int, np.integer, builtins.slice))):
            raise GraphcError(f"unsupported index {k!r}: use ints, slices, None and ...")
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > rank:
        raise ShapeError(f"too many indices ({n_real}) for a tensor of rank {rank}")
    out = []
    for k in key:
        if k is Ellipsis:
            out.extend([builtins.slice(None)] * (rank - n_real))
            n_real = rank  # only the first Ellipsis expands
        elif isinstance(k, builtins.slice):
            bounds = (k.start, k.stop, k.step)
            out.append(builtins.slice(*(None if v is None else int(v) for v in bounds)))
        else:
            out.append(k if k is None else int(k))
    out.extend([builtins.slice(None)] * (rank - sum(1 for k in out if k is not None)))
    return tuple(out)


def _getitem_infer(ins, attrs):
    x, key = ins[0], attrs["key"]
    if x.shape is None:
        return [(x.dtype, None)]
    if any(k is Ellipsis for k in key) or sum(k is not None for k in key) > len(x.shape):
        key = _normalize_index(key, len(x.shape))
    shape, dim = [], 0
    for k in key:
        if k is None:
            shape.append(1)
            continue
        d = x.shape[dim]
        if isinstance(k, builtins.slice):
            shape.append(_slice_len(d, k))
        elif isinstance(d, int) and not -d <= k < d:
            raise IndexError(f"index {k} is out of range for dimension {dim} of size {d}")
        dim += 1
    # a key shorter than the rank (as numpy allows) keeps the remaining axes whole
    return [(x.dtype, tuple(shape) + tuple(x.shape[dim:]))]


def _getitem_grad_kernel(g, x, key):
    out = np.zeros(x.shape, dtype=g.dtype)
    out[key] = g
    return out


def _getitem(x, key):
    return x[key]


GETITEM = register(
    OpDef(
        "getitem",
        _getitem_infer,
        numpy=_getitem,
        kind="shape",
        grad=lambda op, g: [GETITEM_GRAD(g, op.inputs[0], key=op.attrs["key"])],
        samples=lambda rng: [
            ([_randn(rng, 4, 5)], {"key": (builtins.slice(1, None, 2), -1)}),
            (
                [_randn(rng, 3, 4, 5)],
                {"key": (None, 0, builtins.slice(None), builtins.slice(None, -1))},
            ),
        ],
    )
)

GETITEM_GRAD = register(
    OpDef(
        "getitem_grad",
        lambda ins, a: [(ins[0].dtype, ins[1].shape)],
        numpy=_getitem_grad_kernel,
        kind="shape",
        grad=lambda op, g: [GETITEM(g, key=op.attrs["key"]), None],
        samples=lambda rng: [
            ([_randn(rng, 2, 5), _randn(rng, 4, 5)], {"key": (builtins.slice(1, None, 2),)})
        ],
    )
)


def getitem(x, key, name=None):
    """``x[key]`` with ints, slices (any step), ``None`` and ``...``."""
    x = convert(x)
    if x.shape is None:  # unknown rank: numpy applies the key at run time
        key = key if isinstance(key, tuple) else (key,)
        for k in key:
            if isinstance(k, Tensor):
                raise GraphcError("indexing with a tensor is not supported; use gc.gather")
        return GETITEM(
            x,
            name=name,
            key=tuple(
                builtins.slice(*(None if v is None else int(v) for v in (k.start, k.stop, k.step)))
                if isinstance(k, builtins.slice)
                else k
                if k is None or k is Ellipsis
                else int(k)
                for k in key
            ),
        )
    key = _normalize_index(key, len(x.shape))
    return GETITEM(x, name=name, key=key)


def slice(input_, begin, size, name=None):  # noqa: A001 - TF's name
    """TF's ``slice``: ``size[i] == -1`` takes the rest of dimension ``i``."""
    key = tuple(builtins.slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))
    return getitem(input_, key, name=name)


def strided_slice(input_, begin, end, strides=None, name=None):
    """TF's ``strided_slice``: ``input_[begin[i]:end[i]:strides[i], ...]``."""
    strides = strides or [1] * len(begin)
    key = tuple(builtins.slice(b, e, s) for b, e, s in zip(begin, end, strides))
    return getitem(input_, key, name=name)


# --- gather / one_hot -------------------------------------------------------------------------


def _gather_infer(ins, attrs):
    params, idx, axis = ins[0], ins[1], attrs["axis"]
    if not idx.dtype.is_integer:
        raise TypeError(f"gather: indices must be integers, got {idx.dtype}")
    if params.shape is None or idx.shape is None:
        return [(params.dtype, None)]
    axis = normalize_axis(axis, len(params.shape))
    return [(params.dtype, params.shape[:axis] + idx.shape + params.shape[axis + 1 :])]


def _gather_grad_kernel(g, idx, params, axis):
    out = np.zeros(params.shape, dtype=g.dtype)
    moved = np.moveaxis(out, axis, 0)
    gm = g.reshape(params.shape[:axis] + (-1,) + params.shape[axis + 1 :]) if idx.ndim != 1 else g
    np.add.at(moved, idx.reshape(-1), np.moveaxis(gm, axis, 0))
    return out


def _gather(p, i, axis):
    return np.take(p, i, axis=axis)


GATHER = register(
    OpDef(
        "gather",
        _gather_infer,
        numpy=_gather,
        kind="other",
        grad=lambda op, g: [
            GATHER_GRAD(g, op.inputs[1], op.inputs[0], axis=op.attrs["axis"]),
            None,
        ],
        samples=lambda rng: [
            ([_randn(rng, 5, 3), np.array([0, 2, 2, 4])], {"axis": 0}),
            ([_randn(rng, 2, 5), np.array([[1, 0], [3, 3]])], {"axis": 1}),
        ],
    )
)

GATHER_GRAD = register(
    OpDef(
        "gather_grad",
        lambda ins, a: [(ins[0].dtype, ins[2].shape)],
        numpy=_gather_grad_kernel,
        grad=lambda op, g: [GATHER(g, op.inputs[1], axis=op.attrs["axis"]), None, None],
        samples=lambda rng: [
            ([_randn(rng, 4, 3), np.array([0, 2, 2, 4]), _randn(rng, 5, 3)], {"axis": 0})
        ],
    )
)


def gather(params, indices, axis=0, name=None):
    """``np.take(params, indices, axis)``; the gradient accumulates over repeated indices."""
    params, indices = convert(params), convert(indices)
    # unknown rank: the axis as given (0, the usual one, needs no rank)
    axis = normalize_axis(int(axis), len(params.shape)) if params.shape is not None else int(axis)
    return GATHER(params, indices, name=name, axis=axis)


def _one_hot_kernel(idx, depth, on, off, axis, dtype):
    eye = np.arange(depth) == idx[..., None]
    out = np.where(eye, np.asarray(on, dtype.np), np.asarray(off, dtype.np))
    return np.moveaxis(out, -1, axis) if axis != -1 else out


def _one_hot_infer(ins, attrs):
    idx = ins[0]
    if not idx.dtype.is_integer:
        raise TypeError(f"one_hot: indices must be integers, got {idx.dtype}")
    if idx.shape is None:
        return [(attrs["dtype"], None)]
    shape = list(idx.shape)
    axis = attrs["axis"]
    shape.insert(len(shape) if axis == -1 else axis, attrs["depth"])
    return [(attrs["dtype"], tuple(shape))]


ONE_HOT = register(
    OpDef(
        "one_hot",
        _one_hot_infer,
        numpy=_one_hot_kernel,
        differentiable=False,
        samples=lambda rng: [
            (
                [np.array([0, 3, 1])],
                {"depth": 4, "on": 1.0, "off": 0.0, "axis": -1, "dtype": D.float32},
            )
        ],
    )
)


def one_hot(indices, depth, on_value=1, off_value=0, axis=-1, dtype=D.float32, name=None):
    """Rows of ``depth`` values: ``on_value`` at each index, ``off_value`` elsewhere."""
    return ONE_HOT(
        convert(indices),
        name=name,
        depth=int(depth),
        on=on_value,
        off=off_value,
        axis=int(axis),
        dtype=D.as_dtype(dtype),
    )


# --- broadcast / tile / pad -------------------------------------------------------------------


def _broadcast_to_infer(ins, attrs):
    return [(ins[0].dtype, broadcast_shapes(ins[0].shape, attrs["shape"]))]


def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape)


def _broadcast_like(x, like):
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, like.shape))


BROADCAST_TO = register(
    OpDef(
        "broadcast_to",
        _broadcast_to_infer,
        numpy=_broadcast_to,
        kind="shape",
        grad=lambda op, g: [g],  # the driver sums the gradient back to x's shape
        samples=lambda rng: [([_randn(rng, 3, 1)], {"shape": (2, 3, 4)})],
    )
)

BROADCAST_LIKE = register(
    OpDef(
        "broadcast_like",
        lambda ins, a: [(ins[0].dtype, broadcast_shapes(ins[0].shape, ins[1].shape))],
        numpy=_broadcast_like,
        kind="shape",
        grad=lambda op, g: [g, None],
        samples=lambda rng: [([_randn(rng, 3, 1), _randn(rng, 3, 4)], {})],
    )
)


def broadcast_to(x, shape, name=None):
    """``x`` broadcast to the static ``shape`` (numpy's rules)."""
    x = convert(x)
    shape = _shape_value(shape, "broadcast_to", "gc.broadcast_like(x, other_tensor)")
    return BROADCAST_TO(x, name=name, shape=tuple(int(d) for d in shape))


def broadcast_like(x, like, name=None):
    """``x`` broadcast to ``like``'s run-time shape."""
    x, like = convert(x), convert(like)
    if (
        x.shape is not None
        and like.shape is not None
        and tuple(x.shape) == tuple(like.shape)
        and fully_known(x.shape)
    ):
        return x
    if fully_known(like.shape):
        return broadcast_to(x, like.shape, name=name)
    return BROADCAST_LIKE(x, like, name=name)


def _tile_infer(ins, attrs):
    x, m = ins[0], attrs["multiples"]
    if x.shape is None:
        return [(x.dtype, (None,) * len(m))]
    if len(m) != len(x.shape):
        raise ValueError(f"tile: {len(m)} multiples for a tensor of rank {len(x.shape)}")
    return [(x.dtype, tuple(d * k if isinstance(d, int) else None for d, k in zip(x.shape, m)))]


def _tile_grad_kernel(g, x, multiples):
    split_shape = []
    for k, d in zip(multiples, x.shape):
        split_shape += [k, d]
    return g.reshape(split_shape).sum(axis=tuple(builtins.range(0, 2 * len(multiples), 2)))


def _tile(x, multiples):
    return np.tile(x, multiples)


TILE = register(
    OpDef(
        "tile",
        _tile_infer,
        numpy=_tile,
        kind="shape",
        grad=lambda op, g: [TILE_GRAD(g, op.inputs[0], multiples=op.attrs["multiples"])],
        samples=lambda rng: [([_randn(rng, 2, 3)], {"multiples": (2, 1)})],
    )
)

TILE_GRAD = register(
    OpDef(
        "tile_grad",
        lambda ins, a: [(ins[0].dtype, ins[1].shape)],
        numpy=_tile_grad_kernel,
        kind="shape",
        grad=lambda op, g: [TILE(g, multiples=op.attrs["multiples"]), None],
        samples=lambda rng: [([_randn(rng, 4, 3), _randn(rng, 2, 3)], {"multiples": (2, 1)})],
    )
)


def tile(x, multiples, name=None):
    """``x`` repeated ``multiples[i]`` times along each axis ``i``."""
    return TILE(convert(x), name=name, multiples=tuple(int(m) for m in multiples))


def _pad_infer(ins, attrs):
    x, p = ins[0], attrs["paddings"]
    if x.shape is None:
        return [(x.dtype, (None,) * len(p))]
    if len(p) != len(x.shape):
        raise ValueError(f"pad: {len(p)} paddings for a tensor of rank {len(x.shape)}")
    return [
        (x.dtype, tuple(d + a + b if isinstance(d, int) else None for d, (a, b) in zip(x.shape, p)))
    ]


def _pad_kernel(x, paddings, mode, constant_values):
    if mode == "constant":
        return np.pad(x, paddings, mode="constant", constant_values=constant_values)
    return np.pad(x, paddings, mode=mode)


def _pad_grad(op, g):
    if op.attrs["mode"] != "constant":
        return [None]
    key = tuple(builtins.slice(a, -b if b else None) for a, b in op.attrs["paddings"])
    return [GETITEM(g, key=key)]


PAD = register(
    OpDef(
        "pad",
        _pad_infer,
        numpy=_pad_kernel,
        kind="shape",
        grad=_pad_grad,
        samples=lambda rng: [
            (
                [_randn(rng, 2, 3)],
                {"paddings": ((1, 0), (2, 1)), "mode": "constant", "constant_values": 0.0},
            )
        ],
    )
)


def pad(tensor, paddings, mode="CONSTANT", constant_values=0, name=None):
    """Pad with ``paddings[i] = (before, after)``; modes CONSTANT, REFLECT, SYMMETRIC
    (gradients for CONSTANT)."""
    mode = mode.lower()
    if mode not in ("constant", "reflect", "symmetric"):
        raise GraphcError(f"pad: unknown mode {mode!r}")
    paddings = tuple((int(a), int(b)) for a, b in paddings)
    return PAD(
        convert(tensor), name=name, paddings=paddings, mode=mode, constant_values=constant_values
    )


# --- fill, zeros, ones, eye, range ------------------------------------------------------------


def _fill(shape, value, dtype):
    return np.full(shape, value, dtype=dtype.np)


def _fill_like(like, value, dtype):
    return np.full(like.shape, value, dtype=dtype.np)


FILL = register(
    OpDef(
        "fill",
        lambda ins, a: [(a["dtype"], a["shape"])],
        numpy=_fill,
        kind="source",
        differentiable=False,
        samples=lambda rng: [([], {"shape": (2, 3), "value": 1.5, "dtype": D.float32})],
    )
)

FILL_LIKE = register(
    OpDef(
        "fill_like",
        lambda ins, a: [(a["dtype"], ins[0].shape)],
        numpy=_fill_like,
        kind="source",
        differentiable=False,
        samples=lambda rng: [([_randn(rng, 2, 3)], {"value": 0.0, "dtype": D.float64})],
    )
)


def fill(dims, value, dtype=None, name=None):
    """A tensor of shape ``dims`` filled with ``value``."""
    dtype = D.as_dtype(dtype) if dtype is not None else D.default_dtype_of(value)
    dims = _shape_value(
        dims,
        "fill (zeros, ones)",  # gc.zeros(gc.shape(x)), as in TF1
        "gc.zeros_like(x), gc.ones_like(x) or gc.fill_like(x, value)",
    )
    shape = as_shape(dims)
    if not fully_known(shape):
        raise ShapeError(f"fill needs a static shape, got {dims}; use gc.fill_like")
    return FILL(
        name=name, shape=tuple(shape), value=np.asarray(value, dtype.np).item(), dtype=dtype
    )


def empty(shape, dtype=D.float32, name=None):
    """A tensor of ``shape`` whose values the program must not rely on (``np.empty``,
    ``torch.empty``): graphc fills it with zeros, so it is deterministic."""
    return fill(shape, 0, dtype=dtype, name=name or "empty")


def zeros(shape, dtype=D.float32, name=None):
    """A constant of ``shape`` filled with 0."""
    return fill(shape, 0, dtype=dtype, name=name or "zeros")


def ones(shape, dtype=D.float32, name=None):
    """A constant of ``shape`` filled with 1."""
    return fill(shape, 1, dtype=dtype, name=name or "ones")


def fill_like(x, value, dtype=None, name=None):
    """A tensor of ``x``'s (run-time) shape filled with ``value``."""
    x = convert(x)
    dtype = D.as_dtype(dtype) if dtype is not None else x.dtype
    if fully_known(x.shape):
        return fill(x.shape, value, dtype=dtype, name=name)
    return FILL_LIKE(x, name=name, value=np.asarray(value, dtype.np).item(), dtype=dtype)


def zeros_like(x, dtype=None, name=None):
    """Zeros of ``x``'s (run-time) shape, in ``x``'s dtype unless ``dtype`` is given."""
    return fill_like(x, 0, dtype=dtype, name=name or "zeros_like")


def ones_like(x, dtype=None, name=None):
    """Ones of ``x``'s (run-time) shape, in ``x``'s dtype unless ``dtype`` is given."""
    return fill_like(x, 1, dtype=dtype, name=name or "ones_like")


def eye(num_rows, num_columns=None, dtype=D.float32, name=None):
    """The identity matrix (``num_rows`` by ``num_columns``, square by default) as a constant."""
    return constant(np.eye(num_rows, num_columns, dtype=D.as_dtype(dtype).np), name=name or "eye")


def range(start, limit=None, delta=1, dtype=None, name=None):  # noqa: A001 - TF's name
    """Like Python's range: ``range(5)``, ``range(2, 10, 3)``."""
    if limit is None:
        start, limit = 0, start
    values = np.arange(start, limit, delta)
    # the Python arguments decide, as for constants: ints give int32, floats float32
    dtype = D.as_dtype(dtype) if dtype is not None else D.default_dtype_of([start, limit, delta])
    return constant(values.astype(dtype.np), name=name or "range")


# --- shape / size as values -------------------------------------------------------------------


def _shape(x, dtype):
    return np.array(x.shape, dtype=dtype.np)


def _size(x, dtype):
    return np.array(x.size, dtype=dtype.np)


SHAPE = register(
    OpDef(
        "shape",
        lambda ins, a: [(a["dtype"], (None if ins[0].shape is None else len(ins[0].shape),))],
        numpy=_shape,
        differentiable=False,
        samples=lambda rng: [([_randn(rng, 2, 3)], {"dtype": D.int32})],
    )
)

SIZE = register(
    OpDef(
        "size",
        lambda ins, a: [(a["dtype"], ())],
        numpy=_size,
        differentiable=False,
        samples=lambda rng: [([_randn(rng, 2, 3)], {"dtype": D.int32})],
    )
)


def shape(x, dtype=D.int32, name=None):
    """The shape as an int tensor: a constant when it is static."""
    x = convert(x)
    if fully_known(x.shape):
        return constant(np.array(x.shape, dtype=D.as_dtype(dtype).np), name=name or "shape")
    return SHAPE(x, name=name, dtype=D.as_dtype(dtype))


def size(x, dtype=D.int32, name=None):
    """The number of elements of ``x``: a constant when its shape is known, else an op."""
    x = convert(x)
    n = num_elements(x.shape)
    if n is not None:
        return constant(np.array(n, dtype=D.as_dtype(dtype).np), name=name or "size")
    return SIZE(x, name=name, dtype=D.as_dtype(dtype))


def rank(x, name=None):
    """The number of dimensions of ``x``: a constant, or for an unknown rank, the size
    of its run-time shape."""
    x = convert(x)
    if x.shape is None:  # known when the value is fed
        return SIZE(shape(x), name=name or "rank", dtype=D.int32)
    return constant(np.int32(len(x.shape)), name=name or "rank")
