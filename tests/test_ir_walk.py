"""ir.graph.walk_needed: the ops a run reaches (compiler and diagnostics share it)."""

import pytest

import graphc as gc
from graphc.ir.graph import walk_needed


def test_walk_needed_stops_at_feeds_and_follows_control_inputs():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder(gc.float32, shape=(), name="x")
        y = gc.placeholder(gc.float32, shape=(), name="y")
        z = x * 2.0
        with g.control_dependencies([y.op]):
            out = gc.identity(z, name="out")
    names = {op.name for op in walk_needed([out], [], fed={z})}
    assert names == {"out", "y"}
    assert {"x"} <= {op.name for op in walk_needed([out], [], fed=set())}


def test_needed_ops_names_the_unfed_placeholder_and_the_fetch():
    from graphc.errors import FeedError
    from graphc.ir.graph import needed_ops

    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder(gc.float32, shape=(None, 2), name="x")
        y = gc.reduce_sum(x * 3.0, name="y")
    with pytest.raises(FeedError, match=r"placeholder 'x' .* must be fed: fetch 'y:0'"):
        needed_ops([y], [], set())
    ops, why = needed_ops([y], [], {x})
    assert [op.name for op in ops][-1] == "y" and all(w is y for w in why.values())
