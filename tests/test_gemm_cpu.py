"""The compiled matrix products (backends/gemm_cpu) against np.matmul: the same values to
float rounding for every layout (plain, a transposed, b transposed, both), shapes off the
register tiles and blocks, NaN/Inf propagation, out buffers (aliasing an input, strided),
the fallbacks (float64, batched, small or wide products) identical, and a dense layer
trained through a Session with and without compiled kernels."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends import gemm_cpu, host_compile, numpy_backend

pytestmark = pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)


@pytest.fixture(scope="module")
def lib(build_libraries):
    """The library, built synchronously into a cache of this test session."""
    assert build_libraries(gemm_cpu), "the matrix-product library did not load"


@pytest.fixture
def always(monkeypatch):
    """Every 2-D float32 product the kernels can take runs compiled, however small."""
    monkeypatch.setattr(gemm_cpu, "NN_MIN_MACS", 0)
    monkeypatch.setattr(gemm_cpu, "T_MIN_MACS", 0)
    monkeypatch.setattr(gemm_cpu, "T_MIN_K", 0)
    monkeypatch.setattr(gemm_cpu, "T_MIN_N", 0)
    monkeypatch.setattr(gemm_cpu, "NARROW", 1 << 30)


def _close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale * np.sqrt(want.size))


# (M, K, N): rows off the 6/8/12/16-row tiles, columns off the 16-lane grid and the 64-column
# strips, K across several 512-row blocks, one row, one column, K = 1
SHAPES = [
    (64, 3136 // 4, 1024 // 4),
    (7, 33, 70),
    (13, 1100, 17),
    (1, 5, 1),
    (5, 1, 130),
    (100, 64, 48),
    (31, 600, 95),
    (200, 20, 33),
]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_products_match_numpy(lib, always, m, k, n, ta, tb):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    want = np.matmul(a.T if ta else a, b.T if tb else b)
    _close(gemm_cpu.matmul(a, b, ta, tb), want)
    out = np.full(want.shape, np.nan, np.float32)
    assert gemm_cpu.matmul(a, b, ta, tb, out=out) is out
    _close(out, want)


def test_the_dense_layer_shapes_take_the_compiled_loops(lib):
    x = np.ones((64, 3136), np.float32)
    w = np.ones((3136, 1024), np.float32)
    g = np.ones((64, 1024), np.float32)
    assert gemm_cpu.plan(x, w) == "nn"  # forward
    assert gemm_cpu.plan(g, w.T) == "t"  # the input gradient
    assert gemm_cpu.plan(x.T, g) == "nn"  # the weight gradient
    # a test set's batch through the same layer: b's rows 4 KiB apart
    assert gemm_cpu.plan(np.ones((2000, 3136), np.float32), w) == "nn"
    # shapes where OpenBLAS is as fast keep np.matmul: wide, small, batched, float64
    assert gemm_cpu.plan(np.ones((512, 512), np.float32), np.ones((512, 512), np.float32)) is None
    assert gemm_cpu.plan(np.ones((64, 100), np.float32), np.ones((100, 10), np.float32)) is None
    assert gemm_cpu.plan(x.astype(np.float64), w.astype(np.float64)) is None
    # an LSTM's input gradient (few columns): OpenBLAS
    gates, wh = np.ones((128, 512), np.float32), np.ones((128, 512), np.float32)
    assert gemm_cpu.plan(gates, wh.T) is None
    assert gemm_cpu.plan(np.ones((2, 64, 3136), np.float32), w) is None
    _close(gemm_cpu.matmul(g, w, transpose_b=True), np.matmul(g, w.T))


def test_nan_and_inf_propagate_as_in_numpy(lib, always):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((9, 40)).astype(np.float32)
    b = rng.standard_normal((40, 70)).astype(np.float32)
    a[2, 5] = np.nan
    a[4, 7] = np.inf
    b[3, 20] = -np.inf
    b[:, 33] = 0.0
    for ta, tb in [(False, False), (False, True)]:
        aa = np.ascontiguousarray(a.T) if ta else a
        bb = np.ascontiguousarray(b.T) if tb else b
        got = gemm_cpu.matmul(aa, bb, ta, tb)
        with np.errstate(invalid="ignore"):
            want = a @ b
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-5, atol=1e-4)


def test_out_buffers_aliasing_or_strided(lib, always):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((20, 20)).astype(np.float32)
    b = rng.standard_normal((20, 20)).astype(np.float32)
    want = a @ b
    got = gemm_cpu.matmul(a, b, out=a)  # the output is an input: computed aside, copied in
    _close(got, want)
    _close(a, want)
    big = np.zeros((20, 40), np.float32)
    a = rng.standard_normal((20, 20)).astype(np.float32)
    gemm_cpu.matmul(a, b, out=big[:, ::2])  # a strided output
    _close(big[:, ::2], a @ b)
    assert not big[:, 1::2].any()
    gemm_cpu.matmul(a, b, out=big[:, 5:25])  # rows 40 apart
    _close(big[:, 5:25], a @ b)
    # views with negative or unaligned strides as operands
    _close(gemm_cpu.matmul(a[::-1], b), a[::-1] @ b)
    _close(gemm_cpu.matmul(a, b[:, ::-1]), a @ b[:, ::-1])
    _close(gemm_cpu.matmul(a[:, ::3], b[::3]), a[:, ::3] @ b[::3])


def test_empty_products(lib, always):
    a, b = np.ones((4, 0), np.float32), np.ones((0, 5), np.float32)
    np.testing.assert_array_equal(gemm_cpu.matmul(a, b), np.zeros((4, 5), np.float32))
    out = np.full((4, 5), 7.0, np.float32)
    gemm_cpu.matmul(a, b, out=out)
    np.testing.assert_array_equal(out, 0.0)


def test_float64_and_batched_take_numpy(lib, always):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((30, 40)), rng.standard_normal((40, 50))
    np.testing.assert_array_equal(gemm_cpu.matmul(a, b), np.matmul(a, b))
    a3 = rng.standard_normal((2, 30, 40)).astype(np.float32)
    b3 = rng.standard_normal((2, 50, 40)).astype(np.float32)
    np.testing.assert_array_equal(
        gemm_cpu.matmul(a3, b3, transpose_b=True), np.matmul(a3, np.swapaxes(b3, 1, 2))
    )


def _dense(use_cc, monkeypatch):
    monkeypatch.setattr(numpy_backend, "_USE_CC", use_cc)
    gc.reset_default_graph()
    rng = np.random.default_rng(6)
    x = gc.placeholder(gc.float32, (None, 300), name="x")
    y = gc.placeholder(gc.float32, (None, 10), name="y")
    w1 = gc.Variable(rng.standard_normal((300, 200)).astype(np.float32) * 0.05)
    w2 = gc.Variable(rng.standard_normal((200, 10)).astype(np.float32) * 0.1)
    h = gc.nn.relu(gc.matmul(x, w1))
    logits = gc.matmul(h, w2)
    loss = gc.reduce_mean(gc.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = gc.train.AdamOptimizer(0.01).minimize(loss)
    xs = rng.random((36, 300)).astype(np.float32)
    ys = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 36)]
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        losses = [sess.run([train, loss], {x: xs, y: ys})[1] for _ in range(3)]
        return losses, sess.run([w1, w2])


def test_a_dense_layer_trains_the_same_with_compiled_products(lib, always, monkeypatch):
    want, got = _dense(False, monkeypatch), _dense(True, monkeypatch)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
