"""The backend seam: one registry that Session, gc.compile and the CLI read, and the written
Executable protocol every backend's product follows."""

import numpy as np
import pytest

import graphc as gc
from graphc.backends import (
    Executable,
    available_backends,
    get_backend,
    register_backend,
    unregister_backend,
)
from graphc.backends.numpy_backend import NumpyExecutable
from graphc.backends.reference import ReferenceExecutable


class ToyExecutable:
    """A backend of its own: the numpy code of the plan, counting its calls."""

    def __init__(self, plan, calls):
        self._inner = NumpyExecutable(plan)
        self.plan = plan
        self.feed_tensors = self._inner.feed_tensors
        self.calls = calls

    def __call__(self, ctx, feeds):
        return self.call(ctx, *[feeds[t] for t in self.feed_tensors])

    def call(self, ctx, *arrays):
        self.calls.append(len(arrays))
        return self._inner.call(ctx, *arrays)

    def call_traced(self, ctx, feeds):
        return self._inner.call_traced(ctx, feeds)


@pytest.fixture
def toy():
    requests, calls = [], []

    def factory(request):
        requests.append(request)
        return ToyExecutable(request.plan(), calls)

    register_backend("toy", factory, tile_elems=8)
    yield requests, calls
    unregister_backend("toy")


def _model():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 10, name="w")
    loss = gc.reduce_mean(gc.square(gc.tanh(x @ w) - 0.5))
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    return x, w, loss, train


def test_the_built_in_backends_are_registered():
    assert {"numpy", "cupy", "reference"} <= set(available_backends())
    assert get_backend("numpy").tile_elems and get_backend("cupy").tile_elems is None


def test_an_unknown_backend_names_the_registered_ones():
    with pytest.raises(gc.GraphcError, match=r"unknown backend 'tpu'.*numpy, cupy, reference"):
        gc.Session(backend="tpu")
    x = gc.placeholder(gc.float32, (2,))
    with pytest.raises(gc.GraphcError, match="unknown backend 'tpu'"):
        gc.compile(x * 2.0, backend="tpu")


def test_a_registered_backend_runs_through_session_and_compile(toy):
    requests, calls = toy
    x, w, loss, train = _model()
    xs = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    results = {}
    for backend in ("numpy", "toy"):
        with gc.Session(backend=backend) as sess:
            sess.run(gc.global_variables_initializer())
            for _ in range(3):
                sess.run(train, {x: xs})
            results[backend] = sess.run([loss, w], {x: xs})
    np.testing.assert_allclose(results["toy"][0], results["numpy"][0], rtol=1e-6)
    np.testing.assert_allclose(results["toy"][1], results["numpy"][1], rtol=1e-6)
    assert requests and all(r.backend == "toy" and r.optimize == 2 for r in requests)
    assert calls  # the session ran the toy's executables, not numpy's
    plan = gc.compile([train, loss], feed_shapes={x: (4, 3)}, backend="toy")
    assert plan.backend == "toy" and "[toy, optimize=2]" in plan.report()


def test_the_tile_size_a_backend_registers_is_what_compile_plans_with(toy):
    x = gc.placeholder(gc.float32, (64, 4), name="x")
    y = gc.reduce_sum(gc.exp(gc.tanh(x) * 2.0 + 1.0))
    tiles = {
        b: [s.tile_rows for s in gc.compile(y, backend=b).steps if s.kind == "fused"]
        for b in ("numpy", "toy")
    }
    assert tiles["toy"] == [2] and tiles["numpy"] == [64]  # 8 elements = 2 rows of 4


def test_the_cli_offers_every_registered_backend(toy):
    from graphc.cli import _parser

    args = _parser().parse_args(["compile", "m.g", "--backend", "toy"])
    assert args.backend == "toy"


@pytest.mark.parametrize("optimize", [0, 2])
def test_executables_follow_the_protocol(optimize):
    x, w, loss, train = _model()
    with gc.Session(optimize=optimize) as sess:
        sess.run(gc.global_variables_initializer())
        exe = sess._executable([loss], [], sess._check_feeds({x: np.ones((2, 3))}))
        assert isinstance(exe, Executable)
        assert exe.feed_tensors == [x]
        a = exe(sess._ctx, {x: np.ones((2, 3), np.float32)})
        b = exe.call(sess._ctx, np.ones((2, 3), np.float32))
        np.testing.assert_array_equal(a[0], b[0])
        assert (exe.plan is None) == (optimize == 0)


def test_the_reference_backend_interprets_at_every_level(tmp_path):
    x, w, loss, train = _model()
    with gc.Session(backend="reference", optimize=2) as sess:
        sess.run(gc.global_variables_initializer())
        exe = sess._executable([loss], [], sess._check_feeds({x: np.ones((2, 3))}))
        assert isinstance(exe, ReferenceExecutable)
        want = sess.run(loss, {x: np.ones((2, 3))})
        with pytest.raises(gc.GraphcError, match="trace= needs a compiled plan"):
            sess.run(loss, {x: np.ones((2, 3))}, trace=str(tmp_path / "t.json"))
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        np.testing.assert_allclose(sess.run(loss, {x: np.ones((2, 3))}), want, rtol=1e-6)
