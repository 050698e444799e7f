"""``python -m benchmarks --workload allreduce``: data-parallel mlp3 (784-512-512-10, SGD,
a global batch of 256 rows) at 1 and 2 ranks under mpiexec: the step time, the share of it
spent in the gradients' allreduce (one fused bucket of 2.7 MB of float32, reduced in
place in the arena; from traced runs, so it includes waiting for the slower rank), and the
reduction's bytes per second. Each rank runs ``python -m mpi4py -m benchmarks.allreduce
--child`` and rank 0 prints one JSON line."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROWS, SIZES = 256, (784, 512, 512, 10)


def _median_time(fn, rounds, inner):
    fn()
    fn()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return statistics.median(samples)


def child(rounds=7, inner=5):
    import graphc as gc
    import graphc.distributed as gd

    from .workloads import _mlp_data

    gd.init()
    r, n = gd.rank(), gd.size()
    X, Y, W0 = _mlp_data(ROWS, SIZES)
    X, Y = X[r::n], Y[r::n]  # this rank's rows of the global batch
    x = gc.placeholder(gc.float32, (None, SIZES[0]), name="x")
    y = gc.placeholder(gc.float32, (None, SIZES[-1]), name="y")
    ws = [gc.Variable(w, name=f"w{i}") for i, w in enumerate(W0)]
    h = x
    for i, w in enumerate(ws):
        h = h @ w
        if i < len(ws) - 1:
            h = gc.relu(h)
    loss = gc.reduce_mean(gc.softmax_cross_entropy_with_logits(labels=y, logits=h))
    train = gd.DistributedOptimizer(gc.train.GradientDescentOptimizer(0.05)).minimize(loss)
    # the reduction alone, ranks in step: one bucket of the gradients' shapes (packed from
    # variables: one copy of 2.7 MB more than the step's in-place span)
    bucket = gd.allreduce(
        *[gc.Variable(w, trainable=False, name=f"g{i}") for i, w in enumerate(W0)]
    )
    nbytes = sum(w.nbytes for w in W0)
    trace = os.path.join(tempfile.mkdtemp(), f"trace{r}.json")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        step = sess.make_callable(train, [x, y])
        t_step = _median_time(lambda: step(X, Y), rounds, inner)
        alone = sess.make_callable(list(bucket))
        t_alone = _median_time(alone, rounds, inner)
        reduce_s, total_s = [], []
        for _ in range(rounds):  # traced runs: the allreduce step's own time
            sess.run(train, {x: X, y: Y}, trace=trace)
            with open(trace) as f:
                events = json.load(f)["traceEvents"]
            reduce_s.append(sum(e["dur"] for e in events if e["name"] == "allreduce") * 1e-6)
            total_s.append(sum(e["dur"] for e in events) * 1e-6)
    if r == 0:
        print(
            json.dumps(
                {
                    "ranks": n,
                    "step_s": t_step,
                    "allreduce_s": statistics.median(reduce_s),
                    "share": statistics.median(a / t for a, t in zip(reduce_s, total_s)),
                    "alone_s": t_alone,
                    "bytes": nbytes,
                }
            ),
            flush=True,
        )


def _launch(n):
    import graphc.distributed as gd

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "benchmarks.allreduce", "--child"]
    if n > 1:
        mpiexec = gd.find_mpiexec()
        if mpiexec is None:
            raise SystemExit("the allreduce workload needs mpiexec: pip install 'graphc[mpi]'")
        cmd = [
            mpiexec,
            "-n",
            str(n),
            sys.executable,
            "-m",
            "mpi4py",
            "-m",
            "benchmarks.allreduce",
            "--child",
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, timeout=600)
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ranks=(1, 2)):
    print("\n== allreduce (mlp3, global batch 256, SGD; DistributedOptimizer, one bucket) ==")
    for n in ranks:
        m = _launch(n)
        share = m["share"] if n > 1 else 0.0
        print(
            f"  {n} rank{'s' if n > 1 else ' '}: step {m['step_s'] * 1e3:8.3f} ms  "
            f"({ROWS // n} rows per rank)  allreduce in the step "
            f"{m['allreduce_s'] * 1e3:7.3f} ms = {share:5.1%} of it"
        )
        if n > 1:
            print(
                f"           the reduction alone: {m['alone_s'] * 1e3:.3f} ms for "
                f"{m['bytes'] / 1e6:.2f} MB = {m['bytes'] / m['alone_s'] / 1e9:.2f} GB/s"
            )
        else:
            print("           (one process: DistributedOptimizer adds no collective)")


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        run()
