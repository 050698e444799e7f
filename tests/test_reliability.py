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
    attempts = [lambda: sess.run(y, {x: np.ones(3, np.float32)}),
                lambda: call(np.ones(3, np.float32)),
                lambda: sess.make_callable(y, [x]),
                lambda: v.load(np.ones(3, np.float32), sess),
                lambda: saver.save(sess, str(tmp_path / "c")),
                lambda: saver.restore(sess, str(tmp_path / "c"))]
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
        except Exception as e:   # pragma: no cover - reported below
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
    n = 200_000          # large enough that numpy releases the GIL inside the add
    v = gc.Variable(np.zeros(n, np.float64), name="v")
    s = gc.Variable(np.float64(0), name="s")
    step = gc.group(gc.assign_add(v, np.ones(n), use_locking=True),
                    s.assign_add(1.0, use_locking=True))
    with gc.Session(optimize=optimize) as sess:
        sess.run(gc.global_variables_initializer())
        total = _hammer(sess, step)
        got = sess.run(v)
        assert got.min() == got.max() == total
        assert sess.run(s) == total


def test_use_locking_optimizer_loses_no_update_under_threads():
    n = 100_000
    w = gc.Variable(np.zeros(n, np.float64), name="w")
    loss = gc.reduce_sum(w * np.ones(n))          # gradient: ones, whatever w is
    step = gc.train.GradientDescentOptimizer(1.0, use_locking=True).minimize(loss)
    assert all(op.attrs.get("use_locking") for op in gc.get_default_graph().get_operations()
               if op.type == "assign_sub")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        total = _hammer(sess, step, threads=6, per_thread=40)
        got = sess.run(w)
        assert got.min() == got.max() == -total


def test_without_use_locking_no_lock_is_built():
    v = gc.Variable(np.zeros(3), name="v")
    assert "use_locking" not in gc.assign_add(v, np.ones(3)).op.attrs
    assert v.assign(np.ones(3), use_locking=True).op.attrs["use_locking"] is True
