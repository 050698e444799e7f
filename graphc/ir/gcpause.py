"""``@paused_gc``: the cyclic garbage collector held off while graphc builds a large
structure (gradients, a compiled plan, generated code).

Compiling allocates hundreds of thousands of long-lived objects (nodes, edges, slots) and
almost no cyclic garbage; every full collection the allocations trigger re-scans all of them
and frees nothing, which cost about a third of a deep model's compile time. Collection
resumes when the outermost paused call returns (and never starts if the caller had it
disabled). The wrapper is a function of this package, so ``user_location()`` still finds
the user's line behind it (a ``contextlib`` decorator's frame would be taken for it)."""

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
            gc.enable()

    return paused
