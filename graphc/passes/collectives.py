"""Collectives (run by the memory phase): give a plan's collective ops
(``op.extra["collective"]``: allreduce, broadcast) one shared record of their signature.

Rule: the collectives of a program, in the order the schedule runs them, are described by
(op, mode, name, dtypes, shapes); every one of them gets the attribute ``plan``, one
``PlanCollectives`` for the whole program. Before the first collective of the first run,
the ranks compare these signatures, so graphs that disagree fail with an error naming the
first difference instead of hanging in mismatched calls (see ``graphc.distributed``)."""

from __future__ import annotations

from ..ops.collectives import PlanCollectives, describe_collective
from .program import Program


def number_collectives(program: Program) -> Program:
    """The program with its collectives sharing one signature record (module docstring)."""
    nodes = [n for n in program.schedule() if n.op.extra.get("collective")]
    if not nodes:
        return program
    signature = [
        describe_collective(n.op, n.source.name if n.source else n.op.name, n.attrs, n.avals)
        for n in nodes
    ]
    record = PlanCollectives(signature, [n.source.location if n.source else None for n in nodes])
    for n in nodes:
        # a late annotation read by the kernels; the nodes' structure is unchanged
        set_attrs(program, n, {**n.attrs, "plan": record})
    return program


def set_attrs(program, node, attrs) -> None:
    """Give ``node`` new attributes, in the program's graph data too (which ``sync`` reads)."""
    node.attrs = attrs
    g = getattr(program, "g", None)
    if g is not None and node in g:
        g.nodes[node]["attrs"] = attrs
