"""--emit py renders the optimized plan: the module is the numpy backend's generated code for
the plan of each level, so -O0 and -O2 differ as their plans do, and every level agrees with
a Session at that level."""

import re
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.backends.standalone import emit_module
from graphc.frontend.dsl import OUTPUTS, TRAIN_CLAUSES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _feeds(example, rng):
    if example == "mlp_classifier.g":
        x = rng.normal(size=(24, 64)).astype(np.float32)
        return {"x": x, "labels": np.argmax(x[:, :10], axis=1).astype(np.int64)}
    if example == "two_layer.g":
        return {
            "x": rng.normal(size=(8, 1000)).astype(np.float32),
            "y": rng.normal(size=(8, 10)).astype(np.float32),
        }
    x = rng.normal(size=(17, 1)).astype(np.float32)
    return {"x": x, "y": 2 * x + 1}


def _module(graph, optimize):
    ns = {}
    exec(compile(emit_module(graph, optimize=optimize), "model.py", "exec"), ns)  # our own source
    return ns


@pytest.mark.parametrize("optimize", [0, 1, 2])
@pytest.mark.parametrize("example", ["mlp_classifier.g", "two_layer.g", "linear_regression.g"])
def test_the_module_agrees_with_a_session_at_every_level(example, optimize):
    graph = gc.load(EXAMPLES / example, graph=gc.Graph())
    feeds = _feeds(example, np.random.default_rng(0))
    ns = _module(graph, optimize)
    clause = graph.get_collection(TRAIN_CLAUSES)[-1]
    outs = graph.get_collection(OUTPUTS)
    tensor_feeds = {graph.get_tensor_by_name(k): v for k, v in feeds.items()}
    with gc.Session(graph=graph, optimize=optimize) as sess:
        for v in graph.get_collection("variables"):
            sess.run(v.initializer)
        want_before = sess.run(outs, tensor_feeds)
        want_losses = [sess.run([clause.op, clause.loss], tensor_feeds)[1] for _ in range(3)]
        want_after = sess.run(outs, tensor_feeds)
    got_before = ns["run"](feeds)
    got_losses = [ns["train_step"](feeds)[clause.loss.op.name] for _ in range(3)]
    got_after = ns["run"](feeds)
    np.testing.assert_allclose(got_losses, want_losses, rtol=2e-5)
    for t, b, a in zip(outs, want_before, want_after, strict=True):
        for got, want in ((got_before, b), (got_after, a)):
            assert np.shape(got[t.op.name]) == np.shape(want)
            assert np.asarray(got[t.op.name]).dtype == np.asarray(want).dtype
            np.testing.assert_allclose(got[t.op.name], want, rtol=2e-5, atol=1e-6)


def _kernels(source):
    return [
        int(n)
        for n in re.findall(r"^# (?:run: every output|train_step): (\d+) kernels", source, re.M)
    ]


def test_o0_and_o2_differ_as_their_plans_do():
    graph = gc.load(EXAMPLES / "mlp_classifier.g", graph=gc.Graph())
    o0, o2 = emit_module(graph, optimize=0), emit_module(graph, optimize=2)
    assert o0 != o2
    clause = graph.get_collection(TRAIN_CLAUSES)[-1]
    plans = {
        level: gc.compile([clause.loss, clause.op], graph=graph, optimize=level) for level in (0, 2)
    }
    assert _kernels(o0)[-1] == plans[0].stats["kernels"]
    assert _kernels(o2)[-1] == plans[2].stats["kernels"] < plans[0].stats["kernels"]
    assert _kernels(o2)[0] < _kernels(o0)[0]  # the run plan too


def test_the_cli_emits_the_plan_of_its_level(tmp_path):
    import subprocess
    import sys

    paths = {}
    for level in ("0", "2"):
        paths[level] = tmp_path / f"m{level}.py"
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "graphc.cli",
                "compile",
                str(EXAMPLES / "linear_regression.g"),
                "-O",
                level,
                "--emit",
                "py",
                "-o",
                str(paths[level]),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
    o0, o2 = paths["0"].read_text(), paths["2"].read_text()
    assert "at -O0" in o0 and "at -O2" in o2 and _kernels(o0) != _kernels(o2)
    feeds = _feeds("linear_regression.g", np.random.default_rng(2))
    results = []
    for source in (o0, o2):
        ns = {}
        exec(compile(source, "m.py", "exec"), ns)  # our own source
        results.append(
            [ns["train_step"](feeds)["loss"] for _ in range(3)] + [ns["run"](feeds)["loss"]]
        )
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_the_softmax_max_and_exp_are_computed_once():
    """The emitter used to walk the user's graph: softmax and the cross-entropy each computed
    their own max and exp. The plan's CSE leaves one of each."""
    graph = gc.load(EXAMPLES / "mlp_classifier.g", graph=gc.Graph())
    source = emit_module(graph, optimize=2)
    first = source.split("def _plan_0():")[1].split("def _plan_1():")[0]
    assert first.count("_max_reduce, axis=(1,)") == 1
    assert len(re.findall(r"= np\.exp$", first, re.M)) == 1


def test_the_emitted_module_runs_its_plans_in_threads():
    graph = gc.load(EXAMPLES / "two_layer.g", graph=gc.Graph())
    ns = _module(graph, 2)
    feeds = _feeds("two_layer.g", np.random.default_rng(1))
    want = ns["run"](feeds)["pred"]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda _: ns["run"](feeds)["pred"], range(6)))
    for g in got:
        np.testing.assert_array_equal(g, want)


def test_generated_identifiers_are_the_plans_not_the_users():
    src = """model m {
  input evil__import__ : f32[N, 3]
  param os_system : f32[3, 2] = ones()
  exec_ = reduce_sum(evil__import__ @ os_system)
  output exec_
}"""
    g = gc.loads(src, graph=gc.Graph())
    source = emit_module(g)
    for name in ("evil__import__", "os_system", "exec_"):
        # the names appear only as string literals, never as identifiers
        assert re.search(rf"(?<!['\w]){name}(?!['\w])", source) is None
    ns = {}
    exec(compile(source, "m.py", "exec"), ns)  # our own source
    out = ns["run"]({"evil__import__": np.ones((2, 3), np.float32)})
    assert out["exec_"] == 12.0


def test_a_defaulted_input_can_be_fed_or_left_out():
    src = """model m {
  input x : f32[N, 2]
  input keep : f32 = 0.5
  y = reduce_sum(x * keep)
  output y
}"""
    g = gc.loads(src, graph=gc.Graph())
    ns = {}
    exec(compile(emit_module(g), "m.py", "exec"), ns)  # our own source
    x = np.ones((3, 2), np.float32)
    assert ns["run"]({"x": x})["y"] == 3.0
    assert ns["run"]({"x": x, "keep": np.float32(2.0)})["y"] == 12.0


def test_a_model_with_only_a_train_clause():
    src = """model m {
  input x : f32[N, 4]
  param w : f32[4, 1] = ones()
  loss = reduce_mean((x @ w) ** 2)
  train loss with sgd(lr=0.1)
}"""
    g = gc.loads(src, graph=gc.Graph())
    ns = {}
    exec(compile(emit_module(g), "m.py", "exec"), ns)  # our own source
    x = np.ones((2, 4), np.float32)
    assert ns["run"]({"x": x}) == {}
    assert ns["train_step"]({"x": x})["loss"] == 16.0
    assert ns["train_step"]({"x": x})["loss"] < 16.0
