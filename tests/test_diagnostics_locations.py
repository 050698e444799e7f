"""Source locations survive every pass (SPEC §12): a run-time error names the user's own line
and the op at optimize=0 (interpreter), 1 (rewrites, in-place) and 2 (fusion) alike; gradient
nodes carry the forward op's line and say whose gradient they are; ``.g`` nodes give
``file:line:col``."""

import inspect

import numpy as np
import pytest

import graphc as gc

LEVELS = [0, 1, 2]


def _line_below(n=1):
    """The caller's line number plus ``n``."""
    return inspect.currentframe().f_back.f_lineno + n


def _assert_at(error, line, file=__file__):
    """The error is located at, and its message starts with, ``file:line``."""
    assert (error.location.file, error.location.line) == (file, line)
    assert str(error).startswith(f"{file}:{line}: ")


@pytest.mark.parametrize("optimize", LEVELS)
def test_typo_in_a_label_batch_names_the_loss_line_at_every_level(optimize):
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    y = gc.placeholder(gc.float32, (None, 1), name="y")
    w = gc.Variable(np.zeros((3, 1), np.float32), name="w")
    line = _line_below()
    loss = gc.reduce_mean(gc.square(gc.matmul(x, w) - y))
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    xs, ys = np.ones((10, 3), np.float32), np.ones((10, 1), np.float32)
    with gc.Session(optimize=optimize) as sess:
        sess.run(gc.global_variables_initializer())
        sess.run(train, {x: xs[0:4], y: ys[0:4]})
        with pytest.raises(gc.OpError) as e:
            sess.run(train, {x: xs[4:8], y: ys[4:7]})  # the typo: 7 instead of 8
    _assert_at(e.value, line)
    assert "subtract" in str(e.value) and "(4, 1)" in str(e.value) and "(3, 1)" in str(e.value)


@pytest.mark.parametrize("optimize", LEVELS)
def test_symbolic_dims_that_disagree_at_run_time_name_both_placeholders(optimize):
    x_line = _line_below()
    x = gc.placeholder(gc.float32, ("N", 3), name="x")
    y = gc.placeholder(gc.float32, ("N", 1), name="y")
    loss = gc.reduce_mean(gc.square(gc.matmul(x, gc.ones((3, 1))) - y))
    with gc.Session(optimize=optimize) as sess:
        run_line = _line_below(2)
        with pytest.raises(gc.ShapeError) as e:
            sess.run(loss, {x: np.ones((4, 3)), y: np.ones((5, 1))})
    _assert_at(e.value, run_line)
    msg = str(e.value)
    assert "'N' is 4" in msg and "x:0" in msg and "y:0" in msg
    assert f"{__file__}:{x_line}" in msg and f"{__file__}:{x_line + 1}" in msg


@pytest.mark.parametrize("optimize", LEVELS)
def test_a_failing_gradient_kernel_names_the_forward_op_and_its_line(optimize):
    reshape7 = gc.register_op("diag_loc_reshape7", lambda g: g.reshape(7))
    square = gc.register_op(
        "diag_loc_square", lambda a: a * a, gradient=lambda op, g: [reshape7(g) * 2.0]
    )
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 2), np.float32), name="w")
    line = _line_below()
    loss = gc.reduce_sum(square(gc.matmul(x, w)))
    (grad_w,) = gc.gradients(loss, [w])
    with gc.Session(optimize=optimize) as sess:
        sess.run(w.initializer)
        with pytest.raises(gc.OpError) as e:
            sess.run(grad_w, {x: np.ones((4, 3))})
    _assert_at(e.value, line)
    assert f"in the gradient of diag_loc_square 'diag_loc_square' at {__file__}:{line}" in str(
        e.value
    )
    assert "diag_loc_reshape7" in str(e.value)


def test_gradient_nodes_carry_the_forward_ops_location_and_origin():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    b = gc.Variable(np.zeros((1,), np.float32), name="b")
    line = _line_below()
    h = gc.matmul(x, w) + b  # the add broadcasts b: its gradient sums it back
    loss = gc.reduce_sum(h * h)
    grads = gc.gradients(loss, [w, b])
    new = [op for op in gc.get_default_graph().get_operations() if op.id > loss.op.id]
    from_line = [op for op in new if op.origin is not None and op.origin.location.line == line]
    assert {op.origin.op.name for op in from_line} == {"matmul", "add"}
    for op in from_line:
        assert op.location == op.origin.location
    # the driver's own nodes (undoing the broadcast of b) belong to the add's gradient too
    assert grads[1].op.origin is h.op and grads[1].op.location.line == line


@pytest.mark.parametrize("optimize", LEVELS)
def test_a_user_op_raising_names_its_line(optimize):
    def forward(a):
        if (a < 0).any():
            raise ValueError("negative input")
        return np.sqrt(a)

    safe_sqrt = gc.register_op("diag_loc_safe_sqrt", forward)
    x = gc.placeholder(gc.float32, (2, 3), name="x")
    line = _line_below()
    y = safe_sqrt(x * 2.0) + 1.0
    with gc.Session(optimize=optimize) as sess:
        with pytest.raises(gc.OpError) as e:
            sess.run(y, {x: -np.ones((2, 3))})
    _assert_at(e.value, line)
    assert "diag_loc_safe_sqrt" in str(e.value) and "negative input" in str(e.value)


@pytest.mark.parametrize("optimize", LEVELS)
def test_a_failed_check_numerics_names_its_line(optimize):
    x = gc.placeholder(gc.float32, (4, 3), name="x")
    line = _line_below()
    y = gc.check_numerics(gc.log(x) * 2.0, "log of the inputs")
    with gc.Session(optimize=optimize) as sess:
        with pytest.raises(gc.NumericsError) as e:
            sess.run(y + 1.0, {x: -np.ones((4, 3))})
    _assert_at(e.value, line)
    assert "log of the inputs" in str(e.value) and "12 NaN" in str(e.value)


MODEL = """model net {
  input x : f32[N, 3]
  param w : f32[3, 1] = ones()
  h = x @ w
  z = log(h - 5.0)
  loss = reduce_mean(z)
  train loss with sgd(lr=0.1)
}
"""


@pytest.mark.parametrize("optimize", LEVELS)
def test_g_file_nodes_keep_file_line_col_through_the_passes(optimize):
    g = gc.loads(MODEL, filename="net.g")
    x, loss = g.get_tensor_by_name("x:0"), g.get_tensor_by_name("loss:0")
    train = g.get_operation_by_name("train")
    with g.as_default():
        init = gc.global_variables_initializer()
    with gc.Session(g, optimize=optimize, check_numerics=True) as sess:
        sess.run(init)
        with pytest.raises(gc.NumericsError) as e, np.errstate(all="ignore"):
            sess.run([train, loss], {x: np.ones((2, 3), np.float32)})
    loc = e.value.location
    assert (loc.file, loc.line, loc.col) == ("net.g", 5, 7)
    assert str(e.value).startswith("net.g:5:7: ") and "log 'z'" in str(e.value)


@pytest.mark.parametrize("optimize", LEVELS)
def test_a_failing_kernel_on_a_constant_shows_its_input_at_every_level(optimize):
    # at optimize>=1 the constant lives in the generated plan's globals, not its locals
    def forward(a):
        raise ValueError("refused")

    refuse = gc.register_op("diag_loc_refuse", forward)
    x = gc.placeholder(gc.float32, (3,), name="x")
    line = _line_below()
    y = x + refuse(gc.constant([1.0, 2.0, 3.0]))
    with gc.Session(optimize=optimize) as sess:
        with pytest.raises(gc.OpError) as e:
            sess.run(y, {x: np.ones(3)})
    _assert_at(e.value, line)
    assert "diag_loc_refuse 'diag_loc_refuse' failed on inputs [float32(3,)]: refused" in str(
        e.value
    )


def test_ops_built_on_one_line_share_its_location_and_other_lines_have_their_own():
    with gc.Graph().as_default():
        x = gc.placeholder(gc.float32, (3,))
        line = _line_below()
        hs = [gc.tanh(x) for _ in range(3)]
        other = gc.relu(x)
        total = gc.reduce_sum(x, axis=0)
    first = hs[0].op.location
    assert (first.file, first.line) == (__file__, line)
    assert all(h.op.location is first for h in hs)  # one object per user line
    assert other.op.location.line == line + 1 and other.op.location is not first
    assert not hs[0].op.attrs and total.op.attrs["axis"] == (0,)
