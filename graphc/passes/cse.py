"""Common-subexpression elimination.

Rule: two pure nodes with the same op, the same inputs, equal attributes and the same
epoch compute the same value; the later one is replaced by the earlier. Stateful nodes
(variables, assignments, random draws, feeds, print) are never merged; nodes of different
epochs are not either, because a variable read between two assignments may differ.
Constants are merged by value when small (their bytes are part of the key)."""

from __future__ import annotations

import numpy as np

from ..ir.node import Operation
from .program import Program, rewrite

_CONST_KEY_LIMIT = 4096  # elements: hashing a large constant's bytes costs more than it saves


def structural_key(node):
    """A hashable key equal for nodes that compute the same value, or None when the node
    must not be merged."""
    if node.op.stateful or node.controls or node.op.extra.get("user"):
        return None  # user ops may count their calls: each node runs its own
    try:
        attrs = tuple(sorted((k, _freeze(v)) for k, v in node.attrs.items()))
    except _Unhashable:
        return None
    ins = tuple((p.uid, i) for p, i in node.inputs)
    # A node without inputs (a constant) means the same in every epoch.
    return (node.op.name, ins, attrs, node.epoch if node.inputs else None)


class _Unhashable(Exception):
    pass


def _freeze(v):
    if isinstance(v, np.ndarray):
        if v.size > _CONST_KEY_LIMIT:
            raise _Unhashable
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, slice):
        return ("slice", v.start, v.stop, v.step)
    if isinstance(v, Operation):
        return ("op", id(v))
    if isinstance(v, float) and v != v:
        return ("nan",)
    try:
        hash(v)
    except TypeError:
        raise _Unhashable from None
    return (type(v).__name__, v)


def cse(program: Program) -> Program:
    """The program with each repeated pure computation replaced by its first occurrence."""
    seen: dict = {}

    def local_duplicate(node):
        """f(x) ; f(x) -> the first f(x), for pure nodes of one epoch."""
        key = structural_key(node)
        if key is None:
            return None
        first = seen.setdefault(key, node)
        if first is node:
            return None
        return [(first, i) for i in range(len(node.avals))]

    return rewrite(program, local_duplicate)
