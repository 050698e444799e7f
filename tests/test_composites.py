"""The public functions that are not a single registry op — composites and wrappers built
in the frontend (tensordot, logsumexp, stack, slice…) — checked, static shape and value,
against numpy."""

import numpy as np
import pytest

import graphc as gc

RNG = np.random.default_rng(1)
X = RNG.standard_normal((4, 5))
A = RNG.standard_normal((2, 3, 4))
B = RNG.standard_normal((4, 3, 5))

CASES = {
    "clip_by_value": (
        lambda: gc.clip_by_value(gc.constant(X), -0.5, 0.5),
        lambda: np.clip(X, -0.5, 0.5),
    ),
    "logsumexp_axis": (
        lambda: gc.reduce_logsumexp(gc.constant(X), axis=1),
        lambda: np.log(np.exp(X).sum(1)),
    ),
    "logsumexp_all": (lambda: gc.reduce_logsumexp(gc.constant(X)), lambda: np.log(np.exp(X).sum())),
    "logsumexp_keepdims": (
        lambda: gc.reduce_logsumexp(gc.constant(X), axis=0, keepdims=True),
        lambda: np.log(np.exp(X).sum(0, keepdims=True)),
    ),
    "tensordot_axes": (
        lambda: gc.tensordot(A, B, axes=[[1, 2], [1, 0]]),
        lambda: np.tensordot(A, B, axes=[[1, 2], [1, 0]]),
    ),
    "tensordot_int": (lambda: gc.tensordot(X, X.T, 1), lambda: X @ X.T),
    "einsum_explicit": (lambda: gc.einsum("ij,kj->ik", X, X), lambda: X @ X.T),
    "einsum_implicit": (lambda: gc.einsum("ij,jk", X, X.T), lambda: X @ X.T),
    "einsum_batch": (
        lambda: gc.einsum("bij,bjk->bik", A, A.transpose(0, 2, 1)),
        lambda: A @ A.transpose(0, 2, 1),
    ),
    "matmul_batched_transposed": (
        lambda: gc.matmul(A, A, transpose_b=True),
        lambda: A @ A.transpose(0, 2, 1),
    ),
    "stack": (lambda: gc.stack([X, X * 2], axis=1), lambda: np.stack([X, X * 2], 1)),
    "unstack": (lambda: gc.unstack(gc.constant(X), axis=1)[2], lambda: X[:, 2]),
    "split_sizes": (lambda: gc.split(gc.constant(X), [2, 3], axis=1)[1], lambda: X[:, 2:]),
    "split_equal": (lambda: gc.split(gc.constant(X), 2, axis=0)[1], lambda: X[2:]),
    "slice": (lambda: gc.slice(gc.constant(X), [1, 2], [2, -1]), lambda: X[1:3, 2:]),
    "strided_slice": (
        lambda: gc.strided_slice(gc.constant(X), [0, 0], [4, 5], [2, 2]),
        lambda: X[::2, ::2],
    ),
    "one_hot": (lambda: gc.one_hot([0, 2], 3), lambda: np.eye(3, dtype=np.float32)[[0, 2]]),
    "one_hot_axis0": (
        lambda: gc.one_hot([0, 2], 3, axis=0),
        lambda: np.eye(3, dtype=np.float32)[[0, 2]].T,
    ),
    "pad_reflect": (
        lambda: gc.pad(X, [[1, 1], [2, 0]], "REFLECT"),
        lambda: np.pad(X, [[1, 1], [2, 0]], mode="reflect"),
    ),
    "pad_symmetric": (
        lambda: gc.pad(X, [[1, 1], [2, 0]], "SYMMETRIC"),
        lambda: np.pad(X, [[1, 1], [2, 0]], mode="symmetric"),
    ),
    "pad_constant": (
        lambda: gc.pad(X, [[1, 1], [2, 0]], constant_values=3),
        lambda: np.pad(X, [[1, 1], [2, 0]], constant_values=3),
    ),
    "count_nonzero": (
        lambda: gc.count_nonzero(gc.constant([[0, 1], [2, 0]]), axis=1),
        lambda: np.array([1, 1]),
    ),
    "argmax_default_axis0": (lambda: gc.argmax(X), lambda: X.argmax(0)),
    "argmin_last": (lambda: gc.argmin(X, -1), lambda: X.argmin(-1)),
    "expand_dims_negative": (lambda: gc.expand_dims(X, -1), lambda: X[..., None]),
    "squeeze_all": (lambda: gc.squeeze(np.ones((1, 3, 1))), lambda: np.ones(3)),
    "gather_axis1": (lambda: gc.gather(X, [[3, 0]], axis=1), lambda: X[:, [[3, 0]]]),
    "shape": (lambda: gc.shape(X), lambda: np.array([4, 5], np.int32)),
    "size": (lambda: gc.size(X), lambda: np.int32(20)),
    "rank": (lambda: gc.rank(X), lambda: np.int32(2)),
    "eye": (lambda: gc.eye(2, 3), lambda: np.eye(2, 3, dtype=np.float32)),
    "range": (lambda: gc.range(2, 10, 3), lambda: np.arange(2, 10, 3, dtype=np.int32)),
    "range_float": (lambda: gc.range(0.0, 1.0, 0.25), lambda: np.arange(0, 1, 0.25, np.float32)),
    "fill": (lambda: gc.fill([2, 2], 7), lambda: np.full((2, 2), 7, np.int32)),
    "constant_broadcast": (
        lambda: gc.constant(0.5, shape=(2, 2)),
        lambda: np.full((2, 2), 0.5, np.float32),
    ),
    "constant_reshaped": (
        lambda: gc.constant([1, 2, 3, 4], shape=(2, 2)),
        lambda: np.array([[1, 2], [3, 4]], np.int32),
    ),
    "cast_bool": (
        lambda: gc.cast(gc.constant(X) > 0, gc.float32),
        lambda: (X > 0).astype(np.float32),
    ),
    "where_weak": (lambda: gc.where(gc.constant(X) > 0, X, 0.0), lambda: np.where(X > 0, X, 0.0)),
    "int_divide_is_float64": (lambda: gc.constant([3, 4]) / 2, lambda: np.array([1.5, 2.0])),
    "int_floordiv": (lambda: gc.constant([-3, 4]) // 2, lambda: np.array([-2, 2], np.int32)),
    "int_mod": (lambda: gc.constant([-3, 4]) % 3, lambda: np.array([0, 1], np.int32)),
    "float_mod_sign": (
        lambda: gc.constant([-3.5, 4.0]) % 3.0,
        lambda: np.mod(np.array([-3.5, 4.0], np.float32), np.float32(3)),
    ),
    "uint8_wraps": (
        lambda: gc.constant(np.array([250], np.uint8)) + 10,
        lambda: np.array([4], np.uint8),
    ),
    "round_half_even": (
        lambda: gc.round(gc.constant([0.5, 1.5, 2.5, -0.5])),
        lambda: np.array([0.0, 2.0, 2.0, -0.0], np.float32),
    ),
    "mean_of_ints_truncates": (lambda: gc.reduce_mean(gc.constant([1, 2])), lambda: np.int32(1)),
    "ones_like_dtype": (lambda: gc.ones_like(X, dtype=gc.int32), lambda: np.ones((4, 5), np.int32)),
    "transpose_default": (lambda: gc.transpose(A), lambda: A.transpose()),
    "matrix_transpose": (lambda: gc.matrix_transpose(A), lambda: A.transpose(0, 2, 1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_numpy(name):
    build, reference = CASES[name]
    t = build()
    want = np.asarray(reference())
    assert tuple(t.shape) == want.shape
    with gc.Session() as sess:
        got = np.asarray(sess.run(t))
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_reshape_infers_minus_one_statically_and_at_run_time():
    x = gc.placeholder(gc.float32, shape=(None, 6))
    y = gc.reshape(x, (-1, 3))
    assert y.shape == (None, 3)
    assert gc.reshape(gc.range(12), (3, -1)).shape == (3, 4)
    with gc.Session() as sess:
        assert sess.run(y, {x: np.zeros((5, 6))}).shape == (10, 3)
    with pytest.raises(gc.ShapeError, match="at most one"):
        gc.reshape(x, (-1, -1))


def test_static_broadcast_shapes():
    a = gc.placeholder(gc.float32, shape=(None, 1, 5))
    b = gc.placeholder(gc.float32, shape=(3, 1))
    assert (a + b).shape == (None, 3, 5)
    assert (a * 2).shape == (None, 1, 5)
    assert gc.reduce_sum(a + b, axis=1).shape == (None, 5)
    assert gc.reduce_mean(a, axis=-1, keepdims=True).shape == (None, 1, 1)
    assert gc.matmul(
        gc.placeholder(gc.float32, (7, None, 2, 3)), gc.placeholder(gc.float32, (3, 4))
    ).shape == (7, None, 2, 4)
