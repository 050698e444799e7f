"""Diagnostics (SPEC §12): the errors and costs that define-and-run users otherwise trace by hand.

  * the NaN trap (``Session(check_numerics=True)`` / ``GRAPHC_CHECK_NUMERICS=1``): the
    executors call ``check_kernel`` (interpreter) or a ``NumericsTrap`` (compiled plan) after
    every kernel and stop at the first one whose floating output holds NaN or Inf;
  * why a gradient is missing (``explain_unconnected``, ``missing_gradients``);
  * why a plan was compiled again (``PlanCacheLog``, behind ``sess.plan_cache_info()``);
  * a graph that keeps growing between runs (``GrowthWatch``, the ops-in-the-loop leak).

Every message names the user's line: gradient nodes carry the location of the forward op
they differentiate (``node.origin``), compiled steps the user ops they came from
(``step.sources``). This module sits beside the IR: it reads plans and sessions by duck
typing and imports no later stage, so autodiff and the executors can all call it."""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .errors import GradientError, GraphcWarning, NumericsError, SourceLocation, user_location
from .ir.graph import walk_needed
from .shapes import format_shape


def _warn_at(message: str, location: SourceLocation | None) -> None:
    """Warn as if from the user's own line, so the warning shows ``file:line`` of their code."""
    if location is None:
        warnings.warn(message, GraphcWarning, stacklevel=3)
    else:
        warnings.warn_explicit(message, GraphcWarning, location.file, location.line)


def _where(op, located=True) -> str:
    """``matmul 'dense/MatMul' at model.py:12``, plus the forward op a gradient node belongs
    to; ``located=False`` leaves out the op's own line (when the message starts with it)."""
    text = op.describe() if located else f"{op.op.name} '{op.name}'"
    if op.origin is not None:
        text += f" (in the gradient of {op.origin.describe()})"
    return text


# --- the NaN trap -----------------------------------------------------------------------------


def has_nonfinite(a) -> bool:
    """Whether a floating array holds NaN or Inf. The sum is the fast test (NaN and Inf
    survive it); only when it is not finite — which large finite values can also cause —
    do we look element by element."""
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(a, axis=None)):
            return False
    return not np.isfinite(a).all()


def summarize(a) -> str:
    """``float32(2, 3): min -1.5, max 0.25, 0 NaN, 0 Inf`` — what an array held."""
    a = np.asarray(a)
    head = f"{a.dtype}{format_shape(a.shape)}"
    if a.size == 0 or a.dtype.kind not in "biuf":
        return head
    if a.dtype.kind != "f":
        return f"{head}: min {a.min()}, max {a.max()}"
    finite = a[np.isfinite(a)]
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    span = f"min {finite.min():.6g}, max {finite.max():.6g}" if finite.size else "no finite values"
    return f"{head}: {span}, {n_nan} NaN, {n_inf} Inf"


def numerics_error(op, kernel_name, inputs, outputs, upstream=(), note="") -> NumericsError:
    """The NaN trap's error for user op ``op`` (computed by kernel ``kernel_name``):
    ``inputs`` are (tensor name, array) pairs, ``outputs`` the arrays it produced;
    ``upstream`` says where inputs that were already not finite came from."""
    bad = [np.asarray(o) for o in outputs if has_nonfinite(o)]
    counts = ", ".join(
        f"{int(np.isnan(o).sum())} NaN and {int(np.isinf(o).sum())} Inf in "
        f"{o.dtype}{format_shape(o.shape)}"
        for o in bad
    )
    what = _where(op, located=False) if op is not None else kernel_name
    if op is not None and op.op.name != kernel_name:  # a rewritten kernel computes it
        what += f" (computed by the optimized kernel {kernel_name})"
    lines = [
        f"NaN trap: {what}{note} produced {counts}; it is the first op of this run to "
        "make NaN or Inf." + (" Its inputs:" if inputs else "")
    ]
    lines += [f"  input {i} '{name}': {summarize(a)}" for i, (name, a) in enumerate(inputs)]
    lines += [f"  an input held NaN or Inf before this run: it comes from {u}" for u in upstream]
    return NumericsError("\n".join(lines), op.location if op is not None else None, node=op)


# Ops whose "kernel" hands out a value held, not computed: a NaN there is blamed on the first
# op that uses it (saying where it came from), as in a compiled plan, where they are no steps.
_HELD = ("const", "variable")


def check_kernel(node, args, results) -> None:
    """The interpreter's trap: raise if ``node``'s kernel produced NaN or Inf."""
    if node.op.name in _HELD:
        return
    for r in results:
        if has_nonfinite(r):
            inputs = [(t.name, a) for t, a in zip(node.inputs, args, strict=True)]
            upstream = [
                _producer(t.op.op.name, t.name, t.op)
                for t, a in zip(node.inputs, args, strict=True)
                if has_nonfinite(a)
            ]
            raise numerics_error(node, node.op.name, inputs, results, upstream)


def _producer(kind, name, op) -> str:
    """Where a value that was not finite before the run came from, for the trap's message."""
    if kind in ("placeholder", "feed"):
        return f"the feed for '{name}'"
    if kind == "variable":
        return (
            f"variable '{name.split(':')[0]}' (its initial value, a set_variable, or an "
            "update in an earlier run)"
        )
    return f"the constant '{name}'" + (f" built at {op.location}" if op and op.location else "")


def _primary(sources, opdef):
    """The user op a compiled kernel stands for: the one of its kind, else the first."""
    return next((s for s in sources if s.op is opdef), sources[0] if sources else None)


class NumericsTrap:
    """The compiled plan's trap. The numpy executor generates, after each kernel step,
    ``CK(step_index, (outputs…), (inputs…))`` (only when check_numerics is on, so the
    ordinary plan carries no checks). A step that writes in place over an input first
    saves a copy of it, so the error can still show what went in."""

    def __init__(self, plan):
        self.plan = plan
        self.graph = next((s.graph for st in plan.steps for s in st.sources), None)

    def wrap(self, step, lines):
        """``lines`` (generated ``(text, body)`` pairs of ``step``) with the check added."""
        if step.kind == "read" or not step.outputs:
            return lines
        ins = [f"s{k}" for k in step.inputs]
        before = []
        for pos, k in enumerate(step.inputs):
            if k in step.outputs:  # in place: the kernel overwrites this input
                before.append((f"P{step.index}_{pos} = s{k}.copy()", None))
                ins[pos] = f"P{step.index}_{pos}"
        outs = "".join(f"s{k}, " for k in step.outputs)
        check = (f"CK({step.index}, ({outs}), ({''.join(i + ', ' for i in ins)}))", None)
        return before + list(lines) + [check]

    def __call__(self, index, outs, ins):
        for o in outs:
            if has_nonfinite(o):
                raise self._error(self.plan.steps[index], outs, ins)

    def _error(self, step, outs, ins):
        names = list(step.input_names) or [self.plan.slots[k].name for k in step.inputs]
        upstream = []
        for k, name, a in zip(step.inputs, names, ins, strict=True):
            if has_nonfinite(a):
                slot = self.plan.slots[k]
                op = self._user_op(name)
                if slot.kind == "const" and op is not None and op.op.name != "const":
                    # constant folding ran this op when the plan was compiled: blame it
                    return numerics_error(
                        op,
                        op.op.name,
                        [],
                        [a],
                        note=" (run once, when constant folding compiled it)",
                    )
                upstream.append(_producer(slot.kind, name, op))
        if step.kind == "fused":
            found = _first_bad_member(step, ins, names)
            if found is not None:
                return found
        return numerics_error(
            _primary(step.sources, step.op),
            step.title,
            list(zip(names, ins, strict=True)),
            outs,
            upstream,
        )

    def _user_op(self, tensor_name):
        try:
            return self.graph.get_operation_by_name(tensor_name.rsplit(":", 1)[0])
        except (AttributeError, LookupError):
            return None


def trap_targets(fetch_tensors, fetch_ops, fed) -> list:
    """The control inputs of everything a run needs. A compiled plan drops control inputs
    that have no effect (the loss a training op waits for) while the interpreter runs them;
    with the trap on, the session keeps them as targets, so a NaN in the loss is caught at
    every optimization level, at the same op."""
    targets = {
        c: True for op in walk_needed(fetch_tensors, fetch_ops, fed) for c in op.control_inputs
    }
    return [c for c in targets if c not in fetch_ops]


def _first_bad_member(step, ins, names):
    """Re-run a fused body op by op on its saved inputs and blame the first op whose result
    is not finite (the fused kernel only shows the group's outputs)."""
    results = []
    with np.errstate(all="ignore"):
        for fop in step.body:
            args, arg_names = [], []
            for kind, a in fop.args:
                if kind == "in":
                    args.append(ins[a])
                    arg_names.append(names[a])
                else:
                    args.append(results[a])
                    src = step.body[a].sources
                    arg_names.append(f"{src[0].name}:0" if src else step.body[a].op.name)
            out = fop.op.numpy(*args, **fop.attrs)
            results.append(out)
            if has_nonfinite(out):
                return numerics_error(
                    _primary(fop.sources, fop.op),
                    fop.op.name,
                    list(zip(arg_names, args, strict=True)),
                    [out],
                )
    return None


# --- why a gradient is missing ----------------------------------------------------------------


def _ancestors(ys) -> set:
    seen, stack = set(), [y.op for y in ys]
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(t.op for t in op.inputs)
    return seen


def _passes_gradient(op) -> bool:
    """Whether gradients can flow from ``op``'s outputs back to its inputs at all: it has a
    rule, is marked differentiable, and has a floating output (argmax, casts to integer
    types and comparisons do not)."""
    return (
        op.op.grad is not None
        and op.op.differentiable
        and any(t.dtype.is_floating for t in op.outputs)
    )


def cut_ops(ys, x) -> list:
    """The non-differentiable ops where every path from ``x`` to ``ys`` stops carrying a
    gradient: walking forward from ``x``, the first op on each path that does not pass one."""
    reach = _ancestors(ys)
    carrying = {x}
    cuts = []
    for op in sorted(reach, key=lambda o: o.id):
        if op.id < x.op.id or not any(t in carrying for t in op.inputs):
            continue
        if _passes_gradient(op):
            carrying.update(t for t in op.outputs if t.dtype.is_floating)
        else:
            cuts.append(op)
    return cuts


def explain_unconnected(ys, x) -> tuple[str, SourceLocation | None]:
    """Why ``x`` gets no gradient from ``ys``, and the line to blame: the variable's own line
    when nothing uses it, else the line of the op that cuts the path."""
    names = ", ".join(f"'{y.name}'" for y in ys)
    if x.op not in _ancestors(ys):
        return (
            f"{x.describe()} has no path to {names}: the loss does not use it (is it the "
            "variable you meant, or is a layer missing from the loss?)",
            x.op.location,
        )
    if not x.dtype.is_floating:
        return (
            f"{x.describe()} is {x.dtype}: integer and bool tensors carry no gradient",
            x.op.location,
        )
    cuts = cut_ops(ys, x)
    if not cuts:
        return (
            f"no gradient flows from {names} to {x.describe()}: the gradient rules on "
            "every path between them return none (stop_gradient, or a custom gradient "
            "that returns None)",
            x.op.location,
        )
    blame = "; ".join(
        f"{_where(op)}, whose {_out_dtypes(op)} output carries no gradient" for op in cuts[:3]
    )
    more = f" (and {len(cuts) - 3} more)" if len(cuts) > 3 else ""
    return (
        f"no gradient flows from {names} to {x.describe()}: every path between them goes "
        f"through a non-differentiable op: {blame}{more}. argmax, casts to integer types, "
        "comparisons and stop_gradient cut gradients; use a differentiable surrogate "
        "(softmax instead of argmax, keep values floating)",
        cuts[0].location,
    )


def _out_dtypes(op) -> str:
    if not op.outputs:
        return "(no)"
    return "/".join(str(t.dtype) for t in op.outputs)


def unconnected_error(ys, x) -> GradientError:
    """``gradients(..., unconnected="raise")``'s error for ``x``."""
    message, location = explain_unconnected(ys, x)
    asked = user_location()
    if asked is not None and asked != location:
        message += f" [gradients requested at {asked}]"
    return GradientError(message, location, node=x.op)


def missing_gradients(loss, grads_and_vars) -> None:
    """``minimize``'s check: raise when no variable gets a gradient from ``loss`` (TF's
    "No gradients provided for any variable", now with the reason for each), and warn once,
    naming them, when only some do (those are left out of the update)."""
    missing = [v for g, v in grads_and_vars if g is None]
    if not missing:
        return
    reasons = "\n".join(f"  {v.op.name}: {explain_unconnected([loss], v)[0]}" for v in missing)
    where = user_location()
    if len(missing) == len(grads_and_vars):
        raise GradientError(
            f"no gradient flows from {loss.describe()} to any of the variables "
            f"it should train:\n{reasons}",
            where,
        )
    _warn_at(
        f"{len(missing)} of {len(grads_and_vars)} variables get no gradient from "
        f"{loss.describe()} and will not be trained:\n{reasons}",
        where,
    )


# --- why a plan was compiled again ------------------------------------------------------------


@dataclass
class PlanInfo:
    """One compiled plan of a session: what it computes, for which feed shapes and dtypes,
    and — when these fetches had been compiled before — what changed."""

    fetches: tuple  # names of the fetched tensors and operations
    feeds: dict  # fed tensor name -> (shape, dtype name)
    backend: str
    optimize: int
    check_numerics: bool
    compiled_at: SourceLocation | None  # the user's run() line that compiled it
    reason: str | None = None  # None for the first plan of these fetches
    previous: dict = field(default_factory=dict)

    @property
    def signature(self) -> str:
        feeds = ", ".join(f"{n}: {d}{format_shape(s)}" for n, (s, d) in self.feeds.items())
        return f"fetch [{', '.join(self.fetches)}] feed {{{feeds}}}"

    def __str__(self):
        head = f"plan for {self.signature} [{self.backend}, optimize={self.optimize}]"
        if self.compiled_at is not None:
            head += f", compiled at {self.compiled_at}"
        return head + (f"\n  recompiled: {self.reason}" if self.reason else "")


def feed_changes(before: dict, after: dict, tensors: dict) -> str:
    """Which feed's shape or dtype differs between two signatures of the same fetches."""
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        t = tensors.get(name)
        built = f" (built at {t.op.location})" if t is not None and t.op.location else ""
        if old is None:
            changes.append(f"'{name}'{built} is now fed")
        elif new is None:
            changes.append(f"'{name}'{built} is no longer fed")
        elif old[1] != new[1]:
            changes.append(f"the feed for '{name}'{built} changed dtype {old[1]} -> {new[1]}")
        elif old[0] != new[0]:
            changes.append(
                f"the feed for '{name}'{built} changed shape "
                f"{format_shape(old[0])} -> {format_shape(new[0])}"
            )
    return "; ".join(changes) or "the same signature (the cache was cleared)"


class PlanCacheInfo(list):
    """``sess.plan_cache_info()``: the list of ``PlanInfo`` s, printed one plan per line."""

    def __str__(self):
        return "\n".join(map(str, self)) if self else "no plan compiled yet"


class PlanCacheLog:
    """Records every plan a session compiles; a recompilation of already-seen fetches gets
    the reason. ``GRAPHC_DEBUG=1`` prints each entry to stderr as it happens."""

    def __init__(self, backend, optimize, check_numerics):
        self.entries: list[PlanInfo] = []
        self._settings = (backend, optimize, check_numerics)
        self._last: dict = {}  # fetch names -> latest PlanInfo

    def record(self, fetch_tensors, fetch_ops, feeds) -> PlanInfo:
        fetches = tuple(e.name for e in list(fetch_tensors) + list(fetch_ops))
        sig = {t.name: (tuple(v.shape), str(v.dtype)) for t, v in feeds.items()}
        info = PlanInfo(fetches, sig, *self._settings, compiled_at=user_location())
        last = self._last.get(fetches)
        if last is not None:
            info.previous = last.feeds
            info.reason = feed_changes(last.feeds, sig, {t.name: t for t in feeds})
        self._last[fetches] = info
        self.entries.append(info)
        if os.environ.get("GRAPHC_DEBUG", "") not in ("", "0"):
            print(f"graphc: compiled {info}", file=sys.stderr)
        return info

    def info(self) -> PlanCacheInfo:
        return PlanCacheInfo(self.entries)


# --- a graph that keeps growing between runs --------------------------------------------------


class GrowthWatch:
    """The ops-in-the-training-loop leak: ops built between the runs of a session are never
    freed, and each new fetch compiles a new plan. A line that adds ops in ``REPEATS``
    separate intervals between runs is building inside the loop; warn once, naming it.
    Growing is not wrong in itself (build, initialize, build the training op, run), and a
    helper's line may build in two phases; a third time is a loop."""

    REPEATS = 3

    def __init__(self, graph):
        self.graph = graph
        self.seen = len(graph)
        self.intervals: Counter = Counter()  # user line -> intervals in which it added ops
        self.warned = False

    def check(self) -> None:
        """Called by ``Session.run`` when the graph's size differs from the last run's."""
        if self.warned:
            self.seen = len(self.graph)
            return
        ops = self.graph.get_operations()[self.seen :]
        self.seen += len(ops)
        per_line = Counter(op.location for op in ops if op.location is not None)
        self.intervals.update(per_line.keys())
        leaking = [loc for loc, n in self.intervals.items() if n >= self.REPEATS]
        if not leaking:
            return
        self.warned = True
        leaking.sort(key=lambda loc: -per_line.get(loc, 0))
        kinds = {
            loc: ", ".join(dict.fromkeys(op.op.name for op in ops if op.location == loc))
            for loc in leaking[:3]
        }
        lines = ", ".join(
            f"{loc} (+{per_line.get(loc, 0)} ops: {kinds[loc]})" for loc in leaking[:3]
        )
        _warn_at(
            f"the graph keeps growing between runs of this session: {len(ops)} ops were "
            f"added since the previous run, by {lines}. Ops built inside a training "
            "loop are never freed and each new one is compiled again; build them once "
            "before the loop and run them inside it (graph.finalize() makes a new op "
            "an error at the line that adds it)",
            leaking[0],
        )


__all__ = [
    "GraphcWarning",
    "NumericsTrap",
    "check_kernel",
    "trap_targets",
    "has_nonfinite",
    "explain_unconnected",
    "unconnected_error",
    "missing_gradients",
    "PlanCacheLog",
    "PlanCacheInfo",
    "PlanInfo",
    "GrowthWatch",
]
