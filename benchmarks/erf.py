"""erf and gelu against tanh, in CPU time: ``python -m benchmarks --workload erf``.

numpy has no erf ufunc; graphc's kernel is a vectorized formula (graphc/ops/elementwise.py).
Each line times, side by side in rounds, ``erf``, exact ``gelu`` and ``tanh`` on the same
1M-element vector, once as the numpy kernels themselves and once as a one-op graph in a
session: with compiled loops off (``GRAPHC_NO_CC=1``: what runs without a C++ compiler)
and, when a compiler is there, on (erf, alone or in gelu's elementwise chain, then runs
as one compiled loop that calls libm's erf)."""

from __future__ import annotations

import math
import os
import statistics
import time

import numpy as np

N = 1 << 20


def _median_seconds(fns: dict, rounds: int, inner: int) -> dict:
    for fn in fns.values():
        fn()
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.process_time()
            for _ in range(inner):
                fn()
            samples[k].append((time.process_time() - t) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


def _kernels(x):
    from graphc.ops.elementwise import _erf

    out = np.empty_like(x)
    c = x.dtype.type(1 / math.sqrt(2))

    def gelu():
        _erf(np.multiply(x, c), out)
        out.__iadd__(1)
        out.__imul__(x)
        out.__imul__(0.5)

    return {
        "tanh": lambda: np.tanh(x, out=out),
        "erf": lambda: _erf(x, out),
        "gelu": gelu,
    }


def _session(x, compiled):
    import graphc as gc
    from graphc.backends import host_compile

    g = gc.Graph()
    with g.as_default():
        p = gc.placeholder(gc.as_dtype(x.dtype), shape=(None,))
        ys = {"tanh": gc.tanh(p), "erf": gc.erf(p), "gelu": gc.nn.gelu(p)}
    before = os.environ.get("GRAPHC_NO_CC")
    os.environ["GRAPHC_NO_CC"] = "0" if compiled else "1"
    try:
        sess = gc.Session(graph=g)
        for y in ys.values():
            sess.run(y, {p: x})  # plans made (and compiled loops requested) now
    finally:
        if before is None:
            del os.environ["GRAPHC_NO_CC"]
        else:
            os.environ["GRAPHC_NO_CC"] = before
    host_compile.wait()
    return {k: (lambda y=y: sess.run(y, {p: x})) for k, y in ys.items()}


def run(rounds: int = 7, inner: int = 5):
    from graphc.backends import host_compile

    print("\n== erf: erf / gelu against tanh, 1M elements, CPU time (medians) ==")
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal(N) * 2).astype(dtype)
        ways = {"kernel": _kernels, "session": lambda x: _session(x, False)}
        if host_compile.unavailable_reason() is None and host_compile.compiler():
            ways["sess+cc"] = lambda x: _session(x, True)
        for how, make in ways.items():
            m = _median_seconds(make(x), rounds, inner)
            print(
                f"  {np.dtype(dtype).name:<8} {how:<8} tanh {m['tanh'] * 1e3:7.2f} ms  "
                f"erf {m['erf'] * 1e3:7.2f} ms ({m['erf'] / m['tanh']:4.1f}x tanh)  "
                f"gelu {m['gelu'] * 1e3:7.2f} ms ({m['gelu'] / m['tanh']:4.1f}x tanh)",
                flush=True,
            )
