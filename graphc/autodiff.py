"""Reverse-mode differentiation that adds nodes to the graph (SPEC §4).

The driver, not each rule, does the bookkeeping (STYLE principle 4): it walks the ops
between ``xs`` and ``ys`` in reverse creation order, calls each op's pullback, checks
that the rule returned one gradient per input, sums fan-in, and undoes broadcasting so
every gradient has its input's shape. Integer and bool tensors carry no gradient.
Gradient nodes remember the forward op they differentiate (``node.origin``)."""

from __future__ import annotations

from .diagnostics import unconnected_error
from .errors import GradientError, GraphcError, user_location
from .ir.gcpause import paused_gc
from .ir.node import Tensor
from .ops.array import fill_like, stop_gradient
from .ops.elementwise import add
from .ops.reduce import sum_to_like
from .ops.sources import convert
from .shapes import dims_compatible


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _differentiable(t: Tensor) -> bool:
    return t.dtype.is_floating


def _between(ys, xs):
    """Ops on some path from an x to a y (through data edges), in creation order."""
    from_x = set()
    x_ops = {x.op for x in xs}
    graph_ops = ys[0].graph.get_operations()
    lo = min(op.id for op in x_ops)
    hi = max(y.op.id for y in ys)
    for op in graph_ops[lo : hi + 1]:
        if op in x_ops or any(t.op in from_x for t in op.inputs):
            from_x.add(op)
    to_y = set()
    stack = [y.op for y in ys]
    while stack:
        op = stack.pop()
        if op in to_y or op not in from_x:
            continue
        to_y.add(op)
        stack.extend(t.op for t in op.inputs)
    return sorted(to_y, key=lambda op: op.id)


def _accumulate(grads: dict, t: Tensor, g):
    if g is None:
        return
    grads.setdefault(t, []).append(g)


def _sum(parts):
    total = parts[0]
    for p in parts[1:]:
        total = add(total, p)
    return total


class _Origin:
    """While a pullback runs, nodes it builds carry the forward op's location and origin."""

    def __init__(self, op):
        self.op = op

    def __enter__(self):
        graph = self.op.graph
        self.saved = graph._grad_origin
        graph._grad_origin = self.op
        return self

    def __exit__(self, *exc):
        self.op.graph._grad_origin = self.saved
        return False


@paused_gc
def gradients(ys, xs, grad_ys=None, unconnected="none", name="gradients", stop_gradients=None):
    """d(sum of ys)/d(each x), as new graph tensors.

    ``grad_ys`` weight each y (default ones). For an x with no path to any y the result is
    ``None`` (``unconnected="none"``), zeros (``"zero"``), or a GradientError explaining
    which op cuts the path (``"raise"``). Tensors in ``stop_gradients`` are treated as
    constants, as if wrapped in ``stop_gradient``."""
    ys, xs = _as_list(ys), _as_list(xs)
    if unconnected not in ("none", "zero", "raise"):
        raise GraphcError(f"unconnected must be 'none', 'zero' or 'raise', not {unconnected!r}")
    for t in ys + xs:
        if not isinstance(t, Tensor):
            raise GraphcError(f"gradients() takes tensors, got {t!r}", user_location())
    grad_ys = _as_list(grad_ys) if grad_ys is not None else [None] * len(ys)
    stops = {t for t in _as_list(stop_gradients or [])}
    graph = ys[0].graph

    if len(grad_ys) != len(ys):
        raise GradientError(
            f"gradients() got {len(grad_ys)} grad_ys for {len(ys)} ys", user_location()
        )
    # gradient nodes join the ys' graph even when another graph is the default
    with graph.as_default():
        return _reverse_pass(graph, ys, xs, grad_ys, unconnected, name, stops)


def _reverse_pass(graph, ys, xs, grad_ys, unconnected, name, stops):
    grads: dict = {}
    for y, gy in zip(ys, grad_ys, strict=True):
        if not _differentiable(y):
            continue
        _accumulate(grads, y, fill_like(y, 1) if gy is None else _seed_gradient(y, gy))

    with graph.name_scope(name):
        for op in reversed(_between(ys, xs)):
            with _Origin(op):  # the fan-in sums are part of op's gradient (for error messages)
                out_grads = [(_sum(grads[t]) if t in grads else None) for t in op.outputs]
            for t, g in zip(op.outputs, out_grads, strict=True):
                if g is not None:
                    grads[t] = [g]
            if all(g is None for g in out_grads) or op.op.grad is None:
                continue
            if any(t in stops for t in op.outputs):
                continue
            if all(not _differentiable(t) for t in op.inputs):
                continue
            filled = [
                g if g is not None else fill_like(t, 0)
                for g, t in zip(out_grads, op.outputs, strict=True)
            ]
            with _Origin(op):
                in_grads = op.op.grad(op, *filled)
            _check_rule(op, in_grads)
            for t, g in zip(op.inputs, in_grads, strict=True):
                if g is None or not _differentiable(t):
                    continue
                if g.dtype is not t.dtype:
                    raise GradientError(
                        f"the gradient rule of {op.describe()} returned a "
                        f"{g.dtype} gradient for the {t.dtype} input {t.name}"
                    )
                # undoing op's broadcast is part of op's gradient; two unknown ranks compare
                # equal but may differ when fed (x * reduce_sum(x, -1, keepdims=True))
                undo = g.shape != t.shape or g.shape is None
                with _Origin(op):
                    _accumulate(grads, t, sum_to_like(g, t) if undo else g)

        result = []
        for x in xs:
            if x in grads:
                result.append(_sum(grads[x]))
            elif unconnected == "zero":
                result.append(fill_like(x, 0))
            elif unconnected == "raise":
                raise unconnected_error(ys, x)
            else:
                result.append(None)
    return result


def _seed_gradient(y, gy):
    """``grad_ys`` entry for ``y`` as a tensor of y's dtype and shape."""
    gy = convert(gy, like=y)
    if gy.dtype is not y.dtype:
        raise GradientError(
            f"grad_ys for {y.describe()} is {gy.describe()}: the dtypes differ", user_location()
        )
    if (
        gy.shape is not None
        and y.shape is not None
        and (
            len(gy.shape) != len(y.shape)
            or not all(dims_compatible(a, b) for a, b in zip(gy.shape, y.shape, strict=True))
        )
    ):
        raise GradientError(f"grad_ys for {y.describe()} has shape {gy.shape}", user_location())
    return gy


def _check_rule(op, in_grads):
    if not isinstance(in_grads, (list, tuple)) or len(in_grads) != len(op.inputs):
        n = len(in_grads) if isinstance(in_grads, (list, tuple)) else type(in_grads).__name__
        raise GradientError(
            f"the gradient rule of {op.describe()} returned {n} gradients for "
            f"{len(op.inputs)} inputs"
        )
    for t, g in zip(op.inputs, in_grads, strict=True):
        if g is None:
            continue
        if not isinstance(g, Tensor):
            raise GradientError(
                f"the gradient rule of {op.describe()} returned {g!r}, not a tensor or None"
            )
        if g.shape is not None and t.shape is not None:
            # a gradient may carry broadcast axes (summed away later) but no clashing dims
            lead = len(g.shape) - len(t.shape)
            if lead < 0 or not all(
                dims_compatible(a, b) or b == 1
                for a, b in zip(g.shape[lead:], t.shape, strict=True)
            ):
                raise GradientError(
                    f"the gradient rule of {op.describe()} returned shape "
                    f"{g.shape} for input {t.describe()}"
                )


__all__ = ["gradients", "stop_gradient"]
