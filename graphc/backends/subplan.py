"""Running a control-flow body: compiled once per input signature, executed per iteration.

``ops/control.py``'s kernels call ``run(function, ctx, arrays)`` on every iteration. The
first call for a (shapes, dtypes) signature compiles the body's outputs, with its params as
the fed tensors, through the same pipeline as any program (prune, CSE, folding,
simplification, fusion, in-place, memory plan) into a numpy executable: straight-line
generated Python over one arena, which every later iteration reuses (the body's memory plan
serves all iterations; nothing is interpreted). Captured tensors are fed like params, so
they are computed once, outside the loop.
"""

from __future__ import annotations

import numpy as np

from ..compiler import compile as compile_plan
from ..ops import control
from .numpy_backend import NumpyExecutable

OPTIMIZE = 2


def _signature(arrays):
    return tuple((a.shape, a.dtype) for a in arrays)


def compiled(fn, arrays):
    """The (executable, positions) running ``fn`` on inputs like ``arrays``."""
    key = _signature(arrays)
    entry = fn.cache.get(key)
    if entry is None:
        with fn.lock:
            entry = fn.cache.get(key)
            if entry is None:
                feed_shapes = {p: a.shape for p, a in zip(fn.params, arrays, strict=True)}
                plan = compile_plan(
                    list(fn.outputs) + list(fn.targets),
                    feed_shapes=feed_shapes,
                    optimize=OPTIMIZE,
                    graph=fn.graph,
                )
                exe = NumpyExecutable(plan)
                index = {p: i for i, p in enumerate(fn.params)}
                entry = (exe, [index[t] for t in exe.feed_tensors])
                fn.cache[key] = entry
    return entry


def run(fn, ctx, arrays):
    arrays = [a if type(a) is np.ndarray else np.asarray(a) for a in arrays]
    exe, positions = compiled(fn, arrays)
    return exe.call(ctx, *[arrays[i] for i in positions])


def loop(fn, ctx, arrays):
    """A loop's step function for ``fn`` on inputs like ``arrays`` (``control.loop_function``):
    the body's plan, compiled once for the signature, as two executables whose arenas
    alternate, so each step's results are returned uncopied (views of one arena) while the
    next step, on the other arena, reads them. A result outside the arena (a fed value
    passed through, a variable's) is copied as usual."""
    arrays = [a if type(a) is np.ndarray else np.asarray(a) for a in arrays]
    key = ("loop",) + _signature(arrays)
    entry = fn.cache.get(key)
    if entry is None:
        exe, positions = compiled(fn, arrays)
        with fn.lock:
            entry = fn.cache.setdefault(
                key,
                ([NumpyExecutable(exe.plan, views=True) for _ in range(2)], positions),
            )
    exes, positions = entry
    calls = [e.call_views for e in exes]
    turn = [0]

    def step(values):
        i = turn[0]
        turn[0] = 1 - i
        return calls[i](
            ctx,
            *[
                v if type(v) is np.ndarray else np.asarray(v)
                for v in map(values.__getitem__, positions)
            ],
        )

    return step


control.RUN_FUNCTION[0] = run
control.LOOP_FUNCTION[0] = loop
