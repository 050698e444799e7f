"""The TF 1.x tutorial programs in ``tests/tf1_scripts`` -- written in the style of
aymericdamien's TensorFlow-Examples and of the official "MNIST for ML beginners" and "Deep
MNIST for experts" -- run here through ``import graphc.compat.v1 as tf``. Each was also run,
unchanged but for that import line, on TensorFlow 2.21's ``tensorflow.compat.v1`` with the
same data (``fake_mnist.py``: scikit-learn's handwritten digits grown to 28x28); the
side-by-side figures are in the issue note. TensorFlow is not imported here.

Where a program's randomness is numpy's or absent (zero initial weights), graphc must
reproduce TensorFlow's printed numbers; where it comes from ``tf.random_normal`` the two
libraries draw different weights, so the program must train (accuracy far above chance).
To keep the suite quick, the slower programs run fewer steps: the test rewrites their
parameter lines, and each rewrite must find its line, so the scripts cannot drift away."""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import graphc.compat.v1 as tf
from graphc.compat import _support
from graphc.compat._support import MissingAPIError
from graphc.errors import ShapeError

SCRIPTS = Path(__file__).parent / "tf1_scripts"


def run_script(name, monkeypatch, tmp_path, lines=(), **params):
    """Execute ``tf1_scripts/<name>.py`` as ``__main__`` and return its globals. Each
    ``params`` item rewrites the parameter line ``key = ...`` to ``key = value``; each
    ``lines`` pair replaces a whole line (it must exist)."""
    source = (SCRIPTS / f"{name}.py").read_text()
    edits = [(f"{key} = ", f"{key} = {value}") for key, value in params.items()] + list(lines)
    for prefix, new in edits:
        old = next((ln for ln in source.splitlines() if ln.startswith(prefix)), None)
        assert old is not None, f"{name}.py has no line starting with {prefix!r}"
        source = source.replace(old, new, 1)
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "argv", [f"{name}.py"])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # checkpoints and logs land here
    monkeypatch.setattr(_support, "_warned", set())  # keep the once-per-process warnings
    namespace = {"__name__": "__main__", "__file__": str(SCRIPTS / f"{name}.py")}
    try:
        exec(compile(source, str(SCRIPTS / f"{name}.py"), "exec"), namespace)
    except SystemExit as e:  # tf.app.run exits with main's result
        assert e.code in (None, 0), f"{name}.py exited with {e.code!r}"
    finally:
        tf.reset_default_graph()
    return namespace


# --- programs whose numbers do not depend on the random generator: TensorFlow's figures ---------


def test_basic_operations_print_what_tensorflow_prints(monkeypatch, tmp_path, capsys):
    ns = run_script("basic_operations", monkeypatch, tmp_path)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "b'Hello, TensorFlow!'",
        "a=2, b=3",
        "Addition with constants: 5",
        "Multiplication with constants: 6",
        "Addition with variables: 5",
        "Multiplication with variables: 6",
        "[[12.]]",
        "0",
        "1",
        "2",
        "3",
        "[array([21.], dtype=float32), array([7.], dtype=float32)]",
        "[array([14.], dtype=float32)]",
        "[-2. -1.]",
    ]
    assert ns["final_value"] == 21.0


def test_linear_regression_reaches_tensorflows_fit(monkeypatch, tmp_path):
    # numpy draws the start (seed 7); TF 2.21 ended at cost 0.08802373, W 0.30848593,
    # b 0.3777991 and test cost 0.07971501 after 1000 epochs of per-sample SGD
    ns = run_script("linear_regression", monkeypatch, tmp_path)
    np.testing.assert_allclose(ns["training_cost"], 0.08802373, rtol=1e-4)
    np.testing.assert_allclose(ns["testing_cost"], 0.07971501, rtol=1e-4)


def test_logistic_regression_matches_tensorflow(monkeypatch, tmp_path):
    # zero initial weights: TF's last epoch cost 0.175014481, test accuracy 0.9766667
    ns = run_script("logistic_regression", monkeypatch, tmp_path)
    np.testing.assert_allclose(ns["avg_cost"], 0.175014481, rtol=1e-4)
    assert ns["test_accuracy"] == pytest.approx(0.9766667, abs=1e-6)


def test_nearest_neighbor_matches_tensorflow(monkeypatch, tmp_path):
    ns = run_script("nearest_neighbor", monkeypatch, tmp_path)
    assert ns["accuracy"] == pytest.approx(0.985)


def test_mnist_for_beginners_matches_tensorflow(monkeypatch, tmp_path):
    # argparse flags, tf.app.run(main, argv), InteractiveSession, sparse softmax loss
    ns = run_script("mnist_softmax", monkeypatch, tmp_path)
    assert ns["test_accuracy"] == pytest.approx(0.9766667, abs=1e-6)


def test_tensorboard_basic_runs_its_summaries_and_matches_tensorflow(monkeypatch, tmp_path):
    # name scopes, summary.scalar/merge_all, FileWriter.add_summary: real event files
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ns = run_script("tensorboard_basic", monkeypatch, tmp_path)
    assert ns["test_accuracy"] == pytest.approx(0.93, abs=1e-6)
    ns["summary_writer"].flush()
    acc = EventAccumulator(ns["logs_path"])
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"loss", "accuracy"}
    losses = acc.Scalars("loss")
    assert len(losses) > 10 and losses[-1].value < losses[0].value


# --- programs with tf.random_normal weights: they must train ------------------------------------


def test_multilayer_perceptron_trains(monkeypatch, tmp_path):
    ns = run_script("multilayer_perceptron", monkeypatch, tmp_path, training_epochs="5")
    assert ns["test_accuracy"] > 0.8  # TF 2.21, 15 epochs: 0.96 (graphc 0.92)


@pytest.mark.slow
def test_neural_network_raw_trains(monkeypatch, tmp_path):
    ns = run_script("neural_network_raw", monkeypatch, tmp_path, num_steps="100")
    assert ns["test_accuracy"] > 0.8  # TF 2.21, 500 steps: 0.96 (graphc 0.97)


def test_save_restore_model_resumes_where_it_stopped(monkeypatch, tmp_path):
    ns = run_script(
        "save_restore_model",
        monkeypatch,
        tmp_path,
        lines=[("    for epoch in range(7):", "    for epoch in range(2):")],
    )
    # the restored weights (and Adam's slots) give the saved model's accuracy back exactly
    assert ns["restored_accuracy"] == ns["first_accuracy"]
    assert ns["test_accuracy"] > 0.8  # TF 2.21, 3 + 7 epochs: 0.88 (graphc 0.90)


@pytest.mark.slow
def test_convolutional_network_raw_trains(monkeypatch, tmp_path):
    ns = run_script(
        "convolutional_network_raw", monkeypatch, tmp_path, num_steps="20", batch_size="32"
    )
    assert ns["test_accuracy"] > 0.4  # TF 2.21, 60 steps of 64: 0.91 (graphc 0.92)


@pytest.mark.slow
def test_deep_mnist_for_experts_trains(monkeypatch, tmp_path):
    ns = run_script(
        "mnist_deep",
        monkeypatch,
        tmp_path,
        lines=[("    for i in range(80):", "    for i in range(30):")],
    )
    assert ns["test_accuracy"] > 0.6  # TF 2.21, 80 steps: 0.977 (graphc 0.99)


@pytest.mark.slow
def test_recurrent_network_trains(monkeypatch, tmp_path):
    ns = run_script(
        "recurrent_network", monkeypatch, tmp_path, training_steps="40", batch_size="64"
    )
    assert ns["test_accuracy"] > 0.5  # TF 2.21, 150 steps of 128: 0.945 (graphc 0.95)


@pytest.mark.slow
def test_autoencoder_reconstructs(monkeypatch, tmp_path):
    ns = run_script("autoencoder", monkeypatch, tmp_path, num_steps="250")
    assert ns["test_loss"] < 0.25  # 0.41 at the start; TF 2.21, 300 steps: 0.172


@pytest.mark.slow
def test_dynamic_rnn_with_sequence_lengths_runs_to_the_end(monkeypatch, tmp_path):
    # static_rnn(sequence_length=) and tf.range(tf.shape(outputs)[0]) to pick each last
    # output. It needs ~150 steps to leave chance (TF 2.21, 300 steps: 0.956, graphc 0.964),
    # too many for the suite: the two tests below pin down what it relies on.
    ns = run_script("dynamic_rnn", monkeypatch, tmp_path, training_steps="10")
    assert np.isfinite(ns["loss"]) and 0 <= ns["test_accuracy"] <= 1


@pytest.mark.slow
def test_layers_cnn_checkpoint_round_trip(monkeypatch, tmp_path):
    ns = run_script("layers_cnn", monkeypatch, tmp_path, TRAIN_STEPS="30")
    assert ns["final_step"] == 30
    assert ns["restored_accuracy"] == pytest.approx(ns["test_accuracy"])
    assert ns["test_accuracy"] > 0.6  # TF 2.21, 80 steps: 0.953 (graphc 0.983)


# --- the behaviour those programs needed, pinned down ------------------------------------------


def test_static_rnn_sequence_length_masks_the_padding():
    """TF's rule: past an example's length the output is zero and the state stops, so the
    final state is the state after the example's last real step."""
    tf.set_random_seed(0)
    x = tf.placeholder(tf.float32, [None, 4, 3])
    lengths = tf.placeholder(tf.int32, [None])
    cell = tf.nn.rnn_cell.BasicLSTMCell(5)
    steps = tf.unstack(x, 4, 1)
    with tf.variable_scope("masked"):
        masked, masked_state = tf.nn.static_rnn(
            cell, steps, dtype=tf.float32, sequence_length=lengths
        )
    with tf.variable_scope("masked", reuse=True):
        plain, plain_states = [], []
        state = cell.zero_state(tf.shape(x)[0], tf.float32)
        with tf.variable_scope("rnn"):
            for s in steps:
                out, state = cell(s, state)
                plain.append(out)
                plain_states.append(state)
    feed = {x: np.random.default_rng(0).standard_normal((3, 4, 3)), lengths: [4, 2, 0]}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        m, ms, p, ps = sess.run([masked, masked_state, plain, plain_states], feed)
    m, p = np.stack(m), np.stack(p)  # (time, batch, units)
    for b, n in enumerate([4, 2, 0]):
        np.testing.assert_allclose(m[:n, b], p[:n, b], rtol=1e-6)
        assert not m[n:, b].any()
        want = ps[n - 1] if n else (np.zeros(5), np.zeros(5))
        np.testing.assert_allclose(ms.c[b], want[0][b] if n else want[0], rtol=1e-6)
        np.testing.assert_allclose(ms.h[b], want[1][b] if n else want[1], rtol=1e-6)


def test_dynamic_rnn_sequence_length_zeroes_outputs_past_the_end():
    x = tf.placeholder(tf.float32, [2, 3, 2])
    outputs, state = tf.nn.dynamic_rnn(
        tf.nn.rnn_cell.GRUCell(4), x, sequence_length=[1, 3], dtype=tf.float32
    )
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out, last = sess.run([outputs, state], {x: np.ones((2, 3, 2))})
    assert not out[0, 1:].any() and out[1].all()
    np.testing.assert_allclose(last, [out[0, 0], out[1, 2]], rtol=1e-6)


def test_range_of_a_run_time_length_follows_the_batch():
    x = tf.placeholder(tf.float32, [None, 3])
    index = tf.range(0, tf.shape(x)[0]) * 3 + 2  # the last column of each row
    last = tf.gather(tf.reshape(x, [-1]), index)
    assert index.dtype is tf.int32 and index.shape.as_list() == [None]
    assert tf.range(2, 9, 3).shape.as_list() == [3]  # static bounds stay a constant
    with tf.Session() as sess:
        for n in (4, 1):
            rows = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
            np.testing.assert_array_equal(sess.run(last, {x: rows}), rows[:, 2])
        assert sess.run(
            tf.range(tf.shape(x)[0], dtype=tf.float32), {x: np.zeros((2, 3))}
        ).tolist() == [0.0, 1.0]


def test_range_refuses_a_non_scalar_bound():
    x = tf.placeholder(tf.int32, [None])
    with pytest.raises(ShapeError, match="scalar bounds"):
        tf.range(x)


def test_bidirectional_rnn_refuses_sequence_lengths_rather_than_ignoring_them():
    x = [tf.placeholder(tf.float32, [2, 3]) for _ in range(2)]
    cells = tf.nn.rnn_cell.GRUCell(4), tf.nn.rnn_cell.GRUCell(4)
    with pytest.raises(MissingAPIError, match="sequence_length"):
        tf.nn.static_bidirectional_rnn(*cells, x, dtype=tf.float32, sequence_length=[1, 2])


def test_gather_nd_picks_index_rows_and_routes_gradients_back():
    # the RNN scripts' other way to take each example's last output:
    # tf.gather_nd(outputs, tf.stack([tf.range(batch), seqlen - 1], axis=1))
    params = tf.placeholder(tf.float32, [None, 3, 4])
    rows = tf.placeholder(tf.int32, [None, 2])
    picked = tf.gather_nd(params, rows)
    whole = tf.gather_nd(params, [[1]])  # k=1: whole (3, 4) slices
    cells = tf.gather_nd(params, [[[0, 1, 2], [1, 2, 3]]])  # k=rank: single elements
    (grad,) = tf.gradients(tf.reduce_sum(picked * 2.0), [params])
    assert picked.shape.as_list() == [None, 4] and whole.shape.as_list() == [1, 3, 4]
    p = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    r = np.array([[0, 1], [1, 2], [0, 1]])
    with tf.Session() as sess:
        got, got_whole, got_cells, got_grad = sess.run(
            [picked, whole, cells, grad], {params: p, rows: r}
        )
    np.testing.assert_array_equal(got, p[r[:, 0], r[:, 1]])
    np.testing.assert_array_equal(got_whole, p[[1]])
    np.testing.assert_array_equal(got_cells, [[p[0, 1, 2], p[1, 2, 3]]])
    want = np.zeros_like(p)
    np.add.at(want, (r[:, 0], r[:, 1]), 2.0)  # a repeated row gets 4
    np.testing.assert_array_equal(got_grad, want)


def test_gather_nd_needs_static_trailing_dims():
    with pytest.raises(ShapeError, match="gather_nd"):
        tf.gather_nd(tf.placeholder(tf.float32, [None, None]), [[0, 1]])
