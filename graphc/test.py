"""Testing helpers for users and for graphc's own suite (``gc.test``).

``check_gradients`` is graphc's ``verify_grad`` / ``check_grads``: it compares the symbolic
gradient that ``gc.gradients`` builds with central finite differences, in float64."""

from __future__ import annotations

import numpy as np

from . import dtypes as D
from .autodiff import gradients
from .errors import GradientError
from .ir.graph import Graph
from .ir.node import Tensor
from .ops.array import cast
from .ops.reduce import reduce_sum
from .ops.sources import constant, placeholder
from .session import Session


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def check_gradients(fn, inputs, wrt=None, delta=1e-6, rtol=1e-5, atol=1e-6, seed=0, optimize=0):
    """Check ``gc.gradients`` of ``fn(*tensors)`` against central finite differences.

    ``inputs`` are numpy values; floating ones become float64 placeholders (finite
    differences need the precision), the others integer/bool placeholders of their own
    dtype. ``fn`` builds the graph from those placeholders and returns a tensor or a
    list of tensors. Each output is contracted with fixed random weights into one scalar,
    so every entry of the Jacobian counts, not only its column sums. ``wrt`` (indices into
    ``inputs``) defaults to every floating input.

    Returns ``[(symbolic, numeric), ...]`` per checked input; raises GradientCheckError (a
    GradientError and an AssertionError) naming the input and the worst entry when they
    differ by more than ``atol + rtol * |numeric|``.
    """

    arrays = [_as_input(a) for a in inputs]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    graph = Graph()
    with graph.as_default():
        xs = [placeholder(D.as_dtype(a.dtype), a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
        ys = [y for y in _as_list(fn(*xs)) if isinstance(y, Tensor)]
        feed = dict(zip(xs, arrays, strict=True))
        with Session(graph=graph, optimize=optimize) as probe:
            values = probe.run(ys, feed)
        rng = np.random.default_rng(seed)
        terms = []
        for y, v in zip(ys, values, strict=True):
            if not y.dtype.is_floating:
                continue
            w = constant(rng.uniform(0.5, 1.5, np.shape(v)), dtype=D.float64)
            y64 = cast(y, D.float64) if y.dtype is not D.float64 else y
            terms.append(reduce_sum(y64 * w))
        if not terms:
            raise GradientCheckError(
                "check_gradients: fn returned no floating tensor to differentiate"
            )
        loss = terms[0]
        for t in terms[1:]:
            loss = loss + t
        grads = gradients(loss, [xs[i] for i in wrt], unconnected="zero")

        with Session(graph=graph, optimize=optimize) as sess:
            symbolic = sess.run(grads, feed)
            f = sess.make_callable(loss, xs)
            results = []
            for i, g in zip(wrt, symbolic, strict=True):
                numeric = _central_differences(f, arrays, i, delta)
                _compare(xs[i], np.asarray(g, dtype=np.float64), numeric, rtol, atol)
                results.append((np.asarray(g), numeric))
    return results


class GradientCheckError(GradientError, AssertionError):
    """Symbolic and numeric gradients disagree (an AssertionError, so test runners report
    it as a failed check)."""


def _as_input(a):
    arr = np.asarray(a)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr


def _central_differences(f, arrays, i, delta):
    x = arrays[i].astype(np.float64)
    out = np.zeros(x.shape, dtype=np.float64)
    args = list(arrays)
    for idx in np.ndindex(*x.shape):
        hi, lo = x.copy(), x.copy()
        hi[idx] += delta
        lo[idx] -= delta
        args[i] = hi.astype(arrays[i].dtype)
        f_hi = float(f(*args))
        args[i] = lo.astype(arrays[i].dtype)
        f_lo = float(f(*args))
        out[idx] = (f_hi - f_lo) / (2 * delta)
    return out


def _compare(x, symbolic, numeric, rtol, atol):
    if symbolic.shape != numeric.shape:
        raise GradientCheckError(
            f"gradient for {x.name} has shape {symbolic.shape}, the input has shape {numeric.shape}"
        )
    err = np.abs(symbolic - numeric)
    bound = atol + rtol * np.abs(numeric)
    if not np.all(err <= bound) or not np.all(np.isfinite(symbolic)):
        worst = (
            np.unravel_index(np.argmax(np.where(np.isfinite(err), err - bound, np.inf)), err.shape)
            if err.ndim
            else ()
        )
        raise GradientCheckError(
            f"symbolic and finite-difference gradients for {x.name} differ: at index {worst} "
            f"symbolic {symbolic[worst]!r}, numeric {numeric[worst]!r} "
            f"(max abs error {np.nanmax(err):.3g}, allowed {atol} + {rtol} * |numeric|)"
        )


__all__ = ["check_gradients", "GradientCheckError"]
