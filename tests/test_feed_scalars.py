"""Numpy scalars, 0-d arrays and Python numbers are fed alike: the same values, through the
fast feed checks, and a failing feed still names the user's line (looked up only then)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _step():
    x = gc.placeholder(gc.float32, (), name="x")
    y = gc.placeholder(gc.float32, (), name="y")
    w = gc.Variable(0.3, name="w")
    loss = (w * x - y) ** 2
    train = gc.train.GradientDescentOptimizer(0.01).minimize(loss)
    return x, y, w, loss, train


@pytest.mark.parametrize(
    "wrap", [float, np.float32, np.float64, np.float16, lambda v: np.array(v, np.float32), np.array]
)
def test_every_scalar_form_trains_like_a_python_float(wrap):
    x, y, w, loss, train = _step()
    samples = [(3.25, 1.5), (4.5, 2.75), (5.5, 2.0)]
    got = {}
    for form in (float, wrap):
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            losses = [sess.run([train, loss], {x: form(a), y: form(b)})[1] for a, b in samples]
            got[form] = (losses, sess.run(w))
    assert got[wrap] == got[float]


def test_a_numpy_scalar_feed_goes_through_the_fast_check(monkeypatch):
    from graphc import errors, session

    x, y, w, loss, train = _step()
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        sess.run(train, {x: np.float32(1.0), y: np.float32(2.0)})
        calls = []
        monkeypatch.setattr(
            session, "user_location", lambda: calls.append(1) or errors.user_location()
        )
        for _ in range(3):
            sess.run(train, {x: np.float32(1.0), y: np.float64(2.0)})
        assert calls == []  # no stack walk on a good feed


def test_a_bad_scalar_feed_still_names_the_users_line():
    v = gc.placeholder(gc.float32, (3,), name="v")
    with gc.Session() as sess, pytest.raises(gc.ShapeError) as info:
        sess.run(v + 1.0, {v: np.float32(2.0)})
    assert "test_feed_scalars.py" in str(info.value.location)
