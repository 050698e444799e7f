"""tf.contrib.seq2seq's decoding loop (TrainingHelper, GreedyEmbeddingHelper, BasicDecoder,
dynamic_decode): values against graphc's dynamic_rnn (itself checked against TensorFlow) and
a numpy decoder, a run-time time length, gradients and training. The side-by-side with
TensorFlow is benchmarks/seq2seq_tf_compare.py (README, "Control flow")."""

import numpy as np
import pytest

import graphc as gc
import graphc.compat.v1 as tf

UNITS, VOCAB, DEPTH = 4, 6, 3


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as g:
        yield g


def _load(sess, seed=1):
    rng = np.random.default_rng(seed)
    for v in tf.trainable_variables():
        v.load(rng.uniform(-1, 1, [int(d) for d in v.shape]).astype(np.float32), sess)


def _teacher_forced(impute, x, lengths, cell):
    helper = tf.contrib.seq2seq.TrainingHelper(x, lengths)
    state0 = cell.zero_state(tf.shape(x)[0], tf.float32)
    decoder = tf.contrib.seq2seq.BasicDecoder(cell, helper, state0)
    return tf.contrib.seq2seq.dynamic_decode(decoder, impute_finished=impute)


def test_training_helper_decodes_like_dynamic_rnn_over_a_run_time_length():
    x = tf.placeholder(tf.float32, [None, None, DEPTH])
    lengths = tf.placeholder(tf.int32, [None])
    cell = tf.nn.rnn_cell.BasicLSTMCell(UNITS)
    (out_i, ids_i), state_i, n_i = _teacher_forced(True, x, lengths, cell)
    (out_p, _), state_p, n_p = _teacher_forced(False, x, lengths, cell)
    masked, masked_state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
    plain, plain_state = tf.nn.dynamic_rnn(cell, x, dtype=tf.float32)
    rng = np.random.default_rng(0)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _load(sess)
        for T, lens in ((5, [3, 5, 1]), (7, [2, 4, 4])):  # two lengths, one graph
            feed = {x: rng.standard_normal((3, T, DEPTH)).astype(np.float32), lengths: lens}
            got = sess.run([out_i, state_i.h, n_i, out_p, state_p.h, n_p, ids_i], feed)
            want = sess.run([masked, masked_state.h, plain, plain_state.h], feed)
            steps = max(lens)  # dynamic_decode stops when every example is finished
            assert got[0].shape == (3, steps, UNITS) and got[2].tolist() == lens
            np.testing.assert_allclose(got[0], want[0][:, :steps], atol=1e-6)
            np.testing.assert_allclose(got[1], want[1], atol=1e-6)  # each at its own end
            # without impute_finished the cell runs on past each end, as in TF
            np.testing.assert_allclose(got[3], want[2][:, :steps], atol=1e-6)
            assert got[5].tolist() == lens
            np.testing.assert_array_equal(got[6], np.where(got[0].any(-1), got[0].argmax(-1), 0))
            if steps == T:
                np.testing.assert_allclose(got[4], want[3], atol=1e-6)


def _np_lstm(x, c, h, kernel, bias):
    i, j, f, o = np.split(np.concatenate([x, h], 1) @ kernel + bias, 4, axis=1)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = c * sig(f + 1.0) + sig(i) * np.tanh(j)
    return c, np.tanh(c) * sig(o)


def test_greedy_decoding_stops_at_the_end_token_or_maximum_iterations():
    start = tf.placeholder(tf.int32, [None])
    max_it = tf.placeholder(tf.int32, [])
    emb = tf.get_variable("embedding", [VOCAB, DEPTH])
    w = tf.get_variable("proj", [UNITS, VOCAB])
    cell = tf.nn.rnn_cell.BasicLSTMCell(UNITS)
    end = 4  # with the weights of seed 5, the examples end after 1 to 5 steps
    helper = tf.contrib.seq2seq.GreedyEmbeddingHelper(emb, start, end)
    decoder = tf.contrib.seq2seq.BasicDecoder(
        cell, helper, cell.zero_state(tf.shape(start)[0], tf.float32), lambda h: h @ w
    )
    (logits, ids), state, n = tf.contrib.seq2seq.dynamic_decode(decoder, maximum_iterations=max_it)
    tokens = [0, 1, 3, 4, 5]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _load(sess, seed=5)
        e, W, kernel, bias = sess.run([emb, w] + cell_vars(cell))
        got = sess.run([logits, ids, n, state.h], {start: tokens, max_it: 12})
        short = sess.run([ids, n], {start: tokens, max_it: 2})
    # the numpy decoder: TF's loop, step by step
    c = h = np.zeros((len(tokens), UNITS), np.float32)
    inputs, finished = e[tokens], np.zeros(len(tokens), bool)
    lens, all_ids, all_logits = np.zeros(len(tokens), int), [], []
    t = 0
    while not finished.all():
        c, h = _np_lstm(inputs, c, h, kernel, bias)
        lg = h @ W
        step_ids = lg.argmax(-1)
        lens = np.where(~finished, t + 1, lens)
        finished = finished | (step_ids == end) | (t + 1 >= 12)
        inputs = e[step_ids]
        all_ids.append(step_ids)
        all_logits.append(lg)
        t += 1
    assert 1 < t < 12 and len(set(lens.tolist())) > 1  # examples end at different steps
    np.testing.assert_array_equal(got[1], np.stack(all_ids, 1))
    np.testing.assert_allclose(got[0], np.stack(all_logits, 1), atol=1e-5)
    assert got[2].tolist() == lens.tolist()
    np.testing.assert_allclose(got[3], h, atol=1e-5)
    assert short[0].shape == (len(tokens), 2) and short[1].max() <= 2


def cell_vars(cell):
    return [v for v in tf.trainable_variables() if "basic_lstm_cell" in v.name]


def test_gradients_through_dynamic_decode_match_dynamic_rnns():
    x = tf.placeholder(tf.float32, [None, None, DEPTH])
    lengths = tf.placeholder(tf.int32, [None])
    cell = tf.nn.rnn_cell.BasicLSTMCell(UNITS)
    (out, _), state, _ = _teacher_forced(True, x, lengths, cell)
    seq, rnn_state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
    kernel = cell_vars(cell)[0]
    g_dec = tf.gradients(tf.reduce_sum(out**2) + tf.reduce_sum(state.c), kernel)[0]
    g_rnn = tf.gradients(tf.reduce_sum(seq**2) + tf.reduce_sum(rnn_state.c), kernel)[0]
    feed = {x: np.random.default_rng(2).standard_normal((2, 4, DEPTH)), lengths: [4, 2]}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _load(sess)
        a, b = sess.run([g_dec, g_rnn], feed)
    assert np.abs(a).max() > 1e-3
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_seq2seq_decoder_trains_with_teacher_forcing():
    rng = np.random.default_rng(0)
    batch, T = 8, 5
    targets = rng.integers(0, VOCAB, (batch, T))
    lens = rng.integers(2, T + 1, batch)
    lens[0] = T
    ids_in = np.concatenate([np.zeros((batch, 1), int), targets[:, :-1]], 1)  # shifted right
    dec_in = tf.placeholder(tf.int32, [None, None])
    target = tf.placeholder(tf.int32, [None, None])
    lengths = tf.placeholder(tf.int32, [None])
    emb = tf.get_variable("emb", [VOCAB, 8])
    cell = tf.nn.rnn_cell.BasicLSTMCell(16)
    w = tf.get_variable("w", [16, VOCAB])
    helper = tf.contrib.seq2seq.TrainingHelper(tf.nn.embedding_lookup(emb, dec_in), lengths)
    decoder = tf.contrib.seq2seq.BasicDecoder(
        cell, helper, cell.zero_state(tf.shape(dec_in)[0], tf.float32), lambda h: h @ w
    )
    (logits, _), _, _ = tf.contrib.seq2seq.dynamic_decode(decoder, impute_finished=True)
    mask = tf.placeholder(tf.float32, [None, None])
    loss = tf.contrib.seq2seq.sequence_loss(logits, target, mask)
    train = tf.train.AdamOptimizer(0.05).minimize(loss)
    weights = (np.arange(T) < lens[:, None]).astype(np.float32)
    feed = {dec_in: ids_in, target: targets, lengths: lens, mask: weights}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first = sess.run(loss, feed)
        for _ in range(60):
            sess.run(train, feed)
        last = sess.run(loss, feed)
    assert first > 1.5 and last < 0.5 * first
