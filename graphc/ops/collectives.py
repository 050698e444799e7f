"""The collectives as ops of the registry: ``ALLREDUCE`` and ``BROADCAST`` (shape and dtype
rules, numpy kernels that call MPI through mpi4py, gradients: an allreduce's gradient is an
allreduce), the process's place in the job (``init``, ``rank``, ``size``…), and the
signature check that makes ranks whose graphs disagree fail instead of hang. The user's API
(``DistributedOptimizer``, ``broadcast_global_variables``, launching) is
``graphc.distributed``; the NCCL device kernels are the cupy backend's
(``backends/nccl.py``)."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from .. import dtypes as D
from ..errors import GraphcError, user_location
from ..shapes import ARENA_ALIGN
from .registry import OpDef, register
from .sources import convert

# Environment variables an MPI launcher sets (MPICH/Hydra, Open MPI, PMIx, Slurm's PMI).
_LAUNCHER_ENV = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALRANKID")


class DistributedError(GraphcError):
    """A collective that cannot complete: MPI missing, ranks that disagree, a timeout."""


class CollectiveMismatchError(DistributedError):
    """The ranks' plans run different collectives (raised on every rank)."""

    every_rank = True


class CollectiveTimeoutError(DistributedError):
    """A collective waited longer than ``set_timeout`` allows."""


class _World:
    comm = None  # mpi4py's COMM_WORLD, or None on one process without a launcher
    MPI = None
    rank = 0
    size = 1
    local_rank = 0
    initialized = False
    timeout: float | None = None
    nccl = None  # the NCCL communicator (made on the first device collective)


_world = _World()


def _launched() -> bool:
    return any(k in os.environ for k in _LAUNCHER_ENV) or "mpi4py.MPI" in sys.modules


def init(timeout=None):
    """Join the job: MPI when an MPI launcher started this process (or mpi4py is already
    loaded), else a one-process world. Idempotent. ``timeout``: seconds a collective may
    wait before raising ``CollectiveTimeoutError`` (default: ``GRAPHC_COLLECTIVE_TIMEOUT``,
    else no limit). Under MPI with several ranks, an uncaught exception on any rank aborts
    the whole job (as ``python -m mpi4py`` does), and each rank uses GPU ``local_rank``."""
    if timeout is not None:
        set_timeout(timeout)
    elif _world.timeout is None and os.environ.get("GRAPHC_COLLECTIVE_TIMEOUT"):
        set_timeout(float(os.environ["GRAPHC_COLLECTIVE_TIMEOUT"]))
    if _world.initialized:
        return
    _world.initialized = True
    if not _launched():
        return
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(
            "this process was started by an MPI launcher but mpi4py is not "
            "installed: pip install 'graphc-compiler[mpi]'"
        ) from None
    comm = MPI.COMM_WORLD
    _world.MPI, _world.comm = MPI, comm
    _world.rank, _world.size = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    _world.local_rank = node.Get_rank()
    node.Free()
    if _world.size > 1:
        _install_abort_hook()
        _select_gpu()


def _select_gpu():
    """One GPU per local rank, chosen before any device memory is allocated."""
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver or no device: the CPU path needs none
        return
    if count:
        cupy.cuda.Device(_world.local_rank % count).use()


def _install_abort_hook():
    """An uncaught exception on one rank ends every rank: the others would otherwise wait in
    their next collective forever. An error raised on every rank at once (a signature
    mismatch) waits a moment first, so that every rank's message is printed."""
    previous = sys.excepthook

    def hook(kind, exc, tb):
        previous(kind, exc, tb)
        sys.stderr.flush()
        sys.stdout.flush()
        if getattr(exc, "every_rank", False):
            time.sleep(0.5)
        _world.comm.Abort(1)

    sys.excepthook = hook


def is_initialized() -> bool:
    return _world.initialized


def rank() -> int:
    """This process's rank in the job (0 on one process)."""
    init()
    return _world.rank


def size() -> int:
    """The number of ranks (1 without a launcher)."""
    init()
    return _world.size


def local_rank() -> int:
    """This process's rank among the ranks on its machine (its GPU)."""
    init()
    return _world.local_rank


def set_timeout(seconds):
    """Collectives wait at most ``seconds`` (None: no limit), then raise
    ``CollectiveTimeoutError`` naming the collective."""
    if seconds is not None and not seconds > 0:
        raise GraphcError(f"set_timeout: seconds must be positive or None, got {seconds!r}")
    _world.timeout = None if seconds is None else float(seconds)


def _active() -> bool:
    """Whether collectives communicate (a graph may run before anyone called ``init``)."""
    if not _world.initialized:
        init()
    return _world.comm is not None and _world.size > 1


# --- waiting with a timeout -------------------------------------------------------------------


def _wait(request, what, where=None):
    """Complete a non-blocking MPI request, or raise after the timeout."""
    if _world.timeout is None:
        request.Wait()
        return
    deadline = time.monotonic() + _world.timeout
    pause = 0.0
    while not request.Test():
        if time.monotonic() > deadline:
            raise CollectiveTimeoutError(
                f"rank {_world.rank}: {what} waited more than {_world.timeout:g} s for the other "
                "ranks (one may have failed, or be running another program)",
                where,
            )
        time.sleep(pause)
        pause = min(1e-3, pause + 1e-5)


def _allreduce_in_place(buf, what, where=None):
    MPI = _world.MPI
    if _world.timeout is None:
        _world.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    else:
        _wait(_world.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM), what, where)


def _bcast_in_place(buf, root, what, where=None):
    if _world.timeout is None:
        _world.comm.Bcast(buf, root=root)
    else:
        _wait(_world.comm.Ibcast(buf, root=root), what, where)


def _allgather_bytes(data: bytes, what, where=None) -> list:
    """Every rank's ``data`` (JSON text here: nothing received is unpickled)."""
    comm = _world.comm
    n = np.array([len(data)], np.int64)
    counts = np.empty(_world.size, np.int64)
    if _world.timeout:
        _wait(comm.Iallgather(n, counts), what, where)
    else:
        comm.Allgather(n, counts)
    recv = np.empty(int(counts.sum()), np.uint8)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    send = np.frombuffer(data, np.uint8)
    if _world.timeout:
        _wait(comm.Iallgatherv(send, [recv, (counts, displs)]), what, where)
    else:
        comm.Allgatherv(send, [recv, (counts, displs)])
    return [recv[d : d + c].tobytes() for d, c in zip(displs.tolist(), counts.tolist())]


# --- the signature check ----------------------------------------------------------------------


def describe_collective(op, node_name, attrs, avals) -> str:
    """One line of a plan's collective signature: op, its mode, name, dtypes and shapes."""
    mode = attrs.get("reduce") if op is ALLREDUCE else f"root={attrs.get('root_rank')}"
    values = ", ".join(f"{d}{list(s) if s is not None else '[?]'}" for d, s in avals)
    return f"{op.name}({mode}) '{node_name}' [{values}]"


_checked_signatures: set = set()


class PlanCollectives:
    """What one compiled plan's collectives share: their signature, in run order (compared
    across ranks before the first one runs), and the bucket buffers they reduce in."""

    def __init__(self, signature, locations=()):
        self.signature = list(signature)
        self.locations = list(locations)
        self.checked = False
        self.buffers: dict = {}

    def check(self):
        """Compare this signature across ranks, once per distinct signature: plans compiled
        for other feed shapes (a last, shorter batch on one rank only) usually share their
        collectives' signature, and must not start an exchange the other ranks skip."""
        key = tuple(self.signature)
        if self.checked or _world.size == 1 or key in _checked_signatures:
            self.checked = True
            return
        mine = json.dumps(self.signature).encode()
        where = next((loc for loc in self.locations if loc is not None), None)
        theirs = [
            json.loads(b)
            for b in _allgather_bytes(
                mine, f"the signature check before {self.signature[0]}", where
            )
        ]
        self.checked = True
        _raise_on_difference(theirs, self.locations)
        _checked_signatures.add(key)

    def buffer(self, key, xp, n, dtype):
        buf = self.buffers.get(key)
        if buf is None or buf.size != n or buf.dtype != dtype:
            buf = self.buffers[key] = xp.empty(n, dtype)
        return buf


def _raise_on_difference(signatures, locations=()):
    """A CollectiveMismatchError naming the first collective where ranks differ."""
    ref = signatures[0]
    for r, sig in enumerate(signatures[1:], 1):
        for i in range(max(len(ref), len(sig))):
            a = ref[i] if i < len(ref) else None
            b = sig[i] if i < len(sig) else None
            if a == b:
                continue
            me = signatures[_world.rank]
            loc = locations[i] if i < len(locations) and i < len(me) else None
            raise CollectiveMismatchError(
                f"the ranks' graphs run different collectives: collective #{i + 1} is "
                f"{a or 'missing'} on rank 0 but {b or 'missing'} on rank {r} (rank 0 runs "
                f"{len(ref)} collectives, rank {r} runs {len(sig)}); every rank must build the "
                "same collectives in the same order with the same shapes and dtypes",
                loc,
            )


_checked_nodes: set = set()


def _check_alone(node, arrays, op):
    """Without the compiler's pass (the reference executor, optimize=0): check each
    collective on its own, the first time it runs."""
    if id(node) in _checked_nodes:
        return
    avals = [(D.as_dtype(a.dtype), a.shape) for a in arrays]
    sig = [describe_collective(op, node.name, node.attrs, avals)]
    theirs = [
        json.loads(b)
        for b in _allgather_bytes(
            json.dumps(sig).encode(), f"the signature check of '{node.name}'", node.location
        )
    ]
    _checked_nodes.add(id(node))
    _raise_on_difference(theirs, [node.location])


# --- the ops ----------------------------------------------------------------------------------


def _same_avals(inputs, attrs):
    if not inputs:
        raise ValueError("a collective needs at least one tensor")
    dtypes = {t.dtype for t in inputs}
    if len(dtypes) > 1:
        raise TypeError(
            f"the tensors of one collective must share a dtype, got {sorted(map(str, dtypes))}"
        )
    if attrs.get("reduce", "sum") == "average" and not inputs[0].dtype.is_floating:
        raise TypeError(f"allreduce(op='average') needs floating tensors, got {inputs[0].dtype}")
    return [(t.dtype, t.shape) for t in inputs]


def _wire_dtype(dtype):
    """The dtype MPI reduces in: its own for the standard ones; float16/bfloat16 go through
    float32 (MPI has no half-precision sum)."""
    return np.dtype(np.float32) if dtype.itemsize == 2 and dtype.kind == "f" else dtype


def _pack(plan, node, xp, arrays, dtype):
    n = sum(int(a.size) for a in arrays)
    buf = plan.buffer(node, xp, n, dtype) if plan is not None else xp.empty(n, dtype)
    at = 0
    for a in arrays:  # the one copy: each tensor into its place in the bucket
        buf[at : at + a.size] = a.reshape(-1)
        at += a.size
    return buf


def _unpack(buf, arrays, dtype):
    """Views of the bucket shaped like ``arrays`` (no copy when the dtype is the wire's)."""
    out, at = [], 0
    for a in arrays:
        v = buf[at : at + a.size].reshape(a.shape)
        out.append(v if v.dtype == dtype else v.astype(dtype))
        at += a.size
    return tuple(out)


def _address(a):
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data.ptr


def _span(xp, arrays):
    """One flat view over ``arrays`` when the memory plan laid them out back to back in the
    arena (each padded to its alignment), else None. The padding between them is reduced
    too: it belongs to no other value while the bucket lives."""
    first, last = arrays[0], arrays[-1]
    dtype = np.dtype(first.dtype)
    at = _address(first)
    for a in arrays:
        if not a.flags.c_contiguous or np.dtype(a.dtype) != dtype or _address(a) != at:
            return None
        at += -(-max(a.nbytes, 1) // ARENA_ALIGN) * ARENA_ALIGN
    n = (_address(last) + last.nbytes - _address(first)) // dtype.itemsize
    if isinstance(first, np.ndarray):
        return np.lib.stride_tricks.as_strided(first.reshape(-1), (n,), (dtype.itemsize,))
    return xp.ndarray((n,), dtype, memptr=first.data)


def _bucket(plan, node, xp, arrays, dtype, contiguous):
    """(the buffer to reduce in place, whether it is the arrays' own span)."""
    if contiguous and _wire_dtype(dtype) == dtype:
        span = _span(xp, arrays)
        if span is not None:
            return span, True
    return _pack(plan, node, xp, arrays, _wire_dtype(dtype)), False


def _checked_arrays(node, arrays, plan, op):
    """A host kernel's inputs as numpy arrays, once the collective is known to match the
    other ranks': by the compiler's check (``plan``) or, without it, on its own."""
    arrays = [np.asarray(a) for a in arrays]
    if plan is not None:
        plan.check()
    else:
        _check_alone(node, arrays, op)
    return arrays


def _allreduce_kernel(ctx, node, *arrays, reduce="average", plan=None, contiguous=False):
    """MPI: the tensors reduced once, in place, as one bucket: their own span of the arena
    when the memory plan laid them out back to back (``contiguous``), else a buffer they
    are packed into (one copy; the results are views of it)."""
    if not _active():
        return tuple(arrays)
    arrays = _checked_arrays(node, arrays, plan, ALLREDUCE)
    dtype = arrays[0].dtype
    buf, own = _bucket(plan, node, np, arrays, dtype, contiguous)
    _allreduce_in_place(buf, f"allreduce '{node.name}'", node.location)
    if reduce == "average":
        np.true_divide(buf, _world.size, out=buf)
    return tuple(arrays) if own else _unpack(buf, arrays, dtype)


def _broadcast_kernel(ctx, node, *arrays, root_rank=0, plan=None):
    if not _active():
        return tuple(arrays)
    arrays = _checked_arrays(node, arrays, plan, BROADCAST)
    dtype = arrays[0].dtype
    buf = _pack(plan, node, np, arrays, dtype)
    _bcast_in_place(buf, root_rank, f"broadcast '{node.name}'", node.location)
    return _unpack(buf, arrays, dtype)


def _allreduce_grad(op, *dys):
    return (
        list(allreduce(*dys, op=op.attrs["reduce"], name=f"{op.name}_grad"))
        if len(dys) > 1
        else [allreduce(dys[0], op=op.attrs["reduce"], name=f"{op.name}_grad")]
    )


def _broadcast_grad(op, *dys):
    """Every rank's output is the root's input: the root's input gets the sum of the
    gradients, the others' inputs none (zero)."""
    summed = allreduce(*dys, op="sum", name=f"{op.name}_grad")
    summed = list(summed) if len(dys) > 1 else [summed]
    keep = 1.0 if rank() == op.attrs["root_rank"] else 0.0
    return [g * keep for g in summed]


def _one_process_reference(arrays, attrs):
    """The registry tests' reference: on one process a collective returns its inputs."""
    return [np.array(a) for a in arrays]


def _allreduce_samples(rng):
    return [
        (
            [
                rng.standard_normal((2, 3)).astype(np.float32),
                rng.standard_normal(4).astype(np.float32),
            ],
            {"reduce": "average"},
        ),
        ([rng.integers(-5, 5, (3,))], {"reduce": "sum"}),
    ]


def _broadcast_samples(rng):
    return [([rng.standard_normal((2, 3)), rng.standard_normal(5)], {"root_rank": 0})]


ALLREDUCE = register(
    OpDef(
        "allreduce",
        _same_avals,
        numpy=_allreduce_kernel,
        grad=_allreduce_grad,
        stateful=True,
        samples=_allreduce_samples,
        extra={"collective": True, "reference": _one_process_reference},
        doc="Each tensor summed (or averaged) over the ranks; several tensors are one bucket, "
        "reduced in one call.",
    )
)

BROADCAST = register(
    OpDef(
        "broadcast",
        _same_avals,
        numpy=_broadcast_kernel,
        grad=_broadcast_grad,
        stateful=True,
        samples=_broadcast_samples,
        extra={"collective": True, "reference": _one_process_reference},
        doc="Each tensor as rank root_rank holds it.",
    )
)


def allreduce(*tensors, op="average", name=None):
    """The sum (``op="sum"``) or mean (``"average"``) of each tensor over the ranks. Several
    tensors of one dtype are reduced together in one call (a bucket) and come back as a
    tuple; one tensor comes back as a tensor. Its gradient is an allreduce of the same op."""
    if op not in ("average", "sum"):
        raise GraphcError(f"allreduce: op must be 'average' or 'sum', not {op!r}", user_location())
    ts = [convert(t) for t in tensors]
    node = ALLREDUCE.build(ts, {"reduce": op}, name=name or "allreduce")
    return node.outputs[0] if len(ts) == 1 else tuple(node.outputs)


def broadcast(*tensors, root_rank=0, name=None):
    """Each tensor as rank ``root_rank`` has it (one call for several tensors)."""
    init()
    if not isinstance(root_rank, int) or not 0 <= root_rank < max(_world.size, 1):
        raise GraphcError(
            f"broadcast: root_rank {root_rank!r} is not a rank of this {_world.size}-rank job",
            user_location(),
        )
    ts = [convert(t) for t in tensors]
    node = BROADCAST.build(ts, {"root_rank": root_rank}, name=name or "broadcast")
    return node.outputs[0] if len(ts) == 1 else tuple(node.outputs)
