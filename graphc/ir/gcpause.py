"""``paused_gc()``: the cyclic garbage collector held off while graphc builds a large
structure (gradients, a compiled plan, generated code).

Compiling allocates hundreds of thousands of long-lived objects (nodes, edges, slots) and
almost no cyclic garbage; every full collection the allocations trigger re-scans all of them
and frees nothing, which cost about a third of a deep model's compile time. Collection
resumes when the outermost pause ends (and never starts if the caller had it disabled)."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused_gc():
    """Disable ``gc`` for the body (a no-op when it is already disabled, as inside an
    enclosing pause); usable as ``with paused_gc():`` or ``@paused_gc()``."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
