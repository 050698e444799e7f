"""Copy a user Graph into a compiler ``Program`` for one signature (fetches, fed tensors,
feed shapes), with every shape made concrete where the feed shapes allow.

Shapes are re-derived by running each op's own shape rule on abstract values that carry
the concrete shapes, so a ``None`` batch dimension becomes the fed batch size; where a rule
cannot say (an op whose output shape depends on run-time values) the static shape stays,
and the memory planner leaves that value to the kernel to allocate."""

from __future__ import annotations

from ..errors import GraphcError, ShapeError
from ..ir.graph import needed_ops
from ..shapes import format_shape, fully_known
from .program import FEED, Node, Program, writes_state


class _Abstract:
    """What a shape rule sees of an input: a dtype, a shape and a name for messages."""

    __slots__ = ("dtype", "shape", "name")

    def __init__(self, dtype, shape, name):
        self.dtype, self.shape, self.name = dtype, shape, name

    def describe(self) -> str:
        return f"'{self.name}' [{self.dtype}{format_shape(self.shape)}]"


def import_graph(graph, fetch_tensors, fetch_ops, feed_shapes, feed_dtypes=None) -> Program:
    """The ops the fetches reach as a Program: fed tensors become FEED nodes, fetched
    tensors the Program's fetches. Raises FeedError (naming the fetch) when a needed
    placeholder is not fed. Nodes reached only through control edges that order nothing
    stay: the prune pass removes them and reports how many."""
    feed_dtypes = feed_dtypes or {}
    # only what the fetches reach (raising FeedError for a missing feed): a signature's
    # compile costs what it runs, not what the whole graph holds
    needed, _ = needed_ops(fetch_tensors, fetch_ops, set(feed_shapes))
    values: dict = {}  # user Tensor -> (Node, index)
    nodes_of: dict = {}  # user Operation -> Node
    nodes: list = []
    feeds: dict = {}
    # A pure node without inputs (a constant built under control_dependencies) hands its
    # control edges to its consumers: the same nodes run first and are kept alive, and the
    # constant itself can be folded, merged and fused like any other.
    handed: dict = {}
    # Control edges order effects. The schedule already runs every state write where the
    # program put it (epochs, see program.py), so an edge only has to keep alive what has an
    # effect: a control input with no state write or random draw at or above it is dropped.
    # (The optimizers' "after all gradients" edges would otherwise be thousands of edges.)
    effect: dict = {}
    epoch = 0
    for t, shape in feed_shapes.items():
        dtype = feed_dtypes.get(t, t.dtype)
        shape = tuple(shape) if shape is not None else t.shape
        node = Node(FEED, (), {}, [(dtype, shape)], (t.op,), -1, 0, tensor=t)
        effect[node] = False
        feeds[t] = node
        values[t] = (node, 0)
        nodes.append(node)
    for op in needed:
        if writes_state(op.op):
            epoch += 1
        ins = [values[t] for t in op.inputs]
        controls = [nodes_of[c] for c in op.control_inputs if effect.get(nodes_of.get(c))]
        inherited = [c for p, _ in ins for c in handed.get(p, ())]
        if inherited:  # (a dict: an optimizer's constants hand on one edge per variable)
            controls = list(dict.fromkeys(controls + inherited))
        if not ins and not op.op.stateful and controls:
            handed_controls, controls = controls, []
        else:
            handed_controls = None
        attrs = _resolved_attrs(op, ins)
        node = Node(
            op.op,
            ins,
            attrs,
            _avals(op, ins, attrs),
            (op,),
            op.id,
            epoch - 1 if writes_state(op.op) else epoch,
            controls,
        )
        if handed_controls:
            handed[node] = handed_controls
        effect[node] = (
            writes_state(op.op)
            or op.op.kind == "random"
            or bool(controls or handed_controls)
            or any(effect[p] for p, _ in ins)
        )
        nodes_of[op] = node
        nodes.append(node)
        for t in op.outputs:
            values.setdefault(t, (node, t.index))
    fetches = [values[t] for t in fetch_tensors]
    targets = [nodes_of[op] for op in fetch_ops]
    return Program(nodes, fetches, targets, feeds)


def infer_avals(op, inputs, attrs):
    """``op``'s output (dtype, shape)s for input values ``inputs`` ((node, index) pairs),
    from its own rule; None where the rule needs more than types (a GraphcError from the
    rule, a real type clash, propagates)."""
    abstract = [_Abstract(n.avals[i][0], n.avals[i][1], n.value_name(i)) for n, i in inputs]
    try:
        avals = op.infer(abstract, dict(attrs))
    except GraphcError:
        raise
    except Exception:  # a rule that needs more than shapes
        return None
    return [(d, tuple(s) if s is not None else None) for d, s in avals]


def _resolved_attrs(op, ins):
    """The op's attrs, made concrete by its ``extra["resolve"]`` hook where an input's rank
    or dimension was unknown when the op was built and the feeds now say it
    (``reduce_max(x, axis=-1)`` on ``placeholder(float32)``: the axes become non-negative
    ints; ``split(x, 3, axis=1)`` with ``x`` of shape ``(None, None)``: the sizes)."""
    attrs = dict(op.attrs)
    resolve = op.op.extra.get("resolve") if op.op.extra else None
    if resolve is None or not ins or all(fully_known(t.shape) for t in op.inputs):
        return attrs
    abstract = [
        _Abstract(n.avals[i][0], n.avals[i][1], t.name)
        for (n, i), t in zip(ins, op.inputs, strict=False)
    ]
    if any(a.shape is None for a in abstract):
        return attrs
    try:
        return resolve(abstract, attrs)
    except Exception:  # the kernel checks the values at run time and names the node
        return attrs


def _avals(op, ins, attrs=None):
    """The op's output (dtype, shape)s for the concrete input shapes, or its static ones."""
    static = [(t.dtype, t.shape) for t in op.outputs]
    if op.op.infer is None or not ins:
        return static
    if all(_same(n.avals[i][1], t.shape) for (n, i), t in zip(ins, op.inputs, strict=False)):
        return static  # nothing became more concrete: keep the rule's answer
    abstract = [
        _Abstract(n.avals[i][0], n.avals[i][1], t.name)
        for (n, i), t in zip(ins, op.inputs, strict=False)
    ]
    try:
        avals = op.op.infer(abstract, dict(op.attrs if attrs is None else attrs))
    except ShapeError as e:  # the fed shapes do not fit: say so now, at the op's line
        shapes = ", ".join(format_shape(a.shape) for a in abstract)
        raise ShapeError(
            f"{op.type} '{op.name}' cannot take the fed shapes [{shapes}]: {e.message}",
            op.location,
            node=op,
        ) from None
    except Exception:  # a rule that needs more than shapes: the static answer is still right
        return static
    if len(avals) != len(static):
        return static
    return [(d, tuple(s) if s is not None else None) for d, s in avals]


def _same(a, b):
    return a is None and b is None or (a is not None and b is not None and tuple(a) == tuple(b))
