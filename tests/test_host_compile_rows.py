"""Compiled elementwise loops over short rows (host_compile._render: several rows per work
unit, one outer dimension addressed without a division per row): a bias broadcast along the
last axis, rows longer than a block, and loops that keep a generic outer index, split over
threads or not, against the numpy tiles; and the bias gradient's sum over the rows."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends import host_compile, numpy_backend

pytestmark = pytest.mark.skipif(
    host_compile.unavailable_reason() is not None, reason=str(host_compile.unavailable_reason())
)


def _run(fetches, feeds, use_cc, monkeypatch):
    monkeypatch.setattr(numpy_backend, "_USE_CC", use_cc)
    with gc.Session() as sess:
        out = sess.run(fetches, feeds)
        if use_cc:  # the loops are what ran
            exe = sess._executable(list(fetches), [], feeds)
            assert exe._gen.compiled
        return out


# (x's shape, the bias's): rows of 7 (not a divisor of a block), of 32 (NHWC channels), a
# row longer than a block (8192), a broadcast that keeps two outer dimensions
SHAPES = [
    ((50001, 7), (7,)),
    ((64, 28, 28, 32), (32,)),
    ((3, 20000), (20000,)),
    ((40, 30, 50), (40, 1, 50)),
]


@pytest.mark.parametrize("xs,bs", SHAPES)
@pytest.mark.parametrize("threads", ["1", "2"])
def test_bias_relu_and_its_gradient_over_short_rows(cc, monkeypatch, xs, bs, threads):
    monkeypatch.setenv("GRAPHC_CC_THREADS", threads)
    monkeypatch.setattr(host_compile, "PARALLEL_MIN_ELEMS", 1000)
    rng = np.random.default_rng(len(xs))
    x = gc.placeholder(gc.float32, xs)
    b = gc.placeholder(gc.float32, bs)
    g = gc.placeholder(gc.float32, xs)
    h = gc.nn.relu(x + b)
    (gb,) = gc.gradients(gc.reduce_sum(h * g), [b])
    xv = rng.standard_normal(xs).astype(np.float32)
    xv.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, -0.0]
    feeds = {
        x: xv,
        b: rng.standard_normal(bs).astype(np.float32),
        g: rng.standard_normal(xs).astype(np.float32),
    }
    want = _run([h, gb], feeds, False, monkeypatch)
    got = _run([h, gb], feeds, True, monkeypatch)
    np.testing.assert_array_equal(got[0], want[0])  # elementwise: exact, NaN included
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-3)  # sums reordered
