"""Elementwise fusion: runs of elementwise ops over one shape become one FUSED node, which a
backend runs as one kernel (numpy: over cache-sized tiles; cupy: one generated CUDA kernel
from the ops' ``expr``). A group may end in a reduction (sum, mean, max, min).

Rules:
  * a node joins the group of one of its inputs when it is elementwise (or a reduction of the
    group's shape), its output has the group's shape, it is in the group's epoch, and none
    of its inputs from outside the group depends on the group — directly, or through other
    groups, each of which runs as one kernel after all its own inputs. That keeps the fused
    graph acyclic;
  * values of a group that something outside uses (or the caller fetches) are materialized
    as the FUSED node's outputs; the others live only in per-tile scratch;
  * every edge where fusion stops is recorded with its reason (a ``Boundary`` in
    ``program.facts.boundaries``) for the plan report.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ..errors import GraphcError
from ..ops.reduce import REDUCE_MAX, REDUCE_MEAN, REDUCE_MIN, REDUCE_SUM
from ..shapes import format_shape, fully_known
from .program import FUSED, Program, derived, kernel_takes_out, ordered_toposort

FUSIBLE_REDUCTIONS = (REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX, REDUCE_MIN)


@dataclass(frozen=True)
class Boundary:
    """An edge where fusion stops: ``producer``'s group does not take ``consumer``."""

    producer: object
    consumer: object
    reason: str


@dataclass(frozen=True)
class FusedOp:
    """One op of a fused body. ``args`` are ``("in", k)`` (the FUSED node's input k) or
    ``("op", j)`` (the result of body op j)."""

    op: object
    attrs: dict
    args: tuple
    dtype: object
    shape: tuple
    sources: tuple


def _not_fusible(node) -> str:
    """Why ``node`` starts no group and joins none."""
    op = node.op
    if op.kind not in ("elementwise", "reduction"):
        return f"{op.name} is a {op.kind} op"
    if op.kind == "reduction":
        return f"{op.name} is not a fusible reduction (or not of a float tensor)"
    if not fully_known(node.avals[0][1]):
        return "its shape is only known at run time"
    return f"{op.name}'s kernel cannot write into a given buffer"


def _elementwise(node) -> bool:
    op = node.op
    return (
        op.kind == "elementwise"
        and kernel_takes_out(op)
        and len(node.avals) == 1
        and fully_known(node.avals[0][1])
    )


def _reduction(node) -> bool:
    if node.op not in FUSIBLE_REDUCTIONS:
        return False
    ((p, i),) = node.inputs
    dtype, shape = p.avals[i]
    return dtype.is_floating and fully_known(shape) and fully_known(node.avals[0][1])


class _Group:
    def __init__(self, node, pos):
        self.members = [node]
        self.shape = tuple(node.avals[0][1])
        self.epoch = node.epoch
        self.closed = False
        self.first = self.last = pos  # schedule positions of its earliest / latest member
        self.ext: list = []  # nodes outside the group that its members read
        self.merged_into = None

    def find(self):
        g = self
        while g.merged_into is not None:
            g = g.merged_into
        return g


class _Fuser:
    """Grows the groups in schedule order (see the module rules)."""

    def __init__(self, sched):
        self.pos = {n: i for i, n in enumerate(sched)}
        self.group_of: dict = {}

    def group(self, n):
        g = self.group_of.get(n)
        return g.find() if g is not None else None

    def depends_on(self, p, target) -> bool:
        """Whether node ``p`` waits for group ``target``: through its inputs, or because it
        is in a group, which runs as one kernel once all of its outside inputs are ready.
        Nothing earlier in the schedule than the target's first member can wait for it.

        The walk goes backwards, always from the node (or group) that starts earliest in the
        schedule: a path to the target usually runs down through earlier groups (a backward
        pass reaches its layer's forward group through the next layer's), and taking the
        latest first would walk the whole backward pass before trying it."""
        first, pos = target.first, self.pos
        seen, heap = set(), []

        def found(r):  # r is the target's; or else queue r if it may lead there
            seen.add(r)
            h = self.group(r)
            if h is target:
                return True
            if (h.last if h is not None else pos[r]) >= first:
                heapq.heappush(heap, (h.first if h is not None else pos[r], pos[r], r))
            return False

        if found(p):
            return True
        while heap:
            q = heapq.heappop(heap)[2]
            g = self.group(q)
            if g is not None:
                if g in seen:
                    continue
                seen.add(g)
                nxt = g.ext
            else:
                nxt = [r for r, _ in q.inputs]
                nxt += q.controls
            for r in nxt:
                if r not in seen and found(r):
                    return True
        return False

    def refuses(self, g, node, shape) -> str | None:
        """Why ``node`` cannot join group ``g``, or None."""
        if g.closed:
            return "the group already ends in a reduction"
        if tuple(shape) != g.shape:
            return f"shape change {format_shape(g.shape)} -> {format_shape(shape)}"
        if node.epoch != g.epoch:
            return "a state update runs in between"
        for p in [p for p, _ in node.inputs] + list(node.controls):
            if self.group(p) is not g and self.depends_on(p, g):
                return "another input depends on the group (fusing would make a cycle)"
        return None

    def add(self, g, node):
        g.members.append(node)
        self.group_of[node] = g
        g.last = max(g.last, self.pos[node])
        g.ext.extend(
            p for p in [p for p, _ in node.inputs] + list(node.controls) if self.group(p) is not g
        )

    def merge(self, keep, other):
        """Join two groups that ``node`` both extends, when neither waits for the other."""
        if any(self.depends_on(p, keep) for p in other.ext) or any(
            self.depends_on(p, other) for p in keep.ext
        ):
            return False
        keep.members = sorted(keep.members + other.members, key=self.pos.get)
        keep.ext += other.ext
        keep.first, keep.last = min(keep.first, other.first), max(keep.last, other.last)
        other.merged_into = keep
        return True


def fuse(program: Program) -> Program:
    """The program with each group of fusible elementwise nodes (and a closing reduction)
    contracted into one FUSED node; every boundary is recorded in
    ``program.facts.boundaries`` with its reason."""
    sched = program.schedule()
    f = _Fuser(sched)
    boundaries = program.facts.boundaries = []
    for n in sched:
        elementwise, reduction = _elementwise(n), _reduction(n)
        if not (elementwise or reduction):
            for p, _ in n.inputs:
                if f.group(p) is not None:
                    boundaries.append(Boundary(p, n, _not_fusible(n)))
            continue
        shape = n.inputs[0][0].avals[n.inputs[0][1]][1] if reduction else n.avals[0][1]
        chosen = None
        for p, _ in n.inputs:
            g = f.group(p)
            if g is None or g is chosen:
                continue
            why = f.refuses(g, n, shape)
            if why is None and chosen is None:
                chosen = g
            elif why is None and not reduction and f.merge(chosen, g):
                pass  # two groups meet at n: they become one
            else:
                boundaries.append(
                    Boundary(
                        p, n, why or "its group and another input's group depend on each other"
                    )
                )
        if chosen is None and not elementwise:
            continue
        if chosen is None:
            chosen = _Group(n, f.pos[n])
            f.group_of[n] = chosen
            chosen.ext.extend(p for p in [p for p, _ in n.inputs] + list(n.controls))
        else:
            f.add(chosen, n)
        chosen.closed = reduction
    groups = {}
    for n in sched:
        g = f.group(n)
        if g is not None:
            groups[n] = g
    return _contract(program, sched, groups)


def _units_in_order(sched, group_of):
    """Groups (of two or more, or of one op that asks for it: ``OpDef.fuse_alone``) and lone
    nodes, in a topological order of the contracted graph; ties keep the schedule's order."""

    def unit(n):
        g = group_of.get(n)
        if g is None or (len(g.members) == 1 and not g.members[0].op.fuse_alone):
            return n
        return g

    index, preds = {}, {}
    for n in sched:
        u = unit(n)
        index.setdefault(u, len(index))
        ps = preds.setdefault(u, set())
        for p in [p for p, _ in n.inputs] + list(n.controls):
            if unit(p) is not u:
                ps.add(unit(p))
    order = ordered_toposort(preds, index.__getitem__)
    if order is None:
        raise GraphcError("fusion made a cycle (a compiler bug)")
    return order


def _contract(program, sched, group_of):
    """Replace each group (see ``_units_in_order``) by one FUSED node, in place."""
    consumers = program.consumers()
    # values a group must materialize (fetched, or waited for): one set for every group
    pinned = (
        {p for p, _ in program.fetches}
        | set(program.targets)
        | {c for n in program.g for c in n.controls}
    )
    subst: dict = {}  # old value -> new value
    node_subst: dict = {}
    members = []

    def value(v):
        return subst.get(v, v)

    for u in _units_in_order(sched, group_of):
        if isinstance(u, _Group):
            fused = _fused_node(u, consumers, pinned, value, lambda c: node_subst.get(c, c))
            program.add(fused)
            for k, j in enumerate(fused.attrs["outputs"]):
                subst[(u.members[j], 0)] = (fused, k)
            for m in u.members:
                node_subst[m] = fused
            members += u.members
            continue
        n = u
        ins = tuple([value(v) for v in n.inputs])
        ctrls = tuple(dict.fromkeys(node_subst.get(c, c) for c in n.controls))
        if ins != n.inputs or ctrls != n.controls:
            program.set_inputs(n, ins, ctrls)
    program.substitute(subst, node_subst)
    program.remove(members)
    program._schedule = None  # the contracted program's own order (epochs, program order)
    return program


def _fused_node(group, consumers, pinned, value, control):
    members = group.members
    index = {m: j for j, m in enumerate(members)}
    inputs, input_index, body = [], {}, []
    for m in members:
        args = []
        for v in m.inputs:
            if v[0] in index:
                args.append(("op", index[v[0]]))
                continue
            k = input_index.get(v)
            if k is None:
                k = input_index[v] = len(inputs)
                inputs.append(value(v))
            args.append(("in", k))
        dtype, shape = m.avals[0]
        body.append(FusedOp(m.op, dict(m.attrs), tuple(args), dtype, tuple(shape), m.sources))
    outputs = [
        j
        for j, m in enumerate(members)
        if m in pinned or j == len(members) - 1 or any(c not in index for c, _ in consumers[m])
    ]
    attrs = {"body": tuple(body), "outputs": tuple(outputs), "loop_shape": group.shape}
    controls = dict.fromkeys(control(c) for m in members for c in m.controls if c not in index)
    return derived(
        FUSED,
        inputs,
        attrs,
        [members[j].avals[0] for j in outputs],
        members,
        controls=tuple(controls),
    )
