"""The `.g` form of control flow is exact: graph.to_text() -> gc.loads -> the same graph, node
for node, when bodies use a node twice, when a gradient's body shares its forward body's
nodes, and when two loops run the same body (a while loop and the recording twin its
gradient adds)."""

from collections import Counter

import numpy as np
import pytest

import graphc as gc
from graphc.frontend.fmt import format_source


def _is_function(v):
    return all(hasattr(v, a) for a in ("graph", "params", "outputs", "targets"))


def _structure(graph) -> Counter:
    """Every live node of ``graph`` and of its bodies as a structural key (its op, attributes
    and inputs' keys, recursively; a body's parameter is its place in the first body that
    takes it): equal multisets mean the same graph up to node names and creation order, and
    a node built twice counts twice."""
    fns, regions = [], []

    def collect(op):
        for v in op.attrs.values():
            if _is_function(v) and v not in fns:
                fns.append(v)
                if v.graph not in regions:
                    regions.append(v.graph)
                for inner in v.graph.get_operations():
                    collect(inner)

    for op in graph.get_operations():
        collect(op)
    param_key = {}
    for i, f in enumerate(fns):
        for j, p in enumerate(f.params):
            param_key.setdefault(p, ("param", regions.index(f.graph), i, j))
    memo = {}

    def tkey(t):
        if t in param_key:
            return param_key[t]
        return (okey(t.op), t.index)

    def attr(v):
        if _is_function(v):
            return (
                "fn",
                regions.index(v.graph),
                tuple(tkey(p) for p in v.params),
                tuple(tkey(o) for o in v.outputs),
                len(v.targets),
            )
        if isinstance(v, np.ndarray):
            return (str(v.dtype), v.shape, tuple(v.ravel().tolist()))
        if isinstance(v, (list, tuple)):
            return tuple(attr(x) for x in v)
        if hasattr(v, "outputs") and hasattr(v, "type"):  # an assignment's variable
            return ("var", v.name)
        return repr(v)

    def okey(op):
        key = memo.get(op)
        if key is None:
            if op.type in ("placeholder", "variable") and op.graph is graph:
                key = (op.type, op.name)
            else:
                attrs = tuple(sorted((k, attr(v)) for k, v in op.attrs.items()))
                key = (op.type, attrs, tuple(tkey(t) for t in op.inputs))
            memo[op] = key
        return key

    out = Counter(okey(op) for op in graph.get_operations())
    live = set()  # the nodes the bodies compute (not a gradient's dead ends)
    for f in fns:
        todo = [t.op for t in f.outputs] + list(f.targets)
        while todo:
            op = todo.pop()
            if op in live or op.graph is not f.graph or op.outputs and op.outputs[0] in param_key:
                continue
            live.add(op)
            todo += [t.op for t in op.inputs if t not in param_key]
    return out + Counter(("body", okey(op)) for op in live)


def _values(graph, fetches, feeds):
    with gc.Session(graph=graph) as sess:
        sess.run([v.initializer for v in graph.get_collection("variables")])
        return sess.run(fetches, feeds)


def _round_trip(graph, fetches, feeds):
    text = graph.to_text()
    again = gc.loads(text, graph=gc.Graph())
    assert again.to_text() == text  # a fixed point
    assert _structure(again) == _structure(graph)  # node for node
    formatted = gc.loads(format_source(text), graph=gc.Graph())
    assert _structure(formatted) == _structure(graph)
    for a, b in zip(_values(again, fetches, feeds), _values(graph, fetches, feeds), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    return text


def test_a_body_node_used_twice_and_a_gradient_sharing_the_forward_body_load_back_exactly():
    with gc.Graph().as_default() as g:
        x = gc.placeholder(gc.float64, (None, 3), name="x")
        w = gc.Variable(np.array([0.5, -1.0, 2.0]), name="w")

        def step(h, v):
            e = gc.exp(h * w)  # used twice
            a, b, c = gc.split(v, 3)  # three outputs of one op
            return e * 0.1 + e * v + gc.concat([a, b * c, c], 0)

        hs = gc.scan(step, x, initializer=gc.zeros((3,), gc.float64), name="hs")
        loss = gc.reduce_sum(hs**2, name="loss")
        (gw,) = gc.gradients(loss, [w])
        gw = gc.identity(gw, name="gw")
    text = _round_trip(g, ["loss:0", "gw:0"], {"x:0": np.arange(12.0).reshape(4, 3) / 10})
    assert " in body_fn0 {" in text and "t0 = " in text


def test_while_loop_gradients_share_the_loop_body_and_cond_gradients_their_branches():
    with gc.Graph().as_default() as g:
        v = gc.placeholder(gc.float64, (3,), name="v")
        p = gc.placeholder(gc.bool, (), name="p")
        _, y = gc.while_loop(
            lambda k, y: k < 3, lambda k, y: (k + 1, gc.sin(y) * v + gc.sin(y)), (0, v)
        )
        c = gc.cond(p, lambda: gc.tanh(v) * gc.tanh(v), lambda: v * 2.0)
        total = gc.identity(gc.reduce_sum(y) + gc.reduce_sum(c), name="total")
        gc.identity(gc.gradients(total, v)[0], name="gv")
    ops = [op.type for op in g.get_operations()]
    assert ops.count("while_loop") == 2  # the loop and its recording twin: one body
    feeds = {"v:0": np.array([0.5, -0.25, 1.5]), "p:0": True}
    text = _round_trip(g, ["total:0", "gv:0"], feeds)
    for taken in (True, False):
        feeds["p:0"] = taken
        again = gc.loads(text, graph=gc.Graph())
        np.testing.assert_allclose(
            _values(again, ["gv:0"], feeds), _values(g, ["gv:0"], feeds), rtol=1e-12
        )


def test_nested_bodies_with_shared_nodes_load_back_exactly():
    with gc.Graph().as_default() as g:
        xs = gc.placeholder(gc.float64, (None, 2), name="xs")
        w = gc.Variable(np.array([0.3, -0.7]), name="w")

        def step(h, x):
            s = gc.sigmoid(h * w + x)
            inner = gc.map_fn(lambda e: e * e + e, s)
            return s * inner + s

        hs = gc.scan(step, xs, initializer=gc.zeros((2,), gc.float64))
        loss = gc.identity(gc.reduce_sum(hs), name="loss")
        gc.identity(gc.gradients(loss, w)[0], name="gw")
    _round_trip(g, ["loss:0", "gw:0"], {"xs:0": np.linspace(-1, 1, 10).reshape(5, 2)})


def test_the_structure_check_sees_a_node_built_twice():
    """The check above is not vacuous: the same values built with a duplicated node differ."""
    with gc.Graph().as_default() as once:
        x = gc.placeholder(gc.float64, (None,), name="x")
        gc.scan(lambda a, v: gc.exp(a) + gc.exp(a) * v, x, initializer=gc.zeros((), gc.float64))
    with gc.Graph().as_default() as twice:
        x = gc.placeholder(gc.float64, (None,), name="x")

        def body(a, v):
            e = gc.exp(a)
            return e + e * v

        gc.scan(body, x, initializer=gc.zeros((), gc.float64))
    assert _structure(once) != _structure(twice)


def test_block_fn_errors_name_the_line():
    src = """model m {
  input x : f64[3]
  fn g(p0, p1) in f {
    return p0
  }
  y = op.cond(x[0] > 0.0, x, then_fn=g, else_fn=g)
  output y
}
"""
    with pytest.raises(gc.GraphcError, match="not a fn traced as a body") as info:
        gc.loads(src, filename="blk.g")
    assert "blk.g:3" in str(info.value)
