# ruff: noqa: I001, E402, B007, B905 - the tutorial as it was written, imports and loops included
"""Linear regression read from CSV files through TF 1.x's queue pipeline, as the "Reading
data" guide and many course notebooks did it: string_input_producer over the files,
TextLineReader skipping the header, decode_csv with record_defaults, tf.train.batch,
a Coordinator and start_queue_runners, and a training loop that ends when the epochs
run out (OutOfRangeError). The weights start at zero and nothing is shuffled, so the
printed numbers are TensorFlow's."""

from __future__ import print_function

import os
import tempfile

import numpy as np
import graphc.compat.v1 as tf

data_dir = tempfile.mkdtemp()
rng = np.random.RandomState(7)
filenames = []
for part in range(2):
  path = os.path.join(data_dir, "houses-%d.csv" % part)
  with open(path, "w") as f:
    f.write("size,rooms,price\n")
    for _ in range(60):
      size, rooms = rng.uniform(0.5, 3.0), rng.randint(1, 6)
      price = 2.0 * size + 0.5 * rooms + 1.0 + rng.normal(0, 0.05)
      f.write("%.4f,%d,%.4f\n" % (size, rooms, price))
  filenames.append(path)

learning_rate = 0.05
batch_size = 10
num_epochs = 20

filename_queue = tf.train.string_input_producer(filenames, num_epochs=num_epochs,
                                                shuffle=False)
reader = tf.TextLineReader(skip_header_lines=1)
key, value = reader.read(filename_queue)
record_defaults = [[0.0], [0], [0.0]]
size, rooms, price = tf.decode_csv(value, record_defaults=record_defaults)
features = tf.stack([size, tf.cast(rooms, tf.float32)])
feature_batch, price_batch = tf.train.batch([features, price], batch_size=batch_size)

W = tf.Variable(tf.zeros([2, 1]), name="weights")
b = tf.Variable(0.0, name="bias")
prediction = tf.squeeze(tf.matmul(feature_batch, W), 1) + b
loss = tf.reduce_mean(tf.square(prediction - price_batch))
train_op = tf.train.GradientDescentOptimizer(learning_rate).minimize(loss)

with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  sess.run(tf.local_variables_initializer())
  coord = tf.train.Coordinator()
  threads = tf.train.start_queue_runners(sess=sess, coord=coord)
  step = 0
  try:
    while not coord.should_stop():
      _, l = sess.run([train_op, loss])
      if step % 40 == 0:
        print("step %d, loss %.5f" % (step, l))
      step += 1
  except tf.errors.OutOfRangeError:
    print("Done training for %d epochs, %d steps." % (num_epochs, step))
  finally:
    coord.request_stop()
  coord.join(threads)
  final_W, final_b, final_loss = sess.run(W), sess.run(b), l
  print("W", final_W.ravel(), "b", final_b)
