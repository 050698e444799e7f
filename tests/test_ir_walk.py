"""ir.graph.walk_needed: the ops a run reaches (compiler and diagnostics share it)."""

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
