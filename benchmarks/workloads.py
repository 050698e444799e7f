"""The SPEC §10 workloads (issue 18's models are in benchmarks/models.py). Each
``build_<name>()`` returns ``{contender: step()}``: callables doing one unit of work (a
training step, one ``sess.run``, one forward pass). Peers appear only when importable;
graphc and hand-written numpy always do."""

from __future__ import annotations

import numpy as np

import graphc as gc

from . import models
from .models import real_tf, tf_session

CHAIN_N = 1 << 20


def _peer(name):
    try:
        return __import__(name)
    except ImportError:
        return None


# --- mlp2 / mlp3: training steps ----------------------------------------------------------------


def _mlp_data(n, sizes, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    labels = rng.integers(0, sizes[-1], n)
    Y = np.eye(sizes[-1], dtype=np.float32)[labels]
    Ws = [
        (rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)
        for a, b in zip(sizes, sizes[1:], strict=False)
    ]
    return X, Y, Ws


def torch_sgd_step(torch, weights, x, y, loss_kind, lr):
    """One SGD step of the ReLU MLP in torch eager: the peer's step on CPU and on CUDA."""
    h = x
    for i, w in enumerate(weights):
        h = h @ w
        if i < len(weights) - 1:
            h = torch.relu(h)
    if loss_kind == "sse":
        loss = ((h - y) ** 2).sum()
    else:
        loss = torch.nn.functional.cross_entropy(h, y)
    loss.backward()
    with torch.no_grad():
        for w in weights:
            w.sub_(lr * w.grad)
            w.grad = None
    return loss


def mlp_graph(W0, loss_kind, lr):
    """graphc's MLP training step, in a graph of its own: (graph, x, y, train, loss, init)."""
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(gc.float32, (None, W0[0].shape[0]), name="x")
        y = gc.placeholder(gc.float32, (None, W0[-1].shape[1]), name="y")
        ws = [gc.Variable(w, name=f"w{i}") for i, w in enumerate(W0)]
        h = x
        for i, w in enumerate(ws):
            h = h @ w
            if i < len(ws) - 1:
                h = gc.relu(h)
        if loss_kind == "sse":
            loss = gc.reduce_sum((h - y) ** 2)
        else:
            loss = gc.reduce_mean(gc.softmax_cross_entropy_with_logits(labels=y, logits=h))
        train = gc.train.GradientDescentOptimizer(lr).minimize(loss)
        init = gc.global_variables_initializer()
    return graph, x, y, train, loss, init


def build_mlp(n, sizes, loss_kind, lr):
    """A ReLU MLP training step (no biases), SGD; loss "sse" (sum of squared error) or "xent"
    (mean softmax cross-entropy)."""
    X, Y, W0 = _mlp_data(n, sizes)
    out = {}

    # graphc
    graph, x, y, train, loss, init = mlp_graph(W0, loss_kind, lr)
    sess = gc.Session(graph=graph)
    sess.run(init)
    out["graphc"] = lambda: sess.run([train, loss], {x: X, y: Y})

    # hand-written numpy, buffers reused
    Wn = [w.copy() for w in W0]

    def numpy_step():
        acts, h = [X], X
        for i, w in enumerate(Wn):
            h = h @ w
            if i < len(Wn) - 1:
                np.maximum(h, 0, out=h)
            acts.append(h)
        if loss_kind == "sse":
            g = h - Y
            loss = float(np.sum(g * g))
            g *= 2
        else:
            z = h - h.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            loss = float(np.mean(np.log(s)[:, 0] - (z * Y).sum(axis=1)))
            g = (e / s - Y) / len(X)
        for i in range(len(Wn) - 1, -1, -1):
            gw = acts[i].T @ g
            if i:
                g = g @ Wn[i].T
                g *= acts[i] > 0
            Wn[i] -= lr * gw
        return loss

    out["numpy"] = numpy_step

    # the matmuls alone, into preallocated outputs: the floor any framework pays
    fwd = [np.empty((n, w.shape[1]), np.float32) for w in W0]
    dW = [np.empty_like(w) for w in W0]
    dA = [np.empty((n, w.shape[0]), np.float32) for w in W0]

    def matmuls_only():
        h = X
        for w, o in zip(W0, fwd, strict=True):
            h = np.matmul(h, w, out=o)
        g = h
        for i in range(len(W0) - 1, -1, -1):
            np.matmul((fwd[i - 1] if i else X).T, g, out=dW[i])
            if i:
                g = np.matmul(g, W0[i].T, out=dA[i])

    out["matmuls only"] = matmuls_only

    torch = _peer("torch")
    if torch is not None:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
        tW = [torch.tensor(w, requires_grad=True) for w in W0]

        def torch_step():
            return torch_sgd_step(torch, tW, tX, tY, loss_kind, lr)

        out["torch eager"] = torch_step

    jax = _peer("jax")
    if jax is not None:
        jnp = jax.numpy

        def loss_fn(ws, xb, yb):
            h = xb
            for i, w in enumerate(ws):
                h = h @ w
                if i < len(ws) - 1:
                    h = jax.nn.relu(h)
            if loss_kind == "sse":
                return jnp.sum((h - yb) ** 2)
            return jnp.mean(-jnp.sum(yb * jax.nn.log_softmax(h), axis=1))

        @jax.jit
        def jstep(ws, xb, yb):
            loss, grads = jax.value_and_grad(loss_fn)(ws, xb, yb)
            return [w - lr * g for w, g in zip(ws, grads, strict=True)], loss

        state = {"ws": [jnp.asarray(w) for w in W0]}
        jX, jY = jnp.asarray(X), jnp.asarray(Y)

        def jax_step():
            state["ws"], loss = jstep(state["ws"], jX, jY)
            loss.block_until_ready()

        out["jax jit"] = jax_step

    tf = real_tf()
    if tf is not None:
        tgraph = tf.Graph()
        with tgraph.as_default():
            tx = tf.placeholder(tf.float32, [None, sizes[0]])
            ty = tf.placeholder(tf.float32, [None, sizes[-1]])
            h = tx
            for i, w in enumerate(W0):
                h = tf.matmul(h, tf.Variable(w))
                if i < len(W0) - 1:
                    h = tf.nn.relu(h)
            if loss_kind == "sse":
                tloss = tf.reduce_sum(tf.square(h - ty))
            else:
                tloss = tf.reduce_mean(
                    tf.nn.softmax_cross_entropy_with_logits_v2(labels=ty, logits=h)
                )
            ttrain = tf.train.GradientDescentOptimizer(lr).minimize(tloss)
            tinit = tf.global_variables_initializer()
        tsess = tf_session(tf, tgraph)
        tsess.run(tinit)
        out["tf1 session"] = lambda: tsess.run([ttrain, tloss], {tx: X, ty: Y})
    return out


def build_mlp2():
    return build_mlp(64, (1000, 100, 10), "sse", 1e-4)


def build_mlp3():
    return build_mlp(256, (784, 512, 512, 10), "xent", 0.05)


# --- linreg: one sess.run of a scalar SGD step ------------------------------------------------

LINREG_X = np.array(
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
LINREG_Y = np.array(
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


def build_linreg():
    """One call = one SGD step on one sample, cycling through the 17 samples."""
    lr = 0.01
    samples = [(float(a), float(b)) for a, b in zip(LINREG_X, LINREG_Y, strict=True)]
    out = {}
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(gc.float32, (), name="x")
        y = gc.placeholder(gc.float32, (), name="y")
        w = gc.Variable(0.3, name="w")
        b = gc.Variable(0.1, name="b")
        loss = (w * x + b - y) ** 2
        train = gc.train.GradientDescentOptimizer(lr).minimize(loss)
        init = gc.global_variables_initializer()
    sess = gc.Session(graph=graph)
    sess.run(init)
    it = {"i": 0}

    def graphc_step():
        i = it["i"] = (it["i"] + 1) % 17
        xi, yi = samples[i]
        sess.run(train, {x: xi, y: yi})

    out["graphc"] = graphc_step

    wb = np.array([0.3, 0.1], np.float32)

    def numpy_step():
        i = it["i"] = (it["i"] + 1) % 17
        xi, yi = samples[i]
        err = 2 * (wb[0] * xi + wb[1] - yi)
        wb[0] -= lr * err * xi
        wb[1] -= lr * err

    out["numpy"] = numpy_step

    torch = _peer("torch")
    if torch is not None:
        tw = torch.tensor(0.3, requires_grad=True)
        tb = torch.tensor(0.1, requires_grad=True)

        def torch_step():
            i = it["i"] = (it["i"] + 1) % 17
            xi, yi = samples[i]
            loss = (tw * xi + tb - yi) ** 2
            loss.backward()
            with torch.no_grad():
                tw.sub_(lr * tw.grad)
                tb.sub_(lr * tb.grad)
                tw.grad = tb.grad = None

        out["torch eager"] = torch_step

    jax = _peer("jax")
    if jax is not None:

        @jax.jit
        def jstep(p, xi, yi):
            g = jax.grad(lambda p: (p[0] * xi + p[1] - yi) ** 2)(p)
            return p - lr * g

        state = {"p": jax.numpy.asarray([0.3, 0.1], dtype="float32")}

        def jax_step():
            i = it["i"] = (it["i"] + 1) % 17
            xi, yi = samples[i]
            state["p"] = jstep(state["p"], xi, yi)
            state["p"].block_until_ready()

        out["jax jit"] = jax_step

    tf = real_tf()
    if tf is not None:
        tgraph = tf.Graph()
        with tgraph.as_default():
            tx, ty = tf.placeholder(tf.float32, []), tf.placeholder(tf.float32, [])
            tfw, tfb = tf.Variable(0.3), tf.Variable(0.1)
            ttrain = tf.train.GradientDescentOptimizer(lr).minimize((tfw * tx + tfb - ty) ** 2)
            tinit = tf.global_variables_initializer()
        tsess = tf_session(tf, tgraph)
        tsess.run(tinit)

        def tf_step():
            i = it["i"] = (it["i"] + 1) % 17
            xi, yi = samples[i]
            tsess.run(ttrain, {tx: xi, ty: yi})

        out["tf1 session"] = tf_step

    # the same graphc step fed numpy float32 scalars (issue 18: as cheap as Python floats)
    np_samples = [(np.float32(a), np.float32(b)) for a, b in samples]

    def graphc_np_step():
        i = it["i"] = (it["i"] + 1) % 17
        xi, yi = np_samples[i]
        sess.run(train, {x: xi, y: yi})

    out["graphc np.float32"] = graphc_np_step
    return out


# --- chain: 12 elementwise ops on 1M float32, summed -----------------------------------------


def chain_graphc(x):
    """The 12 elementwise ops — neg, mul, exp, mul, add, tanh; mul, sub, abs, mul, add, sqrt —
    then a sum. Two transcendentals: a chain of only exp/tanh is bound by their arithmetic,
    which no executor schedule can hide."""
    y = gc.tanh(gc.exp(-x * x) * 3.0 + 1.0)
    y = gc.sqrt(gc.abs(y * y - 0.5) * 2.0 + 1.0)
    return gc.reduce_sum(y)


def chain_numpy(x):
    y = np.tanh(np.exp(-x * x) * 3.0 + 1.0)
    y = np.sqrt(np.abs(y * y - 0.5) * 2.0 + 1.0)
    return y.sum()


def build_chain():
    X = np.random.default_rng(0).standard_normal(CHAIN_N).astype(np.float32)
    out = {}
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(gc.float32, (None,), name="x")
        s = chain_graphc(x)
    sess = gc.Session(graph=graph)
    out["graphc"] = lambda: sess.run(s, {x: X})
    out["numpy eager"] = lambda: chain_numpy(X)

    buf = np.empty_like(X)

    def numpy_out():
        np.negative(X, out=buf)
        np.multiply(buf, X, out=buf)
        np.exp(buf, out=buf)
        np.multiply(buf, 3.0, out=buf)
        np.add(buf, 1.0, out=buf)
        np.tanh(buf, out=buf)
        np.multiply(buf, buf, out=buf)
        np.subtract(buf, 0.5, out=buf)
        np.abs(buf, out=buf)
        np.multiply(buf, 2.0, out=buf)
        np.add(buf, 1.0, out=buf)
        np.sqrt(buf, out=buf)
        return buf.sum()

    out["numpy out="] = numpy_out

    torch = _peer("torch")
    if torch is not None:
        tX = torch.from_numpy(X)

        def torch_chain():
            y = torch.tanh(torch.exp(-tX * tX) * 3.0 + 1.0)
            return torch.sqrt(torch.abs(y * y - 0.5) * 2.0 + 1.0).sum()

        out["torch eager"] = torch_chain

    jax = _peer("jax")
    if jax is not None:
        jnp = jax.numpy

        @jax.jit
        def jchain(v):
            y = jnp.tanh(jnp.exp(-v * v) * 3.0 + 1.0)
            return jnp.sqrt(jnp.abs(y * y - 0.5) * 2.0 + 1.0).sum()

        jX = jnp.asarray(X)
        out["jax jit"] = lambda: jchain(jX).block_until_ready()

    tf = real_tf()
    if tf is not None:
        tgraph = tf.Graph()
        with tgraph.as_default():
            tx = tf.placeholder(tf.float32, [None])
            ty = tf.tanh(tf.exp(-tx * tx) * 3.0 + 1.0)
            ts = tf.reduce_sum(tf.sqrt(tf.abs(ty * ty - 0.5) * 2.0 + 1.0))
        tsess = tf_session(tf, tgraph)
        out["tf1 session"] = lambda: tsess.run(ts, {tx: X})
    return out


# --- compile: a 100-layer MLP with Adam ---------------------------------------------------------


def compile_mlp(layers=100, width=64, batch=32):
    """Build, differentiate, optimize and plan a deep MLP trained with Adam; return the plan."""
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(gc.float32, (None, width))
        y = gc.placeholder(gc.float32, (None, width))
        h = x
        for i in range(layers):
            w = gc.Variable(gc.random_normal((width, width), stddev=0.1, seed=i))
            b = gc.Variable(gc.zeros((width,)))
            h = gc.relu(h @ w + b)
        loss = gc.reduce_mean((h - y) ** 2)
        train = gc.train.AdamOptimizer(1e-3).minimize(loss)
        return gc.compile([train, loss], feed_shapes={x: (batch, width), y: (batch, width)})


def build_compile():
    return {"graphc": compile_mlp}


def build_lstm_scan():
    from .lstm import report

    return {"graphc": report}


def build_conv_ops():
    from .conv_ops import report

    return {"graphc": report}


WORKLOADS = {
    "mlp2": build_mlp2,
    "mlp3": build_mlp3,
    "linreg": build_linreg,
    "chain": build_chain,
    "compile": build_compile,
    "lstm": models.build_lstm,
    "cnn": models.build_cnn,
    "dropout-mlp": models.build_dropout_mlp,
    "cnn-script": models.build_cnn_script,
    "lstm-scan": build_lstm_scan,
    "conv-ops": build_conv_ops,
}


# --- compile-scaling: build, minimize, compile and first run of deep MLPs -----------------------

SCALING_DEPTHS = (10, 100, 300, 1000)


def compile_scaling(depth, width=64, batch=32, clock=None):
    """CPU seconds of each stage for a ``depth``-layer ReLU MLP trained with Adam: building
    the forward graph, ``minimize`` (gradients and updates), ``gc.compile`` of the training
    step, and the first run in a Session (initializer, then one training step: its own plan,
    code generation and execution). Returns ``{stage: seconds, "ops": graph size}``."""
    import gc as collector
    import time

    # the previous depth's graph and session are garbage by now: free them here, not in
    # the middle of this depth's build (where a full collection would bill them to it)
    collector.collect()
    clock = clock or time.process_time
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, width)).astype(np.float32)
    Y = rng.standard_normal((batch, width)).astype(np.float32)
    out = {}
    graph = gc.Graph()
    with graph.as_default():
        t = clock()
        x = gc.placeholder(gc.float32, (None, width))
        y = gc.placeholder(gc.float32, (None, width))
        h = x
        for i in range(depth):
            w = gc.Variable(gc.random_normal((width, width), stddev=0.1, seed=i))
            b = gc.Variable(gc.zeros((width,)))
            h = gc.relu(h @ w + b)
        loss = gc.reduce_mean((h - y) ** 2)
        out["build"] = clock() - t
        t = clock()
        train = gc.train.AdamOptimizer(1e-3).minimize(loss)
        init = gc.global_variables_initializer()
        out["minimize"] = clock() - t
        t = clock()
        gc.compile([train, loss], feed_shapes={x: (batch, width), y: (batch, width)})
        out["compile"] = clock() - t
        t = clock()
        with gc.Session(graph) as sess:
            sess.run(init)
            value = sess.run([train, loss], {x: X, y: Y})[1]
        out["first run"] = clock() - t
        assert np.isfinite(value)
        out["ops"] = len(graph)
    return out
