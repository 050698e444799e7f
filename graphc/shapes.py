"""Static shapes: tuples of dims, where a dim is an int, ``None`` (unknown) or a
symbol such as ``"N"`` (unknown, but equal wherever the same symbol appears).
A whole shape of ``None`` means the rank is unknown too."""

from __future__ import annotations

from typing import Union

Dim = Union[int, None, str]
Shape = Union[tuple, None]


def as_shape(shape) -> Shape:
    if shape is None:
        return None
    if isinstance(shape, int):
        return (shape,)
    dims = []
    for d in shape:
        if d is None or isinstance(d, str):
            dims.append(d)
        elif int(d) == d and -1 <= d < (1 << 63):
            dims.append(None if d == -1 else int(d))
        else:
            from .errors import ShapeError  # a ValueError, located at the user's line

            raise ShapeError(
                f"bad dimension {d!r} in shape {shape!r}"
                + (" (dimensions are below 2**63)" if d >= (1 << 63) else "")
            )
    return tuple(dims)


def fully_known(shape: Shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def num_elements(shape: Shape):
    if not fully_known(shape):
        return None
    n = 1
    for d in shape:
        n *= d
    return n


def dims_compatible(a: Dim, b: Dim) -> bool:
    return not (isinstance(a, int) and isinstance(b, int) and a != b)


def merge_dim(a: Dim, b: Dim) -> Dim:
    """The more informative of two compatible dims."""
    if isinstance(a, int):
        return a
    if isinstance(b, int):
        return b
    return a if a is not None else b


def broadcast_dim(a: Dim, b: Dim):
    """Result dim of numpy broadcasting, or ``False`` when they cannot broadcast."""
    if a == 1:
        return b
    if b == 1:
        return a
    if isinstance(a, int) and isinstance(b, int):
        return a if a == b else False
    if isinstance(a, int):
        return a
    if isinstance(b, int):
        return b
    if a == b:
        return a
    # two different unknowns: either could be 1, so the result is unknown
    return None


def broadcast_shapes(*shapes: Shape):
    """Broadcast static shapes; returns the shape, or raises ValueError naming the clash."""
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        padded = (1,) * (rank - len(s)) + tuple(s)
        for i, d in enumerate(padded):
            r = broadcast_dim(out[i], d)
            if r is False:
                raise ValueError(
                    f"dimension {i - rank} is {out[i]} in one input and {d} in another"
                )
            out[i] = r
    return tuple(out)


def broadcast_axes(shape, like) -> tuple:
    """The axes a value of ``shape`` was broadcast along from ``like`` (numpy's rules): its
    leading extra axes and every axis where ``like`` has 1 and ``shape`` does not. Summing
    over them (keepdims) and reshaping to ``like`` undoes the broadcast: ``sum_to_like``."""
    lead = len(shape) - len(like)
    return tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(like) if d == 1 and shape[lead + i] != 1
    )


def format_shape(shape: Shape) -> str:
    if shape is None:
        return "<unknown rank>"
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    return "(" + dims + ("," if len(shape) == 1 else "") + ")"


def normalize_axis(axis: int, rank: int) -> int:
    """``axis`` in ``[0, rank)``; a located ShapeError (a ValueError) when out of range."""
    if not -rank <= axis < rank:
        from .errors import ShapeError

        valid = f"[{-rank}, {rank})" if rank else "none: the tensor is a scalar"
        raise ShapeError(
            f"axis {axis} is out of range for a tensor of rank {rank} (valid axes: {valid})"
        )
    return axis % rank


def known_rank(t, what: str) -> int:
    """The rank of tensor ``t``; a located ShapeError if it is unknown (``f32[*]``)."""
    if t.shape is None:
        from .errors import ShapeError

        raise ShapeError(f"{what} needs a tensor of known rank: {t.describe()}")
    return len(t.shape)


def normalize_axes(axis, rank):
    """``None`` -> all axes; an int or a sequence -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(rank))
    if isinstance(axis, int):
        axis = (axis,)
    axes = tuple(sorted({normalize_axis(int(a), rank) for a in axis}))
    return axes


# Offsets in a planned arena are multiples of this (a cache line): the memory plan pads every
# buffer to it, and a collective recognises back-to-back buffers by it.
ARENA_ALIGN = 64
