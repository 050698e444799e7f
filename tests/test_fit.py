"""gc.train.fit and `graphc run --train`'s flags, run as a user runs them."""

import csv
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import graphc as gc
from graphc.fit import Progress

DROP = """\
model drop {
  input x : f32[N, 4]
  input y : f32[N, 1]
  input training : bool[] = false
  param w : f32[4, 1] = zeros()
  h = dropout(x, rate=0.5, training=training, seed=3)
  pred = h @ w
  loss = reduce_mean((pred - y) ** 2)
  output pred, loss
  train loss with sgd(lr=0.05)
}
"""


def graphc(*args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "graphc.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def work(tmp_path):
    (tmp_path / "drop.g").write_text(DROP)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
    np.save(tmp_path / "x.npy", x[:100])
    np.save(tmp_path / "y.npy", y[:100])
    np.save(tmp_path / "xt.npy", x[100:])
    np.save(tmp_path / "yt.npy", y[100:])
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_graph():
    gc.reset_default_graph()
    yield
    gc.reset_default_graph()


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_trains_in_minibatches_with_eval_history_plot_and_tensorboard(work):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    p = graphc(
        "run",
        "drop.g",
        "--feed",
        "x=x.npy",
        "--feed",
        "y=y.npy",
        "--train",
        "--epochs",
        "4",
        "--batch-size",
        "32",
        "--shuffle",
        "--seed",
        "7",
        "--eval",
        "x=xt.npy",
        "--eval",
        "y=yt.npy",
        "--log-every",
        "2",
        "--history",
        "loss.csv",
        "--plot",
        "loss.png",
        "--logdir",
        "runs",
        "--save",
        "ckpt",
        "--save-every",
        "5",
        "--fetch",
        "loss",
        cwd=work,
    )
    assert p.returncode == 0, p.stderr
    # 100 examples in batches of 32: 4 steps an epoch
    assert "trained 16 steps" in p.stdout and "eval: loss = " in p.stdout
    assert "steps/s" in p.stderr  # the progress line: rate, ETA
    assert "step 15: saved ckpt" in p.stderr and (work / "ckpt").exists()
    rows = _rows(work / "loss.csv")
    assert list(rows[0])[:4] == ["step", "epoch", "loss", "seconds"]
    train = [r for r in rows if r["loss"]]
    evals = [r for r in rows if r["eval_loss"]]
    assert [int(r["step"]) for r in train] == list(range(2, 17, 2))
    assert [int(r["step"]) for r in evals] == [4, 8, 12, 16]
    assert [int(r["epoch"]) for r in evals] == [1, 2, 3, 4]
    assert float(evals[-1]["eval_loss"]) < float(evals[0]["eval_loss"])
    assert (work / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    acc = EventAccumulator(str(work / "runs"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == list(range(2, 17, 2))
    assert [e.step for e in acc.Scalars("eval/loss")] == [4, 8, 12, 16]
    assert float(p.stdout.split("eval: loss = ")[1].split()[0]) == pytest.approx(
        acc.Scalars("eval/loss")[-1].value, rel=1e-5
    )


def test_eval_and_the_final_fetch_run_with_the_training_switch_off(work):
    # dropout at rate 0.5 changes the loss; with the switch off, eval equals a plain run
    p = graphc(
        "run",
        "drop.g",
        "--feed",
        "x=x.npy",
        "--feed",
        "y=y.npy",
        "--train",
        "3",
        "--eval",
        "x=xt.npy",
        "--eval",
        "y=yt.npy",
        "--save",
        "ckpt",
        "--fetch",
        "loss",
        cwd=work,
    )
    assert p.returncode == 0, p.stderr
    eval_loss = float(p.stdout.split("eval: loss = ")[1].split()[0])
    q = graphc(
        "run",
        "drop.g",
        "--feed",
        "x=xt.npy",
        "--feed",
        "y=yt.npy",
        "--restore",
        "ckpt",
        "--fetch",
        "loss",
        cwd=work,
    )
    assert q.returncode == 0, q.stderr
    assert float(q.stdout.split("loss = ")[-1]) == pytest.approx(eval_loss, rel=1e-5)
    r = graphc(
        "run",
        "drop.g",
        "--feed",
        "x=x.npy",
        "--feed",
        "y=y.npy",
        "--restore",
        "ckpt",
        "--fetch",
        "loss",
        cwd=work,
    )
    final = float(p.stdout.strip().split("loss = ")[-1])
    assert float(r.stdout.split("loss = ")[-1]) == pytest.approx(final, rel=1e-5)


def test_ctrl_c_saves_a_checkpoint_and_says_where(work):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graphc.cli",
            "run",
            "drop.g",
            "--feed",
            "x=x.npy",
            "--feed",
            "y=y.npy",
            "--train",
            "100000000",
            "--save",
            "ckpt/model",
            "--history",
            "h.csv",
            "--fetch",
            "loss",
        ],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 100
        for line in proc.stderr:  # the progress line says training has started
            if line.startswith("train ") or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        os.makedirs(work / "ckpt", exist_ok=True)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "saved checkpoint ckpt/model" in err and "interrupted at step" in err
    assert (work / "ckpt" / "model").exists() and (work / "h.csv").exists()
    q = graphc(
        "run",
        "drop.g",
        "--feed",
        "x=x.npy",
        "--feed",
        "y=y.npy",
        "--restore",
        "ckpt/model",
        "--fetch",
        "loss",
        cwd=work,
    )
    assert q.returncode == 0, q.stderr
    assert float(q.stdout.split("loss = ")[-1]) < 10.0  # trained: the zero weights give 14.3


def test_training_flags_without_training_are_a_user_error(work):
    p = graphc(
        "run", "drop.g", "--feed", "x=x.npy", "--feed", "y=y.npy", "--batch-size", "8", cwd=work
    )
    assert p.returncode == 1 and "--batch-size only apply when training" in p.stderr
    p = graphc(
        "run",
        "drop.g",
        "--feed",
        "x=x.npy",
        "--feed",
        "y=y.npy",
        "--train",
        "3",
        "--save-every",
        "2",
        cwd=work,
    )
    assert p.returncode == 1 and "--save-every needs --save" in p.stderr


# --- the Python side ----------------------------------------------------------------------------


def _model():
    x = gc.placeholder(gc.float32, (None, 2), name="x")
    y = gc.placeholder(gc.float32, (None, 1), name="y")
    switch = gc.placeholder_with_default(False, (), name="training")
    w = gc.Variable(np.zeros((2, 1), np.float32), name="w")
    pred = gc.dropout(x, rate=0.5, training=switch, seed=1) @ w
    loss = gc.reduce_mean(gc.square(pred - y))
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss)
    return x, y, switch, w, loss, train


def test_fit_batches_epochs_shuffle_callbacks_and_history():
    x, y, switch, w, loss, train = _model()
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    Y = X @ np.array([[2.0], [-1.0]], np.float32)
    seen = []
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        h = gc.train.fit(
            sess,
            train,
            {x: X, y: Y},
            loss=loss,
            batch_size=16,
            epochs=3,
            shuffle=True,
            seed=0,
            eval_feeds={x: X, y: Y},
            training=[switch],
            callbacks=[seen.append],
            progress=False,
        )
        final = sess.run(loss, {x: X, y: Y})
    assert h.steps == 12 and not h.interrupted  # ceil(50 / 16) = 4 batches an epoch
    assert [r["epoch"] for r in h.rows if "loss" in r] == [1, 2, 3]
    evals = [r["eval_loss"] for r in h.rows if "eval_loss" in r]
    assert len(evals) == 3 and evals[-1] == pytest.approx(float(final), rel=1e-5)
    assert seen == h.rows and h.loss[-1] < h.loss[0]


def test_fit_runs_exactly_steps_and_keyboard_interrupt_saves(tmp_path):
    x, y, switch, w, loss, train = _model()
    X = np.ones((8, 2), np.float32)
    Y = np.ones((8, 1), np.float32)
    saver = gc.train.Saver()

    def stop(row):
        if row["step"] >= 6:
            raise KeyboardInterrupt

    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        h = gc.train.fit(
            sess, train, {x: X, y: Y}, loss=loss, batch_size=3, steps=7, progress=False, log_every=1
        )
        assert h.steps == 7 and len(h.loss) == 7
        with pytest.raises(KeyboardInterrupt) as e:
            gc.train.fit(
                sess,
                train,
                {x: X, y: Y},
                loss=loss,
                steps=100,
                log_every=3,
                callbacks=[stop],
                saver=saver,
                save_path=str(tmp_path / "ck"),
                progress=False,
            )
        w_now = sess.run(w)
    assert isinstance(e.value, gc.train.TrainingInterrupted)
    assert e.value.step == 6 and e.value.checkpoint == str(tmp_path / "ck")
    with gc.Session() as sess:
        saver.restore(sess, str(tmp_path / "ck"))
        np.testing.assert_array_equal(sess.run(w), w_now)


def test_progress_line_shows_rate_and_eta_and_refreshes_by_time():
    out = io.StringIO()
    bar = Progress(100, file=out, interval=3600)  # not a terminal: plain lines, by time
    for _ in range(50):
        bar.update(1, "loss 0.5")
    first = out.getvalue()
    assert first.startswith("train 1/100 (1%)")  # training has started
    assert first.count("\n") == 1  # then 49 steps, but the interval has not passed
    bar.interval = 0
    bar.update(1)
    line = out.getvalue()[len(first) :]
    assert "51/100 (51%)" in line and "steps/s" in line and "<" in line and "loss 0.5" in line
