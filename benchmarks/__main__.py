"""Time the workloads: contenders alternate within one process, round after round, and the
medians and their ratios to graphc are printed. Peers (torch, jax, tensorflow) join when
importable; install them in a separate environment, never in the test one."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

# One BLAS / OpenMP thread per contender unless the caller says otherwise: every contender
# then gets the same single core, and idle pool threads do not spin against the next one.
# graphc's compiled loops likewise (GRAPHC_CC_THREADS): with the CPU clock, a loop split
# over two cores bills both, and leaves half its output in the other core's cache.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GRAPHC_CC_THREADS"):
    os.environ.setdefault(_var, "1")

from . import gpu  # noqa: E402
from .workloads import SCALING_DEPTHS, WORKLOADS, compile_scaling  # noqa: E402 - numpy must see the thread settings

CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def _compiled_loops_loaded():
    """Wait until graphc's fused loops, built in the background, are loaded."""
    try:
        from graphc.backends import host_compile
    except ImportError:  # a graphc without compiled loops (before issue 18)
        return
    host_compile.wait()


def _time_batch(fn, inner):
    t = clock()
    for _ in range(inner):
        fn()
    return (clock() - t) / inner


def measure(contenders: dict, rounds: int, budget: float, settle: float = 0.0) -> dict:
    """Median seconds per call of each contender; each round runs every contender once, for
    about ``budget`` seconds, in turn (so drifts in machine load hit all of them alike).
    ``settle`` seconds of sleep before each batch let the previous contender's worker
    threads (torch's OpenMP pool, XLA's) stop spinning, so they do not bill the next one."""
    inner = {}
    for name, fn in contenders.items():
        for _ in range(2):
            fn()  # warm-up: compile, caches
        _compiled_loops_loaded()
        once = _time_batch(fn, 1)
        inner[name] = max(1, int(budget / max(once, 1e-7)))
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(settle)
            samples[name].append(_time_batch(fn, inner[name]))
    return {name: statistics.median(v) for name, v in samples.items()}


def _fmt(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:9.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:9.3f} ms"
    return f"{seconds:9.3f} s "


def report(workload, medians):
    base = medians["graphc"]
    print(f"\n== {workload} ==")
    for name, t in sorted(medians.items(), key=lambda kv: kv[1]):
        ratio = t / base
        print(f"  {name:<14} {_fmt(t)}   {ratio:6.2f}x graphc's time")
    if "matmuls only" in medians:
        print(f"  graphc / matmuls only = {base / medians['matmuls only']:.3f} (target <= 1.15)")
    if "numpy eager" in medians:
        print(f"  speed-up over eager numpy = {medians['numpy eager'] / base:.2f}x (target >= 4)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    # allreduce launches mpiexec (graphc[mpi]); "all" leaves it out
    parser.add_argument(
        "--workload",
        default="all",
        choices=[*WORKLOADS, "compile-scaling", "allreduce", "erf", "all"],
    )
    parser.add_argument(
        "--depths",
        default=",".join(map(str, SCALING_DEPTHS)),
        help="compile-scaling: the MLP depths, comma-separated",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="compile-scaling: build and run each depth this many times, report the fastest"
        " (a busy machine's bursts only ever add time)",
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per timed batch")
    parser.add_argument(
        "--settle", type=float, default=0.2, help="seconds of idle time before each timed batch"
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=list(CLOCK),
        help="wall time, or this process's CPU time (steadier on a busy machine;"
        " it misses the work of other threads)",
    )
    args = parser.parse_args(argv)
    global clock
    clock = CLOCK[args.clock]
    print(
        f"graphc benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{args.clock} clock"
    )
    why = gpu.unavailable_reason()
    if why:
        print(f"GPU contenders: none ({why.splitlines()[0]})")
    else:  # a GPU contender's process mostly waits: its CPU time says little
        print(
            "GPU contenders: graphc cupy (eager, CUDA Graph), torch cuda when importable"
            + ("; compare them with --clock wall" if args.clock == "cpu" else "")
        )
    if args.workload == "erf":  # erf / gelu against tanh (benchmarks/erf.py)
        from .erf import run as run_erf

        run_erf()
        return
    if args.workload == "compile-scaling":
        scaling([int(d) for d in args.depths.split(",")], args.repeat)
        return
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    for name in names:
        if name == "allreduce":
            from .allreduce import run

            run()
            continue
        contenders = WORKLOADS[name]()
        if name == "compile":
            times = [_time_batch(contenders["graphc"], 1) for _ in range(3)]
            plan = contenders["graphc"]()
            median = statistics.median(times)
            print(
                f"\n== compile ==\n  100-layer MLP + Adam: median {median:.3f} s "
                f"(target <= 2 s); {plan.stats['nodes_before']} -> "
                f"{plan.stats['nodes_after']} nodes, {plan.stats['kernels']} kernels, "
                f"peak {plan.stats['peak_bytes']} bytes"
            )
            continue
        if name in ("lstm-scan", "conv-ops"):  # tables of their own
            contenders["graphc"]()
            continue
        contenders.update(gpu.contenders(name))  # {} without a GPU
        report(name, measure(contenders, args.rounds, args.budget, args.settle))


def scaling(depths, repeat=1):
    """CPU seconds of each stage of a depth-N MLP + Adam (one process; of ``repeat`` runs
    per depth, the one with the least total). The repeats take turns over the depths, so a
    burst of a neighbour's load lands on several depths rather than on all of one."""
    stages = ("build", "minimize", "compile", "first run")
    best = f", fastest of {repeat} runs" if repeat > 1 else ""
    print(f"\n== compile-scaling: MLP width 64, Adam; CPU seconds{best} ==")
    print(
        f"  {'depth':>5} {'ops':>7} "
        + " ".join(f"{s:>10}" for s in stages)
        + f" {'total':>8} {'per layer':>10}"
    )
    runs = {depth: [] for depth in depths}
    for _ in range(max(repeat, 1)):
        for depth in depths:
            runs[depth].append(compile_scaling(depth))
    totals = {}
    for depth in depths:
        r = min(runs[depth], key=lambda r: sum(r[s] for s in stages))
        total = totals[depth] = sum(r[s] for s in stages)
        print(
            f"  {depth:>5} {r['ops']:>7} "
            + " ".join(f"{r[s]:>10.3f}" for s in stages)
            + f" {total:>8.3f} {total / depth * 1e3:>8.2f} ms"
        )
    if 100 in totals and 1000 in totals:  # the target: at most 12x
        print(f"  depth 1000 / depth 100: {totals[1000] / totals[100]:.2f}x")


if __name__ == "__main__":
    main()
