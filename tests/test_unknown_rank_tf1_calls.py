"""TF 1.x calls on ``tf.placeholder(tf.float32)`` (unknown rank), as beginners write them:
each builds and runs with a feed, and gives what the same call on a shaped placeholder
gives (TF 1.x accepts them when the values are known at run time). Where TF 1.x itself
refuses an unknown rank (``unstack`` without ``num``, layers that create weights from the
input's width), graphc refuses too, with a located ShapeError instead of a crash."""

import numpy as np
import pytest

import graphc.compat.v1 as tf
from graphc.errors import ShapeError

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11) / 7
M = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5) / 3
LABELS = np.array([0, 3, 1], np.int32)

# name -> (build(*placeholders) -> tensor or list, feeds: (array, ...))
CALLS = {
    "split_parts": (lambda x: tf.split(x, 3, axis=1), (X,)),
    "split_parts_negative_axis": (lambda x: tf.split(x, 2, axis=-1), (X,)),
    "split_sizes": (lambda x: tf.split(x, [1, 2], axis=1), (X,)),
    "split_sizes_rest": (lambda x: tf.split(x, [1, -1], 1), (X,)),
    "unstack_num": (lambda x: tf.unstack(x, num=2), (X,)),
    "unstack_num_axis": (lambda x: tf.unstack(x, num=4, axis=-1), (X,)),
    "tensordot_pairs": (lambda x: tf.tensordot(x, x, axes=[[1, 2], [1, 2]]), (X,)),
    "tensordot_int": (lambda x, w: tf.tensordot(x, w, axes=1), (X, M.T)),
    "tensordot_matrix_of_unknown_rank": (lambda x, w: tf.tensordot(x, w, 1), (M, M.T)),
    "in_top_k": (lambda p, t: tf.nn.in_top_k(p, t, 2), (M, LABELS)),
    "sparse_softmax_xent": (
        lambda p, t: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=t, logits=p),
        (M, LABELS),
    ),
    "losses_sparse_softmax_xent": (
        lambda p, t: tf.losses.sparse_softmax_cross_entropy(labels=t, logits=p),
        (M, LABELS),
    ),
    "softmax_xent": (
        lambda p, y: tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=p),
        (M, np.eye(4, dtype=np.float32)[LABELS]),
    ),
    "accuracy_idiom": (
        lambda p, y: tf.reduce_mean(tf.cast(tf.equal(tf.argmax(p, 1), tf.argmax(y, 1)), "float")),
        (M, np.eye(4, dtype=np.float32)[LABELS]),
    ),
    "manual_cross_entropy": (
        lambda p, y: tf.reduce_mean(
            -tf.reduce_sum(y * tf.log(tf.nn.softmax(p)), reduction_indices=[1])
        ),
        (M, np.eye(4, dtype=np.float32)[LABELS]),
    ),
    "top_k": (lambda x: tf.nn.top_k(x, 2).values, (X,)),
    "moments": (lambda x: tf.nn.moments(x, axes=[0]), (X,)),
    "l2_normalize": (lambda x: tf.nn.l2_normalize(x, axis=-1), (X,)),
    "log_softmax": (lambda x: tf.nn.log_softmax(x), (X,)),
    "reduce_logsumexp": (lambda x: tf.reduce_logsumexp(x, axis=1), (X,)),
    "concat_negative_axis": (lambda x: tf.concat([x, x], -1), (X,)),
    "stack": (lambda x: tf.stack([x, x], axis=1), (X,)),
    "transpose": (lambda x: tf.transpose(x), (X,)),
    "expand_squeeze": (lambda x: tf.squeeze(tf.expand_dims(x, -1)), (X,)),
    "gather_axis": (lambda x: tf.gather(x, [0, 2], axis=1), (X,)),
    "tile_pad": (lambda x: tf.pad(tf.tile(x, [1, 2, 1]), [[0, 0], [1, 1], [0, 0]]), (X,)),
    "slice_and_getitem": (lambda x: tf.slice(x, [0, 1, 0], [1, 2, -1]) + x[:1, 1:, ...], (X,)),
    "matmul_transposed": (lambda x: tf.matmul(x, x, transpose_b=True), (X,)),
    "einsum": (lambda x: tf.einsum("ijk,ijk->ij", x, x), (X,)),
    "bias_add": (lambda x: tf.nn.bias_add(x, tf.constant([1.0, 2, 3, 4])), (X,)),
    "one_hot": (lambda t: tf.one_hot(t, 4), (LABELS,)),
    "layers_flatten": (lambda x: tf.layers.flatten(x), (X,)),
    "reshape_batch_minus_one": (lambda x: tf.reshape(x, [tf.shape(x)[0], -1]) * 2.0, (X,)),
    "nce_loss_inputs": (
        lambda e, lab: tf.nn.nce_loss(
            tf.reshape(tf.range(40, dtype=tf.float32) / 40, [10, 4]),
            tf.zeros([10]),
            lab,
            e,
            num_sampled=3,
            num_classes=10,
        ),
        (M, np.array([[1], [2], [3]], np.int64)),
    ),
}


def _run(build, feeds, shaped, grads=False):
    """The call's outputs (or, with ``grads``, the gradients of the sum of their squares
    with respect to every float input)."""
    tf.reset_default_graph()
    tf.set_random_seed(3)
    phs = [
        tf.placeholder(tf.as_dtype(f.dtype), f.shape if shaped else None, name=f"in{i}")
        for i, f in enumerate(feeds)
    ]
    out = build(*phs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    if grads:
        loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in outs if o.dtype.is_floating])
        outs = [
            g for g in tf.gradients(loss, [p for p in phs if p.dtype.is_floating]) if g is not None
        ]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(outs, dict(zip(phs, feeds)))


@pytest.mark.parametrize("name", list(CALLS))
def test_tf1_call_on_unshaped_placeholders_runs_as_on_shaped_ones(name):
    build, feeds = CALLS[name]
    got = _run(build, feeds, shaped=False)
    want = _run(build, feeds, shaped=True)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


NOT_DIFFERENTIABLE = {"in_top_k", "accuracy_idiom", "one_hot", "top_k", "nce_loss_inputs"}


@pytest.mark.parametrize("name", [n for n in CALLS if n not in NOT_DIFFERENTIABLE])
def test_gradients_on_unshaped_placeholders_equal_those_on_shaped_ones(name):
    """The broadcasts of ``x * reduce_sum(x, -1, keepdims=True)`` (softmax's) are undone
    in the gradient although both ranks were unknown when it was built."""
    build, feeds = CALLS[name]
    got = _run(build, feeds, shaped=False, grads=True)
    want = _run(build, feeds, shaped=True, grads=True)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_values_of_the_unknown_rank_paths():
    """Checked against numpy, not only against the shaped build."""
    split = _run(CALLS["split_sizes_rest"][0], (X,), shaped=False)
    np.testing.assert_array_equal(split[1], X[:, 1:])
    td = _run(CALLS["tensordot_pairs"][0], (X,), shaped=False)[0]
    np.testing.assert_allclose(td, np.tensordot(X, X, axes=[[1, 2], [1, 2]]), rtol=1e-5)
    top = _run(CALLS["in_top_k"][0], (M, LABELS), shaped=False)[0]
    ranks = (M > M[np.arange(3), LABELS][:, None]).sum(1)
    np.testing.assert_array_equal(top, ranks < 2)
    xent = _run(CALLS["sparse_softmax_xent"][0], (M, LABELS), shaped=False)[0]
    logp = M - np.log(np.exp(M).sum(1, keepdims=True))
    np.testing.assert_allclose(xent, -logp[np.arange(3), LABELS], rtol=1e-5)


def test_unknown_rank_gradients_through_tensordot_and_sparse_xent():
    tf.reset_default_graph()
    x, lab = tf.placeholder(tf.float32), tf.placeholder(tf.int32)
    w = tf.Variable(np.ones((4, 4), np.float32) * 0.1)
    logits = tf.tensordot(x, w, axes=1)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=logits))
    gx, gw = tf.gradients(loss, [x, w])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        gx_v, gw_v = sess.run([gx, gw], {x: M, lab: LABELS})
    p = np.exp(M @ (np.ones((4, 4)) * 0.1))
    p /= p.sum(1, keepdims=True)
    d = (p - np.eye(4)[LABELS]) / 3
    np.testing.assert_allclose(gw_v, M.T @ d, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gx_v, d @ (np.ones((4, 4)) * 0.1).T, rtol=1e-5, atol=1e-7)


def test_run_time_errors_name_the_fed_shape():
    """A fed shape the call cannot take is a located error, as TF raises at run time."""
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32)
    parts = tf.split(x, 3, axis=1)  # line of the split
    with tf.Session() as sess, pytest.raises(ShapeError, match="not divisible by 3"):
        sess.run(parts, {x: np.zeros((2, 4), np.float32)})
    lab = tf.placeholder(tf.int32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=x)
    with tf.Session() as sess, pytest.raises(Exception, match=r"outside the valid range \[0, 4\)"):
        sess.run(loss, {x: M, lab: np.array([0, 4, 1], np.int32)})


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda x: tf.unstack(x), "cannot infer num"),
        (lambda x: tf.layers.dense(x, 3), "last dimension"),
        (lambda x: tf.layers.batch_normalization(x), "undefined rank"),
        (lambda x: tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(3), x, dtype=tf.float32), "rank"),
    ],
)
def test_what_tf1_refuses_on_unknown_rank_is_a_located_shape_error(build, match):
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32)
    with pytest.raises(ShapeError, match=match) as info:
        build(x)
    assert "test_unknown_rank_tf1_calls.py" in str(info.value)
