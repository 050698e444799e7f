"""The compiler's working copy of a program, and the rewrite driver the passes share.

The user's Graph is append-only and its Operations are immutable, so the compiler never
touches it: ``import_graph`` copies the ops it needs into ``Node`` records with concrete
shapes (the feed shapes of the signature being compiled), the nodes of a
``networkx.MultiDiGraph`` that the passes change in place (``Program``). A ``Node`` keeps
the user Operations it stands for in ``sources``, so a fused or rewritten kernel still
names the user's lines (SPEC §12).

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
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..errors import GraphcError
from ..ops.registry import OpDef
from ..shapes import format_shape

# Pseudo-ops that exist only inside the compiler: a fed value, and a fused elementwise group.
FEED = OpDef(
    "feed",
    infer=None,
    kind="feed",
    stateful=True,
    differentiable=False,
    doc="A value fed by the caller for this signature.",
)
FUSED = OpDef(
    "fused",
    infer=None,
    kind="fused",
    differentiable=False,
    doc="Elementwise ops (and an optional final reduction) run as one tiled kernel.",
)

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
    """Ops after which a variable read may see a different value (assign*, print…). A
    ``no_op`` only orders (through its control edges) and changes nothing."""
    return op.stateful and op.kind == "state" and op.name != "no_op"


class Node:
    """One compiler-side node. ``inputs`` are ``(node, output_index)`` pairs; ``avals`` the
    ``(dtype, shape)`` of each output, with concrete shapes where the signature fixes them
    (``None`` dims or a ``None`` shape where it does not)."""

    __slots__ = (
        "op",
        "inputs",
        "attrs",
        "avals",
        "sources",
        "order",
        "epoch",
        "controls",
        "uid",
        "tensor",
    )

    def __init__(self, op, inputs, attrs, avals, sources, order, epoch, controls=(), tensor=None):
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = attrs
        self.avals = tuple(avals)
        self.sources = tuple(sources)  # user Operations this node computes
        self.order = order
        self.epoch = epoch
        self.controls = tuple(controls)  # nodes that must run first (no data flows)
        self.uid = next(_ids)
        self.tensor = tensor  # for FEED nodes: the user Tensor fed

    @property
    def source(self):
        """The user Operation this node came from (the first, for merged nodes)."""
        return self.sources[0] if self.sources else None

    def with_inputs(self, inputs, controls):
        return Node(
            self.op,
            inputs,
            self.attrs,
            self.avals,
            self.sources,
            self.order,
            self.epoch,
            controls,
            self.tensor,
        )

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


@dataclass
class Facts:
    """What passes hand to later ones and to the plan, typed (no string-keyed dict):
    fusion's ``boundaries`` (for the report), the in-place choices (node -> the input
    position whose buffer it takes) and the memory plan (``passes.memory.MemoryPlan``)."""

    boundaries: list = field(default_factory=list)  # [fusion.Boundary]
    inplace: dict = field(default_factory=dict)  # Node -> input position
    memory: object = None  # memory.MemoryPlan, once planned


def node_data(node) -> dict:
    """The networkx attributes of ``node``: what a user pass reads (see ``Program``)."""
    avals = node.avals
    return {
        "op": node.op.name,
        "attrs": node.attrs,
        "dtype": avals[0][0] if avals else None,
        "shape": avals[0][1] if avals else None,
        "avals": avals,
        "locations": _locations(node.sources),
        "epoch": node.epoch,
        "opdef": node.op,
    }


def _locations(sources) -> tuple:
    """The ``file:line`` s of ``sources`` (one per node added: a node of one user op, the
    common case, takes its location's own tuple)."""
    if len(sources) == 1:
        loc = sources[0].location
        return loc.strings if loc else ()
    return tuple(str(s.location) for s in sources if s.location)


class Program:
    """The program being compiled: a ``networkx.MultiDiGraph`` (``self.g``) and the values
    fetched, the nodes run for effect and the fed tensors (``g.graph["fetches"]``,
    ``["targets"]``, ``["feeds"]``).

    Nodes of ``g`` are ``Node`` records; their networkx attributes carry ``op`` (the OpDef's
    name), ``attrs``, ``dtype`` and ``shape`` (of output 0; ``avals`` lists every output)
    and ``locations`` (the user's ``file:line`` s). An edge ``p -> n`` with key ``k`` (an
    int) is ``n``'s input ``k``, reading output ``index`` of ``p``; a control edge has the
    key ``"control"``. A node's ``inputs`` / ``controls`` mirror its in-edges: the passes
    change them through ``set_inputs``, ``add`` and ``remove``, which keep both current, and
    ``sync`` re-reads them from the graph after a user pass (which may edit it freely).

    ``facts`` is what passes hand to later ones (typed, see ``Facts``)."""

    def __init__(self, nodes=(), fetches=(), targets=(), feeds=None):
        self.g = nx.MultiDiGraph(
            fetches=list(fetches), targets=list(targets), feeds=dict(feeds or {})
        )
        self.facts = Facts()
        self._schedule = None
        for n in nodes:
            self.add(n)

    # -- the graph-level lists -----------------------------------------------------------------
    @property
    def fetches(self) -> list:
        """[(node, output index)] in the caller's order."""
        return self.g.graph["fetches"]

    @property
    def targets(self) -> list:
        """Nodes fetched as operations (run for their effects)."""
        return self.g.graph["targets"]

    @property
    def feeds(self) -> dict:
        """user Tensor -> FEED node."""
        return self.g.graph["feeds"]

    @property
    def nodes(self) -> list:
        return list(self.g)

    def __len__(self):
        return len(self.g)

    def __contains__(self, node):
        return node in self.g

    # -- changing it (every change keeps the nodes' inputs and the edges in step) ---------------
    def add(self, node) -> None:
        """Add ``node``; its inputs and control inputs must be in the program already."""
        g = self.g
        g.add_node(node, **node_data(node))
        for pos, (p, i) in enumerate(node.inputs):
            g.add_edge(p, node, key=pos, index=i, kind="data")
        for c in node.controls:
            g.add_edge(c, node, key="control", kind="control")
        self._schedule = None

    def set_inputs(self, node, inputs, controls) -> None:
        """Make ``node`` read ``inputs`` and wait for ``controls``."""
        g = self.g
        g.remove_edges_from(list(g.in_edges(node, keys=True)))
        node.inputs, node.controls = tuple(inputs), tuple(controls)
        for pos, (p, i) in enumerate(node.inputs):
            g.add_edge(p, node, key=pos, index=i, kind="data")
        for c in node.controls:
            g.add_edge(c, node, key="control", kind="control")
        self._schedule = None

    def remove(self, nodes) -> None:
        """Remove ``nodes`` (which nothing left may read) and keep a cached schedule."""
        nodes = set(nodes)
        if not nodes:
            return
        self.g.remove_nodes_from(nodes)
        if self._schedule is not None:
            self._schedule = [n for n in self._schedule if n not in nodes]

    def substitute(self, subst: dict, node_subst: dict) -> None:
        """Point the fetches, targets and feeds at replacement values / nodes."""
        gg = self.g.graph
        gg["fetches"] = [subst.get(v, v) for v in gg["fetches"]]
        gg["targets"] = [node_subst.get(t, t) for t in gg["targets"]]
        gg["feeds"] = {t: node_subst.get(n, n) for t, n in gg["feeds"].items()}

    def use_graph(self, g) -> None:
        """Make ``g`` (a MultiDiGraph over this program's nodes) the program's graph."""
        graph = dict(g.graph)
        for key in ("fetches", "targets", "feeds"):
            graph.setdefault(key, self.g.graph[key])
        if not isinstance(g, nx.MultiDiGraph):
            raise GraphcError(f"a program is a networkx.MultiDiGraph, not {type(g).__name__}")
        g.graph.update(graph)
        self.g = g
        self._schedule = None

    def sync(self, after: str) -> None:
        """Re-read every node's inputs, op, attributes and output types from the graph, after
        a pass that may have edited ``g`` directly (a user pass). Raises GraphcError naming
        the pass where the graph no longer describes a program."""
        from ..ops.registry import REGISTRY

        g = self.g
        for n, data in g.nodes(data=True):
            if not isinstance(n, Node):
                raise GraphcError(
                    f"after {after}: node {n!r} is not a compiler node; add "
                    "nodes with graphc.passes.add_op"
                )
            name = data.get("op", n.op.name)
            if name != n.op.name:
                op = REGISTRY.get(name)
                if op is None:
                    raise GraphcError(
                        f"after {after}: {n!r} has op {name!r}, which is not a registered op"
                    )
                n.op = op
            n.attrs = data.get("attrs", n.attrs)
            if n.avals and (data.get("dtype"), data.get("shape")) != n.avals[0]:
                shape = data.get("shape")
                n.avals = (
                    (data.get("dtype"), tuple(shape) if shape is not None else None),
                    *n.avals[1:],
                )
            ins, ctrls = {}, []
            for p, _, key, edge in g.in_edges(n, keys=True, data=True):
                if edge.get("kind") == "control" or key == "control":
                    ctrls.append(p)
                elif not isinstance(key, int) or key in ins:
                    raise GraphcError(
                        f"after {after}: {n!r} has an input edge with key "
                        f"{key!r}; data edges are keyed by input position"
                    )
                else:
                    ins[key] = (p, edge.get("index", 0))
            if sorted(ins) != list(range(len(ins))):
                raise GraphcError(
                    f"after {after}: the inputs of {n.describe()} are at "
                    f"positions {sorted(ins)}, not 0..{len(ins) - 1}"
                )
            n.inputs = tuple(ins[k] for k in range(len(ins)))
            n.controls = tuple(ctrls)
            data.update(node_data(n))
        for p, _ in self.fetches:
            if p not in g:
                raise GraphcError(f"after {after}: the fetched {p!r} was removed")
        if not nx.is_directed_acyclic_graph(g):
            cycle = ", ".join(repr(e[0]) for e in nx.find_cycle(g))
            raise GraphcError(f"after {after}: the program has a cycle through {cycle}")
        self._schedule = None

    def release(self) -> None:
        """Empty the graph once the plan is built. networkx caches views of a graph that
        refer back to it, so a dropped graph is a reference cycle that only the cyclic
        garbage collector frees, after walking every node, edge and attribute dict of it;
        emptied, its records are freed at once by reference counting."""
        self.g.clear()
        self._schedule = None

    # -- reading it ------------------------------------------------------------------------------
    def schedule(self) -> list[Node]:
        """The execution order: topological, epoch by epoch, then program order (networkx's
        lexicographical topological sort). Cached until a pass changes the program; the
        rewrite driver keeps it current as it goes."""
        if self._schedule is None:
            # The rules above make the key order itself topological, and then it is what
            # networkx's sort returns (the least-key ready node is always the next by key):
            # a sort and one check of every edge, where networkx's sort pushes each node
            # through a heap. Where a pass (fusion, a user's) left it otherwise, the same
            # sort (least key first among the ready nodes; keys are distinct, so the order
            # is networkx.lexicographical_topological_sort's) runs over plain sets.
            order = sorted(self.g, key=_sched_key)
            if not _is_topological(order):
                pred = self.g.pred
                order = ordered_toposort({n: set(pred[n]) for n in self.g}, _sched_key)
                if order is None:
                    raise GraphcError("the program has a cycle (a compiler bug)")
            self._schedule = order
        return list(self._schedule)

    def consumers(self) -> dict:
        """node -> list of (consumer, input position)."""
        out = {n: [] for n in self.g}
        for n in self.g:
            for pos, (p, _) in enumerate(n.inputs):
                out[p].append((n, pos))
        return out

    def dump(self) -> str:
        """One line per node, for GRAPHC_DEBUG."""
        order = self.schedule()
        index = {n: i for i, n in enumerate(order)}
        lines = []
        for n in order:
            ins = ", ".join(f"%{index[p]}" + (f".{k}" if k else "") for p, k in n.inputs)
            shapes = ", ".join(f"{d}{format_shape(s)}" for d, s in n.avals)
            lines.append(f"  %{index[n]} = {n.op.name}({ins}) : {shapes}")
        fetched = ", ".join(f"%{index[p]}" for p, _ in self.fetches)
        lines.append(f"  fetch {fetched}")
        return "\n".join(lines)


def _sched_key(n):
    return (n.epoch, writes_state(n.op), n.order, n.uid)


def _is_topological(order) -> bool:
    """Whether every node of ``order`` comes after its inputs and control inputs."""
    seen: set = set()
    for n in order:
        for p, _ in n.inputs:
            if p not in seen:
                return False
        for c in n.controls:
            if c not in seen:
                return False
        seen.add(n)
    return True


def rewrite(program: Program, rule) -> Program:
    """Apply ``rule(node)`` to every node in schedule order, changing ``program`` in place.

    ``rule`` returns ``None`` (keep the node) or a list with one replacement value
    ``(node, index)`` per output. Consumers, control edges and fetches follow the
    replacements; new nodes a rule built (found through the replacement values' inputs) join
    the program, and the replaced nodes leave it. The schedule stays current: new nodes take
    the replaced node's place."""
    subst: dict = {}  # old value -> new value
    node_subst: dict = {}  # old node -> new node (for control edges)
    order: list = []
    dead: list = []
    for node in program.schedule():
        if subst:
            ins = tuple([subst.get(v, v) for v in node.inputs])
            ctrls = tuple([node_subst.get(c, c) for c in node.controls])
            if ins != node.inputs or ctrls != node.controls:
                program.set_inputs(node, ins, ctrls)
        repl = rule(node)
        if repl is None or all(v == (node, i) for i, v in enumerate(repl)):
            order.append(node)
            continue
        repl = [subst.get(v, v) for v in repl]
        for i, value in enumerate(repl):
            subst[(node, i)] = value
        node_subst[node] = repl[0][0] if repl else node
        _add_new(program, repl, order)
        dead.append(node)
    program.substitute(subst, node_subst)
    program.remove(dead)
    program._schedule = [n for n in order if n in program.g] if dead else order
    return program


def _add_new(program, values, order):
    """Add the nodes behind ``values`` that the program lacks, inputs first."""
    g = program.g
    stack = [(v[0], False) for v in values]
    while stack:
        n, ready = stack.pop()
        if n in g:
            continue
        if ready:
            program.add(n)
            order.append(n)
            continue
        stack.append((n, True))
        stack.extend((p, False) for p, _ in n.inputs if p not in g)
        stack.extend((c, False) for c in n.controls if c not in g)


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
