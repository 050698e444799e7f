"""--emit py: the generated module runs and trains with numpy alone, in a subprocess where
graphc cannot be imported, and agrees with a Session on the same graph."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.backends.standalone import emit_module

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Runs the module with graphc made unimportable; prints JSON results.
DRIVER = """
import json, sys
sys.modules["graphc"] = None          # any `import graphc` now raises ImportError
try:
    import graphc  # noqa: F401
    raise SystemExit("graphc is importable")
except ImportError:
    pass
import numpy as np
sys.path.insert(0, sys.argv[1])
import model
data = np.load(sys.argv[2])
feeds = {k: data[k] for k in data.files}
losses = [float(next(iter(model.train_step(feeds).values()))) for _ in range(int(sys.argv[3]))]
outs = {k: np.asarray(v).tolist() for k, v in model.run(feeds).items()}
print(json.dumps({"losses": losses, "outputs": outs}))
"""


def _run_module(tmp_path, source, feeds, steps):
    (tmp_path / "model.py").write_text(source)
    np.savez(tmp_path / "feeds.npz", **feeds)
    (tmp_path / "driver.py").write_text(DRIVER)
    p = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "driver.py"),
            str(tmp_path),
            str(tmp_path / "feeds.npz"),
            str(steps),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _session_results(graph, feeds, steps):
    from graphc.frontend.dsl import OUTPUTS, TRAIN_CLAUSES

    clause = graph.get_collection(TRAIN_CLAUSES)[-1]
    outs = graph.get_collection(OUTPUTS)
    with gc.Session(graph=graph, optimize=0) as sess:
        for v in graph.get_collection("variables"):
            sess.run(v.initializer)
        losses = [float(sess.run([clause.op, clause.loss], feeds)[1]) for _ in range(steps)]
        return losses, dict(zip([t.op.name for t in outs], sess.run(outs, feeds), strict=True))


def _digits(rng, n=32):
    x = rng.normal(size=(n, 64)).astype(np.float32)
    labels = np.argmax(x @ rng.normal(size=(64, 10)), axis=1).astype(np.int64)
    return {"x": x, "labels": labels}


@pytest.mark.parametrize(
    "example, make_feeds",
    [
        ("mlp_classifier.g", _digits),
        (
            "two_layer.g",
            lambda rng: {
                "x": rng.normal(size=(16, 1000)).astype(np.float32),
                "y": rng.normal(size=(16, 10)).astype(np.float32),
            },
        ),
    ],
)
def test_module_trains_without_graphc_like_a_session(tmp_path, example, make_feeds):
    graph = gc.load(EXAMPLES / example, graph=gc.Graph())
    feeds = make_feeds(np.random.default_rng(0))
    source = emit_module(graph, source_name=example)
    assert "import graphc" not in source and "pickle" not in source
    got = _run_module(tmp_path, source, feeds, steps=5)
    losses, outputs = _session_results(
        graph, {graph.get_tensor_by_name(k): v for k, v in feeds.items()}, steps=5
    )
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-5)
    assert got["losses"][-1] < got["losses"][0]
    for name, value in outputs.items():
        assert np.shape(got["outputs"][name]) == np.shape(value)
        np.testing.assert_allclose(np.asarray(got["outputs"][name]), value, rtol=1e-4, atol=1e-6)


def test_module_checks_feeds_and_symbolic_dims(tmp_path):
    graph = gc.load(EXAMPLES / "linear_regression.g", graph=gc.Graph())
    ns = {}
    exec(compile(emit_module(graph), "model.py", "exec"), ns)  # our own generated source
    x = np.ones((4, 1), np.float32)
    assert set(ns["run"]({"x": x, "y": x})) == {"pred", "loss"}
    with pytest.raises(ValueError, match="dimension 'N'"):
        ns["run"]({"x": x, "y": np.ones((3, 1), np.float32)})
    assert set(ns["run"]({"x": x})) == {"pred"}  # what the feeds determine
    with pytest.raises(KeyError, match=r"output 'loss' needs the feeds \['y'\]"):
        ns["run"]({"x": x}, outputs=["loss"])
    with pytest.raises(KeyError, match="no output can be computed"):
        ns["run"]({})
    with pytest.raises(KeyError, match="missing feed 'y'"):
        ns["train_step"]({"x": x})
    before = ns["PARAMS"]["w"].copy()
    ns["train_step"]({"x": x, "y": 2 * x})
    assert not np.array_equal(before, ns["PARAMS"]["w"])


def test_module_starts_from_a_checkpoint(tmp_path):
    graph = gc.load(EXAMPLES / "linear_regression.g", graph=gc.Graph())
    with graph.as_default():
        saver = gc.train.Saver()
    with gc.Session(graph=graph) as sess:
        sess.run(graph.get_operation_by_name("w/Assign"))
        sess.run(graph.get_operation_by_name("b/Assign"))
        sess.run(
            graph.get_operation_by_name("train"),
            {"x:0": np.ones((2, 1)), "y:0": np.full((2, 1), 5.0)},
        )
        path = saver.save(sess, str(tmp_path / "ckpt"))
        w = sess.run("w")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphc.cli",
            "compile",
            str(EXAMPLES / "linear_regression.g"),
            "--emit",
            "py",
            "--restore",
            path,
            "-o",
            str(tmp_path / "m.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    ns = {}
    exec(compile((tmp_path / "m.py").read_text(), "m.py", "exec"), ns)
    np.testing.assert_array_equal(ns["PARAMS"]["w"], w)
    assert w[0, 0] != 0


def test_a_user_op_is_a_clear_error():
    """A user op's forward is the user's Python: a generated module cannot carry it."""
    twice = gc.register_op("twice_for_standalone", lambda a: 2 * a)
    x = gc.placeholder(gc.float32, shape=(3,), name="x")
    g = gc.get_default_graph()
    g.add_to_collection("graphc.outputs", twice(x))
    with pytest.raises(gc.UnimplementedError, match="twice_for_standalone"):
        emit_module(g)


def test_convolutional_model_trains_from_the_carried_kernels(tmp_path):
    src = """model cnn {
  input x : f32[N, 6, 6, 1]
  input y : i64[N]
  param k : f32[3, 3, 1, 2] = normal(stddev=0.3, seed=1)
  param w : f32[18, 3] = normal(stddev=0.3, seed=2)
  h = max_pool(relu(conv2d(x, k, strides=1, padding="SAME")), ksize=2, strides=2,
               padding="VALID")
  logits = reshape(avg_pool(h, ksize=2, strides=1, padding="SAME"), [-1, 18]) @ w
  loss = reduce_mean(sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
  output loss
  train loss with sgd(lr=0.5)
}"""
    g = gc.loads(src, graph=gc.Graph())
    source = emit_module(g)
    assert "def _conv2d(" in source and "import graphc" not in source
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(4, 6, 6, 1)).astype(np.float32), "y": rng.integers(0, 3, 4)}
    got = _run_module(tmp_path, source, feeds, steps=4)
    losses, _ = _session_results(g, {g.get_tensor_by_name(k): v for k, v in feeds.items()}, steps=4)
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-5)


@pytest.mark.parametrize(
    "optimizer",
    [
        "sgd(lr=0.1)",
        "momentum(lr=0.1, momentum=0.9, nesterov=true)",
        "adam(lr=0.1)",
        "rmsprop(lr=0.01, momentum=0.5)",
        "adagrad(lr=0.1)",
    ],
)
def test_every_optimizer_matches_the_session(optimizer):
    src = f"""model m {{
  input x : f32[N, 3]
  input y : i64[N]
  param w : f32[3, 4] = normal(stddev=0.5, seed=1)
  param b : f32[4] = 0.1
  logits = x @ w + b
  loss = reduce_mean(sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
         + 0.01 * l2_loss(w)
  acc = reduce_mean(cast(argmax(logits, axis=1) == y, f32))
  output loss, acc
  train loss with {optimizer}
}}"""
    g = gc.loads(src, graph=gc.Graph())
    ns = {}
    exec(compile(emit_module(g), "model.py", "exec"), ns)  # our own generated source
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(8, 3)).astype(np.float32), "y": rng.integers(0, 4, 8)}
    with gc.Session(graph=g, optimize=0) as sess:
        for v in g.get_collection("variables"):
            sess.run(v.initializer)
        want = [sess.run(["train", "loss"], feeds)[1] for _ in range(4)]
        want_out = sess.run(["loss", "acc"], feeds)
    got = [ns["train_step"](feeds)["loss"] for _ in range(4)]
    assert all(np.shape(v) == () for v in got)  # 0-d stays 0-d
    np.testing.assert_allclose(got, want, rtol=1e-6)
    out = ns["run"](feeds)
    np.testing.assert_allclose([out["loss"], out["acc"]], want_out, rtol=1e-6)


def _registry_cases():
    from graphc.ops.registry import REGISTRY

    rng = np.random.default_rng(0)
    for name, opdef in sorted(REGISTRY.items()):
        if opdef.samples is None or opdef.stateful:
            continue
        for i, (arrays, attrs) in enumerate(opdef.samples(rng)):
            yield pytest.param(name, arrays, attrs, id=f"{name}-{i}")


@pytest.mark.parametrize("name, arrays, attrs", list(_registry_cases()))
def test_registry_op_sources_agree_with_the_kernels(name, arrays, attrs):
    """Every op's carried kernel (the numpy backend's, as graphc's own source text) against
    its registry kernel."""
    from graphc.backends.standalone import supports
    from graphc.ops.registry import REGISTRY

    opdef = REGISTRY[name]
    if not supports(opdef):
        pytest.skip(f"{name} has no standalone source (emit_module names it in an error)")
    g = gc.Graph()
    with g.as_default():
        ins = [
            gc.placeholder(gc.as_dtype(np.asarray(a).dtype), np.shape(a), name=f"in{k}")
            for k, a in enumerate(arrays)
        ]
        node = opdef.build(ins, dict(attrs))
        for t in node.outputs:
            g.add_to_collection("graphc.outputs", t)
    ns = {}
    exec(compile(emit_module(g), "model.py", "exec"), ns)  # our own generated source
    feeds = {f"in{k}": np.asarray(a) for k, a in enumerate(arrays)}
    got = ns["run"](feeds)
    with gc.Session(graph=g, optimize=0) as sess:
        want = sess.run(list(node.outputs), {t: feeds[t.op.name] for t in ins})
    for t, w in zip(node.outputs, want, strict=True):
        g_ = got[t.op.name if len(node.outputs) == 1 else t.name]  # split's: "split:1"
        assert np.shape(g_) == np.shape(w) and np.asarray(g_).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g_, w, rtol=1e-6, atol=1e-12)
