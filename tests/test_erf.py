"""erf and gelu: the vectorized numpy kernel against math.erf in every float dtype, over a
dense grid with its tails, negatives, subnormals, signed zeros, infinities and NaN; the
gradient and the session path agree with it. (Speed: benchmarks/erf.py.)"""

import math

import numpy as np
import pytest

import graphc as gc
from graphc.ops.elementwise import _erf


def _grid(dtype):
    fi = np.finfo(dtype)
    tiny = float(fi.smallest_subnormal)
    pos = np.concatenate(
        [
            np.linspace(0, 7, 70001),
            np.geomspace(tiny, 1e-2, 3000),  # subnormals up through the linear regime
            np.linspace(7, 50, 431),
            [0.99999, 1.0, 1.00001, 3.9, 3.92, 3.93, 5.9, 5.93, 6.0, 6.01, float(fi.max)],
        ]
    ).astype(dtype)
    return np.concatenate([pos, -pos])


def _ulps(got, want):
    """|got - want| in units of the last place of ``want`` in its own dtype."""
    spacing = np.spacing(np.abs(want)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / spacing


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_erf_is_within_3_ulps_of_the_rounded_erf(dtype):
    x = _grid(dtype)
    want = np.array([math.erf(v) for v in x.astype(np.float64)]).astype(dtype)
    got = _erf(x)
    assert got.dtype == dtype and got.shape == x.shape
    ulps = _ulps(got, want)
    assert ulps.max() <= 3, (x[ulps.argmax()], got[ulps.argmax()], want[ulps.argmax()])
    # odd, exactly; the limits exact
    np.testing.assert_array_equal(_erf(-x), -got)
    assert np.all(np.abs(got) <= 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_erf_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype)
    got = _erf(x)
    assert got[0] == 0 and not np.signbit(got[0])
    assert got[1] == 0 and np.signbit(got[1])
    assert got[2] == 1 and got[3] == -1 and np.isnan(got[4])
    # a 0-d array and an out= buffer of another dtype
    assert _erf(np.array(0.5, dtype)).shape == ()
    out = np.empty(3, np.float64)
    _erf(np.array([-1.0, 0.25, 2.0], dtype), out)
    np.testing.assert_allclose(out, [math.erf(-1), math.erf(0.25), math.erf(2)], rtol=2e-3)


@pytest.mark.parametrize("dtype", [gc.float32, gc.float64])
def test_erf_gelu_and_their_gradients_in_a_session(dtype):
    xs = np.linspace(-6, 6, 1201).astype(dtype.np)
    x = gc.placeholder(dtype, shape=(None,))
    e, g = gc.erf(x), gc.nn.gelu(x)
    de, dg = gc.gradients(gc.reduce_sum(e), x)[0], gc.gradients(gc.reduce_sum(g), x)[0]
    got = gc.Session().run([e, g, de, dg], {x: xs})
    v = xs.astype(np.float64)
    erf_v = np.array([math.erf(t) for t in v])
    phi = np.array([0.5 * (1 + math.erf(t / math.sqrt(2))) for t in v])
    pdf = np.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    rtol = 1e-6 if dtype is gc.float32 else 1e-13
    np.testing.assert_allclose(got[0], erf_v, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got[1], v * phi, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got[2], 2 / math.sqrt(math.pi) * np.exp(-v * v), rtol=rtol * 10)
    np.testing.assert_allclose(got[3], phi + v * pdf, rtol=rtol * 10, atol=rtol)
    assert all(a.dtype == dtype.np for a in got)


def test_erf_on_large_arrays_block_by_block():
    """Blocks mix both branches of the float64 formula and odd sizes leave a short tail."""
    rng = np.random.default_rng(0)
    for scale in (0.3, 2.0):
        x = rng.standard_normal(200_003) * scale
        want = np.array([math.erf(v) for v in x])
        assert _ulps(_erf(x), want).max() <= 3
        x32 = x.astype(np.float32)
        want32 = np.array([math.erf(v) for v in x32.astype(np.float64)]).astype(np.float32)
        assert _ulps(_erf(x32), want32).max() <= 3
