"""Invariants every phase must keep (checked between phases with ``GRAPHC_VERIFY=1``)."""

from __future__ import annotations

import networkx as nx

from ..errors import GraphcError
from .program import Program


class VerifyError(GraphcError):
    """A compiler phase broke an invariant: a bug in graphc, not in the user's program."""


def verify(program: Program, after: str) -> None:
    """Raise VerifyError (naming the pass ``after``) unless: the program is acyclic; every
    input is an existing output of a node present, from the reader's epoch or an earlier
    one; every node keeps its source operations; fetches and targets are present."""
    present = set(program.nodes)
    g = program.to_networkx()
    if not nx.is_directed_acyclic_graph(g):
        raise VerifyError(f"after {after}: the program has a cycle")
    for n in program.nodes:
        for p, i in n.inputs:
            if p not in present:
                raise VerifyError(f"after {after}: {n!r} reads {p!r}, which is not in the program")
            if i >= len(p.avals):
                raise VerifyError(f"after {after}: {n!r} reads output {i} of {p!r}")
            if p.epoch > n.epoch:
                raise VerifyError(f"after {after}: {n!r} (epoch {n.epoch}) reads {p!r} from a "
                                  f"later epoch {p.epoch}")
        if not n.sources:
            raise VerifyError(f"after {after}: {n!r} lost its source operations")
    for p, _ in program.fetches:
        if p not in present:
            raise VerifyError(f"after {after}: fetched {p!r} is not in the program")
    for t in program.targets:
        if t not in present:
            raise VerifyError(f"after {after}: fetched op {t!r} is not in the program")
