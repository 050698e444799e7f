"""Constant folding.

Rule: a pure node whose inputs are all constants is evaluated once, at compile time, with
its own numpy kernel, and becomes a constant. Inputs that an op reads only for their shape
(``fill_like``'s ``like``…) count as constant once the signature fixes that shape. User ops
(``gc.register_op``) are not folded: their Python may have effects the user expects at run
time. Large results stay unfolded (they would bloat the plan), and a kernel that fails is
left for run time, where its error names the user's line."""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import as_dtype
from ..ops.array import (
    BROADCAST_LIKE,
    FILL_LIKE,
    GETITEM_GRAD,
    RESHAPE_LIKE,
    SHAPE,
    SIZE,
    SPLIT_LIKE,
    TILE_GRAD,
)
from ..ops.reduce import SUM_TO_LIKE
from ..ops.sources import CONST
from ..shapes import fully_known
from .program import Program, derived, rewrite

FOLD_LIMIT = 1 << 16  # elements in a folded result

# Input positions an op reads only for their shape (the rest of the inputs are data).
SHAPE_ONLY_INPUTS = {
    FILL_LIKE: lambda n: (0,),
    SHAPE: lambda n: (0,),
    SIZE: lambda n: (0,),
    BROADCAST_LIKE: lambda n: (1,),
    RESHAPE_LIKE: lambda n: (1,),
    SUM_TO_LIKE: lambda n: (1,),
    TILE_GRAD: lambda n: (1,),
    GETITEM_GRAD: lambda n: (1,),
    SPLIT_LIKE: lambda n: tuple(range(1, n)),
}


def shape_only_positions(node) -> tuple:
    """The input positions of ``node`` whose shape, not value, is all its op reads."""
    rule = SHAPE_ONLY_INPUTS.get(node.op)
    return rule(len(node.inputs)) if rule else ()


def is_const(value) -> bool:
    """Whether ``value`` (a (node, index) pair) is produced by a CONST node."""
    return value[0].op is CONST


def const_value(value):
    """The array of a CONST-produced ``value``."""
    return value[0].attrs["value"]


def make_const(array, like):
    """A CONST node holding ``array`` (made read-only), replacing node(s) ``like``."""
    array = np.asarray(array)
    array.setflags(write=False)
    return derived(CONST, (), {"value": array}, [(_dtype_of(array), array.shape)], like)


def _dtype_of(array):
    return as_dtype(array.dtype)


def fold(program: Program) -> Program:
    """The program with every pure node of constant inputs replaced by its value."""

    def local_constant(node):
        """f(c1, c2, …) -> c, evaluated now, when every input is a constant."""
        op = node.op
        if (
            op.stateful
            or op is CONST
            or op.numpy is None
            or len(node.avals) != 1
            or node.controls
            or op.extra.get("user")
        ):
            return None
        dtype, shape = node.avals[0]
        if not fully_known(shape) or math.prod(shape) > FOLD_LIMIT:
            return None
        shape_only = shape_only_positions(node)
        args = []
        for pos, value in enumerate(node.inputs):
            if is_const(value):
                args.append(const_value(value))
            elif pos in shape_only and fully_known(value[0].avals[value[1]][1]):
                d, s = value[0].avals[value[1]]
                args.append(np.broadcast_to(np.zeros((), d.np), s))
            else:
                return None
        try:
            with np.errstate(all="ignore"):
                result = op.numpy(*args, **node.attrs)
        except Exception:  # noqa: BLE001 - left for run time, which names the user's line
            return None
        result = np.asarray(result)
        if result.shape != tuple(shape):
            return None
        return [(make_const(result.astype(dtype.np, copy=False), node), 0)]

    return rewrite(program, local_constant)
