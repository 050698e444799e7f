# ruff: noqa: I001, E402, B007, B905 - the tutorial as it was written, imports and loops included
"""A convolutional MNIST classifier built from tf.layers, trained with momentum and a
decaying learning rate, checkpointed, and evaluated again in a fresh graph -- the shape of
the TF 1.x "layers" guide and of many TF 1.x projects (variable_scope, get_variable,
batch norm with UPDATE_OPS, global_step, tf.metrics, Saver.latest_checkpoint)."""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import tempfile

import numpy as np
import graphc.compat.v1 as tf
tf.disable_v2_behavior()

import fake_mnist as input_data

tf.logging.set_verbosity(tf.logging.INFO)

BATCH_SIZE = 64
TRAIN_STEPS = 80
CKPT_DIR = tempfile.mkdtemp()


def dense(x, size, scope):
  """A fully connected layer the old way: get_variable in a variable_scope."""
  with tf.variable_scope(scope):
    w = tf.get_variable('w', [x.get_shape()[1], size],
                        initializer=tf.glorot_uniform_initializer())
    b = tf.get_variable('b', [size], initializer=tf.zeros_initializer())
    return tf.matmul(x, w) + b


def cnn_model(features, is_training):
  """Two conv/pool blocks, a dense layer with batch norm and dropout, 10 logits."""
  input_layer = tf.reshape(features, [-1, 28, 28, 1])
  conv1 = tf.layers.conv2d(inputs=input_layer, filters=16, kernel_size=[5, 5],
                           padding="same", activation=tf.nn.relu)
  pool1 = tf.layers.max_pooling2d(inputs=conv1, pool_size=[2, 2], strides=2)
  conv2 = tf.layers.conv2d(inputs=pool1, filters=32, kernel_size=[5, 5],
                           padding="same", activation=tf.nn.relu)
  pool2 = tf.layers.max_pooling2d(inputs=conv2, pool_size=[2, 2], strides=2)
  pool2_flat = tf.reshape(pool2, [-1, 7 * 7 * 32])
  hidden = dense(pool2_flat, 128, 'fc1')
  hidden = tf.layers.batch_normalization(hidden, training=is_training)
  hidden = tf.nn.relu(hidden)
  dropout = tf.layers.dropout(inputs=hidden, rate=0.4, training=is_training)
  return dense(dropout, 10, 'logits')


def build():
  x = tf.placeholder(tf.float32, [None, 784], name='x')
  labels = tf.placeholder(tf.int64, [None], name='labels')
  is_training = tf.placeholder_with_default(False, shape=(), name='is_training')
  with tf.variable_scope('model'):
    logits = cnn_model(x, is_training)
  loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
  global_step = tf.train.get_or_create_global_step()
  learning_rate = tf.train.exponential_decay(0.05, global_step, 40, 0.5, staircase=True)
  update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
  with tf.control_dependencies(update_ops):
    train_op = tf.train.MomentumOptimizer(learning_rate, 0.9).minimize(
        loss, global_step=global_step)
  predictions = tf.argmax(logits, axis=1)
  accuracy, accuracy_update = tf.metrics.accuracy(labels=labels, predictions=predictions)
  return dict(x=x, labels=labels, is_training=is_training, loss=loss, train_op=train_op,
              global_step=global_step, learning_rate=learning_rate,
              accuracy=accuracy, accuracy_update=accuracy_update)


def evaluate(sess, m, data, batch_size=100):
  sess.run(tf.local_variables_initializer())
  for start in range(0, data.num_examples, batch_size):
    sess.run(m['accuracy_update'], feed_dict={
        m['x']: data.images[start:start + batch_size],
        m['labels']: data.labels[start:start + batch_size]})
  return sess.run(m['accuracy'])


def main():
  global test_accuracy, restored_accuracy, final_step
  mnist = input_data.read_data_sets('/tmp/mnist_data', one_hot=False)
  tf.set_random_seed(9)
  m = build()
  saver = tf.train.Saver(max_to_keep=2)
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for _ in range(TRAIN_STEPS):
      images, labels = mnist.train.next_batch(BATCH_SIZE)
      _, loss_value, step = sess.run([m['train_op'], m['loss'], m['global_step']],
                                     feed_dict={m['x']: images, m['labels']: labels,
                                                m['is_training']: True})
      if step % 20 == 0:
        tf.logging.info('step %d: loss %.4f, learning rate %g', step, loss_value,
                        sess.run(m['learning_rate']))
        saver.save(sess, CKPT_DIR + '/model.ckpt', global_step=step)
    test_accuracy = evaluate(sess, m, mnist.test)
    saver.save(sess, CKPT_DIR + '/model.ckpt', global_step=m['global_step'])
    print('test accuracy %g' % test_accuracy)

  # A fresh graph and session, restored from the newest checkpoint.
  tf.reset_default_graph()
  m = build()
  saver = tf.train.Saver()
  with tf.Session() as sess:
    path = tf.train.latest_checkpoint(CKPT_DIR)
    print('restoring %s' % path)
    saver.restore(sess, path)
    final_step = sess.run(m['global_step'])
    restored_accuracy = evaluate(sess, m, mnist.test)
    print('step %d, restored test accuracy %g' % (final_step, restored_accuracy))
    assert np.isclose(restored_accuracy, test_accuracy)


if __name__ == '__main__':
  main()
