"""``tf.contrib.seq2seq`` decoding side by side with TensorFlow: the same programs and weights.

    /work/peers/bin/python benchmarks/seq2seq_tf_compare.py tf /tmp/s2s.npz   # TensorFlow
    .venv/bin/python benchmarks/seq2seq_tf_compare.py gc /tmp/s2s.npz         # graphc: compares

TensorFlow 2.x has no ``tf.contrib``, so the TensorFlow side is TF 1.x's ``dynamic_decode``
written out with ``tf.compat.v1``: a ``while_loop`` writing ``TensorArray``s, with
``TrainingHelper``'s and ``GreedyEmbeddingHelper``'s ``initialize``/``next_inputs`` and
``BasicDecoder.step`` as in tensorflow/contrib/seq2seq (r1.15) — and, independently,
TensorFlow's own ``dynamic_rnn`` (with ``sequence_length``), which a teacher-forced decode
with ``impute_finished=True`` must equal. The graphc side calls
``tf.contrib.seq2seq.{TrainingHelper, GreedyEmbeddingHelper, BasicDecoder, dynamic_decode}``
through ``import graphc.compat.v1 as tf``. Prints the largest difference per program (the
README's "Control flow" table)."""

import numpy as np

# run as a script: benchmarks/ is on sys.path
from _tf_compare import compare_main, evaluate_programs

UNITS, VOCAB, DEPTH = 5, 7, 3
END = 3  # the greedy decoder's end_token: examples finish after different numbers of steps


def _cell(tf):
    if tf.__name__.startswith("graphc"):
        return tf.nn.rnn_cell.BasicLSTMCell(UNITS)
    from tensorflow.python.ops import rnn_cell_impl  # Keras 3 hides tf.nn.rnn_cell's

    return rnn_cell_impl.BasicLSTMCell(UNITS)


def _tf_decode(tf, cell, project, initial, next_fn, max_it=None, impute=False):
    """TF 1.x's dynamic_decode over BasicDecoder(cell, helper, state, project): ``initial``
    is (finished, first inputs, state); ``next_fn(time, ids) -> (finished, next inputs)``."""
    finished0, inputs0, state0 = initial
    if max_it is not None:
        finished0 = tf.logical_or(finished0, max_it <= 0)
    lengths0 = tf.zeros_like(finished0, dtype=tf.int32)
    out_ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
    ids_ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

    def body(time, out_ta, ids_ta, state, inputs, finished, lengths):
        cell_out, cell_state = cell(inputs, state)
        logits = project(cell_out)
        ids = tf.cast(tf.argmax(logits, -1), tf.int32)
        dec_finished, next_inputs = next_fn(time, ids)
        next_finished = tf.logical_or(dec_finished, finished)
        if max_it is not None:
            next_finished = tf.logical_or(next_finished, time + 1 >= max_it)
        next_lengths = tf.where(
            tf.logical_not(finished), tf.fill(tf.shape(lengths), time + 1), lengths
        )
        if impute:
            logits = tf.where(finished, tf.zeros_like(logits), logits)
            ids = tf.where(finished, tf.zeros_like(ids), ids)
            cell_state = type(cell_state)(
                *[tf.where(finished, o, n) for n, o in zip(cell_state, state)]
            )
        return (
            time + 1,
            out_ta.write(time, logits),
            ids_ta.write(time, ids),
            cell_state,
            next_inputs,
            next_finished,
            next_lengths,
        )

    _, out_ta, ids_ta, state, _, _, lengths = tf.while_loop(
        lambda time, o, i, s, x, finished, n: tf.logical_not(tf.reduce_all(finished)),
        body,
        (tf.constant(0), out_ta, ids_ta, state0, inputs0, finished0, lengths0),
    )
    return (
        tf.transpose(out_ta.stack(), [1, 0, 2]),
        tf.transpose(ids_ta.stack(), [1, 0]),
        state,
        lengths,
    )


def programs(tf):
    """name -> (fetch, feed) built in the current graph with the TF 1.x API ``tf``."""
    rng = np.random.default_rng(0)
    graphc = tf.__name__.startswith("graphc")
    out = {}
    x = tf.placeholder(tf.float32, [None, None, DEPTH])
    lengths = tf.placeholder(tf.int32, [None])
    data = {x: rng.standard_normal((3, 6, DEPTH)).astype(np.float32), lengths: [4, 6, 2]}
    for impute in (False, True):
        with tf.variable_scope(f"train_{impute}"):
            w = tf.get_variable("proj", [UNITS, VOCAB])
            cell = _cell(tf)
            state0 = cell.zero_state(tf.shape(x)[0], tf.float32)
            project = lambda h, w=w: tf.matmul(h, w)  # noqa: E731
            if graphc:
                helper = tf.contrib.seq2seq.TrainingHelper(x, lengths)
                decoder = tf.contrib.seq2seq.BasicDecoder(cell, helper, state0, project)
                (logits, ids), state, n = tf.contrib.seq2seq.dynamic_decode(
                    decoder, impute_finished=impute
                )
            else:
                xs = tf.TensorArray(tf.float32, size=tf.shape(x)[1]).unstack(
                    tf.transpose(x, [1, 0, 2])
                )
                zero = tf.zeros_like(x[:, 0])
                finished0 = 0 >= lengths

                def next_fn(time, ids, xs=xs, zero=zero):
                    finished = time + 1 >= lengths
                    nxt = tf.cond(tf.reduce_all(finished), lambda: zero, lambda: xs.read(time + 1))
                    return finished, nxt

                first = tf.cond(
                    tf.reduce_all(finished0), lambda z=zero: z, lambda xs=xs: xs.read(0)
                )
                logits, ids, state, n = _tf_decode(
                    tf, cell, project, (finished0, first, state0), next_fn, impute=impute
                )
        kernel = [v for v in tf.trainable_variables() if v.name.startswith(f"train_{impute}/")][1]
        tag = "impute" if impute else "plain"
        out[f"training_{tag}_rnn_output"] = (logits, data)
        out[f"training_{tag}_sample_id"] = (ids, data)
        out[f"training_{tag}_state_h"] = (state.h, data)
        out[f"training_{tag}_lengths"] = (n, data)
        out[f"training_{tag}_grad_kernel"] = (
            tf.gradients(tf.reduce_sum(logits * logits), kernel)[0],
            data,
        )
    # teacher forcing with impute_finished equals TF's own dynamic_rnn + projection
    with tf.variable_scope("vs_rnn"):
        w = tf.get_variable("proj", [UNITS, VOCAB])
        cell = _cell(tf)
        if graphc:
            helper = tf.contrib.seq2seq.TrainingHelper(x, lengths)
            state0 = cell.zero_state(tf.shape(x)[0], tf.float32)
            decoder = tf.contrib.seq2seq.BasicDecoder(cell, helper, state0, lambda h: h @ w)
            (logits, _), state, _ = tf.contrib.seq2seq.dynamic_decode(decoder, impute_finished=True)
        else:
            seq, state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
            logits = tf.einsum("btu,uv->btv", seq, w)
    out["vs_dynamic_rnn_output"] = (logits, data)
    out["vs_dynamic_rnn_state_c"] = (state.c, data)
    # greedy decoding: each step feeds back its argmax's embedding, until end_token
    start = tf.placeholder(tf.int32, [None])
    feeds = {start: [0, 3, 5, 1]}
    with tf.variable_scope("greedy"):
        emb = tf.get_variable("embedding", [VOCAB, DEPTH])
        w = tf.get_variable("proj", [UNITS, VOCAB])
        cell = _cell(tf)
        state0 = cell.zero_state(tf.shape(start)[0], tf.float32)
        project = lambda h: tf.matmul(h, w)  # noqa: E731
        if graphc:
            helper = tf.contrib.seq2seq.GreedyEmbeddingHelper(emb, start, END)
            decoder = tf.contrib.seq2seq.BasicDecoder(cell, helper, state0, project)
            (logits, ids), state, n = tf.contrib.seq2seq.dynamic_decode(
                decoder, maximum_iterations=9
            )
        else:
            start_inputs = tf.nn.embedding_lookup(emb, start)

            def next_fn(time, ids):
                finished = tf.equal(ids, END)
                nxt = tf.cond(
                    tf.reduce_all(finished),
                    lambda: start_inputs,
                    lambda: tf.nn.embedding_lookup(emb, ids),
                )
                return finished, nxt

            initial = (tf.zeros_like(start, dtype=tf.bool), start_inputs, state0)
            logits, ids, state, n = _tf_decode(tf, cell, project, initial, next_fn, max_it=9)
    out["greedy_rnn_output"] = (logits, feeds)
    out["greedy_sample_id"] = (ids, feeds)
    out["greedy_lengths"] = (n, feeds)
    return out


def evaluate(tf):
    return evaluate_programs(tf, programs(tf), bound=1.0)  # (no scalar variables here)


def main():
    ours = compare_main(evaluate, width=34)
    if ours is None:
        return
    print(
        "greedy lengths:",
        ours["greedy_lengths"].tolist(),
        "ids:",
        ours["greedy_sample_id"].tolist(),
    )


if __name__ == "__main__":
    main()
