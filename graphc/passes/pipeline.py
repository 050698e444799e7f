"""The compiler's phases, in order. Each is ``Program -> Program`` (changing it in place);
the level says from which ``optimize`` level on it runs. User passes (``passes=[fn]``, each
``fn(g) -> g | None`` over the program's ``networkx.MultiDiGraph``) run where the list says,
after the built-in rewrites and before fusion, at every level. ``GRAPHC_VERIFY=1`` checks
the program's invariants after every phase (and, after a user pass, every node's types);
``GRAPHC_DEBUG=1`` prints it."""

from __future__ import annotations

import os
import sys

import networkx as nx

from ..errors import GraphcError, user_location
from .cse import cse
from .fold import fold
from .fusion import fuse
from .inplace import inplace
from .memory import plan_memory
from .prune import prune
from .simplify import simplify
from .verify import verify

USER_PASSES = "user passes"

PHASES = [
    ("prune", 0, prune),  # keep only what the fetches need; feeds cut the graph
    ("cse", 1, cse),  # merge pure nodes that compute the same value
    ("fold", 1, fold),  # evaluate nodes whose inputs are all constants
    ("simplify", 1, simplify),  # algebraic identities and stable patterns (local_* rules)
    ("fold_again", 1, fold),  # simplification exposes new constants
    ("cse_again", 1, cse),  # ... and new duplicates
    ("prune_again", 1, prune),  # drop what the rewrites left unused
    (USER_PASSES, 0, None),  # the caller's passes=[...], in order, then a prune
    ("fusion", 2, fuse),  # elementwise runs (+ a final reduction) -> one kernel
    ("inplace", 1, inplace),  # a dying input's buffer takes the result
    ("memory", 0, plan_memory),  # liveness intervals packed into one arena
]


def check_passes(passes) -> list:
    """``passes`` as a list of callables, or a GraphcError saying what is wrong."""
    if passes is None:
        return []
    if callable(passes):
        passes = [passes]
    passes = list(passes)
    for fn in passes:
        if not callable(fn):
            raise GraphcError(
                f"passes=[...] takes functions fn(g) -> g | None over a "
                f"networkx.MultiDiGraph; got {fn!r}",
                user_location(),
            )
    return passes


def pass_name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def run_pipeline(program, level: int, log: list, tile_elems: int | None = None, passes=()):
    """Run the phases enabled at ``level`` and the user ``passes``, appending (name, nodes
    before, nodes after) for each. ``tile_elems`` sets the fused kernels' tile size for the
    memory plan."""
    check = os.environ.get("GRAPHC_VERIFY", "") not in ("", "0")
    debug = os.environ.get("GRAPHC_DEBUG", "") not in ("", "0")
    for name, min_level, phase in PHASES:
        if name == USER_PASSES:
            for fn in passes:
                before = len(program)
                program = run_user_pass(program, fn)
                log.append((pass_name(fn), before, len(program)))
                _after(program, pass_name(fn), before, check, debug, user=True)
            if passes:
                before = len(program)
                program = prune(program)
                log.append(("prune_user", before, len(program)))
                _after(program, "prune_user", before, check, debug)
            continue
        if level < min_level:
            continue
        before = len(program)
        if phase is plan_memory and tile_elems is not None:
            program = phase(program, tile_elems)
        else:
            program = phase(program)
        log.append((name, before, len(program)))
        _after(program, name, before, check, debug)
    return program


def _after(program, name, before, check, debug, user=False):
    if check:
        verify(program, after=f"user pass {name}" if user else name, shapes=user)
    if debug:
        print(f"--- after {name}: {before} -> {len(program)} nodes", file=sys.stderr)
        print(program.dump(), file=sys.stderr)


def run_user_pass(program, fn):
    """Call ``fn(program.g)``; take the graph it returns (if another one) and re-read the
    nodes from it. A failure names the pass."""
    name = pass_name(fn)
    try:
        out = fn(program.g)
    except GraphcError:
        raise
    except Exception as e:
        raise GraphcError(f"user pass {name} failed: {type(e).__name__}: {e}") from e
    if out is not None and out is not program.g:
        if not isinstance(out, nx.MultiDiGraph):
            raise GraphcError(
                f"user pass {name} returned a {type(out).__name__}: return the "
                "networkx.MultiDiGraph it was given (or another), or None"
            )
        program.use_graph(out)
    program.sync(after=f"user pass {name}")
    return program
