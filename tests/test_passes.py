"""Each pass on hand-built graphs: pruning, CSE, folding, algebraic identities, patterns."""

import numpy as np
import pytest

import graphc as gc
from graphc.ops import elementwise as E
from graphc.ops.array import TRANSPOSE
from graphc.ops.sources import CONST
from graphc.passes.cse import cse
from graphc.passes.fold import fold
from graphc.passes.importer import import_graph
from graphc.passes.prune import prune
from graphc.passes.simplify import simplify


def program(fetches, feeds):
    graph = gc.get_default_graph()
    return import_graph(graph, fetches, [], feeds)


def optimize(p):
    """Prune, fold, simplify and prune what they left unused."""
    return prune(simplify(fold(prune(p))))


def ops(p):
    return [n.op.name for n in p.schedule()]


def run_both(fetch, feeds):
    """The reference and the optimized executors on the same feeds."""
    outs = []
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            outs.append(sess.run(fetch, feeds))
    return outs


def test_prune_keeps_only_what_the_fetch_needs_and_feeds_cut_the_graph():
    x = gc.placeholder(gc.float32, (3,))
    a = gc.exp(x)
    b = gc.log(a)
    gc.sin(x)  # an unrelated branch
    p = prune(program([b], {a: (3,)}))  # a is fed: exp never runs
    assert ops(p) == ["feed", "log"]


def test_cse_merges_identical_pure_nodes_and_their_constants():
    x = gc.placeholder(gc.float32, (3,))
    y = gc.exp(x * 2.0) + gc.exp(x * 2.0)
    p = cse(prune(program([y], {x: (3,)})))
    assert ops(p).count("exp") == 1 and ops(p).count("multiply") == 1
    assert sum(n.op is CONST for n in p.nodes) == 1


def test_cse_never_merges_random_draws():
    a = gc.random_uniform((3,), seed=1)
    b = gc.random_uniform((3,), seed=1)
    p = cse(prune(program([a + b], {})))
    assert ops(p).count("random_uniform") == 2


def test_fold_evaluates_constant_subgraphs():
    x = gc.placeholder(gc.float32, (3,))
    c = gc.exp(gc.constant([0.0, 1.0, 2.0])) * 2.0
    p = prune(fold(prune(program([x + c], {x: (3,)}))))
    assert ops(p).count("exp") == 0
    const = [n for n in p.nodes if n.op is CONST][0]
    np.testing.assert_allclose(const.attrs["value"], np.exp([0.0, 1.0, 2.0]) * 2, rtol=1e-6)
    assert const.sources, "a folded constant keeps the ops it replaced"


def test_fold_uses_the_feed_shape_for_shape_only_inputs():
    x = gc.placeholder(gc.float32, (None, 2))
    ones = gc.ones_like(x)  # fill_like: its value depends on x's shape only
    p = prune(fold(prune(program([ones], {x: (4, 2)}))))
    assert ops(p) == ["const"]
    assert p.nodes[-1].attrs["value"].shape == (4, 2)


@pytest.mark.parametrize(
    "build",
    [
        lambda x: x * 1.0,
        lambda x: 1.0 * x,
        lambda x: x + 0.0,
        lambda x: 0.0 + x,
        lambda x: x - 0.0,
        lambda x: x / 1.0,
        lambda x: gc.neg(-x),
        lambda x: gc.identity(x),
        lambda x: gc.stop_gradient(x),
        lambda x: x**1.0,
    ],
)
def test_identities_disappear(build):
    x = gc.placeholder(gc.float32, (3,))
    y = gc.exp(build(x))
    p = optimize(program([y], {x: (3,)}))
    assert ops(p) == ["feed", "exp"]


def test_identity_that_would_change_the_shape_stays():
    x = gc.placeholder(gc.float32, (3,))
    y = x * np.ones((2, 3), np.float32)  # broadcasts x up: not an identity
    p = optimize(program([y], {x: (3,)}))
    assert "multiply" in ops(p)


def test_transpose_of_transpose():
    x = gc.placeholder(gc.float32, (2, 3, 4))
    back = gc.transpose(gc.transpose(x, (1, 2, 0)), (2, 0, 1))
    assert ops(optimize(program([back], {x: (2, 3, 4)}))) == ["feed"]
    other = gc.transpose(gc.transpose(x, (1, 2, 0)), (1, 0, 2))
    p = optimize(program([other], {x: (2, 3, 4)}))
    perms = [n.attrs["perm"] for n in p.nodes if n.op is TRANSPOSE]
    assert perms == [(2, 1, 0)]
    X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ref, opt = run_both(other, {x: X})
    np.testing.assert_array_equal(ref, opt)


def test_reshape_chain_collapses():
    x = gc.placeholder(gc.float32, (2, 6))
    y = gc.reshape(gc.reshape(gc.reshape(x, (3, 4)), (12,)), (4, 3))
    p = optimize(program([y], {x: (2, 6)}))
    assert ops(p) == ["feed", "reshape"]


def test_x_squared_becomes_square():
    x = gc.placeholder(gc.float32, (3,))
    p = optimize(program([x**2], {x: (3,)}))
    assert ops(p) == ["feed", "square"]


def test_sigmoid_pattern_is_recognised():
    x = gc.placeholder(gc.float64, (5,))
    y = 1.0 / (1.0 + gc.exp(-x))
    p = optimize(program([y], {x: (5,)}))
    assert ops(p) == ["feed", "sigmoid"]
    X = np.linspace(-3, 3, 5)
    ref, opt = run_both(y, {x: X})
    np.testing.assert_allclose(opt, ref, rtol=1e-14)


def test_softplus_pattern_becomes_the_stable_form():
    x = gc.placeholder(gc.float32, (3,))
    y = gc.log(1.0 + gc.exp(x))
    p = optimize(program([y], {x: (3,)}))
    assert "log" not in ops(p) and "log1p" in ops(p)
    with gc.Session() as sess:
        out = sess.run(y, {x: np.array([-200.0, 0.0, 200.0], np.float32)})
    np.testing.assert_allclose(out, [0.0, np.log(2.0), 200.0], rtol=1e-6)  # no overflow


def test_log_of_softmax_becomes_log_softmax():
    x = gc.placeholder(gc.float32, (2, 4))
    e = gc.exp(x)
    y = gc.log(e / gc.reduce_sum(e, axis=1, keepdims=True))
    p = optimize(program([y], {x: (2, 4)}))
    assert ops(p).count("log") == 1 and "divide" not in ops(p)
    X = np.array([[1.0, 2.0, 3.0, 4.0], [-100.0, 0.0, 1.0, 2.0]], np.float32)
    with gc.Session() as sess:
        out = sess.run(y, {x: X})
    assert np.isfinite(out).all()  # the unrewritten form gives log(0) = -inf
    expected = X - np.log(np.exp(X).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_rewritten_nodes_keep_their_source_locations():
    x = gc.placeholder(gc.float32, (3,))
    y = 1.0 / (1.0 + gc.exp(-x))
    p = optimize(program([y], {x: (3,)}))
    sig = [n for n in p.nodes if n.op is E.SIGMOID][0]
    assert sig.sources and all(s.location.file == __file__ for s in sig.sources)


def test_a_scalar_times_a_matmul_scales_the_smaller_operand():
    a = gc.placeholder(gc.float64, (64, 1000))
    g = gc.placeholder(gc.float64, (64, 100))
    step = 0.01 * gc.matmul(a, g, transpose_a=True)  # SGD's lr * x.T @ g
    p = optimize(program([step], {a: (64, 1000), g: (64, 100)}))
    scaled = [n for n in p.nodes if n.op is E.MULTIPLY]
    assert len(scaled) == 1 and scaled[0].avals[0][1] == (64, 100)
    rng = np.random.default_rng(0)
    feeds = {a: rng.standard_normal((64, 1000)), g: rng.standard_normal((64, 100))}
    ref, opt = run_both(step, feeds)
    # scaling before the sum rounds differently: an error of a few ulps of the summed terms
    # (~0.1 here), which near-cancelling entries show as a larger relative error
    np.testing.assert_allclose(opt, ref, rtol=1e-12, atol=1e-15)


def test_a_scaled_matmul_read_elsewhere_is_left_alone():
    a = gc.placeholder(gc.float64, (4, 8))
    b = gc.placeholder(gc.float64, (8, 2))
    m = gc.matmul(a, b)
    p = optimize(program([2.0 * m, m], {a: (4, 8), b: (8, 2)}))
    assert ops(p).count("matmul") == 1


@pytest.mark.parametrize("transpose_b", [False, True])
def test_a_split_matmul_computes_only_the_parts_that_are_read(transpose_b):
    # an LSTM's gradient into concat([x, h]): only h's columns are needed when x is fed
    g = gc.placeholder(gc.float64, (5, 8))
    w = gc.placeholder(gc.float64, (6, 8) if transpose_b else (8, 6))
    _, dh = gc.split(gc.matmul(g, w, transpose_b=transpose_b), [2, 4], axis=1)
    p = optimize(program([dh], {g: (5, 8), w: (6, 8) if transpose_b else (8, 6)}))
    (mm,) = [n for n in p.nodes if n.op.name == "matmul"]
    assert mm.avals[0][1] == (5, 4)  # w is split (a view), the product is not
    assert [n.inputs[0][0].op.name for n in p.nodes if n.op.name == "split"] == ["feed"]
    rng = np.random.default_rng(0)
    feeds = {
        g: rng.standard_normal((5, 8)),
        w: rng.standard_normal((6, 8) if transpose_b else (8, 6)),
    }
    ref, opt = run_both(dh, feeds)
    np.testing.assert_allclose(opt, ref, rtol=1e-13)


def test_a_split_matmul_with_several_parts_read_stays_one_matmul():
    g = gc.placeholder(gc.float64, (5, 8))
    w = gc.placeholder(gc.float64, (8, 6))
    parts = gc.split(gc.matmul(g, w), [2, 1, 3], axis=1)
    for read in (parts, parts[1:]):
        p = optimize(program(read, {g: (5, 8), w: (8, 6)}))
        assert ops(p).count("matmul") == 1


def test_sum_to_like_with_known_shapes_becomes_a_reduction():
    g = gc.placeholder(gc.float64, (None, 3, 4))
    like = gc.placeholder(gc.float64, (3, 1))
    from graphc.ops.reduce import SUM_TO_LIKE

    s = SUM_TO_LIKE(g, like)
    p = optimize(program([s], {g: (2, 3, 4), like: (3, 1)}))
    assert "sum_to_like" not in ops(p) and "reduce_sum" in ops(p)
    G = np.random.default_rng(0).standard_normal((2, 3, 4))
    ref, opt = run_both(s, {g: G, like: np.zeros((3, 1))})
    np.testing.assert_allclose(opt, ref, rtol=1e-14)


def test_an_explicit_broadcast_before_an_elementwise_op_is_dropped():
    x = gc.placeholder(gc.float64, (4,))
    y = gc.placeholder(gc.float64, (3, 4))
    z = gc.broadcast_to(x, (3, 4)) * y
    p = optimize(program([z], {x: (4,), y: (3, 4)}))
    assert "broadcast_to" not in ops(p)
    rng = np.random.default_rng(1)
    feeds = {x: rng.standard_normal(4), y: rng.standard_normal((3, 4))}
    ref, opt = run_both(z, feeds)
    np.testing.assert_array_equal(opt, ref)


def test_a_constant_under_control_dependencies_hands_each_edge_on_once():
    """A constant built under ``control_dependencies`` of writes is a plain constant; its
    consumers wait for those writes instead, each write once however many such constants
    they read (an optimizer builds one per variable)."""
    vs = [gc.Variable(np.float32(i)) for i in range(3)]
    writes = [v.assign_add(1.0) for v in vs]
    with gc.control_dependencies(writes):
        one, two = gc.constant(1.0), gc.constant(2.0)
    out = (one + two) * one
    p = import_graph(gc.get_default_graph(), [out], [], {})
    consts = [n for n in p.g if n.op is CONST]
    assert consts and not any(n.controls for n in consts)
    (add,) = [n for n in p.g if n.op is E.ADD]
    writers = {getattr(w, "op", w) for w in writes}
    assert {c.source for c in add.controls} == writers and len(add.controls) == len(writes)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        assert sess.run(out) == 3.0
        assert [float(sess.run(v)) for v in vs] == [1.0, 2.0, 3.0]
