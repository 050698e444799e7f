"""The plan: what a backend runs, as plain data (STYLE principle 7).

A ``Plan`` is an ordered list of ``Step`` s over numbered buffer ``Slot`` s (see
``passes/memory.py``). It names no arrays and no array module, so the numpy backend turns it
into straight-line Python and the cupy backend into CUDA launches from the same data.

Step kinds:
  * ``"kernel"``: ``op.numpy(*inputs, out=output, **attrs)`` into its planned output slot;
  * ``"alloc"``: ``outputs = op.numpy(*inputs, **attrs)``: the kernel allocates (or returns a
    view); used where the shape is only known at run time or the kernel takes no ``out=``;
  * ``"state"``: a stateful kernel ``op.numpy(ctx, node, *inputs, **attrs)``; ``node`` is the
    user Operation whose state (variable, random generator) it uses;
  * ``"read"``: the current buffer of variable ``node`` (``ctx.variables[node]``);
  * ``"fused"``: ``body`` (``FusedOp`` s) run over ``loop_shape`` in tiles of ``tile_rows``
    rows along axis 0; ``body_slots[j]`` says where body op j writes: ``("out", k)`` (the
    step's k-th output) or ``("scratch", slot)`` (tile-sized memory in the arena). A body
    ending in a reduction accumulates across tiles when the reduction spans axis 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ops.state import VARIABLE
from .passes.liveness import Slot
from .passes.program import FUSED, kernel_takes_out

__all__ = ["Plan", "Step", "Slot", "build_plan"]


@dataclass
class Step:
    index: int
    kind: str
    op: object  # the OpDef (FUSED for fused steps)
    attrs: dict
    inputs: tuple  # slot indices
    outputs: tuple  # slot indices
    sources: tuple  # user Operations this step computes (for errors, traces)
    node: object = None  # the user Operation, for "state" and "read" steps
    body: tuple = ()
    body_slots: tuple = ()
    loop_shape: tuple = ()
    tile_rows: int = 0
    input_names: tuple = ()  # the user tensor each input holds (for the NaN trap)

    @property
    def title(self) -> str:
        """``fused[neg,exp,…,reduce_sum]`` or the op's name."""
        if self.kind == "fused":
            return "fused[" + ",".join(f.op.name for f in self.body) + "]"
        return self.op.name

    def where(self) -> str:
        """The user's lines this step came from."""
        locs = list(dict.fromkeys(str(s.location) for s in self.sources if s.location))
        return ", ".join(locs[:3]) + (", …" if len(locs) > 3 else "")

    def describe(self) -> str:
        names = ", ".join(f"'{s.name}'" for s in self.sources[:3])
        more = ", …" if len(self.sources) > 3 else ""
        where = self.where()
        return f"{self.title} ({names}{more})" + (f" at {where}" if where else "")


@dataclass
class Plan:
    """A compiled signature. ``feeds``: (user Tensor, slot) in the order the executor takes
    them; ``fetches``: one slot per fetched tensor; ``peak_bytes``: the planned bytes of the
    intermediates (SPEC §7: feeds, fetched results and variables not counted);
    ``result_bytes``: the planned fetched results, placed after them (``arena_bytes``)."""

    steps: list
    slots: list
    feeds: list
    fetches: list
    peak_bytes: int
    passes: list
    nodes_before: int
    nodes_after: int
    boundaries: list = field(default_factory=list)
    optimize: int = 2
    backend: str = "numpy"
    timings: dict = field(default_factory=dict)  # step index -> [runs, seconds]
    result_bytes: int = 0
    reuses: int = 0  # times gc.compile returned this plan again instead of compiling it

    @property
    def arena_bytes(self) -> int:
        """The one buffer a backend allocates: the intermediates, then the fetched results."""
        return self.peak_bytes + self.result_bytes

    @property
    def stats(self) -> dict:
        return {
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "kernels": sum(1 for s in self.steps if s.kind != "read"),
            "peak_bytes": self.peak_bytes,
            "passes": list(self.passes),
        }

    def _repr_svg_(self) -> str:
        """Jupyter shows a compiled plan as the picture of its steps (``gc.viz``)."""
        from .viz import viz

        return viz(self)

    def record_timings(self, durations) -> None:
        """Add one traced run's per-step seconds (for ``report()``'s slowest kernels)."""
        for i, d in enumerate(durations):
            runs, total = self.timings.get(i, (0, 0.0))
            self.timings[i] = (runs + 1, total + d)

    def chrome_trace(self, durations) -> dict:
        """One traced run as Chrome trace-event JSON (Perfetto, chrome://tracing): a complete
        ("X") event per step, in microseconds, naming its ops and the user's lines."""
        events, t = [], 0.0
        for step, d in zip(self.steps, durations, strict=False):
            events.append(
                {
                    "name": step.title,
                    "cat": step.kind,
                    "ph": "X",
                    "pid": 1,
                    "tid": 1,
                    "ts": round(t * 1e6, 3),
                    "dur": round(d * 1e6, 3),
                    "args": {
                        "step": step.index,
                        "where": step.where(),
                        "ops": [s.name for s in step.sources],
                    },
                }
            )
            t += d
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def live_at_peak(self):
        """(step index, intermediates live there) where they hold the most bytes."""
        planned = [s for s in self.slots if s.kind in ("arena", "scratch") and not s.result]
        best, best_bytes = 0, -1
        for i in range(len(self.steps)):
            live = sum(s.nbytes for s in planned if s.start <= i <= s.end)
            if live > best_bytes:
                best, best_bytes = i, live
        live = sorted((s for s in planned if s.start <= best <= s.end), key=lambda s: -s.nbytes)
        return best, live

    def report(self, slowest: int = 10) -> str:
        st = self.stats
        lines = [
            f"graphc plan [{self.backend}, optimize={self.optimize}]: "
            f"{st['nodes_before']} -> {st['nodes_after']} nodes, {st['kernels']} kernels, "
            f"peak {_bytes(self.peak_bytes)} ({self.peak_bytes} bytes) of intermediates"
            + (f", {_bytes(self.result_bytes)} of fetched results" if self.result_bytes else ""),
            "passes (nodes before -> after):",
        ]
        width = max([12] + [len(name) for name, _, _ in self.passes])
        lines += [f"  {name:<{width}} {a:>6} -> {b}" for name, a, b in self.passes]
        lines.append("steps:")
        lines += [f"  {s.index:>4}  {s.describe()}" for s in self.steps]
        step, live = self.live_at_peak()
        if live:
            lines.append(f"largest live tensors at the peak (step {step}):")
            lines += [
                f"  {_bytes(s.nbytes):>10}  {s.name} {s.dtype}{list(s.shape)} ({s.kind})"
                for s in live[:5]
            ]
        if self.boundaries:
            lines.append("fusion boundaries:")
            lines += [f"  {a} -> {b}: {why}" for a, b, why in self.boundaries]
        if self.timings:
            lines.append(f"slowest kernels (mean of traced runs), top {slowest}:")
            ranked = sorted(self.timings.items(), key=lambda kv: -kv[1][1] / kv[1][0])
            for i, (runs, total) in ranked[:slowest]:
                lines.append(f"  {total / runs * 1e6:>10.1f} us  {self.steps[i].describe()}")
        return "\n".join(lines)


def _bytes(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def build_plan(program, nodes_before, passes, optimize, backend) -> Plan:
    """Turn a planned Program (its ``facts.memory``) into steps over slots."""
    mem = program.facts.memory
    slot_of = mem.slot_of
    steps = []
    for i, n in enumerate(mem.steps):
        ins = tuple(slot_of[v].index for v in n.inputs)
        outs = tuple(slot_of[(n, k)].index for k in range(len(n.avals)))
        common = dict(
            index=i,
            op=n.op,
            attrs=dict(n.attrs),
            inputs=ins,
            outputs=outs,
            sources=n.sources,
            input_names=tuple(p.value_name(k) for p, k in n.inputs),
        )
        if n.op is FUSED:
            layout = mem.bodies[n]
            where = tuple((w, s if w == "out" else s.index) for w, s in layout.where)
            loop = tuple(n.attrs["loop_shape"])
            steps.append(
                Step(
                    kind="fused",
                    body=n.attrs["body"],
                    body_slots=where,
                    loop_shape=loop,
                    tile_rows=layout.rows,
                    **common,
                )
            )
        elif n.op is VARIABLE:
            steps.append(Step(kind="read", node=n.source, **common))
        elif n.op.stateful:
            steps.append(Step(kind="state", node=n.source, **common))
        elif kernel_takes_out(n.op) and all(mem.slots[o].kind == "arena" for o in outs):
            steps.append(Step(kind="kernel", **common))
        else:
            steps.append(Step(kind="alloc", **common))
    feeds = [(t, slot_of[(node, 0)].index) for t, node in program.feeds.items()]
    fetches = [slot_of[v].index for v in program.fetches]
    boundaries = [
        (_name(b.producer), b.consumer.describe(), b.reason) for b in program.facts.boundaries
    ]
    return Plan(
        steps,
        mem.slots,
        feeds,
        fetches,
        mem.peak,
        list(passes),
        nodes_before,
        len(program),
        boundaries,
        optimize,
        backend,
        result_bytes=mem.result_bytes,
    )


def _name(node):
    src = node.source
    return f"'{src.name}'" if src is not None else node.op.name
