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
  * the inputs of a collective that reduces several tensors at once (a gradient bucket,
    ``op.extra["collective"]``) are laid out back to back (each ALIGN-padded) when each is
    a planned intermediate that this step reads last: the bucket is then one span of the
    arena that the collective reduces in place, with no pack or unpack copy. The node gets
    the attribute ``contiguous=True``; the span lives from its first member's start;
  * a concat's output lives from the first step computing one of its inputs that a fused
    kernel writes and only the concat reads: an executor may then have that kernel write
    straight into the output's part (``concat_parts``), with no copy (an LSTM's gates);
  * planned values that are fetched (``Slot.result``) are packed after the intermediates,
    in a region of their own: SPEC §7's ``peak`` counts intermediates only (feeds, fetched
    results and variables not counted), and ``result_bytes`` is the size of that region.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from ..ops.array import CONCAT
from ..shapes import ARENA_ALIGN
from .liveness import SAFE_INPLACE, Slot, lifetimes, nbytes, steps_of, value_slots
from .program import FUSED, Program

__all__ = ["MemoryPlan", "Slot", "FusedLayout", "pack", "plan_memory", "tile_rows"]

ALIGN = ARENA_ALIGN  # bytes: arena offsets are cache-line aligned
TILE_ELEMS = 1 << 16  # elements per tile of a fused kernel (fits in L2 with a few operands)
SCRATCH_BYTES = 1 << 19  # a fused kernel's tile scratch, at most (half a typical L2)


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
    if shape:  # an empty loop (a batch of 0) gets empty scratch, not one row of it
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
            dying = [
                where[a][1]
                for kind, a in fop.args
                if kind == "op" and last_use.get(a) == j and where[a][0] == "scratch"
            ]
            pick = None
            if fop.op in safe_inplace:
                pick = next((s for s in dying if s.dtype == fop.dtype), None)
            if pick is None:
                pick = next((s for s in free if s.dtype == fop.dtype), None)
                if pick is not None:
                    free.remove(pick)
            if pick is None:
                pick = Slot(
                    len(slots),
                    "scratch",
                    fop.dtype,
                    shape,
                    nbytes(fop.dtype, shape),
                    step,
                    step,
                    name=f"tile scratch of step {step}",
                )
                slots.append(pick)
            where.append(("scratch", pick))
        for kind, a in fop.args:  # values read for the last time free their scratch
            if kind == "op" and last_use.get(a) == j and where[a][0] == "scratch":
                s = where[a][1]
                if s is not where[j][1] and s not in free:
                    free.append(s)
    return where


def pack(slots) -> int:
    """Place arena and scratch slots (largest first, best-fitting gap); return the peak.

    A slot goes into the smallest hole (the lowest, on ties) of the union of the offset
    ranges of the placed slots whose lifetimes overlap its own, or on top of that union.
    The unions come from a segment tree over the steps (``_LifetimeTree``), so a placement
    reads a few short interval lists instead of every placed slot."""
    todo = sorted(
        (s for s in slots if s.kind in ("arena", "scratch") and s.offset is None),
        key=lambda s: (-s.nbytes, s.start),
    )
    if not todo:
        return 0
    first = min(s.start for s in todo)
    tree = _LifetimeTree(max(s.end for s in todo) - first + 1)
    peak = 0
    for s in todo:
        size = -(-max(s.nbytes, 1) // ALIGN) * ALIGN
        nodes = tree.cover(s.start - first, s.end - first)
        s.offset = _best_fit(tree.union(nodes, s.start - first, s.end - first), size)
        tree.add(nodes, s.offset, s.offset + size)
        peak = max(peak, s.offset + size)
    return peak


def _best_fit(ranges, size) -> int:
    """The start of the smallest hole (the lowest, on ties) of at least ``size`` bytes below
    the top of ``ranges`` (a flat list lo0, hi0, lo1, hi1, … of byte ranges, in any order,
    which may overlap), or that top when none fits."""
    best, best_gap, top = None, 0, 0
    for lo, hi in sorted(zip(ranges[::2], ranges[1::2])):
        gap = lo - top
        if gap >= size and (best is None or gap < best_gap):
            best, best_gap = top, gap
        if hi > top:
            top = hi
    return top if best is None else best


class _LifetimeTree:
    """A segment tree over steps ``0..n-1`` holding the byte ranges of placed slots.

    A slot living over steps [start, end] is stored at the O(log n) nodes that exactly
    cover that interval: ``own[v]`` is the union of the ranges stored at node v, and
    ``sub[v]`` the union of those stored at v or below it. The slots overlapping a step
    interval are then those stored at or below the nodes covering it, or at a node whose
    steps include one of its two ends, so their union is a merge of O(log n) unions. Each
    union is a sorted flat list ``[lo0, hi0, lo1, hi1, …]`` of disjoint, non-touching
    ranges: packed buffers leave few holes, so these lists stay short."""

    def __init__(self, n):
        size = 1
        while size < n:
            size *= 2
        self.size = size
        self.own = [[] for _ in range(2 * size)]
        self.sub = [[] for _ in range(2 * size)]

    def cover(self, start, end) -> list:
        """The nodes whose step ranges exactly cover [start, end] (both included)."""
        nodes, lo, hi = [], start + self.size, end + self.size + 1
        while lo < hi:
            if lo & 1:
                nodes.append(lo)
                lo += 1
            if hi & 1:
                hi -= 1
                nodes.append(hi)
            lo >>= 1
            hi >>= 1
        return nodes

    def union(self, nodes, start, end) -> list:
        """The byte ranges (flat, unsorted, overlapping) of every slot whose lifetime
        overlaps [start, end]; ``nodes`` covers that interval."""
        ranges = []
        for v in nodes:
            ranges += self.sub[v]
        own, a, b = self.own, start + self.size, end + self.size
        while a != b:  # the two ends' paths up to where they meet ...
            ranges += own[a]
            ranges += own[b]
            a >>= 1
            b >>= 1
        while a:  # ... and on to the root
            ranges += own[a]
            a >>= 1
        return ranges

    def add(self, nodes, lo, hi) -> None:
        """Store the byte range [lo, hi) of a slot whose lifetime ``nodes`` cover."""
        for v in nodes:
            _merge(self.own[v], lo, hi)
            while v and _merge(self.sub[v], lo, hi):  # an ancestor holding it holds more
                v >>= 1


def _merge(ranges, lo, hi) -> bool:
    """Add [lo, hi) to the union ``ranges`` (sorted, flat); False if it held it already."""
    i = bisect.bisect_left(ranges, lo)
    j = bisect.bisect_right(ranges, hi)
    i -= i & 1  # an odd index is inside a range: start from that range's lo
    j += j & 1  # ... and end after that range's hi
    if j - i == 2 and ranges[i] <= lo and ranges[i + 1] >= hi:
        return False
    if i < j:
        lo, hi = min(lo, ranges[i]), max(hi, ranges[j - 1])
    ranges[i:j] = (lo, hi)
    return True


@dataclass
class FusedLayout:
    """How a fused step runs: ``rows`` per tile; ``where[j]`` is where body op j writes,
    ``("out", k)`` or ``("scratch", Slot)``."""

    rows: int
    where: list


@dataclass
class MemoryPlan:
    """The memory pass's result, read by ``plan.build_plan``: the steps in order, every
    buffer slot, the slot of every value, each fused step's layout, the peak bytes of the
    intermediates and the bytes of the fetched results placed after them."""

    steps: list
    slots: list
    slot_of: dict
    bodies: dict  # FUSED node -> FusedLayout
    peak: int
    result_bytes: int
    tile_elems: int


def _aligned(n):
    return -(-max(n, 1) // ALIGN) * ALIGN


def contiguous_buckets(program, steps, slot_of) -> list:
    """``[(span slot, member slots)]`` for the collectives whose inputs can share one span
    (module rules), marking those nodes ``contiguous``."""
    from .collectives import set_attrs

    spans, last_read = [], {}
    for i, n in enumerate(steps):
        for v in n.inputs:
            last_read[id(slot_of[v])] = i
    for i, n in enumerate(steps):
        if not n.op.extra.get("collective") or len(n.inputs) < 2:
            continue
        group = [slot_of[v] for v in n.inputs]
        # (a member's ``end`` may be later: the results are the members themselves)
        if len({id(m) for m in group}) < len(group) or not all(
            m.kind == "arena"
            and not m.result
            and last_read[id(m)] == i
            and m.dtype == group[0].dtype
            for m in group
        ):
            continue
        span = Slot(
            -1,
            "arena",
            group[0].dtype,
            None,
            sum(_aligned(m.nbytes) for m in group),
            min(m.start for m in group),
            max(m.end for m in group),
            name=f"bucket of step {i}",
        )
        spans.append((span, group))
        set_attrs(program, n, {**n.attrs, "contiguous": True})
    return spans


def concat_parts(steps, slot_of, fetched) -> dict:
    """``{concat step index: [input positions]}``: the inputs that the concat at that step
    could hold as views of its output (module rules): planned values of fused kernels,
    read by that concat alone, once. Their own slots are still planned (an executor without
    views uses them)."""
    reads: dict = {}
    for n in steps:
        for v in n.inputs:
            reads[v] = reads.get(v, 0) + 1
    found = {}
    for i, n in enumerate(steps):
        if n.op is not CONCAT or slot_of[(n, 0)].kind != "arena":
            continue
        parts = [
            p
            for p, v in enumerate(n.inputs)
            if v[0].op is FUSED
            and reads[v] == 1
            and v not in fetched
            and slot_of[v].kind == "arena"
            and n.inputs.count(v) == 1
        ]
        if parts:
            found[i] = parts
    return found


def plan_memory(program: Program, tile_elems: int = TILE_ELEMS) -> Program:
    """Lay out every buffer (``program.facts.memory``, a ``MemoryPlan``)."""
    from .collectives import number_collectives
    from .control import unrecorded_scans

    number_collectives(program)  # the collectives' shared signature record
    unrecorded_scans(program)  # a scan records (and stacks) only what is read
    steps = steps_of(program)
    slot_of, slots = value_slots(program, steps)
    lifetimes(program, steps, slot_of)
    fetched = dict.fromkeys(program.fetches)  # ordered: the layout is the same every time
    chosen = program.facts.inplace
    for n in steps:  # in-place: the output takes the dying input's slot
        pos = chosen.get(n)
        if pos is not None and (n, 0) not in fetched:
            inp, out = slot_of[n.inputs[pos]], slot_of[(n, 0)]
            inp.end = max(inp.end, out.end)
            out.kind = "alias"
            slot_of[(n, 0)] = inp
    for i, parts in concat_parts(steps, slot_of, fetched).items():
        out = slot_of[(steps[i], 0)]
        out.start = min([out.start] + [slot_of[steps[i].inputs[p]].start for p in parts])
    bodies = {
        n: FusedLayout(*fused_layout(n, i, slots, tile_elems, SAFE_INPLACE))
        for i, n in enumerate(steps)
        if n.op is FUSED
    }
    slots = [s for s in slots if s.kind != "alias"]
    for k, s in enumerate(slots):
        s.index = k
    results = [slot_of[v] for v in fetched if slot_of[v].kind == "arena"]
    for s in results:
        s.result = True
    spans = contiguous_buckets(program, steps, slot_of)
    members = {id(m) for _, group in spans for m in group}
    peak = pack(
        [s for s in slots if not s.result and id(s) not in members] + [span for span, _ in spans]
    )
    for span, group in spans:  # the members, back to back inside their span
        at = span.offset
        for m in group:
            m.offset = at
            at += _aligned(m.nbytes)
    result_bytes = pack(results)
    for s in results:  # pack() placed them from 0; peak is ALIGN-ed
        s.offset += peak
    program.facts.memory = MemoryPlan(steps, slots, slot_of, bodies, peak, result_bytes, tile_elems)
    return program
