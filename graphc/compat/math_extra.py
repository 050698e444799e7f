"""TF 1.x math functions that tutorials use and graphc builds from its primitives:
``tf.reverse``, ``tf.cumsum``, ``tf.norm``, ``tf.math.reduce_std`` / ``reduce_variance``,
``tf.unsorted_segment_sum`` / ``_mean``, ``tf.matrix_transpose``. Each is a composite, so
it differentiates, fuses and runs on every backend without a kernel of its own."""

from __future__ import annotations

import builtins

import numpy as np

from .. import dtypes as D
from ..errors import GraphcError, ShapeError, user_location
from ..ops.array import broadcast_to, cast, expand_dims, one_hot, reshape, transpose
from ..ops.array import matrix_transpose as _matrix_transpose
from ..ops.elementwise import abs as _abs
from ..ops.elementwise import (
    equal,
    is_finite,
    is_nan,
    less,
    logical_not,
    logical_or,
    maximum,
    sqrt,
    square,
)
from ..ops.linalg import tensordot
from ..ops.reduce import reduce_max, reduce_mean, reduce_sum
from ..ops.sources import constant, convert
from ..shapes import normalize_axis
from .dynamic import range_
from .nn_extra import top_k


def _rank(x, what):
    if x.shape is None:
        raise ShapeError(f"{what} needs a tensor of known rank: {x.describe()}", user_location())
    return len(x.shape)


def _axes(axis, rank):
    axis = [axis] if isinstance(axis, (int, np.integer)) else list(np.ravel(axis))
    return sorted({normalize_axis(int(a), rank) for a in axis})


def reverse(tensor, axis, name=None):
    """``tensor`` with the order of ``axis`` (an int or a list) reversed."""
    x = convert(tensor)
    r = _rank(x, "tf.reverse")
    key = [builtins.slice(None)] * r
    for a in _axes(axis, r):
        key[a] = builtins.slice(None, None, -1)
    return x[tuple(key)]


reverse_v2 = reverse


def cumsum(x, axis=0, exclusive=False, reverse=False, name=None):  # noqa: A002
    """Running sums along ``axis`` (a static dimension): a contraction with a triangular
    matrix of ones, so its gradient is the running sum the other way."""
    x = convert(x)
    r = _rank(x, "tf.cumsum")
    axis = normalize_axis(int(axis), r)
    n = x.shape[axis]
    if not isinstance(n, int):
        raise ShapeError(
            f"tf.cumsum needs a static size along axis {axis}: {x.describe()}", user_location()
        )
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    keep = (i > j if exclusive else i >= j) if reverse else (i < j if exclusive else i <= j)
    tri = constant(keep.astype(x.dtype.np))
    y = tensordot(x, tri, axes=[[axis], [0]])  # the summed axis comes last
    perm = list(range(axis)) + [r - 1] + list(range(axis, r - 1))
    return transpose(y, perm, name=name) if axis != r - 1 else y


def norm(tensor, ord="euclidean", axis=None, keepdims=None, name=None, keep_dims=None):  # noqa: A002
    """The vector norm over ``axis`` (all axes when None): ``"euclidean"``/``"fro"``/2, 1,
    or ``np.inf``; over two axes, the Frobenius norm."""
    x = convert(tensor)
    keep = bool(keepdims if keepdims is not None else keep_dims)
    two_axes = isinstance(axis, (list, tuple)) and len(axis) == 2
    if ord in ("euclidean", "fro", 2, 2.0) and (ord != 2 or not two_axes):
        return sqrt(reduce_sum(square(x), axis=axis, keepdims=keep), name=name)
    if ord in (1, 1.0) and not two_axes:
        return reduce_sum(_abs(x), axis=axis, keepdims=keep, name=name)
    if ord == np.inf and not two_axes:
        return reduce_max(_abs(x), axis=axis, keepdims=keep, name=name)
    raise GraphcError(
        f"tf.norm: ord={ord!r} over axis={axis!r} is not supported (vector norms 1, 2 and "
        "inf, and the Frobenius norm are)",
        user_location(),
    )


def reduce_variance(input_tensor, axis=None, keepdims=False, name=None):
    x = convert(input_tensor)
    centered = x - reduce_mean(x, axis=axis, keepdims=True)
    return reduce_mean(square(centered), axis=axis, keepdims=keepdims, name=name)


def reduce_std(input_tensor, axis=None, keepdims=False, name=None):
    return sqrt(reduce_variance(input_tensor, axis, keepdims), name=name)


def _segment_matrix(data, segment_ids, num_segments, what):
    """(one-hot rows of the segment ids (n, segments), data as (n, ...))."""
    data, ids = convert(data), convert(segment_ids)
    if not ids.dtype.is_integer:
        raise GraphcError(f"{what}: segment_ids must be integers, got {ids.describe()}")
    if ids.shape is None or data.shape is None:
        raise ShapeError(f"{what} needs data and segment_ids of known rank", user_location())
    k = len(ids.shape)
    if k > 1:
        data = reshape(data, [-1, *data.shape[k:]])
        ids = reshape(ids, [-1])
    oh = one_hot(ids, int(num_segments), dtype=data.dtype)  # out-of-range ids: zero rows
    return oh, data


def unsorted_segment_sum(data, segment_ids, num_segments, name=None):
    """``out[s] = sum of data[i] where segment_ids[i] == s`` for ``s < num_segments``."""
    oh, data = _segment_matrix(data, segment_ids, num_segments, "tf.unsorted_segment_sum")
    return tensordot(oh, data, axes=[[0], [0]], name=name)


def unsorted_segment_mean(data, segment_ids, num_segments, name=None):
    oh, data = _segment_matrix(data, segment_ids, num_segments, "tf.unsorted_segment_mean")
    total = tensordot(oh, data, axes=[[0], [0]])
    count = maximum(reduce_sum(oh, axis=0), 1)
    shape = [-1] + [1] * (len(data.shape) - 1)
    return total / reshape(count, shape)


def matrix_transpose(a, name="matrix_transpose", conjugate=False):
    return _matrix_transpose(convert(a), name=name)


def _static_last(x, what):
    n = x.shape[-1] if x.shape else None
    if not isinstance(n, int):
        raise ShapeError(f"{what} needs a static last dimension: {x.describe()}", user_location())
    return n


def sort(values, axis=-1, direction="ASCENDING", name=None):
    """The values sorted along the last axis: ``top_k`` over the whole axis."""
    x = convert(values)
    if x.shape is None or normalize_axis(int(axis), len(x.shape)) != len(x.shape) - 1:
        raise ShapeError(f"tf.sort sorts along the last axis: {x.describe()}", user_location())
    n = _static_last(x, "tf.sort")
    if direction == "DESCENDING":
        return top_k(x, n).values
    return -top_k(-x, n).values


def argsort(values, axis=-1, direction="ASCENDING", stable=False, name=None):
    x = convert(values)
    if x.shape is None or normalize_axis(int(axis), len(x.shape)) != len(x.shape) - 1:
        raise ShapeError(f"tf.argsort sorts along the last axis: {x.describe()}", user_location())
    n = _static_last(x, "tf.argsort")
    return top_k(x if direction == "DESCENDING" else -x, n).indices


def sequence_mask(lengths, maxlen=None, dtype=None, name=None):
    """``mask[i, j] = j < lengths[i]``; ``maxlen`` defaults to the largest length (known
    only at run time)."""
    lengths = convert(lengths)
    limit = reduce_max(lengths) if maxlen is None else maxlen
    positions = range_(limit, dtype=lengths.dtype)
    mask = less(positions, expand_dims(lengths, -1))
    return mask if dtype is None else cast(mask, dtype)


def is_inf(x, name=None):
    x = convert(x)
    return logical_not(logical_or(is_finite(x), is_nan(x)), name=name)


def zero_fraction(value, name=None):
    x = convert(value)
    return reduce_mean(cast(equal(x, constant(0, x.dtype)), D.float32), name=name)


def diag_part(input, name=None):  # noqa: A002
    """The main diagonal of the last two (static, equal) axes."""
    x = convert(input)
    n = _static_last(x, "tf.matrix_diag_part")
    return reduce_sum(x * constant(np.eye(n, dtype=x.dtype.np)), axis=-1, name=name)


def matrix_diag(diagonal, name=None):
    """Square matrices with ``diagonal`` (its last axis) on their main diagonal."""
    d = convert(diagonal)
    n = _static_last(d, "tf.matrix_diag")
    return expand_dims(d, -1) * constant(np.eye(n, dtype=d.dtype.np))


def trace(x, name=None):
    return reduce_sum(diag_part(x), axis=-1, name=name)


def meshgrid(*args, **kwargs):
    """Coordinate grids of 1-d tensors (``indexing="xy"``, TF's default, or ``"ij"``)."""
    indexing = kwargs.pop("indexing", "xy")
    kwargs.pop("name", None)
    if kwargs:
        raise GraphcError(f"tf.meshgrid got unexpected arguments {sorted(kwargs)}", user_location())
    xs = [reshape(convert(a), [-1]) for a in args]
    sizes = [x.shape[0] for x in xs]
    if not all(isinstance(s, int) for s in sizes):
        raise ShapeError("tf.meshgrid needs 1-d tensors of static length", user_location())
    if indexing == "xy" and len(xs) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for k, x in enumerate(xs):
        axis = k
        if indexing == "xy" and len(xs) >= 2 and k < 2:
            axis = 1 - k
        shape = [1] * len(xs)
        shape[axis] = -1
        out.append(broadcast_to(reshape(x, shape), sizes))
    return out
