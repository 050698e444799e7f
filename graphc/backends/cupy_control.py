"""Control flow on the cupy backend: the loop on the host, every body on the device.

A control op's step (``cond``, ``while_loop``, ``scan``; ``map_fn`` and the gradients are
these) does not go through the host fallback. Its bodies are compiled, once per input
signature, into cupy plans of their own (``CupyExecutable``s over the same array module and
kernel compiler as the plan that runs the op), and run on device arrays: the operands, the
loop variables, the carries and the stacked outputs never leave the device, and variables a
body reads or assigns are the plan's device-resident ones. The host only drives the loop:
it reads back one scalar per decision (a cond's predicate, a while loop's condition each
iteration); a scan's length is a shape, so a scan reads nothing back.

The kernels below mirror ``ops/control.py``'s numpy kernels (same semantics, same errors)
with the array module ``xp`` in place of numpy.
"""

from __future__ import annotations

import numpy as np

from ..compiler import compile as compile_plan
from ..ops import control
from ..ops.control import _fits, _loop_shape_error, _scan_length, _stacked_outputs


class BodyRunner:
    """Runs a control op's Functions on the device for one executing plan (``exe``)."""

    def __init__(self, exe, ctx, state):
        self.exe, self.ctx, self.state = exe, ctx, state
        self.xp = exe.xp

    def host_bool(self, value) -> bool:
        """The one device-to-host read a decision takes (a 0-d predicate)."""
        return bool(self.exe._download(value))

    def run(self, fn, arrays) -> list:
        body, positions = self.exe.body_executable(fn, arrays)
        return body.call_on_device(self.ctx, self.state, [arrays[i] for i in positions])

    def fresh(self, value, args):
        """A result never aliases one of the op's input buffers (a variable's, a feed's)."""
        return value.copy() if any(value is a for a in args) else value


def _cond(r, node, pred, *operands, then_fn, else_fn):
    fn = then_fn if r.host_bool(pred) else else_fn
    return tuple(r.fresh(v, operands) for v in r.run(fn, list(operands)))


def _while(r, node, *args, cond_fn, body_fn, n_vars, maximum_iterations=None, record=False):
    xp = r.xp
    loop_vars, caps = list(args[:n_vars]), list(args[n_vars:])
    invariants = [p.shape for p in body_fn.params[:n_vars]]
    history = [[] for _ in range(n_vars)] if record else None
    i = 0
    while maximum_iterations is None or i < maximum_iterations:
        (go,) = r.run(cond_fn, loop_vars + caps)
        if not r.host_bool(go):
            break
        if record:
            for h, v in zip(history, loop_vars, strict=True):
                h.append(v)
        new = r.run(body_fn, loop_vars + caps)
        i += 1
        for k, (v, inv) in enumerate(zip(new, invariants, strict=True)):
            if not _fits(v.shape, inv):
                raise _loop_shape_error(node, "loop variable", k, v.shape, inv, i)
        loop_vars = list(new)
    out = [r.fresh(v, args) for v in loop_vars]
    if record:
        for h, v in zip(history, args[:n_vars], strict=True):
            out.append(xp.stack(h) if h else xp.empty((0,) + tuple(v.shape), v.dtype))
        out.append(xp.asarray(np.asarray(i, np.int64)))
    return tuple(out)


def _scan(
    r,
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
    xp, k, m = r.xp, n_carry, n_elems
    carry = list(args[:k])
    elems, caps = args[k : k + m], list(args[k + m :])
    n = _scan_length(node, elems)
    invariants = [p.shape for p in body_fn.params[:k]]
    if record:
        hist = [xp.empty((n,) + tuple(c.shape), c.dtype) for c in carry]
    else:  # nothing reads them (passes/control.py)
        hist = [xp.zeros((n,) + tuple(c.shape), c.dtype) for c in carry]
    ys = None
    for step, t in enumerate(range(n - 1, -1, -1) if reverse else range(n)):
        if record:
            for h, c in zip(hist, carry, strict=True):
                h[t] = c
        outs = r.run(body_fn, carry + [e[t] for e in elems] + caps)
        for j, (v, inv) in enumerate(zip(outs[:k], invariants, strict=True)):
            if v.shape != carry[j].shape and not _fits(v.shape, inv):
                raise _loop_shape_error(node, "carry", j, v.shape, inv, step + 1)
        carry = list(outs[:k])
        if ys is None:
            ys = [xp.empty((n,) + tuple(y.shape), y.dtype) for y in outs[k:]]
        for buf, y in zip(ys, outs[k:], strict=True):
            buf[t] = y
    ys = _stacked_outputs(xp, node, body_fn, k, ys, ys_kept, n_ys)
    return tuple([r.fresh(c, args) for c in carry] + ys + hist)


# The device kernel of each control op, keyed by OpDef: ``fn(runner, node, *device_arrays,
# **attrs)`` -> a tuple of device arrays.
KERNELS = {control.COND: _cond, control.WHILE: _while, control.SCAN: _scan}


def compile_body(fn, arrays, make):
    """``(executable, positions)``: ``fn`` compiled for inputs like ``arrays`` (device arrays)
    into a cupy plan, and ``make(plan)`` its executable; ``positions`` picks the plan's feeds
    from ``arrays``."""
    feed_shapes = {p: tuple(a.shape) for p, a in zip(fn.params, arrays, strict=True)}
    plan = compile_plan(
        list(fn.outputs) + list(fn.targets),
        feed_shapes=feed_shapes,
        optimize=2,
        backend="cupy",
        graph=fn.graph,
    )
    index = {p: i for i, p in enumerate(fn.params)}
    return make(plan), [index[t] for t, _ in plan.feeds]


def signature(fn, arrays):
    return (fn, tuple((tuple(a.shape), np.dtype(a.dtype).str) for a in arrays))
