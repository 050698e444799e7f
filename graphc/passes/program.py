"""The compiler's working copy of a program, and the rewrite driver the passes share.

The user's Graph is append-only and its Operations are immutable, so the compiler never
touches it: ``import_graph`` copies the ops into lightweight ``Node`` records with concrete
shapes (the feed shapes of the signature being compiled), and every rewrite builds new
records. A ``Node`` keeps the user Operations it stands for in ``sources``, so a fused or
rewritten kernel still names the user's lines (SPEC §12).

Rules every pass keeps:
  * ``order`` is the position in the user's program (the source op's creation index). A
    node's inputs always have a smaller ``order``, so scheduling by ``order`` is a
    topological order that also keeps stateful ops where the user put them.
  * ``epoch`` counts the state-writing ops (assign*, print, …) before the node; a writer
    belongs to the epoch it closes. Variables are read by reference, so two nodes in
    different epochs may see different variable values: CSE and fusion only combine nodes
    of one epoch, and the schedule runs epoch by epoch, each epoch's writer last. Nothing
    of an epoch can depend on its writer (the writer's consumers come later in the
    program), so that order is always topological.
  * stateful ops are never folded, merged or moved across their dependencies.
"""

from __future__ import annotations

import heapq
import inspect
import itertools

import networkx as nx
import numpy as np

from ..errors import GraphcError
from ..ops.registry import OpDef
from ..shapes import format_shape

# Pseudo-ops that exist only inside the compiler: a fed value, and a fused elementwise group.
FEED = OpDef("feed", infer=None, kind="feed", stateful=True, differentiable=False,
             doc="A value fed by the caller for this signature.")
FUSED = OpDef("fused", infer=None, kind="fused", differentiable=False,
              doc="Elementwise ops (and an optional final reduction) run as one tiled kernel.")

_ids = itertools.count()


def ordered_toposort(preds: dict, key) -> list | None:
    """A topological order of ``preds`` (node -> the set of its predecessors, all of them
    keys too) that, of the nodes ready at each step, takes the one with the least ``key``
    (Kahn's algorithm with a heap; keys must be distinct). None if there is a cycle."""
    users: dict = {n: [] for n in preds}
    for n, ps in preds.items():
        for p in ps:
            users[p].append(n)
    waiting = {n: len(ps) for n, ps in preds.items()}
    ready = [(key(n), n) for n, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        n = heapq.heappop(ready)[1]
        order.append(n)
        for u in users[n]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, (key(u), u))
    return order if len(order) == len(preds) else None


def writes_state(op) -> bool:
    """Ops after which a variable read may see a different value (assign*, print…)."""
    return op.stateful and op.kind == "state"


class Node:
    """One compiler-side node. ``inputs`` are ``(node, output_index)`` pairs; ``avals`` the
    ``(dtype, shape)`` of each output, with concrete shapes where the signature fixes them
    (``None`` dims or a ``None`` shape where it does not)."""

    __slots__ = ("op", "inputs", "attrs", "avals", "sources", "order", "epoch", "controls",
                 "uid", "tensor")

    def __init__(self, op, inputs, attrs, avals, sources, order, epoch, controls=(),
                 tensor=None):
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = attrs
        self.avals = tuple(avals)
        self.sources = tuple(sources)      # user Operations this node computes
        self.order = order
        self.epoch = epoch
        self.controls = tuple(controls)    # nodes that must run first (no data flows)
        self.uid = next(_ids)
        self.tensor = tensor               # for FEED nodes: the user Tensor fed

    @property
    def source(self):
        """The user Operation this node came from (the first, for merged nodes)."""
        return self.sources[0] if self.sources else None

    def with_inputs(self, inputs, controls):
        return Node(self.op, inputs, self.attrs, self.avals, self.sources, self.order,
                    self.epoch, controls, self.tensor)

    def value_name(self, k: int = 0) -> str:
        """``'dense/add:0'``: the user tensor output ``k`` stands for (a fused node's output
        k is the result of the body op it exports, not of its first member)."""
        node = self
        if self.op is FUSED:
            node, k = self.attrs["body"][self.attrs["outputs"][k]], 0
        src = node.sources[0] if node.sources else None
        return f"{src.name}:{k}" if src is not None else node.op.name

    def describe(self) -> str:
        src = self.source
        where = f" at {src.location}" if src is not None and src.location else ""
        name = f" '{src.name}'" if src is not None else ""
        return f"{self.op.name}{name}{where}"

    def __repr__(self):
        shapes = ", ".join(f"{d}{format_shape(s)}" for d, s in self.avals)
        return f"<{self.op.name}#{self.uid} -> {shapes}>"


class Program:
    """The nodes being compiled, the values fetched and the nodes run for effect.

    ``annotations`` is where passes leave facts for later ones (fusion boundaries,
    in-place decisions) without changing the nodes."""

    def __init__(self, nodes, fetches, targets, feeds):
        self.nodes = list(nodes)
        self.fetches = list(fetches)       # [(node, index)] in the caller's order
        self.targets = list(targets)       # nodes fetched as operations (for their effects)
        self.feeds = dict(feeds)           # user Tensor -> FEED node
        self.annotations: dict = {}
        self._schedule = None

    def __len__(self):
        return len(self.nodes)

    def to_networkx(self) -> nx.DiGraph:
        """Edges from producer to consumer, for data (``kind="data"``) and control deps."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        for n in self.nodes:
            for p, _ in n.inputs:
                g.add_edge(p, n, kind="data")
            for c in n.controls:
                if not g.has_edge(c, n):
                    g.add_edge(c, n, kind="control")
        return g

    def schedule(self) -> list[Node]:
        """The execution order: topological, epoch by epoch, then program order.

        (networkx's lexicographical_topological_sort computes the same order; this is that
        algorithm over the nodes' own input lists, which spares building a DiGraph for each
        of the several passes that ask — the compile of a deep model spent most of its time
        there.) Cached: a Program's nodes never change."""
        if self._schedule is None:
            def key(n):
                return (n.epoch, writes_state(n.op), n.order, n.uid)
            present = set(self.nodes)
            preds = {n: {p for p, _ in n.inputs if p in present}
                     | {c for c in n.controls if c in present} for n in self.nodes}
            order = ordered_toposort(preds, key)
            if order is None:
                raise GraphcError("the program has a cycle (a compiler bug)")
            self._schedule = order
        return list(self._schedule)

    def consumers(self) -> dict:
        """node -> list of (consumer, input position)."""
        out = {n: [] for n in self.nodes}
        for n in self.nodes:
            for pos, (p, _) in enumerate(n.inputs):
                out[p].append((n, pos))
        return out

    def dump(self) -> str:
        """One line per node, for GRAPHC_DEBUG."""
        index = {n: i for i, n in enumerate(self.schedule())}
        lines = []
        for n in sorted(self.nodes, key=index.get):
            ins = ", ".join(f"%{index[p]}" + (f".{k}" if k else "") for p, k in n.inputs)
            shapes = ", ".join(f"{d}{format_shape(s)}" for d, s in n.avals)
            lines.append(f"  %{index[n]} = {n.op.name}({ins}) : {shapes}")
        fetched = ", ".join(f"%{index[p]}" for p, _ in self.fetches)
        lines.append(f"  fetch {fetched}")
        return "\n".join(lines)


def rewrite(program: Program, rule) -> Program:
    """Rebuild ``program`` in schedule order, applying ``rule(node)`` to every node.

    ``rule`` returns ``None`` (keep the node) or a list with one replacement value
    ``(node, index)`` per output. Consumers, control edges and fetches follow the
    replacements; nodes whose inputs changed are copied, never mutated."""
    subst: dict = {}          # old value -> new value
    node_subst: dict = {}     # old node -> new node (for control edges)
    nodes: list = []
    present: set = set()
    for node in program.schedule():
        ins = tuple(subst.get(v, v) for v in node.inputs)
        ctrls = tuple(node_subst.get(c, c) for c in node.controls)
        same = ins == node.inputs and ctrls == node.controls
        new = node if same else node.with_inputs(ins, ctrls)
        repl = rule(new)
        if repl is None:
            nodes.append(new)
            present.add(new)
            node_subst[node] = new
            for i in range(len(node.avals)):
                if new is not node:
                    subst[(node, i)] = (new, i)
            continue
        for i, value in enumerate(repl):
            subst[(node, i)] = value
        node_subst[node] = repl[0][0] if repl else new
        # New nodes a rule created are found through the replacement values' inputs.
        _collect_new(repl, nodes, present)
    fetches = [subst.get(v, v) for v in program.fetches]
    targets = [node_subst.get(t, t) for t in program.targets]
    feeds = {t: node_subst.get(n, n) for t, n in program.feeds.items()}
    out = Program(nodes, fetches, targets, feeds)
    out.annotations = program.annotations
    return out


def _collect_new(values, nodes, seen):
    stack = [v[0] for v in values]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        nodes.append(n)
        stack.extend(p for p, _ in n.inputs)
        stack.extend(n.controls)


def derived(op, inputs, attrs, avals, like: Node | list, controls=()) -> Node:
    """A new node that replaces ``like`` (a node or several): it keeps their sources, and the
    latest order and epoch so that it runs where they ran."""
    group = like if isinstance(like, (list, tuple)) else [like]
    sources = tuple(dict.fromkeys(s for n in group for s in n.sources))
    last = max(group, key=lambda n: n.order)
    return Node(op, inputs, attrs, avals, sources, last.order, last.epoch, controls)


def kernel_takes_out(op) -> bool:
    """Whether ``op``'s numpy kernel can write into a given buffer (``out=``)."""
    cached = _TAKES_OUT.get(op)
    if cached is None:
        fn = op.numpy
        if fn is None or op.stateful:
            cached = False
        elif isinstance(fn, np.ufunc):
            cached = True
        else:
            try:
                cached = "out" in inspect.signature(fn).parameters
            except (TypeError, ValueError):
                cached = False
        _TAKES_OUT[op] = cached
    return cached


_TAKES_OUT: dict = {}
