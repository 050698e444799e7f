"""--emit py renders control flow: a module with cond, while_loop, scan and map_fn (and the
reverse scans their gradients are) computes what a Session computes, with numpy alone."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.backends.standalone import emit_module

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "control_flow.g"

# Runs the module where graphc cannot be imported; trains, then prints every output as JSON.
DRIVER = """
import json, sys
sys.modules["graphc"] = None          # any `import graphc` now raises ImportError
import numpy as np
sys.path.insert(0, sys.argv[1])
import model
data = np.load(sys.argv[2])
feeds = {k: data[k] for k in data.files}
losses = [float(model.train_step(feeds)["loss"]) for _ in range(int(sys.argv[3]))]
outs = {k: np.asarray(v).tolist() for k, v in model.run(feeds).items()}
print(json.dumps({"losses": losses, "outputs": outs}))
"""

MODEL = """model loops {
  input x : f64[T]
  input a : f64
  input p : bool
  param w : f64[3] = [0.5, -0.25, 1.0]
  param u : f64 = 0.3

  # Newton's square root of a (a while loop over a captured input)
  fn far(y) = abs(y * y - a) > 1e-12
  fn newton(y) = 0.5 * (y + a / y)
  root = while_loop(far, newton, [a])

  # a counting loop with maximum_iterations
  fn below(i, s) = i < 100
  fn count(i, s) = [i + 1, s + i]
  n, total = while_loop(below, count, [0, 0], maximum_iterations=12)

  # an RNN-like scan over x (trained through: its gradient is a reverse scan), a reverse
  # scan, and map_fn; cond picks a scan or a map_fn at run time
  fn step(h, v) = tanh(h * w + v * u)
  hs = scan(step, x, initializer=zeros([3], f64))
  fn back(acc, v) = acc * 0.5 + v
  rev = scan(back, x, initializer=zeros([], f64), reverse=true)
  fn cube(v) = v * v * v
  cubes = map_fn(cube, x)
  fn running() = scan(back, x, initializer=zeros([], f64))
  fn mapped() = map_fn(cube, x)
  picked = cond(p, running, mapped)

  loss = reduce_sum((hs - 0.5) ** 2) + 0.1 * reduce_sum((picked * u - 1.0) ** 2)
  output root, n, total, hs, rev, cubes, picked, loss
  train loss with sgd(lr=0.01)
}
"""


def _session(graph, feeds, steps):
    from graphc.frontend.dsl import OUTPUTS, TRAIN_CLAUSES

    clause = graph.get_collection(TRAIN_CLAUSES)[-1]
    outs = graph.get_collection(OUTPUTS)
    feeds = {graph.get_tensor_by_name(k): v for k, v in feeds.items()}
    with gc.Session(graph=graph) as sess:
        for v in graph.get_collection("variables"):
            sess.run(v.initializer)
        losses = [float(sess.run([clause.op, clause.loss], feeds)[1]) for _ in range(steps)]
        return losses, dict(zip([t.op.name for t in outs], sess.run(outs, feeds), strict=True))


def _module(tmp_path, source, feeds, steps):
    (tmp_path / "model.py").write_text(source)
    np.savez(tmp_path / "feeds.npz", **feeds)
    (tmp_path / "driver.py").write_text(DRIVER)
    p = subprocess.run(
        [sys.executable, "driver.py", str(tmp_path), "feeds.npz", str(steps)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _assert_same(got, want):
    losses, outputs = want
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-9)
    assert set(got["outputs"]) == set(outputs)
    for name, value in outputs.items():
        mine = np.asarray(got["outputs"][name])
        assert mine.shape == np.shape(value), name
        np.testing.assert_allclose(mine, value, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("taken", [True, False])
def test_loops_and_branches_run_and_train_without_graphc_like_a_session(tmp_path, taken):
    graph = gc.loads(MODEL, graph=gc.Graph())
    source = emit_module(graph, source_name="loops.g")
    assert "import graphc" not in source and "_BODY_" in source
    feeds = {"x": np.array([0.5, -1.0, 2.0, 0.25]), "a": np.float64(2.0), "p": np.bool_(taken)}
    got = _module(tmp_path, source, feeds, steps=3)
    _assert_same(got, _session(graph, feeds, steps=3))
    outs = got["outputs"]
    assert outs["root"] == pytest.approx(np.sqrt(2.0), abs=1e-12)
    assert (outs["n"], outs["total"]) == (12, 66)
    assert got["losses"][-1] < got["losses"][0]


def test_the_control_flow_example_emits_at_every_level(tmp_path):
    feeds = {"x": np.array([1.0, 2.0, 3.0], np.float32), "n": np.int32(2), "p": np.bool_(True)}
    for level in (0, 1, 2):
        graph = gc.load(EXAMPLE, graph=gc.Graph())
        ns: dict = {}
        exec(compile(emit_module(graph, optimize=level), "model.py", "exec"), ns)  # noqa: S102 - our own generated source
        want_losses, want = _session(graph, feeds, steps=2)
        got_losses = [float(ns["train_step"](feeds)["loss"]) for _ in range(2)]
        np.testing.assert_allclose(got_losses, want_losses, rtol=1e-6)
        for name, value in ns["run"](feeds).items():
            np.testing.assert_allclose(value, want[name], rtol=1e-6, err_msg=name)


def test_a_loop_variable_of_unknown_length_shrinks_in_the_module_as_in_a_session():
    src = """model m {
  input x : f32[?]
  input k : i32
  fn more(i, v) = i < k
  fn shrink(i, v) = [i + 1, v[1:] * 2.0]
  i, y = while_loop(more, shrink, [0, x])
  output y
}
"""
    graph = gc.loads(src, filename="shrink.g", graph=gc.Graph())
    ns: dict = {}
    exec(compile(emit_module(graph), "model.py", "exec"), ns)  # noqa: S102 - our own generated source
    x = np.arange(5, dtype=np.float32)
    with gc.Session(graph=graph) as sess:
        for k in (0, 2, 5):
            want = sess.run("y", {"x": x, "k": k})
            got = ns["run"]({"x": x, "k": k})["y"]
            assert got.shape == want.shape == (5 - k,)
            np.testing.assert_array_equal(got, want)


def test_only_the_taken_branchs_assignment_runs_in_the_module():
    from graphc.ir.graph import OUTPUTS

    with gc.Graph().as_default() as g:
        p = gc.placeholder(gc.bool, (), name="p")
        w = gc.Variable(np.array([1.0, 2.0]), name="w")
        picked = gc.cond(p, lambda: w.assign_add([1.0, 1.0]), lambda: w * 0.0, name="picked")
        g.add_to_collection(OUTPUTS, picked)
    ns: dict = {}
    exec(compile(emit_module(g), "model.py", "exec"), ns)  # noqa: S102 - our own generated source
    np.testing.assert_array_equal(ns["run"]({"p": False})[picked.op.name], [0.0, 0.0])
    np.testing.assert_array_equal(ns["PARAMS"]["w"], [1.0, 2.0])
    np.testing.assert_array_equal(ns["run"]({"p": True})[picked.op.name], [2.0, 3.0])
    np.testing.assert_array_equal(ns["run"]({"p": True})[picked.op.name], [3.0, 4.0])
    np.testing.assert_array_equal(ns["PARAMS"]["w"], [3.0, 4.0])
