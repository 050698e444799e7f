"""Reliability (issue #16): closed sessions, use_locking under threads, feeds that would
wrap, and the other silent-wrong-value and not-a-GraphcError defects, each reproduced."""

import threading

import numpy as np
import pytest

import graphc as gc

# --- closed sessions --------------------------------------------------------------------------


def test_a_closed_session_refuses_every_use(tmp_path):
    v = gc.Variable(np.zeros(3, np.float32), name="v")
    x = gc.placeholder(gc.float32, [3])
    y = x + v
    saver = gc.train.Saver([v])
    sess = gc.Session()
    sess.run(v.initializer)
    call = sess.make_callable(y, [x])
    assert call(np.ones(3, np.float32)).tolist() == [1, 1, 1]
    sess.close()
    attempts = [
        lambda: sess.run(y, {x: np.ones(3, np.float32)}),
        lambda: call(np.ones(3, np.float32)),
        lambda: sess.make_callable(y, [x]),
        lambda: v.load(np.ones(3, np.float32), sess),
        lambda: saver.save(sess, str(tmp_path / "c")),
        lambda: saver.restore(sess, str(tmp_path / "c")),
    ]
    for attempt in attempts:
        with pytest.raises(gc.ClosedSessionError, match="Attempted to use a closed Session"):
            attempt()
    assert issubclass(gc.ClosedSessionError, gc.GraphcError)
    assert not (tmp_path / "c").exists()


# --- use_locking ------------------------------------------------------------------------------


def _hammer(sess, op, threads=8, per_thread=60):
    call = sess.make_callable(op)
    barrier = threading.Barrier(threads)
    errors = []

    def work():
        try:
            barrier.wait()
            for _ in range(per_thread):
                call()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    return threads * per_thread


@pytest.mark.parametrize("optimize", [0, 2])
def test_use_locking_assign_add_loses_no_update_under_threads(optimize):
    n = 200_000  # large enough that numpy releases the GIL inside the add
    v = gc.Variable(np.zeros(n, np.float64), name="v")
    s = gc.Variable(np.float64(0), name="s")
    step = gc.group(
        gc.assign_add(v, np.ones(n), use_locking=True), s.assign_add(1.0, use_locking=True)
    )
    with gc.Session(optimize=optimize) as sess:
        sess.run(gc.global_variables_initializer())
        total = _hammer(sess, step)
        got = sess.run(v)
        assert got.min() == got.max() == total
        assert sess.run(s) == total


def test_use_locking_optimizer_loses_no_update_under_threads():
    n = 100_000
    w = gc.Variable(np.zeros(n, np.float64), name="w")
    loss = gc.reduce_sum(w * np.ones(n))  # gradient: ones, whatever w is
    step = gc.train.GradientDescentOptimizer(1.0, use_locking=True).minimize(loss)
    assert all(
        op.attrs.get("use_locking")
        for op in gc.get_default_graph().get_operations()
        if op.type == "assign_sub"
    )
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        total = _hammer(sess, step, threads=6, per_thread=40)
        got = sess.run(w)
        assert got.min() == got.max() == -total


def test_without_use_locking_no_lock_is_built():
    v = gc.Variable(np.zeros(3), name="v")
    assert "use_locking" not in gc.assign_add(v, np.ones(3)).op.attrs
    assert v.assign(np.ones(3), use_locking=True).op.attrs["use_locking"] is True


# --- silent wrong values ----------------------------------------------------------------------


@pytest.mark.parametrize("optimize", [0, 2])
def test_integer_feeds_that_would_wrap_are_feed_errors(optimize):
    x = gc.placeholder(gc.int32, [None])
    y = x + 1
    with gc.Session(optimize=optimize) as sess:
        for value in (
            [2**40],
            np.array([2**31 + 5]),
            np.array([-(2**31) - 1]),
            np.array([2**63], np.uint64),
        ):
            with pytest.raises(gc.FeedError, match="outside the range of int32"):
                sess.run(y, {x: value})
        call = sess.make_callable(y, [x])
        with pytest.raises(gc.FeedError, match="outside the range"):
            call(np.array([2**40]))
        assert sess.run(y, {x: np.array([2**31 - 2], np.int64)}).tolist() == [2**31 - 1]
    u = gc.placeholder(gc.uint8, [])
    with gc.Session(optimize=optimize) as sess, pytest.raises(gc.FeedError, match="uint8"):
        sess.run(u + 1, {u: -1})


@pytest.mark.filterwarnings("ignore:divide by zero")
@pytest.mark.parametrize("optimize", [0, 1, 2])
def test_integer_division_and_modulo_by_zero_raise(optimize):
    x = gc.placeholder(gc.int32, [None])
    y = gc.placeholder(gc.int32, [None])
    with gc.Session(optimize=optimize) as sess:
        for t in (x // y, x % y, (x // y) * 2 + 1):
            with pytest.raises(gc.OpError, match="integer division by zero"):
                sess.run(t, {x: [4, 5], y: [2, 0]})
        assert sess.run(x // y, {x: [7, -7], y: [2, 2]}).tolist() == [3, -4]
        f = gc.placeholder(gc.float32, [2])
        assert np.isinf(sess.run(f // 0.0, {f: [1, 2]})).all()  # floats: IEEE, as TF


@pytest.mark.parametrize("rate", [-1, 1, 2, 1.0, -0.1, np.float32(1.5)])
def test_dropout_rate_outside_0_1_is_refused(rate):
    x = gc.placeholder(gc.float32, [3])
    with pytest.raises(gc.GraphcError, match=r"rate must be in \[0, 1\)") as e:
        gc.nn.dropout(x, rate=rate)
    assert e.value.location is not None and e.value.location.file == __file__
    with pytest.raises(gc.GraphcError, match="rate"):
        gc.nn.dropout(x, keep_prob=0.0)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("optimize", [0, 1, 2])
def test_array_subclasses_mean_the_same_at_every_level(optimize):
    a = gc.placeholder(gc.float64, [2, 2])
    b = a * a
    m = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    with gc.Session(optimize=optimize) as sess:
        got = sess.run(b, {a: m})
        assert type(got) is np.ndarray and got.tolist() == [[1, 4], [9, 16]]  # not m @ m
        unmasked = np.ma.array([[1.0, 2.0], [3.0, 4.0]])
        assert type(sess.run(b, {a: unmasked})) is np.ndarray
        with pytest.raises(gc.FeedError, match="masked"):
            sess.run(b, {a: np.ma.array([[1.0, 2.0], [3.0, 4.0]], mask=[[0, 1], [0, 0]])})


@pytest.mark.parametrize("optimize", [1, 2])
def test_reshape_size_mismatch_behind_unknown_dims_is_located(optimize):
    x = gc.placeholder(gc.float32, [None, 4])
    y = gc.reshape(x, [3, 5]) * 2.0
    line = __import__("inspect").currentframe().f_lineno - 1  # the line that built y
    z = gc.placeholder(gc.float32, ["N", 4])
    w = gc.reshape(z, [-1, 3]) + 1.0
    with gc.Session(optimize=optimize) as sess:
        with pytest.raises(gc.ShapeError, match=r"cannot reshape") as e:
            sess.run(y, {x: np.ones((2, 4), np.float32)})
        assert e.value.location.line == line
        with pytest.raises(gc.ShapeError, match=r"cannot reshape"):
            sess.run(w, {z: np.ones((2, 4), np.float32)})
    with pytest.raises(gc.ShapeError, match="integers"):
        gc.reshape(x, ["N", 3])


# --- out-of-range axes: located ShapeErrors, never bare numpy errors ----------------------------

AXIS_CASES = {
    "reduce_sum": lambda x: gc.reduce_sum(x, axis=5),
    "reduce_mean": lambda x: gc.reduce_mean(x, axis=-4),
    "reduce_max": lambda x: gc.reduce_max(x, axis=[0, 7]),
    "softmax": lambda x: gc.nn.softmax(x, axis=3),
    "log_softmax": lambda x: gc.nn.log_softmax(x, axis=-3),
    "concat": lambda x: gc.concat([x, x], axis=2),
    "concat_neg": lambda x: gc.concat([x, x], axis=-3),
    "expand_dims": lambda x: gc.expand_dims(x, 4),
    "expand_dims_neg": lambda x: gc.expand_dims(x, -4),
    "argmax": lambda x: gc.argmax(x, axis=2),
    "squeeze": lambda x: gc.squeeze(x, axis=[3]),
    "split": lambda x: gc.split(x, 1, axis=2),
    "gather": lambda x: gc.gather(x, [0], axis=2),
    "stack": lambda x: gc.stack([x, x], axis=4),
    "unstack": lambda x: gc.unstack(x, axis=2),
    "huge": lambda x: gc.reduce_sum(x, axis=2**70),
}


@pytest.mark.parametrize("case", sorted(AXIS_CASES))
def test_out_of_range_axes_are_located_shape_errors(case):
    x = gc.placeholder(gc.float32, [2, 3])
    with pytest.raises(gc.ShapeError, match="out of range") as e:
        AXIS_CASES[case](x)
    assert e.value.location is not None and e.value.location.file == __file__


@pytest.mark.parametrize("case", sorted(AXIS_CASES))
def test_out_of_range_axes_on_unknown_ranks_are_graphc_errors(case):
    x = gc.placeholder(gc.float32, None)
    try:
        y = AXIS_CASES[case](x)
        with gc.Session() as sess:
            sess.run(y, {x: np.ones((2, 3), np.float32)})
    except gc.GraphcError as e:
        assert e.location is not None
    else:  # pragma: no cover
        pytest.fail("an out-of-range axis ran")


def test_python_api_dimensions_of_2_63_and_more_are_shape_errors():
    for shape in ([2**63], [2**64, 2]):
        with pytest.raises(gc.ShapeError, match="below 2\\*\\*63") as e:
            gc.placeholder(gc.float32, shape)
        assert e.value.location.file == __file__
