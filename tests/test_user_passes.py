"""User passes: functions over the program's networkx.MultiDiGraph, given to gc.compile and
Session (README "Writing your own pass"), and the helpers in graphc.passes."""

import networkx as nx
import numpy as np
import pytest

import graphc as gc
import graphc.passes as gp
from graphc.errors import GraphcError

X = np.array([[-1.0, 0.5, 2.0], [3.0, -4.0, 0.0]], np.float32)


def relu_to_identity(g):
    """max(x, 0) -> x"""
    for n in gp.find(g, "maximum"):
        x, zero = gp.inputs(g, n)
        if gp.constant_value(g, zero) == 0:
            gp.replace_uses(g, n, x)


def double_to_add(g):
    """x * 2 -> x + x"""
    for n in gp.find(g, "multiply"):
        x, c = gp.inputs(g, n)
        if gp.constant_value(g, c) == 2:
            gp.replace_uses(g, n, gp.add_op(g, "add", [x, x], like=n))
    gp.remove_dead(g)


def model():
    x = gc.placeholder(gc.float32, (None, 3))
    return x, gc.relu(x * 2.0) - 1.0


@pytest.mark.parametrize("optimize", [0, 1, 2])
def test_a_user_pass_changes_the_result_and_is_named_in_stats_and_report(optimize):
    x, y = model()
    with gc.Session(optimize=optimize) as sess:
        plain = sess.run(y, {x: X})
    with gc.Session(optimize=optimize, passes=[relu_to_identity]) as sess:
        changed = sess.run(y, {x: X})
    np.testing.assert_allclose(plain, np.maximum(X * 2, 0) - 1)
    np.testing.assert_allclose(changed, X * 2 - 1)  # the relu is gone
    plan = gc.compile(y, feed_shapes={x: (2, 3)}, optimize=optimize, passes=[relu_to_identity])
    names = [name for name, _, _ in plan.stats["passes"]]
    assert "relu_to_identity" in names
    assert names.index("relu_to_identity") < names.index("memory")
    if optimize == 2:
        assert names.index("prune_again") < names.index("relu_to_identity") < names.index("fusion")
    assert "relu_to_identity" in plan.report()
    assert all(s.op.name != "maximum" for s in plan.steps)


def test_a_rewrite_that_keeps_the_value_changes_the_plan_and_not_the_result():
    x, y = model()
    before = gc.compile(y, feed_shapes={x: (2, 3)}, optimize=1)
    after = gc.compile(y, feed_shapes={x: (2, 3)}, optimize=1, passes=[double_to_add])
    assert [s.op.name for s in before.steps] == ["multiply", "maximum", "subtract"]
    assert [s.op.name for s in after.steps] == ["add", "maximum", "subtract"]
    name, n_before, n_after = after.stats["passes"][
        [p[0] for p in after.stats["passes"]].index("double_to_add")
    ]
    assert n_after < n_before  # the multiply and its 2 are gone
    with gc.Session(passes=[double_to_add]) as sess:
        np.testing.assert_allclose(sess.run(y, {x: X}), np.maximum(X * 2, 0) - 1)


def test_the_pass_sees_a_multidigraph_with_typed_nodes_and_positional_edges():
    x = gc.placeholder(gc.float32, (None, 3))
    y = gc.subtract(gc.exp(x), x)  # subtract(exp(x), x): x is read at position 1
    seen = {}

    def look(g):
        seen["type"] = type(g)
        sub = gp.find(g, "subtract")[0]
        data = g.nodes[sub]
        seen["data"] = {k: data[k] for k in ("op", "attrs", "dtype", "shape", "locations")}
        seen["keys"] = sorted(k for _, _, k in g.in_edges(sub, keys=True))
        seen["inputs"] = [g.nodes[p]["op"] for p, _ in gp.inputs(g, sub)]
        return g

    gc.compile(y, feed_shapes={x: (4, 3)}, optimize=0, passes=[look])
    assert issubclass(seen["type"], nx.MultiDiGraph)
    assert seen["data"]["op"] == "subtract" and seen["data"]["dtype"] == gc.float32
    assert seen["data"]["shape"] == (4, 3)  # the fed shape, made concrete
    assert seen["data"]["locations"][0].startswith(__file__)
    assert seen["keys"] == [0, 1] and seen["inputs"] == ["exp", "feed"]


def test_a_pass_may_return_another_graph():
    x, y = model()

    def copy_then_rewrite(g):
        h = g.copy()
        relu_to_identity(h)
        return h

    with gc.Session(passes=[copy_then_rewrite]) as sess:
        np.testing.assert_allclose(sess.run(y, {x: X}), X * 2 - 1)


def test_verify_names_a_user_pass_that_wires_an_input_of_another_shape(monkeypatch):
    monkeypatch.setenv("GRAPHC_VERIFY", "1")
    x = gc.placeholder(gc.float32, (2, 3))
    s = gc.reduce_sum(x, axis=1)  # (2,)
    y = gc.exp(x) + 1.0

    def broken(g):
        """exp(x) -> reduce_sum(x): a (2,) value where a (2, 3) one was read"""
        (exp,) = gp.find(g, "exp")
        (total,) = gp.find(g, "reduce_sum")
        gp.replace_uses(g, exp, total)

    with pytest.raises(GraphcError, match="user pass broken"):
        gc.compile([y, s], feed_shapes={x: (2, 3)}, optimize=0, passes=[broken])


def test_a_pass_that_breaks_the_program_is_named_even_without_verify(monkeypatch):
    monkeypatch.delenv("GRAPHC_VERIFY", raising=False)
    x, y = model()

    def drops_the_fetch(g):
        g.remove_node(g.graph["fetches"][0][0])

    def cycle(g):
        (m,) = gp.find(g, "multiply")
        (r,) = gp.find(g, "maximum")
        g.add_edge(r, m, key="control", kind="control")

    def fails(g):
        raise KeyError("oops")

    for fn in (drops_the_fetch, cycle, fails):
        with pytest.raises(GraphcError, match=f"user pass {fn.__name__}"):
            gc.compile(y, feed_shapes={x: (2, 3)}, optimize=0, passes=[fn])


def test_passes_must_be_functions():
    with pytest.raises(GraphcError, match="passes"):
        gc.Session(passes=["relu_to_identity"])


def test_builtin_results_are_the_same_with_an_identity_pass_at_every_level():
    x = gc.placeholder(gc.float32, (None, 3))
    w = gc.Variable(gc.random_normal((3, 3), seed=3))
    loss = gc.reduce_mean(gc.square(gc.tanh(x @ w) - 0.5))
    train = gc.train.AdamOptimizer(0.1).minimize(loss)
    init = gc.global_variables_initializer()
    runs = []
    for optimize in (0, 1, 2):
        for passes in (None, [lambda g: None]):
            with gc.Session(optimize=optimize, passes=passes) as sess:
                sess.run(init)
                runs.append([sess.run([train, loss], {x: X})[1] for _ in range(3)])
    for r in runs[1:]:
        np.testing.assert_allclose(r, runs[0], rtol=1e-5)


def test_the_custom_pass_example_shows_the_plan_change():
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "custom_pass.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    first, second = out.split("--- passes=['double_to_add']")
    assert "0  multiply ('multiply')" in first and "double_to_add" not in first
    assert "0  add ('multiply')" in second and "double_to_add      4 -> 3" in second
    assert "same result" in out
