"""Pruning to the fetches (dead-code elimination).

Rule: a node stays only if a fetched value or a fetched operation depends on it, through
data or control edges (its networkx ancestors). A fed tensor cuts the graph: what computes
it is never run."""

from __future__ import annotations

import networkx as nx

from .program import Program


def live_nodes(g) -> set:
    """The fetched and target nodes of the program graph ``g`` and all their ancestors."""
    live: set = set()
    for n in [n for n, _ in g.graph["fetches"]] + list(g.graph["targets"]):
        if n not in live:  # (an ancestor of an earlier root brings its own with it)
            live.add(n)
            live |= nx.ancestors(g, n)
    return live


def prune(program: Program) -> Program:
    """The program without the nodes no fetch or target depends on."""
    live = live_nodes(program.g)
    program.remove([n for n in program.g if n not in live])
    feeds = program.feeds
    for t in [t for t, n in feeds.items() if n not in live]:
        del feeds[t]
    return program
