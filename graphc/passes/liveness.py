"""Liveness: the steps a program runs, a buffer slot for every value, and how long each
slot lives. In-place reuse (``inplace.py``) and the memory plan (``memory.py``) both read it.

Rules (the memory plan's, see ``memory.py``):
  * a value lives from the step that computes it to the last step that reads it; a fetched
    value lives to the end (it is copied out after the last step);
  * a kernel that allocates its own result may return a view of an input (reshape,
    transpose…), so its inputs live as long as its result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ops.elementwise import RSQRT, SIGMOID
from ..ops.registry import REGISTRY
from ..ops.sources import CONST
from ..ops.state import VARIABLE
from ..shapes import fully_known
from .program import FEED, FUSED, Program, kernel_takes_out


def _safe_ops():
    # a ufunc kernel, or one of ours whose every write follows the read of the same element
    ufuncs = {
        op
        for op in REGISTRY.values()
        if op.kind == "elementwise" and isinstance(op.numpy, np.ufunc)
    }
    return frozenset(ufuncs | {SIGMOID, RSQRT})


SAFE_INPLACE = _safe_ops()
"""Ops whose kernel may write its result over an input it reads (in-place steps, and fused
bodies reusing a dying scratch buffer)."""


@dataclass
class Slot:
    """One buffer of the plan.

    ``kind``: "arena" (a planned intermediate), "scratch" (a fused kernel's tile memory),
    "feed", "const", "variable", or "dynamic" (allocated by its kernel at run time).
    ``offset``/``nbytes`` place arena and scratch slots in the arena (a ``result`` slot:
    past the intermediates' ``peak``); ``start``/``end`` are
    the first and last step that use it; ``name`` is the user tensor it holds."""

    index: int
    kind: str
    dtype: object
    shape: tuple | None
    nbytes: int = 0
    start: int = 0
    end: int = 0
    offset: int | None = None
    name: str = ""
    value: object = None  # the array of a "const" slot
    result: bool = False  # a fetched value, placed after the intermediates


def steps_of(program: Program) -> list:
    """The nodes that become steps, in execution order (feeds and constants need none)."""
    return [n for n in program.schedule() if n.op is not FEED and n.op is not CONST]


def nbytes(dtype, shape):
    return math.prod(shape) * dtype.itemsize  # (np.prod costs ~100x more per call)


def value_slots(program: Program, steps: list):
    """Give every value a slot; return (slot_of: value -> Slot, slots)."""
    slot_of, slots = {}, []

    def new(kind, dtype, shape, value, start):
        name = value[0].value_name(value[1])
        s = Slot(len(slots), kind, dtype, shape, start=start, end=start, name=name)
        if kind in ("arena", "scratch"):
            s.nbytes = nbytes(dtype, shape)
        slots.append(s)
        slot_of[value] = s
        return s

    for n in program.nodes:
        if n.op is FEED:
            new("feed", *n.avals[0], (n, 0), -1)
        elif n.op is CONST:
            new("const", *n.avals[0], (n, 0), -1).value = n.attrs["value"]
    for i, n in enumerate(steps):
        planned = n.op is FUSED or kernel_takes_out(n.op)
        for k, (dtype, shape) in enumerate(n.avals):
            if n.op is VARIABLE:
                kind = "variable"
            elif planned and fully_known(shape):
                kind = "arena"
            else:
                kind = "dynamic"
            new(kind, dtype, shape, (n, k), i)
    return slot_of, slots


def lifetimes(program: Program, steps: list, slot_of: dict) -> None:
    """Set each slot's ``end`` (see the module rules)."""
    end = len(steps)
    for i, n in enumerate(steps):
        for v in n.inputs:
            s = slot_of[v]
            s.end = max(s.end, i)
    for v in program.fetches:
        slot_of[v].end = end
    for i in range(len(steps) - 1, -1, -1):
        n = steps[i]
        outs = [slot_of[(n, k)] for k in range(len(n.avals))]
        if all(s.kind != "dynamic" for s in outs):
            continue
        last = max(s.end for s in outs)
        for v in n.inputs:  # the result may be a view of any input
            s = slot_of[v]
            s.end = max(s.end, last)
