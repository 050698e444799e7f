"""In-place rewriting: an elementwise step whose input dies at that step writes its result
into that input's buffer instead of a new one.

Rule: output k of step i may reuse the buffer of input j when the op is safe to run in
place (a numpy ufunc reads each element before writing the same element; kernels that
write an output before reading every input, such as ``where``, are not), input j is a
planned intermediate (never a feed, constant or variable: those belong to someone else),
its last reader is step i, and it has the output's dtype and shape."""

from __future__ import annotations

from .liveness import SAFE_INPLACE, lifetimes, steps_of, value_slots
from .program import Program

__all__ = ["SAFE_INPLACE", "inplace"]


def inplace(program: Program) -> Program:
    """The program with in-place steps chosen (module docstring: when a step may reuse an
    input's buffer)."""
    steps = steps_of(program)
    slot_of, _ = value_slots(program, steps)
    lifetimes(program, steps, slot_of)
    chosen = {}
    for i, n in enumerate(steps):
        if n.op not in SAFE_INPLACE or len(n.avals) != 1:
            continue
        out = slot_of[(n, 0)]
        if out.kind != "arena":
            continue
        for pos, v in enumerate(n.inputs):
            s = slot_of[v]
            if (
                s.kind == "arena"
                and s.end == i
                and s.dtype == out.dtype
                and tuple(s.shape) == tuple(out.shape)
            ):
                chosen[n] = pos
                # the output now holds that buffer: later steps may chain in place on it
                slot_of[(n, 0)] = s
                s.end = max(s.end, out.end)
                break
    program.facts.inplace = chosen
    return program
