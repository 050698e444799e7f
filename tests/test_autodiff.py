"""gc.gradients: compositions, broadcasting, second order, stop_gradient, unconnected
gradients, integer paths, custom gradients and user ops."""

import numpy as np
import pytest

import graphc as gc

check = gc.test.check_gradients


# --- compositions against finite differences --------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: gc.softmax(x),
        lambda x: gc.log_softmax(x, axis=0),
        lambda x: gc.reduce_logsumexp(x, axis=1),
        lambda x: gc.nn.l2_loss(x),
        lambda x: gc.gelu(x) + gc.elu(x) + gc.softplus(x) + gc.leaky_relu(x, 0.1),
        lambda x: gc.tanh(gc.sigmoid(x) * x) / (1 + gc.square(x)),
        lambda x: gc.moments(x, [0])[1],
        lambda x: gc.concat([x, 2 * x[:, ::-1]], 1)[1:, 1:3],
        lambda x: gc.stack([x, gc.exp(x)], axis=1),
        lambda x: gc.tensordot(x, gc.transpose(x), 1),
        lambda x: gc.reduce_max(gc.reshape(x, (-1,))) * gc.reduce_prod(x[0]),
    ],
    ids=[
        "softmax",
        "log_softmax",
        "logsumexp",
        "l2_loss",
        "activations",
        "nested",
        "moments",
        "slices",
        "stack",
        "tensordot",
        "max_prod",
    ],
)
def test_compositions(fn, rng):
    check(fn, [rng.uniform(-2, 2, (3, 4))])


def test_mlp_loss_gradient_against_finite_differences(rng):
    def loss(x, w1, b1, w2):
        h = gc.relu(x @ w1 + b1)
        return gc.reduce_mean(gc.square(h @ w2 - 1.0))

    check(
        loss,
        [
            rng.standard_normal((5, 3)),
            rng.standard_normal((3, 4)),
            rng.standard_normal(4),
            rng.standard_normal((4, 2)),
        ],
    )


def test_broadcasting_gradients_are_summed_to_the_input_shape(rng):
    x = gc.placeholder(gc.float64, (None, 3))
    b = gc.Variable(np.zeros((1, 3)))
    s = gc.Variable(np.float64(2.0))
    y = gc.reduce_sum((x + b) * s)
    gb, gs = gc.gradients(y, [b, s])
    assert gb.shape == (1, 3) and gs.shape == ()
    xv = rng.standard_normal((4, 3))
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        vb, vs = sess.run([gb, gs], {x: xv})
    np.testing.assert_allclose(vb, np.full((1, 3), 2.0 * 4))
    np.testing.assert_allclose(vs, xv.sum())
    check(lambda a, c: a * c + c, [rng.standard_normal((2, 3, 1)), rng.standard_normal((4,))])


def test_softmax_cross_entropy_gradient_is_softmax_minus_labels(rng):
    logits = gc.placeholder(gc.float64, (None, 5))
    labels = rng.dirichlet(np.ones(5), size=4)
    loss = gc.reduce_sum(gc.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    (g,) = gc.gradients(loss, [logits])
    z = rng.standard_normal((4, 5)) * 3
    with gc.Session() as sess:
        got = sess.run(g, {logits: z})
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(got, p - labels, atol=1e-12)


def test_sparse_softmax_cross_entropy_gradient(rng):
    labels = np.array([0, 3, 1])
    check(
        lambda z: gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=z),
        [rng.standard_normal((3, 4))],
    )
    check(
        lambda z: gc.sigmoid_cross_entropy_with_logits(labels=rng.random((3, 4)), logits=z),
        [rng.standard_normal((3, 4))],
    )


# --- second order -----------------------------------------------------------------------------


def test_hessian_vector_product(rng):
    x = gc.placeholder(gc.float64, (4,))
    v = gc.placeholder(gc.float64, (4,))
    f = gc.reduce_sum(x**3) + gc.reduce_sum(gc.sin(x)) * gc.reduce_sum(x)
    (g,) = gc.gradients(f, [x])
    (hv,) = gc.gradients(gc.reduce_sum(g * v), [x])
    xv, vv = rng.standard_normal(4), rng.standard_normal(4)
    # d2f/dxi dxj = (6 xi - sin(xi) sum(x)) [i == j] + cos(xi) + cos(xj)
    hess = np.diag(6 * xv - np.sin(xv) * xv.sum()) + np.cos(xv)[:, None] + np.cos(xv)[None, :]
    with gc.Session() as sess:
        got = sess.run(hv, {x: xv, v: vv})
    np.testing.assert_allclose(got, hess @ vv, rtol=1e-10)


def test_gradient_of_gradient_against_finite_differences(rng):
    def grad_of(x):
        (g,) = gc.gradients(gc.reduce_sum(gc.tanh(x) * x**2), [x])
        return g

    check(grad_of, [rng.standard_normal((2, 3))])


# --- stop_gradient, unconnected, integer paths ------------------------------------------------


def test_stop_gradient_blocks_only_its_path():
    x = gc.placeholder(gc.float64, ())
    y = x * x + gc.stop_gradient(x * x)
    (g,) = gc.gradients(y, [x])
    with gc.Session() as sess:
        assert sess.run(g, {x: 3.0}) == pytest.approx(6.0)
        assert sess.run(y, {x: 3.0}) == pytest.approx(18.0)


def test_unconnected_none_zero_raise():
    x = gc.placeholder(gc.float32, (2,), name="x")
    unused = gc.placeholder(gc.float32, (2,), name="unused")
    y = gc.reduce_sum(x * 2)
    assert gc.gradients(y, [unused]) == [None]
    (z,) = gc.gradients(y, [unused], unconnected="zero")
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(z, {unused: [1, 2]}), [0, 0])
    with pytest.raises(gc.GradientError, match="unused.*no path"):
        gc.gradients(y, [unused], unconnected="raise")
    blocked = gc.reduce_sum(gc.stop_gradient(x) * 2)
    with pytest.raises(gc.GradientError, match="stop_gradient"):
        gc.gradients(blocked, [x], unconnected="raise")


def test_integer_and_bool_paths_carry_no_gradient():
    x = gc.placeholder(gc.float32, (3,))
    through_int = gc.cast(gc.cast(x * 3, gc.int32), gc.float32)
    mask = gc.cast(x > 0, gc.float32)
    assert gc.gradients(gc.reduce_sum(through_int), [x]) == [None]
    (g,) = gc.gradients(gc.reduce_sum(mask * x), [x])
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(g, {x: [-1.0, 2.0, 3.0]}), [0.0, 1.0, 1.0])
    i = gc.placeholder(gc.int32, (3,))
    assert gc.gradients(gc.reduce_sum(i * 2), [i]) == [None]
    with pytest.raises(gc.GradientError, match="integer"):
        gc.gradients(gc.reduce_sum(gc.cast(i, gc.float32)), [i], unconnected="raise")


def test_grad_ys_weights_the_outputs():
    x = gc.placeholder(gc.float64, (2,))
    (g,) = gc.gradients([x * 2, x * x], [x], grad_ys=[np.array([1.0, 10.0]), None])
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(g, {x: [1.0, 2.0]}), [2 + 2, 20 + 4])
    with pytest.raises(gc.GradientError, match="grad_ys"):
        gc.gradients(x * 2, [x], grad_ys=[np.ones(3)])


def test_gradient_nodes_remember_their_forward_op():
    x = gc.placeholder(gc.float32, (3,))
    y = gc.reduce_sum(gc.exp(x))
    (g,) = gc.gradients(y, [x])
    assert g.op.origin is not None
    assert g.op.location is not None and g.op.location.file == __file__


# --- custom_gradient and register_op ----------------------------------------------------------


def test_custom_gradient_replaces_the_derived_gradient():
    @gc.custom_gradient
    def clipped_identity(x):
        return gc.identity(x), lambda dy: gc.clip_by_value(dy, -1.0, 1.0)

    x = gc.placeholder(gc.float32, (3,))
    y = gc.reduce_sum(clipped_identity(x) * np.array([0.5, 3.0, -4.0], np.float32))
    (g,) = gc.gradients(y, [x])
    with gc.Session() as sess:
        val, grad = sess.run([y, g], {x: [1.0, 1.0, 1.0]})
    assert val == pytest.approx(-0.5)
    np.testing.assert_allclose(grad, [0.5, 1.0, -1.0])


@pytest.mark.filterwarnings("ignore:overflow")  # the forward overflows; the gradient must not
def test_custom_gradient_log1pexp_is_stable():
    @gc.custom_gradient
    def log1pexp(x):
        e = gc.exp(x)
        return gc.log(1 + e), lambda dy: dy * (1 - 1 / (1 + e))

    x = gc.placeholder(gc.float32, ())
    (g,) = gc.gradients(log1pexp(x), [x])
    with gc.Session() as sess:
        assert sess.run(g, {x: 100.0}) == pytest.approx(1.0)


def test_register_op_relu_trains():
    my_relu = gc.register_op(
        "test_relu",
        forward=lambda x: np.maximum(x, 0),
        gradient=lambda op, dy: [dy * gc.cast(op.inputs[0] > 0, dy.dtype)],
    )
    rng = np.random.default_rng(0)
    check(lambda x: my_relu(x), [rng.uniform(-2, 2, (3, 4))])
    x = gc.placeholder(gc.float64, (None, 2))
    w = gc.Variable(np.array([[1.0], [-1.0]]))
    loss = gc.reduce_sum(gc.square(my_relu(x @ w) - 1.0))
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        first = sess.run(loss, {x: [[1.0, 0.5]]})
        for _ in range(50):
            sess.run(train, {x: [[1.0, 0.5]]})
        assert sess.run(loss, {x: [[1.0, 0.5]]}) < 1e-6 < first


def test_register_op_rules_and_errors():
    pair_sum = gc.register_op(
        "test_pair_sum",
        forward=lambda a, b: (a + b).sum(axis=-1),
        shape_fn=lambda a, b: a[:-1],
        dtype_fn=lambda a, b: gc.float64,
    )
    a = gc.placeholder(gc.float32, (2, 3))
    y = pair_sum(a, a)
    assert y.shape == (2,) and y.dtype is gc.float64
    assert gc.gradients(y, [a]) == [None]  # no gradient rule: not differentiable
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(y, {a: np.ones((2, 3))}), [6.0, 6.0])
    with pytest.raises(gc.GraphcError, match="built-in"):
        gc.register_op("add", forward=np.add)
    wrong = gc.register_op("test_wrong", forward=lambda x: x[:1])
    with gc.Session() as sess, pytest.raises(gc.OpError, match="test_wrong.*shape_fn"):
        sess.run(wrong(a), {a: np.ones((2, 3))})
    bad = gc.register_op("test_bad_grad", forward=lambda x: x, gradient=lambda op, g: [g, g])
    with pytest.raises(gc.GradientError, match="2 gradients for 1 inputs"):
        gc.gradients(gc.reduce_sum(bad(a)), [a])


@pytest.mark.parametrize("reduce", [gc.reduce_sum, gc.reduce_mean, gc.reduce_max])
def test_full_reduction_of_an_unknown_rank_tensor_and_its_gradient(reduce):
    # TF1 tutorials feed gc.placeholder(gc.float32) (no shape) and reduce it whole
    x = gc.placeholder(gc.float64)
    y = reduce(x * x)
    assert y.shape == ()
    (g,) = gc.gradients(y, [x])
    xv = np.array([[1.0, -3.0], [2.0, 0.5]])
    expected = {
        gc.reduce_sum: 2 * xv,
        gc.reduce_mean: 2 * xv / 4,
        gc.reduce_max: np.where(xv == -3.0, -6.0, 0.0),
    }[reduce]
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(g, {x: xv}), expected)


def test_check_gradients_catches_a_wrong_rule():
    wrong = gc.register_op(
        "test_wrong_square", forward=np.square, gradient=lambda op, g: [g * op.inputs[0]]
    )  # misses the factor 2
    with pytest.raises(gc.test.GradientCheckError, match="x0"):
        check(wrong, [np.array([1.0, 2.0])])
    with pytest.raises(AssertionError):
        check(wrong, [np.array([1.0, 2.0])])
    (pair,) = check(lambda x: gc.square(x), [np.array([1.0, 2.0], np.float32)])
    assert pair[0].dtype == np.float64  # checked in float64


def test_custom_gradient_with_two_arguments_one_a_number():
    @gc.custom_gradient
    def scaled(x, k):
        return x * k, lambda dy: (dy * k, gc.reduce_sum(dy * x))

    x = gc.placeholder(gc.float32, (2,))
    y = gc.reduce_sum(scaled(x, 3.0))
    (gx,) = gc.gradients(y, [x])
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(gx, {x: [1.0, 2.0]}), [3.0, 3.0])


def test_gradients_and_minimize_build_in_the_loss_graph_not_the_default_one():
    g = gc.Graph()
    with g.as_default():
        w = gc.Variable(np.ones(2), name="w")
        loss = gc.reduce_sum(w * w)
    (grad,) = gc.gradients(loss, [w])  # outside the with block
    train = gc.train.AdamOptimizer(0.1).minimize(loss)
    assert grad.graph is g and train.graph is g
    assert len(gc.get_default_graph()) == 0
    with gc.Session(graph=g) as sess:
        sess.run(gc.variables_initializer(g.get_collection("variables")))
        sess.run(train)
        assert sess.run(loss) < 2.0


def test_stop_gradients_argument_treats_tensors_as_constants():
    x = gc.placeholder(gc.float64, ())
    h = x * x
    y = h * x  # x^3, but with h held constant: h
    (g,) = gc.gradients(y, [x], stop_gradients=[h])
    with gc.Session() as sess:
        assert sess.run(g, {x: 2.0}) == pytest.approx(4.0)
