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

pytestmark = pytest.mark.skipif(cuda_host.host_compiler() is None,
                                reason="the host harness needs g++ to compile generated kernels")


SMALL = {"block": 32, "max_grid": 4}     # CPU threads stand in for CUDA threads: few of them


_HOST_MODULES: dict = {}


def host_kernels(kernels):
    """The host harness for ``kernels``, compiled once per kernel set for the whole file."""
    key = tuple(sorted(k.name for k in kernels))
    if key not in _HOST_MODULES:
        _HOST_MODULES[key] = cuda_host.HostModule(kernels)
    return _HOST_MODULES[key]


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
        np.testing.assert_array_equal(mirror, got)   # the session's host record is current


def test_the_training_step_runs_entirely_on_the_device(on_cpu, rng):
    data = _data(rng)
    _train("cupy", 1, data)
    step = max(on_cpu, key=lambda e: len(e.plan.steps))
    assert step._host_steps == []
    assert step._launches, "no generated kernels in the training step"


def test_the_memory_plan_is_one_device_allocation(on_cpu, rng):
    x = gc.placeholder(gc.float32, (8, 1 << 13))
    total = gc.reduce_sum(gc.exp(gc.sin(x) * 0.5), axis=1)       # few long rows: two passes
    scaled = gc.tanh(x) * 2.0 + 1.0
    with gc.Session(backend="cupy") as sess:
        value = rng.standard_normal((8, 1 << 13)).astype(np.float32)
        got_total, got_scaled = sess.run([total, scaled], {x: value})
    exe, = on_cpu
    assert exe.xp.calls["empty"] == 1                             # the arena, nothing else
    assert exe._partials, "the two-pass reduction should need partials"
    planned = [exe._base[s.index] for s in exe.plan.slots if s.kind in ("arena", "scratch")]
    assert planned
    for view in exe._partials + planned:
        assert np.shares_memory(view, exe._arena)
    assert exe.device_bytes >= exe.plan.peak_bytes
    np.testing.assert_allclose(got_total, np.exp(np.sin(value) * 0.5).sum(axis=1), rtol=1e-5)
    # 2 tanh(x) + 1 cancels near tanh(x) = -1/2: compare to float32 rounding of O(1) terms
    np.testing.assert_allclose(got_scaled, np.tanh(value) * 2 + 1, rtol=1e-6, atol=2.0 ** -21)


def test_feeds_are_copied_in_once_and_fetches_copied_out(on_cpu, rng):
    x = gc.placeholder(gc.float32, (4, 3))
    y = gc.exp(x) + 1.0
    with gc.Session(backend="cupy") as sess:
        value = rng.standard_normal((4, 3)).astype(np.float32)
        first = sess.run(y, {x: value})
        exe, = on_cpu
        before = exe.xp.calls["asarray"]
        second = sess.run(y, {x: value})
        assert exe.xp.calls["asarray"] == before + 1                # one feed, one copy
        kept = first.copy()
        first[...] = 0                                              # a copy, not the arena
        np.testing.assert_array_equal(second, kept)
        np.testing.assert_allclose(second, np.exp(value) + 1, rtol=2.0 ** -21)


def test_variables_stay_on_the_device_until_the_host_replaces_them(on_cpu):
    v = gc.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")
    step = gc.assign_add(v, gc.ones_like(v))
    with gc.Session(backend="cupy") as sess:
        sess.run(v.initializer)
        for _ in range(3):
            sess.run(step)
        xp = on_cpu[0].xp
        assert xp.calls["array"] == 1              # uploaded once, then updated in place
        np.testing.assert_array_equal(sess.get_variable(v), np.arange(6).reshape(2, 3) + 3)
        sess.set_variable(v, np.zeros((2, 3), np.float32))          # the host replaces it
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
    exe, = on_cpu
    titles = {exe.plan.steps[i].title for i in exe._host_steps}
    assert {"gather", "random_normal"} <= titles
    np.testing.assert_allclose(got, want, rtol=1e-6)          # same seeds, same numbers


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
        exe = cb.CupyExecutable(plan, xp=np, compile_kernels=host_kernels, **SMALL,
                                cuda_graph=True, capture=_recording_capture(log))
        assert exe._cuda_graph, "a forward MLP is pure device work"
        for _ in range(4):
            value = rng.standard_normal((8, 20)).astype(np.float32)
            got, = exe(sess._ctx, {x: value})
            np.testing.assert_allclose(got, ref.run(probs, {x: value}), rtol=1e-5, atol=1e-7)
    assert log == ["capture", "replay", "replay", "replay"]         # run 0 warms up eagerly


def test_plans_with_host_steps_are_not_captured(on_cpu):
    table = gc.placeholder(gc.float32, (6, 4))
    out = gc.gather(table, gc.constant([1, 2])) * 2.0
    plan = gc.compile(out, feed_shapes={table: (6, 4)}, backend="cupy")
    exe = cb.CupyExecutable(plan, xp=np, compile_kernels=host_kernels, **SMALL,
                            cuda_graph=True, capture=_recording_capture([]))
    assert not exe._cuda_graph


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
    twice = OpDef("twice", lambda ins, attrs: [(ins[0].dtype, ins[0].shape)],
                  numpy=lambda x, out=None: np.multiply(x, 2, out=out), kind="elementwise")
    x = gc.placeholder(gc.float32, (4, 5))
    y = gc.exp(twice.build([gc.sin(x)]).outputs[0]) + 1.0
    value = rng.standard_normal((4, 5)).astype(np.float32)
    with gc.Session() as sess:
        want = sess.run(y, {x: value})
    with gc.Session(backend="cupy") as sess:
        got = sess.run(y, {x: value})
    exe, = on_cpu
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
    exe, = on_cpu
    assert len(exe._launches) > 60, "the elementwise ops and reductions should be kernels"
    for (name, _), g, w in zip(fetches, got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), name
        if g.dtype.kind == "f":
            tol = 2.0 ** -20 if g.dtype.itemsize >= 4 else 2.0 ** -10
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)
