"""The model workloads (issue 18): an LSTM step, a CNN step, an MLP with dropout fed per step,
and a tutorial-style CNN script timed end to end. Each graph is written once against the TF
1.x API and built twice: with ``graphc.compat.v1`` and, when importable, with TensorFlow's
``tensorflow.compat.v1`` (imported lazily, never a dependency). torch eager joins the steps
with its own modules (``nn.LSTM``, ``F.conv2d``), as a torch user would write them.

Data are synthetic, MNIST-shaped (28x28 images, 10 classes): nothing is downloaded."""

from __future__ import annotations

import numpy as np

BATCH_LSTM, STEPS, INPUT, UNITS = 128, 28, 28, 128
BATCH_CNN = 64
BATCH_MLP = 128


def graphc_tf():
    import graphc.compat.v1 as tf

    return tf


def real_tf():
    """``tensorflow.compat.v1``, or None when TensorFlow is not importable."""
    try:
        import tensorflow.compat.v1 as tf
    except ImportError:
        return None
    tf.disable_eager_execution()  # what a TF 1.x script's tf.disable_v2_behavior() does
    return tf


def tf_session(tf, graph):
    if tf.__name__.startswith("graphc"):
        return tf.Session(graph=graph)
    config = tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    return tf.Session(graph=graph, config=config)


def mnist_like(n, seed=0):
    """``n`` synthetic 28x28 'digits': class templates plus noise, one-hot labels."""
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 784)).astype(np.float32)
    labels = rng.integers(0, 10, n)
    x = np.clip(templates[labels] * 0.7 + rng.random((n, 784), np.float32) * 0.3, 0, 1)
    return x.astype(np.float32), np.eye(10, dtype=np.float32)[labels]


# --- the graphs, written once against the TF 1.x API --------------------------------------------


def _init(tf, shape, seed, scale=0.1):
    return tf.Variable(tf.random_normal(shape, stddev=scale, seed=seed))


def lstm_graph(tf):
    """A one-layer LSTM over 28 steps of 28 inputs (BasicLSTMCell's math: one matmul for the
    gates i, j, f, o; forget bias 1), a dense softmax layer on the last output, Adam."""
    x = tf.placeholder(tf.float32, [BATCH_LSTM, STEPS, INPUT])
    y = tf.placeholder(tf.float32, [BATCH_LSTM, 10])
    w = _init(tf, [INPUT + UNITS, 4 * UNITS], 1)
    b = tf.Variable(tf.zeros([4 * UNITS]))
    wo, bo = _init(tf, [UNITS, 10], 2), tf.Variable(tf.zeros([10]))
    c = h = tf.zeros([BATCH_LSTM, UNITS])
    for xt in tf.unstack(x, STEPS, 1):
        gates = tf.matmul(tf.concat([xt, h], 1), w) + b
        i, j, f, o = tf.split(gates, 4, 1)
        c = c * tf.sigmoid(f + 1.0) + tf.sigmoid(i) * tf.tanh(j)
        h = tf.tanh(c) * tf.sigmoid(o)
    logits = tf.matmul(h, wo) + bo
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
    train = tf.train.AdamOptimizer(1e-3).minimize(loss)
    return x, y, None, train, loss, logits


def cnn_graph(tf, kernels=(5, 5)):
    """The tutorial CNN (conv 32 → pool → conv 64 → pool → fc 1024 → dropout → 10), SAME
    padding, ``kernels`` the two convolutions' sizes; keep_prob is fed; Adam."""
    x = tf.placeholder(tf.float32, [None, 784])
    y = tf.placeholder(tf.float32, [None, 10])
    keep = tf.placeholder(tf.float32)
    k1, k2 = kernels
    w1, b1 = _init(tf, [k1, k1, 1, 32], 1), tf.Variable(tf.zeros([32]))
    w2, b2 = _init(tf, [k2, k2, 32, 64], 2), tf.Variable(tf.zeros([64]))
    w3, b3 = _init(tf, [7 * 7 * 64, 1024], 3, 0.02), tf.Variable(tf.zeros([1024]))
    w4, b4 = _init(tf, [1024, 10], 4), tf.Variable(tf.zeros([10]))
    h = tf.reshape(x, [-1, 28, 28, 1])
    for w, b in ((w1, b1), (w2, b2)):
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, w, [1, 1, 1, 1], "SAME"), b))
        h = tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")
    h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 7 * 7 * 64]), w3) + b3)
    h = tf.nn.dropout(h, keep_prob=keep)
    logits = tf.matmul(h, w4) + b4
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
    train = tf.train.AdamOptimizer(1e-3).minimize(loss)
    return x, y, keep, train, loss, logits


def dropout_mlp_graph(tf):
    """784-256-256-10 ReLU MLP, dropout (keep_prob fed) after each hidden layer, Adam."""
    x = tf.placeholder(tf.float32, [None, 784])
    y = tf.placeholder(tf.float32, [None, 10])
    keep = tf.placeholder(tf.float32)
    h = x
    for k, (a, b) in enumerate(((784, 256), (256, 256))):
        w, bias = _init(tf, [a, b], k + 1), tf.Variable(tf.zeros([b]))
        h = tf.nn.dropout(tf.nn.relu(tf.matmul(h, w) + bias), keep_prob=keep)
    wo, bo = _init(tf, [256, 10], 9), tf.Variable(tf.zeros([10]))
    logits = tf.matmul(h, wo) + bo
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
    train = tf.train.AdamOptimizer(1e-3).minimize(loss)
    return x, y, keep, train, loss, logits


def _step(tf, build, batch, shape_x):
    graph = tf.Graph()
    with graph.as_default():
        x, y, keep, train, loss, _ = build(tf)
        init = tf.global_variables_initializer()
    sess = tf_session(tf, graph)
    sess.run(init)
    X, Y = mnist_like(batch)
    X = X.reshape((batch,) + shape_x)
    feeds = {x: X, y: Y}
    if keep is not None:
        feeds[keep] = 0.75
    return lambda: sess.run([train, loss], feeds)


def _contenders(build, batch, shape_x):
    out = {"graphc": _step(graphc_tf(), build, batch, shape_x)}
    tf = real_tf()
    if tf is not None:
        out["tf1 session"] = _step(tf, build, batch, shape_x)
    return out


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return torch


# --- torch eager steps ------------------------------------------------------------------------


def _torch_step(torch, model, batch, shape_x, keep=None):
    X, Y = mnist_like(batch)
    tX = torch.from_numpy(X.reshape((batch,) + shape_x))
    labels = torch.from_numpy(Y.argmax(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if keep is not None:
        model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tX), labels)
        loss.backward()
        opt.step()
        return loss

    return step


def build_lstm():
    out = _contenders(lstm_graph, BATCH_LSTM, (STEPS, INPUT))
    torch = _torch()
    if torch is not None:
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(INPUT, UNITS, batch_first=True)
                self.out = nn.Linear(UNITS, 10)

            def forward(self, x):
                return self.out(self.lstm(x)[0][:, -1])

        out["torch eager"] = _torch_step(torch, Net(), BATCH_LSTM, (STEPS, INPUT))
    return out


def _torch_cnn(torch, kernels=(5, 5)):
    nn = torch.nn
    k1, k2 = kernels
    return nn.Sequential(
        nn.Conv2d(1, 32, k1, padding=k1 // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, k2, padding=k2 // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(7 * 7 * 64, 1024),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(1024, 10),
    )


def build_cnn():
    out = _contenders(cnn_graph, BATCH_CNN, (784,))
    torch = _torch()
    if torch is not None:
        out["torch eager"] = _torch_step(
            torch, _torch_cnn(torch), BATCH_CNN, (1, 28, 28), keep=0.75
        )
    return out


def build_dropout_mlp():
    out = _contenders(dropout_mlp_graph, BATCH_MLP, (784,))
    torch = _torch()
    if torch is not None:
        nn = torch.nn
        model = nn.Sequential(
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(256, 10),
        )
        out["torch eager"] = _torch_step(torch, model, BATCH_MLP, (784,), keep=0.75)
    return out


# --- a tutorial-style script, end to end ---------------------------------------------------------

SCRIPT_STEPS, SCRIPT_TEST = 20, 2000


def tutorial_cnn_script(tf, steps=SCRIPT_STEPS, n_test=SCRIPT_TEST, batch=BATCH_CNN):
    """What a TF 1.x tutorial does: build the CNN (a 3x3 and a 5x5 convolution), initialise,
    train ``steps`` batches with ``keep_prob`` fed per step (printing the loss every few
    steps, which runs the graph again with keep_prob 1), then the accuracy on the whole test
    set in one run. Returns that accuracy."""
    X, Y = mnist_like(steps * batch, seed=1)
    Xt, Yt = mnist_like(n_test, seed=2)
    graph = tf.Graph()
    with graph.as_default():
        x, y, keep, train, loss, logits = cnn_graph(tf, kernels=(3, 5))
        correct = tf.equal(tf.argmax(logits, 1), tf.argmax(y, 1))
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
        init = tf.global_variables_initializer()
    with tf_session(tf, graph) as sess:
        sess.run(init)
        for step in range(steps):
            xb, yb = X[step * batch : (step + 1) * batch], Y[step * batch : (step + 1) * batch]
            sess.run(train, feed_dict={x: xb, y: yb, keep: 0.75})
            if step % 10 == 0:
                sess.run([loss, accuracy], feed_dict={x: xb, y: yb, keep: 1.0})
        return sess.run(accuracy, feed_dict={x: Xt, y: Yt, keep: 1.0})


def build_cnn_script():
    out = {"graphc": lambda: tutorial_cnn_script(graphc_tf())}
    tf = real_tf()
    if tf is not None:
        out["tf1 session"] = lambda: tutorial_cnn_script(tf)
    return out
