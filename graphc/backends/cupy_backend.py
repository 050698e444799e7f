"""The cupy executor: the same Plan as the numpy backend, run on a GPU.

How a plan becomes GPU work:
  * the memory plan is ONE device allocation (the arena, plus the partials of two-pass
    reductions after it); every planned slot is a view into it;
  * fused groups and lone elementwise ops and reductions run as CUDA kernels that
    ``cuda_codegen`` generates from the ops' scalar expressions; all kernels of a plan are
    compiled together as one ``cupy.RawModule``, cached by source (the source holds the dtypes);
  * matmul goes to cuBLAS through ``xp.matmul(..., out=)``;
  * variables live on the device (``DeviceVariables``); assign/assign_add/assign_sub update
    them there. The session's host arrays stay the record the rest of graphc reads (Saver,
    ``get_variable``): a variable is uploaded when first read or when its host array was
    replaced, and the variables a run assigned are copied back into their host arrays;
  * feeds are copied in once per run, fetched values copied out;
  * an op with a device kernel in ``DEVICE_LOWERINGS`` (keyed by OpDef: the collectives
    of ``graphc.distributed``, NCCL on the current stream) runs it on the device buffers;
  * any other op (random draws, print, gather, conv…) runs its numpy kernel on the host
    between a download and an upload — correct everywhere, fast where it matters;
  * ``cuda_graph=True`` captures a run's device work as a CUDA Graph and replays it while the
    plan's buffers stay put (plans with host steps run eagerly).

The array module ``xp`` and the kernel compiler are parameters: cupy and ``CupyKernels`` by
default, imported lazily so CPU users never need cupy; tests pass numpy and the host
harness (``cuda_host.HostModule``) to run the whole orchestration on the CPU.
"""

from __future__ import annotations

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
from . import nccl
from .reference import ReferenceExecutable

ALIGN = 256                       # device allocations: cuBLAS and vector loads like 256 B


# This backend's lowering table for ops whose registry kernel is host code but which have a
# device kernel of their own, keyed by OpDef: ``kernel(xp, ctx, node, *device_arrays,
# **attrs)`` returns the outputs as device arrays (``register_device_lowering``).
# Ops with a device kernel of their own, keyed by OpDef: the collectives' NCCL calls.
DEVICE_LOWERINGS: dict = {**nccl.LOWERINGS}


def cupy_module():
    """cupy, imported on first use; a clear error when it (or a device) is missing."""
    try:
        import cupy
    except ImportError:
        raise GraphcError("backend='cupy' needs cupy: pip install graphc[gpu]") from None
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
    """A plan's kernels compiled with NVRTC as one ``cupy.RawModule``, cached by source."""

    _modules: dict = {}
    _lock = threading.Lock()

    def __init__(self, kernels):
        cupy = cupy_module()
        source = cg.module_source(kernels)
        with self._lock:
            module = self._modules.get(source)
            if module is None:
                module = self._modules[source] = cupy.RawModule(code=source,
                                                                options=("--std=c++17",))
        self._functions = {k.name: module.get_function(k.name) for k in kernels}

    def launch(self, launch: cg.Launch, arrays) -> None:
        fn = self._functions[launch.kernel.name]
        fn(launch.grid, (launch.block,), (*arrays, *(np.int64(s) for s in launch.scalars)))


# --- variables on the device -------------------------------------------------------------------

class DeviceVariables:
    """A session's variables on the device (see the module rules)."""

    def __init__(self, xp, download):
        self.xp = xp
        self.download = download
        self.device: dict = {}
        self.uploaded_from: dict = {}     # var -> the host array the device copy came from

    def read(self, ctx, var):
        host = ctx.variables.get(var)
        if host is None:
            VARIABLE.numpy(ctx, var, **var.attrs)      # raises the uninitialized error
        if self.uploaded_from.get(var) is not host:
            self.device[var] = self.xp.array(host, copy=True)
            self.uploaded_from[var] = host
        return self.device[var]

    def assign(self, ctx, var, value):
        host = ctx.variables.get(var)
        if host is None or host.shape != value.shape:      # first value, or a new shape
            dtype = var.outputs[0].dtype.np
            self.device[var] = self.xp.array(value, dtype=dtype, copy=True)
            host = ctx.variables[var] = np.array(self.download(value), dtype=dtype, copy=True)
            self.uploaded_from[var] = host
        else:                           # in place; the host copy follows in write_back
            self.xp.copyto(self.read(ctx, var), value)
        return self.device[var]

    def write_back(self, ctx, variables):
        """Copy the device values of ``variables`` into their host arrays, in place."""
        for var in variables:
            host = ctx.variables.get(var)
            if host is not None and self.uploaded_from.get(var) is host:
                np.copyto(host, self.download(self.device[var]))


_DEVICE_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def device_variables(ctx, xp, download) -> DeviceVariables:
    """The DeviceVariables of the session that owns ``ctx`` (one per array module)."""
    per_ctx = _DEVICE_STATE.setdefault(ctx, {})
    state = per_ctx.get(id(xp))
    if state is None:
        state = per_ctx[id(xp)] = DeviceVariables(xp, download)
    return state


# --- the executable ----------------------------------------------------------------------------

def _aligned(n):
    return -(-max(int(n), 1) // ALIGN) * ALIGN


class CupyExecutable:
    """Runs one Plan: ``exe(ctx, feeds)`` like the other executors, or ``exe.call(ctx,
    *feed_arrays)`` in the plan's feed order. Not re-entrant: one lock serialises runs (the
    GPU would serialise them anyway)."""

    def __init__(self, plan, xp=None, compile_kernels=None, cuda_graph=False, capture=None,
                 block=cg.BLOCK, max_grid=cg.MAX_GRID):
        self.plan = plan
        self._grid = {"block": block, "max_grid": max_grid}    # host tests launch small grids
        self.xp = xp if xp is not None else cupy_module()
        self._download = getattr(self.xp, "asnumpy", None) or (lambda a: np.array(a))
        self.feed_tensors = [t for t, _ in plan.feeds]
        self._lock = threading.Lock()
        self._launches: dict = {}          # step index -> [(Launch, input refs, output refs)]
        self._scratch: list = []           # (offset, nbytes, dtype, shape) after the arena
        self._host_steps = []
        self._written = []                 # variables that this plan's assigns update
        for step in plan.steps:
            self._prepare(step)
        kernels = [la.kernel for group in self._launches.values() for la, _, _ in group]
        if kernels:
            self._kernels = (compile_kernels or CupyKernels)(kernels)
        self._allocate()
        self._cuda_graph = cuda_graph and self._capturable()
        self._capture = capture or _cupy_capture
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
            else:                       # a user op without a scalar expression in the body
                self._host_steps.append(step.index)
            return
        known = step.kind in ("kernel", "alloc") and all(
            map(self._known, step.inputs + step.outputs))
        x = self._slot(step.inputs[0]) if step.inputs else None
        if known and op.kind == "elementwise" and isinstance(op.expr, str):
            group = cg.single_op_group(op, tuple(self._slot(k).dtype for k in step.inputs),
                                       self._slot(step.outputs[0]).dtype, step.attrs)
            self._launches[step.index] = [(self._ew_launch(group, step.outputs[0], step.inputs),
                                           _slots(step.inputs), _slots(step.outputs))]
        elif known and op in (BROADCAST_TO, BROADCAST_LIKE):      # a broadcasting copy
            group = cg.single_op_group(IDENTITY, (x.dtype,), x.dtype)
            self._launches[step.index] = [(self._ew_launch(group, step.outputs[0],
                                                           step.inputs[:1]),
                                           _slots(step.inputs[:1]), _slots(step.outputs))]
        elif known and (op is SUM_TO_LIKE or (op.kind == "reduction" and op.extra.get(
                "c_combine"))):
            axes = broadcast_axes(x.shape, self._slot(step.outputs[0]).shape) \
                if op is SUM_TO_LIKE else tuple(step.attrs["axis"])
            reduce = REDUCE_SUM if op is SUM_TO_LIKE else op
            group = cg.Group((x.dtype,), (), (), cg.Reduction(reduce, 0, axes))
            self._launches[step.index] = self._reduction(group, tuple(x.shape), step.inputs[:1],
                                                         step.outputs[0])
        elif op in (ASSIGN, ASSIGN_ADD, ASSIGN_SUB):
            self._written.append(step.attrs["var"])
        elif op not in (MATMUL, NO_OP, VARIABLE) and op not in DEVICE_LOWERINGS:
            self._host_steps.append(step.index)

    def _ew_launch(self, group, out_slot, in_slots):
        full = tuple(self._slot(out_slot).shape)
        return cg.elementwise_launch(group, full, [self._slot(k).shape for k in in_slots],
                                     **self._grid)

    def _reduction(self, group, full, in_slots, out_slot):
        launches, scratch, acc = cg.reduction_plan(group, full,
                                                   [self._slot(k).shape for k in in_slots],
                                                   **self._grid)
        if scratch is None:
            return [(launches[0], _slots(in_slots), _slots([out_slot]))]
        partials = (("scratch", len(self._scratch)),)
        self._scratch.append((None, int(np.prod(scratch)) * acc.itemsize, acc.np, scratch))
        return [(launches[0], _slots(in_slots), partials),
                (launches[1], partials, _slots([out_slot]))]

    def _fused_launches(self, step):
        """A fused step: one elementwise kernel for the values it materialises, and one
        reduction (over the materialised value when there is one) if the body ends in one."""
        body, n_in = step.body, len(step.inputs)
        red = body[-1] if body[-1].op.kind == "reduction" else None
        elementwise = body[:-1] if red is not None else body
        steps = tuple(cg.Step(f.op, tuple(a if kind == "in" else n_in + a for kind, a in f.args),
                              f.dtype, tuple(sorted(f.attrs.items(), key=lambda kv: kv[0])))
                      for f in elementwise)
        inputs = tuple(self._slot(k).dtype for k in step.inputs)
        outs = [(j, step.outputs[k]) for j, (w, k) in enumerate(step.body_slots)
                if w == "out" and (red is None or j < len(body) - 1)]
        launches = []
        if outs:
            group = cg.Group(inputs, steps, tuple(n_in + j for j, _ in outs))
            full = tuple(step.loop_shape)
            launch = cg.elementwise_launch(group, full, [self._slot(k).shape for k in step.inputs],
                                           **self._grid)
            launches.append((launch, _slots(step.inputs), _slots(s for _, s in outs)))
        if red is not None:
            (kind, arg), = red.args
            red_out = step.outputs[step.body_slots[-1][1]]
            axes = tuple(red.attrs["axis"])
            materialised = dict(outs).get(arg) if kind == "op" else None
            if kind == "in" or materialised is not None:      # reduce a buffer directly
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
        offset = _aligned(plan.arena_bytes)      # intermediates, then fetched results
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
        return self._arena[offset:offset + nbytes].view(dtype).reshape(shape)

    def _capturable(self):
        """Whether a run is pure device work into buffers that stay put (a CUDA Graph replays
        fixed addresses and cannot allocate): no host steps, and every kernel and matmul
        writes into the arena."""
        if self._host_steps:
            return False
        for step in self.plan.steps:
            computes = step.index in self._launches or step.op is MATMUL
            if computes and any(self._slot(k).kind != "arena" for k in step.outputs):
                return False
        return True

    # -- running ------------------------------------------------------------------------------
    def __call__(self, ctx, feeds: dict):
        return self.call(ctx, *[feeds[t] for t in self.feed_tensors])

    def call_traced(self, ctx, feeds: dict):
        raise GraphcError("trace= is not available on the cupy backend yet: trace the same "
                          "fetches with backend='numpy'")

    def call(self, ctx, *feed_arrays):
        with self._lock:
            state = device_variables(ctx, self.xp, self._download)
            buffers = list(self._base)
            for (_, slot), value in zip(self.plan.feeds, feed_arrays, strict=True):
                buffers[slot] = self.xp.asarray(_c_order(value))
            if self._cuda_graph and self._eager_runs:     # the first run warms up (cuBLAS…)
                self._run_graph(ctx, state, buffers)
            else:
                for step in self.plan.steps:
                    self._run_step(step, ctx, state, buffers)
                self._eager_runs += 1
            state.write_back(ctx, self._written)
            return [np.array(self._download(buffers[k]), copy=True) for k in self.plan.fetches]

    def _run_graph(self, ctx, state, buffers):
        """Replay the captured run; (re)capture when a feed or variable buffer moved."""
        for step in self.plan.steps:                 # resolve variable buffers first
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
            captured = buffers                   # the buffer table the graph's launches use
            self._graph = (addresses, self._capture(self.xp, lambda: [
                self._run_step(step, ctx, state, captured) for step in self.plan.steps]),
                captured)
        self._graph[1]()
        buffers[:] = self._graph[2]              # results sit where the graph wrote them

    def _run_step(self, step, ctx, state, buffers):
        try:
            self._dispatch(step, ctx, state, buffers)
        except GraphcError:
            raise
        except Exception as e:  # noqa: BLE001 - turned into an error naming the user's line
            src = step.sources[0] if step.sources else None
            shapes = ", ".join(f"{getattr(buffers[k], 'dtype', '?')}"
                               f"{tuple(getattr(buffers[k], 'shape', ()))}" for k in step.inputs)
            raise OpError(f"{step.describe()} failed on the cupy backend on inputs [{shapes}]: "
                          f"{e}", src.location if src is not None else None, node=src) from e

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
            buffers[step.outputs[0]] = xp.matmul(a, b, out=out) if out is not None else \
                xp.matmul(a, b)
        elif op is ASSIGN:
            result = state.assign(ctx, step.attrs["var"], ins[0])
            self._set_outputs(step, buffers, result)
        elif op in (ASSIGN_ADD, ASSIGN_SUB):
            var = state.read(ctx, step.attrs["var"])
            (xp.add if op is ASSIGN_ADD else xp.subtract)(var, ins[0], out=var)
            self._set_outputs(step, buffers, var)
        elif op is NO_OP:
            pass
        elif op in DEVICE_LOWERINGS:          # a registered device kernel (NCCL collectives)
            fn = DEVICE_LOWERINGS[op]
            self._set_outputs(step, buffers, fn(xp, ctx, step.node, *ins, **step.attrs))
        else:
            self._run_on_host(step, ctx, buffers, ins)

    def _launch_all(self, step, buffers):
        for launch, in_refs, out_refs in self._launches[step.index]:
            for kind, k in out_refs:
                if kind == "slot" and buffers[k] is None:       # an unplanned ("alloc") output
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
        result = fn(ctx, step.node, *host, **step.attrs) if step.kind == "state" else \
            fn(*host, **step.attrs)
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


def _c_order(value):
    """``value`` as a C-ordered array of its own rank (np.ascontiguousarray makes 0-d 1-d)."""
    return np.asarray(value, order="C")


def _slots(indices):
    """Launch argument references to plan slots (the partials are ``("scratch", k)``)."""
    return tuple(("slot", k) for k in indices)


def _cupy_capture(xp, run):
    """Capture ``run()``'s GPU work on a side stream as a CUDA Graph; returns a replayer."""
    stream = xp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        run()
        graph = stream.end_capture()

    def replay():
        # the feeds were copied on the default stream, which a non-blocking stream ignores
        xp.cuda.Stream.null.synchronize()
        graph.launch(stream)
        stream.synchronize()
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
        return ReferenceExecutable(request.fetch_tensors, request.fetch_ops, request.feeds,
                                   check=request.check)
    return make_cupy_executable(request.plan())
