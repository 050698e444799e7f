"""The reference executor: walks the needed ops in creation (topological) order and
calls each op's numpy kernel. Slow but obviously right; ``optimize=0`` uses it and the
differential tests compare every other executor against it."""

from __future__ import annotations

import threading

import numpy as np

from ..errors import GraphcError, OpError, user_location
from ..ir.graph import needed_ops
from ..ops.random import seed_for


class RunContext:
    """Session state that stateful kernels see: variables, random generators, printing."""

    def __init__(self, variables, rngs, printer=print):
        self.variables = variables
        self.rngs = rngs
        self.print = printer
        self._locks: dict = {}
        self._locks_guard = threading.Lock()

    def lock(self, var) -> threading.Lock:
        """The lock of variable ``var`` (its op) in this session: ``use_locking`` updates
        hold it while they write."""
        lock = self._locks.get(var)
        if lock is None:
            with self._locks_guard:
                lock = self._locks.setdefault(var, threading.Lock())
        return lock

    def rng(self, node):
        gen = self.rngs.get(node)
        if gen is None:
            gen = self.rngs.setdefault(node, np.random.default_rng(seed_for(node)))
        return gen


def call_kernel(node, ctx, args):
    """Run one node's kernel, turning numpy failures into errors that name the node."""
    opdef = node.op
    try:
        if opdef.stateful:
            out = opdef.numpy(ctx, node, *args, **node.attrs)
        else:
            out = opdef.numpy(*args, **node.attrs)
    except GraphcError:
        raise
    except Exception as e:  # a kernel failed on run-time values: say which op, where
        shapes = ", ".join(f"{a.dtype}{tuple(a.shape)}" for a in map(np.asarray, args))
        origin = (
            f" (in the gradient of {node.origin.describe()})" if node.origin is not None else ""
        )
        raise OpError(
            f"{opdef.name} '{node.name}'{origin} failed on inputs [{shapes}]: {e}",
            node.location,
            node=node,
        ) from e
    return out if isinstance(out, tuple) else (out,)


class ReferenceExecutable:
    """Runs one (fetches, feeds) signature by interpretation (an ``Executable`` without a
    plan)."""

    plan = None

    def __init__(self, fetch_tensors, fetch_ops, feed_tensors, check=None):
        self.fetch_tensors = list(fetch_tensors)
        self.feed_tensors = list(feed_tensors)
        self.fed = set(self.feed_tensors)
        self.ops, _ = needed_ops(self.fetch_tensors, fetch_ops, self.fed)
        self.check = check  # check(node, args, results) after every kernel: the NaN trap

    def call(self, ctx, *arrays):
        return self(ctx, dict(zip(self.feed_tensors, arrays, strict=True)))

    def call_traced(self, ctx, feeds):
        raise GraphcError(
            "trace= needs a compiled plan: use a Session with optimize=1 or 2 "
            "on a backend that compiles one",
            user_location(),
        )

    def __call__(self, ctx, feeds: dict):
        values = dict(feeds)
        for node in self.ops:
            outs = node.outputs
            if outs and all(t in values for t in outs):
                continue
            args = [values[t] for t in node.inputs]
            results = call_kernel(node, ctx, args)
            if self.check is not None:
                self.check(node, args, results)
            for t, v in zip(outs, results):
                if t not in values:
                    values[t] = v
        return [np.array(values[t], copy=True) for t in self.fetch_tensors]


def executable(request) -> ReferenceExecutable:
    """The ``reference`` backend's factory: interpret the request at every optimize level."""
    return ReferenceExecutable(
        request.fetch_tensors, request.fetch_ops, request.feeds, check=request.check
    )
