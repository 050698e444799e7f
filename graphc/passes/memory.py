"""Static memory planning: every intermediate gets a place in one arena before anything runs.

Rules:
  * values whose shape the signature fixes and whose kernel writes into a given buffer
    (``out=``) are *planned*: they live in the arena. Feeds, constants and variables are
    not intermediates; values of other kernels are *dynamic* (the kernel allocates them);
  * a value lives from the step that computes it to the last step that reads it; a fetched
    value lives to the end (it is copied out after the last step). A kernel that allocates
    its own result may return a view of an input (reshape, transpose…), so its inputs live
    as long as its result;
  * an in-place step (see ``inplace.py``) writes into the buffer of the input it consumes,
    unless its output is fetched (a fetched result gets a buffer of its own, see below);
  * a fused kernel's per-tile scratch lives during its own step only;
  * buffers are packed largest first, each at the best-fitting gap (the smallest free gap
    that holds it) among the buffers whose lifetimes overlap;
  * planned values that are fetched (``Slot.result``) are packed after the intermediates,
    in a region of their own: SPEC §7's ``peak`` counts intermediates only (feeds, fetched
    results and variables not counted), and ``result_bytes`` is the size of that region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ops.sources import CONST
from ..ops.state import VARIABLE
from ..shapes import fully_known
from .program import FEED, FUSED, Program, kernel_takes_out

ALIGN = 64               # bytes: arena offsets are cache-line aligned
TILE_ELEMS = 1 << 16     # elements per tile of a fused kernel (fits in L2 with a few operands)
SCRATCH_BYTES = 1 << 19  # a fused kernel's tile scratch, at most (half a typical L2)


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
    value: object = None        # the array of a "const" slot
    result: bool = False        # a fetched value, placed after the intermediates


def steps_of(program: Program) -> list:
    """The nodes that become steps, in execution order (feeds and constants need none)."""
    return [n for n in program.schedule() if n.op is not FEED and n.op is not CONST]


def _nbytes(dtype, shape):
    return math.prod(shape) * dtype.itemsize      # (np.prod costs ~100x more per call)


def value_slots(program: Program, steps: list):
    """Give every value a slot; return (slot_of: value -> Slot, slots)."""
    slot_of, slots = {}, []

    def new(kind, dtype, shape, value, start):
        name = value[0].value_name(value[1])
        s = Slot(len(slots), kind, dtype, shape, start=start, end=start, name=name)
        if kind in ("arena", "scratch"):
            s.nbytes = _nbytes(dtype, shape)
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
        for v in n.inputs:        # the result may be a view of any input
            s = slot_of[v]
            s.end = max(s.end, last)


def tile_rows(loop_shape, tile_elems=TILE_ELEMS) -> int:
    """Rows (along axis 0) per tile of a fused kernel over ``loop_shape``."""
    if not loop_shape:
        return 1
    row = math.prod(loop_shape[1:]) or 1
    return max(1, min(loop_shape[0], tile_elems // row))


def fused_layout(node, step, slots, tile_elems, safe_inplace):
    """(rows per tile, body slots) of a fused step: tiles of at most ``tile_elems`` elements,
    made smaller while the body's scratch would exceed SCRATCH_BYTES (a wide body keeps many
    values alive at once; its scratch must stay cache-sized, and far below the arrays it
    computes). New scratch slots are appended to ``slots``."""
    loop = tuple(node.attrs["loop_shape"])
    rows = tile_rows(loop, tile_elems)
    while True:
        scratch: list = []
        where = body_slots(node, step, rows, scratch, safe_inplace)
        if rows <= 1 or sum(s.nbytes for s in scratch) <= SCRATCH_BYTES:
            break
        rows //= 2
    for s in scratch:
        s.index = len(slots)
        slots.append(s)
    return rows, where


def body_slots(node, step, rows, slots, safe_inplace) -> list:
    """Where each op of a fused body writes: ``("out", k)`` for the node's k-th output, or
    ``("scratch", slot)`` (``rows`` rows of the loop each). Scratch is reused once its value
    is dead, in place where the op allows it."""
    body, outputs = node.attrs["body"], node.attrs["outputs"]
    shape = tuple(node.attrs["loop_shape"])
    if shape:    # an empty loop (a batch of 0) gets empty scratch, not one row of it
        shape = (min(rows, shape[0]),) + shape[1:]
    last_use = {}
    for j, fop in enumerate(body):
        for kind, a in fop.args:
            if kind == "op":
                last_use[a] = j
    free: list = []
    where = []
    for j, fop in enumerate(body):
        if j in outputs:
            where.append(("out", outputs.index(j)))
        else:
            dying = [where[a][1] for kind, a in fop.args
                     if kind == "op" and last_use.get(a) == j and where[a][0] == "scratch"]
            pick = None
            if fop.op in safe_inplace:
                pick = next((s for s in dying if s.dtype == fop.dtype), None)
            if pick is None:
                pick = next((s for s in free if s.dtype == fop.dtype), None)
                if pick is not None:
                    free.remove(pick)
            if pick is None:
                pick = Slot(len(slots), "scratch", fop.dtype, shape, _nbytes(fop.dtype, shape),
                            step, step, name=f"tile scratch of step {step}")
                slots.append(pick)
            where.append(("scratch", pick))
        for kind, a in fop.args:   # values read for the last time free their scratch
            if kind == "op" and last_use.get(a) == j and where[a][0] == "scratch":
                s = where[a][1]
                if s is not where[j][1] and s not in free:
                    free.append(s)
    return where


def pack(slots) -> int:
    """Place arena and scratch slots (largest first, best-fitting gap); return the peak."""
    todo = sorted((s for s in slots if s.kind in ("arena", "scratch") and s.offset is None),
                  key=lambda s: (-s.nbytes, s.start))
    starts, ends, offs, sizes = (np.empty(len(todo), np.int64) for _ in range(4))
    peak = 0
    for k, s in enumerate(todo):
        size = -(-max(s.nbytes, 1) // ALIGN) * ALIGN
        live = (starts[:k] <= s.end) & (ends[:k] >= s.start)
        lo, hi = offs[:k][live], offs[:k][live] + sizes[:k][live]
        order = np.argsort(lo)
        lo, hi = lo[order], hi[order]
        best, best_gap, cursor = None, None, 0
        for a, b in zip(lo.tolist(), hi.tolist(), strict=False):
            gap = a - cursor
            if gap >= size and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, b)
        s.offset = best if best is not None else cursor
        starts[k], ends[k], offs[k], sizes[k] = s.start, s.end, s.offset, size
        peak = max(peak, s.offset + size)
    return peak


def plan_memory(program: Program, tile_elems: int = TILE_ELEMS) -> Program:
    """Record the layout in ``annotations["memory"]``: steps, slots, the slot of every value,
    each fused step's body slots, the peak bytes of the intermediates and the bytes of the
    fetched results placed after them."""
    from .inplace import SAFE_INPLACE
    steps = steps_of(program)
    slot_of, slots = value_slots(program, steps)
    lifetimes(program, steps, slot_of)
    fetched = dict.fromkeys(program.fetches)     # ordered: the layout is the same every time
    for n in steps:                       # in-place: the output takes the dying input's slot
        pos = program.annotations.get("inplace", {}).get(n)
        if pos is not None and (n, 0) not in fetched:
            inp, out = slot_of[n.inputs[pos]], slot_of[(n, 0)]
            inp.end = max(inp.end, out.end)
            out.kind = "alias"
            slot_of[(n, 0)] = inp
    bodies = {n: fused_layout(n, i, slots, tile_elems, SAFE_INPLACE)
              for i, n in enumerate(steps) if n.op is FUSED}
    slots = [s for s in slots if s.kind != "alias"]
    for k, s in enumerate(slots):
        s.index = k
    results = [slot_of[v] for v in fetched if slot_of[v].kind == "arena"]
    for s in results:
        s.result = True
    peak = pack([s for s in slots if not s.result])
    result_bytes = pack(results)
    for s in results:                     # pack() placed them from 0; peak is ALIGN-ed
        s.offset += peak
    program.annotations["memory"] = {"steps": steps, "slots": slots, "slot_of": slot_of,
                                     "bodies": bodies, "peak": peak, "result_bytes": result_bytes,
                                     "tile_elems": tile_elems}
    return program
