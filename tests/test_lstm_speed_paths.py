"""The numpy executor's paths that issue 18's LSTM step leans on: shape ops over arena
buffers bound once per thread (not on every run), and the cell's bias add fused into the
cell. Values are checked against the reference executor (optimize=0)."""

from __future__ import annotations

import numpy as np

import graphc as gc


def _reference_and_optimized(fetches, feeds, init=None):
    outs = []
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            if init is not None:
                sess.run(init)
            outs.append(sess.run(fetches, feeds))
    return outs


def test_views_of_arena_buffers_are_made_once_per_thread():
    x = gc.placeholder(gc.float32, (8, 6), name="x")
    a, b = gc.split(gc.exp(x) * 2.0, [2, 4], axis=1)  # a split of a planned buffer
    r = gc.reshape(gc.tanh(x) + 1.0, (48,))
    t = gc.transpose(gc.sin(x) * 3.0)
    fetches = [a * 1.5, b - 1.0, r * 2.0, t + 1.0]
    rng = np.random.default_rng(0)
    with gc.Session() as sess:
        for _ in range(2):  # a second run with other values reads the same views
            feeds = {x: rng.standard_normal((8, 6)).astype(np.float32)}
            got = sess.run(fetches, feeds)
            X = feeds[x]
            want = [
                (np.exp(X) * 2)[:, :2] * 1.5,
                (np.exp(X) * 2)[:, 2:] - 1,
                (np.tanh(X) + 1).reshape(48) * 2,
                (np.sin(X) * 3).T + 1,
            ]
            for w, g in zip(want, got, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-5)
        exe = sess._executable(fetches, [], feeds)
    run_src = exe.source.split("def ARENA")[0]
    views = [s for s in exe.plan.steps if s.op.name in ("split", "reshape", "transpose")]
    assert views and exe._gen._viewed
    for s in views:  # the shape ops run in ARENA(), not in run()
        assert f"k{s.index}(" not in run_src
        assert f"k{s.index}(" in exe.source


def test_a_view_of_a_feed_is_made_on_every_run():
    x = gc.placeholder(gc.float32, (4, 6), name="x")
    a, b = gc.split(x, 2, axis=1)
    y = gc.exp(a) + b
    with gc.Session() as sess:
        for v in (1.0, 2.0):
            X = np.full((4, 6), v, np.float32)
            np.testing.assert_allclose(sess.run(y, {x: X}), np.exp(v) + v, rtol=1e-6)


def test_the_bias_add_before_a_split_joins_the_fused_cell():
    rng = np.random.default_rng(1)
    x = gc.placeholder(gc.float32, (16, 12), name="x")
    w = gc.Variable(rng.standard_normal((12, 32)).astype(np.float32) * 0.3)
    b = gc.Variable(rng.standard_normal(32).astype(np.float32))
    i, j, f, o = gc.split(x @ w + b, 4, axis=1)
    c = gc.sigmoid(f + 1.0) + gc.sigmoid(i) * gc.tanh(j)
    h = gc.tanh(c) * gc.sigmoid(o)
    loss = gc.reduce_sum(h * h)
    grads = gc.gradients(loss, [w, b])
    init = gc.global_variables_initializer()
    feeds = {x: rng.standard_normal((16, 12)).astype(np.float32)}
    want, got = _reference_and_optimized([h, *grads], feeds, init)
    for wv, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, wv, rtol=1e-5, atol=1e-6)
    plan = gc.compile([h], feed_shapes={x: (16, 12)})
    # no add over the whole gate matrix: each gate's bias add is in the fused cell
    assert not [s for s in plan.steps if s.kind == "kernel" and s.op.name == "add"]
    (cell,) = [s for s in plan.steps if s.kind == "fused" and "tanh" in s.title]
    assert sum(f.op.name == "add" for f in cell.body) >= 5


def test_a_split_of_a_plain_sum_stays_one_add():
    x = gc.placeholder(gc.float32, (4, 8), name="x")
    y = gc.placeholder(gc.float32, (4, 8), name="y")
    a, b = gc.split(x + y, 2, axis=1)
    plan = gc.compile([a @ gc.ones((4, 3)), b], feed_shapes={x: (4, 8), y: (4, 8)})
    assert sum(s.title.count("add") for s in plan.steps) == 1


def test_fused_outputs_land_in_their_concat_along_any_axis():
    x = gc.placeholder(gc.float32, (6, 5), name="x")
    y = gc.placeholder(gc.float32, (6, 3), name="y")
    rows = gc.concat([gc.exp(x) * 2.0, gc.tanh(x) + 1.0], axis=0) * 1.5
    cols = gc.concat([gc.exp(x) - 1.0, y, gc.sin(y) * 2.0], axis=-1) * 0.5  # y is copied
    rng = np.random.default_rng(3)
    feeds = {
        x: rng.standard_normal((6, 5)).astype(np.float32),
        y: rng.standard_normal((6, 3)).astype(np.float32),
    }
    want, got = _reference_and_optimized([rows, cols], feeds)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    with gc.Session() as sess:
        sess.run([rows, cols], feeds)
        exe = sess._executable([rows, cols], [], feeds)
    assert len(exe._gen._part_of) >= 3  # both concats take their fused parts in place


def test_a_reshape_of_a_transposed_or_split_view_reads_every_run(monkeypatch):
    # reshape copies a view that is not in C order: made once in ARENA() it would hold the
    # arena's bytes of that moment (dynamic_rnn's stack -> transpose -> reshape -> gather)
    x = gc.placeholder(gc.float32, (4, 6), name="x")
    t = gc.reshape(gc.transpose(gc.exp(x) * 2.0), (24,))
    _, b = gc.split(gc.tanh(x) + 1.0, [2, 4], axis=1)
    r = gc.reshape(b, (16,))
    picked = gc.gather(t, gc.constant(np.array([0, 5, 23], np.int32)))
    fetches = [picked * 1.5, r - 1.0]
    rng = np.random.default_rng(3)
    for chunk in (400, 1):  # one function, and a plan cut into parts
        monkeypatch.setattr("graphc.backends.numpy_backend.CHUNK_LINES", chunk)
        with gc.Session() as sess:
            for _ in range(3):
                X = rng.standard_normal((4, 6)).astype(np.float32)
                got = sess.run(fetches, {x: X})
                want = [
                    (np.exp(X) * 2).T.reshape(24)[[0, 5, 23]] * 1.5,
                    ((np.tanh(X) + 1)[:, 2:]).reshape(16) - 1,
                ]
                for w, g in zip(want, got, strict=True):
                    np.testing.assert_allclose(g, w, rtol=1e-5)
