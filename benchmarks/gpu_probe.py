"""Targeted probes of the cupy backend on a real device, for the first minutes a GPU is lent.

    python -m benchmarks.gpu_probe OUT_DIR        (benchmarks/gpu_smoke.sh runs it)

Each probe is independent: it records ``ok`` / ``failed`` (with the error) and its figures in
``OUT_DIR/probe.json`` and prints one line, so one broken probe never hides the others.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import graphc as gc

RESULTS: dict = {}
OUT_FILE: list = []  # where probe.json goes, rewritten after every probe
SMALL: list = []  # set under --stand-in: small shapes, the CPU emulates the GPU


def probe(fn):
    """Run ``fn`` as a probe; its return value (a dict of figures) is recorded."""
    name = fn.__name__.removeprefix("probe_")
    t = time.perf_counter()
    try:
        figures = fn() or {}
        RESULTS[name] = {"ok": True, **figures}
    except Exception as e:  # noqa: BLE001 - a probe reports, it never stops the others
        RESULTS[name] = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=8),
        }
    RESULTS[name]["seconds"] = round(time.perf_counter() - t, 3)
    if OUT_FILE:  # a probe that hangs past the time limit loses only itself
        OUT_FILE[0].write_text(json.dumps(RESULTS, indent=1, default=str))
    status = "ok" if RESULTS[name]["ok"] else "FAILED " + RESULTS[name]["error"][:300]
    print(f"[probe] {name}: {status}", flush=True)
    return fn


def _close(got, want, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=atol)


def _median_time(fn, n=30, warm=3):
    if SMALL:
        n, warm = 2, 1
    for _ in range(warm):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


BUILT: list = []


def _record_executables():
    """Keep every CupyExecutable built, so a probe can look at its plan and counters."""
    from graphc.backends.cupy_backend import CupyExecutable

    init = CupyExecutable.__init__

    def recording(self, *a, **k):
        init(self, *a, **k)
        BUILT.append(self)

    CupyExecutable.__init__ = recording


def _exe_of(sess=None):
    """The largest cupy executable built since the last call (a training step's)."""
    found, BUILT[:] = list(BUILT), []
    return max(found, key=lambda e: len(e.plan.steps)) if found else None


def probe_environment():
    import cupy

    if not hasattr(cupy.cuda, "runtime"):
        return {"stand_in": True}
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    from graphc.backends import cuda_compile

    lib = cuda_compile.nvrtc()
    # cupy's own kernels need CUDA headers (the [ctk] extra on a machine without a toolkit)
    assert int((cupy.arange(10, dtype=cupy.float32) * 2).sum()) == 90
    return {
        "device": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "compute_capability": dev.compute_capability,
        "cupy": cupy.__version__,
        "numpy": np.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "driver": cupy.cuda.runtime.driverGetVersion(),
        "graphc_nvrtc": lib is not None,
        "python": sys.version.split()[0],
    }


def probe_quick_start():
    """The README's quick start on both backends: the same losses."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1000)).astype(np.float32)
    Y = rng.standard_normal((64, 10)).astype(np.float32)
    losses = {}
    for backend in ("numpy", "cupy"):
        gc.reset_default_graph()
        x = gc.placeholder(gc.float32, shape=(None, 1000), name="x")
        y = gc.placeholder(gc.float32, shape=(None, 10), name="y")
        w1 = gc.Variable(gc.random_normal((1000, 100), stddev=0.01, seed=1), name="w1")
        w2 = gc.Variable(gc.random_normal((100, 10), stddev=0.01, seed=2), name="w2")
        loss = gc.reduce_sum((gc.relu(x @ w1) @ w2 - y) ** 2)
        train = gc.train.GradientDescentOptimizer(1e-4).minimize(loss)
        with gc.Session(backend=backend) as sess:
            sess.run(gc.global_variables_initializer())
            losses[backend] = [float(sess.run([train, loss], {x: X, y: Y})[1]) for _ in range(20)]
    _close(losses["cupy"], losses["numpy"], rtol=1e-4)
    return {"first_loss": losses["cupy"][0], "last_loss": losses["cupy"][-1]}


def _mlp3(backend, cuda_graph=False, steps=5):
    from benchmarks.workloads import _mlp_data, mlp_graph

    X, Y, W0 = _mlp_data(16, (30, 20, 20, 10)) if SMALL else _mlp_data(256, (784, 512, 512, 10))
    graph, x, y, train, loss, init = mlp_graph(W0, "xent", 0.01)
    sess = gc.Session(graph=graph, backend=backend)
    sess.run(init)
    feeds = {x: X, y: Y}
    if cuda_graph:
        from graphc.backends.cupy_backend import CupyExecutable

        plan = gc.compile(
            [train, loss], feed_shapes={x: X.shape, y: Y.shape}, backend="cupy", graph=graph
        )
        exe = CupyExecutable(plan, cuda_graph=True)

        def step():
            return exe(sess._ctx, feeds)[-1]
    else:
        exe = None

        def step():
            return sess.run([train, loss], feeds)[1]

    losses = [float(step()) for _ in range(steps)]
    return sess, step, losses, graph, exe


def probe_mlp3():
    """mlp3 on numpy, cupy and cupy + CUDA Graph: the same losses, and step times."""
    out = {}
    ref = None
    for name, backend, cg in (
        ("numpy", "numpy", False),
        ("cupy", "cupy", False),
        ("cupy_graph", "cupy", True),
    ):
        _exe_of()
        sess, step, losses, graph, exe = _mlp3(backend, cg)
        if ref is None:
            ref = losses
        else:
            _close(losses, ref, rtol=1e-3)
        out[f"{name}_step_ms"] = round(
            _median_time(step, n=20 if backend == "numpy" else 50) * 1e3, 4
        )
        if exe is not None:
            out["captured"] = bool(exe._cuda_graph)
            out["capture_refused"] = exe.capture_refused
        elif backend == "cupy":
            e = _exe_of()
            out["host_steps"] = [e.plan.steps[i].title for i in e._host_steps] if e else "?"
    try:
        import torch

        if torch.cuda.is_available():
            from benchmarks.workloads import _mlp_data, torch_sgd_step

            X, Y, W0 = _mlp_data(256, (784, 512, 512, 10))
            dev = torch.device("cuda")
            tX = torch.from_numpy(X).to(dev)
            tY = torch.from_numpy(Y.argmax(1)).to(dev)
            tW = [torch.tensor(w, device=dev, requires_grad=True) for w in W0]

            def tstep():
                loss = torch_sgd_step(torch, tW, tX, tY, "xent", 0.01)
                torch.cuda.synchronize()
                return loss

            out["torch_cuda_step_ms"] = round(_median_time(tstep, n=50) * 1e3, 4)
    except Exception as e:  # noqa: BLE001
        out["torch_error"] = str(e)
    return out


def probe_transfers_per_step():
    """Host<->device bytes of a steady mlp3 SGD step: feeds in, the loss out, no variables."""
    import cupy

    _exe_of()
    sess, step, _, graph, _ = _mlp3("cupy")
    exe = _exe_of()
    from graphc.backends.cupy_backend import _DEVICE_STATE

    state = _DEVICE_STATE[sess._ctx][id(exe.xp)]
    before = (state.uploads, state.downloads)
    for _ in range(5):
        step()
    cupy.cuda.Device().synchronize()
    var_copies = (state.uploads - before[0], state.downloads - before[1])
    assert var_copies == (0, 0), f"variables copied in a steady step: {var_copies}"
    feed_bytes = sum(
        int(np.prod(exe.plan.slots[k].shape)) * exe.plan.slots[k].dtype.np.itemsize
        for _, k in exe.plan.feeds
    )
    return {
        "variable_copies_per_step": 0,
        "feed_bytes_per_step": feed_bytes,
        "host_steps": [exe.plan.steps[i].title for i in exe._host_steps],
    }


def probe_matmul_capture_with_pool_churn():
    """Batched and transposed matmuls, replayed as a CUDA Graph while the memory pool churns
    between replays; a plan cupy would need temporaries for must refuse capture instead."""
    import cupy

    from graphc.backends.cupy_backend import CupyExecutable

    rng = np.random.default_rng(1)
    out = {}
    cases = {
        "2d": ((64, 32), (32, 48), {}),
        "2d_tt": ((32, 64), (48, 32), {"transpose_a": True, "transpose_b": True}),
        "batched": ((8, 64, 32), (8, 32, 16), {}),
        "batched_ta": ((8, 32, 64), (8, 32, 16), {"transpose_a": True}),
    }
    for name, (sa, sb, attrs) in cases.items():
        gc.reset_default_graph()
        a = gc.placeholder(gc.float32, sa)
        b = gc.placeholder(gc.float32, sb)
        y = gc.tanh(gc.matmul(a, b, **attrs)) * 2.0
        plan = gc.compile(y, feed_shapes={a: sa, b: sb}, backend="cupy")
        exe = CupyExecutable(plan, cuda_graph=True)
        ctx = gc.Session(backend="cupy")._ctx
        for _ in range(4):
            va = rng.standard_normal(sa).astype(np.float32)
            vb = rng.standard_normal(sb).astype(np.float32)
            (got,) = exe(ctx, {a: va, b: vb})
            junk = [cupy.empty(int(rng.integers(1, 1 << 20)), cupy.uint8) for _ in range(20)]
            del junk  # returned to the pool: churn
            am = np.swapaxes(va, -1, -2) if attrs.get("transpose_a") else va
            bm = np.swapaxes(vb, -1, -2) if attrs.get("transpose_b") else vb
            _close(got, np.tanh(am @ bm) * 2.0, rtol=1e-4, atol=1e-4)
        out[name] = {"captured": bool(exe._cuda_graph), "refused": exe.capture_refused}
    return out


def probe_variables_replaced_between_replays():
    """A captured training step sees a variable the host replaced between replays."""
    from graphc.backends.cupy_backend import CupyExecutable

    gc.reset_default_graph()
    x = gc.placeholder(gc.float32, (16, 8))
    w = gc.Variable(np.ones((8, 4), np.float32), name="w")
    loss = gc.reduce_sum(x @ w)
    train = gc.train.GradientDescentOptimizer(0.01).minimize(loss)
    sess = gc.Session(backend="cupy")
    sess.run(w.initializer)
    plan = gc.compile([train, loss], feed_shapes={x: (16, 8)}, backend="cupy")
    exe = CupyExecutable(plan, cuda_graph=True)
    feeds = {x: np.ones((16, 8), np.float32)}
    for _ in range(3):
        exe(sess._ctx, feeds)
    sess.set_variable(w, np.zeros((8, 4), np.float32))
    (got,) = exe(sess._ctx, feeds)
    assert float(got) == 0.0, f"replay used the old variable: loss {got}"
    return {"captured": bool(exe._cuda_graph), "refused": exe.capture_refused}


def probe_small_dtypes():
    """float16, bool and int8 kernels against numpy."""
    rng = np.random.default_rng(2)
    a16 = rng.uniform(0.5, 2, (64, 33)).astype(np.float16)
    i8 = rng.integers(-50, 50, (64, 33)).astype(np.int8)
    bits = rng.random((64, 33)) > 0.5
    results = {}
    for backend in ("numpy", "cupy"):
        gc.reset_default_graph()
        h = gc.placeholder(gc.float16, a16.shape)
        i = gc.placeholder(gc.int8, i8.shape)
        m = gc.placeholder(gc.bool, bits.shape)
        fetches = [
            gc.exp(h) * h + 1.0,
            i * 2 + i,
            gc.logical_and(m, i > 0),
            gc.reduce_sum(gc.cast(h, gc.float32)),
        ]
        with gc.Session(backend=backend) as sess:
            results[backend] = sess.run(fetches, {h: a16, i: i8, m: bits})
    for g, w in zip(results["cupy"], results["numpy"], strict=True):
        if np.asarray(w).dtype.kind == "f":
            _close(g, w, rtol=2e-3, atol=2e-3)
        else:
            np.testing.assert_array_equal(g, w)
    return {}


def probe_denormals():
    """A fused ``log(x * 1e-30)`` at ``x = 1e-10``: float32 denormals kept as numpy keeps them."""
    values = {}
    for backend in ("numpy", "cupy"):
        gc.reset_default_graph()
        x = gc.placeholder(gc.float32, (4,))
        y = gc.log(x * 1e-30)
        with gc.Session(backend=backend) as sess:
            values[backend] = sess.run(y, {x: np.full(4, 1e-10, np.float32)})
    _close(values["cupy"], values["numpy"], rtol=1e-5)
    return {"numpy": float(values["numpy"][0]), "cupy": float(values["cupy"][0])}


def _model_step(build, backend, feeds_of):
    """A README model's training step (``benchmarks.models``) on ``backend``: its losses,
    step time, and on cupy the steady step's host steps and variable copies."""
    import graphc.compat.v1 as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)  # the dropout masks: the same stream on both backends
        x, y, keep, train, loss, _ = build(tf)
        init = tf.global_variables_initializer()
    feeds = feeds_of(x, y, keep)
    _exe_of()
    sess = gc.Session(graph=graph, backend=backend)
    sess.run(init)
    losses = [float(sess.run([train, loss], feeds)[1]) for _ in range(2)]
    out = {"losses": losses}
    exe = _exe_of() if backend == "cupy" else None
    if exe is not None:
        from graphc.backends.cupy_backend import _DEVICE_STATE

        state = _DEVICE_STATE[sess._ctx][id(exe.xp)]
        before = (state.uploads, state.downloads)
    out["step_ms"] = round(
        _median_time(lambda: sess.run([train, loss], feeds), n=2 if SMALL else 10) * 1e3, 3
    )
    if exe is not None:
        out["host_steps"] = [exe.plan.steps[i].title for i in exe._host_steps]
        out["variable_copies"] = [state.uploads - before[0], state.downloads - before[1]]
        out["capture_refused"] = exe.capture_refused
    return out


def probe_cnn_and_lstm_plans():
    """The README's CNN (convs, max-pools, dropout, Adam) and LSTM (28 steps, Adam) training
    steps: which steps still run on the host (none expected), variable copies in a steady
    step (none expected), losses against numpy (dropout masks included), step times."""
    from benchmarks import models

    out = {}
    n = 2 if SMALL else models.BATCH_CNN
    X, Y = models.mnist_like(n)

    def cnn_feeds(x, y, keep):
        return {x: X, y: Y, keep: 0.75}

    for backend in ("numpy", "cupy"):
        for k, v in _model_step(models.cnn_graph, backend, cnn_feeds).items():
            out[f"cnn_{backend}_{k}"] = v
    _close(out["cnn_cupy_losses"], out["cnn_numpy_losses"], rtol=1e-3)
    if SMALL:  # the CPU emulates every thread: a short, narrow LSTM
        saved = models.BATCH_LSTM, models.STEPS, models.INPUT, models.UNITS
        models.BATCH_LSTM, models.STEPS, models.INPUT, models.UNITS = 4, 3, 6, 8
    try:
        b, t, i = models.BATCH_LSTM, models.STEPS, models.INPUT
        rng = np.random.default_rng(0)
        Xl = rng.random((b, t, i), np.float32)
        Yl = np.eye(10, dtype=np.float32)[rng.integers(0, 10, b)]

        def lstm_feeds(x, y, keep):
            return {x: Xl, y: Yl}

        for backend in ("numpy", "cupy"):
            for k, v in _model_step(models.lstm_graph, backend, lstm_feeds).items():
                out[f"lstm_{backend}_{k}"] = v
    finally:
        if SMALL:
            models.BATCH_LSTM, models.STEPS, models.INPUT, models.UNITS = saved
    _close(out["lstm_cupy_losses"], out["lstm_numpy_losses"], rtol=1e-3)
    for model in ("cnn", "lstm"):
        assert out[f"{model}_cupy_host_steps"] == [], f"{model}: host steps"
        assert out[f"{model}_cupy_variable_copies"] == [0, 0], f"{model}: variable copies"
    return out


def probe_uniform_draws():
    """Seeded uniform draws and a dropout mask on the device: numpy's PCG64 numbers bit for
    bit (cupy_random), run after run; the time of a 1M-element draw."""
    size = 4096 if SMALL else 1 << 20
    results = {}
    for backend in ("numpy", "cupy"):
        gc.reset_default_graph()
        x = gc.placeholder(gc.float32, (size,))
        u = gc.random_uniform((size,), minval=-1.0, maxval=2.0, seed=1)
        dropped = gc.nn.dropout(x, rate=0.25, seed=2)
        sess = gc.Session(backend=backend)
        feeds = {x: np.ones(size, np.float32)}
        results[backend] = [sess.run([u, dropped], feeds) for _ in range(3)]
        results[f"{backend}_ms"] = round(
            _median_time(lambda s=sess, u=u: s.run(u), n=2 if SMALL else 20) * 1e3, 4
        )
    for got, want in zip(results["cupy"], results["numpy"], strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
    return {"draw_ms_numpy": results["numpy_ms"], "draw_ms_cupy": results["cupy_ms"]}


def probe_chain():
    """The 12-op elementwise chain on 1M float32: cupy vs torch CUDA."""
    import cupy

    from benchmarks.workloads import CHAIN_N, chain_graphc

    size = 4096 if SMALL else CHAIN_N
    X = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    gc.reset_default_graph()
    x = gc.placeholder(gc.float32, (size,))
    out = chain_graphc(x)
    sess = gc.Session(backend="cupy")
    ms = {"cupy_ms": round(_median_time(lambda: sess.run(out, {x: X}), n=30) * 1e3, 4)}
    with gc.Session() as ref:
        _close(sess.run(out, {x: X}), ref.run(out, {x: X}), rtol=1e-3, atol=1e-2)
    cupy.cuda.Device().synchronize()
    return ms


def _stand_in():
    """``--stand-in``: run the probes on the CPU, numpy standing in for cupy and the host
    harness for the kernels (as tests/test_cupy_backend.py does), to check the probes
    themselves before device time is spent on them."""
    import types

    from graphc.backends import cuda_host
    from graphc.backends import cupy_backend as cb

    def capture(xp, run):
        return run

    init = cb.CupyExecutable.__init__

    def on_cpu(self, plan, **k):
        k.update(
            xp=np, compile_kernels=cuda_host.host_module, capture=capture, block=32, max_grid=4
        )
        init(self, plan, **k)

    cb.CupyExecutable.__init__ = on_cpu
    cb.cupy_module = lambda: np
    device = types.SimpleNamespace(synchronize=lambda: None, compute_capability="00")
    fake = types.ModuleType("cupy")
    fake.empty, fake.arange, fake.float32, fake.uint8 = np.empty, np.arange, np.float32, np.uint8
    fake.cuda = types.SimpleNamespace(Device=lambda: device)
    sys.modules["cupy"] = fake


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    stand_in = "--stand-in" in argv
    argv = [a for a in argv if a != "--stand-in"]
    out = Path(argv[0] if argv else "build/gpu_smoke")
    out.mkdir(parents=True, exist_ok=True)
    OUT_FILE.append(out / "probe.json")
    if stand_in:
        _stand_in()
        SMALL.append(True)
    _record_executables()
    for fn in (
        probe_environment,
        probe_quick_start,
        probe_mlp3,
        probe_transfers_per_step,
        probe_matmul_capture_with_pool_churn,
        probe_variables_replaced_between_replays,
        probe_small_dtypes,
        probe_denormals,
        probe_cnn_and_lstm_plans,
        probe_uniform_draws,
        probe_chain,
    ):
        probe(fn)
    (out / "probe.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    failed = [k for k, v in RESULTS.items() if not v["ok"]]
    print(
        f"[probe] {len(RESULTS) - len(failed)} ok, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
