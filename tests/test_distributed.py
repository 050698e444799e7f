"""graphc.distributed: the collectives as ops, DistributedOptimizer, sharding, the signature
check and ``graphc run --np``. One-process behaviour is checked here in-process; the
scenarios of ``tests/distributed/worker.py`` run under ``mpiexec -n 2`` (and ``-n 3``, an
uneven ring) as subprocesses with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import graphc as gc
import graphc.distributed as gd
from graphc import cli
from graphc.backends import cuda_host, nccl
from graphc.backends import cupy_backend as cb

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "distributed", "worker.py")
ROOT = os.path.dirname(HERE)
MPIEXEC = gd.find_mpiexec()
mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec: pip install 'graphc[mpi]'")


def launch(n, *args, python_args=("-m", "mpi4py"), timeout=90):
    """``mpiexec -n n python -m mpi4py worker.py args``: (exit status, output, seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    start = time.monotonic()
    p = subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable, *python_args, WORKER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    return p.returncode, p.stdout + p.stderr, time.monotonic() - start


def ranks_ok(out, n):
    return all(f"OK {r}" in out for r in range(n))


# --- one process: everything works and adds nothing -------------------------------------------


def test_one_process_world():
    assert (gd.rank(), gd.size(), gd.local_rank()) == (0, 1, 0)


def test_collectives_pass_through_on_one_process():
    x = gc.placeholder(gc.float32, (2, 3), name="x")
    a, b = gd.allreduce(x, x * 2.0, op="sum")
    c = gd.broadcast(x, root_rank=0)
    v = np.arange(6, dtype=np.float32).reshape(2, 3)
    for level in (0, 2):
        with gc.Session(optimize=level) as sess:
            got = sess.run([a, b, c, gd.allreduce(x)], {x: v})
        np.testing.assert_array_equal(got[0], v)
        np.testing.assert_array_equal(got[1], 2 * v)
        np.testing.assert_array_equal(got[2], v)
        np.testing.assert_array_equal(got[3], v)


def test_collectives_are_registry_ops_and_their_gradient_is_an_allreduce():
    from graphc.ops.registry import REGISTRY

    assert REGISTRY["allreduce"] is gd.ALLREDUCE and REGISTRY["broadcast"] is gd.BROADCAST
    x = gc.placeholder(gc.float32, (3,), name="x")
    y = gd.allreduce(x, op="sum")
    assert y.op.type == "allreduce" and y.shape == (3,) and y.dtype is gc.float32
    (g,) = gc.gradients(gc.reduce_sum(y * y), [x])
    types = [op.type for op in gc.get_default_graph().get_operations()]
    assert types.count("allreduce") == 2
    grad_op = next(
        op
        for op in gc.get_default_graph().get_operations()
        if op.type == "allreduce" and op is not y.op
    )
    assert grad_op.attrs["reduce"] == "sum"
    with gc.Session() as sess:
        np.testing.assert_allclose(sess.run(g, {x: [1, 2, 3]}), [2, 4, 6])


def test_collective_rules():
    x = gc.placeholder(gc.int32, (3,), name="i")
    with pytest.raises(gc.DTypeError, match="average"):
        gd.allreduce(x)
    with pytest.raises(gc.DTypeError, match="share a dtype"):
        gd.allreduce(gc.placeholder(gc.float32, (2,)), gc.placeholder(gc.float64, (2,)))
    with pytest.raises(gc.GraphcError, match="'average' or 'sum'"):
        gd.allreduce(x, op="max")
    with pytest.raises(gc.GraphcError, match="root_rank 3"):
        gd.broadcast(x, root_rank=3)
    assert gd.allreduce(x, op="sum").dtype is gc.int32


def test_distributed_optimizer_adds_nothing_on_one_process():
    def run(wrap):
        gc.reset_default_graph()
        x = gc.placeholder(gc.float32, (None, 3), name="x")
        w = gc.Variable(np.ones((3, 1), np.float32), name="w")
        loss = gc.reduce_mean(gc.square(x @ w - 1.0))
        opt = gc.train.AdamOptimizer(0.1)
        opt = gd.DistributedOptimizer(opt) if wrap else opt
        step = opt.minimize(loss)
        assert gd.broadcast_global_variables(0).type == "no_op"
        types = [op.type for op in gc.get_default_graph().get_operations()]
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            for _ in range(3):
                sess.run(step, {x: np.arange(6, dtype=np.float32).reshape(2, 3)})
            return types, sess.get_variable(w), opt

    plain, w_plain, _ = run(False)
    wrapped, w_wrapped, opt = run(True)
    assert "allreduce" not in wrapped and plain == wrapped
    np.testing.assert_array_equal(w_plain, w_wrapped)
    assert opt.get_slot_names() == ["", "_1"] and opt.get_name() == "Adam"


def test_buckets_respect_fusion_bytes_and_dtypes():
    a = gc.placeholder(gc.float32, (10,))  # 40 bytes
    b = gc.placeholder(gc.float32, (5,))  # 20
    c = gc.placeholder(gc.float64, (2,))  # 16
    d = gc.placeholder(gc.float32, (20,))  # 80: more than fits, a bucket of its own
    e = gc.placeholder(gc.float32, (None,))  # unknown size: its own
    got = gd.buckets([a, b, c, d, e], fusion_bytes=64)
    assert got == [[a, b], [c], [d], [e]]
    assert gd.buckets([a, b, d], fusion_bytes=64 << 20) == [[a, b, d]]


def test_batches_shard_equal_parts_that_make_the_global_batches():
    x = np.arange(23)
    for size in (2, 3):
        shards = [
            list(gc.data.batches(x, batch_size=4, shuffle=True, seed=5, shard=(r, size)))
            for r in range(size)
        ]
        assert len({sum(map(len, s)) for s in shards}) == 1  # equal shards
        seen = np.concatenate([np.concatenate(s) for s in shards])
        assert len(seen) == 23 - 23 % size and len(set(seen.tolist())) == len(seen)
        globl = list(gc.data.batches(x, batch_size=4 * size, shuffle=True, seed=5))
        for k in range(len(shards[0])):  # local batch k of all ranks = global batch k
            local = np.concatenate([s[k] for s in shards])
            assert set(local.tolist()) <= set(globl[k].tolist())
    with pytest.raises(gc.GraphcError, match="rank, size"):
        gc.data.batches(x, batch_size=2, shard=(2, 2))


def test_mismatch_message_names_the_first_difference():
    with pytest.raises(gd.CollectiveMismatchError, match=r"#2 is b on rank 0 but c on rank 1"):
        gd._raise_on_difference([["a", "b"], ["a", "c"]])
    with pytest.raises(gd.CollectiveMismatchError, match=r"#2 is missing on rank 0 but b"):
        gd._raise_on_difference([["a"], ["a", "b"]])
    gd._raise_on_difference([["a"], ["a"]])


def test_plan_collectives_record_in_run_order():
    x = gc.placeholder(gc.float32, (4,), name="x")
    a = gd.allreduce(x, op="sum", name="first")
    b = gd.broadcast(a * 2.0, root_rank=0, name="second")
    plan = gc.compile([b])
    steps = [s for s in plan.steps if s.op in (gd.ALLREDUCE, gd.BROADCAST)]
    assert [s.op for s in steps] == [gd.ALLREDUCE, gd.BROADCAST]
    record = steps[0].attrs["plan"]
    assert steps[1].attrs["plan"] is record
    assert record.signature == [
        "allreduce(sum) 'first' [float32[4]]",
        "broadcast(root=0) 'second' [float32[4]]",
    ]


def test_saver_writes_on_rank_0_only(tmp_path, monkeypatch):
    v = gc.Variable(np.ones(2, np.float32), name="v")
    saver = gc.train.Saver()
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        monkeypatch.setattr(gd._world, "rank", 1)
        path = saver.save(sess, str(tmp_path / "ck"))
        assert path == str(tmp_path / "ck") and not os.path.exists(path)
        saver.save(sess, str(tmp_path / "all"), all_ranks=True)
        assert os.path.exists(tmp_path / "all")
        monkeypatch.setattr(gd._world, "rank", 0)
        assert os.path.exists(saver.save(sess, str(tmp_path / "ck")))
    assert v is not None


def test_cupy_backend_runs_the_device_kernel_not_the_host_one(monkeypatch):
    """The collectives' device lowering runs on the device buffers (numpy stands in)."""
    called = []
    real = cb.LOWERINGS[gd.ALLREDUCE]

    def device(xp, *args, **attrs):
        called.append(xp)
        return real(xp, *args, **attrs)

    monkeypatch.setitem(cb.LOWERINGS, gd.ALLREDUCE, device)
    x = gc.placeholder(gc.float32, (4,), name="x")
    y = gd.allreduce(x)
    plan = gc.compile([y])
    exe = cb.CupyExecutable(plan, xp=np)
    assert not exe._host_steps
    (got,) = exe.call(_ctx(), np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(got, np.arange(4))
    assert called == [np]


def _ctx():
    from graphc.backends.reference import RunContext

    return RunContext({}, {})


# --- under mpiexec ----------------------------------------------------------------------------


@mpi
@pytest.mark.parametrize("n,opt", [(2, "sgd"), (2, "adam"), (3, "sgd")])
def test_equal_to_one_process(n, opt):
    rc, out, _ = launch(n, "equal", opt)
    assert rc == 0 and ranks_ok(out, n), out


@mpi
def test_unequal_shards_weighted_sum_equals_one_process():
    rc, out, _ = launch(2, "unequal")
    assert rc == 0 and ranks_ok(out, 2), out


@mpi
def test_collectives_in_the_reference_interpreter():
    rc, out, _ = launch(3, "interpreted")
    assert rc == 0 and ranks_ok(out, 3), out


@mpi
def test_broadcast_fixes_diverged_initial_weights():
    rc, out, _ = launch(3, "broadcast")
    assert rc == 0 and ranks_ok(out, 3), out


@mpi
@pytest.mark.parametrize("python_args", [("-m", "mpi4py"), ()], ids=["mpi4py", "plain"])
def test_a_failing_rank_ends_the_job(python_args):
    rc, out, secs = launch(2, "fail", python_args=python_args)
    # (the abort may cut the traceback's forwarding short: the marker is printed before)
    assert rc != 0 and "FAILING 1" in out and "OK 0" not in out, out
    assert secs < 20, f"the job took {secs:.1f} s to end"  # rank 0 would sleep 30 s


@mpi
def test_mismatched_graphs_are_an_error_on_every_rank(tmp_path):
    rc, out, _ = launch(2, "mismatch")
    assert rc == 0 and ranks_ok(out, 2), out
    for r in (0, 1):
        assert f"MISMATCH {r}" in out
    assert "float32[6, 8], float32[8]] on rank 0 but" in out and "float32[6, 9]" in out
    rc, out, _ = launch(2, "mismatch_uncaught", str(tmp_path))
    assert rc != 0, out
    for r in (0, 1):  # each rank's own traceback (the job's output interleaves them)
        err = (tmp_path / f"rank{r}.txt").read_text()
        assert err.count("CollectiveMismatchError:") == 1, err


@mpi
def test_collective_timeout():
    rc, out, _ = launch(2, "timeout")
    assert rc == 0 and ranks_ok(out, 2), out
    assert "TIMEOUT 0" in out and "waited more than 0.5 s" in out and "worker.py" in out


@mpi
@pytest.mark.skipif(cuda_host.host_compiler() is None, reason="the host harness needs g++")
def test_cupy_backend_orchestration_with_numpy_standing_in():
    rc, out, _ = launch(2, "device_standin")
    assert rc == 0 and ranks_ok(out, 2), out


@mpi
def test_cli_np_2_equals_one_process(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(17, 1)).astype(np.float32)  # 17 rows: shards of 9 and 8
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (3 * x + 1).astype(np.float32))
    model = os.path.join(ROOT, "examples", "linear_regression.g")
    common = [
        model,
        "--feed",
        f"x={tmp_path / 'x.npy'}",
        "--feed",
        f"y={tmp_path / 'y.npy'}",
        "--train",
        "50",
        "--fetch",
        "w,b",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")

    def run(*extra):
        p = subprocess.run(
            [sys.executable, "-m", "graphc", "run", *common, *extra],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
            cwd=tmp_path,
        )
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    run("-o", "one.npz")
    two = run("--np", "2", "-o", "two.npz", "--save", "ck")
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for k in ("w", "b"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert two.count("w = ") == 1  # printed by rank 0 only
    assert os.path.exists(tmp_path / "ck")


def test_cli_np_takes_a_positive_count(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "model.g", "--np", "0"])
    assert e.value.code == 2


@pytest.mark.gpu
@mpi
@pytest.mark.skipif(
    cb.gpu_unavailable_reason() is not None, reason=f"{cb.gpu_unavailable_reason()}"
)
def test_nccl_on_devices():
    """Two ranks, one GPU each: NCCL on the device against MPI on the host."""
    import cupy

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("NCCL between ranks needs one GPU per rank (2)")
    rc, out, _ = launch(2, "device")
    assert rc == 0 and ranks_ok(out, 2), out


@pytest.mark.gpu
@pytest.mark.skipif(
    cb.gpu_unavailable_reason() is not None, reason=f"{cb.gpu_unavailable_reason()}"
)
def test_nccl_communicator_on_one_device():
    """The NCCL calls themselves (unique id, communicator, allReduce, bcast) on one GPU."""
    import cupy

    comm = nccl.NcclCommunicator(cupy)
    buf = cupy.arange(5, dtype=cupy.float32)
    comm.allreduce(buf)
    comm.bcast(buf, 0)
    cupy.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(buf), np.arange(5))


def test_memory_plan_lays_a_bucket_out_back_to_back():
    """A bucket's gradients share one span of the arena: no pack or unpack copy."""
    from graphc.passes.memory import ALIGN

    x = gc.placeholder(gc.float32, (4, 3), name="x")
    a, b, c = x * 2.0, gc.reduce_sum(x, axis=0), gc.exp(x)
    ra, rb, rc = gd.allreduce(a, b, c, name="bucket")
    d = x - 1.0
    kept = gd.allreduce(d, x * 3.0, name="kept")  # d is fetched too: no span
    plan = gc.compile([ra, rb, rc, kept[0], d])
    first, second = [s for s in plan.steps if s.op is gd.ALLREDUCE]
    assert first.attrs.get("contiguous") is True and "contiguous" not in second.attrs
    slots = [plan.slots[k] for k in first.inputs]
    offsets = [s.offset for s in slots]
    assert all(
        o2 - o1 == -(-s.nbytes // ALIGN) * ALIGN for o1, o2, s in zip(offsets, offsets[1:], slots)
    )


def test_span_is_one_view_over_back_to_back_arrays():
    arena = np.zeros(1024, np.uint8)
    a = arena[0:48].view(np.float32).reshape(4, 3)
    b = arena[64:76].view(np.float32)
    span = gd._span(np, [a, b])
    assert span.shape == (19,)
    span[:] = 7
    assert (a == 7).all() and (b == 7).all()
    assert gd._span(np, [b, a]) is None  # not in order: packed instead
