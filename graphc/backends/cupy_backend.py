"""The cupy executor: the same Plan as the numpy backend, run on a GPU.

How a plan becomes GPU work:
  * the memory plan is ONE device allocation (the arena, plus the partials of two-pass
    reductions after it); every planned slot is a view into it;
  * fused groups and lone elementwise ops and reductions run as CUDA kernels that
    ``cuda_codegen`` generates from the ops' scalar expressions; all kernels of a plan are
    compiled together as one module for the current device (``cuda_modules``: graphc's own
    NVRTC, IEEE float32 so denormals match numpy, cached per device and on disk);
  * matmul goes to cuBLAS through ``xp.matmul(..., out=)``;
  * ops in ``LOWERINGS`` (keyed by OpDef) run on the device buffers: shape and indexing ops
    (``cupy_lowerings``), convolution and pooling (``cupy_conv``: im2col and cuBLAS) and the
    collectives' NCCL calls (``nccl``); seeded uniform draws (dropout masks) run on the device
    with the CPU's exact numbers (``cupy_random``, ``STATE_LOWERINGS``);
  * run-time checks of values (gather indices, class labels) are computed on the device as they
    come and read back once, before the run's first update of state (or at its end), so a run
    with a bad value fails with the user's line before it changes anything;
  * variables live on the device (``DeviceVariables``); assign/assign_add/assign_sub update
    them there and nothing is copied back: the session's host array is synced only when the
    host reads it (``get_variable``, the Saver, a host step that reads state);
  * each feed goes through a pinned host buffer into a device buffer of its own; each fetch
    is one device-to-host copy;
  * control ops (cond, while_loop, scan) loop on the host and run their bodies on the device,
    each body a cupy plan of its own (``cupy_control``);
  * any other op (normal and integer random draws, print, user ops without a scalar
    expression…) runs its numpy kernel on the host between a download and an upload;
  * ``cuda_graph=True`` captures a run's device work as a CUDA Graph and replays it on the
    caller's current stream while the plan's buffers stay put; a plan in which cupy would
    allocate during capture runs eagerly, its reason in ``capture_refused``.

The array module ``xp`` and the kernel compiler are parameters: cupy and ``CupyKernels`` by
default, imported lazily so CPU users never need cupy; tests pass numpy and the host
harness (``cuda_host.HostModule``) to run the whole orchestration on the CPU.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref

import numpy as np

from ..errors import GraphcError, OpError
from ..ops.array import BROADCAST_LIKE, BROADCAST_TO, IDENTITY
from ..ops.linalg import MATMUL
from ..ops.reduce import REDUCE_SUM, SUM_TO_LIKE
from ..ops.state import ASSIGN, ASSIGN_ADD, ASSIGN_SUB, NO_OP, VARIABLE
from ..shapes import broadcast_axes, fully_known
from . import cuda_codegen as cg
from . import cuda_modules, cupy_control, cupy_conv, cupy_lowerings, cupy_random, nccl
from .reference import ReferenceExecutable

ALIGN = 256  # device allocations: cuBLAS and vector loads like 256 B


# The device lowerings of ops that are neither generated kernels nor cuBLAS, keyed by OpDef:
# ``fn(xp, node, out, *inputs, **attrs)`` (``out``: the planned buffer of a single output, or
# None). Shape and indexing ops and run-time checks (``cupy_lowerings``), convolution and
# pooling (``cupy_conv``) and the collectives' NCCL calls (``nccl``).
LOWERINGS: dict = {**cupy_lowerings.LOWERINGS, **cupy_conv.LOWERINGS, **nccl.LOWERINGS}
# Stateful ops with a device lowering ``fn(xp, ctx, node, out, *inputs, **attrs)``, each with
# the predicate on its attrs that says which instances it handles (``cupy_random``: seeded
# uniform draws that give the CPU backend's numbers; ``cupy_lowerings``: check_numerics).
STATE_LOWERINGS: dict = {**cupy_random.STATE_LOWERINGS, **cupy_lowerings.STATE_LOWERINGS}


def cupy_module():
    """cupy, imported on first use; a clear error when it (or a device) is missing."""
    try:
        import cupy
    except ImportError:
        raise GraphcError(
            "backend='cupy' needs cupy: pip install \"graphc-compiler[gpu]\" "
            '("graphc-compiler[gpu-cuda13]" for CUDA 13 drivers)'
        ) from None
    if not cupy.cuda.is_available():
        raise GraphcError("backend='cupy' needs a CUDA device; cupy sees none")
    return cupy


def gpu_unavailable_reason():
    """None when cupy and a CUDA device are usable, else why not (for skips and messages)."""
    try:
        cupy_module()
    except GraphcError as e:
        return e.message
    return None


class CupyKernels:
    """A plan's kernels compiled as one module for the current device (``cuda_modules``:
    IEEE float32, cached per device and on disk). A kernel NVRTC rejects raises
    ``KernelCompileError`` naming it, so the executable can name the user's line."""

    def __init__(self, kernels):
        cupy = cupy_module()
        try:
            module = cuda_modules.load(cupy, cg.module_source(kernels))
        except cuda_modules.KernelCompileError as e:
            raise _first_failing(cupy, kernels, e) from None
        self._functions = {k.name: module.get_function(k.name) for k in kernels}

    def launch(self, launch: cg.Launch, arrays) -> None:
        fn = self._functions[launch.kernel.name]
        fn(launch.grid, (launch.block,), (*arrays, *(np.int64(s) for s in launch.scalars)))


def _first_failing(cupy, kernels, error):
    """The module did not compile: find the kernel that does not compile alone (the error
    path only), so the message can name its step; the whole module's log otherwise."""
    for k in kernels:
        try:
            cuda_modules.load(cupy, cg.module_source([k]))
        except cuda_modules.KernelCompileError as e:
            e.kernel = k.name
            return e
    return error


# --- variables on the device -------------------------------------------------------------------


class DeviceVariables:
    """A session's variables on the device. The device copy is the value: a run's assigns
    update it in place and nothing is copied back. The session's host array is brought up
    to date only when the host reads it (``sync``: ``Session.get_variable``, the Saver, a
    state op that runs on the host); a host array the session replaced (restore,
    ``Variable.load``) is uploaded at its next read on the device. ``uploads`` and
    ``downloads`` count the copies, for tests and the smoke probe."""

    def __init__(self, xp, download):
        self.xp = xp
        self.download = download
        self.device: dict = {}
        self.uploaded_from: dict = {}  # var -> the host array the device copy came from
        self.stale: set = set()  # vars whose host array is behind the device copy
        self.uploads = self.downloads = 0
        self.last_locked_update: dict = {}  # var -> event after its last locked update

    @contextlib.contextmanager
    def locked(self, ctx, var):
        """``use_locking``: hold ``var``'s session lock (``RunContext.lock``, the numpy
        backend's) while the update is issued. On the device the update must also run after
        the last locked update of ``var`` issued from another thread, whose stream may be
        another: the current stream waits for that update's event, and records its own."""
        streams = getattr(getattr(self.xp, "cuda", None), "get_current_stream", None)
        with ctx.lock(var):
            stream = streams() if streams is not None else None
            event = self.last_locked_update.get(var)
            if stream is not None and event is not None:
                stream.wait_event(event)
            yield
            if stream is not None:
                self.last_locked_update[var] = stream.record()

    def read(self, ctx, var):
        host = ctx.variables.get(var)
        if host is None:
            VARIABLE.numpy(ctx, var, **var.attrs)  # raises the uninitialized error
        if self.uploaded_from.get(var) is not host:
            self.device[var] = self.xp.array(host, copy=True)
            self.uploaded_from[var] = host
            self.stale.discard(var)
            self.uploads += 1
        return self.device[var]

    def assign(self, ctx, var, value):
        host = ctx.variables.get(var)
        if host is None or host.shape != value.shape:  # first value, or a new shape
            dtype = var.outputs[0].dtype.np
            self.device[var] = self.xp.array(value, dtype=dtype, copy=True)
            host = ctx.variables[var] = np.array(self.download(value), dtype=dtype, copy=True)
            self.uploaded_from[var] = host
            self.stale.discard(var)
            self.downloads += 1
        else:
            self.xp.copyto(self.read(ctx, var), value)
            self.stale.add(var)
        return self.device[var]

    def updated(self, var):
        """``var``'s device copy was changed in place (assign_add, assign_sub)."""
        self.stale.add(var)

    def sync(self, var):
        """Bring ``var``'s host array up to date with the device (a no-op when it is)."""
        if var in self.stale:
            self.stale.discard(var)
            host = self.uploaded_from.get(var)
            if host is not None:
                np.copyto(host, self.download(self.device[var]))
                self.downloads += 1

    def sync_all(self):
        for var in list(self.stale):
            self.sync(var)

    def forget(self):
        """The host may have changed variables in place: re-upload each at its next read."""
        self.sync_all()
        self.uploaded_from.clear()


_DEVICE_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DEVICE_STATE_LOCK = threading.Lock()  # two plans of one session may start together


def device_variables(ctx, xp, download) -> DeviceVariables:
    """The DeviceVariables of the session that owns ``ctx`` (one per array module)."""
    with _DEVICE_STATE_LOCK:
        per_ctx = _DEVICE_STATE.setdefault(ctx, {})
        state = per_ctx.get(id(xp))
        if state is None:
            state = per_ctx[id(xp)] = DeviceVariables(xp, download)
            hooks = getattr(ctx, "host_reads", None)
            if hooks is not None:  # the session syncs before it reads a host array
                hooks.append(state.sync)
        return state


# --- the executable ----------------------------------------------------------------------------


def _aligned(n):
    return -(-max(int(n), 1) // ALIGN) * ALIGN


class CupyExecutable:
    """Runs one Plan: ``exe(ctx, feeds)`` like the other executors, or ``exe.call(ctx,
    *feed_arrays)`` in the plan's feed order. Not re-entrant: one lock serialises runs (the
    GPU would serialise them anyway)."""

    def __init__(
        self,
        plan,
        xp=None,
        compile_kernels=None,
        cuda_graph=False,
        capture=None,
        block=cg.BLOCK,
        max_grid=cg.MAX_GRID,
    ):
        self.plan = plan
        self._grid = {"block": block, "max_grid": max_grid}  # host tests launch small grids
        self.xp = xp if xp is not None else cupy_module()
        self._compile_kernels = compile_kernels  # control-op bodies compile theirs alike
        self._bodies: dict = {}  # (Function, input signature) -> (CupyExecutable, positions)
        self._download = getattr(self.xp, "asnumpy", None) or (lambda a: np.array(a))
        self.feed_tensors = [t for t, _ in plan.feeds]
        self._lock = threading.Lock()
        self._launches: dict = {}  # step index -> [(Launch, input refs, output refs)]
        self._scratch: list = []  # (offset, nbytes, dtype, shape) after the arena
        self._host_steps = []
        self._state_lowered = set()  # stateful steps with a device lowering
        self._checks: list = []  # this run's pending value checks (see _check_values)
        for step in plan.steps:
            self._prepare(step)
        kernels = [la.kernel for group in self._launches.values() for la, _, _ in group]
        if kernels:
            try:
                self._kernels = (compile_kernels or CupyKernels)(kernels)
            except cuda_modules.KernelCompileError as e:
                raise self._compile_error(e) from None
        self._allocate()
        self.capture_refused = self._capture_refusal()
        self._cuda_graph = cuda_graph and self.capture_refused is None
        self._capture = capture or _cupy_capture
        # pinned staging for feeds where the array module is cupy (not numpy standing in)
        cupyx = _cupyx(self.xp)
        self._pinned = getattr(cupyx, "empty_pinned", None) if cupyx is not None else None
        self._staging: dict = {}
        self._graph = None
        self._eager_runs = 0

    # -- building -----------------------------------------------------------------------------
    def _slot(self, k):
        return self.plan.slots[k]

    def _known(self, k):
        s = self._slot(k)
        return s.shape is not None and fully_known(s.shape)

    def _prepare(self, step):
        """Decide where ``step`` runs; record its kernel launches if it gets any."""
        op = step.op
        if step.kind == "fused":
            if all(isinstance(f.op.expr, str) or f.op.extra.get("c_combine") for f in step.body):
                self._launches[step.index] = self._fused_launches(step)
            else:  # a user op without a scalar expression in the body
                self._host_steps.append(step.index)
            return
        known = step.kind in ("kernel", "alloc") and all(
            map(self._known, step.inputs + step.outputs)
        )
        x = self._slot(step.inputs[0]) if step.inputs else None
        if known and op.kind == "elementwise" and isinstance(op.expr, str):
            group = cg.single_op_group(
                op,
                tuple(self._slot(k).dtype for k in step.inputs),
                self._slot(step.outputs[0]).dtype,
                step.attrs,
            )
            self._launches[step.index] = [
                (
                    self._ew_launch(group, step.outputs[0], step.inputs),
                    _slots(step.inputs),
                    _slots(step.outputs),
                )
            ]
        elif known and op in (BROADCAST_TO, BROADCAST_LIKE):  # a broadcasting copy
            group = cg.single_op_group(IDENTITY, (x.dtype,), x.dtype)
            self._launches[step.index] = [
                (
                    self._ew_launch(group, step.outputs[0], step.inputs[:1]),
                    _slots(step.inputs[:1]),
                    _slots(step.outputs),
                )
            ]
        elif known and (
            op is SUM_TO_LIKE or (op.kind == "reduction" and op.extra.get("c_combine"))
        ):
            axes = (
                broadcast_axes(x.shape, self._slot(step.outputs[0]).shape)
                if op is SUM_TO_LIKE
                else tuple(step.attrs["axis"])
            )
            reduce = REDUCE_SUM if op is SUM_TO_LIKE else op
            group = cg.Group((x.dtype,), (), (), cg.Reduction(reduce, 0, axes))
            self._launches[step.index] = self._reduction(
                group, tuple(x.shape), step.inputs[:1], step.outputs[0]
            )
        elif op in STATE_LOWERINGS and STATE_LOWERINGS[op][1](step.attrs):
            self._state_lowered.add(step.index)
        elif (
            op not in (ASSIGN, ASSIGN_ADD, ASSIGN_SUB, MATMUL, NO_OP, VARIABLE)
            and op not in LOWERINGS
            and op not in cupy_control.KERNELS
        ):
            self._host_steps.append(step.index)

    def _ew_launch(self, group, out_slot, in_slots):
        full = tuple(self._slot(out_slot).shape)
        return cg.elementwise_launch(
            group, full, [self._slot(k).shape for k in in_slots], **self._grid
        )

    def _reduction(self, group, full, in_slots, out_slot):
        launches, scratch, acc = cg.reduction_plan(
            group, full, [self._slot(k).shape for k in in_slots], **self._grid
        )
        if scratch is None:
            return [(launches[0], _slots(in_slots), _slots([out_slot]))]
        partials = (("scratch", len(self._scratch)),)
        self._scratch.append((None, int(np.prod(scratch)) * acc.itemsize, acc.np, scratch))
        return [
            (launches[0], _slots(in_slots), partials),
            (launches[1], partials, _slots([out_slot])),
        ]

    def _fused_launches(self, step):
        """A fused step: one elementwise kernel for the values it materialises, and one
        reduction (over the materialised value when there is one) if the body ends in one."""
        body, n_in = step.body, len(step.inputs)
        red = body[-1] if body[-1].op.kind == "reduction" else None
        elementwise = body[:-1] if red is not None else body
        steps = tuple(
            cg.Step(
                f.op,
                tuple(a if kind == "in" else n_in + a for kind, a in f.args),
                f.dtype,
                tuple(sorted(f.attrs.items(), key=lambda kv: kv[0])),
            )
            for f in elementwise
        )
        inputs = tuple(self._slot(k).dtype for k in step.inputs)
        outs = [
            (j, step.outputs[k])
            for j, (w, k) in enumerate(step.body_slots)
            if w == "out" and (red is None or j < len(body) - 1)
        ]
        launches = []
        if outs:
            group = cg.Group(inputs, steps, tuple(n_in + j for j, _ in outs))
            full = tuple(step.loop_shape)
            launch = cg.elementwise_launch(
                group, full, [self._slot(k).shape for k in step.inputs], **self._grid
            )
            launches.append((launch, _slots(step.inputs), _slots(s for _, s in outs)))
        if red is not None:
            ((kind, arg),) = red.args
            red_out = step.outputs[step.body_slots[-1][1]]
            axes = tuple(red.attrs["axis"])
            materialised = dict(outs).get(arg) if kind == "op" else None
            if kind == "in" or materialised is not None:  # reduce a buffer directly
                src = step.inputs[arg] if kind == "in" else materialised
                group = cg.Group((self._slot(src).dtype,), (), (), cg.Reduction(red.op, 0, axes))
                launches += self._reduction(group, tuple(step.loop_shape), (src,), red_out)
            else:
                group = cg.Group(inputs, steps, (), cg.Reduction(red.op, n_in + arg, axes))
                launches += self._reduction(group, tuple(step.loop_shape), step.inputs, red_out)
        return launches

    def _allocate(self):
        """One device allocation: the planned arena, then the reductions' partials."""
        xp, plan = self.xp, self.plan
        offset = _aligned(plan.arena_bytes)  # intermediates, then fetched results
        placed = []
        for _, nbytes, dtype, shape in self._scratch:
            placed.append((offset, nbytes, dtype, shape))
            offset += _aligned(nbytes)
        self._scratch = placed
        self.device_bytes = offset
        self._arena = xp.empty(offset, dtype=np.uint8)
        base = [None] * len(plan.slots)
        for s in plan.slots:
            if s.kind in ("arena", "scratch"):
                base[s.index] = self._view(s.offset, s.nbytes, s.dtype.np, s.shape)
            elif s.kind == "const":
                base[s.index] = xp.asarray(_c_order(s.value))
        self._base = base
        self._partials = [self._view(*p) for p in placed]

    def _view(self, offset, nbytes, dtype, shape):
        return self._arena[offset : offset + nbytes].view(dtype).reshape(shape)

    def _capture_refusal(self):
        """None when a run is pure device work into buffers that stay put, else why not. A
        CUDA Graph replays fixed addresses: it cannot run host steps, and memory that cupy
        allocates during capture (an unplanned output, a temporary of ``cupy.matmul``) goes
        back to the pool afterwards, so a replay would write memory that is no longer ours."""
        if self._host_steps:
            return f"{len(self._host_steps)} step(s) run on the host"
        for step in self.plan.steps:
            if step.op in cupy_control.KERNELS:
                return f"{step.describe()} loops on the host"
            computes = step.index in self._launches or step.op is MATMUL
            if computes and any(self._slot(k).kind != "arena" for k in step.outputs):
                return f"{step.describe()} writes a buffer allocated at run time"
            if (
                step.op in LOWERINGS and step.op not in cupy_lowerings.ALLOCATION_FREE
            ) or step.index in self._state_lowered:
                return f"{step.describe()} may allocate or synchronise while it runs"
            if step.attrs.get("use_locking"):  # a replay would take no lock
                return f"{step.describe()} takes its variable's lock (use_locking) as it runs"
            if step.op is MATMUL and (why := self._matmul_temporary(step)):
                return f"{step.describe()}: cupy.matmul would allocate a temporary ({why})"
        return None

    def _matmul_temporary(self, step):
        """Why ``cupy.matmul`` would allocate scratch memory for this step, or None: it copies
        batched operands that are not C-contiguous (a transposed 3-D operand), computes
        float16 through a float32 copy, and writes through a temporary when the output shares
        memory with an input (in-place reuse)."""
        (a, b), (out,) = [self._slot(k) for k in step.inputs], [self._slot(step.outputs[0])]
        if (
            len(a.shape) > 2
            and step.attrs.get("transpose_a")
            or len(b.shape) > 2
            and step.attrs.get("transpose_b")
        ):
            return "a transposed batched operand"
        if out.dtype.np == np.float16:
            return "float16"
        for s in (a, b):
            if (
                s.kind == "arena"
                and out.kind == "arena"
                and s.offset < out.offset + out.nbytes
                and out.offset < s.offset + s.nbytes
            ):
                return "its output overlaps an input"
        return None

    def _compile_error(self, error):
        """A kernel NVRTC rejected, as an error naming the user's line of its first op."""
        step = next(
            (
                self.plan.steps[i]
                for i, group in self._launches.items()
                if any(la.kernel.name == getattr(error, "kernel", None) for la, _, _ in group)
            ),
            None,
        )
        src = step.sources[0] if step is not None and step.sources else None
        what = step.describe() if step is not None else "the plan's kernels"
        return OpError(
            f"the CUDA kernel of {what} does not compile:\n{error.log}",
            src.location if src is not None else None,
            node=src,
        )

    # -- running ------------------------------------------------------------------------------
    def __call__(self, ctx, feeds: dict):
        return self.call(ctx, *[feeds[t] for t in self.feed_tensors])

    def call_traced(self, ctx, feeds: dict):
        raise GraphcError(
            "trace= is not available on the cupy backend yet: trace the same "
            "fetches with backend='numpy'"
        )

    def call(self, ctx, *feed_arrays):
        with self._lock:
            state = device_variables(ctx, self.xp, self._download)
            buffers = list(self._base)
            for (_, slot), value in zip(self.plan.feeds, feed_arrays, strict=True):
                buffers[slot] = self._feed(slot, value)
            if self._cuda_graph and self._eager_runs:  # the first run warms up (cuBLAS…)
                self._run_graph(ctx, state, buffers)
            else:
                self._run_steps(ctx, state, buffers)
                self._eager_runs += 1
            # one copy per fetch: the download is the caller's own array
            return [self._download(buffers[k]) for k in self.plan.fetches]

    def body_executable(self, fn, arrays):
        """A control op's body ``fn`` compiled for device ``arrays`` (once per signature), as
        a CupyExecutable over this one's array module and kernel compiler; with the
        positions of its feeds in ``arrays``."""
        key = cupy_control.signature(fn, arrays)
        entry = self._bodies.get(key)
        if entry is None:
            entry = self._bodies[key] = cupy_control.compile_body(
                fn,
                arrays,
                lambda plan: CupyExecutable(
                    plan, xp=self.xp, compile_kernels=self._compile_kernels, **self._grid
                ),
            )
        return entry

    def call_on_device(self, ctx, state, device_arrays):
        """Run on arrays already on the device, under the caller's device variables
        ``state``; the fetches stay on the device, each a buffer of its own (the next run
        reuses the arena). A control op's body runs this way on every iteration."""
        with self._lock:
            buffers = list(self._base)
            for (_, slot), value in zip(self.plan.feeds, device_arrays, strict=True):
                buffers[slot] = value
            self._run_steps(ctx, state, buffers)
            return [buffers[k].copy() for k in self.plan.fetches]

    def _feed(self, slot, value):
        """A fed value on the device. With cupy, through a pinned host buffer of this feed
        (a DMA from page-locked memory, no staging copy by the driver) into a device buffer
        of its own; the copy is ordered on the current stream like the run that reads it."""
        value = _c_order(value)
        staging = self._staging.get(slot) if self._pinned is not None else None
        if self._pinned is None or value.dtype == object:
            return self.xp.asarray(value)
        if staging is None or staging[0].shape != value.shape or staging[0].dtype != value.dtype:
            staging = self._staging[slot] = (
                self._pinned(value.shape, value.dtype),
                self.xp.empty(value.shape, value.dtype),
                None,
            )
        host, device, done = staging
        if done is not None:
            done.synchronize()  # the last copy out of this pinned buffer is over
        np.copyto(host, value)
        device.set(host, stream=self.xp.cuda.get_current_stream())
        self._staging[slot] = (host, device, self.xp.cuda.get_current_stream().record())
        return device

    def _run_graph(self, ctx, state, buffers):
        """Replay the captured run; (re)capture when a feed or variable buffer moved."""
        for step in self.plan.steps:  # resolve variable buffers first
            if step.kind == "read":
                buffers[step.outputs[0]] = state.read(ctx, step.node)
        if self._graph is None:
            # the feeds get fixed device buffers that later runs copy into
            self._feed_buffers = {slot: buffers[slot].copy() for _, slot in self.plan.feeds}
        for _, slot in self.plan.feeds:
            fixed = self._feed_buffers[slot]
            self.xp.copyto(fixed, buffers[slot])
            buffers[slot] = fixed
        addresses = tuple(id(b) for b in buffers)
        if self._graph is None or self._graph[0] != addresses:
            captured = buffers  # the buffer table the graph's launches use
            self._graph = (
                addresses,
                self._capture(
                    self.xp,
                    lambda: [
                        self._run_step(step, ctx, state, captured) for step in self.plan.steps
                    ],
                ),
                captured,
            )
        self._graph[1]()
        buffers[:] = self._graph[2]  # results sit where the graph wrote them

    def _run_steps(self, ctx, state, buffers):
        """Every step of the plan, eagerly, then the value checks still pending (every
        eager run goes through here, so that no check is left unread)."""
        self._checks.clear()
        try:
            for step in self.plan.steps:
                self._run_step(step, ctx, state, buffers)
            self._check_values()
        finally:
            self._checks.clear()

    def _run_step(self, step, ctx, state, buffers):
        if self._checks and (
            step.op in (ASSIGN, ASSIGN_ADD, ASSIGN_SUB)
            or step.index in self._host_steps
            or step.op in cupy_control.KERNELS  # (its bodies may update variables)
        ):
            self._check_values()  # before the run updates a variable or leaves the device
        try:
            self._dispatch(step, ctx, state, buffers)
        except GraphcError:
            raise
        except Exception as e:  # noqa: BLE001 - turned into an error naming the user's line
            src = step.sources[0] if step.sources else None
            shapes = ", ".join(
                f"{getattr(buffers[k], 'dtype', '?')}{tuple(getattr(buffers[k], 'shape', ()))}"
                for k in step.inputs
            )
            raise OpError(
                f"{step.describe()} failed on the cupy backend on inputs [{shapes}]: {e}",
                src.location if src is not None else None,
                node=src,
            ) from e

    def _dispatch(self, step, ctx, state, buffers):
        xp, op = self.xp, step.op
        ins = [buffers[k] for k in step.inputs]
        if step.kind == "read":
            buffers[step.outputs[0]] = state.read(ctx, step.node)
        elif step.index in self._launches:
            self._launch_all(step, buffers)
        elif op is MATMUL:
            a, b = ins
            a = xp.swapaxes(a, -1, -2) if step.attrs["transpose_a"] else a
            b = xp.swapaxes(b, -1, -2) if step.attrs["transpose_b"] else b
            out = buffers[step.outputs[0]]
            buffers[step.outputs[0]] = (
                xp.matmul(a, b, out=out) if out is not None else xp.matmul(a, b)
            )
        elif op in (ASSIGN, ASSIGN_ADD, ASSIGN_SUB):
            var = step.attrs["var"]
            if step.attrs.get("use_locking"):
                with state.locked(ctx, var):
                    result = self._update(op, ctx, state, var, ins[0])
            else:
                result = self._update(op, ctx, state, var, ins[0])
            self._set_outputs(step, buffers, result)
        elif op is NO_OP:
            pass
        elif op in LOWERINGS:
            planned = self._planned(step, buffers)
            result = LOWERINGS[op](xp, step.node, planned, *ins, **step.attrs)
            if result is not planned:
                self._set_outputs(step, buffers, result)
            self._queue_check(step, ins)
        elif step.index in self._state_lowered:
            planned = self._planned(step, buffers)
            fn = STATE_LOWERINGS[op][0]
            result = fn(xp, ctx, step.node, planned, *ins, **step.attrs)
            if result is not planned:
                self._set_outputs(step, buffers, result)
            self._queue_check(step, ins)
        elif op in cupy_control.KERNELS:  # the loop here, the bodies on the device
            runner = cupy_control.BodyRunner(self, ctx, state)
            self._set_outputs(
                step, buffers, cupy_control.KERNELS[op](runner, step.node, *ins, **step.attrs)
            )
        elif step.kind == "state":  # a host kernel reads and may write ctx.variables
            state.sync_all()
            self._run_on_host(step, ctx, buffers, ins)
            state.forget()
        else:
            self._run_on_host(step, ctx, buffers, ins)

    def _planned(self, step, buffers):
        """The planned buffer of a step with a single output, or None."""
        outs = step.outputs
        if len(outs) == 1 and self._slot(outs[0]).kind in ("arena", "scratch"):
            return buffers[outs[0]]
        return None

    def _update(self, op, ctx, state, var, value):
        """assign / assign_add / assign_sub of ``var`` on the device; its device array."""
        if op is ASSIGN:
            return state.assign(ctx, var, value)
        buf = state.read(ctx, var)
        (self.xp.add if op is ASSIGN_ADD else self.xp.subtract)(buf, value, out=buf)
        state.updated(var)
        return buf

    def _queue_check(self, step, ins):
        """Start ``step``'s value check on the device (``cupy_lowerings.CHECKS``), if it has
        one; ``_check_values`` reads it back."""
        check = cupy_lowerings.CHECKS.get(step.op)
        if check is not None:
            found = check(self.xp, step.node, *ins, **step.attrs)
            if found is not None:
                self._checks.append((step, *found))

    def _check_values(self):
        """Read back the pending value checks (one small copy each) and raise the first that
        failed, naming its step's user line."""
        pending, self._checks[:] = list(self._checks), []
        for step, summary, explain in pending:
            message = explain(self._download(summary))
            if isinstance(message, GraphcError):
                raise message
            if message is not None:
                src = step.sources[0] if step.sources else None
                raise OpError(
                    f"{step.describe()} failed on the cupy backend: {message}",
                    src.location if src is not None else None,
                    node=src,
                )

    def _launch_all(self, step, buffers):
        for launch, in_refs, out_refs in self._launches[step.index]:
            for kind, k in out_refs:
                if kind == "slot" and buffers[k] is None:  # an unplanned ("alloc") output
                    slot = self._slot(k)
                    buffers[k] = self.xp.empty(slot.shape, slot.dtype.np)
            arrays = [self.xp.ascontiguousarray(self._ref(r, buffers)) for r in in_refs]
            self._kernels.launch(launch, arrays + [self._ref(r, buffers) for r in out_refs])

    def _ref(self, ref, buffers):
        kind, k = ref
        return self._partials[k] if kind == "scratch" else buffers[k]

    def _run_on_host(self, step, ctx, buffers, ins):
        """The op's numpy kernel between a download and an upload (see the module rules)."""
        host = [self._download(a) for a in ins]
        if step.kind == "fused":
            self._set_outputs(step, buffers, _fused_on_host(step, host), upload=True)
            return
        fn = step.op.numpy
        result = (
            fn(ctx, step.node, *host, **step.attrs)
            if step.kind == "state"
            else fn(*host, **step.attrs)
        )
        self._set_outputs(step, buffers, result, upload=True)

    def _set_outputs(self, step, buffers, result, upload=False):
        results = result if isinstance(result, tuple) else (result,)
        for k, value in zip(step.outputs, results, strict=False):
            value = self.xp.asarray(value) if upload else value
            if buffers[k] is not None and self._slot(k).kind in ("arena", "scratch"):
                self.xp.copyto(buffers[k], value)
            else:
                buffers[k] = value


def _fused_on_host(step, inputs):
    """A fused body evaluated op by op with the numpy kernels; its outputs, in order."""
    values = []
    for f in step.body:
        args = [inputs[a] if kind == "in" else values[a] for kind, a in f.args]
        values.append(np.asarray(f.op.numpy(*args, **f.attrs)))
    outs = sorted((k, j) for j, (where, k) in enumerate(step.body_slots) if where == "out")
    return tuple(values[j] for _, j in outs)


def _cupyx(xp):
    """cupyx when ``xp`` is cupy, else None."""
    if getattr(xp, "__name__", "") != "cupy":
        return None
    import cupyx

    return cupyx


def _c_order(value):
    """``value`` as a C-ordered array of its own rank (np.ascontiguousarray makes 0-d 1-d)."""
    return np.asarray(value, order="C")


def _slots(indices):
    """Launch argument references to plan slots (the partials are ``("scratch", k)``)."""
    return tuple(("slot", k) for k in indices)


def _cupy_capture(xp, run):
    """Capture ``run()``'s GPU work as a CUDA Graph; returns a replayer.

    Capture needs a stream of its own (the legacy default stream cannot be captured), but
    nothing runs while capturing. The replay is launched on the caller's current stream, the
    one the feeds were just copied on and the fetches will be copied from, so it is ordered
    after the copies in and before the copies out under ``with cupy.cuda.Stream()`` and
    per-thread default streams alike, without a device-wide synchronisation."""
    side = xp.cuda.Stream(non_blocking=True)
    with side:
        side.begin_capture()
        run()
        graph = side.end_capture()

    def replay():
        graph.launch(xp.cuda.get_current_stream())

    return replay


def make_cupy_executable(plan, **options):
    """The session's entry point for ``backend="cupy"``. ``GRAPHC_CUDA_GRAPH=1`` makes every
    capturable plan replay as a CUDA Graph."""
    options.setdefault("cuda_graph", os.environ.get("GRAPHC_CUDA_GRAPH", "") not in ("", "0"))
    return CupyExecutable(plan, **options)


def executable(request):
    """The ``cupy`` backend's factory: the GPU runs plans at every level, even 0; the NaN
    trap (``check_numerics``) runs in the reference interpreter on the host."""
    if request.check_numerics:
        return ReferenceExecutable(
            request.fetch_tensors, request.fetch_ops, request.feeds, check=request.check
        )
    return make_cupy_executable(request.plan())
