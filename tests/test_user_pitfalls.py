"""What new users hit, written as they meet it: silent wrong results (labels out of range,
misspelled keyword arguments), Python data (mixed lists, lists of tensors, float labels),
and the small things (np.asarray of a tensor, print(model), random draws of a run-time
shape, --version, erf/gelu accuracy)."""

import math
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
import graphc.compat.v1 as tf

# --- silent wrong results ----------------------------------------------------------------------


def test_sparse_softmax_label_out_of_range_raises_at_run_time_naming_the_line():
    logits = tf.placeholder(tf.float32, [None, 3])
    labels = tf.placeholder(tf.int32, [None])
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    with tf.Session() as sess:
        ok = sess.run(loss, {logits: np.zeros((2, 3)), labels: [0, 2]})
        assert abs(ok - math.log(3)) < 1e-6
        with pytest.raises(gc.OpError, match=r"label 3 at index \[1\].*\[0, 3\)") as e:
            sess.run(loss, {logits: np.zeros((2, 3)), labels: [0, 3]})
        assert e.value.location.file == __file__
        with pytest.raises(gc.GraphcError, match="label -1"):
            sess.run(loss, {logits: np.zeros((1, 3)), labels: [-1]})


def test_gc_sparse_softmax_and_the_tf_losses_check_labels_too():
    logits = gc.constant(np.zeros((2, 4), np.float32))
    with pytest.raises(gc.GraphcError, match="outside the valid range"):
        gc.Session().run(gc.sparse_softmax_cross_entropy_with_logits(labels=[1, 4], logits=logits))
    with pytest.raises(gc.GraphcError, match="outside the valid range"):
        tf.Session().run(tf.losses.sparse_softmax_cross_entropy(labels=[7, 0], logits=logits))


@pytest.mark.parametrize(
    "call,wrong,right",
    [
        (lambda x: gc.layers.dense(x, 3, activaton=gc.relu), "activaton", "activation"),
        (lambda x: gc.layers.dropout(x, rate=0.5, trainng=True), "trainng", "training"),
        (lambda x: gc.train.Saver(max_to_kep=1), "max_to_kep", "max_to_keep"),
        (lambda x: gc.layers.Dense(3, activaton=gc.relu), "activaton", "activation"),
        (lambda x: gc.layers.batch_norm(x, trainig=True), "trainig", "training"),
        (
            lambda x: gc.layers.conv2d(gc.reshape(x, [-1, 2, 2, 1]), 2, 2, paddng="same"),
            "paddng",
            "padding",
        ),
        (lambda x: tf.layers.dense(x, 3, activaton=tf.nn.relu), "activaton", "activation"),
        (lambda x: tf.layers.dropout(x, rate=0.5, trainng=True), "trainng", "training"),
        (
            lambda x: tf.layers.Dense(3, kernel_initialiser=None),
            "kernel_initialiser",
            "kernel_initializer",
        ),
        (lambda x: tf.train.Saver(max_to_kep=1), "max_to_kep", "max_to_keep"),
        (
            lambda x: tf.train.AdamOptimizer(0.1).minimize(
                tf.reduce_sum(tf.Variable([1.0])), var_lst=None
            ),
            "var_lst",
            "var_list",
        ),
    ],
)
def test_misspelled_keyword_arguments_raise_with_did_you_mean(call, wrong, right):
    x = gc.placeholder(gc.float32, [None, 4])
    with pytest.raises(gc.ArgumentError, match=f"'{wrong}'.*did you mean '{right}'") as e:
        call(x)
    assert isinstance(e.value, TypeError) and e.value.location.file == __file__


def test_tf_keyword_arguments_graphc_ignores_are_still_accepted():
    x = gc.placeholder(gc.float32, [None, 4])
    gc.layers.dense(x, 3, kernel_regularizer=None, reuse=None)
    gc.layers.dropout(x, noise_shape=None)
    gc.train.Saver(max_to_keep=1, sharded=False, allow_empty=True)


# --- Python data -------------------------------------------------------------------------------


def test_mixed_int_float_lists_and_lists_of_numpy_rows_convert():
    with gc.Session() as sess:
        a = sess.run(gc.constant([[1, 0.5], [2, 3]]))
        b = sess.run(tf.constant([np.array([1.0, 2.0]), np.array([3.0, 4.0])]))
        x = tf.placeholder(tf.float32, [None, 2])
        c = sess.run(x * 2, {x: [np.array([1, 2]), [3, 4.5]]})
    assert a.dtype == np.float32 and a.tolist() == [[1, 0.5], [2, 3]]
    assert b.tolist() == [[1, 2], [3, 4]] and c.tolist() == [[2, 4], [6, 9]]


def test_a_python_list_of_tensors_is_packed():
    y = tf.constant([[0.0, 1.0]])
    a, b = tf.constant(1.0), tf.constant(3.0)
    with tf.Session() as sess:
        assert sess.run(tf.stop_gradient([y])).shape == (1, 1, 2)
        assert sess.run(tf.reduce_mean([a, b])) == 2.0
        assert sess.run(tf.reduce_sum([[a, 2.0], [b, 4.0]], axis=1)).tolist() == [3.0, 7.0]
        assert sess.run(gc.add([a, b], 1.0)).tolist() == [2.0, 4.0]
    with pytest.raises(gc.DTypeError, match="cannot pack"):
        tf.reduce_sum([a, tf.constant(1)])


def test_float_labels_feed_integer_placeholders_when_integral():
    labels = tf.placeholder(tf.int32, [None])
    with tf.Session() as sess:
        got = sess.run(labels + 0, {labels: np.loadtxt(["1.0", "2.0", "0.0"])})
        assert got.tolist() == [1, 2, 0] and got.dtype == np.int32
        with pytest.raises(gc.FeedError, match=r"2\.5 at index \[1\] is not a whole number"):
            sess.run(labels + 0, {labels: np.array([1.0, 2.5])})
        with pytest.raises(gc.FeedError, match="nan"):
            sess.run(labels + 0, {labels: np.array([np.nan])})


def test_ragged_lists_are_a_clear_error():
    with pytest.raises(gc.DTypeError, match="ragged nested list"):
        gc.constant([[1, 2], [3]])
    x = tf.placeholder(tf.float32)
    with pytest.raises(gc.FeedError, match="cannot feed"):
        tf.Session().run(x, {x: [[1, 2], [3]]})


# --- small things ------------------------------------------------------------------------------


def test_np_asarray_of_a_tensor_raises_like_bool():
    t = gc.constant([1.0, 2.0])
    with pytest.raises(gc.DefineAndRunError, match="no value while the graph is being built"):
        np.asarray(t)
    with pytest.raises(gc.DefineAndRunError):
        bool(t)
    assert isinstance(np.ones(2) * t, gc.Tensor)  # numpy operands still defer to graphc


def test_print_sequential_shows_its_layers():
    model = gc.layers.Sequential(
        [gc.layers.Dense(8, activation=gc.relu), gc.layers.Dropout(0.5), gc.layers.Dense(3)]
    )
    assert "dense (Dense)" in repr(model) and "(not built)" in repr(model)
    model(gc.placeholder(gc.float32, [None, 4]))
    text = str(model)
    assert "dense_1 (Dense)" in text and "(?, 3)" in text and "Total params: 67" in text
    assert "object at 0x" not in text


def test_random_draws_of_a_run_time_shape_and_the_like_functions():
    x = gc.placeholder(gc.float32, [None, 3])
    outs = [
        gc.random_normal(gc.shape(x)),
        gc.random_uniform(gc.shape(x), seed=1),
        gc.truncated_normal(gc.shape(x)),
        gc.random_normal_like(x, stddev=2.0),
        gc.random_uniform_like(x, -1, 1),
        gc.empty([2, 3]),
        gc.empty([2], gc.int32),
    ]
    got = gc.Session().run(outs, {x: np.zeros((4, 3))})
    assert [g.shape for g in got] == [(4, 3)] * 5 + [(2, 3), (2,)]
    assert got[-1].dtype == np.int32 and np.abs(got[4]).max() <= 1


def test_version_flag():
    p = subprocess.run(
        [sys.executable, "-m", "graphc", "--version"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0 and p.stdout.strip() == f"graphc {gc.__version__}"


def test_erf_and_gelu_are_accurate_to_float64_rounding():
    from graphc.ops.elementwise import _erf

    xs = np.concatenate(
        [
            np.linspace(-7, 7, 140001),
            np.linspace(-40, 40, 4001),
            [0.0, -0.0, 1e-300, -1e-12, 0.5, 1.0, -1.0, 5.9, 6.0, np.inf, -np.inf],
        ]
    )
    want = np.array([math.erf(v) for v in xs])
    got = _erf(xs)
    ulps = np.abs(got - want) / np.maximum(np.spacing(np.abs(want)), 5e-324)
    assert ulps.max() <= 4
    assert np.isnan(_erf(np.array([np.nan]))).all()
    assert _erf(np.array(0.5, np.float32)).dtype == np.float32
    x = gc.constant(np.linspace(-4, 4, 81))
    g = gc.Session().run(gc.gelu(x))
    ref = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in np.linspace(-4, 4, 81)]
    np.testing.assert_allclose(g, ref, rtol=1e-14, atol=1e-15)


def test_cli_missing_feed_hint_names_the_flag(tmp_path):
    model = tmp_path / "m.g"
    model.write_text("model m {\n  input x : f32[N, 2]\n  y = reduce_sum(x * 2.0)\n  output y\n}\n")
    p = subprocess.run(
        [sys.executable, "-m", "graphc", "run", str(model), "--fetch", "y"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "Pass --feed x=FILE" in p.stderr
    assert "feed_dict" not in p.stderr


def test_the_shipped_g_examples_are_in_canonical_layout():
    from pathlib import Path

    from graphc.frontend.fmt import format_source

    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.g"))
    assert len(examples) >= 3
    for path in examples:
        text = path.read_text()
        assert format_source(text, str(path)) == text, f"graphc fmt --check {path.name} fails"


def test_fmt_keeps_grouped_definitions_and_the_header_comment_apart():
    from graphc.frontend.fmt import format_source

    src = (
        "# header\n#\n\nconst A = 1  # one\nconst B = 2\n\nfn f(x) = x * A\n"
        "model m {\n  input x : f32[3]\n  y = f(x) + B\n  output y\n}\n"
    )
    want = (
        "# header\n#\n\nconst A = 1  # one\nconst B = 2\n\nfn f(x) = x * A\n\n"
        "model m {\n  input x : f32[3]\n  y = f(x) + B\n  output y\n}\n"
    )
    assert format_source(src) == want and format_source(want) == want
