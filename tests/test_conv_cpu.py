"""The compiled convolution and max-pool kernels (backends/conv_cpu) against the reference
kernels of ops/conv.py: the same values to float rounding for every stride, padding, odd
channel count and batch slicing, pooling exact (NaN, -inf and ties included), the fallbacks
(float64, strided input gradients) identical, and a CNN trained through a Session with and
without compiled kernels."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends import conv_cpu, host_compile, numpy_backend
from graphc.ops import conv as C

pytestmark = pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)


@pytest.fixture(scope="module")
def lib(build_libraries):
    """The library, built synchronously into a cache of this test session."""
    assert build_libraries(conv_cpu), "the convolution library did not load"


def _close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale)


# (input NHWC, filter HWIO, strides, padding): the CNN's layers, strides with asymmetric SAME
# padding, VALID with remainders, output channels off the 16-lane grid and above 64 (two
# channel groups), 1x1 and 2x3 filters, one input channel
CONV_CASES = [
    ((2, 28, 28, 1), (5, 5, 1, 32), (1, 1), "SAME"),
    ((3, 14, 14, 32), (5, 5, 32, 64), (1, 1), "SAME"),
    ((3, 14, 14, 32), (3, 3, 32, 64), (1, 1), "SAME"),
    ((2, 9, 9, 17), (3, 3, 17, 70), (1, 1), "SAME"),
    ((2, 9, 8, 16), (2, 3, 16, 130), (1, 1), "VALID"),
    ((2, 6, 6, 2), (3, 3, 2, 3), (2, 2), "SAME"),
    ((1, 7, 6, 20), (3, 2, 20, 5), (2, 1), "VALID"),
    ((3, 5, 5, 24), (1, 1, 24, 48), (1, 1), "SAME"),
    ((1, 4, 4, 16), (5, 5, 16, 16), (1, 1), "SAME"),  # the filter is larger than the image
]


@pytest.mark.parametrize("xs,ws,s,p", CONV_CASES)
def test_convolutions_match_the_reference(lib, xs, ws, s, p):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    want = C._conv2d(x, w, s, p)
    _close(conv_cpu.conv2d(x, w, s, p), want)
    g = rng.standard_normal(want.shape).astype(np.float32)
    _close(
        conv_cpu.conv2d_backprop_filter(x, g, ws, s, p),
        C._conv2d_backprop_filter(x, g, ws, s, p),
    )
    _close(
        conv_cpu.conv2d_backprop_input(g, w, xs, s, p),
        C._conv2d_backprop_input(g, w, xs, s, p),
    )


def test_batches_larger_than_one_padded_slice(lib):
    # 90 images of 10x10x256 padded: the kernels pad about 4 MiB of images at a time
    rng = np.random.default_rng(1)
    x = rng.standard_normal((90, 8, 8, 256)).astype(np.float32)
    w = rng.standard_normal((3, 3, 256, 16)).astype(np.float32)
    want = C._conv2d(x, w, (1, 1), "SAME")
    _close(conv_cpu.conv2d(x, w, (1, 1), "SAME"), want)
    g = rng.standard_normal(want.shape).astype(np.float32)
    _close(
        conv_cpu.conv2d_backprop_filter(x, g, w.shape, (1, 1), "SAME"),
        C._conv2d_backprop_filter(x, g, w.shape, (1, 1), "SAME"),
    )


def test_out_buffers_and_strided_inputs(lib):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 10, 10, 32)).astype(np.float32)[:, ::2, ::2]  # a strided view
    w = rng.standard_normal((3, 3, 32, 16)).astype(np.float32)
    want = C._conv2d(np.ascontiguousarray(x), w, (1, 1), "SAME")
    out = np.full(want.shape, np.nan, np.float32)
    assert conv_cpu.conv2d(x, w, (1, 1), "SAME", out=out) is out
    _close(out, want)
    wide = np.full(want.shape[:3] + (32,), np.nan, np.float32)
    conv_cpu.conv2d(x, w, (1, 1), "SAME", out=wide[..., :16])  # not contiguous
    _close(wide[..., :16], want)
    assert np.isnan(wide[..., 16:]).all()


def test_float64_and_strided_input_gradients_take_the_reference_kernels(lib):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 6, 6, 16)), rng.standard_normal((3, 3, 16, 8))
    np.testing.assert_array_equal(
        conv_cpu.conv2d(x, w, (1, 1), "SAME"), C._conv2d(x, w, (1, 1), "SAME")
    )
    g = rng.standard_normal((2, 3, 3, 8)).astype(np.float32)
    w32 = w.astype(np.float32)
    np.testing.assert_array_equal(
        conv_cpu.conv2d_backprop_input(g, w32, x.shape, (2, 2), "SAME"),
        C._conv2d_backprop_input(g, w32, x.shape, (2, 2), "SAME"),
    )


POOL_CASES = [
    ((4, 28, 28, 32), (2, 2), (2, 2), "SAME"),
    ((2, 7, 7, 3), (2, 2), (2, 2), "SAME"),  # padding at the bottom and right edges
    ((2, 9, 9, 3), (3, 3), (2, 2), "SAME"),  # overlapping windows
    ((1, 6, 4, 2), (2, 2), (2, 2), "VALID"),
    ((1, 4, 5, 2), (2, 3), (1, 1), "SAME"),
    ((2, 5, 6, 17), (2, 2), (1, 1), "VALID"),  # 2x2 windows that overlap
    # 2x2 windows tiling the image, 16k channels (the vector path), and 40 channels (not)
    ((3, 14, 14, 64), (2, 2), (2, 2), "VALID"),
    ((2, 8, 6, 16), (2, 2), (2, 2), "SAME"),
    ((2, 8, 8, 40), (2, 2), (2, 2), "SAME"),
]


def test_max_pool_gradient_of_signed_zeros(lib):
    # a -0.0 gradient lands as +0.0, as the reference's sum into zeros gives
    rng = np.random.default_rng(7)
    for xs in [(2, 8, 8, 32), (2, 8, 8, 5)]:
        x = rng.standard_normal(xs).astype(np.float32)
        g = np.full((xs[0], 4, 4, xs[3]), -0.0, np.float32)
        got = conv_cpu.max_pool_grad(x, g, (2, 2), (2, 2), "VALID")
        ref = C._max_pool_grad(x, g, (2, 2), (2, 2), "VALID")
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


@pytest.mark.parametrize("xs,k,s,p", POOL_CASES)
@pytest.mark.parametrize("special", [None, "ties", "nan_inf"])
def test_max_pool_and_its_gradient_match_the_reference(lib, xs, k, s, p, special):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(xs).astype(np.float32)
    if special == "ties":
        x = rng.integers(0, 3, xs).astype(np.float32)  # the first of equal cells wins
    want = C._max_pool(x, k, s, p)
    g = rng.standard_normal(want.shape).astype(np.float32)
    if special == "nan_inf":
        x[0, 1, 1, 0], x[0, 0, 0, 1], x[0, 2, 2, 0] = np.nan, -np.inf, np.nan
        x[-1, :3, :3, -1] = -np.inf  # a window of -inf only
        g[0, 0, 0, 0] = np.inf
        want = C._max_pool(x, k, s, p)
    np.testing.assert_array_equal(conv_cpu.max_pool(x, k, s, p), want)
    got, ref = conv_cpu.max_pool_grad(x, g, k, s, p), C._max_pool_grad(x, g, k, s, p)
    np.testing.assert_array_equal(got != 0, ref != 0)  # the same winners
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)  # overlaps: sums reordered


def _cnn(batch):
    """Two SAME convolutions (5x5 and 3x3), max pools, a dense layer; Adam."""
    rng = np.random.default_rng(5)
    x = gc.placeholder(gc.float32, (None, 12, 12, 1), name="x")
    y = gc.placeholder(gc.float32, (None, 4), name="y")
    w1 = gc.Variable(rng.standard_normal((5, 5, 1, 16)).astype(np.float32) * 0.2)
    w2 = gc.Variable(rng.standard_normal((3, 3, 16, 32)).astype(np.float32) * 0.1)
    w3 = gc.Variable(rng.standard_normal((3 * 3 * 32, 4)).astype(np.float32) * 0.1)
    h = gc.max_pool(gc.nn.relu(gc.conv2d(x, w1, padding="SAME")), 2, 2, "SAME")
    h = gc.max_pool(gc.nn.relu(gc.conv2d(h, w2, padding="SAME")), 2, 2, "SAME")
    logits = gc.matmul(gc.reshape(h, (-1, 3 * 3 * 32)), w3)
    loss = gc.reduce_mean(gc.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = gc.train.AdamOptimizer(0.01).minimize(loss)
    xs = rng.random((batch, 12, 12, 1)).astype(np.float32)
    ys = np.eye(4, dtype=np.float32)[rng.integers(0, 4, batch)]
    return (x, y, train, loss, logits, (w1, w2, w3)), xs, ys


def _train(use_cc, monkeypatch):
    monkeypatch.setattr(numpy_backend, "_USE_CC", use_cc)
    gc.reset_default_graph()
    (x, y, train, loss, logits, ws), xs, ys = _cnn(16)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        losses = [sess.run([train, loss], {x: xs, y: ys})[1] for _ in range(3)]
        test = sess.run(logits, {x: xs[:5]})  # another batch size: a plan of its own
        return losses, test, sess.run(list(ws))


def test_a_cnn_trains_the_same_with_compiled_kernels(lib, monkeypatch):
    want, got = _train(False, monkeypatch), _train(True, monkeypatch)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-3, atol=1e-4)
    for g, w in zip(got[2], want[2], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)
