# ruff: noqa: I001, E402, B007, B905 - the tutorial as it was written, imports and loops included
"""A CNN for sentence classification in the shape of the well-known TF 1.x text-CNN
project: a TextCNN class with an embedding layer under tf.device/name_scope, parallel
conv-maxpool branches of several filter sizes concatenated, dropout, l2-regularized
xw_plus_b scores, compute_gradients/apply_gradients with a global step, gradient
histograms and zero_fraction summaries merged for a FileWriter, and a Saver. The data is
made up: sentences whose class is decided by which of two word sets they contain."""

from __future__ import print_function

import os
import tempfile
import time

import numpy as np
import graphc.compat.v1 as tf


class TextCNN(object):

  def __init__(self, sequence_length, num_classes, vocab_size, embedding_size,
               filter_sizes, num_filters, l2_reg_lambda=0.0):
    self.input_x = tf.placeholder(tf.int32, [None, sequence_length], name="input_x")
    self.input_y = tf.placeholder(tf.float32, [None, num_classes], name="input_y")
    self.dropout_keep_prob = tf.placeholder(tf.float32, name="dropout_keep_prob")
    l2_loss = tf.constant(0.0)

    with tf.device('/cpu:0'), tf.name_scope("embedding"):
      self.W = tf.Variable(
          tf.random_uniform([vocab_size, embedding_size], -1.0, 1.0), name="W")
      self.embedded_chars = tf.nn.embedding_lookup(self.W, self.input_x)
      self.embedded_chars_expanded = tf.expand_dims(self.embedded_chars, -1)

    pooled_outputs = []
    for i, filter_size in enumerate(filter_sizes):
      with tf.name_scope("conv-maxpool-%s" % filter_size):
        filter_shape = [filter_size, embedding_size, 1, num_filters]
        W = tf.Variable(tf.truncated_normal(filter_shape, stddev=0.1), name="W")
        b = tf.Variable(tf.constant(0.1, shape=[num_filters]), name="b")
        conv = tf.nn.conv2d(self.embedded_chars_expanded, W, strides=[1, 1, 1, 1],
                            padding="VALID", name="conv")
        h = tf.nn.relu(tf.nn.bias_add(conv, b), name="relu")
        pooled = tf.nn.max_pool(h, ksize=[1, sequence_length - filter_size + 1, 1, 1],
                                strides=[1, 1, 1, 1], padding='VALID', name="pool")
        pooled_outputs.append(pooled)

    num_filters_total = num_filters * len(filter_sizes)
    self.h_pool = tf.concat(pooled_outputs, 3)
    self.h_pool_flat = tf.reshape(self.h_pool, [-1, num_filters_total])

    with tf.name_scope("dropout"):
      self.h_drop = tf.nn.dropout(self.h_pool_flat, self.dropout_keep_prob)

    with tf.name_scope("output"):
      W = tf.get_variable("W", shape=[num_filters_total, num_classes],
                          initializer=tf.contrib.layers.xavier_initializer())
      b = tf.Variable(tf.constant(0.1, shape=[num_classes]), name="b")
      l2_loss += tf.nn.l2_loss(W)
      l2_loss += tf.nn.l2_loss(b)
      self.scores = tf.nn.xw_plus_b(self.h_drop, W, b, name="scores")
      self.predictions = tf.argmax(self.scores, 1, name="predictions")

    with tf.name_scope("loss"):
      losses = tf.nn.softmax_cross_entropy_with_logits(logits=self.scores, labels=self.input_y)
      self.loss = tf.reduce_mean(losses) + l2_reg_lambda * l2_loss

    with tf.name_scope("accuracy"):
      correct_predictions = tf.equal(self.predictions, tf.argmax(self.input_y, 1))
      self.accuracy = tf.reduce_mean(tf.cast(correct_predictions, "float"), name="accuracy")


# --- made-up data ---------------------------------------------------------------------------
rng = np.random.RandomState(10)
sequence_length, vocab_size = 12, 50
positive, negative = np.arange(1, 6), np.arange(6, 11)
x_all = rng.randint(11, vocab_size, size=(600, sequence_length))
y_idx = rng.randint(0, 2, size=600)
for row, label in zip(x_all, y_idx):
  words = positive if label else negative
  row[rng.choice(sequence_length, 2, replace=False)] = rng.choice(words, 2)
y_all = np.eye(2)[y_idx]
shuffle_indices = np.random.RandomState(1).permutation(np.arange(len(y_all)))
x_shuffled, y_shuffled = x_all[shuffle_indices], y_all[shuffle_indices]
dev_sample_index = -100
x_train, x_dev = x_shuffled[:dev_sample_index], x_shuffled[dev_sample_index:]
y_train, y_dev = y_shuffled[:dev_sample_index], y_shuffled[dev_sample_index:]


def batch_iter(data, batch_size, num_epochs, shuffle=True):
  data = np.array(data, dtype=object)  # (x, y) pairs: rows of two objects
  data_size = len(data)
  num_batches_per_epoch = int((len(data) - 1) / batch_size) + 1
  for epoch in range(num_epochs):
    if shuffle:
      shuffled_data = data[np.random.RandomState(epoch).permutation(np.arange(data_size))]
    else:
      shuffled_data = data
    for batch_num in range(num_batches_per_epoch):
      start_index = batch_num * batch_size
      end_index = min((batch_num + 1) * batch_size, data_size)
      yield shuffled_data[start_index:end_index]


num_epochs = 4
evaluate_every = 20

with tf.Graph().as_default():
  session_conf = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
  sess = tf.Session(config=session_conf)
  with sess.as_default():
    cnn = TextCNN(sequence_length=x_train.shape[1], num_classes=y_train.shape[1],
                  vocab_size=vocab_size, embedding_size=16, filter_sizes=[2, 3, 4],
                  num_filters=8, l2_reg_lambda=0.1)

    global_step = tf.Variable(0, name="global_step", trainable=False)
    optimizer = tf.train.AdamOptimizer(1e-3)
    grads_and_vars = optimizer.compute_gradients(cnn.loss)
    train_op = optimizer.apply_gradients(grads_and_vars, global_step=global_step)

    grad_summaries = []
    for g, v in grads_and_vars:
      if g is not None:
        grad_hist_summary = tf.summary.histogram("{}/grad/hist".format(v.name), g)
        sparsity_summary = tf.summary.scalar("{}/grad/sparsity".format(v.name),
                                             tf.nn.zero_fraction(g))
        grad_summaries.append(grad_hist_summary)
        grad_summaries.append(sparsity_summary)
    grad_summaries_merged = tf.summary.merge(grad_summaries)

    timestamp = str(int(time.time()))
    out_dir = os.path.abspath(os.path.join(tempfile.mkdtemp(), "runs", timestamp))
    loss_summary = tf.summary.scalar("loss", cnn.loss)
    acc_summary = tf.summary.scalar("accuracy", cnn.accuracy)
    train_summary_op = tf.summary.merge([loss_summary, acc_summary, grad_summaries_merged])
    train_summary_writer = tf.summary.FileWriter(os.path.join(out_dir, "summaries", "train"),
                                                 sess.graph)
    checkpoint_dir = os.path.abspath(os.path.join(out_dir, "checkpoints"))
    checkpoint_prefix = os.path.join(checkpoint_dir, "model")
    if not os.path.exists(checkpoint_dir):
      os.makedirs(checkpoint_dir)
    saver = tf.train.Saver(tf.global_variables(), max_to_keep=2)

    sess.run(tf.global_variables_initializer())

    def train_step(x_batch, y_batch):
      feed_dict = {cnn.input_x: x_batch, cnn.input_y: y_batch, cnn.dropout_keep_prob: 0.5}
      _, step, summaries, loss, accuracy = sess.run(
          [train_op, global_step, train_summary_op, cnn.loss, cnn.accuracy], feed_dict)
      train_summary_writer.add_summary(summaries, step)
      return loss

    def dev_step(x_batch, y_batch):
      feed_dict = {cnn.input_x: x_batch, cnn.input_y: y_batch, cnn.dropout_keep_prob: 1.0}
      step, loss, accuracy = sess.run([global_step, cnn.loss, cnn.accuracy], feed_dict)
      print("step {}, dev loss {:g}, acc {:g}".format(step, loss, accuracy))
      return accuracy

    batches = batch_iter(list(zip(x_train, y_train)), 50, num_epochs)
    train_losses = []
    for batch in batches:
      x_batch, y_batch = zip(*batch)
      train_losses.append(train_step(x_batch, y_batch))
      current_step = tf.train.global_step(sess, global_step)
      if current_step % evaluate_every == 0:
        dev_accuracy = dev_step(x_dev, y_dev)
        path = saver.save(sess, checkpoint_prefix, global_step=current_step)
    print("final dev accuracy", dev_accuracy, "saved", os.path.basename(path))
