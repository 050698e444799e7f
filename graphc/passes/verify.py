"""Invariants every phase must keep (checked between phases with ``GRAPHC_VERIFY=1``)."""

from __future__ import annotations

import networkx as nx

from ..errors import GraphcError
from .program import Program


class VerifyError(GraphcError):
    """A compiler phase broke an invariant: a bug in graphc, or in a user pass (named)."""


def verify(program: Program, after: str, shapes: bool = False) -> None:
    """Raise VerifyError (naming the pass ``after``) unless: the program is acyclic; every
    input is an existing output of a node present, from the reader's epoch or an earlier
    one; every node keeps its source operations; fetches and targets are present. With
    ``shapes`` (after a user pass) each node's op rule must also give its recorded output
    dtypes and shapes from its inputs' (a pass that rewires an input of another shape)."""
    g = program.g
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise VerifyError(
            f"after {after}: the program has a cycle through {', '.join(repr(e[0]) for e in cycle)}"
        )
    for n in g:
        for p, i in n.inputs:
            if p not in g:
                raise VerifyError(f"after {after}: {n!r} reads {p!r}, which is not in the program")
            if i >= len(p.avals):
                raise VerifyError(f"after {after}: {n!r} reads output {i} of {p!r}")
            if p.epoch > n.epoch:
                raise VerifyError(
                    f"after {after}: {n!r} (epoch {n.epoch}) reads {p!r} from a "
                    f"later epoch {p.epoch}"
                )
        if not n.sources:
            raise VerifyError(f"after {after}: {n!r} lost its source operations")
        if shapes:
            _check_types(n, after)
    for p, _ in program.fetches:
        if p not in g:
            raise VerifyError(f"after {after}: fetched {p!r} is not in the program")
    for t in program.targets:
        if t not in g:
            raise VerifyError(f"after {after}: fetched op {t!r} is not in the program")


def _check_types(n, after):
    from .importer import infer_avals

    if n.op.infer is None or not n.inputs:
        return
    try:
        want = infer_avals(n.op, n.inputs, n.attrs)
    except GraphcError as e:
        raise VerifyError(
            f"after {after}: {n.describe()} no longer type-checks: {e.message}"
        ) from None
    if want is None:
        return
    for (d, s), (d2, s2) in zip(want, n.avals, strict=False):
        if d is not d2 or (s is not None and s2 is not None and tuple(s) != tuple(s2)):
            ins = ", ".join(f"{p.avals[i][0]}{list(p.avals[i][1] or ())}" for p, i in n.inputs)
            raise VerifyError(
                f"after {after}: {n.describe()} records {d2}{list(s2 or ())} "
                f"but its inputs [{ins}] give {d}{list(s or ())}"
            )
