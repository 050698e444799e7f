"""Control flow (SPEC §15): cond, while_loop, scan, map_fn — values, effects, shape errors,
gradients against finite differences (first and second order), and compiled bodies."""

import inspect

import numpy as np
import pytest

import graphc as gc
from graphc.ops.control import COND, SCAN, WHILE


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as g:
        yield g


def _line():
    return inspect.currentframe().f_back.f_lineno


# --- values -----------------------------------------------------------------------------------


def test_counting_loop():
    i = gc.while_loop(lambda i: i < 10, lambda i: i + 1, [gc.constant(0)])
    n = gc.placeholder(gc.int32, ())
    i2, total = gc.while_loop(
        lambda i, s: i < n, lambda i, s: (i + 1, s + i), (gc.constant(0), gc.constant(0))
    )
    with gc.Session() as sess:
        assert sess.run(i) == 10
        assert sess.run([i2, total], {n: 5}) == [5, 10]
        assert sess.run([i2, total], {n: 0}) == [0, 0]


def test_newton_iterations_for_a_square_root():
    x = gc.placeholder(gc.float64, ())
    y, steps = gc.while_loop(
        lambda y, k: gc.abs(y * y - x) > 1e-12,
        lambda y, k: (0.5 * (y + x / y), k + 1),
        (x, gc.constant(0)),
    )
    with gc.Session() as sess:
        for v in (2.0, 9.0, 1e4):
            root, k = sess.run([y, steps], {x: v})
            assert abs(root - np.sqrt(v)) < 1e-9 and 0 < k < 30


def test_maximum_iterations_bounds_the_loop_static_and_tensor():
    forever = gc.while_loop(lambda i: True, lambda i: i + 1, [gc.constant(0)], maximum_iterations=7)
    m = gc.placeholder(gc.int32, ())
    bounded = gc.while_loop(
        lambda i: i < 100, lambda i: i + 2, [gc.constant(0)], maximum_iterations=m
    )
    with gc.Session() as sess:
        assert sess.run(forever) == 7
        assert sess.run(bounded, {m: 4}) == 8
        assert sess.run(bounded, {m: 1000}) == 100


def test_loop_vars_keep_their_structure():
    out = gc.while_loop(
        lambda s: s["i"] < 3,
        lambda s: {"i": s["i"] + 1, "x": s["x"] * 2.0},
        [{"i": gc.constant(0), "x": gc.constant(1.0)}],
        return_same_structure=True,
    )
    with gc.Session() as sess:
        (res,) = sess.run(out)
    assert res["i"] == 3 and res["x"] == 8.0


def test_cond_picks_a_branch_at_run_time_and_folds_a_constant_predicate():
    x = gc.placeholder(gc.float32, (2,))
    p = gc.placeholder(gc.bool, ())
    y = gc.cond(p, lambda: x * 2.0, lambda: x - 1.0)
    a, b = gc.cond(p, lambda: (x, x + 1.0), lambda: (x + 2.0, x))
    assert y.op.op is COND and y.shape == (2,)
    folded = gc.cond(gc.constant(True), lambda: x * 3.0, lambda: x)
    assert folded.op.type == "multiply"  # no cond left in the graph
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(y, {x: [1, 2], p: True}), [2, 4])
        np.testing.assert_allclose(sess.run(y, {x: [1, 2], p: False}), [0, 1])
        np.testing.assert_allclose(sess.run([a, b], {x: [1, 2], p: False}), [[3, 4], [1, 2]])


def test_case_takes_the_first_true_predicate():
    x = gc.placeholder(gc.int32, ())
    y = gc.case(
        [(x < 0, lambda: gc.constant(-1)), (x < 10, lambda: gc.constant(1))],
        default=lambda: gc.constant(100),
    )
    with gc.Session() as sess:
        assert [sess.run(y, {x: v}) for v in (-5, 5, 50)] == [-1, 1, 100]


def test_scan_and_map_fn():
    e = gc.placeholder(gc.float64, (None,))
    cumsum = gc.scan(lambda a, v: a + v, e, initializer=gc.constant(0.0, gc.float64))
    rev = gc.scan(lambda a, v: a + v, e, reverse=True)
    sq = gc.map_fn(lambda v: v * v, e)
    pair = gc.map_fn(lambda t: (t[0] + t[1], t[0] * t[1]), (e, e + 1.0))
    vals = np.arange(1.0, 6.0)
    with gc.Session() as sess:
        c, r, s, (p0, p1) = sess.run([cumsum, rev, sq, pair], {e: vals})
    np.testing.assert_allclose(c, np.cumsum(vals))
    np.testing.assert_allclose(r, np.cumsum(vals[::-1])[::-1])
    np.testing.assert_allclose(s, vals**2)
    np.testing.assert_allclose(p0, 2 * vals + 1)
    np.testing.assert_allclose(p1, vals * (vals + 1))


def test_nested_control_flow_captures_outer_tensors_through_every_level():
    w = gc.placeholder(gc.float64, ())
    x = gc.placeholder(gc.float64, (3,))

    def step(a, v):
        return gc.cond(
            v > 0,
            lambda: a + w * v,
            lambda: gc.while_loop(lambda b: b < 10.0, lambda b: b + w, [a]),
        )

    out = gc.scan(step, x, initializer=gc.constant(0.0, gc.float64))
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(out, {w: 2.0, x: [1.0, -1.0, 3.0]}), [2.0, 10.0, 16.0])


# --- state ------------------------------------------------------------------------------------


def test_cond_runs_only_the_taken_branchs_assignments():
    v = gc.Variable(0.0)
    w = gc.Variable(10.0)
    p = gc.placeholder(gc.bool, ())
    c = gc.cond(p, lambda: v.assign_add(1.0), lambda: w.assign_sub(1.0))

    def only_effects():
        v.assign_add(100.0)  # not returned: runs because the branch runs
        return gc.constant(0.0)

    d = gc.cond(p, only_effects, lambda: gc.constant(1.0))
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for taken in (True, True, False):
            sess.run(c, {p: taken})
        assert sess.run([v, w]) == [2.0, 9.0]
        sess.run(d, {p: False})
        assert sess.run(v) == 2.0
        sess.run(d, {p: True})
        assert sess.run(v) == 102.0


def test_variables_read_and_assigned_inside_a_loop_body_in_program_order():
    acc = gc.Variable(1.0, dtype=gc.float64)

    def body(i, seen):
        before = acc * 3.0  # read before the update
        with gc.control_dependencies([acc.assign(acc * 2.0)]):
            return i + 1, seen + before

    i, seen = gc.while_loop(
        lambda i, s: i < 4, body, (gc.constant(0), gc.constant(0.0, gc.float64))
    )
    after = acc + 0.0
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        assert sess.run(seen) == 3 * (1 + 2 + 4 + 8)
        assert sess.run(after) == 16.0


# --- errors -----------------------------------------------------------------------------------


def test_a_loop_variable_changing_shape_is_an_error_at_the_users_line():
    with pytest.raises(gc.ShapeError) as info:
        line = _line() + 1
        gc.while_loop(
            lambda x: gc.reduce_sum(x) < 100.0, lambda x: gc.concat([x, x], 0), [gc.ones((2,))]
        )
    err = info.value
    assert err.location.line == line and err.location.file == __file__
    assert "(2,)" in str(err) and "(4,)" in str(err) and "shape_invariants" in str(err)
    with pytest.raises(gc.ShapeError) as info:
        line = _line() + 1
        gc.scan(lambda a, x: gc.concat([a, x[None]], 0), gc.ones((3, 2)), initializer=gc.ones((2,)))
    assert info.value.location.line == line


def test_shape_invariants_allow_a_growing_loop_variable():
    x = gc.while_loop(
        lambda x: gc.reduce_sum(x) < 100.0,
        lambda x: gc.concat([x, x], 0),
        [gc.ones((2,))],
        shape_invariants=[gc.TensorShape([None])],
    )
    assert x.shape == (None,)
    with gc.Session() as sess:
        assert sess.run(x).shape == (128,)


def test_run_time_shape_change_of_an_unknown_dim_names_the_loop():
    x = gc.placeholder(gc.float32, (None,))
    twice = gc.register_op(
        "control_test_twice", lambda a: np.concatenate([a, a]), shape_fn=lambda s: (None,)
    )  # a shape the rules cannot tell
    grown = gc.while_loop(
        lambda x: gc.reduce_sum(x) < 100.0, twice, [x], shape_invariants=[gc.TensorShape([3])]
    )
    with gc.Session() as sess, pytest.raises(gc.ShapeError, match="after iteration 1"):
        sess.run(grown, {x: np.ones(3, np.float32)})


def test_branch_and_body_type_errors():
    p = gc.placeholder(gc.bool, ())
    with pytest.raises(gc.DTypeError):
        gc.cond(p, lambda: gc.constant(1), lambda: gc.constant(1.0))
    with pytest.raises(gc.GraphcError):
        gc.cond(p, lambda: (gc.constant(1.0), gc.constant(2.0)), lambda: gc.constant(1.0))
    with pytest.raises(gc.DTypeError):
        gc.while_loop(lambda i: i < 3, lambda i: gc.cast(i, gc.float32), [gc.constant(0)])
    with pytest.raises(gc.GraphcError, match="outside control flow"):
        gc.while_loop(lambda i: i < 3, lambda i: i + gc.Variable(1), [gc.constant(0)])


# --- gradients --------------------------------------------------------------------------------

X3 = np.array([0.3, -0.5, 0.8])


@pytest.mark.parametrize("taken", [True, False])
def test_cond_gradient_is_the_taken_branchs(taken):
    def f(x, w, p):
        return gc.cond(p, lambda: gc.sin(x) * w, lambda: w * w + x)

    gc.test.check_gradients(f, [X3, np.array(1.5), np.array(taken)])


def test_while_gradient_and_second_order():
    def f(x, w):
        _, y = gc.while_loop(
            lambda i, a: i < 3, lambda i, a: (i + 1, gc.sin(a) * w + a), (gc.constant(0), x)
        )
        return y

    gc.test.check_gradients(f, [X3, np.array(0.7)])

    def grad_of(x, w):
        g = gc.gradients(gc.reduce_sum(f(x, w) ** 2), [x, w])
        return [gc.reduce_sum(gc.sin(g[0])), g[1]]

    gc.test.check_gradients(grad_of, [X3, np.array(0.7)], rtol=1e-4, atol=1e-5)


def test_scan_gradient_and_second_order():
    def f(xs, h0, w):
        return gc.scan(lambda h, x: gc.tanh(h * w + x), xs, initializer=h0)

    xs = np.random.default_rng(0).standard_normal((4, 3))
    gc.test.check_gradients(f, [xs, X3, np.array(0.9)])
    gc.test.check_gradients(lambda xs, h0, w: f(xs, h0, w), [xs, X3, np.array(0.9)], optimize=2)

    def grad_of(xs, h0, w):
        g = gc.gradients(gc.reduce_sum(f(xs, h0, w)), [xs, h0, w])
        return [gc.reduce_sum(g[0] ** 2), g[1], g[2]]

    gc.test.check_gradients(grad_of, [xs, X3, np.array(0.9)], rtol=1e-4, atol=1e-5)


def test_reverse_scan_without_initializer_and_map_fn_gradients():
    xs = np.random.default_rng(1).standard_normal((5, 2))
    gc.test.check_gradients(lambda x: gc.scan(lambda a, v: a * gc.cos(v), x, reverse=True), [xs])
    gc.test.check_gradients(lambda x, w: gc.map_fn(lambda v: gc.exp(v * w), x), [xs, np.array(0.3)])


def test_nested_gradient_through_scan_of_cond():
    def f(xs, w):
        def step(a, v):
            return gc.cond(gc.reduce_sum(v) > 0, lambda: a * w + v, lambda: gc.sin(a) - v)

        return gc.scan(step, xs, initializer=gc.zeros((2,), gc.float64))

    xs = np.array([[0.5, 0.1], [-0.3, -0.4], [0.2, 0.9]])
    gc.test.check_gradients(f, [xs, np.array(1.3)])


def _rnn_params(rng, n_in, n_h):
    return (
        rng.standard_normal((n_in, n_h)) * 0.5,
        rng.standard_normal((n_h, n_h)) * 0.5,
        np.zeros(n_h),
    )


def test_scan_rnn_gradients_match_the_unrolled_graph():
    rng = np.random.default_rng(2)
    wx, wh, b = _rnn_params(rng, 3, 4)
    xs = rng.standard_normal((6, 2, 3))
    Wx, Wh, B = (gc.Variable(v) for v in (wx, wh, b))
    X = gc.constant(xs)
    h0 = gc.zeros((2, 4), gc.float64)

    def cell(h, x):
        return gc.tanh(x @ Wx + h @ Wh + B)

    loss_scan = gc.reduce_sum(gc.scan(cell, X, initializer=h0) ** 2)
    h, outs = h0, []
    for t in range(6):
        h = cell(h, X[t])
        outs.append(h)
    loss_unrolled = gc.reduce_sum(gc.stack(outs) ** 2)
    g_scan = gc.gradients(loss_scan, [Wx, Wh, B])
    g_unrolled = gc.gradients(loss_unrolled, [Wx, Wh, B])
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        a, b_ = sess.run([g_scan, g_unrolled])
        assert np.isclose(sess.run(loss_scan), sess.run(loss_unrolled))
    for u, v in zip(a, b_, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


def test_scan_rnn_trains_to_a_target_loss():
    """A tanh RNN under scan learns to output the running mean of its input sequence."""
    rng = np.random.default_rng(3)
    T, N = 8, 32
    xs = rng.uniform(-1, 1, (T, N, 1)).astype(np.float32)
    target = np.cumsum(xs, 0) / np.arange(1, T + 1)[:, None, None]
    X = gc.placeholder(gc.float32, (None, N, 1))
    Y = gc.placeholder(gc.float32, (None, N, 1))
    Wx = gc.Variable(rng.standard_normal((1, 16)).astype(np.float32) * 0.3)
    Wh = gc.Variable(rng.standard_normal((16, 16)).astype(np.float32) * 0.1)
    Wo = gc.Variable(rng.standard_normal((16, 1)).astype(np.float32) * 0.3)
    hs = gc.scan(
        lambda h, x: gc.tanh(x @ Wx + h @ Wh), X, initializer=gc.zeros((N, 16), gc.float32)
    )
    pred = gc.map_fn(lambda h: h @ Wo, hs)
    loss = gc.reduce_mean((pred - Y) ** 2)
    train = gc.train.AdamOptimizer(0.02).minimize(loss)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        first = sess.run(loss, {X: xs, Y: target})
        for _ in range(150):
            sess.run(train, {X: xs, Y: target})
        last = sess.run(loss, {X: xs, Y: target})
    assert last < 0.01 < first


# --- compiled, not interpreted ----------------------------------------------------------------


def test_bodies_run_as_compiled_plans_with_loop_invariants_hoisted():
    x = gc.placeholder(gc.float32, (4, 4))
    w = gc.placeholder(gc.float32, (4, 4))
    out = gc.while_loop(
        lambda i, a: i < 3,
        lambda i, a: (i + 1, a @ gc.transpose(gc.exp(w))),  # exp(w).T: invariant
        (gc.constant(0), x),
    )[1]
    node = out.op
    assert node.op is WHILE
    body = node.attrs["body_fn"]
    # exp and transpose were hoisted: computed once in the outer graph, fed to the body
    outer_types = [op.type for op in x.graph.get_operations()]
    assert "exp" in outer_types and "transpose" in outer_types
    assert any(p.op.type == "transpose" for p in body.params)
    with gc.Session() as sess:
        got = sess.run(out, {x: np.eye(4), w: np.zeros((4, 4))})
    np.testing.assert_allclose(got, np.full((4, 4), 16.0))
    ((exe, _),) = body.cache.values()  # one compiled plan, reused by every iteration
    assert exe.plan.steps and "matmul" in {s.op.name for s in exe.plan.steps}


def test_unoptimized_sessions_and_the_gradient_check_agree_with_compiled_ones():
    e = gc.placeholder(gc.float64, (3,))
    s = gc.scan(lambda a, v: a * v + 1.0, e, initializer=gc.constant(1.0, gc.float64))
    g = gc.gradients(gc.reduce_sum(s), e)[0]
    vals = {e: [0.5, 2.0, -1.0]}
    with gc.Session(optimize=0) as s0, gc.Session(optimize=2) as s2:
        for a, b in zip(s0.run([s, g], vals), s2.run([s, g], vals), strict=True):
            np.testing.assert_allclose(a, b)


def test_control_ops_are_in_the_registry():
    assert {COND.name, WHILE.name, SCAN.name} <= set(gc.REGISTRY)


# --- TF 1.x compat: dynamic_rnn as a loop ------------------------------------------------------


def test_dynamic_rnn_runs_over_a_run_time_length_and_matches_the_unrolled_static_rnn():
    import graphc.compat.v1 as tf

    rng = np.random.default_rng(4)
    x = tf.placeholder(tf.float64, [None, None, 3])
    lengths = tf.placeholder(tf.int32, [None])
    cell = tf.nn.rnn_cell.BasicLSTMCell(4)
    seq, state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float64)
    assert seq.shape == (None, None, 4)
    assert any(op.op is SCAN for op in tf.get_default_graph().get_operations())
    fixed = tf.placeholder(tf.float64, [2, 5, 3])
    unrolled, ustate = tf.nn.static_rnn(
        cell, tf.unstack(fixed, axis=1), sequence_length=lengths, dtype=tf.float64
    )
    variables = tf.trainable_variables()
    assert len(variables) == 2  # one kernel and one bias, shared by both
    g_dyn = tf.gradients(tf.reduce_sum(seq**2), variables)
    g_unr = tf.gradients(tf.reduce_sum(tf.stack(unrolled, axis=1) ** 2), variables)
    data = rng.standard_normal((2, 5, 3))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for steps in (5, 9, 1):  # one graph, any run-time length
            out, st = sess.run(
                [seq, state], {x: rng.standard_normal((2, steps, 3)), lengths: [steps, 1]}
            )
            assert out.shape == (2, steps, 4)
            assert (out[1, 1:] == 0).all() and np.allclose(st.h[1], out[1, 0])
        feeds = {x: data, fixed: data, lengths: [5, 3]}
        a, b = sess.run([seq, tf.stack(unrolled, axis=1)], feeds)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        for u, v in zip(*sess.run([g_dyn, g_unr], feeds), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


def test_bidirectional_dynamic_rnn_with_sequence_length_runs_backwards_from_each_end():
    import graphc.compat.v1 as tf

    x = tf.placeholder(tf.float64, [None, None, 2])
    lengths = tf.placeholder(tf.int32, [None])
    cell_fw, cell_bw = tf.nn.rnn_cell.GRUCell(3), tf.nn.rnn_cell.GRUCell(3)
    (fw, bw), (s_fw, s_bw) = tf.nn.bidirectional_dynamic_rnn(
        cell_fw, cell_bw, x, sequence_length=lengths, dtype=tf.float64
    )
    data = np.random.default_rng(5).standard_normal((2, 4, 2))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out_bw, last_bw, out_fw = sess.run([bw, s_bw, fw], {x: data, lengths: [4, 2]})
        # example 1 (length 2) backwards starts at its own last step: as if unpadded
        short_bw = sess.run(bw, {x: data[1:, :2], lengths: [2]})
    assert (out_bw[1, 2:] == 0).all() and (out_fw[1, 2:] == 0).all()
    np.testing.assert_allclose(out_bw[1, :2], short_bw[0], rtol=1e-12)
    np.testing.assert_allclose(last_bw[1], out_bw[1, 0])


# --- the .g form ------------------------------------------------------------------------------

EXAMPLE = __import__("pathlib").Path(__file__).parent.parent / "examples" / "control_flow.g"


def _run_example(graph):
    feeds = {"x:0": np.arange(1, 4, dtype=np.float32), "n:0": 2, "p:0": True}
    with gc.Session(graph=graph) as sess:
        sess.run([v.initializer for v in graph.get_collection("variables")])
        out = sess.run(["y", "running", "picked"], feeds)
        out.append(sess.run("picked", {**feeds, "p:0": False}))
        first = sess.run("loss", feeds)
        for _ in range(30):
            sess.run("train", feeds)  # through the scan's gradient
        out.append(first / sess.run("loss", feeds))
    return out


def test_g_control_flow_runs_and_round_trips_through_to_text():
    graph = gc.load(EXAMPLE)
    y, running, picked, negated, improved = _run_example(graph)
    np.testing.assert_allclose(y, [4, 8, 12])
    np.testing.assert_allclose(running, [1, 2.5, 4.25])
    np.testing.assert_allclose(picked, [1, 4, 9])
    np.testing.assert_allclose(negated, [-1, -2, -3])
    assert improved > 2
    text = graph.to_text()
    again = gc.loads(text)
    assert again.to_text() == text  # a fixed point
    for a, b in zip(_run_example(again), [y, running, picked, negated, improved], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_g_formatter_keeps_the_example_as_it_is():
    from graphc.frontend.fmt import format_source

    src = EXAMPLE.read_text()
    assert format_source(src) == src


def test_g_errors_in_bodies_name_the_g_line_and_column():
    src = """model m {
  input x : f32[2]
  fn grow(v) = concat([v, v], 0)
  fn small(v) = reduce_sum(v) < 100.0
  y = while_loop(small, grow, [x])
  output y
}
"""
    with pytest.raises(gc.ShapeError) as info:
        gc.loads(src, filename="grow.g")
    assert str(info.value.location) == "grow.g:5:7"
    with pytest.raises(gc.GraphcError, match="takes"):
        gc.loads(src.replace("fn grow(v)", "fn grow(v, w)"), filename="bad.g")


def test_python_built_control_flow_prints_as_g_and_loads_back_with_the_same_values():
    x = gc.placeholder(gc.float64, (3,), name="x")
    w = gc.Variable(np.array([0.5, -1.0, 2.0]), name="w")
    total = gc.scan(
        lambda a, v: a * 0.5 + v * w,
        x[:, None] * gc.ones((3, 3), gc.float64),
        initializer=gc.zeros((3,), gc.float64),
        name="total",
    )
    loss = gc.reduce_sum(total**2, name="loss")
    text = x.graph.to_text()
    again = gc.loads(text)
    assert again.to_text() == text
    feed = np.array([1.0, 2.0, 3.0])
    values = []
    for g in (x.graph, again):
        with gc.Session(graph=g) as sess:
            sess.run([v.initializer for v in g.get_collection("variables")])
            values.append(sess.run("loss", {"x:0": feed}))
    assert values[0] == pytest.approx(values[1]) and loss.op.type != "scan"
