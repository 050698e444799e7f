"""The compiler's phases, in order. Each is ``Program -> Program``; the level says from which
``optimize`` level on it runs. ``GRAPHC_VERIFY=1`` checks the program's invariants after
every phase; ``GRAPHC_DEBUG=1`` prints it."""

from __future__ import annotations

import os
import sys

from .cse import cse
from .fold import fold
from .fusion import fuse
from .inplace import inplace
from .memory import plan_memory
from .prune import prune
from .simplify import simplify
from .verify import verify

PHASES = [
    ("prune", 0, prune),             # keep only what the fetches need; feeds cut the graph
    ("cse", 1, cse),                 # merge pure nodes that compute the same value
    ("fold", 1, fold),               # evaluate nodes whose inputs are all constants
    ("simplify", 1, simplify),       # algebraic identities and stable patterns (local_* rules)
    ("fold_again", 1, fold),         # simplification exposes new constants
    ("cse_again", 1, cse),           # ... and new duplicates
    ("prune_again", 1, prune),       # drop what the rewrites left unused
    ("fusion", 2, fuse),             # elementwise runs (+ a final reduction) -> one kernel
    ("inplace", 1, inplace),         # a dying input's buffer takes the result
    ("memory", 0, plan_memory),      # liveness intervals packed into one arena
]


def run_pipeline(program, level: int, log: list, tile_elems: int | None = None):
    """Run the phases enabled at ``level``, appending (name, nodes before, nodes after).
    ``tile_elems`` sets the fused kernels' tile size for the memory plan."""
    check = os.environ.get("GRAPHC_VERIFY", "") not in ("", "0")
    debug = os.environ.get("GRAPHC_DEBUG", "") not in ("", "0")
    for name, min_level, phase in PHASES:
        if level < min_level:
            continue
        before = len(program)
        if phase is plan_memory and tile_elems is not None:
            program = phase(program, tile_elems)
        else:
            program = phase(program)
        log.append((name, before, len(program)))
        if check:
            verify(program, after=name)
        if debug:
            print(f"--- after {name}: {before} -> {len(program)} nodes", file=sys.stderr)
            print(program.dump(), file=sys.stderr)
    return program
