"""Winograd convolutions (backends/winograd_cpu) against the float64 result and the direct
compiled loops: the transform matrices are exact, ``conv_cpu`` sends 3x3 and 5x5 stride-1
convolutions of 16 channels or more (5x5 forward and input gradient: at most 64 input
channels) here and nothing else, and the error stays within a stated bound for odd image
sizes, SAME and VALID, channel counts off the 16-lane grid and batches larger than one
padded slice."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from graphc.backends import conv_cpu, host_compile, winograd_cpu
from graphc.ops import conv as C

pytestmark = pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)


@pytest.fixture(scope="module")
def lib(build_libraries):
    assert build_libraries(conv_cpu, winograd_cpu)


@pytest.fixture
def direct(monkeypatch):
    """Run the body with the direct compiled loops only (Winograd unloaded)."""

    def run(fn, *args):
        with monkeypatch.context() as m:
            m.setitem(winograd_cpu._state, "fn", None)
            return fn(*args)

    return run


@pytest.mark.parametrize("m,r", [(2, 5), (2, 3), (3, 2), (2, 2)])
def test_the_transforms_compute_a_correlation_exactly(m, r):
    # y = A^T [(G w) * (B^T d)] is bilinear in d and w: exact on every pair of unit vectors,
    # it is exact everywhere
    at, g, bt = winograd_cpu.matrices(m, r)
    a = m + r - 1
    for dl in range(a):
        for wk in range(r):
            gw = [g[j][wk] for j in range(a)]
            bd = [bt[j][dl] for j in range(a)]
            y = [sum(at[i][j] * gw[j] * bd[j] for j in range(a)) for i in range(m)]
            assert y == [Fraction(int(dl == i + wk)) for i in range(m)]


def _close(got, want):
    """The tolerance of tests/test_conv_cpu.py: float32 rounding against the reference."""
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale)


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


def _bounded(wino, direct, exact, factor):
    """Winograd's error against the float64 result is at most ``factor`` times the direct
    float32 loop's, in the largest and in the rms element error."""
    err, base = np.abs(wino - exact), np.abs(direct - exact)
    assert err.max() <= factor * base.max(), (err.max(), base.max())
    assert _rms(wino - exact) <= factor * _rms(direct - exact)


# F(2x2, 5x5) on the points 0, +-1, 1/2, -2 measured 1.1-4.8x (max) and 1.7-5.7x (rms) the
# direct loop's error over these shapes: its transformed values are up to a few times larger
# than the outputs they cancel into, and each is rounded to float32 once more than a direct
# sum's terms. F(2x2, 3x3) and the filter gradient's blocks (F(3, 2) and F(2, 2)) use the
# points 0, +-1 only (transforms of 0 and +-1) and sum fewer terms per accumulator than the
# direct loop: 0.1-2x measured.
FACTOR = {"conv 5": 8, "conv 3": 3, "filter": 3}


# (input NHWC, filter HWIO, padding): the benchmark's layer (batch cut to 8), H and W not
# multiples of the 2x2 tile, VALID, channels off the 16-lane grid (in and out), a filter
# larger than the image, and 90x90 images of 64 channels: each padded slice holds one image
CASES = [
    ((8, 14, 14, 32), (5, 5, 32, 64), "SAME"),
    ((2, 9, 11, 17), (5, 5, 17, 70), "SAME"),
    ((2, 9, 11, 20), (5, 5, 20, 18), "VALID"),
    ((3, 7, 5, 16), (5, 5, 16, 33), "VALID"),
    ((1, 4, 4, 16), (5, 5, 16, 16), "SAME"),
    ((3, 90, 90, 64), (5, 5, 64, 16), "SAME"),
    ((8, 14, 14, 32), (3, 3, 32, 64), "SAME"),
    ((2, 9, 11, 17), (3, 3, 17, 70), "SAME"),
    ((2, 9, 11, 20), (3, 3, 20, 18), "VALID"),
    ((2, 10, 10, 256), (3, 3, 256, 16), "SAME"),  # no bound on a 3x3's channels
]


@pytest.mark.parametrize("xs,ws,p", CASES)
def test_winograd_convolutions_stay_within_the_bound(lib, direct, xs, ws, p):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    assert winograd_cpu.applies(x, w)
    exact = C._conv2d(x.astype(np.float64), w.astype(np.float64), (1, 1), p)
    got = conv_cpu.conv2d(x, w, (1, 1), p)
    _close(got, C._conv2d(x, w, (1, 1), p))
    factor = FACTOR[f"conv {ws[0]}"]
    _bounded(got, direct(conv_cpu.conv2d, x, w, (1, 1), p), exact, factor)

    g = rng.standard_normal(exact.shape).astype(np.float32)
    exact = C._conv2d_backprop_input(g.astype(np.float64), w.astype(np.float64), xs, (1, 1), p)
    got = conv_cpu.conv2d_backprop_input(g, w, xs, (1, 1), p)
    _close(got, C._conv2d_backprop_input(g, w, xs, (1, 1), p))
    _bounded(got, direct(conv_cpu.conv2d_backprop_input, g, w, xs, (1, 1), p), exact, factor)

    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    exact = C._conv2d_backprop_filter(x64, g64, ws, (1, 1), p)
    got = conv_cpu.conv2d_backprop_filter(x, g, ws, (1, 1), p)
    _close(got, C._conv2d_backprop_filter(x, g, ws, (1, 1), p))
    want = direct(conv_cpu.conv2d_backprop_filter, x, g, ws, (1, 1), p)
    _bounded(got, want, exact, FACTOR["filter"])


def test_only_3x3_and_5x5_stride_1_convolutions_of_16_channels_or_more_take_it(lib):
    x16, x8 = np.zeros((1, 8, 8, 16), np.float32), np.zeros((1, 8, 8, 8), np.float32)
    x96, g = np.zeros((1, 8, 8, 96), np.float32), np.zeros((1, 8, 8, 16), np.float32)
    assert not winograd_cpu.applies(x96, np.zeros((5, 5, 96, 16), np.float32))  # many inputs
    assert winograd_cpu.applies_filter_grad(x96, g, (5, 5, 96, 16))  # as accurate as direct
    assert not winograd_cpu.applies_filter_grad(x8, g, (5, 5, 8, 16))
    assert not winograd_cpu.applies_filter_grad(x16, g.astype(np.float64), (5, 5, 16, 16))
    assert winograd_cpu.applies(x16, np.zeros((5, 5, 16, 16), np.float32))
    assert not winograd_cpu.applies(x8, np.zeros((5, 5, 8, 16), np.float32))  # few inputs
    assert not winograd_cpu.applies(x16, np.zeros((5, 5, 16, 8), np.float32))  # few outputs
    assert winograd_cpu.applies(x96, np.zeros((3, 3, 96, 16), np.float32))
    assert not winograd_cpu.applies(x16, np.zeros((7, 7, 16, 16), np.float32))
    assert not winograd_cpu.applies_filter_grad(x16, g, (7, 7, 16, 16))
    assert not winograd_cpu.applies(x16, np.zeros((5, 3, 16, 16), np.float32))
    assert not winograd_cpu.applies(x16.astype(np.float64), np.zeros((5, 5, 16, 16)))


def test_a_strided_convolution_keeps_the_direct_loop(lib, direct):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 12, 12, 16)).astype(np.float32)
    w = rng.standard_normal((5, 5, 16, 16)).astype(np.float32)
    got = conv_cpu.conv2d(x, w, (2, 2), "SAME")
    np.testing.assert_array_equal(got, direct(conv_cpu.conv2d, x, w, (2, 2), "SAME"))
    g = rng.standard_normal(got.shape).astype(np.float32)
    np.testing.assert_array_equal(
        conv_cpu.conv2d_backprop_filter(x, g, w.shape, (2, 2), "SAME"),
        direct(conv_cpu.conv2d_backprop_filter, x, g, w.shape, (2, 2), "SAME"),
    )


def test_without_the_library_nothing_takes_it(lib, monkeypatch):
    monkeypatch.setitem(winograd_cpu._state, "fn", None)
    x = np.zeros((1, 8, 8, 16), np.float32)
    assert not winograd_cpu.applies(x, np.zeros((5, 5, 16, 16), np.float32))
    assert not winograd_cpu.applies_filter_grad(x, x, (5, 5, 16, 16))
