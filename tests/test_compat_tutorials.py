"""TF 1.x programs in the style of the classic tutorials, run through
``import graphc.compat.v1 as tf`` unchanged but for that import, on small data made here.
Each asserts that the program trains (loss falls, accuracy clears a bar)."""
# The programs keep the tutorials' own idioms (unused loop counters, plain zip).
# ruff: noqa: B007, B905

import numpy as np
import pytest

import graphc.compat.v1 as tf

# --- a local stand-in for the tutorials' MNIST download -----------------------------------------


class _DataSet:
    """``mnist.train``: images (N, 784) in [0, 1], one-hot labels, ``next_batch``."""

    def __init__(self, images, labels, seed):
        self.images, self.labels = images, labels
        self.num_examples = len(images)
        self._rng = np.random.default_rng(seed)
        self._order, self._pos = self._rng.permutation(self.num_examples), 0

    def next_batch(self, batch_size):
        if self._pos + batch_size > self.num_examples:
            self._order, self._pos = self._rng.permutation(self.num_examples), 0
        idx = self._order[self._pos : self._pos + batch_size]
        self._pos += batch_size
        return self.images[idx], self.labels[idx]


def synthetic_mnist(n_train=1500, n_test=300, side=28, classes=10, seed=0):
    """Ten blurry 28x28 prototype 'digits', each example shifted by up to two pixels and
    noised: a task a linear model learns to ~90% and a CNN to ~100%."""
    rng = np.random.default_rng(seed)
    protos = rng.random((classes, side // 4, side // 4)) > 0.55
    protos = protos.repeat(4, axis=1).repeat(4, axis=2).astype(np.float32)

    def make(n):
        labels = rng.integers(0, classes, n)
        imgs = protos[labels]
        shifts = rng.integers(-2, 3, (n, 2))
        imgs = np.stack([np.roll(im, tuple(s), axis=(0, 1)) for im, s in zip(imgs, shifts)])
        imgs = np.clip(imgs + rng.normal(0, 0.35, imgs.shape), 0, 1).astype(np.float32)
        return imgs.reshape(n, -1), np.eye(classes, dtype=np.float32)[labels]

    train, test = make(n_train), make(n_test)
    return _Namespace(train=_DataSet(*train, seed=seed), test=_DataSet(*test, seed=seed + 1))


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.fixture(scope="module")
def mnist():
    return synthetic_mnist()


# --- basic operations -----------------------------------------------------------------------


def test_hello_world():
    hello = tf.constant("Hello, TensorFlow!")
    sess = tf.Session()
    assert sess.run(hello) == b"Hello, TensorFlow!"
    assert hello.dtype is tf.string
    with pytest.raises(tf.errors.InvalidArgumentError):
        hello + 1  # strings are fetched, never computed with


def test_basic_operations():
    a = tf.constant(2)
    b = tf.constant(3)
    with tf.Session() as sess:
        assert sess.run(a + b) == 5 and sess.run(a * b) == 6

    a = tf.placeholder(tf.int16)
    b = tf.placeholder(tf.int16)
    add = tf.add(a, b)
    mul = tf.multiply(a, b)
    with tf.Session() as sess:
        assert sess.run(add, feed_dict={a: 2, b: 3}) == 5
        assert sess.run(mul, feed_dict={a: 2, b: 3}) == 6

    matrix1 = tf.constant([[3.0, 3.0]])
    matrix2 = tf.constant([[2.0], [2.0]])
    product = tf.matmul(matrix1, matrix2)
    with tf.Session() as sess:
        result = sess.run(product)
    assert result.tolist() == [[12.0]] and result.dtype == np.float32


# --- linear regression ----------------------------------------------------------------------


def test_linear_regression():
    rng = np.random
    rng.seed(0)
    learning_rate, training_epochs = 0.02, 60
    train_X = np.asarray(
        [
            3.3,
            4.4,
            5.5,
            6.71,
            6.93,
            4.168,
            9.779,
            6.182,
            7.59,
            2.167,
            7.042,
            10.791,
            5.313,
            7.997,
            5.654,
            9.27,
            3.1,
        ]
    )
    train_Y = np.asarray(
        [
            1.7,
            2.76,
            2.09,
            3.19,
            1.694,
            1.573,
            3.366,
            2.596,
            2.53,
            1.221,
            2.827,
            3.465,
            1.65,
            2.904,
            2.42,
            2.94,
            1.3,
        ]
    )
    n_samples = train_X.shape[0]

    X = tf.placeholder("float")
    Y = tf.placeholder("float")
    W = tf.Variable(rng.randn(), name="weight")
    b = tf.Variable(rng.randn(), name="bias")
    pred = tf.add(tf.multiply(X, W), b)
    cost = tf.reduce_sum(tf.pow(pred - Y, 2)) / (2 * n_samples)
    optimizer = tf.train.GradientDescentOptimizer(learning_rate).minimize(cost)
    init = tf.global_variables_initializer()

    with tf.Session() as sess:
        sess.run(init)
        first = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
        w_ref, b_ref = sess.run([W, b])
        for epoch in range(training_epochs):
            for x, y in zip(train_X, train_Y):
                sess.run(optimizer, feed_dict={X: x, Y: y})
        training_cost = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
        w_fit, b_fit = sess.run(W), sess.run(b)
    # the same per-sample SGD in numpy: d cost / dW = (pred - y) * x / n_samples
    for epoch in range(training_epochs):
        for x, y in zip(train_X, train_Y):
            err = (w_ref * x + b_ref - y) / n_samples
            w_ref, b_ref = w_ref - learning_rate * err * x, b_ref - learning_rate * err
    np.testing.assert_allclose([w_fit, b_fit], [w_ref, b_ref], rtol=1e-4)
    assert training_cost < 0.1 < first  # least squares reaches 0.077


# --- logistic regression --------------------------------------------------------------------


def test_logistic_regression(mnist):
    learning_rate, training_epochs, batch_size = 0.02, 5, 100
    x = tf.placeholder(tf.float32, [None, 784])
    y = tf.placeholder(tf.float32, [None, 10])
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))
    pred = tf.nn.softmax(tf.matmul(x, W) + b)
    cost = tf.reduce_mean(-tf.reduce_sum(y * tf.log(pred + 1e-9), reduction_indices=1))
    optimizer = tf.train.GradientDescentOptimizer(learning_rate).minimize(cost)
    init = tf.global_variables_initializer()

    with tf.Session() as sess:
        sess.run(init)
        costs = []
        for epoch in range(training_epochs):
            avg_cost = 0.0
            total_batch = int(mnist.train.num_examples / batch_size)
            for i in range(total_batch):
                batch_xs, batch_ys = mnist.train.next_batch(batch_size)
                _, c = sess.run([optimizer, cost], feed_dict={x: batch_xs, y: batch_ys})
                avg_cost += c / total_batch
            costs.append(avg_cost)
        correct_prediction = tf.equal(tf.argmax(pred, 1), tf.argmax(y, 1))
        accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
        acc = accuracy.eval({x: mnist.test.images, y: mnist.test.labels})
    assert costs[-1] < costs[0] / 2, costs
    assert acc > 0.85, acc


# --- nearest neighbour ----------------------------------------------------------------------


def test_nearest_neighbour(mnist):
    Xtr, Ytr = mnist.train.next_batch(500)
    Xte, Yte = mnist.test.next_batch(40)
    xtr = tf.placeholder("float", [None, 784])
    xte = tf.placeholder("float", [784])
    distance = tf.reduce_sum(tf.abs(tf.add(xtr, tf.negative(xte))), reduction_indices=1)
    pred = tf.arg_min(distance, 0)
    accuracy = 0.0
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for i in range(len(Xte)):
            nn_index = sess.run(pred, feed_dict={xtr: Xtr, xte: Xte[i, :]})
            if np.argmax(Ytr[nn_index]) == np.argmax(Yte[i]):
                accuracy += 1.0 / len(Xte)
    assert accuracy > 0.9


# --- a raw two-hidden-layer network with Adam -----------------------------------------------


@pytest.mark.slow
def test_multilayer_perceptron_with_adam(mnist):
    tf.set_random_seed(1)
    n_hidden_1, n_hidden_2, n_input, n_classes = 64, 64, 784, 10
    X = tf.placeholder("float", [None, n_input])
    Y = tf.placeholder("float", [None, n_classes])
    weights = {
        "h1": tf.Variable(tf.random_normal([n_input, n_hidden_1], stddev=0.05)),
        "h2": tf.Variable(tf.random_normal([n_hidden_1, n_hidden_2], stddev=0.1)),
        "out": tf.Variable(tf.random_normal([n_hidden_2, n_classes], stddev=0.1)),
    }
    biases = {
        "b1": tf.Variable(tf.random_normal([n_hidden_1])),
        "b2": tf.Variable(tf.random_normal([n_hidden_2])),
        "out": tf.Variable(tf.random_normal([n_classes])),
    }

    def neural_net(x):
        layer_1 = tf.nn.relu(tf.add(tf.matmul(x, weights["h1"]), biases["b1"]))
        layer_2 = tf.nn.relu(tf.add(tf.matmul(layer_1, weights["h2"]), biases["b2"]))
        return tf.matmul(layer_2, weights["out"]) + biases["out"]

    logits = neural_net(X)
    prediction = tf.nn.softmax(logits)
    loss_op = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=Y))
    optimizer = tf.train.AdamOptimizer(learning_rate=0.005)
    train_op = optimizer.minimize(loss_op)
    correct_pred = tf.equal(tf.argmax(prediction, 1), tf.argmax(Y, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_pred, tf.float32))
    init = tf.global_variables_initializer()

    with tf.Session() as sess:
        sess.run(init)
        for step in range(1, 301):
            batch_x, batch_y = mnist.train.next_batch(64)
            sess.run(train_op, feed_dict={X: batch_x, Y: batch_y})
            if step == 1:
                first, _ = sess.run([loss_op, accuracy], feed_dict={X: batch_x, Y: batch_y})
        acc = sess.run(accuracy, feed_dict={X: mnist.test.images, Y: mnist.test.labels})
        last = sess.run(loss_op, feed_dict={X: mnist.test.images, Y: mnist.test.labels})
    assert last < first / 4
    assert acc > 0.95


# --- a convolutional network (raw ops, the "Deep MNIST for experts" style) --------------------


@pytest.mark.slow
def test_convolutional_network_with_dropout(mnist):
    tf.set_random_seed(2)

    def weight_variable(shape):
        return tf.Variable(tf.truncated_normal(shape, stddev=0.1))

    def bias_variable(shape):
        return tf.Variable(tf.constant(0.1, shape=shape))

    def conv2d(x, W):
        return tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")

    def max_pool_2x2(x):
        return tf.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")

    x = tf.placeholder(tf.float32, shape=[None, 784])
    y_ = tf.placeholder(tf.float32, shape=[None, 10])
    x_image = tf.reshape(x, [-1, 28, 28, 1])
    W_conv1, b_conv1 = weight_variable([5, 5, 1, 8]), bias_variable([8])
    h_pool1 = max_pool_2x2(tf.nn.relu(conv2d(x_image, W_conv1) + b_conv1))
    W_conv2, b_conv2 = weight_variable([5, 5, 8, 16]), bias_variable([16])
    h_pool2 = max_pool_2x2(tf.nn.relu(conv2d(h_pool1, W_conv2) + b_conv2))
    W_fc1, b_fc1 = weight_variable([7 * 7 * 16, 64]), bias_variable([64])
    h_pool2_flat = tf.reshape(h_pool2, [-1, W_fc1.get_shape().as_list()[0]])
    h_fc1 = tf.nn.relu(tf.matmul(h_pool2_flat, W_fc1) + b_fc1)
    keep_prob = tf.placeholder(tf.float32)
    h_fc1_drop = tf.nn.dropout(h_fc1, keep_prob)
    W_fc2, b_fc2 = weight_variable([64, 10]), bias_variable([10])
    y_conv = tf.matmul(h_fc1_drop, W_fc2) + b_fc2

    cross_entropy = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=y_conv)
    )
    train_step = tf.train.AdamOptimizer(2e-3).minimize(cross_entropy)
    correct_prediction = tf.equal(tf.argmax(y_conv, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for i in range(120):
            batch = mnist.train.next_batch(32)
            train_step.run(feed_dict={x: batch[0], y_: batch[1], keep_prob: 0.75})
        test_accuracy = accuracy.eval(
            feed_dict={x: mnist.test.images, y_: mnist.test.labels, keep_prob: 1.0}
        )
    assert test_accuracy > 0.95


# --- tf.layers, with a training graph and an evaluation graph sharing variables --------------


@pytest.mark.slow
def test_layers_cnn_with_shared_weights_and_batch_norm(mnist):
    tf.set_random_seed(3)

    def conv_net(x, n_classes, dropout, reuse, is_training):
        with tf.variable_scope("ConvNet", reuse=reuse):
            x = tf.reshape(x, shape=[-1, 28, 28, 1])
            conv1 = tf.layers.conv2d(x, 8, 5, activation=tf.nn.relu, padding="same")
            conv1 = tf.layers.max_pooling2d(conv1, 2, 2)
            conv2 = tf.layers.conv2d(conv1, 16, 3, activation=tf.nn.relu)
            conv2 = tf.layers.max_pooling2d(conv2, 2, 2)
            fc1 = tf.layers.flatten(conv2)
            fc1 = tf.layers.dense(fc1, 64)
            fc1 = tf.nn.relu(tf.layers.batch_normalization(fc1, training=is_training))
            fc1 = tf.layers.dropout(fc1, rate=dropout, training=is_training)
            return tf.layers.dense(fc1, n_classes)

    X = tf.placeholder(tf.float32, [None, 784])
    Y = tf.placeholder(tf.float32, [None, 10])
    logits_train = conv_net(X, 10, 0.25, reuse=False, is_training=True)
    logits_test = conv_net(X, 10, 0.25, reuse=True, is_training=False)
    assert len(tf.trainable_variables()) == 10  # 4 kernels, 4 biases, gamma, beta

    loss_op = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits_v2(logits=logits_train, labels=Y)
    )
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train_op = tf.train.AdamOptimizer(0.003).minimize(loss_op)
    correct = tf.equal(tf.argmax(logits_test, 1), tf.argmax(Y, 1))
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(100):
            batch_x, batch_y = mnist.train.next_batch(32)
            sess.run(train_op, feed_dict={X: batch_x, Y: batch_y})
        acc = sess.run(accuracy, feed_dict={X: mnist.test.images, Y: mnist.test.labels})
        moving_mean = sess.run(
            tf.get_default_graph().get_tensor_by_name("ConvNet/batch_normalization/moving_mean:0")
        )
    assert np.abs(moving_mean).max() > 0  # the update ops ran
    assert acc > 0.9


# --- save and restore -----------------------------------------------------------------------


def test_save_and_restore(mnist, tmp_path):
    model_path = str(tmp_path / "model.ckpt")

    def build():
        x = tf.placeholder(tf.float32, [None, 784])
        y = tf.placeholder(tf.float32, [None, 10])
        with tf.variable_scope("softmax"):
            W = tf.get_variable("W", [784, 10], initializer=tf.zeros_initializer())
            b = tf.get_variable("b", [10], initializer=tf.zeros_initializer())
        logits = tf.matmul(x, W) + b
        cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), tf.argmax(y, 1)), "float"))
        return x, y, cost, acc

    x, y, cost, acc = build()
    train = tf.train.GradientDescentOptimizer(0.5).minimize(cost)
    saver = tf.train.Saver()
    feed = {x: mnist.test.images, y: mnist.test.labels}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(60):
            bx, by = mnist.train.next_batch(100)
            sess.run(train, feed_dict={x: bx, y: by})
        trained = sess.run(acc, feed_dict=feed)
        save_path = saver.save(sess, model_path)

    tf.reset_default_graph()
    x, y, cost, acc = build()
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        fresh = sess.run(acc, feed_dict={x: mnist.test.images, y: mnist.test.labels})
        saver.restore(sess, save_path)
        restored = sess.run(acc, feed_dict={x: mnist.test.images, y: mnist.test.labels})
    assert trained > 0.8 and fresh < 0.3
    assert restored == trained


# --- an InteractiveSession, the way notebooks used TF 1.x --------------------------------------


def test_interactive_session_eval_and_run():
    sess = tf.InteractiveSession()
    try:
        x = tf.Variable([1.0, 2.0])
        a = tf.constant([3.0, 3.0])
        x.initializer.run()
        sub = tf.subtract(x, a)
        assert sub.eval().tolist() == [-2.0, -1.0]
        tf.assign(x, [5.0, 5.0]).op.run()
        assert x.eval().tolist() == [5.0, 5.0]
    finally:
        sess.close()


# --- a recurrent network reading the image row by row ----------------------------------------


def test_recurrent_network_lstm(mnist):
    tf.set_random_seed(4)
    timesteps, num_input, num_hidden, num_classes = 28, 28, 32, 10
    X = tf.placeholder("float", [None, timesteps, num_input])
    Y = tf.placeholder("float", [None, num_classes])
    weights = {"out": tf.Variable(tf.random_normal([num_hidden, num_classes]))}
    biases = {"out": tf.Variable(tf.random_normal([num_classes]))}

    def RNN(x, weights, biases):
        x = tf.unstack(x, timesteps, 1)
        lstm_cell = tf.contrib.rnn.BasicLSTMCell(num_hidden, forget_bias=1.0)
        outputs, states = tf.contrib.rnn.static_rnn(lstm_cell, x, dtype=tf.float32)
        return tf.matmul(outputs[-1], weights["out"]) + biases["out"]

    logits = RNN(X, weights, biases)
    loss_op = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=Y))
    train_op = tf.train.AdamOptimizer(learning_rate=0.01).minimize(loss_op)
    correct_pred = tf.equal(tf.argmax(tf.nn.softmax(logits), 1), tf.argmax(Y, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_pred, tf.float32))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(1, 61):
            batch_x, batch_y = mnist.train.next_batch(64)
            batch_x = batch_x.reshape((64, timesteps, num_input))
            sess.run(train_op, feed_dict={X: batch_x, Y: batch_y})
        test_data = mnist.test.images.reshape((-1, timesteps, num_input))
        acc = sess.run(accuracy, feed_dict={X: test_data, Y: mnist.test.labels})
    assert acc > 0.9
