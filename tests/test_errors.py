"""Errors for people (SPEC §2, §11): mistakes fail at the line that built the node, with a
graphc exception naming the op, the input shapes and dtypes, and that line; Python scalars
are weak; a symbolic tensor in a Python ``if`` explains define-and-run."""

import inspect

import numpy as np
import pytest

import graphc as gc


def _lines_below(n):
    """The caller's line number plus ``n``."""
    return inspect.currentframe().f_back.f_lineno + n


def _assert_at(error, line):
    """The error carries, and its message starts with, this test file's ``file:line``."""
    assert error.location.file == __file__ and error.location.line == line
    assert str(error).startswith(f"{__file__}:{line}: ")


# --- shape errors at build time ---------------------------------------------------------------


def test_matmul_shape_error_names_op_shapes_dtypes_and_line():
    a = gc.placeholder(gc.float32, shape=(None, 3), name="a")
    b = gc.placeholder(gc.float32, shape=(4, 5), name="b")
    line = _lines_below(2)
    with pytest.raises(gc.ShapeError) as e:
        a @ b
    _assert_at(e.value, line)
    msg = str(e.value)
    assert "matmul" in msg and "3" in msg and "4" in msg and "float32(?, 3)" in msg


def test_broadcast_error():
    a = gc.constant(np.zeros((2, 3), np.float32))
    b = gc.constant(np.zeros((4,), np.float32))
    line = _lines_below(2)
    with pytest.raises(gc.ShapeError) as e:
        gc.add(a, b)
    _assert_at(e.value, line)
    msg = str(e.value)
    assert "add" in msg and "float32(2, 3)" in msg and "float32(4,)" in msg


def test_reshape_and_concat_errors():
    x = gc.constant(np.zeros((2, 3), np.float32))
    line = _lines_below(2)
    with pytest.raises(gc.ShapeError) as e:
        gc.reshape(x, (4, 2))
    _assert_at(e.value, line)
    assert "reshape" in str(e.value) and "6 elements" in str(e.value)
    with pytest.raises(gc.ShapeError, match="concat"):
        gc.concat([x, gc.constant(np.zeros((3, 3), np.float32))], axis=1)


def test_shape_errors_inside_composites_point_at_the_user():
    logits = gc.placeholder(gc.float32, shape=(None, 10))
    labels = gc.placeholder(gc.float32, shape=(None, 9))
    line = _lines_below(2)
    with pytest.raises(gc.ShapeError) as e:
        gc.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    _assert_at(e.value, line)


def test_errors_are_graphc_errors_and_familiar_python_ones():
    with pytest.raises(gc.GraphcError):
        gc.constant([1.0, 2.0]) + gc.constant([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):  # ShapeError is a ValueError
        gc.constant([1.0, 2.0]) + gc.constant([1.0, 2.0, 3.0])
    with pytest.raises(TypeError):  # DTypeError is a TypeError
        gc.constant([1.0]) + gc.constant([1])


# --- dtype errors and weak scalars ------------------------------------------------------------


def test_mixed_dtypes_are_a_build_time_error():
    f = gc.placeholder(gc.float32, shape=(3,), name="f")
    i = gc.placeholder(gc.int32, shape=(3,), name="i")
    line = _lines_below(2)
    with pytest.raises(gc.DTypeError) as e:
        f + i
    _assert_at(e.value, line)
    msg = str(e.value)
    assert "add" in msg and "'f:0' [float32(3,)]" in msg and "'i:0' [int32(3,)]" in msg
    assert "gc.cast" in msg
    with pytest.raises(gc.DTypeError):
        gc.constant(1.0, dtype=gc.float64) * gc.constant(1.0, dtype=gc.float32)


def test_weak_python_scalars():
    f16 = gc.placeholder(gc.float16, shape=(2,))
    i8 = gc.placeholder(gc.int8, shape=(2,))
    assert (f16 * 2).dtype is gc.float16  # an int next to a float tensor
    assert (f16 + 0.5).dtype is gc.float16  # a float never widens the tensor
    assert (3 - f16).dtype is gc.float16
    assert (i8 * 2).dtype is gc.int8
    assert (f16 * np.float64(2.0)).dtype is gc.float16  # numpy scalars are weak too
    assert gc.maximum(i8, 0).dtype is gc.int8
    with gc.Session() as sess:
        r = sess.run(i8 * 3, {i8: [1, -2]})
    assert r.dtype == np.int8 and r.tolist() == [3, -6]


def test_float_scalar_with_an_int_tensor_is_an_error():
    i = gc.constant([1, 2, 3], name="counts")
    line = _lines_below(2)
    with pytest.raises(gc.DTypeError) as e:
        i * 0.5
    _assert_at(e.value, line)
    assert "0.5" in str(e.value) and "int32" in str(e.value) and "gc.cast" in str(e.value)
    assert (gc.cast(i, gc.float32) * 0.5).dtype is gc.float32


def test_ops_that_need_floats_say_so():
    i = gc.constant([1, 2, 3])
    with pytest.raises(gc.DTypeError, match="float.*gc.cast"):
        gc.exp(i)
    with pytest.raises(gc.DTypeError, match="bool"):
        gc.logical_and(i, i)
    with pytest.raises(gc.DTypeError, match="condition must be bool"):
        gc.where(i, i, i)


def test_unknown_dtype_name():
    with pytest.raises(gc.DTypeError, match="complex"):
        gc.placeholder("complex64")


# --- define-and-run ---------------------------------------------------------------------------


def test_bool_of_a_tensor_explains_define_and_run():
    x = gc.placeholder(gc.float32, shape=(), name="x")
    with pytest.raises(gc.DefineAndRunError) as e:
        if x > 0:
            pass
    msg = str(e.value)
    assert "define-and-run" in msg and "gc.where" in msg and "Session" in msg
    with pytest.raises(gc.DefineAndRunError):
        bool(x)
    with pytest.raises(gc.DefineAndRunError):
        _ = x and x
    with pytest.raises(gc.DefineAndRunError, match="iterate"):
        list(gc.constant([1.0, 2.0]))


# --- run-time errors still name the user's line -----------------------------------------------


def test_kernel_failure_names_the_op_and_line():
    params = gc.constant(np.zeros((3, 2), np.float32))
    idx = gc.placeholder(gc.int32, shape=(None,), name="idx")
    line = _lines_below(1)
    rows = gc.gather(params, idx)
    with gc.Session() as sess:
        with pytest.raises(gc.OpError) as e:
            sess.run(rows, {idx: [0, 7]})
    _assert_at(e.value, line)
    assert "gather" in str(e.value) and "int32(2,)" in str(e.value)


def test_check_numerics_names_its_line():
    x = gc.placeholder(gc.float32, shape=(2,))
    line = _lines_below(1)
    y = gc.check_numerics(gc.sqrt(x), "sqrt went bad")
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: [4.0, 9.0]}), [2.0, 3.0])
        with np.errstate(invalid="ignore"), pytest.raises(gc.NumericsError) as e:
            sess.run(y, {x: [4.0, -1.0]})
    _assert_at(e.value, line)
    assert "sqrt went bad" in str(e.value) and "1 NaN" in str(e.value)
