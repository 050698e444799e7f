"""Elementwise fusion: runs of elementwise ops over one shape become one FUSED node, which a
backend runs as one kernel (numpy: over cache-sized tiles; cupy: one generated CUDA kernel
from the ops' ``expr``). A group may end in a reduction (sum, mean, max, min).

Rules:
  * a node joins the group of one of its inputs when it is elementwise (or a reduction of the
    group's shape), its output has the group's shape, it is in the group's epoch, and every
    input from outside the group was computed before the group's first node. The last rule
    makes the fused graph acyclic: an edge into a group always comes from earlier in the
    schedule than the group's first node;
  * values of a group that something outside uses (or the caller fetches) are materialized
    as the FUSED node's outputs; the others live only in per-tile scratch;
  * every edge where fusion stops is recorded with its reason (``annotations["boundaries"]``)
    for the plan report.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ops.reduce import REDUCE_MAX, REDUCE_MEAN, REDUCE_MIN, REDUCE_SUM
from ..shapes import format_shape, fully_known
from .program import FUSED, Program, derived, kernel_takes_out

FUSIBLE_REDUCTIONS = (REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX, REDUCE_MIN)


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
    return (op.kind == "elementwise" and kernel_takes_out(op) and len(node.avals) == 1
            and fully_known(node.avals[0][1]))


def _reduction(node) -> bool:
    if node.op not in FUSIBLE_REDUCTIONS:
        return False
    (p, i), = node.inputs
    dtype, shape = p.avals[i]
    return dtype.is_floating and fully_known(shape) and fully_known(node.avals[0][1])


class _Group:
    def __init__(self, node, first):
        self.members = [node]
        self.first = first
        self.shape = tuple(node.avals[0][1])
        self.epoch = node.epoch
        self.closed = False

    def refuses(self, node, shape, pos) -> str | None:
        """Why ``node`` cannot join this group, or None."""
        if self.closed:
            return "the group already ends in a reduction"
        if tuple(shape) != self.shape:
            return f"shape change {format_shape(self.shape)} -> {format_shape(shape)}"
        if node.epoch != self.epoch:
            return "a state update runs in between"
        members = set(self.members)
        for p in [p for p, _ in node.inputs] + list(node.controls):
            # a node with no inputs (constant, feed, variable read) can never close a cycle
            if p not in members and pos[p] >= self.first and (p.inputs or p.controls):
                return "another input is computed after the group starts"
        return None


def fuse(program: Program) -> Program:
    sched = program.schedule()
    pos = {n: i for i, n in enumerate(sched)}
    group_of: dict = {}
    boundaries = program.annotations.setdefault("boundaries", [])
    del boundaries[:]
    for n in sched:
        elementwise, reduction = _elementwise(n), _reduction(n)
        if not (elementwise or reduction):
            for p, _ in n.inputs:
                if p in group_of:
                    boundaries.append((p, n, _not_fusible(n)))
            continue
        shape = n.inputs[0][0].avals[n.inputs[0][1]][1] if reduction else n.avals[0][1]
        chosen = None
        for p, _ in n.inputs:
            g = group_of.get(p)
            if g is None or g is chosen:
                continue
            why = g.refuses(n, shape, pos)
            if why is None and chosen is None:
                chosen = g
            elif why is not None:
                boundaries.append((p, n, why))
        if chosen is not None:
            chosen.members.append(n)
            group_of[n] = chosen
            chosen.closed = reduction
        elif elementwise:
            group_of[n] = _Group(n, pos[n])
    return _contract(program, sched, group_of)


def _contract(program, sched, group_of):
    """Replace each group of two or more nodes by one FUSED node."""
    consumers = program.consumers()
    fetched = {p for p, _ in program.fetches} | set(program.targets)
    controls_on = {c for n in program.nodes for c in n.controls}
    subst: dict = {}           # old value -> new value
    node_subst: dict = {}
    nodes = []

    def value(v):
        return subst.get(v, v)

    for n in sched:
        g = group_of.get(n)
        if g is not None and len(g.members) > 1:
            if n is g.members[0]:
                fused = _fused_node(g, consumers, fetched | controls_on, value,
                                    lambda c: node_subst.get(c, c))
                nodes.append(fused)
                for k, j in enumerate(fused.attrs["outputs"]):
                    subst[(g.members[j], 0)] = (fused, k)
                for m in g.members:
                    node_subst[m] = fused
            continue
        ins = tuple(value(v) for v in n.inputs)
        ctrls = tuple(node_subst.get(c, c) for c in n.controls)
        new = n if ins == n.inputs and ctrls == n.controls else n.with_inputs(ins, ctrls)
        node_subst[n] = new
        if new is not n:
            subst.update({(n, i): (new, i) for i in range(len(n.avals))})
        nodes.append(new)
    out = Program(nodes, [value(v) for v in program.fetches],
                  [node_subst.get(t, t) for t in program.targets],
                  {t: node_subst.get(f, f) for t, f in program.feeds.items()})
    out.annotations = program.annotations
    return out


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
    outputs = [j for j, m in enumerate(members)
               if m in pinned or j == len(members) - 1
               or any(c not in index for c, _ in consumers[m])]
    attrs = {"body": tuple(body), "outputs": tuple(outputs), "loop_shape": group.shape}
    controls = dict.fromkeys(control(c) for m in members for c in m.controls if c not in index)
    return derived(FUSED, inputs, attrs, [members[j].avals[0] for j in outputs], members,
                   controls=tuple(controls))
