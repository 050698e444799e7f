"""Control flow as ops with sub-graphs: ``cond``, ``while_loop`` and ``scan``.

A body (a branch, a loop's condition or step) is traced once into a ``Region``: a Graph of
its own whose ``placeholder`` s are the body's parameters. Outer tensors a body closes over
are *captured*: the region gets a placeholder for each, and the control op takes the outer
tensor as an explicit input (``OpDef.build`` asks the default graph to ``capture`` inputs
from enclosing graphs). A ``Function`` names the region, the tensors fed on each call
(``params``) and the tensors it returns (``outputs``); one region may serve several
Functions (its gradient is traced into the same region, over the same forward nodes).

The kernels below run a Function through ``RUN_FUNCTION``, a hook a later stage installs
(``backends/subplan.py``: the body compiled once per input signature through the compiler's
passes into a plan, then executed as generated code on every iteration). The loop itself is
this module's Python ``for``/``while`` in the executor.

Control ops are ``stateful`` with ``kind="state"``: a body may read and assign variables,
so the compiler keeps each control op where the program put it relative to other state
writes (see passes/program.py's epochs), and never folds or merges it. Gradient rules are
attached by ``frontend/control.py`` (they trace gradients of the bodies, which needs autodiff).
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from ..dtypes import int64
from ..errors import DTypeError, GraphcError, ShapeError, user_location
from ..ir.graph import Graph
from ..ir.node import Tensor
from ..shapes import format_shape
from .registry import OpDef, register
from .sources import PLACEHOLDER


class Region(Graph):
    """The graph of one traced body, nested in ``parent`` (the outer graph or region)."""

    def __init__(self, parent: Graph, name: str):
        super().__init__()
        self.parent = parent
        self.name = name
        self.seed = parent.seed
        self.location = user_location()
        self.captured: dict = {}  # parent tensor -> this region's placeholder for it

    def capture(self, t: Tensor) -> Tensor:
        """``t`` as a tensor of this region: itself, or the placeholder that stands for an
        enclosing graph's tensor (made on first use; the control op feeds it)."""
        if t.graph is self:
            return t
        if t.graph is not self.parent:
            up = getattr(self.parent, "capture", None)
            if up is None or not _encloses(t.graph, self):
                raise GraphcError(
                    f"{t.describe()} was built inside another body (a branch or loop traced "
                    f"separately); the body of {self.name} cannot use it. Compute it outside "
                    "and close over it, or return it from that body.",
                    user_location(),
                )
            t = up(t)
        inner = self.captured.get(t)
        if inner is None:
            with self.as_default(), self.name_scope(None):
                inner = PLACEHOLDER.build(
                    [],
                    {"dtype": t.dtype, "shape": t.shape},
                    name="captured",
                    location=self.location,
                ).outputs[0]
            self.captured[t] = inner
        return inner


def _encloses(graph, region) -> bool:
    g = region.parent
    while g is not None:
        if g is graph:
            return True
        g = getattr(g, "parent", None)
    return False


def param(region: Region, dtype, shape, name: str) -> Tensor:
    """A parameter of a body: a placeholder of ``region``."""
    with region.as_default(), region.name_scope(None):
        return PLACEHOLDER.build(
            [], {"dtype": dtype, "shape": shape}, name=name, location=region.location
        ).outputs[0]


class Function:
    """``outputs = f(*params)`` over a region: what a control op runs on each iteration.

    ``params`` are tensors of ``graph`` fed on each call (placeholders, or a hoisted value
    that cuts the region there); ``outputs`` tensors of ``graph``. Compiled plans are cached
    here, per input signature, by the runner (``backends/subplan.py``). ``targets`` are ops
    of the body run on every call for their effects (assignments, prints)."""

    def __init__(self, graph: Region, params, outputs, name: str, targets=()):
        self.graph = graph
        self.params = tuple(params)
        self.outputs = tuple(outputs)
        self.targets = tuple(targets)  # ops run for their effects (a branch's assigns)
        self.name = name
        self.cache: dict = {}
        # bodies the compiler derives from this one (passes/control.py: without some
        # outputs), by what they leave out, so their compiled plans are reused
        self.variants: dict = {}
        self.lock = threading.Lock()
        for t in self.params + self.outputs:
            if t.graph is not graph:
                raise GraphcError(f"{name}: {t.describe()} is not a tensor of its body")

    def __repr__(self):
        ins = ", ".join(f"{t.dtype}{format_shape(t.shape)}" for t in self.params)
        outs = ", ".join(f"{t.dtype}{format_shape(t.shape)}" for t in self.outputs)
        return f"<Function {self.name}: ({ins}) -> ({outs})>"

    # attrs are compared when the printer or a pass looks at them: identity is right
    def __eq__(self, other):
        return self is other

    __hash__ = object.__hash__


# Installed by backends/subplan.py: run(function, ctx, arrays) -> list of arrays.
RUN_FUNCTION = [None]


def run_function(fn: Function, ctx, arrays):
    runner = RUN_FUNCTION[0]
    if runner is None:
        raise GraphcError("control-flow bodies need graphc.backends.subplan (import graphc)")
    return runner(fn, ctx, arrays)


# Installed by backends/subplan.py: loop_function(fn, ctx, arrays) -> step(arrays) -> list.
LOOP_FUNCTION = [None]


def loop_function(fn, ctx, arrays):
    """``step(arrays) -> outputs``: ``fn`` run again and again on arrays shaped like
    ``arrays`` (a loop's iterations), without looking up its compiled form each time. The
    outputs may be views of the body's working memory, valid until the step after next: a
    loop copies what it keeps longer."""
    maker = LOOP_FUNCTION[0]
    if maker is None:
        return functools.partial(run_function, fn, ctx)
    return maker(fn, ctx, arrays)


def _merge_shape(a, b):
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


def _fits(shape, invariant) -> bool:
    """Whether a run-time ``shape`` fits a (partially known) static ``invariant``."""
    if invariant is None:
        return True
    return len(shape) == len(invariant) and all(
        d is None or isinstance(d, str) or d == n for d, n in zip(invariant, shape, strict=True)
    )


def _loop_shape_error(node, what, k, shape, invariant, iteration):
    return ShapeError(
        f"{node.op.name} '{node.name}': {what} {k} has shape {format_shape(invariant)} when the "
        f"loop starts but {tuple(shape)} after iteration {iteration}; a shape that changes "
        "across iterations must be declared (shape_invariants, with None for the dims that "
        "change)",
        node.location,
    )


def _copy_if_input(value, args):
    """A kernel never hands back one of its inputs' buffers (a variable's, a feed's)."""
    return np.array(value, copy=True) if any(value is a for a in args) else value


# --- cond -------------------------------------------------------------------------------------


def _cond_infer(ins, attrs):
    pred = ins[0]
    if not pred.dtype.is_bool or (pred.shape is not None and len(pred.shape) != 0):
        raise DTypeError(f"cond needs a scalar bool predicate, got {pred.describe()}")
    t, f = attrs["then_fn"], attrs["else_fn"]
    if len(t.outputs) != len(f.outputs):
        raise ShapeError(
            f"cond: true_fn returns {len(t.outputs)} values, false_fn {len(f.outputs)}"
        )
    out = []
    for i, (a, b) in enumerate(zip(t.outputs, f.outputs, strict=True)):
        if a.dtype is not b.dtype:
            raise DTypeError(f"cond: output {i} is {a.dtype} in true_fn but {b.dtype} in false_fn")
        out.append((a.dtype, _merge_shape(a.shape, b.shape)))
    return out


def _cond_kernel(ctx, node, pred, *operands, then_fn, else_fn):
    fn = then_fn if bool(pred) else else_fn
    outs = run_function(fn, ctx, operands)
    return tuple(_copy_if_input(v, operands) for v in outs)


COND = register(
    OpDef(
        "cond",
        _cond_infer,
        numpy=_cond_kernel,
        kind="state",
        stateful=True,
        doc="Runs then_fn or else_fn (Functions over the operands) as the predicate says; only "
        "the taken branch runs, side effects included. (Not true_fn/false_fn: in .g, a name "
        "starting with `true` or `false` would lex as the keyword.)",
    )
)


# --- while_loop -------------------------------------------------------------------------------


def _while_infer(ins, attrs):
    n = attrs["n_vars"]
    body = attrs["body_fn"]
    out = [(p.dtype, p.shape) for p in body.params[:n]]
    if attrs.get("record"):
        out += [
            (p.dtype, (None,) + tuple(p.shape) if p.shape is not None else None)
            for p in body.params[:n]
        ]
        out.append((int64, ()))
    return out


def _while_kernel(
    ctx, node, *args, cond_fn, body_fn, n_vars, maximum_iterations=None, record=False
):
    loop_vars, caps = list(args[:n_vars]), list(args[n_vars:])
    invariants = [p.shape for p in body_fn.params[:n_vars]]
    history = [[] for _ in range(n_vars)] if record else None
    i = 0
    while maximum_iterations is None or i < maximum_iterations:
        (go,) = run_function(cond_fn, ctx, loop_vars + caps)
        if not bool(go):
            break
        if record:
            for h, v in zip(history, loop_vars, strict=True):
                h.append(v)
        new = run_function(body_fn, ctx, loop_vars + caps)
        i += 1
        for k, (v, inv) in enumerate(zip(new, invariants, strict=True)):
            if not _fits(np.shape(v), inv):
                raise _loop_shape_error(node, "loop variable", k, np.shape(v), inv, i)
        loop_vars = list(new)
    out = [_copy_if_input(v, args) for v in loop_vars]
    if record:
        for h, v in zip(history, args[:n_vars], strict=True):
            out.append(np.stack(h) if h else np.empty((0,) + np.shape(v), np.asarray(v).dtype))
        out.append(np.asarray(i, np.int64))
    return tuple(out)


WHILE = register(
    OpDef(
        "while_loop",
        _while_infer,
        numpy=_while_kernel,
        kind="state",
        stateful=True,
        doc="Runs body_fn while cond_fn holds (at most maximum_iterations times); with record, "
        "also returns each loop variable's value at the start of every iteration, stacked, "
        "and the iteration count (what the gradient needs).",
    )
)


# --- scan -------------------------------------------------------------------------------------


def _scan_infer(ins, attrs):
    body, k, m = attrs["body_fn"], attrs["n_carry"], attrs["n_elems"]
    elems = ins[k : k + m]
    length = None
    for e in elems:
        if e.shape is None or not e.shape:
            raise ShapeError(f"scan: elems {e.describe()} must have a leading (time) axis")
        d = e.shape[0]
        if isinstance(d, int) and isinstance(length, int) and d != length:
            raise ShapeError(f"scan: elems have different lengths ({length} and {d})")
        length = d if isinstance(d, int) else length
    carries = [(p.dtype, p.shape) for p in body.params[:k]]
    ys = [
        (y.dtype, (length,) + tuple(y.shape) if y.shape is not None else None)
        for y in body.outputs[k:]
    ]
    history = [(d, (length,) + tuple(s) if s is not None else None) for d, s in carries]
    return carries + ys + history


def _scan_kernel(
    ctx,
    node,
    *args,
    body_fn,
    n_carry,
    n_elems,
    reverse=False,
    record=True,
    ys_kept=None,
    n_ys=None,
):
    k, m = n_carry, n_elems
    carry = list(args[:k])
    elems, caps = args[k : k + m], list(args[k + m :])
    n = _scan_length(node, elems)
    invariants = [p.shape for p in body_fn.params[:k]]
    if record:
        hist = [np.empty((n,) + np.shape(c), np.asarray(c).dtype) for c in carry]
    else:  # nothing reads them (passes/control.py): stand-ins of their shape, no copies
        hist = [
            np.broadcast_to(np.zeros((), np.asarray(c).dtype), (n,) + np.shape(c)) for c in carry
        ]
    ys = None
    body = None  # the body's step function, for as long as the carries keep their shapes
    for step, t in enumerate(range(n - 1, -1, -1) if reverse else range(n)):
        if record:
            for h, c in zip(hist, carry, strict=True):
                h[t] = c
        inputs = carry + [e[t] for e in elems] + caps
        if body is None:
            body = loop_function(body_fn, ctx, inputs)
        outs = body(inputs)
        for j, (v, inv) in enumerate(zip(outs[:k], invariants, strict=True)):
            if np.shape(v) != np.shape(carry[j]):
                body = None  # a new signature (the invariants allow it): look it up again
                if not _fits(np.shape(v), inv):
                    raise _loop_shape_error(node, "carry", j, np.shape(v), inv, step + 1)
        carry = list(outs[:k])
        if ys is None:
            ys = [np.empty((n,) + np.shape(y), np.asarray(y).dtype) for y in outs[k:]]
        for buf, y in zip(ys, outs[k:], strict=True):
            buf[t] = y
    ys = _stacked_outputs(np, node, body_fn, k, ys, ys_kept, n_ys)
    # the last carries may be views of the body's memory (loop_function): copies of their own
    return tuple([np.array(c, copy=True) for c in carry] + ys + hist)


def _scan_length(node, elems):
    """The common leading length of a scan's ``elems`` (numpy or cupy arrays)."""
    lengths = {e.shape[0] for e in elems}
    if len(lengths) != 1:
        raise ShapeError(
            f"scan '{node.name}': elems have different lengths {sorted(lengths)}", node.location
        )
    (n,) = lengths
    return n


def _stacked_outputs(xp, node, body_fn, k, ys, ys_kept, n_ys):
    """A scan's stacked outputs once its steps have run: empty stacks when there were no
    steps (their static shapes say what an empty stack is), and an empty placeholder in
    each slot of a stacked output the compiler dropped because nothing reads it
    (``ys_kept``, passes/control.py). ``xp`` is numpy or cupy."""
    if ys is None:
        ys = []
        for y in body_fn.outputs[k:]:
            if y.shape is None or any(not isinstance(d, int) for d in y.shape):
                raise ShapeError(
                    f"scan '{node.name}' over 0 elements: the shape of its output "
                    f"{y.describe()} is not static",
                    node.location,
                )
            ys.append(xp.empty((0,) + tuple(y.shape), y.dtype.np))
    if ys_kept is not None:
        kept, ys = ys, [xp.zeros((0,)) for _ in range(n_ys)]
        for j, y in zip(ys_kept, kept, strict=True):
            ys[j] = y
    return ys


SCAN = register(
    OpDef(
        "scan",
        _scan_infer,
        numpy=_scan_kernel,
        kind="state",
        stateful=True,
        doc="Loops body_fn over the leading axis of the elems (JAX's scan): body_fn(carry..., "
        "x_t..., captured...) -> (carry..., y_t...); returns the final carries, the stacked "
        "y's and the stacked carries each step started from (what the gradient needs; with "
        "record=False, set by the compiler when nothing reads them, zero stand-ins).",
    )
)


CONTROL_OPS = (COND, WHILE, SCAN)


def functions_of(node) -> list:
    """The Functions a control node runs (for passes and printers)."""
    return [v for v in node.attrs.values() if isinstance(v, Function)]
