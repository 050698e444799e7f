"""Device tests (``pytest -m gpu``): the op registry and the benchmark models on the cupy
backend against numpy. Skipped, with the reason, where cupy or a CUDA device is missing —
everything that can be checked without one is in test_cuda_codegen.py, test_cuda_host.py
and test_cupy_backend.py."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import dtypes as D
from graphc.backends import cuda_codegen as cg
from graphc.backends import cupy_backend as cb
from graphc.ops.registry import REGISTRY

REASON = cb.gpu_unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"{REASON}")]

# float32 on the device uses CUDA's libdevice, numpy its own routines: a few ulp apart
RTOL = {D.float16: 2.0**-10, D.float32: 2.0**-20, D.float64: 2.0**-46}


def _run_both(build, feeds_of):
    """Build with ``build()`` and run on both backends with the same feeds."""
    results = []
    for backend in ("numpy", "cupy"):
        gc.reset_default_graph()
        fetches, feeds = build()
        with gc.Session(backend=backend) as sess:
            sess.run(gc.global_variables_initializer())
            results.append(sess.run(fetches, feeds_of(feeds)))
    return results


def _close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype.kind == "f":
        np.testing.assert_allclose(
            got,
            want,
            rtol=RTOL[D.as_dtype(got.dtype)],
            atol=RTOL[D.as_dtype(got.dtype)],
            equal_nan=True,
        )
    else:
        np.testing.assert_array_equal(got, want)


def _sampled_ops():
    return [
        (op, k)
        for op in REGISTRY.values()
        if op.samples is not None and not op.stateful
        for k in range(len(op.samples(np.random.default_rng(0))))
    ]


@pytest.mark.parametrize("op, k", _sampled_ops(), ids=lambda v: getattr(v, "name", str(v)))
def test_every_registry_op_on_cupy_matches_numpy(op, k):
    arrays, attrs = op.samples(np.random.default_rng(0))[k]

    def build():
        ins = [gc.placeholder(D.as_dtype(np.asarray(a).dtype), np.shape(a)) for a in arrays]
        node = op.build(ins, dict(attrs))
        return list(node.outputs), dict(zip(ins, arrays, strict=True))

    want, got = _run_both(build, lambda feeds: feeds)
    for g, w in zip(got, want, strict=True):
        _close(g, w)


SIGNATURES = cg.registry_signatures()


@pytest.mark.parametrize(
    "sig",
    range(len(SIGNATURES)),
    ids=[
        f"{op.name}-{'-'.join(d.name for d in ds)}{'-to-' + str(attrs['dtype']) if attrs else ''}"
        for op, ds, attrs, _ in SIGNATURES
    ],
)
def test_every_elementwise_kernel_signature_on_cupy(sig):
    op, dtypes, attrs, _ = SIGNATURES[sig]
    rng = np.random.default_rng(sig)
    arrays = [
        (rng.random((64, 33)) > 0.5)
        if d is D.bool_
        else (rng.uniform(0.5, 2.0, (64, 33)) * (3 if d.is_integer else 1)).astype(d.np)
        for d in dtypes
    ]

    def build():
        ins = [gc.placeholder(d, a.shape) for d, a in zip(dtypes, arrays, strict=True)]
        return op.build(ins, dict(attrs)).outputs[0], dict(zip(ins, arrays, strict=True))

    want, got = _run_both(build, lambda feeds: feeds)
    _close(got, want)


@pytest.mark.parametrize("workload", ["mlp2", "mlp3", "chain"])
def test_benchmark_models_on_cupy_match_numpy(workload):
    from benchmarks.workloads import CHAIN_N, _mlp_data, chain_graphc

    if workload == "chain":
        X = np.random.default_rng(0).standard_normal(CHAIN_N).astype(np.float32)

        def build():
            x = gc.placeholder(gc.float32, (None,))
            return chain_graphc(x), {x: X}

        want, got = _run_both(build, lambda feeds: feeds)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        return
    n, sizes, lr = (
        (64, (1000, 100, 10), 1e-4) if workload == "mlp2" else (256, (784, 512, 512, 10), 0.05)
    )
    X, Y, W0 = _mlp_data(n, sizes)

    def build():
        x = gc.placeholder(gc.float32, (None, sizes[0]))
        y = gc.placeholder(gc.float32, (None, sizes[-1]))
        ws = [gc.Variable(w) for w in W0]
        h = x
        for i, w in enumerate(ws):
            h = gc.relu(h @ w) if i < len(ws) - 1 else h @ w
        loss = (
            gc.reduce_sum((h - y) ** 2)
            if workload == "mlp2"
            else gc.reduce_mean(gc.softmax_cross_entropy_with_logits(labels=y, logits=h))
        )
        train = gc.train.GradientDescentOptimizer(lr).minimize(loss)
        return [train, loss, ws[0]], {x: X, y: Y}

    results = []
    for backend in ("numpy", "cupy"):
        gc.reset_default_graph()
        (train, loss, w0), feeds = build()
        with gc.Session(backend=backend) as sess:
            sess.run(gc.global_variables_initializer())
            losses = [sess.run([train, loss], feeds)[1] for _ in range(5)]
            results.append((losses, sess.run(w0)))
    (want_l, want_w), (got_l, got_w) = results
    np.testing.assert_allclose(got_l, want_l, rtol=1e-4)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-4, atol=1e-6)


def test_cuda_graph_replay_matches_eager():
    x = gc.placeholder(gc.float32, (128, 64))
    w = gc.Variable(np.random.default_rng(1).standard_normal((64, 32)).astype(np.float32))
    out = gc.nn.softmax(gc.relu(x @ w))
    with gc.Session(backend="cupy") as sess:
        sess.run(w.initializer)
        plan = gc.compile(out, feed_shapes={x: (128, 64)}, backend="cupy")
        exe = cb.CupyExecutable(plan, cuda_graph=True)
        assert exe._cuda_graph
        rng = np.random.default_rng(2)
        for _ in range(3):
            value = rng.standard_normal((128, 64)).astype(np.float32)
            (got,) = exe(sess._ctx, {x: value})
            np.testing.assert_allclose(got, sess.run(out, {x: value}), rtol=1e-5, atol=1e-7)


def test_uniform_draws_on_the_device_are_numpys_bit_for_bit():
    """The device's PCG64 (cupy_random) gives the CPU backend's uniform numbers exactly, run
    after run, and a dropout mask with them; nothing is drawn on the host."""
    results = []
    for backend in ("numpy", "cupy"):
        gc.reset_default_graph()
        x = gc.placeholder(gc.float32, (64, 33))
        fetches = [
            gc.random_uniform((1000,), minval=-2.0, maxval=3.0, seed=1),
            gc.random_uniform_like(x, seed=2, dtype=gc.float64),
            gc.nn.dropout(x, rate=0.3, seed=3),
        ]
        value = np.ones((64, 33), np.float32)
        with gc.Session(backend=backend) as sess:
            results.append([sess.run(fetches, {x: value}) for _ in range(3)])
    for got, want in zip(*reversed(results), strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_the_readme_cnn_step_runs_on_the_device_like_numpy():
    import graphc.compat.v1 as tf
    from benchmarks import models

    losses = {}
    for backend in ("numpy", "cupy"):
        graph = tf.Graph()
        with graph.as_default():
            tf.set_random_seed(0)
            x, y, keep, train, loss, _ = models.cnn_graph(tf)
            init = tf.global_variables_initializer()
        X, Y = models.mnist_like(16)
        with gc.Session(graph=graph, backend=backend) as sess:
            sess.run(init)
            losses[backend] = [
                sess.run([train, loss], {x: X, y: Y, keep: 0.75})[1] for _ in range(3)
            ]
    np.testing.assert_allclose(losses["cupy"], losses["numpy"], rtol=1e-3)


def test_a_bad_index_or_label_fails_on_the_device_before_any_update():
    """cupy's take wraps a bad index where numpy raises: the device-side checks must still
    raise, naming the line, and leave the variables as they were."""
    table = gc.placeholder(gc.float32, (3, 2))
    idx = gc.placeholder(gc.int32, (2,))
    labels = gc.placeholder(gc.int32, (2,))
    w = gc.Variable(np.ones((2, 3), np.float32), name="w")
    logits = gc.gather(table, idx) @ w
    loss = gc.reduce_mean(
        gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    with gc.Session(backend="cupy") as sess:
        sess.run(w.initializer)
        for bad, match in (
            ({idx: [0, 3], labels: [0, 1]}, "index 3 is out of bounds"),
            ({idx: [0, 1], labels: [0, 3]}, "label 3 at index"),
        ):
            feeds = {table: values, **{k: np.array(v, np.int32) for k, v in bad.items()}}
            with pytest.raises(gc.GraphcError, match=match):
                sess.run(train, feeds)
            np.testing.assert_array_equal(sess.run(w), np.ones((2, 3)))
