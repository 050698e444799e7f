"""gc.train: each optimizer against a hand-computed step and on a quadratic; linear
regression reaching the least-squares fit; an MLP classifier; clipping; global steps."""

import numpy as np
import pytest

import graphc as gc

# A convex quadratic with its minimum at TARGET: 0.5 * sum(A * (w - TARGET)^2).
A = np.array([1.0, 3.0, 0.5])
TARGET = np.array([1.0, -2.0, 0.5])

OPTIMIZERS = {
    "sgd": lambda: gc.train.GradientDescentOptimizer(0.3),
    "momentum": lambda: gc.train.MomentumOptimizer(0.1, 0.9),
    "nesterov": lambda: gc.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
    "adam": lambda: gc.train.AdamOptimizer(0.1),
    "rmsprop": lambda: gc.train.RMSPropOptimizer(0.01, momentum=0.5),
    "rmsprop_centered": lambda: gc.train.RMSPropOptimizer(0.01, centered=True),
    "adagrad": lambda: gc.train.AdagradOptimizer(0.5),
}


def _quadratic():
    w = gc.Variable(np.zeros(3), name="w")
    loss = 0.5 * gc.reduce_sum(A * gc.square(w - TARGET))
    return w, loss


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_minimizes_a_quadratic(name):
    w, loss = _quadratic()
    train = OPTIMIZERS[name]().minimize(loss)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        start = sess.run(loss)
        for _ in range(400):
            sess.run(train)
        final_w, final = sess.run([w, loss])
    assert final < 1e-3 * start
    np.testing.assert_allclose(final_w, TARGET, atol=0.05)


def _reference_steps(name, grads):
    """The TF 1.x update rules in numpy, for the same gradient sequence."""
    w = np.zeros(3)
    m = np.zeros(3)
    v = np.zeros(3)
    acc = np.full(3, 0.1)
    ms = np.ones(3)
    out = []
    for t in range(1, len(grads) + 1):
        g = A * (w - TARGET)
        if name == "momentum":
            m = 0.9 * m + g
            w = w - 0.1 * m
        elif name == "nesterov":
            m = 0.9 * m + g
            w = w - 0.1 * (g + 0.9 * m)
        elif name == "adam":
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            w = w - 0.1 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
        elif name == "adagrad":
            acc = acc + g * g
            w = w - 0.5 * g / np.sqrt(acc)
        elif name == "rmsprop":
            ms = 0.9 * ms + 0.1 * g * g
            m = 0.5 * m + 0.01 * g / np.sqrt(ms + 1e-10)
            w = w - m
        out.append(w.copy())
    return out


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam", "adagrad", "rmsprop"])
def test_update_rules_match_tensorflow_formulas(name):
    w, loss = _quadratic()
    train = OPTIMIZERS[name]().minimize(loss)
    expected = _reference_steps(name, range(5))
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for want in expected:
            sess.run(train)
            np.testing.assert_allclose(sess.run(w), want, rtol=1e-12)


def test_slots_are_variables_named_after_the_optimizer():
    w, loss = _quadratic()
    opt = gc.train.AdamOptimizer()
    opt.minimize(loss)
    names = {v.op.name for v in gc.global_variables()}
    assert {"w", "w/Adam", "w/Adam_1", "beta1_power", "beta2_power"} <= names
    assert opt.get_slot(w, "").op.name == "w/Adam"
    assert all(not v.trainable for v in opt.variables())
    assert gc.trainable_variables() == [w]


def test_linear_regression_converges_to_least_squares():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 10, 17).astype(np.float32)
    Y = (0.7 * X + 2.0 + rng.normal(0, 0.5, 17)).astype(np.float32)
    x, y = gc.placeholder(gc.float32, name="x"), gc.placeholder(gc.float32, name="y")
    W = gc.Variable(0.1, name="weight")
    b = gc.Variable(0.0, name="bias")
    cost = gc.reduce_sum(gc.pow(x * W + b - y, 2)) / (2 * 17)
    train = gc.train.GradientDescentOptimizer(0.02).minimize(cost)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for _ in range(1500):
            sess.run(train, {x: X, y: Y})
        w_fit, b_fit = sess.run([W, b])
    slope, intercept = np.polyfit(X.astype(np.float64), Y.astype(np.float64), 1)
    assert w_fit == pytest.approx(slope, abs=1e-3)
    assert b_fit == pytest.approx(intercept, abs=1e-2)


def test_mlp_classifier_with_layers_batches_and_sparse_cross_entropy():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (4, 10))
    labels = rng.integers(0, 4, 1200)
    data = (centers[labels] + rng.normal(0, 1.5, (1200, 10))).astype(np.float32)
    x = gc.placeholder(gc.float32, (None, 10), name="x")
    y = gc.placeholder(gc.int64, (None,), name="y")
    gc.set_random_seed(3)
    hidden = gc.layers.dense(x, 32, activation=gc.relu)
    logits = gc.layers.dense(hidden, 4)
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    accuracy = gc.reduce_mean(gc.cast(gc.equal(gc.argmax(logits, 1), y), gc.float32))
    train = gc.train.AdamOptimizer(0.01).minimize(loss)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for xb, yb in gc.data.batches(
            data[:1000], labels[:1000], batch_size=50, shuffle=True, seed=0, epochs=5
        ):
            sess.run(train, {x: xb, y: yb})
        acc = sess.run(accuracy, {x: data[1000:], y: labels[1000:]})
    assert acc > 0.9


def test_learning_rate_tensor_and_global_step():
    w, loss = _quadratic()
    lr = gc.placeholder(gc.float32, (), name="lr")
    step = gc.train.get_or_create_global_step()
    train = gc.train.GradientDescentOptimizer(lr).minimize(loss, global_step=step)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        sess.run(train, {lr: 0.0})
        np.testing.assert_array_equal(sess.run(w), np.zeros(3))
        sess.run(train, {lr: 1.0})
        np.testing.assert_allclose(sess.run(w), A * TARGET)
        assert sess.run(step) == 2
    assert gc.train.get_or_create_global_step() is step


def test_compute_and_apply_gradients_with_clipping():
    w, loss = _quadratic()
    opt = gc.train.GradientDescentOptimizer(1.0)
    grads_and_vars = opt.compute_gradients(loss)
    grads, variables = zip(*grads_and_vars, strict=True)
    clipped, norm = gc.train.clip_by_global_norm(grads, 1.0)
    train = opt.apply_gradients(zip(clipped, variables, strict=True))
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        g0, n0 = sess.run([grads[0], norm])
        sess.run(train)
        np.testing.assert_allclose(n0, np.linalg.norm(g0))
        np.testing.assert_allclose(sess.run(w), -g0 / n0)  # a step of length exactly 1


def test_clip_by_global_norm_leaves_small_gradients_alone():
    a = gc.constant([3.0, 4.0])
    b = gc.constant([[0.0]])
    (ca, cb, none), norm = gc.train.clip_by_global_norm([a, b, None], 10.0)
    assert none is None
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(ca), [3.0, 4.0])
        assert sess.run(norm) == pytest.approx(5.0)
    (ca,), _ = gc.train.clip_by_global_norm([a], 2.5)
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(ca), [1.5, 2.0])


def test_run_reports_the_loss_before_the_step():
    w, loss = _quadratic()
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        before = sess.run(loss)
        _, reported = sess.run([train, loss])
        assert reported == pytest.approx(before)
        assert sess.run(loss) < before


def test_no_gradient_errors_name_the_variables():
    w = gc.Variable(np.zeros(2), name="lonely")
    x = gc.placeholder(gc.float64, (2,))
    loss = gc.reduce_sum(x * x)
    with pytest.raises(gc.GradientError, match="lonely"):
        gc.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=[w])
    gc.reset_default_graph()
    with pytest.raises(gc.GradientError, match="no trainable variables"):
        gc.train.AdamOptimizer().minimize(gc.reduce_sum(gc.constant([1.0])))


def test_variables_initializer_initializes_only_its_list():
    a = gc.Variable(1.0, name="a")
    b = gc.Variable(2.0, name="b")
    with gc.Session() as sess:
        sess.run(gc.train.variables_initializer([a]))
        assert sess.run(a) == 1.0
        with pytest.raises(gc.UninitializedError, match="'b'"):
            sess.run(b)


def test_exponential_decay_learning_rate_follows_the_global_step():
    step = gc.train.get_or_create_global_step()
    lr = gc.train.exponential_decay(0.5, step, decay_steps=2, decay_rate=0.1, staircase=True)
    w, loss = _quadratic()
    train = gc.train.GradientDescentOptimizer(lr).minimize(loss, global_step=step)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        rates = []
        for _ in range(5):
            rates.append(sess.run(lr))
            sess.run(train)
    np.testing.assert_allclose(rates, [0.5, 0.5, 0.05, 0.05, 0.005], rtol=1e-6)
    with pytest.raises(gc.GraphcError, match="learning_rate"):
        gc.train.GradientDescentOptimizer("fast")


@pytest.mark.parametrize("optimize", [0, 2])
def test_apply_gradients_takes_gradients_fed_through_placeholders(optimize):
    """compute, (reduce,) apply: the update waits for its gradients, and a fed gradient is
    already there (its placeholder is not run, so no FeedError)."""
    x = gc.placeholder(gc.float32, (None, 2))
    w = gc.Variable(np.array([[1.0], [2.0]], np.float32))
    loss = gc.reduce_sum(gc.square(x @ w))
    opt = gc.train.GradientDescentOptimizer(0.1)
    ((grad, var),) = opt.compute_gradients(loss, var_list=[w])
    fed = gc.placeholder(gc.float32, (2, 1))
    apply = opt.apply_gradients([(fed, var)])
    with gc.Session(optimize=optimize) as sess:
        sess.run(gc.global_variables_initializer())
        g = sess.run(grad, {x: np.ones((3, 2), np.float32)})
        sess.run(apply, {fed: g * 0.5})
        np.testing.assert_allclose(sess.run(w), np.array([[1.0], [2.0]]) - 0.1 * 0.5 * g, rtol=1e-6)
