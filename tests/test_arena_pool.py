"""Large arenas of the numpy executor: mapped without forced huge pages, handed back when the
Session closes, and reused by the next plan of a similar size (backends/numpy_backend)."""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.backends import numpy_backend as nb

W = np.random.default_rng(1).standard_normal((64, 1024)).astype(np.float32)


def _model(n):
    x = gc.placeholder(gc.float32, (n, 64), name="x")
    return x, gc.reduce_sum(gc.exp(gc.matmul(x, W) * 0.01), axis=1)


def _pooled(m):
    return any(p is m for p in nb._POOL)


def _mapping(sess):
    """The buffer under the arena of the session's (one) executable."""
    exe = next(iter(sess._cache.values()))
    a = exe._gen.ns["LOCAL"].views[0]
    while isinstance(a, np.ndarray):
        a = a.base
    return a.obj if isinstance(a, memoryview) else a


def test_a_closed_sessions_arena_is_reused_by_the_next_plan():
    x, y = _model(2048)  # an 8 MiB product: above the mapping threshold
    feed = np.random.default_rng(0).standard_normal((2048, 64)).astype(np.float32)
    want = np.exp(feed @ W * 0.01).sum(axis=1)
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(y, {x: feed}), want, rtol=1e-5)
        mapping = _mapping(sess)
    assert _pooled(mapping)  # back in the pool at close
    with gc.Session() as sess:  # the same model again: the mapping is taken, not a new one
        np.testing.assert_allclose(sess.run(y, {x: feed}), want, rtol=1e-5)
        assert not _pooled(mapping)
        assert _mapping(sess) is mapping


def test_small_arenas_and_the_pool_bound():
    small = nb.arena_buffer(1000)
    assert small.nbytes == 1000 and small.base is None  # plain numpy memory
    big = [nb.arena_buffer(nb._MAP_MIN_BYTES + k) for k in range(3)]
    assert all(len(b.base) >= b.nbytes for b in big)
    old = nb._POOL_MAX_BYTES
    try:
        nb._POOL_MAX_BYTES = 2 * nb._MAP_MIN_BYTES + 10
        del big  # three mappings come back; the oldest is closed to stay under the bound
        assert sum(len(m) for m in nb._POOL) <= nb._POOL_MAX_BYTES
    finally:
        nb._POOL_MAX_BYTES = old
