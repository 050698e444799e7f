"""Pruning to the fetches (dead-code elimination).

Rule: a node stays only if a fetched value or a fetched operation depends on it, through
data or control edges. A fed tensor cuts the graph: what computes it is never run."""

from __future__ import annotations

from .program import Program


def prune(program: Program) -> Program:
    """The program without the nodes no fetch or target depends on."""
    live = set()
    stack = [n for n, _ in program.fetches] + list(program.targets)
    while stack:
        n = stack.pop()
        if n in live:
            continue
        live.add(n)
        stack.extend(p for p, _ in n.inputs)
        stack.extend(n.controls)
    out = Program([n for n in program.nodes if n in live], program.fetches, program.targets,
                  {t: n for t, n in program.feeds.items() if n in live})
    out.annotations = program.annotations
    return out
