"""Graph hygiene (SPEC §12): ``graph.finalize()`` turns a new op into an error at the line
that adds it; a graph that keeps growing between the runs of a session (ops built inside
the training loop, tensorflow#7127) warns once, naming that line."""

import inspect
import warnings

import numpy as np
import pytest

import graphc as gc


def _line_below(n=1):
    return inspect.currentframe().f_back.f_lineno + n


def _growth_warnings(record):
    return [
        w
        for w in record
        if issubclass(w.category, gc.GraphcWarning) and "keeps growing" in str(w.message)
    ]


def test_an_op_created_in_the_training_loop_warns_once_naming_its_line():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    with gc.Session() as sess, warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sess.run(w.initializer)
        for _step in range(10):
            line = _line_below()
            prediction = gc.matmul(x, w) * 2.0  # the leak: 3 new ops every step
            sess.run(prediction, {x: np.ones((2, 3))})
    found = _growth_warnings(record)
    assert len(found) == 1
    assert (found[0].filename, found[0].lineno) == (__file__, line)
    msg = str(found[0].message)
    assert f"{__file__}:{line} (+3 ops: matmul, const, multiply)" in msg
    assert "graph.finalize()" in msg


def test_a_graph_built_before_the_loop_does_not_warn():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    loss = gc.reduce_sum(gc.square(gc.matmul(x, w)))
    with gc.Session() as sess, warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sess.run(w.initializer)
        train = gc.train.GradientDescentOptimizer(0.01).minimize(loss)  # built after init
        summary = loss * 1.0
        sess.run(summary, {x: np.ones((2, 3))})
        for _step in range(10):
            sess.run([train, loss], {x: np.ones((2, 3))})
    assert _growth_warnings(record) == []


def test_finalize_makes_a_new_op_an_error_at_its_line():
    x = gc.placeholder(gc.float32, (3,), name="x")
    y = x * 2.0
    graph = gc.get_default_graph()
    graph.finalize()
    with gc.Session() as sess:
        for step in range(2):
            assert sess.run(y, {x: np.ones(3)}).tolist() == [2.0] * 3
            if step == 1:
                line = _line_below(2)
                with pytest.raises(gc.GraphFinalizedError) as e:
                    sess.run(gc.sqrt(y), {x: np.ones(3)})
    assert (e.value.location.file, e.value.location.line) == (__file__, line)
    assert "sqrt" in str(e.value) and str(e.value).startswith(f"{__file__}:{line}: ")
    assert graph.finalized and len(graph) == 3  # nothing was added


def test_warn_once_per_session_even_when_several_lines_leak():
    x = gc.placeholder(gc.float32, (2,), name="x")
    with gc.Session() as sess, warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _step in range(6):
            a = gc.exp(x)
            b = gc.log(a + 1.0)  # exp, a constant, add, log
            sess.run(b, {x: np.zeros(2)})
    found = _growth_warnings(record)
    assert len(found) == 1
    assert "4 ops were added since the previous run" in str(found[0].message)
