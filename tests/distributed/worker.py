"""Scenarios that tests/test_distributed.py launches under ``mpiexec -n N``. Each rank
checks its own results and prints ``OK <rank>``; a failed check raises (and the job ends)."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import graphc as gc
import graphc.distributed as gd
from graphc.backends import nccl

ROWS = 48


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, ROWS)]
    return x, y


def mlp(opt, wrap, seed_offset=0, hidden=8):
    """A small 2-layer classifier; ``wrap`` puts DistributedOptimizer around ``opt``."""
    x = gc.placeholder(gc.float32, (None, 6), name="x")
    y = gc.placeholder(gc.float32, (None, 3), name="y")
    w1 = gc.Variable(gc.random_normal((6, hidden), stddev=0.5, seed=1 + seed_offset), name="w1")
    b1 = gc.Variable(gc.zeros((hidden,)), name="b1")
    w2 = gc.Variable(gc.random_normal((hidden, 3), stddev=0.5, seed=2 + seed_offset), name="w2")
    logits = gc.relu(x @ w1 + b1) @ w2
    loss = gc.reduce_mean(gc.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
    if wrap:  # tiny buckets: several allreduces, one of them holding two gradients
        opt = gd.DistributedOptimizer(opt, fusion_bytes=4 * 6 * hidden + 4 * hidden)
    return x, y, [w1, b1, w2], opt.minimize(loss), loss


def optimizer(name):
    return {
        "sgd": lambda: gc.train.GradientDescentOptimizer(0.5),
        "adam": lambda: gc.train.AdamOptimizer(0.05),
    }[name]()


def train(name, steps, shard, wrap, backend="numpy", seed_offset=0):
    gc.reset_default_graph()
    x, y, ws, step, _ = mlp(optimizer(name), wrap, seed_offset)
    sync = gd.broadcast_global_variables(0) if wrap else gc.no_op()
    X, Y = data()
    with gc.Session(backend=backend) as sess:
        sess.run(gc.global_variables_initializer())
        sess.run(sync)
        batches = gc.data.batches(
            X, Y, batch_size=8, shuffle=True, seed=3, epochs=None, shard=shard
        )
        for _ in range(steps):
            xb, yb = next(batches)
            sess.run(step, {x: xb, y: yb})
        return [sess.get_variable(w) for w in ws]


def equal(name):
    """Each rank trains on its shard (batches of 8); one process on batches of 8 * size."""
    r, n = gd.rank(), gd.size()
    got = train(name, 6, (r, n), wrap=True, seed_offset=r)  # diverged initial weights
    gc.reset_default_graph()
    x, y, ws, step, _ = mlp(optimizer(name), wrap=False)
    X, Y = data()
    with gc.Session() as sess:  # the one-process reference
        sess.run(gc.global_variables_initializer())
        batches = gc.data.batches(
            X, Y, batch_size=8 * n, shuffle=True, seed=3, epochs=None, shard=None
        )
        for _ in range(6):
            xb, yb = next(batches)
            sess.run(step, {x: xb, y: yb})
        want = [sess.get_variable(w) for w in ws]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def unequal():
    """Two ranks with unequal, changing row counts (only rank 0 meets new batch shapes, so
    only it compiles new plans): op="sum" with gradient_scale = its share of the rows is
    the one-process update on all the rows (the README's recipe)."""
    r = gd.rank()
    sizes = [(9, 8), (8, 8), (9, 8), (5, 2)]
    X, Y = data()
    gc.reset_default_graph()
    x, y, ws, _, loss = mlp(optimizer("adam"), wrap=False)
    share = gc.placeholder(gc.float32, (), name="share")
    opt = gd.DistributedOptimizer(optimizer("adam"), op="sum", gradient_scale=share)
    step = opt.minimize(loss)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        at = 0
        for a, b in sizes:  # (rows wrap around the 48 of the data)
            rows = np.arange(at, at + a) if r == 0 else np.arange(at + a, at + a + b)
            rows %= ROWS
            sess.run(step, {x: X[rows], y: Y[rows], share: (a, b)[r] / (a + b)})
            at += a + b
        got = [sess.get_variable(w) for w in ws]
    gc.reset_default_graph()
    x, y, ws, step, _ = mlp(optimizer("adam"), wrap=False)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        at = 0
        for a, b in sizes:
            rows = np.arange(at, at + a + b) % ROWS
            sess.run(step, {x: X[rows], y: Y[rows]})
            at += a + b
        want = [sess.get_variable(w) for w in ws]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def broadcast():
    """Each rank starts from other weights; the broadcast makes them rank 0's."""
    r = gd.rank()
    x, y, ws, step, _ = mlp(optimizer("sgd"), wrap=True, seed_offset=10 * r)
    sync = gd.broadcast_global_variables(0)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        before = sess.get_variable(ws[0]).copy()
        sess.run(sync)
        after = sess.get_variable(ws[0])
    from mpi4py import MPI

    everyone = MPI.COMM_WORLD.allgather((before, after))
    assert all(np.array_equal(a, everyone[0][0]) for _, a in everyone)
    if r:
        assert not np.array_equal(before, after)


def interpreted():
    """optimize=0 (the reference interpreter, no compiled plan): the collectives still
    communicate, and check their signature one by one."""
    r, n = gd.rank(), gd.size()
    x = gc.placeholder(gc.float32, (3,), name="x")
    total = gd.allreduce(x, op="sum", name="total")
    mean, first = gd.allreduce(x * 2.0, x, name="pair"), gd.broadcast(x, root_rank=1)
    with gc.Session(optimize=0) as sess:
        got = sess.run([total, mean[0], mean[1], first], {x: np.full(3, r + 1.0, np.float32)})
    ranks = np.arange(1, n + 1)
    np.testing.assert_allclose(got[0], ranks.sum())
    np.testing.assert_allclose(got[1], 2 * ranks.mean())
    np.testing.assert_allclose(got[2], ranks.mean())
    np.testing.assert_allclose(got[3], 2.0)


def fail():
    """Rank 1 raises before its collective; rank 0 waits in it."""
    x = gc.placeholder(gc.float32, (4,), name="x")
    total = gd.allreduce(x, op="sum")
    with gc.Session() as sess:
        if gd.rank() == 1:
            print("FAILING 1", flush=True)
            raise RuntimeError("rank 1 fails on purpose")
        sess.run(total, {x: np.ones(4, np.float32)})
        time.sleep(30)  # never reached: the job ends first


def mismatch():
    """Rank 1's model has another hidden size: the signature check names the difference."""
    _, _, _, step, _ = mlp(optimizer("sgd"), wrap=True, hidden=8 + gd.rank())
    X, Y = data()
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        try:
            sess.run(step, {"x:0": X[:4], "y:0": Y[:4]})
        except gd.CollectiveMismatchError as e:
            print(f"MISMATCH {gd.rank()}: {e}", flush=True)
            return
    raise AssertionError("no mismatch error")


def mismatch_uncaught(err_dir):
    """As ``mismatch``, the error left to end the job; each rank's stderr (its traceback) goes
    to ``err_dir/rank<r>.txt``: mpiexec interleaves the ranks' output, even within a line."""
    log = open(os.path.join(err_dir, f"rank{gd.rank()}.txt"), "w")  # noqa: SIM115 - kept open
    os.dup2(log.fileno(), sys.stderr.fileno())
    _, _, _, step, _ = mlp(optimizer("sgd"), wrap=True, hidden=8 + gd.rank())
    X, Y = data()
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        sess.run(step, {"x:0": X[:4], "y:0": Y[:4]})


def timeout():
    """Rank 1 is late; rank 0's collective gives up after the timeout."""
    gd.set_timeout(0.5)
    x = gc.placeholder(gc.float32, (4,), name="x")
    total = gd.allreduce(x, op="sum", name="late_sum")
    with gc.Session() as sess:
        if gd.rank() == 1:
            time.sleep(2)
            return
        try:
            sess.run(total, {x: np.ones(4, np.float32)})
        except gd.CollectiveTimeoutError as e:
            print(f"TIMEOUT {gd.rank()}: {e}", flush=True)
            sys.stdout.flush()
            return
    raise AssertionError("no timeout")


def device_standin():
    """Session(backend="cupy") with numpy standing in for cupy and a host communicator
    standing in for NCCL: the collectives run as the device kernels, never the host ones."""
    from graphc.backends import cuda_host
    from graphc.backends import cupy_backend as cb

    calls = []

    class HostComm:  # NCCL's two calls, on "device" (here numpy) buffers
        def __init__(self, xp):
            from mpi4py import MPI

            self.comm, self.MPI = MPI.COMM_WORLD, MPI

        def allreduce(self, buf):
            calls.append("allreduce")
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

        def bcast(self, buf, root):
            calls.append("bcast")
            self.comm.Bcast(buf, root=root)

    nccl.DEVICE_COMMUNICATOR = HostComm
    cb.make_cupy_executable = lambda plan, **o: cb.CupyExecutable(
        plan, xp=np, compile_kernels=cuda_host.host_module, block=32, max_grid=4, **o
    )

    def host_kernel(*a, **k):
        raise AssertionError("a collective ran its host kernel on the cupy backend")

    numpy_kernels = gd.ALLREDUCE.numpy, gd.BROADCAST.numpy
    gd.ALLREDUCE.numpy = gd.BROADCAST.numpy = host_kernel
    got = train("sgd", 3, (gd.rank(), gd.size()), wrap=True, backend="cupy", seed_offset=gd.rank())
    gd.ALLREDUCE.numpy, gd.BROADCAST.numpy = numpy_kernels
    want = train("sgd", 3, (gd.rank(), gd.size()), wrap=True, seed_offset=gd.rank())
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert "bcast" in calls and calls.count("allreduce") >= 3, calls


def device():
    """The real thing (pytest -m gpu, one GPU per rank): NCCL against MPI."""
    got = train("adam", 4, (gd.rank(), gd.size()), wrap=True, backend="cupy")
    want = train("adam", 4, (gd.rank(), gd.size()), wrap=True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":
    gd.init()
    scenario, *args = sys.argv[1:]
    globals()[scenario](*args)
    print(f"OK {gd.rank()}", flush=True)
