"""The convolution and pooling kernels alone, at the tutorial CNN's shapes (batch 64, 28x28
MNIST images: conv 1->32 then 32->64 channels, 5x5 and 3x3 filters, SAME, 2x2 max pools):
graphc's reference numpy kernels (im2col + one sgemm, strided scatters), its compiled direct
loops (``backends/conv_cpu`` alone), its compiled kernels as the executor calls them (Winograd,
``backends/winograd_cpu``, where it applies), torch's (``F.conv2d``, ``aten.convolution_backward``,
``F.max_pool2d``) and TensorFlow's raw ops (``Conv2D``, ``Conv2DBackpropInput``,
``Conv2DBackpropFilter``, ``MaxPool``, ``MaxPoolGrad``, eager, one thread), each timed in
CPU milliseconds (median of 5 after 2 warm-up calls), all in one process
(``python -m benchmarks --workload conv-ops``)."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from graphc.backends import conv_cpu, host_compile, winograd_cpu
from graphc.ops import conv as C

BATCH = 64
CONVS = [  # name, input NHWC, filter HWIO
    ("conv1 5x5 1->32", (BATCH, 28, 28, 1), (5, 5, 1, 32)),
    ("conv2 5x5 32->64", (BATCH, 14, 14, 32), (5, 5, 32, 64)),
    ("conv1 3x3 1->32", (BATCH, 28, 28, 1), (3, 3, 1, 32)),
    ("conv2 3x3 32->64", (BATCH, 14, 14, 32), (3, 3, 32, 64)),
]
ONE, WIN = [1, 1, 1, 1], [1, 2, 2, 1]  # TF's NHWC strides and pooling windows
POOLS = [("pool1 2x2", (BATCH, 28, 28, 32)), ("pool2 2x2", (BATCH, 14, 14, 64))]


def _ms(fn, rounds=5):
    fn()
    fn()
    times = []
    for _ in range(rounds):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times) * 1e3


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError:
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised by another workload in this process
        pass
    return tf


def _direct(fn):
    """``fn`` with the Winograd library set aside: conv_cpu's direct loops alone."""

    def run():
        loaded = winograd_cpu._state["fn"]
        winograd_cpu._state["fn"] = None
        try:
            return fn()
        finally:
            winograd_cpu._state["fn"] = loaded

    return run


def _conv_rows(torch, tf, rng):
    s, p = (1, 1), "SAME"
    for name, xs, ws in CONVS:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        g = rng.standard_normal(xs[:3] + (ws[3],)).astype(np.float32)
        row = {
            "forward": {
                "reference": lambda x=x, w=w: C._conv2d(x, w, s, p),
                "compiled": lambda x=x, w=w: conv_cpu.conv2d(x, w, s, p),
            },
            "input grad": {
                "reference": lambda g=g, w=w, xs=xs: C._conv2d_backprop_input(g, w, xs, s, p),
                "compiled": lambda g=g, w=w, xs=xs: conv_cpu.conv2d_backprop_input(g, w, xs, s, p),
            },
            "filter grad": {
                "reference": lambda x=x, g=g, ws=ws: C._conv2d_backprop_filter(x, g, ws, s, p),
                "compiled": lambda x=x, g=g, ws=ws: conv_cpu.conv2d_backprop_filter(x, g, ws, s, p),
            },
        }
        if torch is not None:
            tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            tw = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
            tg = torch.from_numpy(g.transpose(0, 3, 1, 2).copy())
            pad = [ws[0] // 2, ws[1] // 2]

            def back(mask, tx=tx, tw=tw, tg=tg, pad=pad):
                return torch.ops.aten.convolution_backward(
                    tg, tx, tw, None, [1, 1], pad, [1, 1], False, [0, 0], 1, mask
                )

            row["forward"]["torch"] = lambda tx=tx, tw=tw, pad=pad: torch.nn.functional.conv2d(
                tx, tw, padding=pad
            )
            row["input grad"]["torch"] = lambda back=back: back([True, False, False])
            row["filter grad"]["torch"] = lambda back=back: back([False, True, False])
        if tf is not None:
            X, W, G = tf.constant(x), tf.constant(w), tf.constant(g)
            row["forward"]["tf"] = lambda X=X, W=W: tf.raw_ops.Conv2D(
                input=X, filter=W, strides=ONE, padding=p
            ).numpy()
            row["input grad"]["tf"] = lambda W=W, G=G, xs=xs: tf.raw_ops.Conv2DBackpropInput(
                input_sizes=list(xs), filter=W, out_backprop=G, strides=ONE, padding=p
            ).numpy()
            row["filter grad"]["tf"] = lambda X=X, G=G, ws=ws: tf.raw_ops.Conv2DBackpropFilter(
                input=X, filter_sizes=list(ws), out_backprop=G, strides=ONE, padding=p
            ).numpy()
        for what, fns in row.items():
            fns["direct"] = _direct(fns["compiled"])
            yield name, what, fns


def _pool_rows(torch, tf, rng):
    k = s = (2, 2)
    for name, xs in POOLS:
        x = rng.standard_normal(xs).astype(np.float32)
        g = rng.standard_normal((xs[0], xs[1] // 2, xs[2] // 2, xs[3])).astype(np.float32)
        fwd = {
            "reference": lambda x=x: C._max_pool(x, k, s, "SAME"),
            "compiled": lambda x=x: conv_cpu.max_pool(x, k, s, "SAME"),
        }
        grad = {
            "reference": lambda x=x, g=g: C._max_pool_grad(x, g, k, s, "SAME"),
            "compiled": lambda x=x, g=g: conv_cpu.max_pool_grad(x, g, k, s, "SAME"),
        }
        if torch is not None:
            tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            tg = torch.from_numpy(g.transpose(0, 3, 1, 2).copy())
            _, idx = torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
            fwd["torch"] = lambda tx=tx: torch.nn.functional.max_pool2d(tx, 2)
            grad["torch"] = lambda tg=tg, idx=idx, tx=tx: (
                torch.ops.aten.max_pool2d_with_indices_backward(
                    tg, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx
                )
            )
        if tf is not None:
            X, G = tf.constant(x), tf.constant(g)
            Y = tf.raw_ops.MaxPool(input=X, ksize=WIN, strides=WIN, padding="SAME")
            fwd["tf"] = lambda X=X: tf.raw_ops.MaxPool(
                input=X, ksize=WIN, strides=WIN, padding="SAME"
            ).numpy()
            grad["tf"] = lambda X=X, Y=Y, G=G: tf.raw_ops.MaxPoolGrad(
                orig_input=X, orig_output=Y, grad=G, ksize=WIN, strides=WIN, padding="SAME"
            ).numpy()
        yield name, "forward", fwd
        yield name, "gradient", grad


def report():
    conv_cpu.request()
    host_compile.wait()
    if conv_cpu._state["fn"] is None:
        print("  (no compiled kernels: " + str(host_compile.unavailable_reason()) + ")")
    torch, tf = _torch(), _tf()
    rng = np.random.default_rng(0)
    names = ["reference", "direct", "compiled"]
    names += ["torch"] * (torch is not None) + ["tf"] * (tf is not None)
    print(
        "\n== conv-ops: CPU ms per call, batch 64 (graphc reference / direct / compiled, peers) =="
    )
    print(f"  {'shape':<18} {'kernel':<12} " + " ".join(f"{n:>10}" for n in names))
    rows = [*_conv_rows(torch, tf, rng), *_pool_rows(torch, tf, rng)]
    for name, what, fns in rows:
        cells = [f"{_ms(fns[n]):10.2f}" if n in fns else f"{'':>10}" for n in names]
        print(f"  {name:<18} {what:<12} " + " ".join(cells), flush=True)
