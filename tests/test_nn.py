"""``gc.nn`` (graphc/nn.py) and the neural-network composites of ops/nn.py, against the
numpy formulas that define them, plus the TF 1.x behaviours of their signatures."""

import math

import numpy as np
import pytest

import graphc as gc

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 5))
LABELS = np.eye(5)[[0, 2, 4, 1]]


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _run(fetches, feed=None):
    with gc.Session() as sess:
        return sess.run(fetches, feed)


_erf = np.vectorize(math.erf)

CASES = {
    "relu": (lambda x: gc.nn.relu(x), lambda x: np.maximum(x, 0)),
    "relu6": (lambda x: gc.nn.relu6(4 * x), lambda x: np.clip(4 * x, 0, 6)),
    "leaky_relu": (lambda x: gc.nn.leaky_relu(x, alpha=0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "elu": (lambda x: gc.nn.elu(x), lambda x: np.where(x > 0, x, np.exp(x) - 1)),
    "selu": (
        lambda x: gc.nn.selu(x),
        lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    ),
    "softplus": (lambda x: gc.nn.softplus(x), lambda x: np.log(1 + np.exp(x))),
    "softsign": (lambda x: gc.nn.softsign(x), lambda x: x / (1 + np.abs(x))),
    "gelu": (lambda x: gc.nn.gelu(x), lambda x: x * 0.5 * (1 + _erf(x / np.sqrt(2)))),
    "gelu_tanh": (
        lambda x: gc.nn.gelu(x, approximate=True),
        lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    ),
    "silu": (lambda x: gc.nn.silu(x), lambda x: x / (1 + np.exp(-x))),
    "sigmoid": (lambda x: gc.nn.sigmoid(x), lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (lambda x: gc.nn.tanh(x), np.tanh),
    "softmax": (lambda x: gc.nn.softmax(x), _softmax),
    "softmax_axis0": (lambda x: gc.nn.softmax(x, axis=0), lambda x: _softmax(x, axis=0)),
    "log_softmax": (lambda x: gc.nn.log_softmax(x), lambda x: np.log(_softmax(x))),
    "l2_loss": (lambda x: gc.nn.l2_loss(x), lambda x: (x**2).sum() / 2),
    "l2_normalize": (
        lambda x: gc.nn.l2_normalize(x, axis=1),
        lambda x: x / np.linalg.norm(x, axis=1, keepdims=True),
    ),
    "bias_add": (lambda x: gc.nn.bias_add(x, np.arange(5.0)), lambda x: x + np.arange(5.0)),
    "softmax_xent": (
        lambda x: gc.nn.softmax_cross_entropy_with_logits(labels=LABELS, logits=x),
        lambda x: -(LABELS * np.log(_softmax(x))).sum(-1),
    ),
    "softmax_xent_v2": (
        lambda x: gc.nn.softmax_cross_entropy_with_logits_v2(labels=LABELS, logits=x),
        lambda x: -(LABELS * np.log(_softmax(x))).sum(-1),
    ),
    "sparse_xent": (
        lambda x: gc.nn.sparse_softmax_cross_entropy_with_logits(
            labels=gc.constant([0, 2, 4, 1]), logits=x
        ),
        lambda x: -np.log(_softmax(x)[np.arange(4), [0, 2, 4, 1]]),
    ),
    "sigmoid_xent": (
        lambda x: gc.nn.sigmoid_cross_entropy_with_logits(labels=LABELS, logits=x),
        lambda x: (
            -(
                LABELS * np.log(1 / (1 + np.exp(-x)))
                + (1 - LABELS) * np.log(1 - 1 / (1 + np.exp(-x)))
            )
        ),
    ),
    "embedding_lookup": (
        lambda x: gc.nn.embedding_lookup(x, gc.constant([3, 0, 3])),
        lambda x: x[[3, 0, 3]],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_nn_ops_match_numpy(name):
    build, reference = CASES[name]
    x = gc.placeholder(gc.float64, shape=(None, 5))
    y = build(x)
    want = reference(X)
    got = _run(y, {x: X})
    assert np.shape(got) == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_moments():
    mean, var = gc.nn.moments(gc.constant(X), axes=[0])
    assert mean.shape == (5,) and var.shape == (5,)
    got_mean, got_var = _run([mean, var])
    np.testing.assert_allclose(got_mean, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(got_var, X.var(0), rtol=1e-12)
    m, v = gc.nn.moments(gc.constant(X), axes=[1], keepdims=True)
    assert m.shape == (4, 1) and v.shape == (4, 1)


def test_softmax_is_stable_for_large_logits():
    big = np.array([[1000.0, 0.0, -1000.0]])
    got = _run(gc.nn.softmax(gc.constant(big)))
    np.testing.assert_allclose(got, [[1.0, 0.0, 0.0]])
    xent = _run(
        gc.nn.softmax_cross_entropy_with_logits(labels=[[0.0, 1.0, 0.0]], logits=gc.constant(big))
    )
    np.testing.assert_allclose(xent, [1000.0])


def test_v1_cross_entropy_treats_labels_as_constants():
    logits = gc.constant(X)
    labels = gc.constant(_softmax(X[::-1]))
    v1 = gc.reduce_sum(gc.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    v2 = gc.reduce_sum(gc.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits))
    assert gc.gradients(v1, [labels]) == [None]
    (g2,) = gc.gradients(v2, [labels])
    np.testing.assert_allclose(_run(g2), -np.log(_softmax(X)), rtol=1e-12)
    g1, g2 = gc.gradients(v1, [logits])[0], gc.gradients(v2, [logits])[0]
    np.testing.assert_allclose(*_run([g1, g2]))


def test_cross_entropies_need_keyword_arguments():
    with pytest.raises(gc.DTypeError, match="labels= and logits="):
        gc.nn.softmax_cross_entropy_with_logits(gc.constant(X))
    with pytest.raises(gc.DTypeError, match="integer class indices"):
        gc.nn.sparse_softmax_cross_entropy_with_logits(
            labels=gc.constant(LABELS), logits=gc.constant(X)
        )


def test_name_names_the_result_of_a_composite():
    logits = gc.placeholder(gc.float32, shape=(None, 3), name="logits")
    pred = gc.nn.softmax(logits, name="pred")
    loss = gc.nn.l2_loss(logits, name="loss")
    g = gc.get_default_graph()
    assert g.get_tensor_by_name("pred:0") is pred and g.get_tensor_by_name("loss") is loss
    np.testing.assert_allclose(
        _run("pred", {"logits": [[0.0, 0.0, 0.0]]}), [[1 / 3] * 3], rtol=1e-6
    )


def test_dropout_tf1_signature():
    x = gc.ones((100, 100))
    kept = _run(gc.nn.dropout(x, 0.75, seed=1))  # TF 1.x: the second argument is keep_prob
    assert abs((kept != 0).mean() - 0.75) < 0.03
    np.testing.assert_allclose(kept[kept != 0], 1 / 0.75, rtol=1e-6)
    dropped = _run(gc.nn.dropout(x, rate=0.75, seed=1))  # TF 2: rate=
    assert abs((dropped != 0).mean() - 0.25) < 0.03
    with pytest.raises(gc.GraphcError, match="exactly one"):
        gc.nn.dropout(x, 0.5, rate=0.5)


def test_dropout_training_switch_and_noise_shape():
    x = gc.ones((6, 50))
    training = gc.placeholder_with_default(gc.constant(True), shape=())
    d = gc.nn.dropout(x, keep_prob=0.5, seed=2, training=training)
    with gc.Session() as sess:
        on = sess.run(d)
        off = sess.run(d, {training: False})
    assert (on == 0).any() and (off == 1).all()
    rows = _run(gc.nn.dropout(x, keep_prob=0.5, seed=3, noise_shape=(6, 1)))
    for row in rows:  # one decision per row, shared across its columns
        assert len(set(row.tolist())) == 1
    assert {0.0, 2.0} == set(np.unique(rows).tolist())
