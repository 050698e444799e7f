"""Why a gradient is missing (SPEC §12, tensorflow#1768): ``gradients(..., unconnected=
"raise")`` and ``minimize`` name the variable that has no path to the loss, or the
non-differentiable op (argmax, a cast to an integer type, a comparison…) that cuts the
path, with its line."""

import inspect
import warnings

import numpy as np
import pytest

import graphc as gc


def _line_below(n=1):
    return inspect.currentframe().f_back.f_lineno + n


def _assert_at(error, line):
    assert (error.location.file, error.location.line) == (__file__, line)
    assert str(error).startswith(f"{__file__}:{line}: ")


def test_a_variable_not_used_by_the_loss_is_named_with_its_line():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    line = _line_below()
    b = gc.Variable(np.zeros((1,), np.float32), name="b")
    loss = gc.reduce_mean(gc.square(gc.matmul(x, w)))  # forgot "+ b"
    with pytest.raises(gc.GradientError) as e:
        gc.gradients(loss, [w, b], unconnected="raise")
    _assert_at(e.value, line)
    assert "'b:0'" in str(e.value) and "has no path to 'reduce_mean:0'" in str(e.value)


@pytest.mark.parametrize("cut", ["argmax", "cast", "comparison"])
def test_the_non_differentiable_op_that_cuts_the_path_is_named(cut):
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 4), np.float32), name="w")
    logits = gc.matmul(x, w)
    if cut == "argmax":
        line, cutter = _line_below(0), gc.argmax(logits, axis=1)
    elif cut == "cast":
        line, cutter = _line_below(0), gc.cast(logits, gc.int32)
    else:
        line, cutter = _line_below(0), gc.greater(logits, 0.0)
    loss = gc.reduce_mean(gc.cast(cutter, gc.float32))
    request = _line_below(2)
    with pytest.raises(gc.GradientError) as e:
        gc.gradients(loss, [w], unconnected="raise")
    _assert_at(e.value, line)
    msg = str(e.value)
    assert f"{cutter.op.op.name} '{cutter.op.name}' at {__file__}:{line}" in msg
    assert f"{cutter.dtype} output carries no gradient" in msg and "'w:0'" in msg
    assert f"gradients requested at {__file__}:{request}" in msg


def test_stop_gradient_is_named_as_the_cut():
    x = gc.placeholder(gc.float32, (3,), name="x")
    line = _line_below()
    frozen = gc.stop_gradient(x * 2.0)
    with pytest.raises(gc.GradientError) as e:
        gc.gradients(gc.reduce_sum(frozen), [x], unconnected="raise")
    _assert_at(e.value, line)
    assert "stop_gradient" in str(e.value)


def test_minimize_with_no_gradient_at_all_explains_each_variable():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w_line = _line_below()
    w = gc.Variable(np.ones((3, 4), np.float32), name="w")
    gc.Variable(np.zeros((4,), np.float32), name="b")  # never used by the loss
    argmax_line = _line_below()
    predicted = gc.argmax(gc.matmul(x, w), axis=1)
    loss = gc.reduce_mean(gc.cast(predicted, gc.float32))
    line = _line_below(2)
    with pytest.raises(gc.GradientError) as e:
        gc.train.AdamOptimizer(0.01).minimize(loss)
    _assert_at(e.value, line)
    msg = str(e.value)
    w_reason = next(r for r in msg.splitlines() if r.startswith("  w: "))
    b_reason = next(r for r in msg.splitlines() if r.startswith("  b: "))
    assert f"argmax 'argmax' at {__file__}:{argmax_line}" in w_reason
    assert f"(built at {__file__}:{w_line})" in w_reason
    assert "has no path" in b_reason and f"(built at {__file__}:{w_line + 1})" in b_reason


def test_minimize_warns_about_variables_left_untrained_and_trains_the_rest():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    gc.Variable(np.zeros((1,), np.float32), name="unused_bias")
    loss = gc.reduce_mean(gc.square(gc.matmul(x, w)))
    line = _line_below(3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    found = [w for w in record if issubclass(w.category, gc.GraphcWarning)]
    assert len(found) == 1 and (found[0].filename, found[0].lineno) == (__file__, line)
    assert "1 of 2 variables" in str(found[0].message)
    assert "unused_bias: 'unused_bias:0'" in str(found[0].message)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        before = sess.run(loss, {x: np.ones((2, 3))})
        sess.run(train, {x: np.ones((2, 3))})
        assert sess.run(loss, {x: np.ones((2, 3))}) < before


def test_connected_gradients_raise_nothing():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    loss = gc.reduce_sum(gc.matmul(x, w))
    (g,) = gc.gradients(loss, [w], unconnected="raise")
    with gc.Session() as sess:
        sess.run(w.initializer)
        assert sess.run(g, {x: np.ones((2, 3))}).tolist() == [[2.0]] * 3
