"""Algebraic simplification: small local rewrites, each stated in its docstring.

A rewrite is ``local_<pattern>(node, ctx) -> [replacement value] | None``, registered with
``@local_rule``; ``ctx`` (a ``RuleContext``) holds what a rule may need to know about the
rest of the program. ``simplify`` applies every rule to every node (inputs first) and
repeats until nothing changes. A replacement must have the node's exact dtype and shape, so
``x * 1`` with a ``1`` that broadcasts ``x`` to a larger shape is left alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ops import elementwise as E
from ..ops.array import (
    BROADCAST_LIKE,
    BROADCAST_TO,
    IDENTITY,
    RESHAPE,
    RESHAPE_LIKE,
    SPLIT,
    STOP_GRADIENT,
    TRANSPOSE,
)
from ..ops.linalg import MATMUL
from ..ops.reduce import REDUCE_SUM, SUM_TO_LIKE
from ..shapes import broadcast_axes, fully_known
from .fold import SHAPE_ONLY_INPUTS, is_const, make_const, shape_only_positions
from .importer import _Abstract
from .program import Program, derived, rewrite

RULES: list = []


@dataclass
class RuleContext:
    """What the rules see of the program besides the node: ``uses``, how many readers each
    value has (a rule that moves work off a value may only do so if nothing else reads
    it). Built by ``simplify`` before each round and passed to every rule."""

    uses: dict = field(default_factory=dict)


_MAX_ROUNDS = 4


def local_rule(fn=None, *, tracks=None):
    """Register ``fn`` in the simplification phase. ``@local_rule(tracks=(OP, …))`` tries
    it only on nodes of those ops (or op kinds, named by string: ``"elementwise"``), as
    PyTensor's tracked rewriters: a rule costs nothing on the nodes it cannot match."""

    def register(fn):
        fn.tracks = None if tracks is None else frozenset(tracks)
        RULES.append(fn)
        return fn

    return register(fn) if fn is not None else register


_RULES_BY_OP: dict = {}  # OpDef -> the rules that may match it, in RULES order


def rules_for(op) -> list:
    """The rules, in order, that track ``op`` (or every op)."""
    if _RULES_BY_OP.get(None) != len(RULES):  # a rule registered since: sort them again
        _RULES_BY_OP.clear()
        _RULES_BY_OP[None] = len(RULES)
    found = _RULES_BY_OP.get(op)
    if found is None:
        found = _RULES_BY_OP[op] = [
            r
            for r in RULES
            if getattr(r, "tracks", None) is None or op in r.tracks or op.kind in r.tracks
        ]
    return found


# --- helpers ----------------------------------------------------------------------------------


def aval(value):
    """The (dtype, shape) of ``value``, a (node, index) pair."""
    node, i = value
    return node.avals[i]


def producer(value, op=None):
    """The node computing ``value`` if it has op ``op`` (any op when None), else None."""
    node = value[0]
    return node if op is None or node.op is op else None


def is_scalar(value, c) -> bool:
    """``value`` is a constant whose every element equals ``c``."""
    if not is_const(value):
        return False
    v = value[0].attrs["value"]
    return v.size > 0 and v.size <= 64 and bool(np.all(v == c))


def same_aval(value, node) -> bool:
    """Whether ``value`` has ``node``'s dtype and shape, so it can replace it as is."""
    return aval(value) == node.avals[0]


def build(op, inputs, like, **attrs):
    """A new node ``op(*inputs)`` replacing ``like``; its shape comes from the op's rule."""
    abstract = [_Abstract(*aval(v), "") for v in inputs]
    return (derived(op, inputs, attrs, op.infer(abstract, attrs), like), 0)


def scalar(c, like_value, like_node):
    """A 0-d constant ``c`` in ``like_value``'s dtype, replacing ``like_node``."""
    dtype = aval(like_value)[0]
    return (make_const(np.asarray(c, dtype.np), like_node), 0)


def _keep_if_same(value, node):
    return [value] if same_aval(value, node) else None


# --- identities -------------------------------------------------------------------------------


@local_rule(tracks=(E.MULTIPLY,))
def local_mul_one(node, ctx):
    """x * 1 -> x ; 1 * x -> x"""
    if node.op is E.MULTIPLY:
        a, b = node.inputs
        if is_scalar(b, 1):
            return _keep_if_same(a, node)
        if is_scalar(a, 1):
            return _keep_if_same(b, node)
    return None


@local_rule(tracks=(E.ADD, E.SUBTRACT))
def local_add_zero(node, ctx):
    """x + 0 -> x ; 0 + x -> x ; x - 0 -> x"""
    if node.op in (E.ADD, E.SUBTRACT):
        a, b = node.inputs
        if is_scalar(b, 0):
            return _keep_if_same(a, node)
        if node.op is E.ADD and is_scalar(a, 0):
            return _keep_if_same(b, node)
    return None


@local_rule(tracks=(E.DIVIDE,))
def local_div_one(node, ctx):
    """x / 1 -> x (float x)"""
    if node.op is E.DIVIDE and is_scalar(node.inputs[1], 1):
        return _keep_if_same(node.inputs[0], node)
    return None


@local_rule(tracks=(E.NEG,))
def local_double_neg(node, ctx):
    """-(-x) -> x"""
    if node.op is E.NEG:
        inner = producer(node.inputs[0], E.NEG)
        if inner is not None:
            return _keep_if_same(inner.inputs[0], node)
    return None


@local_rule(tracks=(E.ADD, E.SUBTRACT))
def local_add_neg(node, ctx):
    """x + (-y) -> x - y ; (-y) + x -> x - y ; x - (-y) -> x + y"""
    if node.op not in (E.ADD, E.SUBTRACT):
        return None
    a, b = node.inputs
    nb = producer(b, E.NEG)
    if nb is not None:
        op = E.SUBTRACT if node.op is E.ADD else E.ADD
        return _keep_if_same(build(op, (a, nb.inputs[0]), node), node)
    na = producer(a, E.NEG)
    if na is not None and node.op is E.ADD:
        return _keep_if_same(build(E.SUBTRACT, (b, na.inputs[0]), node), node)
    return None


@local_rule(tracks=(IDENTITY, STOP_GRADIENT))
def local_identity(node, ctx):
    """identity(x) -> x ; stop_gradient(x) -> x (gradients are already built)"""
    if node.op in (IDENTITY, STOP_GRADIENT):
        return [node.inputs[0]]
    return None


@local_rule(tracks=(E.POW,))
def local_pow_const(node, ctx):
    """x ** 2 -> square(x) ; x ** 1 -> x ; x ** 0.5 -> sqrt(x) (float x)"""
    if node.op is not E.POW or not aval(node.inputs[0])[0].is_floating:
        return None
    x, y = node.inputs
    if is_scalar(y, 2):
        return _keep_if_same(build(E.SQUARE, (x,), node), node)
    if is_scalar(y, 1):
        return _keep_if_same(x, node)
    if is_scalar(y, 0.5):
        return _keep_if_same(build(E.SQRT, (x,), node), node)
    return None


# --- shape ops --------------------------------------------------------------------------------


@local_rule(tracks=(TRANSPOSE,))
def local_transpose_transpose(node, ctx):
    """transpose(transpose(x, p), q) -> transpose(x, p[q]), or x when that is the identity"""
    if node.op is not TRANSPOSE:
        return None
    inner = producer(node.inputs[0], TRANSPOSE)
    if inner is None:
        return None
    p, q = inner.attrs["perm"], node.attrs["perm"]
    perm = tuple(p[i] for i in q)
    x = inner.inputs[0]
    if perm == tuple(range(len(perm))):
        return [x]
    return [build(TRANSPOSE, (x,), node, perm=perm)]


@local_rule(tracks=(RESHAPE, RESHAPE_LIKE))
def local_reshape_chain(node, ctx):
    """reshape(reshape(x, s1), s2) -> reshape(x, s2) ; reshape(x, shape of x) -> x"""
    if node.op not in (RESHAPE, RESHAPE_LIKE):
        return None
    x = node.inputs[0]
    if same_aval(x, node) and fully_known(aval(x)[1]):
        return [x]
    inner = producer(x, RESHAPE) or producer(x, RESHAPE_LIKE)
    if inner is not None and fully_known(node.avals[0][1]):
        return [build(RESHAPE, (inner.inputs[0],), node, shape=tuple(node.avals[0][1]))]
    return None


@local_rule(tracks=(RESHAPE_LIKE, BROADCAST_LIKE, *SHAPE_ONLY_INPUTS))
def local_static_like(node, ctx):
    """reshape_like(x, y) -> reshape(x, s) ; broadcast_like(x, y) -> broadcast_to(x, s), once
    the signature fixes y's shape s; other shape-only inputs of known shape become zero-byte
    constants, so what computed them can be pruned"""
    if node.op is RESHAPE_LIKE and fully_known(node.avals[0][1]):
        return [build(RESHAPE, (node.inputs[0],), node, shape=tuple(node.avals[0][1]))]
    if node.op is BROADCAST_LIKE and fully_known(node.avals[0][1]):
        x = node.inputs[0]
        if same_aval(x, node):
            return [x]
        return [build(BROADCAST_TO, (x,), node, shape=tuple(node.avals[0][1]))]
    positions = shape_only_positions(node)
    ins = list(node.inputs)
    changed = False
    for pos in positions:
        d, s = aval(ins[pos])
        if not is_const(ins[pos]) and fully_known(s):
            ins[pos] = (make_const(np.broadcast_to(np.zeros((), d.np), s), node), 0)
            changed = True
    if not changed:
        return None
    return [
        (derived(node.op, ins, node.attrs, node.avals, node), i) for i in range(len(node.avals))
    ]


@local_rule(tracks=(E.MULTIPLY,))
def local_scalar_into_matmul(node, ctx):
    """c * (a @ b) -> (c * a) @ b, or a @ (c * b), for a scalar constant c: the scaling meets
    the smallest operand instead of the product (SGD's ``lr * x.T @ g``), when nothing else
    reads the product"""
    if node.op is not E.MULTIPLY:
        return None
    for c, m in (node.inputs, node.inputs[::-1]):
        mm = producer(m, MATMUL)
        if (
            mm is not None
            and is_const(c)
            and c[0].attrs["value"].size == 1
            and ctx.uses.get(m) == 1
            and fully_known(node.avals[0][1])
        ):
            a, b = mm.inputs
            size = [int(np.prod(aval(v)[1])) if fully_known(aval(v)[1]) else None for v in (a, b)]
            if None in size or min(size) >= int(np.prod(node.avals[0][1])):
                return None
            scalar_c = (make_const(c[0].attrs["value"].reshape(()), node), 0)
            if size[0] <= size[1]:
                a = build(E.MULTIPLY, (scalar_c, a), node)
            else:
                b = build(E.MULTIPLY, (scalar_c, b), node)
            return _keep_if_same(build(MATMUL, (a, b), [mm, node], **mm.attrs), node)
    return None


@local_rule(tracks=(SPLIT,))
def local_split_of_matmul(node, ctx):
    """split(a @ b, axis=-1) -> [a @ b[..., part] for each part] when one part alone is read
    and nothing else reads the product: the other parts are never computed (an LSTM's
    gradient into ``concat([x, h]) @ w`` needs only the ``h`` columns when ``x`` is fed).
    With several parts read, one product stays cheaper than several narrower ones."""
    if node.op is not SPLIT:
        return None
    mm = producer(node.inputs[0], MATMUL)
    outs = [(node, i) for i in range(len(node.avals))]
    read = sum(1 for v in outs if ctx.uses.get(v))
    if mm is None or ctx.uses.get(node.inputs[0]) != 1 or read != 1 or len(outs) < 2:
        return None
    a, b = mm.inputs
    shape_a, shape_b = aval(a)[1], aval(b)[1]
    if (
        shape_a is None
        or shape_b is None
        or len(shape_a) != 2
        or len(shape_b) != 2
        or node.attrs["axis"] != 1
        or not fully_known(shape_b)
    ):
        return None
    # b's columns (its rows, when transposed) split as the product's: a split, like the
    # one it replaces, is a view on every backend
    attrs = {"sizes": node.attrs["sizes"], "axis": 0 if mm.attrs["transpose_b"] else 1}
    cut = derived(SPLIT, (b,), attrs, SPLIT.infer([_Abstract(*aval(b), "")], attrs), [mm, node])
    parts = [build(MATMUL, (a, (cut, k)), [mm, node], **mm.attrs) for k in range(len(node.avals))]
    if [aval(p) for p in parts] != list(node.avals):
        return None
    return parts


@local_rule(tracks=(SPLIT,))
def local_split_of_bias_add(node, ctx):
    """split(x + b) -> [split(x)[k] + split(b)[k]] for a broadcast b (a bias) when nothing
    else reads the sum: each part's add joins the elementwise ops that read the part (an
    LSTM's ``concat([x, h]) @ w + b`` then split into gates: the bias add fuses into the
    cell, instead of a pass of its own over the gate matrix)"""
    if node.op is not SPLIT:
        return None
    add = producer(node.inputs[0], E.ADD)
    if add is None or ctx.uses.get(node.inputs[0]) != 1 or add.controls:
        return None
    shape = aval(node.inputs[0])[1]
    axis, sizes = node.attrs["axis"], node.attrs["sizes"]
    shapes = [aval(v)[1] for v in add.inputs]
    if not fully_known(shape) or not all(s is not None and fully_known(s) for s in shapes):
        return None
    if all(tuple(s) == tuple(shape) for s in shapes):
        return None  # no bias: one add over the whole is cheaper than one per part
    pieces = []
    for v, s in zip(add.inputs, shapes, strict=True):
        own = axis - (len(shape) - len(s))  # the split axis among v's (right-aligned) axes
        if own < 0 or s[own] == 1:
            pieces.append([v] * len(sizes))  # broadcast along the split axis: whole
            continue
        attrs = {"sizes": sizes, "axis": own}
        abstract = [_Abstract(*aval(v), "")]
        part = derived(SPLIT, (v,), attrs, SPLIT.infer(abstract, attrs), [add, node])
        pieces.append([(part, k) for k in range(len(sizes))])
    parts = [build(E.ADD, (a, b), [add, node]) for a, b in zip(*pieces, strict=True)]
    if [aval(p) for p in parts] != list(node.avals):
        return None
    return parts


@local_rule(tracks=(SUM_TO_LIKE,))
def local_sum_to_static_shape(node, ctx):
    """sum_to_like(g, y) -> reshape(reduce_sum(g, axes, keepdims=True), s) once the signature
    fixes y's shape s: the broadcast axes are known, and a reduction can end a fused group"""
    if node.op is not SUM_TO_LIKE:
        return None
    g = node.inputs[0]
    gs, xs = aval(g)[1], node.avals[0][1]
    if not (fully_known(gs) and fully_known(xs)):
        return None
    axes = broadcast_axes(gs, xs)
    if not axes:
        r = g
    else:  # a bias gradient sums its leading axes away: no reshape is needed after it
        dropped = tuple(d for i, d in enumerate(gs) if i not in axes)
        r = build(REDUCE_SUM, (g,), node, axis=axes, keepdims=dropped != tuple(xs))
    return [r] if aval(r)[1] == tuple(xs) else [build(RESHAPE, (r,), node, shape=tuple(xs))]


@local_rule(tracks=("elementwise",))
def local_broadcast_into_elementwise(node, ctx):
    """f(broadcast_to(x, s), y) -> f(x, y) for elementwise f whose own broadcasting already
    gives the output shape: the expanded copy is never made, and f can fuse"""
    if node.op.kind != "elementwise" or len(node.inputs) < 2:
        return None
    ins = list(node.inputs)
    for k, v in enumerate(ins):
        b = producer(v, BROADCAST_TO)
        if b is None:
            continue
        shapes = [aval(w)[1] for w in ins[:k] + [b.inputs[0]] + ins[k + 1 :]]
        if not all(fully_known(s) for s in shapes):
            continue
        if tuple(np.broadcast_shapes(*shapes)) == tuple(node.avals[0][1]):
            ins[k] = b.inputs[0]
            return [(derived(node.op, ins, node.attrs, node.avals, node), 0)]
    return None


# --- recognising numerically delicate patterns ------------------------------------------------


@local_rule(tracks=(E.DIVIDE, E.RECIPROCAL))
def local_sigmoid(node, ctx):
    """1 / (1 + exp(-x)) -> sigmoid(x) ; reciprocal(1 + exp(-x)) -> sigmoid(x)"""
    if node.op is E.DIVIDE and is_scalar(node.inputs[0], 1):
        denom = node.inputs[1]
    elif node.op is E.RECIPROCAL:
        denom = node.inputs[0]
    else:
        return None
    add = producer(denom, E.ADD)
    if add is None:
        return None
    a, b = add.inputs
    other = b if is_scalar(a, 1) else a if is_scalar(b, 1) else None
    e = producer(other, E.EXP) if other is not None else None
    n = producer(e.inputs[0], E.NEG) if e is not None else None
    if n is None:
        return None
    return _keep_if_same(build(E.SIGMOID, (n.inputs[0],), node), node)


@local_rule(tracks=(E.LOG, E.LOG1P))
def local_softplus(node, ctx):
    """log(1 + exp(x)) -> max(x, 0) + log1p(exp(-|x|)) ; log1p(exp(x)) -> the same
    (the stable softplus: exp never overflows)"""
    if node.op is E.LOG:
        add = producer(node.inputs[0], E.ADD)
        if add is None:
            return None
        a, b = add.inputs
        other = b if is_scalar(a, 1) else a if is_scalar(b, 1) else None
    elif node.op is E.LOG1P:
        other = node.inputs[0]
    else:
        return None
    e = producer(other, E.EXP) if other is not None else None
    if e is None:
        return None
    x = e.inputs[0]
    if not aval(x)[0].is_floating:
        return None
    pos = build(E.MAXIMUM, (x, scalar(0, x, node)), node)
    tail = build(
        E.LOG1P, (build(E.EXP, (build(E.NEG, (build(E.ABS, (x,), node),), node),), node),), node
    )
    return _keep_if_same(build(E.ADD, (pos, tail), node), node)


@local_rule(tracks=(E.LOG,))
def local_log_softmax(node, ctx):
    """log(exp(z) / reduce_sum(exp(z), axis, keepdims=True)) -> z - log(reduce_sum(exp(z), …))
    (log of a softmax becomes a log-softmax: no log of an underflowed 0)"""
    if node.op is not E.LOG:
        return None
    div = producer(node.inputs[0], E.DIVIDE)
    if div is None:
        return None
    e_value, s_value = div.inputs
    e = producer(e_value, E.EXP)
    s = producer(s_value, REDUCE_SUM)
    if e is None or s is None or s.inputs[0] != e_value or not s.attrs["keepdims"]:
        return None
    z = e.inputs[0]
    return _keep_if_same(build(E.SUBTRACT, (z, build(E.LOG, (s_value,), node)), node), node)


# --- the pass ---------------------------------------------------------------------------------


def _apply_rules(node, fired, ctx):
    if node.controls or node.op.stateful:
        return None  # its ordering constraints must survive
    for rule in rules_for(node.op):
        repl = rule(node, ctx)
        if repl is not None:
            fired.append(rule.__name__)
            return repl
    return None


def use_counts(program: Program) -> dict:
    """value -> how many inputs (and fetches) read it."""
    uses: dict = {}
    for n in program.g:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
    for v in program.fetches:
        uses[v] = uses.get(v, 0) + 1
    return uses


def simplify(program: Program) -> Program:
    """The program after the ``local_*`` rules, applied in rounds until none fires (or a
    round limit is reached)."""
    for _ in range(_MAX_ROUNDS):
        fired: list = []
        ctx = RuleContext(use_counts(program))
        program = rewrite(
            program, lambda node, fired=fired, ctx=ctx: _apply_rules(node, fired, ctx)
        )
        if not fired:
            break
    return program
