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

The collectives are ops of the registry (``ALLREDUCE``, ``BROADCAST``, in
``graphc/ops/collectives.py``): shape and dtype rules, a numpy kernel that calls MPI, a
device kernel (``graphc/backends/nccl.py``, in the cupy backend's lowering table) that calls
NCCL on the session's stream, and gradients (an
allreduce's gradient is an allreduce). The memory phase gives each compiled plan one
``PlanCollectives`` record (its collectives' signature, checked across ranks on the first
run, and the bucket buffers) and lays each bucket's inputs out back to back.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from .errors import GraphcError, user_location
from .ops.collectives import (  # noqa: F401
    ALLREDUCE,
    BROADCAST,
    CollectiveMismatchError,
    CollectiveTimeoutError,
    DistributedError,
    PlanCollectives,
    _raise_on_difference,
    _span,
    _world,
    allreduce,
    broadcast,
    init,
    is_initialized,
    local_rank,
    rank,
    set_timeout,
    size,
)

__all__ = [
    "init",
    "rank",
    "size",
    "local_rank",
    "is_initialized",
    "allreduce",
    "broadcast",
    "DistributedOptimizer",
    "broadcast_global_variables",
    "set_timeout",
    "DistributedError",
    "CollectiveMismatchError",
    "CollectiveTimeoutError",
    "ALLREDUCE",
    "BROADCAST",
    "PlanCollectives",
]


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

    def __init__(
        self, optimizer, fusion_bytes=64 << 20, op="average", name=None, gradient_scale=None
    ):
        if not hasattr(optimizer, "compute_gradients") or not hasattr(optimizer, "apply_gradients"):
            raise GraphcError(
                f"DistributedOptimizer wraps an optimizer, got {optimizer!r}", user_location()
            )
        if op not in ("average", "sum"):
            raise GraphcError(
                f"DistributedOptimizer: op must be 'average' or 'sum', not {op!r}", user_location()
            )
        if not isinstance(fusion_bytes, (int, np.integer)) or fusion_bytes < 0:
            raise GraphcError(
                f"fusion_bytes must be a non-negative int, got {fusion_bytes!r}", user_location()
            )
        self._optimizer = optimizer
        self.fusion_bytes = int(fusion_bytes)
        self.op = op
        self._name = name or "DistributedOptimizer"
        self.gradient_scale = gradient_scale

    def __getattr__(self, item):  # get_slot, variables, get_name, ...
        return getattr(self.__dict__["_optimizer"], item)

    def minimize(
        self, loss, global_step=None, var_list=None, name=None, grad_loss=None, **_tf_kwargs
    ):
        from .diagnostics import missing_gradients

        grads_and_vars = self.compute_gradients(loss, var_list=var_list, grad_loss=grad_loss)
        missing_gradients(loss, grads_and_vars)
        with loss.graph.control_dependencies([loss.op]):
            return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss, var_list=None, grad_loss=None, **kwargs):
        grads_and_vars = self._optimizer.compute_gradients(
            loss, var_list=var_list, grad_loss=grad_loss, **kwargs
        )
        if size() == 1:
            return grads_and_vars
        reduced = {}
        with loss.graph.as_default(), loss.graph.name_scope(self._name + "/"):
            if self.gradient_scale is not None:
                grads_and_vars = [
                    (None if g is None else g * self._scale(g), v) for g, v in grads_and_vars
                ]
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
        return self._optimizer.apply_gradients(grads_and_vars, global_step=global_step, name=name)


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
    if os.environ.get("GRAPHC_RELAUNCHED"):
        raise DistributedError(
            f"--np {np_}: this process was started by mpiexec but is not "
            "part of an MPI job (is mpi4py built for this MPI?)"
        )
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise DistributedError(
            f"--np {np_} needs an MPI launcher (mpiexec): pip install "
            "'graphc-compiler[mpi]' installs mpi4py and MPICH"
        )
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
        raise DistributedError(
            f"--np {size()}: the feeds are split along their first axis, so "
            f"they need the same number of rows; got {lengths}"
        )
    n = next(iter(lengths.values()))
    if n < size():
        raise DistributedError(f"--np {size()}: the feeds have {n} rows, fewer than the ranks")
    bounds = np.linspace(0, n, size() + 1).round().astype(int)
    lo, hi = bounds[rank()], bounds[rank() + 1]
    parts = {t: (v[lo:hi] if np.ndim(v) > 0 else v) for t, v in feeds.items()}
    return parts, (hi - lo) / n
