"""``graphc.distributed``: data-parallel training on MPI (mpi4py) and NCCL (cupy).

Every process (a *rank*) runs the same script on its own part of the data; gradients are
averaged between ``compute_gradients`` and ``apply_gradients`` so all ranks apply the same
update and their weights stay equal::

    import graphc as gc
    import graphc.distributed as gd

    gd.init()
    opt = gd.DistributedOptimizer(gc.train.AdamOptimizer(1e-3))
    train = opt.minimize(loss)
    sync = gd.broadcast_global_variables(0)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        sess.run(sync)                       # every rank starts from rank 0's weights
        for xb, yb in gc.data.batches(X, Y, batch_size=32, shard=(gd.rank(), gd.size())):
            sess.run(train, {x: xb, y: yb})

launched with ``mpiexec -n 4 python -m mpi4py train.py`` (``-m mpi4py`` aborts the whole job
when one rank raises). Without a launcher the same script runs as one process: ``size()`` is
1, ``DistributedOptimizer`` adds nothing and the collectives pass their input through.

The collectives are ops of the registry (``ALLREDUCE``, ``BROADCAST``): shape and dtype
rules, a numpy kernel that calls MPI, a device kernel (in the cupy backend's
``DEVICE_LOWERINGS``) that calls NCCL on the session's stream, and gradients (an
allreduce's gradient is an allreduce). The memory phase gives each compiled plan one
``PlanCollectives`` record (its collectives' signature, checked across ranks on the first
run, and the bucket buffers) and lays each bucket's inputs out back to back.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from . import dtypes as D
from .backends import cupy_backend as _cupy_backend
from .errors import DTypeError, GraphcError, user_location
from .ops.registry import OpDef, register
from .ops.sources import convert

__all__ = ["init", "rank", "size", "local_rank", "is_initialized", "allreduce", "broadcast",
           "DistributedOptimizer", "broadcast_global_variables", "set_timeout",
           "DistributedError", "CollectiveMismatchError", "CollectiveTimeoutError",
           "ALLREDUCE", "BROADCAST", "PlanCollectives"]

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
    comm = None            # mpi4py's COMM_WORLD, or None on one process without a launcher
    MPI = None
    rank = 0
    size = 1
    local_rank = 0
    initialized = False
    timeout: float | None = None
    nccl = None            # the NCCL communicator (made on the first device collective)


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
        raise DistributedError("this process was started by an MPI launcher but mpi4py is not "
                               "installed: pip install 'graphc[mpi]'") from None
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
                "ranks (one may have failed, or be running another program)", where)
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
    return [recv[d:d + c].tobytes() for d, c in zip(displs.tolist(), counts.tolist())]


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
        theirs = [json.loads(b) for b in _allgather_bytes(
            mine, f"the signature check before {self.signature[0]}", where)]
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
                "same collectives in the same order with the same shapes and dtypes", loc)


_checked_nodes: set = set()


def _check_alone(node, arrays, op):
    """Without the compiler's pass (the reference executor, optimize=0): check each
    collective on its own, the first time it runs."""
    if id(node) in _checked_nodes:
        return
    avals = [(D.as_dtype(a.dtype), a.shape) for a in arrays]
    sig = [describe_collective(op, node.name, node.attrs, avals)]
    theirs = [json.loads(b) for b in _allgather_bytes(
        json.dumps(sig).encode(), f"the signature check of '{node.name}'", node.location)]
    _checked_nodes.add(id(node))
    _raise_on_difference(theirs, [node.location])


# --- the ops ----------------------------------------------------------------------------------

def _same_avals(inputs, attrs):
    if not inputs:
        raise ValueError("a collective needs at least one tensor")
    dtypes = {t.dtype for t in inputs}
    if len(dtypes) > 1:
        raise TypeError(f"the tensors of one collective must share a dtype, got "
                        f"{sorted(map(str, dtypes))}")
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
    for a in arrays:               # the one copy: each tensor into its place in the bucket
        buf[at:at + a.size] = a.reshape(-1)
        at += a.size
    return buf


def _unpack(buf, arrays, dtype):
    """Views of the bucket shaped like ``arrays`` (no copy when the dtype is the wire's)."""
    out, at = [], 0
    for a in arrays:
        v = buf[at:at + a.size].reshape(a.shape)
        out.append(v if v.dtype == dtype else v.astype(dtype))
        at += a.size
    return tuple(out)


def _address(a):
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data.ptr


def _span(xp, arrays):
    """One flat view over ``arrays`` when the memory plan laid them out back to back in the
    arena (each padded to its alignment), else None. The padding between them is reduced
    too: it belongs to no other value while the bucket lives."""
    from .passes.memory import ALIGN
    first, last = arrays[0], arrays[-1]
    dtype = np.dtype(first.dtype)
    at = _address(first)
    for a in arrays:
        if not a.flags.c_contiguous or np.dtype(a.dtype) != dtype or _address(a) != at:
            return None
        at += -(-max(a.nbytes, 1) // ALIGN) * ALIGN
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


def _allreduce_kernel(ctx, node, *arrays, reduce="average", plan=None, contiguous=False):
    """MPI: the tensors reduced once, in place, as one bucket: their own span of the arena
    when the memory plan laid them out back to back (``contiguous``), else a buffer they
    are packed into (one copy; the results are views of it)."""
    if not _active():
        return tuple(arrays)
    arrays = [np.asarray(a) for a in arrays]
    if plan is not None:
        plan.check()
    else:
        _check_alone(node, arrays, ALLREDUCE)
    dtype = arrays[0].dtype
    buf, own = _bucket(plan, node, np, arrays, dtype, contiguous)
    _allreduce_in_place(buf, f"allreduce '{node.name}'", node.location)
    if reduce == "average":
        np.true_divide(buf, _world.size, out=buf)
    return tuple(arrays) if own else _unpack(buf, arrays, dtype)


def _broadcast_kernel(ctx, node, *arrays, root_rank=0, plan=None):
    if not _active():
        return tuple(arrays)
    arrays = [np.asarray(a) for a in arrays]
    if plan is not None:
        plan.check()
    else:
        _check_alone(node, arrays, BROADCAST)
    dtype = arrays[0].dtype
    buf = _pack(plan, node, np, arrays, dtype)
    _bcast_in_place(buf, root_rank, f"broadcast '{node.name}'", node.location)
    return _unpack(buf, arrays, dtype)


def _allreduce_grad(op, *dys):
    return list(allreduce(*dys, op=op.attrs["reduce"], name=f"{op.name}_grad")) \
        if len(dys) > 1 else [allreduce(dys[0], op=op.attrs["reduce"], name=f"{op.name}_grad")]


def _broadcast_grad(op, *dys):
    """Every rank's output is the root's input: the root's input gets the sum of the
    gradients, the others' inputs none (zero)."""
    summed = allreduce(*dys, op="sum", name=f"{op.name}_grad")
    summed = list(summed) if len(dys) > 1 else [summed]
    keep = 1.0 if rank() == op.attrs["root_rank"] else 0.0
    return [g * keep for g in summed]


# --- the device kernels: NCCL on the session's stream -----------------------------------------

class NcclCommunicator:
    """cupy's NCCL communicator for all ranks; the unique id goes from rank 0 through MPI."""

    def __init__(self, xp):
        from cupy.cuda import nccl
        self.xp, self.nccl = xp, nccl
        uid = nccl.get_unique_id() if _world.rank == 0 else None
        uid = json.loads(_bcast_bytes(json.dumps(uid).encode() if uid is not None else b""))
        self.comm = nccl.NcclCommunicator(_world.size, tuple(uid), _world.rank)
        self.types = {np.dtype(np.float16): nccl.NCCL_FLOAT16,
                      np.dtype(np.float32): nccl.NCCL_FLOAT32,
                      np.dtype(np.float64): nccl.NCCL_FLOAT64,
                      np.dtype(np.int32): nccl.NCCL_INT32, np.dtype(np.int64): nccl.NCCL_INT64}

    def _type(self, buf):
        t = self.types.get(np.dtype(buf.dtype))
        if t is None:
            raise DTypeError(f"NCCL cannot reduce {buf.dtype} tensors")
        return t

    def allreduce(self, buf):
        stream = self.xp.cuda.get_current_stream().ptr
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._type(buf),
                            self.nccl.NCCL_SUM, stream)

    def bcast(self, buf, root):
        stream = self.xp.cuda.get_current_stream().ptr
        self.comm.bcast(buf.data.ptr, buf.size, self._type(buf), root, stream)


def _bcast_bytes(data: bytes) -> bytes:
    if _world.comm is None:               # one process: nothing to share
        return data
    n = np.array([len(data)], np.int64)
    _bcast_in_place(n, 0, "the NCCL id broadcast")
    buf = np.frombuffer(data, np.uint8).copy() if _world.rank == 0 else np.empty(int(n[0]),
                                                                                  np.uint8)
    _bcast_in_place(buf, 0, "the NCCL id broadcast")
    return buf.tobytes()


# Builds the device communicator from the array module; tests put a host stand-in here.
DEVICE_COMMUNICATOR = NcclCommunicator


def _device_comm(xp):
    if _world.nccl is None:
        _world.nccl = DEVICE_COMMUNICATOR(xp)
    return _world.nccl


def _allreduce_device(xp, ctx, node, *arrays, reduce="average", plan=None,
                      contiguous=False):
    """The device kernel: one NCCL allreduce on the current stream over the bucket's span
    of the device arena (or a device buffer it is packed into). The host sees no data."""
    if not _active():
        return tuple(arrays)
    if plan is not None:
        plan.check()
    dtype = np.dtype(arrays[0].dtype)
    buf, own = _bucket(plan, node, xp, arrays, dtype, contiguous)
    _device_comm(xp).allreduce(buf)
    if reduce == "average":
        xp.multiply(buf, dtype.type(1.0 / _world.size), out=buf)
    return tuple(arrays) if own else _unpack(buf, arrays, dtype)


def _broadcast_device(xp, ctx, node, *arrays, root_rank=0, plan=None):
    if not _active():
        return tuple(arrays)
    if plan is not None:
        plan.check()
    dtype = np.dtype(arrays[0].dtype)
    buf = _pack(plan, node, xp, arrays, dtype)
    _device_comm(xp).bcast(buf, root_rank)
    return _unpack(buf, arrays, dtype)


def _one_process_reference(arrays, attrs):
    """The registry tests' reference: on one process a collective returns its inputs."""
    return [np.array(a) for a in arrays]


def _allreduce_samples(rng):
    return [([rng.standard_normal((2, 3)).astype(np.float32),
              rng.standard_normal(4).astype(np.float32)], {"reduce": "average"}),
            ([rng.integers(-5, 5, (3,))], {"reduce": "sum"})]


def _broadcast_samples(rng):
    return [([rng.standard_normal((2, 3)), rng.standard_normal(5)], {"root_rank": 0})]


ALLREDUCE = register(OpDef(
    "allreduce", _same_avals, numpy=_allreduce_kernel, grad=_allreduce_grad, stateful=True,
    samples=_allreduce_samples, extra={"collective": True, "reference": _one_process_reference},
    doc="Each tensor summed (or averaged) over the ranks; several tensors are one bucket, "
        "reduced in one call."))

BROADCAST = register(OpDef(
    "broadcast", _same_avals, numpy=_broadcast_kernel, grad=_broadcast_grad, stateful=True,
    samples=_broadcast_samples, extra={"collective": True, "reference": _one_process_reference},
    doc="Each tensor as rank root_rank holds it."))

# the cupy backend's lowering of the collectives (its module imports no cupy)
_cupy_backend.register_device_lowering(ALLREDUCE, _allreduce_device)
_cupy_backend.register_device_lowering(BROADCAST, _broadcast_device)


def allreduce(*tensors, op="average", name=None):
    """The sum (``op="sum"``) or mean (``"average"``) of each tensor over the ranks. Several
    tensors of one dtype are reduced together in one call (a bucket) and come back as a
    tuple; one tensor comes back as a tensor. Its gradient is an allreduce of the same op."""
    if op not in ("average", "sum"):
        raise GraphcError(f"allreduce: op must be 'average' or 'sum', not {op!r}",
                          user_location())
    ts = [convert(t) for t in tensors]
    node = ALLREDUCE.build(ts, {"reduce": op}, name=name or "allreduce")
    return node.outputs[0] if len(ts) == 1 else tuple(node.outputs)


def broadcast(*tensors, root_rank=0, name=None):
    """Each tensor as rank ``root_rank`` has it (one call for several tensors)."""
    init()
    if not isinstance(root_rank, int) or not 0 <= root_rank < max(_world.size, 1):
        raise GraphcError(f"broadcast: root_rank {root_rank!r} is not a rank of this "
                          f"{_world.size}-rank job", user_location())
    ts = [convert(t) for t in tensors]
    node = BROADCAST.build(ts, {"root_rank": root_rank}, name=name or "broadcast")
    return node.outputs[0] if len(ts) == 1 else tuple(node.outputs)


def broadcast_global_variables(root_rank=0, name="broadcast_global_variables"):
    """The op that sets every global variable to rank ``root_rank``'s value (run it after
    the initializer, or after a restore on the root). On one process: a no-op."""
    from .ir.graph import get_default_graph
    from .ops.state import GLOBAL_VARIABLES, assign, group, no_op
    init()
    graph = get_default_graph()
    variables = graph.get_collection(GLOBAL_VARIABLES)
    if _world.size == 1 or not variables:
        return no_op(name=name)
    updates = []
    with graph.name_scope(name + "/"):
        for dtype, vs in _by_dtype(variables).items():
            values = broadcast(*vs, root_rank=root_rank, name=f"broadcast_{dtype}")
            values = values if isinstance(values, tuple) else (values,)
            updates += [assign(v, x).op for v, x in zip(vs, values, strict=True)]
    return group(*updates, name=name)


def _by_dtype(tensors):
    groups: dict = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    return groups


# --- the optimizer ----------------------------------------------------------------------------

def buckets(tensors, fusion_bytes):
    """Tensors grouped for fused reduction: per dtype, in order, each bucket at most
    ``fusion_bytes`` (a larger tensor is a bucket of its own; one of unknown size too)."""
    from .shapes import fully_known
    out: list = []
    open_: dict = {}
    for t in tensors:
        if t.shape is None or not fully_known(t.shape):
            out.append([t])
            continue
        nbytes = int(np.prod(t.shape, dtype=np.int64)) * t.dtype.itemsize
        cur = open_.get(t.dtype)
        if cur is None or cur[1] + nbytes > fusion_bytes:
            cur = open_[t.dtype] = [[], 0]
            out.append(cur[0])
        cur[0].append(t)
        cur[1] += nbytes
    return out


class DistributedOptimizer:
    """Wraps any optimizer: ``compute_gradients`` averages the gradients over the ranks
    (packed into buckets of at most ``fusion_bytes``, one allreduce each), and
    ``apply_gradients`` is the wrapped optimizer's, so every rank applies the same update.
    ``op="sum"`` sums instead. ``gradient_scale`` (a number or a tensor) multiplies this rank's
    gradients before the reduction: with unequal shards, ``op="sum"`` and
    ``gradient_scale = rows on this rank / rows on all ranks`` give the exact gradient of a
    mean loss over all rows. On one process it adds nothing. Anything else (slots,
    ``variables()``, names) is the wrapped optimizer's."""

    def __init__(self, optimizer, fusion_bytes=64 << 20, op="average", name=None,
                 gradient_scale=None):
        if not hasattr(optimizer, "compute_gradients") or not hasattr(optimizer,
                                                                      "apply_gradients"):
            raise GraphcError(f"DistributedOptimizer wraps an optimizer, got {optimizer!r}",
                              user_location())
        if op not in ("average", "sum"):
            raise GraphcError(f"DistributedOptimizer: op must be 'average' or 'sum', not {op!r}",
                              user_location())
        if not isinstance(fusion_bytes, (int, np.integer)) or fusion_bytes < 0:
            raise GraphcError(f"fusion_bytes must be a non-negative int, got {fusion_bytes!r}",
                              user_location())
        self._optimizer = optimizer
        self.fusion_bytes = int(fusion_bytes)
        self.op = op
        self._name = name or "DistributedOptimizer"
        self.gradient_scale = gradient_scale

    def __getattr__(self, item):            # get_slot, variables, get_name, ...
        return getattr(self.__dict__["_optimizer"], item)

    def minimize(self, loss, global_step=None, var_list=None, name=None, grad_loss=None,
                 **_tf_kwargs):
        from .diagnostics import missing_gradients
        grads_and_vars = self.compute_gradients(loss, var_list=var_list, grad_loss=grad_loss)
        missing_gradients(loss, grads_and_vars)
        with loss.graph.control_dependencies([loss.op]):
            return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss, var_list=None, grad_loss=None, **kwargs):
        grads_and_vars = self._optimizer.compute_gradients(loss, var_list=var_list,
                                                           grad_loss=grad_loss, **kwargs)
        if size() == 1:
            return grads_and_vars
        reduced = {}
        with loss.graph.as_default(), loss.graph.name_scope(self._name + "/"):
            if self.gradient_scale is not None:
                grads_and_vars = [(None if g is None else g * self._scale(g), v)
                                  for g, v in grads_and_vars]
            live = [g for g, _ in grads_and_vars if g is not None]
            for k, bucket in enumerate(buckets(live, self.fusion_bytes)):
                out = allreduce(*bucket, op=self.op, name=f"allreduce_{k}")
                out = out if isinstance(out, tuple) else (out,)
                reduced.update(zip(bucket, out, strict=True))
        return [(None if g is None else reduced[g], v) for g, v in grads_and_vars]

    def _scale(self, grad):
        from .ir.node import Tensor
        from .ops.array import cast
        scale = self.gradient_scale
        if isinstance(scale, Tensor):
            return scale if scale.dtype is grad.dtype else cast(scale, grad.dtype)
        return float(scale)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        return self._optimizer.apply_gradients(grads_and_vars, global_step=global_step,
                                               name=name)


# --- `graphc run --np N` ----------------------------------------------------------------------

def find_mpiexec():
    """The ``mpiexec`` of the installed MPI: next to this Python (``pip install mpich``
    puts it in the environment's bin), next to mpi4py's compiler wrapper, or on PATH."""
    import shutil
    candidates = [os.path.join(os.path.dirname(sys.executable), "mpiexec")]
    try:
        import mpi4py
        mpicc = mpi4py.get_config().get("mpicc")
        if mpicc:
            candidates.append(os.path.join(os.path.dirname(mpicc), "mpiexec"))
    except Exception:  # noqa: BLE001 - mpi4py missing or without a config: try PATH
        pass
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("mpiexec") or shutil.which("mpirun")


def relaunch(np_, argv) -> int:
    """Run ``python -m mpi4py -m graphc ARGV`` under ``mpiexec -n np_`` and return its exit
    status (``-m mpi4py``: a rank that fails ends the job)."""
    import subprocess
    if os.environ.get("GRAPHC_RELAUNCHED"):
        raise DistributedError(f"--np {np_}: this process was started by mpiexec but is not "
                               "part of an MPI job (is mpi4py built for this MPI?)")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise DistributedError(f"--np {np_} needs an MPI launcher (mpiexec): pip install "
                               "'graphc[mpi]' installs mpi4py and MPICH")
    env = dict(os.environ, GRAPHC_RELAUNCHED="1")
    cmd = [mpiexec, "-n", str(np_), sys.executable, "-m", "mpi4py", "-m", "graphc", *argv]
    return subprocess.call(cmd, env=env)


def shard_feeds(feeds: dict):
    """This rank's rows of every fed array (contiguous parts along axis 0, sizes differing
    by at most one) and its weight ``rows here / rows in all``: a rank's gradient of a mean
    loss times its weight, summed over the ranks, is the gradient on all the rows."""
    lengths = {t.op.name: len(v) for t, v in feeds.items() if np.ndim(v) > 0}
    if not lengths:
        return feeds, 1.0 / size()
    if len(set(lengths.values())) > 1:
        raise DistributedError(f"--np {size()}: the feeds are split along their first axis, so "
                               f"they need the same number of rows; got {lengths}")
    n = next(iter(lengths.values()))
    if n < size():
        raise DistributedError(f"--np {size()}: the feeds have {n} rows, fewer than the ranks")
    bounds = np.linspace(0, n, size() + 1).round().astype(int)
    lo, hi = bounds[rank()], bounds[rank() + 1]
    parts = {t: (v[lo:hi] if np.ndim(v) > 0 else v) for t, v in feeds.items()}
    return parts, (hi - lo) / n
