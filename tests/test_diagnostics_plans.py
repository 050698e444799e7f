"""Compilation costs made visible (SPEC §7, §12): ``sess.plan_cache_info()`` and
``GRAPHC_DEBUG=1`` say why a plan was compiled again (which feed's shape changed); the plan
report lists the largest tensors live at the peak and each fusion boundary with its reason."""

import inspect

import numpy as np
import pytest

import graphc as gc


def _line_below(n=1):
    return inspect.currentframe().f_back.f_lineno + n


def _regression():
    x_line = _line_below()
    x = gc.placeholder(gc.float32, (None, 4), name="x")
    y = gc.placeholder(gc.float32, (None, 1), name="y")
    w = gc.Variable(np.zeros((4, 1), np.float32), name="w")
    loss = gc.reduce_mean(gc.square(gc.matmul(x, w) - y))
    train = gc.train.GradientDescentOptimizer(0.01).minimize(loss)
    return x, y, loss, train, x_line


@pytest.mark.parametrize("optimize", [0, 2])
def test_a_batch_size_change_is_the_reason_of_the_recompilation(optimize):
    x, y, loss, train, x_line = _regression()
    xs = np.ones((50, 4), np.float32)
    ys = np.ones((50, 1), np.float32)
    with gc.Session(optimize=optimize) as sess:
        sess.run(gc.global_variables_initializer())
        for _epoch in range(2):
            for i in range(0, 50, 16):  # the last batch has 2 rows
                run_line = _line_below()
                sess.run([train, loss], {x: xs[i : i + 16], y: ys[i : i + 16]})
        infos = sess.plan_cache_info()
    # init, then [train, loss] for 16 rows and for 2: the second epoch compiles nothing
    assert len(infos) == 3
    first, again = infos[1], infos[2]
    assert first.reason is None and again.reason is not None
    assert set(first.fetches) == set(again.fetches) == {train.name, loss.name}
    assert first.feeds == {"x:0": ((16, 4), "float32"), "y:0": ((16, 1), "float32")}
    assert (
        f"the feed for 'x:0' (built at {__file__}:{x_line}) changed shape (16, 4) -> (2, 4)"
        in again.reason
    )
    assert (
        f"the feed for 'y:0' (built at {__file__}:{x_line + 1}) changed shape (16, 1) -> "
        "(2, 1)" in again.reason
    )
    assert (again.compiled_at.file, again.compiled_at.line) == (__file__, run_line)
    assert "x:0: float32(2, 4)" in again.signature and "recompiled:" in str(again)


def test_graphc_debug_prints_each_compilation(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_DEBUG", "1")
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    y = gc.reduce_sum(x * 2.0)
    with gc.Session() as sess:
        sess.run(y, {x: np.ones((2, 3))})
        sess.run(y, {x: np.ones((2, 3))})
        sess.run(y, {x: np.ones((5, 3))})
    err = capsys.readouterr().err
    compiled = [line for line in err.splitlines() if line.startswith("graphc: compiled")]
    assert len(compiled) == 2
    assert "x:0: float32(2, 3)" in compiled[0] and "x:0: float32(5, 3)" in compiled[1]
    assert "recompiled: the feed for 'x:0'" in err and "changed shape (2, 3) -> (5, 3)" in err


def test_a_new_set_of_feeds_is_a_reason_too():
    x = gc.placeholder(gc.float32, (3,), name="x")
    h = x * 2.0
    y = h + 1.0
    with gc.Session() as sess:
        sess.run(y, {x: np.ones(3)})
        sess.run(y, {x: np.ones(3), h: np.zeros(3)})  # feeding an intermediate
        info = sess.plan_cache_info()[-1]
    assert "'multiply:0'" in info.reason and "is now fed" in info.reason


def _mlp_plan():
    x = gc.placeholder(gc.float32, (None, 64), name="x")
    labels = gc.placeholder(gc.int32, (None,), name="labels")
    w1 = gc.Variable(gc.random_normal((64, 32), stddev=0.1), name="w1")
    b1 = gc.Variable(gc.zeros((32,)), name="b1")
    w2 = gc.Variable(gc.random_normal((32, 10), stddev=0.1), name="w2")
    # (the bias gives the peak a sixth live intermediate: fetched results are not counted)
    logits = gc.matmul(gc.nn.relu(gc.matmul(x, w1) + b1), w2)
    loss = gc.reduce_mean(
        gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    return gc.compile([loss, train], feed_shapes={x: (128, 64), labels: (128,)})


def test_the_report_lists_the_five_largest_tensors_live_at_the_peak():
    plan = _mlp_plan()
    report = plan.report()
    step, live = plan.live_at_peak()
    assert len(live) > 5
    lines = report.splitlines()
    start = lines.index(f"largest live tensors at the peak (step {step}):")
    listed = lines[start + 1 : start + 6]
    assert not lines[start + 6].startswith("      ")  # exactly five
    sizes = sorted((s.nbytes for s in live), reverse=True)[:5]
    for line, slot, nbytes in zip(listed, live[:5], sizes, strict=True):
        assert slot.nbytes == nbytes and slot.name in line
    # the peak is stated before anything runs, and is at least what is live there
    assert plan.peak_bytes >= sum(s.nbytes for s in live)


def test_the_report_gives_each_fusion_boundary_a_reason():
    report = _mlp_plan().report()
    lines = report.splitlines()
    bounds = lines[lines.index("fusion boundaries:") + 1 :]
    bounds = [b for b in bounds if b.startswith("  ")]
    assert bounds and all(b.count(": ") >= 1 for b in bounds)
    reasons = " | ".join(b.rsplit(": ", 1)[1] for b in bounds)
    assert "matmul" in reasons and "reduction" in reasons
    # every boundary names the op on the far side with the user's line (this file)
    assert all(__file__ in b for b in bounds)


def test_plan_cache_info_prints_one_plan_per_line():
    x = gc.placeholder(gc.float32, (None, 2), name="x")
    y = gc.reduce_sum(x)
    with gc.Session() as sess:
        assert str(sess.plan_cache_info()) == "no plan compiled yet"
        sess.run(y, {x: np.ones((1, 2))})
        sess.run(y, {x: np.ones((3, 2))})
        text = str(sess.plan_cache_info())
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("plan for fetch [reduce_sum:0]")
    assert lines[2] == (
        f"  recompiled: the feed for 'x:0' (built at {__file__}:"
        f"{x.op.location.line}) changed shape (1, 2) -> (3, 2)"
    )
