"""The cupy backend's lowering of the collectives: NCCL on the session's stream, over the
device buffers (the host sees no data). The unique id goes from rank 0 to the others through
MPI; each rank uses GPU ``local_rank``."""

from __future__ import annotations

import json

import numpy as np

from ..errors import DTypeError
from ..ops.collectives import (
    ALLREDUCE,
    BROADCAST,
    _active,
    _bcast_in_place,
    _bucket,
    _pack,
    _unpack,
    _world,
)


class NcclCommunicator:
    """cupy's NCCL communicator for all ranks; the unique id goes from rank 0 through MPI."""

    def __init__(self, xp):
        from cupy.cuda import nccl

        self.xp, self.nccl = xp, nccl
        uid = nccl.get_unique_id() if _world.rank == 0 else None
        uid = json.loads(_bcast_bytes(json.dumps(uid).encode() if uid is not None else b""))
        self.comm = nccl.NcclCommunicator(_world.size, tuple(uid), _world.rank)
        self.types = {
            np.dtype(np.float16): nccl.NCCL_FLOAT16,
            np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64,
            np.dtype(np.int32): nccl.NCCL_INT32,
            np.dtype(np.int64): nccl.NCCL_INT64,
        }

    def _type(self, buf):
        t = self.types.get(np.dtype(buf.dtype))
        if t is None:
            raise DTypeError(f"NCCL cannot reduce {buf.dtype} tensors")
        return t

    def allreduce(self, buf):
        stream = self.xp.cuda.get_current_stream().ptr
        self.comm.allReduce(
            buf.data.ptr, buf.data.ptr, buf.size, self._type(buf), self.nccl.NCCL_SUM, stream
        )

    def bcast(self, buf, root):
        stream = self.xp.cuda.get_current_stream().ptr
        self.comm.bcast(buf.data.ptr, buf.size, self._type(buf), root, stream)


def _bcast_bytes(data: bytes) -> bytes:
    if _world.comm is None:  # one process: nothing to share
        return data
    n = np.array([len(data)], np.int64)
    _bcast_in_place(n, 0, "the NCCL id broadcast")
    buf = (
        np.frombuffer(data, np.uint8).copy() if _world.rank == 0 else np.empty(int(n[0]), np.uint8)
    )
    _bcast_in_place(buf, 0, "the NCCL id broadcast")
    return buf.tobytes()


# Builds the device communicator from the array module; tests put a host stand-in here.
DEVICE_COMMUNICATOR = NcclCommunicator


def _device_comm(xp):
    if _world.nccl is None:
        _world.nccl = DEVICE_COMMUNICATOR(xp)
    return _world.nccl


def _allreduce_device(xp, node, out, *arrays, reduce="average", plan=None, contiguous=False):
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


def _broadcast_device(xp, node, out, *arrays, root_rank=0, plan=None):
    if not _active():
        return tuple(arrays)
    if plan is not None:
        plan.check()
    dtype = np.dtype(arrays[0].dtype)
    buf = _pack(plan, node, xp, arrays, dtype)
    _device_comm(xp).bcast(buf, root_rank)
    return _unpack(buf, arrays, dtype)


LOWERINGS = {ALLREDUCE: _allreduce_device, BROADCAST: _broadcast_device}
