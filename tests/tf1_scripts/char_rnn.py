# ruff: noqa: I001, E402, B007, B905 - the tutorial as it was written, imports and loops included
"""A character-level language model in the style of the TF 1.x char-rnn projects: one-hot
free embedding lookup, a MultiRNNCell of BasicLSTMCells unrolled with tf.nn.dynamic_rnn
from zero_state, logits for every time step, tf.contrib.seq2seq.sequence_loss, Adam with
gradients clipped by global norm, the final state fed back in across batches, and text
sampled one character at a time with tf.multinomial."""

from __future__ import print_function

import numpy as np
import graphc.compat.v1 as tf

tf.set_random_seed(1)
np.random.seed(1)

text = ("hello world. the quick brown fox jumps over the lazy dog. " * 30)
chars = sorted(set(text))
vocab_size = len(chars)
char_to_ix = {c: i for i, c in enumerate(chars)}
ix_to_char = {i: c for i, c in enumerate(chars)}
data = np.array([char_to_ix[c] for c in text], dtype=np.int32)

batch_size = 8
seq_length = 20
hidden_size = 48
num_layers = 2
learning_rate = 0.01
grad_clip = 5.0
num_epochs = 6

num_batches = len(data) // (batch_size * seq_length)
xdata = data[:num_batches * batch_size * seq_length]
ydata = np.roll(xdata, -1)
x_batches = np.split(xdata.reshape(batch_size, -1), num_batches, 1)
y_batches = np.split(ydata.reshape(batch_size, -1), num_batches, 1)


class Model(object):

  def __init__(self, training=True):
    b, s = (batch_size, seq_length) if training else (1, 1)
    cells = [tf.nn.rnn_cell.BasicLSTMCell(hidden_size) for _ in range(num_layers)]
    self.cell = cell = tf.nn.rnn_cell.MultiRNNCell(cells, state_is_tuple=True)
    self.input_data = tf.placeholder(tf.int32, [b, s])
    self.targets = tf.placeholder(tf.int32, [b, s])
    self.initial_state = cell.zero_state(b, tf.float32)

    with tf.variable_scope("rnnlm", reuse=tf.AUTO_REUSE):
      softmax_w = tf.get_variable("softmax_w", [hidden_size, vocab_size])
      softmax_b = tf.get_variable("softmax_b", [vocab_size])
      embedding = tf.get_variable("embedding", [vocab_size, hidden_size])
      inputs = tf.nn.embedding_lookup(embedding, self.input_data)
      outputs, self.final_state = tf.nn.dynamic_rnn(
          cell, inputs, initial_state=self.initial_state, scope="rnn")

    output = tf.reshape(outputs, [-1, hidden_size])
    self.logits = tf.matmul(output, softmax_w) + softmax_b
    self.probs = tf.nn.softmax(self.logits)
    if not training:
      return
    logits3 = tf.reshape(self.logits, [b, s, vocab_size])
    self.cost = tf.contrib.seq2seq.sequence_loss(
        logits3, self.targets, tf.ones([b, s]),
        average_across_timesteps=True, average_across_batch=True)
    tvars = tf.trainable_variables()
    grads, _ = tf.clip_by_global_norm(tf.gradients(self.cost, tvars), grad_clip)
    optimizer = tf.train.AdamOptimizer(learning_rate)
    self.train_op = optimizer.apply_gradients(zip(grads, tvars))


with tf.variable_scope("model", reuse=None):
  model = Model(training=True)
with tf.variable_scope("model", reuse=True):
  sampler = Model(training=False)

sample_logits = tf.placeholder(tf.float32, [1, vocab_size])
next_char = tf.multinomial(sample_logits, 1)

costs = []
with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  for e in range(num_epochs):
    state = sess.run(model.initial_state)
    for b in range(num_batches):
      feed = {model.input_data: x_batches[b], model.targets: y_batches[b]}
      for i, (c, h) in enumerate(model.initial_state):
        feed[c] = state[i].c
        feed[h] = state[i].h
      train_loss, state, _ = sess.run([model.cost, model.final_state, model.train_op], feed)
      costs.append(train_loss)
    print("epoch {}, train_loss = {:.3f}".format(e, train_loss))

  state = sess.run(sampler.initial_state)
  prime = "the "
  for ch in prime[:-1]:
    feed = {sampler.input_data: [[char_to_ix[ch]]], sampler.initial_state: state}
    state = sess.run(sampler.final_state, feed)
  ch = prime[-1]
  generated = prime
  for n in range(40):
    feed = {sampler.input_data: [[char_to_ix[ch]]], sampler.initial_state: state}
    probs, state = sess.run([sampler.probs, sampler.final_state], feed)
    p = probs[0]
    sample = int(np.argmax(p))  # greedy decoding
    ch = ix_to_char[sample]
    generated += ch
  draw = sess.run(next_char, {sample_logits: np.log(probs)})
  print(generated)
