"""``gc.compile``: fetches + feed shapes -> a Plan (SPEC §7). The session and the CLI call it.

plan = gc.compile(loss, feed_shapes={x: (64, 1000)}, optimize=2)
plan.stats      # nodes before/after, kernels, peak_bytes, per-pass node counts
print(plan.report())
"""

from __future__ import annotations

import os

from .backends import get_backend
from .errors import GraphcError, ShapeError, user_location
from .ir.gcpause import paused_gc
from .ir.graph import get_default_graph, walk_needed
from .ir.node import Operation, Tensor
from .ops.sources import PLACEHOLDER
from .passes.importer import import_graph
from .passes.pipeline import check_passes, run_pipeline
from .plan import Plan, build_plan
from .shapes import format_shape


@paused_gc
def compile(
    fetches,
    feed_shapes=None,
    optimize=2,
    backend="numpy",
    graph=None,  # noqa: A001
    feed_dtypes=None,
    passes=None,
) -> Plan:
    """Check, optimize and plan ``fetches`` (a tensor, an op, a name, or any nesting of lists,
    tuples and dicts of them).

    ``feed_shapes`` maps each fed tensor (or its name) to the shape it will be fed with; a
    placeholder left out keeps its static shape, and values whose size depends on an unknown
    dimension are allocated by their kernels at run time instead of planned. ``optimize``:
    0 prunes and plans memory only; 1 adds CSE, constant folding, simplification and
    in-place reuse; 2 adds fusion. The plan's peak bytes are known before anything runs.
    ``passes``: user passes, functions ``fn(g) -> g | None`` over the program's
    ``networkx.MultiDiGraph``, run after the built-in rewrites and before fusion (README,
    "Writing your own pass"). ``backend``: a registered backend (``graphc.backends``); its
    tile size shapes the plan."""
    tile = get_backend(backend).tile_elems  # a GraphcError names the registered ones
    passes = check_passes(passes)
    level = 2 if optimize is True else int(optimize)
    if level not in (0, 1, 2):
        raise GraphcError(f"optimize must be 0, 1 or 2, got {optimize!r}", user_location())
    items = _leaves(fetches)
    graph = graph or _graph_of(items)
    try:
        elements = [graph.as_graph_element(f) for f in items]
    except TypeError as e:
        raise GraphcError(
            f"cannot compile: {e}; fetch tensors, operations or their names", user_location()
        ) from None
    fetch_tensors = [e for e in elements if isinstance(e, Tensor)]
    fetch_ops = [e for e in elements if isinstance(e, Operation)]
    shapes = {graph.as_graph_element(t): s for t, s in (feed_shapes or {}).items()}
    for t, s in shapes.items():
        _check_feed_shape(t, s)
    dtypes = {graph.as_graph_element(t): d for t, d in (feed_dtypes or {}).items()}
    key = _signature(graph, fetch_tensors, fetch_ops, shapes, dtypes, level, backend, passes)
    plan = _lookup(graph, key)
    if plan is not None:
        return plan
    for t in _placeholders(fetch_tensors, fetch_ops, shapes):
        shapes[t] = t.shape  # fed later, with any size its static shape allows
    program = import_graph(graph, fetch_tensors, fetch_ops, shapes, dtypes)
    nodes_before = len(program)
    log: list = []
    # Tiles are a CPU cache concern; a GPU kernel covers the whole loop in one launch.
    program = run_pipeline(program, level, log, tile_elems=tile or 1 << 62, passes=passes)
    plan = build_plan(program, nodes_before, log, level, backend)
    program.release()  # (the plan keeps no reference to it)
    _remember(graph, key, plan)
    return plan


# The latest plans compiled for each graph, by signature, kept on the graph (they live and
# die with it): a Session's first run of what ``gc.compile`` just compiled (or a second
# Session over the same graph) takes that plan instead of compiling it again. A graph only
# grows and its ops never change, so what a signature's fetches reach, and so its plan,
# stays the same as ops are added. Compiles with user passes (arbitrary code, which may
# answer differently the next time) are not kept, nor any while GRAPHC_DEBUG prints each
# pass.
_PLANS_PER_GRAPH = 4


def _signature(graph, fetch_tensors, fetch_ops, shapes, dtypes, level, backend, passes):
    if passes or os.environ.get("GRAPHC_DEBUG", "") not in ("", "0"):
        return None
    return (
        tuple(fetch_tensors),
        tuple(fetch_ops),
        tuple((t, None if s is None else tuple(s)) for t, s in shapes.items()),
        tuple(dtypes.items()),
        level,
        backend,
    )


def _lookup(graph, key):
    plans = getattr(graph, "_plans", None)
    plan = plans.get(key) if plans is not None and key is not None else None
    if plan is not None:
        plan.reuses += 1
    return plan


def _remember(graph, key, plan):
    if key is None:
        return
    plans = getattr(graph, "_plans", None)
    if plans is None:
        return
    with graph._lock:
        plans.pop(key, None)
        plans[key] = plan
        while len(plans) > _PLANS_PER_GRAPH:
            del plans[next(iter(plans))]


def _leaves(fetches) -> list:
    """The tensors, ops and names in ``fetches``: any nesting of lists, tuples and dicts, as
    ``Session.run`` takes them (a plan computes the leaves; the structure is the caller's)."""
    if isinstance(fetches, dict):
        return [leaf for v in fetches.values() for leaf in _leaves(v)]
    if isinstance(fetches, (list, tuple)):
        return [leaf for v in fetches for leaf in _leaves(v)]
    return [fetches]


def _check_feed_shape(t, shape):
    """A planned feed shape must fit the tensor's static shape (rank and every known dim),
    as a fed value must in ``Session.run``: a plan for an impossible shape is an error."""
    want = t.shape
    shape = tuple(shape)
    if want is None:
        return
    if len(shape) != len(want) or any(
        isinstance(d, int) and d != n for d, n in zip(want, shape, strict=True)
    ):
        raise ShapeError(
            f"feed_shapes gives shape {shape} for {t.describe()}: "
            f"it needs shape {format_shape(want)}",
            user_location(),
        )


def _placeholders(fetch_tensors, fetch_ops, fed):
    """The placeholders the fetches need that ``fed`` does not mention."""
    return [
        op.outputs[0] for op in walk_needed(fetch_tensors, fetch_ops, fed) if op.op is PLACEHOLDER
    ]


def _graph_of(items):
    for f in items:
        if isinstance(f, (Tensor, Operation)):
            return f.graph
    return get_default_graph()
