"""The cupy backend's orchestration on the CPU: numpy stands in for cupy and the host harness
runs the generated kernels, so plan walking, the single device allocation, transfers,
device-resident variables, host fallbacks and CUDA Graph replay are all tested here.

What needs a real GPU (NVRTC loading through cupy, cuBLAS, stream capture) is in
``test_cupy_device.py``."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends import cuda_host
from graphc.backends import cupy_backend as cb

pytestmark = pytest.mark.skipif(
    cuda_host.host_compiler() is None,
    reason="the host harness needs g++ to compile generated kernels",
)


SMALL = {"block": 32, "max_grid": 4}  # CPU threads stand in for CUDA threads: few of them


host_kernels = cuda_host.host_module  # one host build per kernel set, for every test


class CountingNumpy:
    """numpy as the device array module, counting allocations and host->device copies."""

    def __init__(self):
        self.calls = {"empty": 0, "asarray": 0, "array": 0}

    def __getattr__(self, name):
        return getattr(np, name)

    def empty(self, *a, **k):
        self.calls["empty"] += 1
        return np.empty(*a, **k)

    def asarray(self, *a, **k):
        self.calls["asarray"] += 1
        return np.asarray(*a, **k)

    def array(self, *a, **k):
        self.calls["array"] += 1
        return np.array(*a, **k)


@pytest.fixture
def on_cpu(monkeypatch):
    """``Session(backend="cupy")`` builds CupyExecutables over numpy and host kernels; the
    fixture's list collects them. They share one array module, as they would share cupy."""
    built = []
    xp = CountingNumpy()

    def make(plan, **options):
        exe = cb.CupyExecutable(plan, xp=xp, compile_kernels=host_kernels, **SMALL, **options)
        built.append(exe)
        return exe

    monkeypatch.setattr(cb, "make_cupy_executable", make)
    return built


def _mlp(batch=None):
    x = gc.placeholder(gc.float32, (batch, 20), name="x")
    y = gc.placeholder(gc.float32, (batch, 5), name="y")
    w1 = gc.Variable(gc.random_normal((20, 16), stddev=0.3, seed=1), name="w1")
    b1 = gc.Variable(gc.zeros((16,)), name="b1")
    w2 = gc.Variable(gc.random_normal((16, 5), stddev=0.3, seed=2), name="w2")
    logits = gc.relu(x @ w1 + b1) @ w2
    loss = gc.reduce_mean(gc.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    return x, y, (w1, b1, w2), logits, loss, train


def _data(rng, n=32):
    x = rng.standard_normal((n, 20)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    return x, y


def _train(backend, steps, data):
    gc.reset_default_graph()
    x, y, params, _, loss, train = _mlp()
    with gc.Session(backend=backend) as sess:
        sess.run(gc.global_variables_initializer())
        losses = [sess.run([train, loss], {x: data[0], y: data[1]})[1] for _ in range(steps)]
        return losses, [sess.run(p) for p in params], [sess.get_variable(p) for p in params]


@pytest.mark.slow
def test_training_matches_the_numpy_backend(on_cpu, rng):
    data = _data(rng)
    want_losses, want_params, _ = _train("numpy", 6, data)
    losses, params, host_copies = _train("cupy", 6, data)
    assert on_cpu, "the session did not build cupy executables"
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    assert losses[-1] < losses[0]
    for got, mirror, want in zip(params, host_copies, want_params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(mirror, got)  # the session's host record is current


def test_the_training_step_runs_entirely_on_the_device(on_cpu, rng):
    data = _data(rng)
    _train("cupy", 1, data)
    step = max(on_cpu, key=lambda e: len(e.plan.steps))
    assert step._host_steps == []
    assert step._launches, "no generated kernels in the training step"


def test_the_memory_plan_is_one_device_allocation(on_cpu, rng):
    x = gc.placeholder(gc.float32, (8, 1 << 13))
    total = gc.reduce_sum(gc.exp(gc.sin(x) * 0.5), axis=1)  # few long rows: two passes
    scaled = gc.tanh(x) * 2.0 + 1.0
    with gc.Session(backend="cupy") as sess:
        value = rng.standard_normal((8, 1 << 13)).astype(np.float32)
        got_total, got_scaled = sess.run([total, scaled], {x: value})
    (exe,) = on_cpu
    assert exe.xp.calls["empty"] == 1  # the arena, nothing else
    assert exe._partials, "the two-pass reduction should need partials"
    planned = [exe._base[s.index] for s in exe.plan.slots if s.kind in ("arena", "scratch")]
    assert planned
    for view in exe._partials + planned:
        assert np.shares_memory(view, exe._arena)
    assert exe.device_bytes >= exe.plan.peak_bytes
    np.testing.assert_allclose(got_total, np.exp(np.sin(value) * 0.5).sum(axis=1), rtol=1e-5)
    # 2 tanh(x) + 1 cancels near tanh(x) = -1/2: compare to float32 rounding of O(1) terms
    np.testing.assert_allclose(got_scaled, np.tanh(value) * 2 + 1, rtol=1e-6, atol=2.0**-21)


def test_feeds_are_copied_in_once_and_fetches_copied_out(on_cpu, rng):
    x = gc.placeholder(gc.float32, (4, 3))
    y = gc.exp(x) + 1.0
    with gc.Session(backend="cupy") as sess:
        value = rng.standard_normal((4, 3)).astype(np.float32)
        first = sess.run(y, {x: value})
        (exe,) = on_cpu
        before = exe.xp.calls["asarray"]
        second = sess.run(y, {x: value})
        assert exe.xp.calls["asarray"] == before + 1  # one feed, one copy
        kept = first.copy()
        first[...] = 0  # a copy, not the arena
        np.testing.assert_array_equal(second, kept)
        np.testing.assert_allclose(second, np.exp(value) + 1, rtol=2.0**-21)


def test_variables_stay_on_the_device_until_the_host_replaces_them(on_cpu):
    v = gc.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")
    step = gc.assign_add(v, gc.ones_like(v))
    with gc.Session(backend="cupy") as sess:
        sess.run(v.initializer)
        for _ in range(3):
            sess.run(step)
        xp = on_cpu[0].xp
        assert xp.calls["array"] == 1  # uploaded once, then updated in place
        np.testing.assert_array_equal(sess.get_variable(v), np.arange(6).reshape(2, 3) + 3)
        sess.set_variable(v, np.zeros((2, 3), np.float32))  # the host replaces it
        sess.run(step)
        assert xp.calls["array"] == 2
        np.testing.assert_array_equal(sess.run(v), np.ones((2, 3)))


def test_ops_without_a_kernel_run_on_the_host_between_transfers(on_cpu, rng):
    table = gc.placeholder(gc.float32, (6, 4))
    idx = gc.constant([4, 0, 2])
    noise = gc.random_normal((3, 4), seed=7)
    out = gc.gather(table, idx) * 2.0 + noise
    value = rng.standard_normal((6, 4)).astype(np.float32)
    with gc.Session() as sess:
        want = sess.run(out, {table: value})
    with gc.Session(backend="cupy") as sess:
        got = sess.run(out, {table: value})
    (exe,) = on_cpu
    titles = {exe.plan.steps[i].title for i in exe._host_steps}
    assert "random_normal" in titles  # drawn on the host: the same numbers as numpy
    assert "gather" not in titles  # lowered to the device (cupy_lowerings)
    np.testing.assert_allclose(got, want, rtol=1e-6)  # same seeds, same numbers


def test_a_failing_host_step_names_the_users_line(on_cpu):
    table = gc.placeholder(gc.float32, (3, 2))
    idx = gc.placeholder(gc.int32, (2,))
    out = gc.gather(table, idx) + 1.0
    with gc.Session(backend="cupy") as sess:
        with pytest.raises(gc.GraphcError, match="test_cupy_backend.py"):
            sess.run(out, {table: np.zeros((3, 2), np.float32), idx: np.array([0, 9], np.int32)})


def _recording_capture(log):
    """A stand-in for stream capture: records the run and replays it on the buffers it saw
    at capture time, as a CUDA Graph replays fixed addresses."""

    def capture(xp, run):
        log.append("capture")

        def replay():
            log.append("replay")
            run()

        return replay

    return capture


def test_cuda_graph_replays_with_new_feed_values(on_cpu, rng):
    x, _, _, logits, _, _ = _mlp(batch=8)
    probs = gc.nn.softmax(logits)
    log = []
    with gc.Session(backend="numpy") as ref, gc.Session(backend="cupy") as sess:
        init = gc.global_variables_initializer()
        ref.run(init)
        sess.run(init)
        plan = gc.compile(probs, feed_shapes={x: (8, 20)}, backend="cupy")
        exe = cb.CupyExecutable(
            plan,
            xp=np,
            compile_kernels=host_kernels,
            **SMALL,
            cuda_graph=True,
            capture=_recording_capture(log),
        )
        assert exe._cuda_graph, "a forward MLP is pure device work"
        for _ in range(4):
            value = rng.standard_normal((8, 20)).astype(np.float32)
            (got,) = exe(sess._ctx, {x: value})
            np.testing.assert_allclose(got, ref.run(probs, {x: value}), rtol=1e-5, atol=1e-7)
    assert log == ["capture", "replay", "replay", "replay"]  # run 0 warms up eagerly


def test_plans_with_host_steps_are_not_captured(on_cpu):
    table = gc.placeholder(gc.float32, (6, 4))
    out = table * gc.random_normal((6, 4), seed=3)
    plan = gc.compile(out, feed_shapes={table: (6, 4)}, backend="cupy")
    exe = cb.CupyExecutable(
        plan,
        xp=np,
        compile_kernels=host_kernels,
        **SMALL,
        cuda_graph=True,
        capture=_recording_capture([]),
    )
    assert not exe._cuda_graph
    assert "on the host" in exe.capture_refused


@pytest.mark.skipif(cb.gpu_unavailable_reason() is None, reason="cupy and a GPU are present")
def test_without_cupy_the_backend_says_how_to_get_it():
    x = gc.placeholder(gc.float32, (2,))
    with gc.Session(backend="cupy") as sess:
        with pytest.raises(gc.GraphcError, match="cupy"):
            sess.run(x * 2.0, {x: np.ones(2, np.float32)})


def test_a_fused_op_without_a_scalar_expression_runs_the_group_on_the_host(on_cpu, rng):
    """An elementwise op that only has a numpy kernel (here an unregistered one) still fuses;
    its group then runs op by op on the host instead of as a generated kernel."""
    from graphc.ops.registry import OpDef

    twice = OpDef(
        "twice",
        lambda ins, attrs: [(ins[0].dtype, ins[0].shape)],
        numpy=lambda x, out=None: np.multiply(x, 2, out=out),
        kind="elementwise",
    )
    x = gc.placeholder(gc.float32, (4, 5))
    y = gc.exp(twice.build([gc.sin(x)]).outputs[0]) + 1.0
    value = rng.standard_normal((4, 5)).astype(np.float32)
    with gc.Session() as sess:
        want = sess.run(y, {x: value})
    with gc.Session(backend="cupy") as sess:
        got = sess.run(y, {x: value})
    (exe,) = on_cpu
    assert [exe.plan.steps[i].kind for i in exe._host_steps] == ["fused"]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_graphc_cuda_graph_turns_capture_on(monkeypatch):
    x = gc.placeholder(gc.float32, (4, 3))
    plan = gc.compile(gc.exp(x) * 2.0, feed_shapes={x: (4, 3)}, backend="cupy")
    options = dict(xp=np, compile_kernels=host_kernels, capture=_recording_capture([]), **SMALL)
    monkeypatch.setenv("GRAPHC_CUDA_GRAPH", "1")
    assert cb.make_cupy_executable(plan, **options)._cuda_graph
    monkeypatch.setenv("GRAPHC_CUDA_GRAPH", "0")
    assert not cb.make_cupy_executable(plan, **options)._cuda_graph


def test_every_registry_op_through_the_backend_on_the_cpu(on_cpu):
    """The device test's registry sweep in one plan (one kernel build): every stateless op with
    samples, on the backend with numpy standing in, against the numpy backend."""
    from graphc import dtypes as D
    from graphc.ops.registry import REGISTRY

    feeds, fetches = {}, []
    for op in REGISTRY.values():
        if op.samples is None or op.stateful:
            continue
        for arrays, attrs in op.samples(np.random.default_rng(0)):
            ins = [gc.placeholder(D.as_dtype(np.asarray(a).dtype), np.shape(a)) for a in arrays]
            feeds.update(zip(ins, arrays, strict=True))
            fetches += [(op.name, t) for t in op.build(ins, dict(attrs)).outputs]
    with gc.Session() as sess:
        want = sess.run([t for _, t in fetches], feeds)
    with gc.Session(backend="cupy") as sess:
        got = sess.run([t for _, t in fetches], feeds)
    assert len(on_cpu) == 1 and len(fetches) > 150
    (exe,) = on_cpu
    assert len(exe._launches) > 60, "the elementwise ops and reductions should be kernels"
    assert exe._host_steps == [], [exe.plan.steps[i].title for i in exe._host_steps]
    for (name, _), g, w in zip(fetches, got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), name
        if g.dtype.kind == "f":
            tol = 2.0**-20 if g.dtype.itemsize >= 4 else 2.0**-10
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)


# --- the GPU path's first-device fixes, checked with numpy standing in ------------------------


def _device_state(sess, exe):
    return cb._DEVICE_STATE[sess._ctx][id(exe.xp)]


def test_a_steady_training_step_copies_no_variable_between_host_and_device(on_cpu, rng):
    data = _data(rng)
    x, y, params, _, loss, train = _mlp()
    with gc.Session(backend="cupy") as sess:
        sess.run(gc.global_variables_initializer())
        sess.run([train, loss], {x: data[0], y: data[1]})
        exe = max(on_cpu, key=lambda e: len(e.plan.steps))
        state = _device_state(sess, exe)
        before = (state.uploads, state.downloads, exe.xp.calls["array"])
        for _ in range(4):
            sess.run([train, loss], {x: data[0], y: data[1]})
        assert (state.uploads, state.downloads, exe.xp.calls["array"]) == before
        assert exe._host_steps == []
        # the host copy is brought up to date only when the host reads it
        w1 = sess.get_variable(params[0])
        assert state.downloads == before[1] + 1
        np.testing.assert_array_equal(w1, sess.run(params[0]))
        sess.get_variable(params[0])
        assert state.downloads == before[1] + 1  # already current: no copy


def test_a_saved_checkpoint_holds_the_device_values(on_cpu, rng, tmp_path):
    data = _data(rng)
    x, y, params, _, loss, train = _mlp()
    with gc.Session(backend="cupy") as sess:
        sess.run(gc.global_variables_initializer())
        for _ in range(3):
            sess.run(train, {x: data[0], y: data[1]})
        want = [sess.run(p) for p in params]
        path = gc.train.Saver().save(sess, str(tmp_path / "ckpt"))
    with gc.Session() as sess:
        gc.train.Saver().restore(sess, path)
        for p, w in zip(params, want, strict=True):
            np.testing.assert_array_equal(sess.run(p), w)


def test_an_lstm_training_step_has_no_host_step(on_cpu):
    import graphc.compat.v1 as tf

    tf.set_random_seed(1)  # the same initial weights twice
    x = tf.placeholder(tf.float32, (8, 5, 6))
    y = tf.placeholder(tf.float32, (8, 3))
    outs, _ = tf.nn.static_rnn(
        tf.nn.rnn_cell.BasicLSTMCell(7), tf.unstack(x, axis=1), dtype=tf.float32
    )
    loss = tf.reduce_mean((tf.layers.dense(outs[-1], 3) - y) ** 2)
    train = tf.train.AdamOptimizer(1e-2).minimize(loss)
    feeds = {
        x: np.linspace(-1, 1, 240, dtype=np.float32).reshape(8, 5, 6),
        y: np.ones((8, 3), np.float32),
    }
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        want = [sess.run([train, loss], feeds)[1] for _ in range(3)]
    with gc.Session(backend="cupy") as sess:
        sess.run(gc.global_variables_initializer())
        got = [sess.run([train, loss], feeds)[1] for _ in range(3)]
    exe = max(on_cpu, key=lambda e: len(e.plan.steps))
    assert exe._host_steps == [], [exe.plan.steps[i].title for i in exe._host_steps]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_one_hot_and_gather_run_on_the_device_like_numpy(on_cpu, rng):
    table = gc.placeholder(gc.float32, (6, 4))
    idx = gc.placeholder(gc.int32, (3,))
    out = gc.gather(table, idx, axis=0) + gc.reduce_sum(gc.one_hot(idx, 4, axis=0), axis=1)
    (grad,) = gc.gradients(gc.reduce_sum(out * out), [table])
    feeds = {
        table: rng.standard_normal((6, 4)).astype(np.float32),
        idx: np.array([4, 0, 4], np.int32),
    }
    with gc.Session() as sess:
        want = sess.run([out, grad], feeds)
    with gc.Session(backend="cupy") as sess:
        got = sess.run([out, grad], feeds)
    (exe,) = on_cpu
    assert exe._host_steps == []
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def _capture_plan(a_shape, b_shape, dtype=gc.float32, **attrs):
    a = gc.placeholder(dtype, a_shape)
    b = gc.placeholder(dtype, b_shape)
    plan = gc.compile(
        gc.matmul(a, b, **attrs) * 2.0, feed_shapes={a: a_shape, b: b_shape}, backend="cupy"
    )
    return cb.CupyExecutable(
        plan,
        xp=np,
        compile_kernels=host_kernels,
        **SMALL,
        cuda_graph=True,
        capture=_recording_capture([]),
    )


def test_capture_refuses_matmuls_for_which_cupy_allocates_a_temporary():
    assert _capture_plan((4, 3), (3, 5))._cuda_graph  # plain 2-D: captured
    batched = _capture_plan((2, 3, 4), (2, 3, 5), transpose_a=True)
    assert not batched._cuda_graph
    assert "transposed batched operand" in batched.capture_refused
    half = _capture_plan((4, 3), (3, 5), dtype=gc.float16)
    assert not half._cuda_graph and "float16" in half.capture_refused


def test_replay_is_launched_on_the_callers_current_stream():
    events = []

    class Graph:
        def launch(self, stream):
            events.append(("launch", stream))

    class Stream:
        def __init__(self, non_blocking=False):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def begin_capture(self):
            events.append("begin")

        def end_capture(self):
            events.append("end")
            return Graph()

    from types import SimpleNamespace

    current = object()
    fake_xp = SimpleNamespace(
        cuda=SimpleNamespace(Stream=Stream, get_current_stream=lambda: current)
    )
    replay = cb._cupy_capture(fake_xp, lambda: events.append("run"))
    replay()
    assert events == ["begin", "run", "end", ("launch", current)]


def test_a_kernel_that_does_not_compile_names_the_users_line():
    from graphc.backends import cuda_modules

    def broken(kernels):
        err = cuda_modules.KernelCompileError('error: identifier "bogus" is undefined')
        err.kernel = kernels[0].name
        raise err

    x = gc.placeholder(gc.float32, (4,))
    y = gc.exp(x) * 3.0  # this line is the kernel's
    plan = gc.compile(y, feed_shapes={x: (4,)}, backend="cupy")
    with pytest.raises(gc.GraphcError, match=r"test_cupy_backend.py:\d+") as info:
        cb.CupyExecutable(plan, xp=np, compile_kernels=broken, **SMALL)
    assert "bogus" in str(info.value) and "does not compile" in str(info.value)


def test_feeds_go_through_a_pinned_buffer_and_one_device_buffer_per_feed(on_cpu, rng):
    class DeviceArray(np.ndarray):
        def set(self, host, stream=None):
            np.copyto(self, host)

    class Event:
        def synchronize(self):
            pass

    class Stream:
        def record(self):
            return Event()

    class PinnedXP(CountingNumpy):
        class cuda:
            @staticmethod
            def get_current_stream():
                return Stream()

        def empty(self, shape, dtype):
            self.calls["empty"] += 1
            return np.empty(shape, dtype).view(DeviceArray)

    x = gc.placeholder(gc.float32, (4, 3))
    plan = gc.compile(gc.exp(x) + 1.0, feed_shapes={x: (4, 3)}, backend="cupy")
    exe = cb.CupyExecutable(plan, xp=PinnedXP(), compile_kernels=host_kernels, **SMALL)
    pinned = []
    exe._pinned = lambda shape, dtype: pinned.append(shape) or np.empty(shape, dtype)
    ctx = gc.Session(backend="cupy")._ctx
    uploads = exe.xp.calls["asarray"]  # the plan's constants, once
    for _ in range(3):
        value = rng.standard_normal((4, 3)).astype(np.float32)
        (got,) = exe(ctx, {x: value})
        np.testing.assert_allclose(got, np.exp(value) + 1, rtol=1e-6)
    assert pinned == [(4, 3)]  # one pinned buffer, reused
    assert exe.xp.calls["asarray"] == uploads  # no pageable upload per run


def test_cuda_modules_compile_ieee_once_per_device_architecture(monkeypatch, tmp_path):
    from graphc.backends import cuda_compile, cuda_modules

    if cuda_compile.nvrtc() is None:
        pytest.skip("NVRTC is not installed (the dev extra brings nvidia-cuda-nvrtc)")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cuda_modules, "_modules", {})
    compiled, loaded = [], []
    real = cuda_compile.nvrtc_compile

    def recording(source, arch, **kw):
        compiled.append((arch, kw["options"]))
        return real(source, arch, **kw)

    monkeypatch.setattr(cuda_compile, "nvrtc_compile", recording)
    device = {"id": 0, "cc": "90"}

    class FakeCupy:
        class cuda:
            class Device:
                def __init__(self):
                    self.id, self.compute_capability = device["id"], device["cc"]

        @staticmethod
        def RawModule(path):
            loaded.append(path)
            return ("module", path)

    source = 'extern "C" __global__ void k(float* x) { x[0] = x[0] * 1e-30f; }'
    first = cuda_modules.load(FakeCupy, source)
    assert cuda_modules.load(FakeCupy, source) is first  # cached in memory
    device.update(id=1, cc="80")
    second = cuda_modules.load(FakeCupy, source)  # another device
    assert [a for a, _ in compiled] == ["sm_90", "sm_80"]
    assert all(opts == cuda_compile.IEEE for _, opts in compiled)
    assert first != second and len(list(tmp_path.glob("cuda/*.cubin"))) == 2
    monkeypatch.setattr(cuda_modules, "_modules", {})  # a new process
    device.update(id=0, cc="90")
    cuda_modules.load(FakeCupy, source)
    assert len(compiled) == 2  # read from disk
    with pytest.raises(cuda_modules.KernelCompileError, match="bogus"):
        cuda_modules.load(FakeCupy, 'extern "C" __global__ void k() { bogus(); }')


def test_nvrtc_keeps_float32_denormals_with_the_ieee_options():
    """What cupy's RawModule would do (``-ftz=true`` appended last) flushes; graphc's own
    options keep denormals, as numpy does."""
    import ctypes

    from graphc.backends import cuda_compile

    lib = cuda_compile.nvrtc()
    if lib is None:
        pytest.skip("NVRTC is not installed (the dev extra brings nvidia-cuda-nvrtc)")

    def ptx(options):
        prog = ctypes.c_void_p()
        src = b'extern "C" __global__ void k(float* x) { x[0] = x[0] * 1e-30f; }'
        lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"k.cu", 0, None, None)
        opts = [b"--gpu-architecture=compute_90", *(o.encode() for o in options)]
        assert lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts)) == 0
        n = ctypes.c_size_t()
        lib.nvrtcGetPTXSize(prog, ctypes.byref(n))
        buf = ctypes.create_string_buffer(n.value)
        lib.nvrtcGetPTX(prog, buf)
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        return buf.value.decode()

    assert "mul.ftz.f32" in ptx(cuda_compile.IEEE + ("-ftz=true",))
    keep = ptx(cuda_compile.IEEE)
    assert "mul.f32" in keep and ".ftz" not in keep


# --- the README's training plans: nothing on the host, nothing copied ------------------------


def _steady(sess, on_cpu, run, steps=3):
    """Run one warm-up step, then ``steps`` more; the training step's executable, and the
    variable copies and host steps of the steady steps."""
    run()
    exe = max(on_cpu, key=lambda e: len(e.plan.steps))
    state = _device_state(sess, exe)
    before = (state.uploads, state.downloads, exe.xp.calls["array"])
    values = [run() for _ in range(steps)]
    copies = (state.uploads - before[0], state.downloads - before[1])
    return exe, copies, exe.xp.calls["array"] - before[2], values


def _model_losses(build, feeds_of, backend, on_cpu, steps=3):
    import graphc.compat.v1 as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)  # the dropout masks: the same stream on both backends
        x, y, keep, train, loss, _ = build(tf)
        init = tf.global_variables_initializer()
    feeds = feeds_of(x, y, keep)
    sess = gc.Session(graph=graph, backend=backend)
    sess.run(init)
    if backend == "numpy":
        return [sess.run([train, loss], feeds)[1] for _ in range(steps + 1)], None
    exe, copies, arrays, losses = _steady(
        sess, on_cpu, lambda: sess.run([train, loss], feeds)[1], steps
    )
    return [None, *losses], (exe, copies, arrays)


def test_the_readme_cnn_trains_on_the_device_with_the_cpus_numbers(on_cpu):
    """The tutorial CNN (conv 5x5x32, max-pool, conv 5x5x64, max-pool, fc 1024, dropout,
    Adam): every step on the device, no variable copied in a steady step, and the same losses
    as the numpy backend, dropout masks included."""
    from benchmarks import models

    X, Y = models.mnist_like(2)

    def feeds(x, y, keep):
        return {x: X, y: Y, keep: 0.75}

    want, _ = _model_losses(models.cnn_graph, feeds, "numpy", on_cpu, steps=2)
    got, (exe, copies, arrays) = _model_losses(models.cnn_graph, feeds, "cupy", on_cpu, steps=2)
    assert exe._host_steps == [], [exe.plan.steps[i].title for i in exe._host_steps]
    titles = {s.title for s in exe.plan.steps}
    assert {"conv2d", "max_pool", "max_pool_grad", "random_uniform"} <= titles
    assert titles & {"conv2d_backprop_input", "conv2d_backprop_filter"}
    assert copies == (0, 0) and arrays == 0
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-5)
    assert got[1] != got[2]  # training: the loss moves


def test_the_readme_lstm_and_mlp3_steps_have_no_host_step(on_cpu, monkeypatch):
    from benchmarks import models
    from benchmarks.workloads import _mlp_data, mlp_graph

    monkeypatch.setattr(models, "BATCH_LSTM", 4)
    monkeypatch.setattr(models, "STEPS", 3)
    monkeypatch.setattr(models, "INPUT", 6)
    monkeypatch.setattr(models, "UNITS", 8)
    X = np.random.default_rng(0).random((4, 3, 6), np.float32)
    Y = np.eye(10, dtype=np.float32)[[1, 3, 5, 7]]

    def feeds(x, y, keep):
        return {x: X, y: Y}

    want, _ = _model_losses(models.lstm_graph, feeds, "numpy", on_cpu)
    got, (exe, copies, arrays) = _model_losses(models.lstm_graph, feeds, "cupy", on_cpu)
    assert exe._host_steps == [], [exe.plan.steps[i].title for i in exe._host_steps]
    assert copies == (0, 0) and arrays == 0
    assert exe.capture_refused is None  # GRAPHC_CUDA_GRAPH=1 would replay it
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-5)

    on_cpu.clear()
    Xm, Ym, W0 = _mlp_data(16, (30, 20, 20, 10))
    graph, x, y, train, loss, init = mlp_graph(W0, "xent", 0.01)
    sess = gc.Session(graph=graph, backend="cupy")
    sess.run(init)
    exe, copies, arrays, _ = _steady(sess, on_cpu, lambda: sess.run([train, loss], {x: Xm, y: Ym}))
    assert exe._host_steps == [] and copies == (0, 0) and arrays == 0
    assert exe._cuda_graph is False and exe.capture_refused is None  # capturable as it is


# --- convolution and pooling on the device -----------------------------------------------------


def _conv_cases():
    # (image NHWC, filter HWIO or pool window, strides, padding): odd SAME pads (more at the
    # bottom/right), strides that skip cells, VALID, and a batch large enough to slice
    return [
        ((2, 7, 6, 3), (3, 3, 3, 4), (2, 2), "SAME"),
        ((1, 6, 5, 2), (2, 3, 2, 3), (1, 2), "VALID"),
        ((3, 5, 5, 1), (5, 5, 1, 2), (1, 1), "SAME"),
        ((2, 4, 4, 2), (2, 2, 2, 1), (2, 2), "SAME"),
    ]


def test_conv_lowerings_run_the_numpy_kernels_math(rng, monkeypatch):
    from graphc.backends import cupy_conv as cc
    from graphc.ops import conv

    monkeypatch.setattr(cc, "PATCH_BUDGET", 64)  # several batch slices
    for xs, ws, s, p in _conv_cases():
        x = rng.standard_normal(xs)
        w = rng.standard_normal(ws)
        y = conv._conv2d(x, w, s, p)
        g = rng.standard_normal(y.shape)
        out = np.empty_like(y)
        assert cc._conv2d(np, None, out, x, w, strides=s, padding=p) is out
        np.testing.assert_allclose(out, y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            cc._conv2d_backprop_input(np, None, None, g, w, input_shape=xs, strides=s, padding=p),
            conv._conv2d_backprop_input(g, w, xs, s, p),
            rtol=1e-12,
            atol=1e-12,
        )
        np.testing.assert_allclose(
            cc._conv2d_backprop_filter(np, None, None, x, g, filter_shape=ws, strides=s, padding=p),
            conv._conv2d_backprop_filter(x, g, ws, s, p),
            rtol=1e-12,
            atol=1e-12,
        )


def test_pool_lowerings_match_the_numpy_kernels_ties_and_nans_included(rng):
    from graphc.backends import cupy_conv as cc
    from graphc.ops import conv

    for xs, ws, s, p in _conv_cases():
        k = ws[:2]
        attrs = {"ksize": k, "strides": s, "padding": p}
        x = rng.standard_normal(xs).astype(np.float32)
        x.flat[::3] = x.flat[1::3][: x.size // 3 + (x.size % 3 > 0)][: len(x.flat[::3])]  # ties
        x.flat[::7] = np.round(x.flat[::7])
        for case in (x, np.where(rng.random(xs) < 0.1, np.nan, x).astype(np.float32)):
            y = conv._max_pool(case, k, s, p)
            np.testing.assert_array_equal(cc._max_pool(np, None, None, case, **attrs), y)
            g = rng.standard_normal(y.shape).astype(np.float32)
            np.testing.assert_array_equal(
                cc._max_pool_grad(np, None, None, case, g, **attrs),
                conv._max_pool_grad(case, g, k, s, p),
            )
            d = rng.standard_normal(xs).astype(np.float32)
            d.flat[::11] = np.inf
            np.testing.assert_array_equal(
                cc._max_pool_select(np, None, None, case, d, **attrs),
                conv._max_pool_select(case, d, k, s, p),
            )
            np.testing.assert_allclose(
                cc._avg_pool(np, None, None, case, **attrs),
                conv._avg_pool(case, k, s, p),
                rtol=1e-6,
            )
            np.testing.assert_allclose(
                cc._avg_pool_grad(np, None, None, g, input_shape=xs, **attrs),
                conv._avg_pool_grad(g, xs, k, s, p),
                rtol=1e-6,
            )


# --- random draws on the device ----------------------------------------------------------------


def test_pcg64_on_the_array_module_gives_numpys_stream_bit_for_bit():
    from graphc.backends import cupy_random as cr

    for n in (1, 2, 5, 64, 1000, 4099):
        gen = np.random.default_rng(n)
        state = gen.bit_generator.state["state"]
        s = np.array(cr._halves(state["state"]), np.uint64)
        a, g = cr.jump_tables(np, n)
        inc = tuple(np.array([h], np.uint64) for h in cr._halves(state["inc"]))
        raw, after = cr.raw_outputs(np, (s[0:1], s[1:2]), a, cr.mul128(np, g, inc))
        np.testing.assert_array_equal(raw, gen.bit_generator.random_raw(n))
        assert (
            int(after[0][0]) << 64 | int(after[1][0]) == gen.bit_generator.state["state"]["state"]
        )
        for low, high, dtype in ((0, 1, np.float32), (-2.5, 3.0, np.float64), (1, 4, np.float16)):
            want = np.random.default_rng(n).uniform(low, high, n).astype(dtype)
            np.testing.assert_array_equal(cr.uniform_from_raw(np, raw, low, high, dtype), want)


def test_uniform_draws_and_dropout_run_on_the_device_with_the_cpus_numbers(on_cpu, rng):
    x = gc.placeholder(gc.float32, (6, 7))
    u = gc.random_uniform((3, 4), minval=-1.0, maxval=2.0, seed=4)
    like = gc.random_uniform_like(x, seed=5, dtype=gc.float64)
    dropped = gc.nn.dropout(x, rate=0.4, seed=6)
    unseeded = gc.random_uniform((5,))  # the graph seed: the op's id
    gc.get_default_graph().seed = 11
    value = rng.standard_normal((6, 7)).astype(np.float32)
    fetches = [u, like, dropped, unseeded]
    with gc.Session() as sess:
        want = [sess.run(fetches, {x: value}) for _ in range(3)]
        host_next = sess.run(u)  # the stream continues in another plan
    with gc.Session(backend="cupy") as sess:
        got = [sess.run(fetches, {x: value}) for _ in range(3)]
        exe = on_cpu[-1]
        assert exe._host_steps == [] and len(exe._state_lowered) == 4
        assert "may allocate" in exe.capture_refused
        draws = cb.cupy_random.device_random(sess._ctx, exe.xp)
        assert draws.uploads == 4  # each generator's state went up once
        np.testing.assert_array_equal(sess.run(u), host_next)
    for g_run, w_run in zip(got, want, strict=True):
        for g, w in zip(g_run, w_run, strict=True):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


def test_a_host_draw_of_the_same_generator_is_seen_by_the_device(on_cpu):
    u = gc.random_uniform((4,), seed=2)
    with gc.Session() as sess:
        want = [sess.run(u) for _ in range(3)]
    with gc.Session(backend="cupy") as sess:
        first = sess.run(u)
        sess._ctx.rng(u.op).uniform(size=4)  # the host generator moves on its own
        second = sess.run(u)
    np.testing.assert_array_equal(first, want[0])
    np.testing.assert_array_equal(second, want[2])


def test_normal_and_integer_draws_stay_on_the_host_with_the_same_numbers(on_cpu):
    n = gc.random_normal((3, 3), seed=1)
    i = gc.random_uniform((5,), minval=0, maxval=9, dtype=gc.int32, seed=2)
    with gc.Session() as sess:
        want = sess.run([n, i])
    with gc.Session(backend="cupy") as sess:
        got = sess.run([n, i])
    (exe,) = on_cpu
    assert sorted(exe.plan.steps[k].title for k in exe._host_steps) == [
        "random_normal",
        "random_uniform",
    ]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


# --- run-time checks -------------------------------------------------------------------------


def test_a_label_out_of_range_fails_before_any_variable_changes(on_cpu):
    x = gc.placeholder(gc.float32, (4, 3))
    labels = gc.placeholder(gc.int32, (4,))
    w = gc.Variable(np.ones((3, 5), np.float32), name="w")
    loss = gc.reduce_mean(
        gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x @ w)
    )  # this line builds the check
    train = gc.train.GradientDescentOptimizer(0.5).minimize(loss)
    feeds = {x: np.ones((4, 3), np.float32), labels: np.array([0, 1, 4, 2], np.int32)}
    with gc.Session(backend="cupy") as sess:
        sess.run(w.initializer)
        sess.run(train, feeds)
        exe = on_cpu[-1]
        assert exe._host_steps == []
        before = sess.run(w)
        feeds[labels] = np.array([0, 1, 5, 2], np.int32)
        with pytest.raises(gc.GraphcError, match=r"label 5 at index \[2\]") as info:
            sess.run(train, feeds)
        assert "test_cupy_backend.py" in str(info.value)
        np.testing.assert_array_equal(sess.run(w), before)  # the failed step changed nothing
        feeds[labels] = np.array([0, 1, 2, 2], np.int32)
        sess.run(train, feeds)  # the executable is usable again


# --- use_locking -----------------------------------------------------------------------------


def test_use_locking_updates_hold_the_variables_lock_and_lose_none(on_cpu):
    import threading

    n = 200_000  # numpy releases the GIL inside the in-place add
    v = gc.Variable(np.zeros(n, np.float64), name="v")
    a = gc.assign_add(v, np.ones(n), use_locking=True)
    b = gc.group(gc.assign_add(v, np.ones(n), use_locking=True), gc.no_op())
    with gc.Session(backend="cupy") as sess:
        sess.run(v.initializer)
        taken = []
        real = sess._ctx.lock

        def lock(var):
            taken.append(var)
            return real(var)

        sess._ctx.lock = lock
        calls = [sess.make_callable(a), sess.make_callable(b)]  # two plans: run concurrently
        barrier = threading.Barrier(4)

        def work(k):
            barrier.wait()
            for _ in range(40):
                calls[k % 2]()

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = sess.run(v)
    assert len(on_cpu) >= 2
    assert got.min() == got.max() == 160
    assert len(taken) == 160 and set(taken) == {v.op}


def test_a_locked_update_waits_for_the_last_one_on_the_callers_stream():
    events = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_event(self, event):
            events.append((self.name, "waits", event))

        def record(self):
            events.append((self.name, "records"))
            return f"event-{self.name}"

    current = [Stream("s1")]

    class FakeXP:
        class cuda:
            @staticmethod
            def get_current_stream():
                return current[0]

    ctx = gc.Session()._ctx
    state = cb.DeviceVariables(FakeXP, np.asarray)
    var = object()
    with state.locked(ctx, var):
        events.append("update 1")
    current[0] = Stream("s2")
    with state.locked(ctx, var):
        events.append("update 2")
    assert events == [
        "update 1",
        ("s1", "records"),
        ("s2", "waits", "event-s1"),
        "update 2",
        ("s2", "records"),
    ]


def test_a_bad_gather_index_fails_before_the_update_without_a_mid_step_sync(monkeypatch):
    """cupy's take wraps an index out of range (it never reads outside the table); the check
    runs on the device and is read back before the assign, which then never happens."""

    class WrappingNumpy(CountingNumpy):
        def take(self, a, idx, axis=None, out=None):
            return np.take(a, idx, axis=axis, out=out, mode="wrap")

    xp = WrappingNumpy()
    monkeypatch.setattr(
        cb,
        "make_cupy_executable",
        lambda plan, **o: cb.CupyExecutable(plan, xp=xp, compile_kernels=host_kernels, **SMALL),
    )
    table = gc.placeholder(gc.float32, (3, 2))
    idx = gc.placeholder(gc.int32, (2,))
    v = gc.Variable(np.zeros((2, 2), np.float32), name="v")
    update = v.assign(gc.gather(table, idx) * 2.0)  # the gather's line
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    with gc.Session(backend="cupy") as sess:
        sess.run(v.initializer)
        sess.run(update, {table: values, idx: np.array([2, -1], np.int32)})
        np.testing.assert_array_equal(sess.run(v), values[[2, 2]] * 2)
        with pytest.raises(gc.GraphcError, match="index 3 is out of bounds") as info:
            sess.run(update, {table: values, idx: np.array([0, 3], np.int32)})
        assert "test_cupy_backend.py" in str(info.value)
        np.testing.assert_array_equal(sess.run(v), values[[2, 2]] * 2)


def test_a_plan_with_locked_updates_is_not_captured():
    v = gc.Variable(np.zeros(3, np.float32), name="v")
    x = gc.placeholder(gc.float32, (3,))
    for locking, captured in ((False, True), (True, False)):
        update = gc.assign_add(v, x * 2.0, use_locking=locking)
        plan = gc.compile(update, feed_shapes={x: (3,)}, backend="cupy")
        exe = cb.CupyExecutable(plan, xp=np, compile_kernels=host_kernels, cuda_graph=True, **SMALL)
        assert exe._cuda_graph is captured
    assert "use_locking" in exe.capture_refused


def test_check_numerics_runs_on_the_device_and_stops_the_step_before_its_update(on_cpu):
    x = gc.placeholder(gc.float32, (3,))
    v = gc.Variable(np.zeros(3, np.float32), name="v")
    checked = gc.check_numerics(gc.log(x), "log of the input")  # the check's line
    update = v.assign_add(checked)
    with gc.Session(backend="cupy") as sess:
        sess.run(v.initializer)
        sess.run(update, {x: np.ones(3, np.float32)})
        exe = on_cpu[-1]
        assert exe._host_steps == []
        with pytest.raises(gc.NumericsError, match=r"log of the input \(1 NaN, 1 Inf") as info:
            sess.run(update, {x: np.array([1.0, 0.0, -1.0], np.float32)})
        assert "test_cupy_backend.py" in str(info.value)
        np.testing.assert_array_equal(sess.run(v), np.zeros(3))


def test_draws_of_changing_sizes_share_one_jump_table(on_cpu):
    x = gc.placeholder(gc.float32, (None, 4))
    dropped = gc.nn.dropout(x, rate=0.5, seed=8)
    rows = [5, 3, 9, 1]
    with gc.Session() as sess:
        want = [sess.run(dropped, {x: np.ones((r, 4), np.float32)}) for r in rows]
    with gc.Session(backend="cupy") as sess:
        got = [sess.run(dropped, {x: np.ones((r, 4), np.float32)}) for r in rows]
        draws = cb.cupy_random.device_random(sess._ctx, on_cpu[0].xp)
        assert draws.tables[0][0].size == 64  # 32 for 20 draws, grown once for 36
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
