"""The graph IR: default graph, names and scopes, lookup, collections, source locations,
the networkx view, and the operators and slicing that Tensor offers (SPEC §2)."""

import inspect

import numpy as np
import pytest

import graphc as gc


def _line_after(offset=0):
    """The line number of the caller's next line (plus ``offset``)."""
    return inspect.currentframe().f_back.f_lineno + 1 + offset


def _run(t, feed=None):
    with gc.Session(graph=t.graph) as sess:
        return sess.run(t, feed)


# --- default graph ----------------------------------------------------------------------------


def test_ops_go_to_the_default_graph():
    c = gc.constant(1.0)
    assert c.graph is gc.get_default_graph()
    assert c.op in gc.get_default_graph().get_operations()


def test_as_default_redirects_and_restores():
    outer = gc.get_default_graph()
    g = gc.Graph()
    with g.as_default():
        assert gc.get_default_graph() is g
        c = gc.constant(1.0, name="c")
    assert c.graph is g and gc.get_default_graph() is outer
    assert len(outer) == 0 and g.get_tensor_by_name("c") is c


def test_reset_default_graph_starts_empty():
    gc.constant(1.0, name="c")
    old = gc.get_default_graph()
    gc.reset_default_graph()
    new = gc.get_default_graph()
    assert new is not old and len(new) == 0
    assert gc.constant(2.0, name="c").name == "c:0"  # names are free again


def test_reset_inside_as_default_is_an_error():
    with gc.Graph().as_default():
        with pytest.raises(gc.GraphcError, match="as_default"):
            gc.reset_default_graph()


def test_mixing_graphs_is_an_error():
    a = gc.constant(1.0)
    with gc.Graph().as_default():
        b = gc.constant(2.0)
    with pytest.raises(gc.GraphcError, match="another graph"):
        a + b


# --- names and scopes -------------------------------------------------------------------------


def test_unique_names():
    names = [gc.constant(1.0, name="w").name for _ in range(3)]
    assert names == ["w:0", "w_1:0", "w_2:0"]
    assert gc.constant(1.0).op.name == "const"  # default: the op's type


def test_name_scope_prefixes_and_nests():
    with gc.name_scope("layer1") as scope:
        assert scope == "layer1/"
        a = gc.constant(1.0, name="a")
        with gc.name_scope("inner"):
            b = gc.placeholder(gc.float32, name="x")
    c = gc.constant(1.0, name="a")
    assert (a.name, b.name, c.name) == ("layer1/a:0", "layer1/inner/x:0", "a:0")


def test_reopened_name_scope_is_made_unique():
    with gc.name_scope("layer"):
        first = gc.constant(1.0, name="w")
    with gc.name_scope("layer"):
        second = gc.constant(1.0, name="w")
    assert first.name == "layer/w:0" and second.name == "layer_1/w:0"


def test_name_scope_applies_to_composites_and_variables():
    with gc.name_scope("dense"):
        v = gc.Variable(np.zeros(2, np.float32), name="kernel")
        s = gc.softmax(v, name="probs")
    assert v.name == "dense/kernel:0" and s.name == "dense/probs:0"
    assert gc.get_default_graph().get_tensor_by_name("dense/probs") is s


# --- lookup -----------------------------------------------------------------------------------


def test_get_tensor_by_name_accepts_both_spellings():
    g = gc.get_default_graph()
    x = gc.placeholder(gc.float32, shape=(2,), name="x")
    assert g.get_tensor_by_name("x") is x
    assert g.get_tensor_by_name("x:0") is x
    assert g.get_operation_by_name("x") is x.op


def test_unknown_names_raise_not_found_with_suggestion():
    gc.placeholder(gc.float32, name="inputs")
    g = gc.get_default_graph()
    with pytest.raises(gc.NotFoundError, match="did you mean 'inputs'"):
        g.get_tensor_by_name("input")
    with pytest.raises(gc.NotFoundError, match="1 output"):
        g.get_tensor_by_name("inputs:1")
    with pytest.raises(KeyError):  # NotFoundError is also a KeyError, as users expect
        g.get_operation_by_name("nope")


# --- collections ------------------------------------------------------------------------------


def test_variable_collections():
    w = gc.Variable(np.ones(3, np.float32), name="w")
    step = gc.Variable(0, trainable=False, name="step")
    assert gc.global_variables() == [w, step]
    assert gc.trainable_variables() == [w]
    g = gc.get_default_graph()
    g.add_to_collection("losses", w)
    assert g.get_collection("losses") == [w]
    assert g.get_collection("nothing") == []
    assert set(g.get_all_collection_keys()) >= {"variables", "trainable_variables", "losses"}


# --- immutable nodes and their record ---------------------------------------------------------


def test_nodes_are_immutable_records():
    x = gc.placeholder(gc.float32, shape=(2, 3))
    y = gc.reduce_sum(x, axis=1)
    assert y.op.inputs == (x,) and y.op.type == "reduce_sum"
    assert dict(y.op.attrs) == {"axis": (1,), "keepdims": False}
    with pytest.raises(TypeError):
        y.op.attrs["axis"] = (0,)


def test_node_ids_are_a_topological_order():
    a = gc.constant(1.0)
    b = a * 2
    c = b + a
    ids = [t.op.id for t in (a, b, c)]
    assert ids == sorted(ids)
    for op in gc.get_default_graph().get_operations():
        assert all(t.op.id < op.id for t in op.inputs)


def test_node_location_is_the_users_line():
    line = _line_after()
    x = gc.placeholder(gc.float32, shape=(3,))
    y = gc.nn.softmax(x * 2)  # a composite: every node it builds points here too
    assert x.op.location.file == __file__ and x.op.location.line == line
    assert y.op.location.line == line + 1
    assert str(x.op.location) == f"{__file__}:{line}"


def test_to_networkx_has_data_and_control_edges():
    x = gc.placeholder(gc.float32, shape=(2,))
    y = x * x
    v = gc.Variable(np.zeros(2, np.float32))
    with gc.control_dependencies([v.initializer]):
        z = gc.identity(y)
    g = gc.get_default_graph().to_networkx()
    data = [(d["pos"], d["index"]) for _, _, d in g.in_edges(y.op, data=True)]
    assert sorted(data) == [(0, 0), (1, 0)]  # x feeds both operands
    kinds = {d["kind"] for _, _, d in g.in_edges(z.op, data=True)}
    assert kinds == {"data", "control"}
    assert g.has_edge(v.initializer, z.op)


def test_finalize_makes_the_graph_read_only():
    gc.constant(1.0)
    gc.get_default_graph().finalize()
    line = _line_after(offset=1)
    with pytest.raises(gc.GraphFinalizedError) as e:
        gc.constant(2.0)
    assert f"{__file__}:{line}" in str(e.value)


# --- Tensor: static types, operators, slicing -------------------------------------------------


def test_tensor_handles():
    x = gc.placeholder(gc.float32, shape=(None, 4), name="x")
    assert x.dtype is gc.float32 and x.shape == (None, 4) and x.name == "x:0"
    assert x.shape.as_list() == [None, 4] and x.ndim == 2
    assert "x:0" in repr(x) and "?" in repr(x)


@pytest.mark.parametrize(
    "op, fn",
    [
        ("+", lambda a, b: a + b),
        ("-", lambda a, b: a - b),
        ("*", lambda a, b: a * b),
        ("/", lambda a, b: a / b),
        ("//", lambda a, b: a // b),
        ("%", lambda a, b: a % b),
        ("**", lambda a, b: a**b),
        ("<", lambda a, b: a < b),
        ("<=", lambda a, b: a <= b),
        (">", lambda a, b: a > b),
        (">=", lambda a, b: a >= b),
    ],
)
def test_binary_operators_match_numpy(op, fn):
    a = np.array([[1.5, -2.0, 3.0]], np.float32)
    b = np.array([[2.0], [3.0]], np.float32)
    ta, tb = gc.constant(a), gc.constant(b)
    for got, want in [
        (fn(ta, tb), fn(a, b)),
        (fn(ta, 2), fn(a, np.float32(2))),
        (fn(3, tb), fn(np.float32(3), b)),
    ]:
        assert got.shape == want.shape
        np.testing.assert_allclose(_run(got), want, rtol=1e-6)


def test_unary_operators_and_matmul():
    a = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    t = gc.constant(a)
    np.testing.assert_array_equal(_run(-t), -a)
    np.testing.assert_array_equal(_run(abs(t)), np.abs(a))
    np.testing.assert_allclose(_run(t @ t), a @ a)
    np.testing.assert_allclose(_run(a @ t), a @ a)  # numpy on the left
    m = gc.constant(np.array([True, False]))
    np.testing.assert_array_equal(_run(~m), [False, True])
    np.testing.assert_array_equal(_run(m & ~m), [False, False])
    np.testing.assert_array_equal(_run(m | ~m), [True, True])


def test_tensors_compare_by_identity():
    a = gc.constant(1.0)
    b = gc.constant(1.0)
    assert a == a and a != b and len({a, b}) == 2  # usable as feed_dict keys
    np.testing.assert_array_equal(_run(gc.equal(a, b)), True)


X = np.arange(60, dtype=np.float32).reshape(3, 4, 5)


@pytest.mark.parametrize(
    "key",
    [
        1,
        -1,
        (0, -2),
        (slice(None), 1),
        (slice(1, None), slice(None, None, 2)),
        (slice(None, None, -1),),
        (..., -1),
        (0, ..., 2),
        (None, 1),
        (slice(None), None, 2),
        (-1, slice(-3, -1), slice(None, None, -2)),
        (..., None),
    ],
)
def test_slicing_matches_numpy(key):
    t = gc.constant(X)
    got = t[key]
    want = X[key]
    assert tuple(got.shape) == want.shape
    np.testing.assert_array_equal(_run(got), want)


def test_slicing_an_unknown_dim_keeps_it_unknown():
    x = gc.placeholder(gc.float32, shape=(None, 5))
    y = x[1:, -1]
    assert y.shape == (None,)
    np.testing.assert_array_equal(_run(y, {x: X[0]}), X[0][1:, -1])


def test_slicing_errors_at_build_time():
    t = gc.constant(X)
    with pytest.raises(gc.ShapeError, match="too many indices"):
        t[0, 0, 0, 0]
    with pytest.raises(gc.ShapeError, match="out of range"):
        t[3]


def test_transpose_property():
    t = gc.constant(X)
    assert t.T.shape == (5, 4, 3)
    np.testing.assert_array_equal(_run(t.T), X.T)
    np.testing.assert_array_equal(_run(gc.transpose(t, (1, 0, 2))), X.transpose(1, 0, 2))


def test_len_of_static_first_dim():
    assert len(gc.constant(X)) == 3
    with pytest.raises(gc.DefineAndRunError):
        len(gc.placeholder(gc.float32, shape=(None, 2)))
