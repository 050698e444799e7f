# ruff: noqa: I001, E402, B007, B905 - the tutorial as it was written, imports and loops included
"""Softmax regression on MNIST fed by tf.data instead of feed_dict: from_tensor_slices over
the numpy arrays, batch/repeat, a reinitializable iterator switched between the training
and the test set (Iterator.from_structure + make_initializer), and a map that scales the
pixels -- the "Importing Data" guide's pattern on the beginners' model. Weights start at
zero and the data is not shuffled, so every number is TensorFlow's."""

from __future__ import print_function

import graphc.compat.v1 as tf
tf.disable_v2_behavior()

import fake_mnist as input_data

mnist = input_data.read_data_sets("/tmp/data/", one_hot=False)

learning_rate = 0.5
batch_size = 100
epochs = 3

def scale(image, label):
  # the images arrive as floats in [0, 1]; the "raw" pipeline is 0-255
  return tf.cast(image, tf.float32) * (1.0 / 255.0) * 255.0, tf.cast(label, tf.int32)

train_data = tf.data.Dataset.from_tensor_slices(
    (mnist.train.images, mnist.train.labels)).map(scale).batch(batch_size).repeat(epochs)
test_data = tf.data.Dataset.from_tensor_slices(
    (mnist.test.images, mnist.test.labels)).map(scale).batch(1000)

iterator = tf.data.Iterator.from_structure(train_data.output_types,
                                           train_data.output_shapes)
images, labels = iterator.get_next()
train_init = iterator.make_initializer(train_data)
test_init = iterator.make_initializer(test_data)

W = tf.Variable(tf.zeros([784, 10]))
b = tf.Variable(tf.zeros([10]))
logits = tf.matmul(images, W) + b

loss = tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
train_op = tf.train.GradientDescentOptimizer(learning_rate).minimize(loss)
correct = tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels)
accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

losses = []
with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  sess.run(train_init)
  step = 0
  while True:
    try:
      _, l = sess.run([train_op, loss])
    except tf.errors.OutOfRangeError:
      break
    losses.append(l)
    if step % 10 == 0:
      print("step %d, loss %.6f" % (step, l))
    step += 1
  sess.run(test_init)
  test_accuracy = sess.run(accuracy)
  print("steps %d, test accuracy %.4f" % (step, test_accuracy))
