"""How loops run: a scan records the carries its gradient reads only when something reads
them (passes/control.py), and a scan's iterations alternate two arenas of the body's plan
(backends/subplan.py) without leaking views of them."""

import numpy as np
import pytest

import graphc as gc
from graphc.ops.control import SCAN


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as g:
        yield g


def _scan_nodes(plan):
    return [s for s in plan.steps if s.op is SCAN]


def test_a_scan_records_its_carries_only_when_its_gradient_reads_them():
    xs = gc.placeholder(gc.float64, (None, 3))
    w = gc.Variable(np.array([0.5, -0.5, 1.0]))
    hs = gc.scan(lambda h, x: gc.tanh(h * w + x), xs, initializer=gc.zeros((3,), gc.float64))
    loss = gc.reduce_sum(hs**2)
    (gw,) = gc.gradients(loss, [w])
    inference = gc.compile(hs, feed_shapes={xs: (5, 3)})
    (only,) = _scan_nodes(inference)
    assert only.attrs["record"] is False
    training = gc.compile([loss, gw], feed_shapes={xs: (5, 3)})
    forward, backward = sorted(_scan_nodes(training), key=lambda s: s.attrs["reverse"])
    assert "record" not in forward.attrs  # the reverse scan reads what it records
    assert backward.attrs["record"] is False  # nothing differentiates the reverse scan
    second = gc.gradients(gc.reduce_sum(gw * gw), [w])[0]  # ... unless something does
    again = gc.compile([second], feed_shapes={xs: (5, 3)})
    assert any("record" not in s.attrs for s in _scan_nodes(again) if s.attrs["reverse"])
    feed = {xs: np.linspace(-1, 1, 15).reshape(5, 3)}
    with gc.Session() as fast, gc.Session(optimize=0) as reference:
        for sess in (fast, reference):
            sess.run(gc.global_variables_initializer())
        for a, b in zip(fast.run([hs, gw, second], feed), reference.run([hs, gw, second], feed)):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_scans_results_are_its_own_arrays_after_the_next_run():
    xs = gc.placeholder(gc.float64, (None, 2))
    last, ys = gc.frontend.control.scan_with_outputs(
        lambda c, x: (c * 0.5 + x, c + 1.0), xs, gc.zeros((2,), gc.float64)
    )
    with gc.Session() as sess:
        first = sess.run([last, ys], {xs: np.ones((4, 2))})
        kept = [a.copy() for a in first]
        second = sess.run([last, ys], {xs: np.full((3, 2), 7.0)})
        for a, b in zip(first, kept):
            np.testing.assert_array_equal(a, b)  # not overwritten by the second run
        assert not np.shares_memory(first[0], second[0])
        np.testing.assert_allclose(second[0], [12.25, 12.25])
