"""Control ops in the compiled program.

``local_scan_unused_ys``: a scan's stacked outputs that nothing reads are not computed: the
scan runs a body without them (the same region, fewer outputs, so its plan prunes their
computation). A gradient's reverse scan computes the gradient of every float elems input,
the input sequence's too; in training nothing reads that one, and in an LSTM it is a third
of the backward body's matrix products.

``local_scan_unrecorded``: a scan returns, after its carries and stacked outputs, the carry
each step started from (``ops/control.py``), which only its gradient reads. When nothing in
the program reads those outputs (an inference plan, or the reverse scan a gradient is, unless
it is differentiated again), the scan records nothing: its kernel returns zero-stride
stand-ins of their shape instead of copying every carry at every step. For an LSTM's
backward scan, whose carries include the weights' gradients, that copy and its buffer are
most of the loop's memory traffic.
"""

from __future__ import annotations

from ..ops.control import SCAN, Function
from .collectives import set_attrs


def local_scan_unrecorded(node, used) -> dict | None:
    """scan(record) whose recorded carries ``used`` does not include -> scan(record=False)."""
    if node.op is not SCAN or node.attrs.get("record") is False:
        return None
    k = node.attrs["n_carry"]
    recorded = set(range(len(node.avals) - k, len(node.avals)))
    return None if used & recorded else {**node.attrs, "record": False}


def local_scan_unused_ys(node, used) -> dict | None:
    """scan(body -> carries, ys) whose ys ``used`` leaves some out -> scan(body without them,
    ys_kept=the ones it computes)."""
    if node.op is not SCAN or "ys_kept" in node.attrs:
        return None
    fn, k = node.attrs["body_fn"], node.attrs["n_carry"]
    n_ys = len(fn.outputs) - k
    kept = tuple(j for j in range(n_ys) if k + j in used)
    if len(kept) == n_ys:
        return None
    key = ("without ys", kept)
    narrow = fn.variants.get(key)
    if narrow is None:  # one narrowed body per choice, so its compiled plans are reused
        with fn.lock:
            narrow = fn.variants.setdefault(
                key,
                Function(
                    fn.graph,
                    fn.params,
                    list(fn.outputs[:k]) + [fn.outputs[k + j] for j in kept],
                    fn.name,
                    targets=fn.targets,
                ),
            )
    return {**node.attrs, "body_fn": narrow, "ys_kept": kept, "n_ys": n_ys}


def unrecorded_scans(program):
    """Apply ``local_scan_unrecorded`` and ``local_scan_unused_ys`` to every scan of
    ``program`` (in place)."""
    used: dict = {}
    for n in program.nodes:
        for p, i in n.inputs:
            used.setdefault(p, set()).add(i)
    for n, i in program.fetches:
        used.setdefault(n, set()).add(i)
    for n in program.nodes:
        for rule in (local_scan_unrecorded, local_scan_unused_ys):
            attrs = rule(n, used.get(n, set()))
            if attrs is not None:
                set_attrs(program, n, attrs)
    return program
