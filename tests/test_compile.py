"""gc.compile's stats and report, the session's compiled path, make_callable, traces."""

import json
import threading

import numpy as np
import pytest

import graphc as gc


def test_stats_have_the_spec_fields_and_passes_in_order():
    x = gc.placeholder(gc.float32, (None, 3))
    y = gc.reduce_sum(gc.exp(x) * 1.0)
    plan = gc.compile(y, feed_shapes={x: (2, 3)}, optimize=2)
    st = plan.stats
    assert set(st) == {"nodes_before", "nodes_after", "kernels", "peak_bytes", "passes"}
    assert st["nodes_after"] < st["nodes_before"]
    names = [p[0] for p in st["passes"]]
    assert names[0] == "prune" and names[-1] == "memory" and "fusion" in names
    for _, before, after in st["passes"]:
        assert after <= before
    report = plan.report()
    assert "peak" in report and "kernels" in report and "prune" in report


def test_optimize_zero_skips_rewrites():
    x = gc.placeholder(gc.float32, (3,))
    y = gc.exp(x) * 1.0
    p0 = gc.compile(y, feed_shapes={x: (3,)}, optimize=0)
    p2 = gc.compile(y, feed_shapes={x: (3,)}, optimize=2)
    assert [p[0] for p in p0.stats["passes"]] == ["prune", "memory"]
    assert p0.stats["kernels"] == 2 and p2.stats["kernels"] == 1


def test_a_pruned_branch_never_runs():
    x = gc.placeholder(gc.float32, (3,))
    noisy = gc.print(x, message="SHOULD NOT PRINT")
    used = gc.exp(x)
    printed = []
    with gc.Session() as sess:
        sess._ctx.print = printed.append
        sess.run(used, {x: np.ones(3, np.float32)})
        assert printed == []
        sess.run(noisy + 1.0, {x: np.ones(3, np.float32)})
        assert printed and "SHOULD NOT PRINT" in printed[0]


def test_make_callable_with_changing_batch_sizes():
    x = gc.placeholder(gc.float32, (None, 4))
    w = gc.Variable(np.arange(8, dtype=np.float32).reshape(4, 2))
    y = gc.reduce_sum(gc.relu(x @ w), axis=1)
    with gc.Session() as sess:
        sess.run(w.initializer)
        f = sess.make_callable(y, [x])
        for n in (1, 5, 3, 5):
            X = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
            np.testing.assert_allclose(f(X), np.maximum(X @ w_value(), 0).sum(1), rtol=1e-5)
        with pytest.raises(gc.ShapeError):
            f(np.ones((2, 5), np.float32))


def w_value():
    return np.arange(8, dtype=np.float32).reshape(4, 2)


def test_fetched_results_are_copies_not_arena_views():
    x = gc.placeholder(gc.float32, (3,))
    y = gc.exp(x) + 1.0
    with gc.Session() as sess:
        a = sess.run(y, {x: np.zeros(3, np.float32)})
        sess.run(y, {x: np.ones(3, np.float32)})
    np.testing.assert_array_equal(a, [2.0, 2.0, 2.0])


def test_training_updates_variables_in_place_like_the_reference():
    x = gc.placeholder(gc.float32, (None, 3))
    w = gc.Variable(np.ones((3, 1), np.float32))
    loss = gc.reduce_sum((x @ w - 1.0) ** 2)
    (g,) = gc.gradients(loss, [w])
    step = gc.assign_sub(w, 0.01 * g)
    X = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    losses = {}
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            sess.run(w.initializer)
            losses[level] = [sess.run([step, loss], {x: X})[1] for _ in range(5)]
    np.testing.assert_allclose(losses[2], losses[0], rtol=1e-6)
    assert losses[2][-1] < losses[2][0]


def test_run_time_error_names_the_users_line():
    x = gc.placeholder(gc.float32, (None, 3))
    y = gc.placeholder(gc.float32, (None, 3))
    z = gc.exp(x) + y  # shapes only clash at run time
    with gc.Session() as sess, pytest.raises(gc.OpError) as err:
        sess.run(z, {x: np.ones((2, 3), np.float32), y: np.ones((4, 3), np.float32)})
    assert f"{__file__}" in str(err.value)


def test_trace_writes_chrome_events_and_report_lists_the_slowest(tmp_path):
    x = gc.placeholder(gc.float32, (64, 64))
    y = gc.reduce_sum(gc.matmul(gc.tanh(x), x))
    path = tmp_path / "trace.json"
    with gc.Session() as sess:
        sess.run(y, {x: np.ones((64, 64), np.float32)}, trace=str(path))
        plan = next(iter(sess._cache.values())).plan
    events = json.loads(path.read_text())["traceEvents"]
    assert events and all(e["ph"] == "X" and e["dur"] >= 0 for e in events)
    assert any(e["name"] == "matmul" for e in events)
    assert "slowest kernels" in plan.report()


def test_threads_share_a_session():
    x = gc.placeholder(gc.float32, (None,))
    y = gc.reduce_sum(gc.exp(x) * 2.0)
    errors = []
    with gc.Session() as sess:

        def work(seed):
            X = np.random.default_rng(seed).standard_normal(1000).astype(np.float32)
            for _ in range(20):
                got = sess.run(y, {x: X})
                if not np.isclose(got, np.exp(X).sum() * 2, rtol=1e-4):
                    errors.append(seed)

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_compile_without_feed_shapes_plans_what_it_can():
    x = gc.placeholder(gc.float32, (None, 4))
    w = gc.constant(np.ones((4, 3), np.float32))
    y = gc.reduce_sum(gc.exp(x @ w) + 1.0)
    plan = gc.compile(y)  # batch size unknown: nothing to plan for it
    assert plan.stats["kernels"] >= 1
    assert all(s.kind != "arena" or None not in s.shape for s in plan.slots)
    from graphc.backends.numpy_backend import NumpyExecutable
    from graphc.backends.reference import RunContext

    X = np.ones((2, 4), np.float32)
    (out,) = NumpyExecutable(plan)(RunContext({}, {}), {x: X})
    np.testing.assert_allclose(out, 6 * (np.exp(4.0) + 1), rtol=1e-5)


def test_user_ops_are_neither_folded_nor_merged_and_run_once_per_run():
    calls = []

    def forward(a):
        calls.append(1)
        return a * 2

    double = gc.register_op("double_counting", forward)
    c = gc.constant(np.ones(3, np.float32))
    y = double(c) + double(c)  # constant inputs, identical nodes
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(y), [4.0, 4.0, 4.0])
        assert len(calls) == 2
        sess.run(y)
        assert len(calls) == 4


def test_scalar_training_steps_match_the_reference_exactly():
    x = gc.placeholder(gc.float32, ())
    y = gc.placeholder(gc.float32, ())
    w = gc.Variable(0.3)
    b = gc.Variable(0.1)
    loss = (w * x + b - y) ** 2
    train = gc.train.GradientDescentOptimizer(0.01).minimize(loss)
    samples = [(3.3, 1.7), (4.4, 2.76), (5.5, 2.09), (6.71, 3.19)] * 3
    history = {}
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            sess.run(gc.global_variables_initializer())
            history[level] = [sess.run([train, loss, w, b], {x: a, y: t})[1:] for a, t in samples]
    np.testing.assert_array_equal(np.array(history[2]), np.array(history[0]))


def test_updating_an_uninitialized_variable_names_it():
    w = gc.Variable(np.zeros(3, np.float32), name="weights")
    step = gc.assign_add(w, np.ones(3, np.float32))
    with gc.Session() as sess, pytest.raises(gc.UninitializedError, match="weights"):
        sess.run(step)
