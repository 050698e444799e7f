"""gc.viz and graphc's own SVG layout: full names, collapsed gradient and optimizer scopes,
edges that never cross a box, Jupyter's _repr_svg_."""

import re

import numpy as np
import pytest

import graphc as gc

LONG = "a_rather_long_layer_name_of_forty_chars"


@pytest.fixture(autouse=True)
def fresh_graph():
    gc.reset_default_graph()
    yield
    gc.reset_default_graph()


def _model():
    x = gc.placeholder(gc.float32, (None, 8), name="x")
    labels = gc.placeholder(gc.int64, (None,), name="labels")
    with gc.name_scope(LONG):
        h = gc.layers.dense(x, 16, activation=gc.relu)
    logits = gc.layers.dense(h, 4, name="logits")
    loss = gc.reduce_mean(
        gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), name="loss"
    )
    train = gc.train.AdamOptimizer(0.01).minimize(loss)
    return x, labels, loss, train


def _boxes(svg):
    return [
        tuple(float(v) for v in m)
        for m in re.findall(
            r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"[^>]*><title>', svg
        )
    ]


def _curve_points(d):
    """Points along an SVG path of M, L and C segments."""
    nums = lambda s: [float(v) for v in re.split(r"[ ,]+", s.strip()) if v]  # noqa: E731
    out, cur = [], None
    for cmd, args in re.findall(r"([MLC])([^MLC]*)", d):
        v = nums(args)
        if cmd == "M":
            cur = (v[0], v[1])
        elif cmd == "L":
            for t in np.linspace(0, 1, 20):
                out.append((cur[0] + t * (v[0] - cur[0]), cur[1] + t * (v[1] - cur[1])))
            cur = (v[0], v[1])
        else:
            p0, p1, p2, p3 = cur, (v[0], v[1]), (v[2], v[3]), (v[4], v[5])
            for t in np.linspace(0, 1, 40):
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
                out.append(
                    (
                        a * p0[0] + b * p1[0] + c * p2[0] + e * p3[0],
                        a * p0[1] + b * p1[1] + c * p2[1] + e * p3[1],
                    )
                )
            cur = p3
    return out


def _assert_edges_avoid_boxes(svg):
    boxes = _boxes(svg)
    paths = re.findall(r'<path d="(M[^"]+)" fill="none"', svg)
    assert boxes and paths
    b = np.array(boxes)
    for d in paths:
        p = np.array(_curve_points(d))
        inside = (
            (b[None, :, 0] + 1 < p[:, None, 0])
            & (p[:, None, 0] < b[None, :, 0] + b[None, :, 2] - 1)
            & (b[None, :, 1] + 1 < p[:, None, 1])
            & (p[:, None, 1] < b[None, :, 1] + b[None, :, 3] - 1)
        )
        hit = np.argwhere(inside)
        assert len(hit) == 0, f"edge {d[:40]}... crosses the box at {b[hit[0][1]][:2]}"


def test_viz_of_a_python_graph_collapses_gradients_and_the_optimizer(tmp_path):
    x, labels, loss, train = _model()
    svg = gc.viz(train, tmp_path / "step.svg", use_graphviz=False)
    assert (tmp_path / "step.svg").read_text() == svg and svg.startswith("<svg")
    assert f"{LONG}/dense/matmul" in svg  # full names, never cut
    assert "gradients/*" in svg and "Adam/*" in svg and "ops collapsed" in svg
    assert "gradients/matmul" not in svg and "Adam/assign" not in svg
    assert "w/Adam_1" not in svg  # the slot variables went into the Adam box
    _assert_edges_avoid_boxes(svg)


def test_viz_expands_scopes_on_request():
    x, labels, loss, train = _model()
    svg = gc.viz(train, expand=["gradients"], use_graphviz=False)
    assert "gradients/*" not in svg and "gradients/matmul" in svg and "Adam/*" in svg
    svg = gc.viz(train, expand=True, use_graphviz=False)
    assert "ops collapsed" not in svg and "Adam/assign" in svg
    _assert_edges_avoid_boxes(svg)


def test_viz_of_a_loss_a_plan_and_jupyter(tmp_path):
    x, labels, loss, train = _model()
    svg = gc.viz(loss, use_graphviz=False)
    assert "gradients" not in svg and "loss" in svg
    plan = gc.compile([loss, train], feed_shapes={x: (4, 8), labels: (4,)})
    svg = gc.viz(plan, use_graphviz=False)
    assert "steps, peak" in svg and "fused[" in svg and f"{LONG}/dense/" in svg
    _assert_edges_avoid_boxes(svg)
    assert plan._repr_svg_().startswith("<svg")
    assert gc.get_default_graph()._repr_svg_().startswith("<svg")
    dot = gc.viz(loss, tmp_path / "loss.dot")
    assert dot.startswith("digraph") and (tmp_path / "loss.dot").read_text() == dot


def test_viz_rejects_what_it_cannot_draw():
    with pytest.raises(gc.GraphcError, match="viz draws a Graph"):
        gc.viz(42)


def test_graphc_viz_command_draws_the_g_model_collapsed(tmp_path):
    from pathlib import Path

    from graphc.cli import main

    model = Path(__file__).resolve().parents[1] / "examples" / "mlp_classifier.g"
    assert main(["viz", str(model), "-o", str(tmp_path / "g.svg")]) == 0
    svg = (tmp_path / "g.svg").read_text()
    assert "before: " in svg and "after: " in svg
    assert "train/*" in svg and "gradients/*" in svg
    assert "loss/sparse_softmax_cross_entropy_with_logits/log_softmax/reduce_max" in svg
    if "Graphviz" not in svg:  # graphc's own drawing (no `dot` installed)
        _assert_edges_avoid_boxes(svg)
    assert main(["viz", str(model), "--expand", "all", "-o", str(tmp_path / "g.dot")]) == 0
    assert "train/assign" in (tmp_path / "g.dot").read_text()
