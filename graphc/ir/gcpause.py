"""``@paused_gc``: the cyclic garbage collector held off while graphc builds a large
structure (gradients, a compiled plan, generated code).

Compiling allocates hundreds of thousands of long-lived objects (nodes, edges, slots) and
almost no cyclic garbage; every full collection the allocations trigger re-scans all of them
and frees nothing, which cost about a third of a deep model's compile time. Collection
resumes when the outermost paused call returns (and never starts if the caller had it
disabled). The wrapper is a function of this package, so ``user_location()`` still finds
the user's line behind it (a ``contextlib`` decorator's frame would be taken for it).

What the call built is then moved to the oldest generation, where it would end up anyway:
left in the youngest, the first collections after the call walk every one of those objects
twice (young, then middle generation) to free nothing. At 1000 layers that was 0.7 s of the
first training step, and it grew faster than the model (the walk misses the cache). Cyclic
garbage made during the call is still freed, by the next full collection."""

from __future__ import annotations

import functools
import gc


def paused_gc(fn):
    """``fn`` with ``gc`` disabled while it runs (a no-op when it is already disabled, as
    inside an enclosing paused call)."""

    @functools.wraps(fn)
    def paused(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            _promote_survivors()
            gc.enable()

    return paused


def _promote_survivors():
    """Every tracked object into the oldest generation, without a walk: ``freeze`` moves the
    generations' lists to the permanent one and ``unfreeze`` appends that to the oldest. A
    process that froze objects itself (before forking workers, say) keeps them frozen."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
