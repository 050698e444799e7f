"""The low-overhead paths: ``sess.run``'s per-signature callables and their fast feed checks,
the numpy executor's per-thread arenas and scalar locals, and SPEC §7's ``peak_bytes``
(intermediates only: fetched results get a region of their own)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import graphc as gc
from graphc.backends import cuda_host
from graphc.backends.reference import RunContext


def _linreg(lr=0.01):
    x = gc.placeholder(gc.float32, (), name="x")
    y = gc.placeholder(gc.float32, (), name="y")
    w = gc.Variable(0.3, name="w")
    b = gc.Variable(0.1, name="b")
    loss = (w * x + b - y) ** 2
    train = gc.train.GradientDescentOptimizer(lr).minimize(loss)
    return x, y, w, b, loss, train


SAMPLES = [(3.3, 1.7), (4.4, 2.76), (5.5, 2.09), (6.71, 3.19), (6.93, 1.694), (4.168, 1.573)]


# --- sess.run and make_callable -----------------------------------------------------------------


def test_scalar_sgd_steps_match_the_interpreter_bit_for_bit():
    x, y, w, b, loss, train = _linreg()
    init = gc.global_variables_initializer()
    got = {}
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            sess.run(init)
            losses = [sess.run([train, loss], {x: xi, y: yi})[1] for xi, yi in SAMPLES * 3]
            got[level] = (losses, sess.run(w), sess.run(b))
    # numpy-scalar arithmetic in the plan rounds exactly as the interpreter's 0-d ufuncs
    assert got[2] == got[0]
    assert all(type(v) is np.float32 for v in got[2][0])


def test_a_cached_signature_still_checks_static_shapes():
    x = gc.placeholder(gc.float32, (), name="x")
    v = gc.placeholder(gc.float32, (3,), name="v")
    with gc.Session() as sess:
        assert sess.run(x * 2.0, {x: 1.5}) == 3.0
        with pytest.raises(gc.ShapeError, match="x:0"):
            sess.run(x * 2.0, {x: np.ones(2, np.float32)})  # right dtype, wrong shape
        np.testing.assert_array_equal(sess.run(v + 1.0, {v: np.zeros(3, np.float32)}), 1.0)
        with pytest.raises(gc.ShapeError, match="v:0"):
            sess.run(v + 1.0, {v: 2.0})  # a Python float is 0-d
        with pytest.raises(gc.ShapeError, match="v:0"):
            sess.run(v + 1.0, {v: np.zeros(4, np.float32)})


def test_values_the_fast_checks_decline_are_converted_by_the_full_check():
    x = gc.placeholder(gc.float32, (), name="x")
    n = gc.placeholder(gc.int32, (), name="n")
    with gc.Session() as sess:
        assert sess.run(x + 0.0, {x: 1.0}) == 1.0  # the fast path
        r = sess.run(x + 0.0, {x: np.float64(0.1)})  # a numpy scalar
        assert r.dtype == np.float32 and r == np.float32(0.1)
        assert sess.run(x + 0.0, {x: np.array(2.5)}) == 2.5  # a float64 array
        assert sess.run(x + 0.0, {x: True}) == 1.0  # bool: full check
        assert sess.run(x + 0.0, {x: 3}) == 3.0  # int to float
        assert sess.run(n + 1, {n: 41}) == 42
        for bad in (2**70, "1.0", None):  # not numbers numpy holds: refused as before
            with pytest.raises(gc.FeedError, match="x:0"):
                sess.run(x + 0.0, {x: bad})
        with pytest.raises(gc.FeedError, match="n:0"):
            sess.run(n + 1, {n: 0.5})  # float to int


@pytest.mark.parametrize("n_feeds", [1, 2, 3, 4])
def test_a_callable_names_its_feed_count(n_feeds):
    xs = [gc.placeholder(gc.float32, (), name=f"x{i}") for i in range(n_feeds)]
    total = xs[0] * 1.0
    for x in xs[1:]:
        total = total + x
    with gc.Session() as sess:
        f = sess.make_callable(total, xs)
        assert f(*[float(i) for i in range(n_feeds)]) == sum(range(n_feeds))
        for wrong in (n_feeds - 1, n_feeds + 1):
            with pytest.raises(gc.FeedError, match=f"takes {n_feeds} feed values, got {wrong}"):
                f(*[1.0] * wrong)


def test_a_callable_with_symbolic_dims_keeps_checking_them():
    x = gc.placeholder(gc.float32, ("N", 2), name="x")
    y = gc.placeholder(gc.float32, ("N",), name="y")
    loss = gc.reduce_sum(x, axis=1) - y
    with gc.Session() as sess:
        f = sess.make_callable(loss, [x, y])
        np.testing.assert_array_equal(f(np.ones((3, 2), np.float32), np.ones(3, np.float32)), 1)
        with pytest.raises(gc.ShapeError, match="'N' is 3 .* but 4"):
            f(np.ones((3, 2), np.float32), np.ones(4, np.float32))
        np.testing.assert_array_equal(f(np.ones((4, 2), np.float32), np.ones(4, np.float32)), 1)


def test_scalar_locals_see_a_variable_updated_earlier_in_the_run():
    x = gc.placeholder(gc.float32, (), name="x")
    v = gc.Variable(1.0, name="v")
    bump = v.assign_add(x * 2.0)
    with gc.control_dependencies([bump]):
        after = gc.identity(v) * 3.0 + x
    results = {}
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            sess.run(v.initializer)
            results[level] = [sess.run(after, {x: float(k)}) for k in range(4)]
    assert results[2] == results[0] == [3.0, 10.0, 23.0, 42.0]


def test_four_threads_run_a_scalar_plan_on_their_own_arenas():
    x = gc.placeholder(gc.float32, (), name="x")
    y = (x * 2.0 + 1.0) * x  # 0-d arena intermediates, a 0-d result
    sess = gc.Session()
    seen, errors = {}, []

    def work(k):
        try:
            seen[k] = {float(sess.run(y, {x: float(k)})) for _ in range(300)}
        except Exception as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen == {k: {(2.0 * k + 1.0) * k} for k in range(4)}


def test_a_failing_kernel_still_names_its_op_and_line():
    a = gc.placeholder(gc.float32, (None, 3), name="a")
    b = gc.placeholder(gc.float32, (None, 2), name="b")
    y = gc.matmul(a, b, name="product")  # inner dims known to differ only when fed
    with gc.Session() as sess, pytest.raises((gc.ShapeError, gc.OpError)) as err:
        sess.run(y, {a: np.ones((2, 3), np.float32), b: np.ones((4, 2), np.float32)})
    assert "product" in str(err.value)


# --- peak_bytes: intermediates only ---------------------------------------------------------


def test_fetched_results_are_not_counted_in_peak_bytes():
    x = gc.placeholder(gc.float32, (1000,), name="x")
    s = gc.sin(x)
    y = gc.exp(s)  # fetched: not an intermediate
    plan = gc.compile(y, feed_shapes={x: (1000,)}, optimize=1)  # no fusion: two kernels
    (result,) = [sl for sl in plan.slots if sl.result]
    assert result.name == y.name and result.offset >= plan.peak_bytes
    assert plan.peak_bytes == 4000 + 32  # sin's result, in 64-byte lines
    assert plan.result_bytes == 4032 and plan.arena_bytes == 8064
    assert "of fetched results" in plan.report()
    # fetching the intermediate too makes it a result: nothing is left to count
    both = gc.compile([s, y], feed_shapes={x: (1000,)}, optimize=1)
    assert both.peak_bytes == 0 and both.result_bytes == 2 * 4032
    X = np.linspace(-1, 1, 1000, dtype=np.float32)
    with gc.Session(optimize=1) as sess:
        got_s, got_y = sess.run([s, y], {x: X})
        again = sess.run(y, {x: X + 1})
    np.testing.assert_allclose(got_y, np.exp(np.sin(X)), rtol=1e-6)
    np.testing.assert_allclose(got_s, np.sin(X), rtol=1e-6)
    np.testing.assert_allclose(again, np.exp(np.sin(X + 1)), rtol=1e-6)


def test_an_in_place_step_does_not_write_a_fetched_result_over_its_input():
    x = gc.placeholder(gc.float32, (1000,))
    y = gc.matmul(gc.reshape(x, (1, 1000)), gc.ones((1000, 1000)))  # an arena intermediate
    z = gc.exp(gc.tanh(y))  # tanh in place; exp not
    plan = gc.compile(z, feed_shapes={x: (1000,)}, optimize=1)
    intermediates = [s for s in plan.slots if s.kind == "arena" and not s.result]
    assert len(intermediates) == 1 and plan.peak_bytes == 4032
    assert [s.name for s in plan.slots if s.result] == [z.name]


def test_a_training_step_peak_counts_its_intermediates_and_not_the_loss():
    x = gc.placeholder(gc.float32, (None, 100), name="x")
    w = gc.Variable(gc.random_normal((100, 50), stddev=0.1, seed=1), name="w")
    loss = gc.reduce_sum(gc.relu(x @ w) ** 2)
    train = gc.train.GradientDescentOptimizer(0.01).minimize(loss)
    plan = gc.compile([train, loss], feed_shapes={x: (64, 100)})
    (result,) = [s for s in plan.slots if s.result]
    assert result.name == loss.name and result.offset >= plan.peak_bytes
    assert plan.result_bytes == 64  # the 0-d loss, one line
    step, live = plan.live_at_peak()
    assert live and all(not s.result for s in live)
    intermediates = [s for s in plan.slots if s.kind in ("arena", "scratch") and not s.result]
    assert (
        100 * 50 * 4
        <= plan.peak_bytes
        < sum(s.nbytes for s in intermediates) + 64 * len(intermediates)
    )  # the gradient of w, and reuse


@pytest.mark.skipif(
    cuda_host.host_compiler() is None,
    reason="the host harness needs g++ to compile generated kernels",
)
def test_the_cupy_executor_places_its_partials_after_the_fetched_results():
    from graphc.backends import cupy_backend as cb

    x = gc.placeholder(gc.float32, (8, 1 << 13), name="x")
    total = gc.reduce_sum(gc.exp(gc.sin(x) * 0.5), axis=1)  # two passes: partials
    scaled = gc.tanh(x) * 2.0 + 1.0  # a fetched result
    plan = gc.compile([total, scaled], feed_shapes={x: (8, 1 << 13)}, backend="cupy")
    exe = cb.CupyExecutable(plan, xp=np, compile_kernels=cuda_host.HostModule, block=32, max_grid=4)
    value = np.random.default_rng(0).standard_normal((8, 1 << 13)).astype(np.float32)
    got_total, got_scaled = exe(RunContext({}, {}), {x: value})
    results = [exe._base[s.index] for s in plan.slots if s.result]
    assert results and exe._partials
    assert not any(np.shares_memory(p, r) for p in exe._partials for r in results)
    np.testing.assert_allclose(got_total, np.exp(np.sin(value) * 0.5).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(got_scaled, np.tanh(value) * 2 + 1, rtol=1e-6, atol=2.0**-21)


# --- the numpy executor's kernels ------------------------------------------------------------


@pytest.mark.parametrize("b", [0.0, -0.0, 2.5, np.nan])
@pytest.mark.parametrize("alias", [False, True])
def test_select_blends_bits_exactly(b, alias):
    from graphc.backends.numpy_backend import _select

    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 33)).astype(np.float32)
    a.ravel()[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, -1e-45]
    c = rng.random((64, 33)) < 0.5
    c.ravel()[:6] = [True, False] * 3
    want = np.where(c, a, np.float32(b))
    out = a if alias else np.empty_like(a)  # where(c, a, 0) written over its own input
    got = _select(c, a, np.array(b, np.float32), out=out)
    assert got is out and np.array_equal(got.view(np.int32), want.view(np.int32))


# --- the benchmark runner's GPU contenders -----------------------------------------------------


def test_gpu_contenders_are_absent_without_a_gpu_and_for_cpu_workloads():
    from benchmarks import gpu
    from benchmarks.workloads import WORKLOADS

    assert gpu.contenders("linreg") == {} and gpu.contenders("compile") == {}
    if gpu.unavailable_reason() is not None:
        assert all(gpu.contenders(name) == {} for name in WORKLOADS)
