"""The NaN trap (SPEC §12): ``Session(check_numerics=True)`` or ``GRAPHC_CHECK_NUMERICS=1``
stops at the first kernel that makes NaN or Inf — not at the loss — and names the op, the
user's line and the range and NaN count of each input, at every optimization level. Off by
default, and then the generated plan carries no checks."""

import inspect

import numpy as np
import pytest

import graphc as gc

LEVELS = [0, 1, 2]


def _line_below(n=1):
    return inspect.currentframe().f_back.f_lineno + n


def _assert_at(error, line):
    assert (error.location.file, error.location.line) == (__file__, line)
    assert str(error).startswith(f"{__file__}:{line}: ")


def _deep_network():
    """A small network whose fourth layer takes the log of a negative number."""
    x = gc.placeholder(gc.float32, (None, 4), name="x")
    w1 = gc.Variable(np.full((4, 8), 0.1, np.float32), name="w1")
    w2 = gc.Variable(np.full((8, 8), 0.1, np.float32), name="w2")
    h1 = gc.tanh(gc.matmul(x, w1))
    h2 = gc.nn.relu(gc.matmul(h1, w2))
    h3 = h2 * 2.0 - 1.0
    line = _line_below()
    h4 = gc.log(h3)  # h3 is negative for small inputs: NaN
    h5 = gc.exp(h4) + 1.0
    loss = gc.reduce_mean(gc.square(h5))
    return x, loss, line


@pytest.mark.parametrize("optimize", LEVELS)
def test_log_of_a_negative_number_deep_in_a_network_is_caught_at_the_log(optimize):
    x, loss, line = _deep_network()
    with gc.Session(optimize=optimize, check_numerics=True) as sess:
        sess.run(gc.global_variables_initializer())
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(loss, {x: np.zeros((2, 4), np.float32)})
    _assert_at(e.value, line)
    msg = str(e.value)
    assert "NaN trap: log 'log'" in msg and "16 NaN" in msg
    # the log's input: h3 = relu(...) * 2 - 1 is exactly -1 everywhere
    assert "input 0 'subtract:0': float32(2, 8): min -1, max -1, 0 NaN, 0 Inf" in msg
    assert isinstance(e.value, FloatingPointError) and e.value.node.op.name == "log"


@pytest.mark.parametrize("optimize", LEVELS)
def test_the_trap_is_off_by_default_and_the_nan_reaches_the_loss(optimize, monkeypatch):
    monkeypatch.delenv("GRAPHC_CHECK_NUMERICS", raising=False)
    x, loss, _ = _deep_network()
    with gc.Session(optimize=optimize) as sess:
        sess.run(gc.global_variables_initializer())
        with np.errstate(all="ignore"):
            assert np.isnan(sess.run(loss, {x: np.zeros((2, 4), np.float32)}))


def test_the_environment_variable_turns_the_trap_on(monkeypatch):
    monkeypatch.setenv("GRAPHC_CHECK_NUMERICS", "1")
    x, loss, line = _deep_network()
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(loss, {x: np.zeros((2, 4), np.float32)})
    _assert_at(e.value, line)


@pytest.mark.parametrize("optimize", LEVELS)
def test_an_inf_in_a_gradient_names_the_forward_op(optimize):
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.zeros((3, 2), np.float32), name="w")
    h = gc.matmul(x, w)
    line = _line_below()
    norm = gc.sqrt(gc.reduce_sum(gc.square(h), axis=1))  # d sqrt(u)/du is Inf at u = 0
    loss = gc.reduce_mean(norm)
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    with gc.Session(optimize=optimize, check_numerics=True) as sess:
        sess.run(w.initializer)
        assert sess.run(loss, {x: np.ones((4, 3))}) == 0.0  # the forward pass is finite
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(train, {x: np.ones((4, 3))})
        assert not sess.run(w).any()  # stopped before the update
    _assert_at(e.value, line)
    assert f"(in the gradient of sqrt 'sqrt' at {__file__}:{line})" in str(e.value)
    assert "4 Inf" in str(e.value)


@pytest.mark.parametrize("optimize", LEVELS)
def test_the_op_inside_a_fused_group_is_named(optimize):
    x = gc.placeholder(gc.float32, (8, 3), name="x")
    a = gc.exp(x) * 2.0
    line = _line_below()
    b = gc.sqrt(a - 3.0)
    c = gc.tanh(b) + 1.0
    with gc.Session(optimize=optimize, check_numerics=True) as sess:
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(c, {x: np.zeros((8, 3), np.float32)})
    _assert_at(e.value, line)
    assert "sqrt 'sqrt'" in str(e.value) and "24 NaN" in str(e.value)
    assert "min -1, max -1" in str(e.value)


def test_an_input_overwritten_in_place_is_still_shown():
    x = gc.placeholder(gc.float32, (4,), name="x")
    a = x * 2.0  # dies at the log: at optimize=1 the log writes over it
    line = _line_below()
    b = gc.log(a)
    with gc.Session(optimize=1, check_numerics=True) as sess:
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(b + 1.0, {x: np.array([1, -1, -2, 3], np.float32)})
    _assert_at(e.value, line)
    assert "input 0 'multiply:0': float32(4,): min -4, max 6, 0 NaN, 0 Inf" in str(e.value)


@pytest.mark.parametrize("optimize", LEVELS)
def test_nan_fed_in_is_reported_as_coming_from_a_feed(optimize):
    x = gc.placeholder(gc.float32, (3,), name="x")
    line = _line_below()
    y = x * 2.0
    with gc.Session(optimize=optimize, check_numerics=True) as sess:
        with pytest.raises(gc.NumericsError) as e:
            sess.run(y, {x: np.array([1.0, np.nan, 2.0], np.float32)})
    _assert_at(e.value, line)
    assert "input 0 'x:0': float32(3,): min 1, max 2, 1 NaN, 0 Inf" in str(e.value)
    assert "held NaN or Inf before this run: it comes from the feed for 'x:0'" in str(e.value)


@pytest.mark.parametrize("optimize", LEVELS)
def test_a_variable_that_holds_nan_is_named(optimize):
    x = gc.placeholder(gc.float32, (2, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    line = _line_below()
    y = gc.matmul(x, w)
    with gc.Session(optimize=optimize, check_numerics=True) as sess:
        sess.set_variable(w, np.array([[1.0], [np.inf], [1.0]], np.float32))
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(y, {x: np.ones((2, 3))})
    _assert_at(e.value, line)
    assert "matmul 'matmul'" in str(e.value) and "it comes from variable 'w'" in str(e.value)


@pytest.mark.parametrize("optimize", LEVELS)
def test_an_op_folded_into_a_constant_is_still_the_one_named(optimize):
    x = gc.placeholder(gc.float32, (3,), name="x")
    line = _line_below()
    scale = gc.log(gc.constant([1.0, -1.0, 2.0]))  # optimize>=1 folds it at compile time
    y = x * scale + 1.0
    with gc.Session(optimize=optimize, check_numerics=True) as sess:
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(y, {x: np.ones(3)})
    _assert_at(e.value, line)
    assert "NaN trap: log 'log'" in str(e.value) and "1 NaN" in str(e.value)


def test_finite_runs_give_the_same_results_with_the_trap_on():
    x, loss, _ = _deep_network()
    feed = {x: np.full((2, 4), 3.0, np.float32)}
    with gc.Session() as plain, gc.Session(check_numerics=True) as trapped:
        plain.run(gc.global_variables_initializer())
        trapped.run(gc.global_variables_initializer())
        assert trapped.run(loss, feed) == plain.run(loss, feed)


def test_the_plan_carries_checks_only_when_asked():
    from graphc.backends.numpy_backend import NumpyExecutable
    from graphc.backends.reference import RunContext

    x = gc.placeholder(gc.float32, (4, 4), name="x")
    plan = gc.compile(gc.reduce_sum(gc.exp(x) @ x), feed_shapes={x: (4, 4)})
    assert "CK(" not in NumpyExecutable(plan).source
    checked = NumpyExecutable(plan, check_numerics=True)
    kernels = sum(1 for s in plan.steps if s.kind != "read")
    assert checked.source.count("CK(") == kernels  # in run()
    ctx = RunContext({}, {})
    checked.call_traced(ctx, {x: np.ones((4, 4), np.float32)})  # compiles run_traced()
    assert checked.source.count("CK(") == 2 * kernels  # in run() and in run_traced()


def test_large_finite_values_are_not_mistaken_for_overflow():
    from graphc.diagnostics import has_nonfinite

    big = np.full(10, np.finfo(np.float32).max, np.float32)  # their sum overflows
    assert not has_nonfinite(big)
    big[3] = np.inf
    assert has_nonfinite(big)
    assert not has_nonfinite(np.array([1, 2], np.int32))


@pytest.mark.parametrize("optimize", LEVELS)
def test_running_only_the_train_op_still_traps_the_loss(optimize):
    # the gradient of log(u) is 1/u, finite: only the loss itself, which the train op waits
    # for by a control edge (and a plan would otherwise leave out), holds the NaN
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    line = _line_below()
    z = gc.log(gc.matmul(x, w) - 5.0)
    train = gc.train.GradientDescentOptimizer(0.1).minimize(gc.reduce_mean(z))
    with gc.Session(optimize=optimize, check_numerics=True) as sess:
        sess.run(w.initializer)
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run(train, {x: np.ones((2, 3))})
        assert sess.run(w).tolist() == [[1.0]] * 3  # the update did not run
    _assert_at(e.value, line)
    assert "log 'log'" in str(e.value)
