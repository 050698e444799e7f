"""Shapes given as tensors, the TF 1.x way: ``tf.zeros(tf.shape(x))``,
``tf.random_normal(tf.shape(z))``, ``tf.reshape(x, [tf.shape(x)[0], -1])``.

graphc ops take static shapes, plus ``*_like`` forms that follow another tensor's run-time
shape. A shape tensor is resolved to one of those when it is built:
  * a value known at build time (a constant, or ``tf.shape`` of a fully known tensor, or an
    element of one) becomes the static shape;
  * ``tf.shape(t)`` of a partly unknown ``t`` becomes "like ``t``";
  * in a reshape list, one element known only at run time becomes ``-1`` (inferred from
    the element count, which gives the same result).
Anything else raises a ShapeError saying graphc needs a static shape.

``tf.range`` with a bound known only at run time (``tf.range(tf.shape(x)[0])``, the classic
"index of each example" idiom) is the one op here whose length is not a shape of a tensor:
it is built as a small user op (``np.arange`` of its run-time scalars), length ``None``."""

from __future__ import annotations

import numpy as np

from ..dtypes import as_dtype, default_dtype_of
from ..errors import ShapeError, user_location
from ..ir.node import Tensor
from ..ops import array as _array
from ..ops import random as _random
from ..ops.sources import CONST, convert


def static_value(t):
    """The numpy value of ``t`` if it is known while the graph is built, else None."""
    if not isinstance(t, Tensor):
        return np.asarray(t)
    op = t.op
    if op.op is CONST:
        return np.asarray(op.attrs["value"])
    if op.op is _array.GETITEM:
        inner = static_value(op.inputs[0])
        if inner is not None:
            return np.asarray(inner[op.attrs["key"]])
        source = _shape_source(op.inputs[0])  # tf.shape(x)[i] with x's dim i static
        if source is not None and source.shape is not None:
            dims = np.array([-1 if d is None or isinstance(d, str) else d for d in source.shape])
            picked = dims[op.attrs["key"]]
            return None if (picked < 0).any() else picked
    return None


def _shape_source(t):
    """``x`` if ``t`` is ``tf.shape(x)`` computed at run time, else None."""
    return t.op.inputs[0] if t.op.op is _array.SHAPE else None


def resolve(shape, what):
    """``(static_dims, None)`` or ``(None, like_tensor)`` for a TF shape argument."""
    if isinstance(shape, Tensor):
        value = static_value(shape)
        if value is not None:
            return tuple(int(d) for d in value.reshape(-1)), None
        like = _shape_source(shape)
        if like is not None:
            return None, like
        raise ShapeError(
            f"{what}: graphc needs a static shape or tf.shape(tensor), got {shape.describe()}",
            user_location(),
        )
    dims, unknown = [], 0
    for d in shape:
        value = static_value(d)
        if value is None:  # known only at run time
            unknown += 1
            dims.append(-1)
        else:
            dims.append(int(value))
    if unknown and dims.count(-1) > 1:
        raise ShapeError(
            f"{what}: graphc can infer one run-time dimension of a shape, not "
            f"{dims.count(-1)}; give the others statically",
            user_location(),
        )
    return tuple(dims), None


def _keeps_batch(tensor, shape):
    """True for ``[tf.shape(tensor)[0], ...]``: the run-time first dim is the tensor's own."""
    first = shape[0] if isinstance(shape, (list, tuple)) and shape else None
    if not isinstance(first, Tensor) or first.op.op is not _array.GETITEM:
        return False
    source = _shape_source(first.op.inputs[0])
    return source is tensor and first.op.attrs["key"] in ((0,), 0)


def reshape(tensor, shape, name=None):
    tensor = convert(tensor)
    if _keeps_batch(tensor, shape):
        # [tf.shape(x)[0], a, -1]: keep the batch, infer -1 from x's static other dims
        rest = tuple(-1 if static_value(d) is None else int(static_value(d)) for d in shape[1:])
        if rest == (-1,) and (tensor.shape is None or tensor.shape[1:].num_elements() is None):
            return _array.flatten_batch(tensor, name=name)  # the rest is known when fed
        return _array.reshape(tensor, (-1,) + _infer_rest(tensor, rest), name=name)
    static, like = resolve(shape, "reshape")
    if like is not None:
        return _array.reshape_like(tensor, like, name=name)
    return _array.reshape(tensor, static, name=name)


def _infer_rest(tensor, rest):
    if -1 not in rest:
        return rest
    if rest.count(-1) > 1:
        raise ShapeError(
            f"reshape of {tensor.describe()}: graphc can infer one run-time "
            "dimension of a shape besides the batch, not several",
            user_location(),
        )
    n = tensor.shape[1:].num_elements() if tensor.shape is not None else None
    known = int(np.prod([d for d in rest if d != -1], dtype=np.int64))
    if n is None or known == 0 or n % known:
        raise ShapeError(
            f"reshape of {tensor.describe()} to [batch, {list(rest)}]: the -1 "
            "needs the other dimensions to be static",
            user_location(),
        )
    return tuple(n // known if d == -1 else d for d in rest)


def filled(value, shape, dtype, name, what):
    static, like = resolve(shape, what)
    if like is not None:
        return _array.fill_like(like, value, dtype=dtype, name=name)
    return _array.fill(static, value, dtype=dtype, name=name)


def random(kind, shape, dtype, seed, name, **params):
    """A random draw of a static or run-time shape; tensor ``mean``/``stddev``/``minval``/
    ``maxval`` scale a unit draw instead of being attributes."""
    static, like = resolve(shape, kind)
    tensors = any(isinstance(v, Tensor) for v in params.values())
    if kind == "random_uniform":
        lo, hi = params["minval"], params["maxval"]
        hi = 1.0 if hi is None and tensors else hi
        unit = {"minval": 0.0, "maxval": 1.0} if tensors else {"minval": lo, "maxval": hi}
    else:
        lo, hi = params["mean"], params["stddev"]
        unit = {"mean": 0.0, "stddev": 1.0} if tensors else {"mean": lo, "stddev": hi}
    if like is not None:
        op = {
            "random_normal": _random.RANDOM_NORMAL,
            "truncated_normal": _random.TRUNCATED_NORMAL,
            "random_uniform": _random.RANDOM_UNIFORM,
        }[kind]
        draw = op(
            convert(like),
            name=None if tensors else name,
            shape=None,
            dtype=dtype,
            seed=None if seed is None else int(seed),
            **unit,
        )
    else:
        draw = getattr(_random, kind)(
            static, dtype=dtype, seed=seed, name=None if tensors else name, **unit
        )
    if not tensors:
        return draw
    if kind == "random_uniform":
        return draw * (convert(hi, like=draw) - convert(lo, like=draw)) + lo
    return draw * convert(hi, like=draw) + lo


_runtime_range = None  # the user op behind tf.range of run-time bounds, made on first use


def _arange(start, limit, delta):
    """``np.arange`` of three run-time scalars."""
    return np.arange(start, limit, delta)


def range_(start, limit=None, delta=1, dtype=None, name="range"):
    """TF's ``tf.range``: a constant when every bound is known while the graph is built,
    else a run-time ``np.arange`` of length ``None`` in the bounds' dtype (int32 for
    ``tf.shape`` elements, as TF)."""
    global _runtime_range
    if limit is None:
        start, limit = 0, start
    bounds = (start, limit, delta)
    values = [static_value(b) for b in bounds]
    if all(v is not None for v in values):
        return _array.range(*(v.item() for v in values), dtype=dtype, name=name)
    tensors = [b for b in bounds if isinstance(b, Tensor)]
    dtype = (
        as_dtype(dtype)
        if dtype is not None
        else (
            tensors[0].dtype
            if all(t.dtype is tensors[0].dtype for t in tensors)
            else default_dtype_of([v for v in values if v is not None] or [0])
        )
    )
    scalars = [
        _array.cast(b, dtype) if isinstance(b, Tensor) else convert(b, dtype=dtype) for b in bounds
    ]
    for b in scalars:
        if b.shape is not None and len(b.shape) != 0:
            raise ShapeError(f"tf.range needs scalar bounds, got {b.describe()}", user_location())
    if _runtime_range is None:
        from ..ops.custom import register_op

        _runtime_range = register_op(
            "compat_v1_range",
            _arange,
            shape_fn=lambda *s: (None,),
            doc="tf.range over bounds known when the graph runs",
        )
    return _runtime_range(*scalars, name=name)
