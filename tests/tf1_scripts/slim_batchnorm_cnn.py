# ruff: noqa: I001, E402, B007, B905 - the tutorial as it was written, imports and loops included
"""A small CNN written with TF-Slim / tf.contrib.layers, as TF 1.x model zoos and course
notebooks wrote them: one arg_scope sets the activation, batch norm (is_training, decay),
the Xavier initializer and an L2 regularizer for every conv2d and fully_connected layer;
max_pool2d, flatten and dropout from slim; the loss adds tf.losses' regularization loss;
the batch-norm moving averages are updated through the UPDATE_OPS collection; evaluation
runs with is_training=False (the moving statistics)."""

from __future__ import print_function

import graphc.compat.v1 as tf

import fake_mnist as input_data

slim = tf.contrib.slim

mnist = input_data.read_data_sets("/tmp/data/", one_hot=True)
tf.set_random_seed(0)

batch_size = 50
training_steps = 150
display_step = 25


def lenet(images, is_training):
  with slim.arg_scope([slim.conv2d, slim.fully_connected],
                      activation_fn=tf.nn.relu,
                      normalizer_fn=slim.batch_norm,
                      normalizer_params={"is_training": is_training, "decay": 0.9},
                      weights_initializer=tf.contrib.layers.xavier_initializer(),
                      weights_regularizer=slim.l2_regularizer(1e-4)):
    net = slim.conv2d(images, 16, [5, 5], scope="conv1")
    net = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
    net = slim.conv2d(net, 32, [5, 5], scope="conv2")
    net = slim.max_pool2d(net, [2, 2], 2, scope="pool2")
    net = slim.flatten(net)
    net = slim.fully_connected(net, 128, scope="fc3")
    net = slim.dropout(net, 0.75, is_training=is_training, scope="dropout3")
    logits = slim.fully_connected(net, 10, activation_fn=None, normalizer_fn=None,
                                  scope="fc4")
  return logits


x = tf.placeholder(tf.float32, [None, 784])
y = tf.placeholder(tf.float32, [None, 10])
is_training = tf.placeholder(tf.bool, name="is_training")
images = tf.reshape(x, [-1, 28, 28, 1])
logits = lenet(images, is_training)

cross_entropy = tf.losses.softmax_cross_entropy(onehot_labels=y, logits=logits)
total_loss = cross_entropy + tf.losses.get_regularization_loss()

update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
with tf.control_dependencies(update_ops):
  train_op = tf.train.AdamOptimizer(1e-3).minimize(total_loss)

correct = tf.equal(tf.argmax(logits, 1), tf.argmax(y, 1))
accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

losses = []
with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  for step in range(1, training_steps + 1):
    batch_x, batch_y = mnist.train.next_batch(batch_size)
    _, l = sess.run([train_op, total_loss],
                    feed_dict={x: batch_x, y: batch_y, is_training: True})
    losses.append(l)
    if step % display_step == 0 or step == 1:
      acc = sess.run(accuracy, feed_dict={x: batch_x, y: batch_y, is_training: False})
      print("Step %d, loss %.4f, accuracy %.3f" % (step, l, acc))
  moving_mean = [v for v in tf.global_variables() if "moving_mean" in v.name]
  moving_mean_values = sess.run(moving_mean)
  test_accuracy = sess.run(accuracy, feed_dict={x: mnist.test.images,
                                                y: mnist.test.labels,
                                                is_training: False})
  print("Test accuracy:", test_accuracy)
