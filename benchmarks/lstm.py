"""LSTM training step over T time steps: one ``gc.scan`` (a loop in the graph) against the
same cell unrolled T times in Python (``python -m benchmarks --workload lstm-scan``).

For T in (28, 200) and each form it reports: build time (graph + gradients + optimizer),
the first ``sess.run`` (compiling the plan, and for scan the bodies' plans, then one step), the
median step time (all as this process's CPU time, ``time.process_time``: on a shared machine
wall time measures the neighbours; run with one BLAS thread, as ``python -m benchmarks``
does), the plan's planned peak, and the measured peak of memory numpy allocates during
one step: the arenas (the plan's and, for scan, its bodies', allocated once) plus what
tracemalloc sees allocated during the step (kernels' own results: the scan's stacked outputs
and recorded carries, the bodies' fetched values)."""

from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np

import graphc as gc
from graphc.frontend.control import scan_with_outputs
from graphc.ops.control import functions_of

BATCH, DEPTH, UNITS = 32, 28, 128


def build(steps, form, seed=0):
    """(graph, train op, loss, feeds) of one LSTM regression step in ``form`` scan|unrolled."""
    rng = np.random.default_rng(seed)
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(gc.float32, (steps, BATCH, DEPTH), name="x")
        y = gc.placeholder(gc.float32, (BATCH, 1), name="y")
        w = gc.Variable(rng.standard_normal((DEPTH + UNITS, 4 * UNITS)).astype(np.float32) * 0.05)
        b = gc.Variable(np.zeros(4 * UNITS, np.float32))
        wo = gc.Variable(rng.standard_normal((UNITS, 1)).astype(np.float32) * 0.1)

        def cell(state, xt):
            c, h = state
            i, j, f, o = gc.split(gc.concat([xt, h], 1) @ w + b, 4, axis=1)
            c = c * gc.sigmoid(f + 1.0) + gc.sigmoid(i) * gc.tanh(j)
            return (c, gc.tanh(c) * gc.sigmoid(o))

        zero = gc.zeros((BATCH, UNITS), gc.float32)
        if form == "scan":
            (_, h), _ = scan_with_outputs(lambda s, xt: (cell(s, xt), ()), x, (zero, zero))
        else:
            state = (zero, zero)
            for t in range(steps):
                state = cell(state, x[t])
            h = state[1]
        loss = gc.reduce_mean((h @ wo - y) ** 2)
        train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = gc.global_variables_initializer()
    feeds = {
        x: rng.standard_normal((steps, BATCH, DEPTH)).astype(np.float32),
        y: rng.standard_normal((BATCH, 1)).astype(np.float32),
    }
    return graph, init, train, loss, feeds


def measure(steps, form, runs=7):
    clock = time.process_time
    t0 = clock()
    graph, init, train, loss, feeds = build(steps, form)
    t_build = clock() - t0
    with gc.Session(graph=graph) as sess:
        sess.run(init)
        t0 = clock()
        sess.run([train, loss], feeds)
        t_first = clock() - t0
        times = []
        for _ in range(runs):
            t0 = clock()
            sess.run([train, loss], feeds)
            times.append(clock() - t0)
        step = statistics.median(times)
        plan = gc.compile(
            [train, loss], feed_shapes={t: v.shape for t, v in feeds.items()}, graph=graph
        )
        # arenas are allocated once, before the traced step: the plan's, and each body's
        arenas = plan.arena_bytes + sum(
            exe.plan.arena_bytes
            for op in graph.get_operations()
            for body in functions_of(op)
            for fn in [body, *body.variants.values()]  # (a body the compiler narrowed)
            for exes, _ in fn.cache.values()  # one executable, or a loop's pair
            for exe in (exes if isinstance(exes, list) else [exes])
        )
        tracemalloc.start()
        sess.run([train, loss], feeds)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "build": t_build,
        "first": t_first,
        "step": step,
        "planned": plan.peak_bytes,
        "peak": peak + arenas,
        "nodes": len(graph),
    }


def report(lengths=(28, 200)):
    print("\n== lstm: scan vs unrolled (batch 32, 28 -> 128 units, SGD step; CPU time) ==")
    print(
        f"  {'T':>4} {'form':<9} {'nodes':>6} {'build':>9} {'compile':>9} {'step':>10} "
        f"{'planned peak':>13} {'step memory':>14}"
    )
    rows = {}
    for steps in lengths:
        for form in ("scan", "unrolled"):
            r = rows[(steps, form)] = measure(steps, form)
            print(
                f"  {steps:>4} {form:<9} {r['nodes']:>6} {r['build']:>8.3f}s "
                f"{r['first']:>8.3f}s {r['step'] * 1e3:>8.2f}ms "
                f"{r['planned'] / 2**20:>10.2f} MiB {r['peak'] / 2**20:>11.2f} MiB"
            )
        s, u = rows[(steps, "scan")], rows[(steps, "unrolled")]
        ready = (u["build"] + u["first"]) / (s["build"] + s["first"])
        print(
            f"       T={steps}: scan is ready to run {ready:.1f}x sooner; its step takes "
            f"{s['step'] / u['step']:.2f}x the unrolled step's time"
        )
    return rows
