"""Helpers for user passes: the common rewrites of the program graph, one line each
(in the manner of torch.fx's ``replace_all_uses_with`` and ``eliminate_dead_code``).

A user pass is a function ``fn(g) -> g | None`` over the program's
``networkx.MultiDiGraph`` (see ``program.Program`` for what nodes and edges carry), given as
``gc.compile(..., passes=[fn])`` or ``gc.Session(passes=[fn])``. A value is a pair
``(node, output index)``; where a helper takes a value, a node means its output 0::

    import graphc.passes as gp

    def double_to_add(g):
        '''x * 2 -> x + x'''
        for n in gp.find(g, "multiply"):
            x, c = gp.inputs(g, n)
            if gp.constant_value(g, c) == 2:
                gp.replace_uses(g, n, gp.add_op(g, "add", [x, x], like=n))
        gp.remove_dead(g)
"""

from __future__ import annotations

import numpy as np

from ..errors import GraphcError
from ..ops.registry import REGISTRY
from ..ops.sources import CONST
from .fold import make_const
from .importer import infer_avals
from .program import Node, derived, node_data
from .prune import live_nodes

__all__ = [
    "find",
    "inputs",
    "users",
    "add_op",
    "add_const",
    "constant_value",
    "replace_uses",
    "remove_dead",
]


def _value(v):
    return v if isinstance(v, tuple) else (v, 0)


def find(g, op: str) -> list:
    """The nodes whose op is named ``op`` (``"multiply"``, ``"maximum"``…), in a list (so
    the pass may change the graph while it walks them)."""
    return [n for n, name in g.nodes(data="op") if name == op]


def inputs(g, node) -> list:
    """``node``'s inputs, as values ``(producer, output index)`` in input order."""
    ins = {
        k: (p, d.get("index", 0))
        for p, _, k, d in g.in_edges(node, keys=True, data=True)
        if isinstance(k, int)
    }
    return [ins[k] for k in sorted(ins)]


def users(g, value) -> list:
    """The ``(consumer, input position)`` pairs reading ``value`` (a node: its output 0)."""
    node, index = _value(value)
    return [
        (c, k)
        for _, c, k, d in g.out_edges(node, keys=True, data=True)
        if isinstance(k, int) and d.get("index", 0) == index
    ]


def add_op(g, op, inputs, like=None, **attrs) -> Node:
    """Add ``op`` (a name or an OpDef) reading ``inputs`` (values or nodes), its output
    dtypes and shapes inferred by the op's own rule; return the new node. It takes the
    user's source lines of ``like`` (the node it replaces; default: the latest input), so
    errors and the plan report still name them."""
    opdef = REGISTRY.get(op) if isinstance(op, str) else op
    if opdef is None:
        raise GraphcError(f"add_op: no op named {op!r}")
    values = [_value(v) for v in inputs]
    avals = infer_avals(opdef, values, attrs) if opdef.infer is not None else None
    if avals is None:
        raise GraphcError(f"add_op: {opdef.name}'s shape rule cannot type it from its inputs")
    if like is None:
        if not values:
            raise GraphcError(f"add_op: a {opdef.name} without inputs needs like=node")
        like = max((n for n, _ in values), key=lambda n: n.order)
    node = derived(opdef, values, dict(attrs), avals, like)
    node.epoch = max([node.epoch] + [n.epoch for n, _ in values])
    _add(g, node)
    return node


def add_const(g, value, like, dtype=None) -> Node:
    """Add a constant node holding ``value`` (in ``dtype``, default: numpy's), for ``like``."""
    array = np.asarray(value, dtype=getattr(dtype, "np", dtype))
    node = make_const(array, like)
    _add(g, node)
    return node


def constant_value(g, value):
    """The array a constant-producing ``value`` holds (a 0-d one as a Python number), or
    None when it is not a constant."""
    node, _ = _value(value)
    if g.nodes[node]["op"] != CONST.name:
        return None
    v = node.attrs["value"]
    return v.item() if v.ndim == 0 or v.size == 1 else v


def replace_uses(g, old, new) -> int:
    """Make every reader of ``old`` read ``new`` instead (values, or nodes: every output and
    the control edges follow), fetches included; return how many inputs changed. ``old``
    stays in the graph until ``remove_dead``."""
    if isinstance(old, Node) and isinstance(new, Node):
        pairs = [((old, i), (new, i)) for i in range(len(old.avals))]
        for _, c, k in list(g.out_edges(old, keys=True)):
            if k == "control":
                g.remove_edge(old, c, k)
                g.add_edge(new, c, key="control", kind="control")
    else:
        pairs = [(_value(old), _value(new))]
    count = 0
    for (o, i), (n, j) in pairs:
        for c, k in users(g, (o, i)):
            g.remove_edge(o, c, k)
            g.add_edge(n, c, key=k, index=j, kind="data")
            count += 1
        g.graph["fetches"] = [(n, j) if v == (o, i) else v for v in g.graph["fetches"]]
    return count


def remove_dead(g) -> int:
    """Remove the nodes no fetched value or operation depends on; return how many."""
    live = live_nodes(g)
    dead = [n for n in g if n not in live]
    g.remove_nodes_from(dead)
    feeds = g.graph["feeds"]
    for t in [t for t, n in feeds.items() if n not in live]:
        del feeds[t]
    return len(dead)


def _add(g, node):
    g.add_node(node, **node_data(node))
    for pos, (p, i) in enumerate(node.inputs):
        g.add_edge(p, node, key=pos, index=i, kind="data")
