"""The fast max-pool kernels in graphc/ops/conv.py (a running max over the taps, masked
products instead of np.where) against np.argmax over the windows, with ties, NaN in x and
inf in the gradient, which take the fallback paths."""

import numpy as np
import pytest

from graphc.ops import conv as C

CASES = [
    ((4, 9, 9, 3), (3, 3), (2, 2), "SAME"),
    ((4, 8, 8, 3), (2, 2), (2, 2), "VALID"),
    ((2, 7, 6, 2), (2, 3), (1, 1), "SAME"),
    ((2, 5, 5, 2), (1, 1), (1, 1), "SAME"),
]


def _ref_arg(x, k, s, p):
    w, _ = C._padded_windows(x, k, s, p, -np.inf)
    return w.reshape(w.shape[:4] + (-1,)).argmax(-1)


@pytest.mark.parametrize("shape,k,s,p", CASES)
@pytest.mark.parametrize("special", [None, "nan_x", "inf_g"])
def test_max_pool_fast_paths_match_argmax(shape, k, s, p, special):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, shape).astype(np.float32)  # many ties: the first must win
    d = rng.standard_normal(shape).astype(np.float32)
    if special == "nan_x":
        x[0, 1, 1, 0] = np.nan
    ref = _ref_arg(x, k, s, p)
    g = rng.standard_normal(ref.shape).astype(np.float32)
    if special == "inf_g":
        g[0, 0, 0, 0], d[0, 0, 0, 0] = np.inf, -np.inf
    arg, _ = C._argmax_taps(x, k, s, p)
    np.testing.assert_array_equal(arg, ref)
    want = C._scatter_taps(
        lambda i, j: np.where(ref == i * k[1] + j, g, 0), x.shape, k, s, p, np.float32
    )
    np.testing.assert_array_equal(C._max_pool_grad(x, g, k, s, p), want)
    wd, _ = C._padded_windows(d, k, s, p, 0)
    sel = np.take_along_axis(wd.reshape(wd.shape[:4] + (-1,)), ref[..., None], -1)[..., 0]
    np.testing.assert_array_equal(C._max_pool_select(x, d, k, s, p), sel)
