"""Control flow side by side with TensorFlow 1.x: the same programs, the same weights.

    /work/peers/bin/python benchmarks/control_tf_compare.py tf /tmp/tf.npz   # TensorFlow
    .venv/bin/python benchmarks/control_tf_compare.py gc /tmp/tf.npz         # graphc: compares

The first run writes TensorFlow's values; the second builds the same programs with
``import graphc.compat.v1 as tf`` and prints the largest difference per program (the README's
"Control flow" table). TensorFlow is never a dependency of graphc."""

import numpy as np

# run as a script: benchmarks/ is on sys.path
from _tf_compare import compare_main, evaluate_programs


def programs(tf):
    """name -> (fetch, feed) built in the current graph with the TF 1.x API ``tf``."""
    rng = np.random.default_rng(0)
    out = {}
    # tf.cond with an assign in each branch: only the taken one runs
    v = tf.Variable(1.0)
    p = tf.placeholder(tf.bool, [])
    out["cond_assign"] = (
        tf.cond(p, lambda: tf.assign_add(v, 2.0), lambda: tf.assign_sub(v, 5.0)),
        {p: True},
    )
    # Newton's square root in a while_loop
    a = tf.placeholder(tf.float64, [])
    root = tf.while_loop(lambda y: tf.abs(y * y - a) > 1e-12, lambda y: 0.5 * (y + a / y), [a])
    out["while_newton"] = (root, {a: 10.0})
    xs = tf.constant(rng.standard_normal((6, 3)))
    out["scan_cumprod"] = (tf.scan(lambda acc, x: acc * tf.cos(x), xs), {})
    out["scan_reverse_init"] = (
        tf.scan(
            lambda acc, x: acc + x * x, xs, reverse=True, initializer=tf.zeros([3], tf.float64)
        ),
        {},
    )
    out["map_fn"] = (tf.map_fn(lambda x: tf.reduce_sum(tf.exp(x)), xs), {})
    n = tf.placeholder(tf.int32, [])
    out["case"] = (
        tf.case(
            [(tf.less(n, 0), lambda: tf.constant(-1)), (tf.less(n, 10), lambda: tf.constant(1))],
            default=lambda: tf.constant(100),
        ),
        {n: 5},
    )
    # dynamic_rnn over a run-time length, with sequence_length; its gradient
    x = tf.placeholder(tf.float32, [None, None, 3])
    lengths = tf.placeholder(tf.int32, [None])
    data = {x: rng.standard_normal((2, 7, 3)).astype(np.float32), lengths: [7, 4]}
    with tf.variable_scope("lstm"):
        cell = _lstm(tf, 4)
        seq, state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
    out["dynamic_rnn_outputs"] = (seq, data)
    out["dynamic_rnn_state_h"] = (state.h, data)
    lstm_vars = [w for w in tf.trainable_variables() if w.name.startswith("lstm")]
    out["dynamic_rnn_grad_kernel"] = (tf.gradients(tf.reduce_sum(seq * seq), lstm_vars[0])[0], data)
    with tf.variable_scope("bi"):
        (fw, bw), _ = tf.nn.bidirectional_dynamic_rnn(
            _gru(tf, 3), _gru(tf, 3), x, sequence_length=lengths, dtype=tf.float32
        )
    out["bidirectional_bw_outputs"] = (bw, data)
    return out


def _lstm(tf, n):
    if tf.__name__.startswith("graphc"):
        return tf.nn.rnn_cell.BasicLSTMCell(n)
    from tensorflow.python.ops import rnn_cell_impl  # Keras 3 hides tf.nn.rnn_cell's

    return rnn_cell_impl.BasicLSTMCell(n)


def _gru(tf, n):
    if tf.__name__.startswith("graphc"):
        return tf.nn.rnn_cell.GRUCell(n)
    from tensorflow.python.ops import rnn_cell_impl

    return rnn_cell_impl.GRUCell(n)


def evaluate(tf):
    return evaluate_programs(tf, programs(tf), bound=0.5)


def main():
    compare_main(evaluate)


if __name__ == "__main__":
    main()
