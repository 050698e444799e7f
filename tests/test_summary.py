"""gc.summary: event files that TensorBoard's own reader reads back."""

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import graphc as gc


@pytest.fixture(autouse=True)
def fresh_graph():
    gc.reset_default_graph()
    yield
    gc.reset_default_graph()


def _read(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def _model():
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    w = gc.Variable(np.ones((3, 1), np.float32), name="w")
    with gc.name_scope("metrics"):
        loss = gc.reduce_mean(gc.square(x @ w), name="loss")
        gc.summary.scalar("loss", loss)
    gc.summary.histogram("w", w)
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    return x, w, loss, train


def test_scalars_histograms_and_graph_are_read_back_by_tensorboard(tmp_path):
    x, w, loss, train = _model()
    merged = gc.summary.merge_all()
    losses, ws = [], []
    with gc.Session() as sess, gc.summary.FileWriter(tmp_path, graph=sess.graph) as writer:
        sess.run(gc.global_variables_initializer())
        for step in range(5):
            ws.append(sess.run(w))
            summary, value, _ = sess.run([merged, loss, train], {x: np.ones((4, 3))})
            losses.append(float(value))
            writer.add_summary(summary, global_step=10 * step)
    acc = _read(tmp_path)
    assert acc.Tags()["scalars"] == ["metrics/loss"]
    assert acc.Tags()["histograms"] == ["w"]
    events = acc.Scalars("metrics/loss")
    assert [e.step for e in events] == [0, 10, 20, 30, 40]
    np.testing.assert_allclose([e.value for e in events], losses, rtol=1e-6)
    assert losses[-1] < losses[0]
    for event, wv in zip(acc.Histograms("w"), ws):
        h = event.histogram_value
        assert h.num == 3 and sum(h.bucket) == 3
        assert h.min == pytest.approx(wv.min()) and h.max == pytest.approx(wv.max())
        assert h.sum == pytest.approx(wv.sum(), rel=1e-6)
    graph = acc.Graph()
    names = {n.name: n for n in graph.node}
    assert "metrics/loss" in names and "w" in names
    assert any(i.split(":")[0] == "w" for n in graph.node for i in n.input)


def test_text_summaries_and_python_side_scalars(tmp_path):
    note = gc.summary.text("note", "hello **world**")
    with gc.Session() as sess:
        fetched = sess.run(note)
    with gc.summary.FileWriter(str(tmp_path)) as writer:
        writer.add_summary(fetched, 3)
        writer.add_scalar("lr", 0.5, 7)
    acc = _read(tmp_path)
    (event,) = acc.Tensors("note")
    assert event.step == 3 and event.tensor_proto.string_val == [b"hello **world**"]
    assert [(e.step, e.value) for e in acc.Scalars("lr")] == [(7, 0.5)]


def test_merge_all_is_none_without_summaries_and_merge_joins_them(tmp_path):
    assert gc.summary.merge_all() is None
    a = gc.summary.scalar("a", gc.constant(1.0))
    b = gc.summary.scalar("b", gc.constant(2.0), collections=[])  # not in merge_all
    with gc.Session() as sess:
        only_a, both = sess.run([gc.summary.merge_all(), gc.summary.merge([a, b])])
    with gc.summary.FileWriter(tmp_path / "run") as writer:
        writer.add_summary(only_a, 1)
        writer.add_summary(both, 2)
    acc = _read(tmp_path / "run")
    assert [(e.step, e.value) for e in acc.Scalars("a")] == [(1, 1.0), (2, 1.0)]
    assert [(e.step, e.value) for e in acc.Scalars("b")] == [(2, 2.0)]


def test_a_scalar_summary_of_many_values_names_the_tensor_and_line():
    v = gc.constant(np.ones((2, 3), np.float32), name="batch_losses")
    with pytest.raises(gc.GraphcError, match=r"batch_losses.*\(2, 3\).*reduce_mean") as e:
        gc.summary.scalar("loss", v)
    assert "test_summary.py" in str(e.value)


def test_add_summary_rejects_what_is_not_a_summary(tmp_path):
    with gc.summary.FileWriter(tmp_path) as writer:
        with pytest.raises(gc.GraphcError, match="add_summary"):
            writer.add_summary(3.0, 1)


def test_a_writer_never_closed_still_reaches_the_disk_at_exit(tmp_path):
    import subprocess
    import sys

    code = (
        "import graphc as gc, sys\n"
        "w = gc.summary.FileWriter(sys.argv[1])\n"
        "w.add_scalar('loss', 0.25, 9)\n"
    )  # no flush, no close: TF 1.x tutorials
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)
    assert [(e.step, e.value) for e in _read(tmp_path).Scalars("loss")] == [(9, 0.25)]
