"""The numpy executor: straight-line Python generated from a Plan, compiled once.

One generated statement per kernel call: ``out=`` into views of a preallocated arena, so a
run allocates no intermediates; fused groups loop over cache-sized tiles; variables are
updated in place by their kernels; fetched results are copied out, so a caller never holds
a buffer that the next run overwrites. Identifiers in the source are generated from slot
and step numbers (``s12``, ``k3_1``), never from user names.

A long plan is written as several functions, each compiled on its own (``_Chunks``): the
time CPython takes to compile them stays linear in the plan.

Each thread gets its own arena (threads may run one session concurrently). A failing
kernel is found after the fact from the traceback's line in the generated source, so the
hot path carries no per-kernel ``try``.

Every op runs its OpDef's ``numpy`` kernel unless ``LOWERINGS`` (keyed by OpDef) holds a
faster one. Everything the generated source names is a named function or plain data, so
``--emit py`` (``standalone.py``) writes this same source out with what it names."""

from __future__ import annotations

import functools
import itertools
import math
import mmap
import os
import re
import threading
import time
import weakref

import numpy as np

from ..diagnostics import NumericsTrap
from ..errors import GraphcError, OpError
from ..ops import elementwise as E
from ..ops.array import (
    CONCAT,
    EXPAND_DIMS,
    RESHAPE,
    SPLIT,
    SPLIT_LIKE,
    SQUEEZE,
    TRANSPOSE,
)
from ..ops.linalg import MATMUL
from ..ops.reduce import REDUCE_MAX, REDUCE_MEAN, REDUCE_MIN, REDUCE_SUM
from ..ops.state import ASSIGN, ASSIGN_ADD, ASSIGN_SUB, NO_OP, VARIABLE
from . import conv_cpu, gemm_cpu, host_compile
from .reference import ReferenceExecutable

# How a fused reduction that spans the tiled axis combines per-tile partial results.
_ACCUMULATE = {
    REDUCE_SUM: (np.add, 0.0),
    REDUCE_MEAN: (np.add, 0.0),
    REDUCE_MAX: (np.maximum, -np.inf),
    REDUCE_MIN: (np.minimum, np.inf),
}

# 0-d float values: Python operators on numpy scalars give the ufunc's exact float result
# at a fraction of a ufunc call's cost (a scalar SGD step is all 0-d arithmetic).
_SCALAR_EXPR = {
    E.ADD: "({0} + {1})",
    E.SUBTRACT: "({0} - {1})",
    E.MULTIPLY: "({0} * {1})",
    E.NEG: "(-{0})",
    E.SQUARE: "({0} * {0})",
    E.DIVIDE: "({0} / {1})",
}

# Variable updates run inline on the variable's buffer: the kernel's lookup and call, minus
# the Python frames (an unset variable still fails in the lookup, and is reported as such).
_INLINE_UPDATE = {ASSIGN_ADD: "np.add", ASSIGN_SUB: "np.subtract"}

# Shape ops whose result is a view of a C-contiguous input: over an arena buffer (fixed for
# a thread's arena), they run once per thread, when the arena is made, not on every run.
_VIEW_OPS = frozenset({RESHAPE, SQUEEZE, EXPAND_DIMS, SPLIT, TRANSPOSE})
# numpy's squeeze and expand_dims keep C order; reshape copies an input that is not in C order
# (a transpose's or a split's view), so it may view in ARENA() only C-ordered buffers
_KEEP_C_ORDER = frozenset({RESHAPE, SQUEEZE, EXPAND_DIMS})

_serial = itertools.count()

# Fused steps of at least this many elements run as compiled loops (host_compile) when a
# C++ compiler is available; smaller ones cost less as a few ufunc calls than a ctypes call.
_CC_MIN_ELEMS = int(os.environ.get("GRAPHC_CC_MIN_ELEMS", "256"))
_USE_CC = host_compile.unavailable_reason() is None


def _select(c, a, b, out=None):
    """``where(c, a, b)`` as a branch-free bitwise blend: ``(a & m) | (b & ~m)`` on the values'
    bits, with ``m`` all ones where ``c``. Exact for every value (NaN, Inf, -0.0 included) and
    several times faster than a masked copy when ``c`` is unpredictable (a ReLU's gradient)."""
    if out is None:
        return np.where(c, a, b)
    ints = np.dtype(f"i{out.dtype.itemsize}")
    c, a = np.asarray(c), np.asarray(a)
    bits = np.asarray(b).view(ints)
    if (
        c.dtype == np.bool_
        and bits.size == 1
        and bits.reshape(())[()] == 0
        and not np.may_share_memory(a, out)
        and not np.may_share_memory(c, out)
    ):
        # where(c, a, 0) (a ReLU's gradient): the mask is built in ``out`` itself, as
        # -c (0 or all ones); a temporary of out's size would cost a pass and page faults
        o = out.view(ints)
        np.negative(c.view(np.int8), out=o, casting="unsafe")
        np.bitwise_and(a.view(ints), o, out=o)
        return out
    m = c.astype(ints)
    np.negative(m, out=m)
    o = out.view(ints)
    np.bitwise_and(a.view(ints), m, out=o)
    if bits.size != 1 or bits.reshape(())[()] != 0:  # b == +0.0 adds nothing
        np.invert(m, out=m)
        np.bitwise_or(o, np.bitwise_and(bits, m), out=o)
    return out


# Reductions straight through ``ufunc.reduce`` (what np.sum / np.max call, minus the Python
# wrapper: a few microseconds per call on small tensors).
def _add_reduce(x, axis, keepdims, out=None, **_):
    return np.add.reduce(x, axis=axis, dtype=x.dtype, keepdims=keepdims, out=out)


def _max_reduce(x, axis, keepdims, out=None, **_):
    return np.maximum.reduce(x, axis=axis, dtype=x.dtype, keepdims=keepdims, out=out)


def _min_reduce(x, axis, keepdims, out=None, **_):
    return np.minimum.reduce(x, axis=axis, dtype=x.dtype, keepdims=keepdims, out=out)


def _mean_reduce(x, axis, keepdims, out=None, **_):
    if x.dtype.kind != "f":  # as the registry kernel: numpy's mean, in x's dtype
        r = np.mean(x, axis=axis, keepdims=keepdims).astype(x.dtype)
        if out is None:
            return r
        out[...] = r
        return out
    # np.mean's own steps for floats: a sum in x's dtype, then one true division
    out = np.add.reduce(x, axis=axis, dtype=x.dtype, keepdims=keepdims, out=out)
    count = int(np.prod([x.shape[a] for a in axis])) if x.ndim else 1
    return np.true_divide(out, count, out=out, casting="unsafe")


# This backend's lowering table, keyed by OpDef: the kernels it runs in place of an op's
# registry kernel (same results, faster). Every other op runs its OpDef's own ``numpy``.
LOWERINGS = {
    E.WHERE: _select,
    REDUCE_SUM: _add_reduce,
    REDUCE_MAX: _max_reduce,
    REDUCE_MIN: _min_reduce,
    REDUCE_MEAN: _mean_reduce,
}


def register_lowering(opdef, kernel) -> None:
    """Run ``kernel`` (a named module-level function, so ``--emit py`` can carry it) for
    ``opdef`` in numpy plans; it takes the registry kernel's arguments and ``out=``."""
    LOWERINGS[opdef] = kernel


class _Source:
    """Lines of generated Python, remembering which step (and fused body op) each runs."""

    def __init__(self):
        self.lines: list[str] = []
        self.where: dict[int, tuple] = {}  # 1-based line number -> (step, body op or None)
        self.split = False  # compiled one function at a time (see units)

    def emit(self, text, step=None, body=None):
        self.lines.append(text)
        if step is not None:
            self.where[len(self.lines)] = (step, body)

    def units(self) -> list[tuple[int, int]]:
        """The ``[start, stop)`` line ranges to compile separately: each function of a
        chunked plan (one ``compile`` of a whole large module costs more than of its parts),
        else everything at once."""
        if not self.split:
            return [(0, len(self.lines))]
        starts = [i for i, line in enumerate(self.lines) if line.startswith("def ")]
        starts[0] = 0
        return list(zip(starts, starts[1:] + [len(self.lines)], strict=True))


def _kernel(op, attrs, compiled=False):
    fn = LOWERINGS.get(op, op.numpy)
    if compiled and op in conv_cpu.KERNELS:  # direct convolutions and pooling, compiled
        conv_cpu.request()
        fn = conv_cpu.KERNELS[op]
    if compiled and op is MATMUL:  # narrow float32 products, compiled (gemm_cpu.plan)
        gemm_cpu.request()
        return functools.partial(gemm_cpu.matmul, **attrs)
    if op is MATMUL and not attrs["transpose_a"] and not attrs["transpose_b"]:
        return np.matmul
    return functools.partial(fn, **attrs) if attrs else fn


class _Generator:
    def __init__(self, plan, trap=None, compiled_loops=None):
        self.plan = plan
        self.trap = trap  # a diagnostics.NumericsTrap, or None
        # fused steps as host_compile loops (False: numpy tiles only, e.g. for source that
        # is written out and run elsewhere)
        if compiled_loops is None:  # GRAPHC_NO_CC may be set after import
            compiled_loops = _USE_CC and host_compile.compiler() is not None
        self.compiled_loops = compiled_loops
        self.ns: dict = {"np": np}
        self.per_thread: list[str] = []  # names bound per thread (arena views, tiles)
        self._per_thread_set: set[str] = set()  # ... as a set (a list lookup is O(slots))
        self._tiles: dict = {}  # tile-table name -> (step, names in each tile)
        # 0-d float values already held in a local (feed or arena slot -> the local's name):
        # a later scalar step reads the local instead of the slot (see _lines_of)
        self._known: dict = {}
        self._known_by_step: dict = {}  # step index -> the slots it remembered
        self.compiled: dict = {}  # step index -> host_compile.FusedKernel
        self._folded: set = set()  # assign steps run by the fused step before them
        # fused updates run by one loop with the updates before them (_chain_lines): step
        # index -> the chain's table index c (they run only when ``D<c>`` is False), and
        # c -> the slots of that loop's pointer table
        self._chained: dict = {}
        self._chain_arrays: dict = {}
        self._reader_count = None  # slot index -> steps reading it (see _readers)
        # fused outputs written straight into a concat's buffer: slot -> (concat's output
        # slot, index of the part); concat step index -> [(position, index)] left to copy
        self._part_of: dict = {}
        self._concat_copies: dict = {}
        # views of arena buffers made once per thread, in ARENA(): (line, the slots it
        # binds, the slots it reads)
        self._arena_views: list = []
        self._viewed: set = set()  # ... the slots they bind
        self._viewed_c_order: set = set()  # ... those known to be in C order
        # compiled steps' numpy fallbacks shared by structure (see _shared_fallback):
        # canonical lines -> function name, and the functions' lines
        self._fallbacks: dict = {}
        self._fallback_defs: list = []

    def generate(self, entries=("run", "run_traced")) -> _Source:
        """The source of the entry functions (``run(ctx, *feeds)`` and the traced variant
        ``run_traced(ctx, TR, *feeds)``; ``run_views`` returns the results that live in the
        arena as views of it, uncopied: a loop body's, which the loop reads before the arena's
        next run) and of ``ARENA()``; what they name is in ``ns``. ``emit_entry`` adds an
        entry later (the executor compiles ``run_traced`` on its first traced run)."""
        plan = self.plan
        for s in plan.slots:
            if s.kind == "const":
                self.ns[f"s{s.index}"] = s.value
        src = _Source()
        if self.trap is None:  # the NaN trap checks each fused output in its own buffer
            self._find_concat_parts()
        body_lines = [self._lines_of(step) for step in plan.steps]
        if self.trap is not None:  # check_numerics: a check after each step, nothing otherwise
            self.ns["CK"] = self.trap
            body_lines = [
                self.trap.wrap(s, lines) for s, lines in zip(plan.steps, body_lines, strict=True)
            ]
        self.body_lines = body_lines
        self.chunks = _Chunks(self, body_lines) if _needs_chunks(body_lines) else None
        src.split = self.chunks is not None
        for entry in entries:
            self.emit_entry(src, entry)
        if self.chunks is None:
            self._emit_arena(src)
        else:
            self.chunks.emit_arena(src)
        for lines in self._fallback_defs:
            src.emit("")
            src.emit(lines[0][0])
            for text, body in lines[1:]:
                src.emit(text, SHARED, body)
        self.ns["clock"] = time.perf_counter
        return src

    def emit_entry(self, src, entry):
        """``run`` or ``run_traced`` (which appends ``clock()`` to ``TR`` before the first
        step and after each) into ``src``."""
        if self.chunks is not None:
            self.chunks.emit_entry(src, entry)
            return
        # each thread runs on its own arena: its views (and tile tables) are unpacked from a
        # thread-local tuple on entry; a failing kernel is reported by FAIL, which finds its
        # step from the line (a try costs nothing until something raises)
        plan = self.plan
        views = ", ".join(self.per_thread) + ("," if len(self.per_thread) == 1 else "")
        traced = entry == "run_traced"
        params = ["ctx"] + (["TR"] if traced else []) + [f"s{k}" for _, k in plan.feeds]
        src.emit(f"def {entry}({', '.join(params)}):")
        if views:
            src.emit("    try:")
            src.emit(f"        {views} = LOCAL.views")
            src.emit("    except AttributeError:")
            src.emit(f"        {views} = LOCAL.views = ARENA()")
        src.emit("    try:")
        src.emit("        V = ctx.variables")
        if traced:
            src.emit("        TR.append(clock())")
        for step, lines in zip(plan.steps, self.body_lines, strict=False):
            for text, body in lines:
                src.emit("        " + text, step.index, body)
            if traced:
                src.emit("        TR.append(clock())")
        src.emit("        return [" + self._copy_out_list(entry == "run_views") + "]")
        _emit_handlers(src)

    def _emit_arena(self, src):
        """``ARENA()``: one thread's arena, as the tuple of views (and tile tables) that the
        entry functions unpack, in ``per_thread`` order."""
        src.emit("")
        src.emit("def ARENA():")
        src.emit(f"    arena = {self._arena_alloc()}")
        for line in self._arena_lines(None):
            src.emit("    " + line)
        src.emit("    return (" + "".join(f"{v}, " for v in self.per_thread) + ")")

    def _arena_alloc(self) -> str:
        n = max(self.plan.arena_bytes, 1)
        return f"arena_buffer({n})" if self.compiled_loops else f"np.empty({n}, np.uint8)"

    def _arena_lines(self, wanted, part=None):
        """The lines binding the per-thread names in ``wanted`` (a list; None: all of
        them) and what they are made of, from ``arena``: slot views (a concat's parts as
        views of its buffer), views of them made by shape ops, concat parts to copy, tile
        tables, then pointer tables. With ``part`` (a chunked plan's part number), the
        slot views are made by one ``arena_views`` call (bound as ``make_views``) from a
        table bound as ``AV<part>``: data, not source for Python to compile."""
        plan, lines = self.plan, []
        if wanted is None:
            tiles, tables, slots = list(self._tiles), list(self.compiled), plan.slots
            parts, made, copies = list(self._part_of), self._arena_views, self._concat_copies
        else:
            tiles, tables, slots, parts, made, copies = self._arena_needs(wanted)
        slots = [s for s in slots if s.kind in ("arena", "scratch")]
        if part is not None and slots:
            table = tuple(
                (s.offset, s.offset + s.nbytes, _dtype_name(s.dtype), tuple(s.shape)) for s in slots
            )
            # (bound under another name than its own: ``--emit py`` binds the generated
            # code's names as locals of a function, next to the carried function itself)
            self._bind("make_views", arena_views)
            names = "".join(f"s{s.index}, " for s in slots)
            lines.append(f"{names}= make_views(arena, {self._bind(f'AV{part}', table)})")
        else:
            for s in slots:
                lines.append(
                    f"s{s.index} = arena[{s.offset}:{s.offset + s.nbytes}]"
                    f".view({_dtype_name(s.dtype)!r}).reshape({tuple(s.shape)!r})"
                )
        for k in parts:  # (after every slot: the concat's buffer may come later)
            out, key = self._part_of[k]
            lines.append(f"s{k} = s{out}[{key}]")
        lines += [line for line, _, _ in made]
        for i, cs in copies.items():
            out = self.plan.steps[i].outputs[0]
            for p, key in cs:
                lines.append(f"cv{i}_{p} = s{out}[{key}]")
        for name in tiles:
            step, tile_vars = self._tiles[name]
            outs = self._out_names(step)
            held = "".join(f"{v}, " for v in tile_vars)
            whole = "".join(f"{v in outs}, " for v in tile_vars)
            lines.append(
                f"{name} = tiles({step.loop_shape[0]}, {step.tile_rows}, ({held}), ({whole}))"
            )
        lines += self._pointer_table_lines(tables, part)
        return lines

    def _arena_needs(self, wanted):
        """What ``ARENA_part`` makes for the per-thread names ``wanted``: (tiles, pointer
        tables, slots viewed, concat parts, shape-op views, concat copies), each with what
        it is made of, in ``ARENA()``'s order."""
        plan = self.plan
        tiles = [t for t in wanted if t[0] == "T"]
        tables = sorted({int(t[1:]) for t in wanted if t[0] in "PQ"})
        copy_steps = sorted({int(t[2:].split("_")[0]) for t in wanted if t.startswith("cv")})
        want = {int(v[1:]) for v in wanted if v[0] == "s"}
        for name in tiles:
            want.update(int(v[1:]) for v in self._tiles[name][1])
        for i in tables:
            want.update(k for k in self._table_arrays(i) if plan.slots[k].kind == "arena")
        want.update(plan.steps[i].outputs[0] for i in copy_steps)
        if self._arena_views and not hasattr(self, "_made_by"):
            self._made_by = {k: j for j, (_, outs, _) in enumerate(self._arena_views) for k in outs}
        made_by = getattr(self, "_made_by", {})
        views, parts, made, stack = set(), set(), set(), list(want)
        while stack:  # a slot's view, and what that view is made of
            k = stack.pop()
            if k in self._part_of:
                if k not in parts:
                    parts.add(k)
                    stack.append(self._part_of[k][0])
            elif k in made_by:
                if made_by[k] not in made:
                    made.add(made_by[k])
                    stack.extend(self._arena_views[made_by[k]][2])
            else:
                views.add(k)
        return (
            tiles,
            tables,
            [plan.slots[k] for k in sorted(views)],
            [k for k in self._part_of if k in parts],
            [self._arena_views[j] for j in sorted(made)],
            {i: self._concat_copies[i] for i in copy_steps},
        )

    # -- pieces ----------------------------------------------------------------------------
    def _copy_out_list(self, views=False):
        return ", ".join(self._copy_out(i, views) for i in self.plan.fetches)

    def _copy_out(self, slot_index, views=False):
        kind = self.plan.slots[slot_index].kind
        if views and kind == "arena":
            return f"s{slot_index}"
        return f"array(s{slot_index})" if kind == "dynamic" else f"s{slot_index}.copy()"

    def _bind_per_thread(self, name):
        if name not in self._per_thread_set:
            self._per_thread_set.add(name)
            self.per_thread.append(name)

    def _bind(self, name, value):
        self.ns[name] = value
        return name

    def _lines_of(self, step):
        """The step's lines. A scalar step keeps the 0-d values it reads and writes in locals
        for the steps after it (a local read is ~1/10 of a 0-d array read); every other
        write to a slot forgets its local. A straight-line run makes this safe: a slot's
        value changes only where a step writes it, and a variable's buffer is never
        remembered (its updates write it in place)."""
        lines = self._step_lines(step)
        if step.index in self._chained:  # run by the chain's loop, unless it did not run
            lines = [(f"if not D{self._chained[step.index]}:", None)] + [
                ("    " + text, body) for text, body in lines
            ]
        written = self._known_by_step.pop(step.index, ())
        for k in step.outputs:
            if k not in written:
                self._known.pop(k, None)
        return lines

    def _remember(self, step, slot_index, local):
        """``local`` holds the current value of the 0-d feed or arena slot ``slot_index``."""
        if self.trap is None and self.plan.slots[slot_index].kind in ("feed", "arena"):
            self._known[slot_index] = local
            self._known_by_step.setdefault(step.index, set()).add(slot_index)

    def _step_lines(self, step):
        i = step.index
        ins = ", ".join(f"s{k}" for k in step.inputs)
        outs = [f"s{k}" for k in step.outputs]
        for k, slot in zip(step.outputs, (self.plan.slots[o] for o in step.outputs), strict=False):
            if slot.kind in ("arena", "scratch"):
                self._bind_per_thread(f"s{k}")
        if step.kind == "read":
            self._bind(f"n{i}", step.node)
            return [(f"{outs[0]} = V[n{i}]", None)]
        if step.kind == "fused":
            return self._compiled_lines(step, self._fused_lines(step))
        if step.index in self._folded:
            return [("pass", None)]  # the fused step before it stored the variable
        if step.index in self._concat_copies:
            return self._concat_lines(step)
        if self._view_of_arena(step):
            k = self._bind(f"k{i}", _kernel(step.op, step.attrs))
            self._arena_views.append(
                (f"{', '.join(outs)}, = as_tuple({k}({ins}))", step.outputs, step.inputs)
            )
            for name in outs:
                self._bind_per_thread(name)
            self._viewed.update(step.outputs)
            if step.op in _KEEP_C_ORDER and all(self._c_order(k) for k in step.inputs):
                self._viewed_c_order.update(step.outputs)
            return [("pass", None)]
        scalar = self._all_scalar_float(step)
        if step.kind == "kernel" and scalar and step.op in _SCALAR_EXPR:
            args = [self._scalar_ref(k) for k in step.inputs]
            self._remember(step, step.outputs[0], f"v{i}")
            return [(f"v{i} = {_SCALAR_EXPR[step.op].format(*args)}; {outs[0]}[()] = v{i}", None)]
        if step.kind == "kernel":
            k = self._bind(f"k{i}", _kernel(step.op, step.attrs, self.compiled_loops))
            sep = ", " if ins else ""
            return [(f"{k}({ins}{sep}out={outs[0]})", None)]
        if step.op is NO_OP:
            return [("pass", None)]  # it exists for its control edges, already honoured
        if (
            step.kind == "state"
            and step.op in _INLINE_UPDATE
            and len(outs) == 1
            and not step.attrs.get("use_locking")
        ):  # a locked update runs its kernel
            var = self._bind(f"n{i}", step.attrs["var"])
            if scalar:
                sign = "+" if step.op is ASSIGN_ADD else "-"
                return [
                    (
                        f"{outs[0]} = V[{var}]; {outs[0]}[()] = {outs[0]}[()] {sign} "
                        f"{self._scalar_ref(step.inputs[0])}",
                        None,
                    )
                ]
            return [
                (
                    f"{outs[0]} = V[{var}]; {_INLINE_UPDATE[step.op]}({outs[0]}, {ins}, "
                    f"out={outs[0]})",
                    None,
                )
            ]
        if step.kind == "state":
            self._bind(f"n{i}", step.node)
            k = self._bind(f"k{i}", _kernel(step.op, step.attrs))
            call = f"{k}(ctx, n{i}{', ' if ins else ''}{ins})"
        else:
            k = self._bind(f"k{i}", _kernel(step.op, step.attrs, self.compiled_loops))
            call = f"{k}({ins})"
        if not outs:
            return [(call, None)]
        if len(outs) == 1:
            # a kernel returns its array, or a tuple of them (as call_kernel accepts)
            return [(f"{outs[0]}, = as_tuple({call})", None)]
        return [(f"{', '.join(outs)}, = {call}", None)]

    def _all_scalar_float(self, step) -> bool:
        """Whether every value the step touches is a 0-d float (see _SCALAR_EXPR)."""
        slots = [self.plan.slots[k] for k in step.inputs + step.outputs]
        return bool(slots) and all(s.shape == () and s.dtype.is_floating for s in slots)

    def _scalar_ref(self, slot_index) -> str:
        """A 0-d input as a numpy scalar: constants are bound as scalars once, and a value
        an earlier scalar step left in a local is read from there."""
        s = self.plan.slots[slot_index]
        if slot_index in self._known:
            return self._known[slot_index]
        if s.kind == "const":
            return self._bind(f"c{slot_index}", s.value[()])
        return f"s{slot_index}[()]"

    def _scalar_lines(self, step):
        """A fused body over 0-d float values, as Python expressions on numpy scalars."""
        i, lines, names, ins = step.index, [], [], []
        for k, slot in enumerate(step.inputs):
            s = self.plan.slots[slot]
            if slot in self._known:
                ins.append(self._known[slot])
                continue
            ins.append(f"a{i}_{k}")
            if s.kind == "const":  # a constant is a numpy scalar from the start
                self._bind(f"a{i}_{k}", s.value[()])
            else:
                lines.append((f"a{i}_{k} = s{slot}[()]", None))
                self._remember(step, slot, f"a{i}_{k}")
        for j, (fop, (w, s)) in enumerate(zip(step.body, step.body_slots, strict=True)):
            args = [ins[a] if kind == "in" else names[a] for kind, a in fop.args]
            expr = _SCALAR_EXPR.get(fop.op)
            if expr is None:
                k = self._bind(f"k{i}_{j}", _kernel(fop.op, fop.attrs))
                expr = f"{k}({', '.join(args)})"
            else:
                expr = expr.format(*args)
            names.append(f"v{i}_{j}")
            lines.append((f"v{i}_{j} = {expr}", j))
            if w == "out":
                lines.append((f"s{step.outputs[s]}[()] = v{i}_{j}", j))
                if fop.op in _SCALAR_EXPR:  # a kernel's result may differ from the slot's dtype
                    self._remember(step, step.outputs[s], f"v{i}_{j}")
        return lines

    def _fused_lines(self, step):
        i, plan = step.index, self.plan
        if not step.loop_shape and all(f.dtype.is_floating for f in step.body):
            return self._scalar_lines(step)
        loop = step.loop_shape
        n0 = loop[0] if loop else 1
        tiled = bool(loop) and step.tile_rows < n0
        rank = len(loop)
        in_shapes = [plan.slots[k].shape for k in step.inputs]
        sliced = [tiled and s is not None and len(s) == rank and s[0] == n0 for s in in_shapes]
        lines = []
        last = len(step.body) - 1
        red = step.body[last].op if step.body[last].op.kind == "reduction" else None
        acc = red is not None and tiled and 0 in step.body[last].attrs["axis"]
        red_out = f"s{step.outputs[step.body_slots[last][1]]}" if red is not None else None
        tile_vars = []  # per-tile names bound in the tile tuple
        for w, s in step.body_slots:
            name = f"s{step.outputs[s]}" if w == "out" else f"s{s}"
            if w == "out" or tiled:
                tile_vars.append(name)
        tile_vars = list(dict.fromkeys(tile_vars))
        if not tiled:  # one tile: scratch is the whole slot, bound like any arena view
            for w, s in step.body_slots:
                if w == "scratch":
                    self._bind_per_thread(f"s{s}")
        if acc:
            tile_vars.remove(red_out)
            combine, init = _ACCUMULATE[red]
            lines.append((f"{red_out}.fill({self._bind(f'z{i}', init)})", None))
        if tiled:
            tiles = f"T{i}"
            self.per_thread.append(tiles)
            self._tiles[tiles] = (step, tile_vars)
            lines.append((f"for i, j, {', '.join(f't_{v}' for v in tile_vars)} in {tiles}:", None))
            indent = "    "
        else:
            indent = ""

        def ref(v):
            return f"t_{v}" if tiled and v in tile_vars else v

        for k, is_sliced in enumerate(sliced):
            if is_sliced:
                lines.append((f"{indent}x{k} = s{step.inputs[k]}[i:j]", None))
        names = []
        for j, (fop, (w, s)) in enumerate(zip(step.body, step.body_slots, strict=False)):
            args = []
            for kind, a in fop.args:
                if kind == "in":
                    args.append(f"x{a}" if sliced[a] else f"s{step.inputs[a]}")
                else:
                    args.append(names[a])
            target = f"s{step.outputs[s]}" if w == "out" else f"s{s}"
            names.append(ref(target))
            if j == last and acc:
                attrs = dict(fop.attrs)
                partial = REDUCE_SUM if red is REDUCE_MEAN else red  # a mean divides at the end
                k = self._bind(f"k{i}_{j}", _kernel(partial, attrs))
                comb = self._bind(f"c{i}", combine)
                lines.append((f"{indent}{comb}({target}, {k}({args[0]}), out={target})", j))
                continue
            k = self._bind(f"k{i}_{j}", _kernel(fop.op, fop.attrs))
            lines.append((f"{indent}{k}({', '.join(args)}, out={ref(target)})", j))
        if acc and red is REDUCE_MEAN:
            src_shape = step.loop_shape
            count = math.prod([src_shape[a] for a in step.body[last].attrs["axis"]])
            lines.append((f"np.true_divide({red_out}, {count}, out={red_out})", last))
        return lines

    def _compiled_lines(self, step, lines):
        """A fused step as one compiled loop (host_compile) once its library is loaded, its
        numpy tiles until then (or for good, without a compiler). ``P<i>`` holds the
        kernel's pointers and sizes; fed, variable and run-time inputs are stored into it
        on every run, arena and constant ones once per thread."""
        i, plan = step.index, self.plan
        if (
            self.trap is not None
            or not step.loop_shape
            or not self.compiled_loops
            or math.prod(step.loop_shape) < _CC_MIN_ELEMS
        ):
            return lines
        update = self._update_after(step)
        store = {ASSIGN: "=", ASSIGN_SUB: "-", ASSIGN_ADD: "+"}[update.op] if update else ""
        views = self._views_read(step)
        kernel = host_compile.fused_kernel(
            step, plan.slots, store, {a: v for a, (v, _) in views.items()}, self._out_views(step)
        )
        if kernel is None:
            return lines
        self.compiled[i] = kernel
        self.ns[f"C{i}"] = None
        self.per_thread += [f"P{i}", f"Q{i}"]
        test = f"C{i} is not None"
        if update is not None:
            # the update's variable, when it holds a buffer of its static shape, is written
            # by the loop itself; otherwise both steps run as they would without a compiler
            var = update.attrs["var"]
            self._folded.add(update.index)
            self._bind(f"uv{i}", var)
            self._bind(f"w{i}", _shape_of(var.outputs[0].shape))
            test += (
                f" and (u{i} := V.get(uv{i})) is not None and u{i}.shape == w{i}"
                f" and u{i}.flags.c_contiguous"
            )
            lines = lines + self._step_lines_unfolded(update)
        for a, (_, nbytes) in views.items():
            test += f" and s{step.inputs[a]}.strides == {nbytes!r}"
        for a, k in enumerate(step.inputs):
            slot = plan.slots[k]
            if slot.kind in ("variable", "dynamic"):
                # what a loop reads must be what the plan says (the numpy path reports a
                # mismatch as an error, where a loop would read out of bounds)
                dt = self._bind(f"dt{i}_{a}", slot.dtype.np)
                test += f" and s{k}.shape == {_shape_of(slot.shape)!r} and s{k}.dtype == {dt}"
        out = [(f"if {test}:", None)]
        for a, k in enumerate(step.inputs):
            if a in views:
                out.append((f"    P{i}[{a}] = s{k}.__array_interface__['data'][0]", None))
            elif plan.slots[k].kind not in ("arena", "const"):
                out.append((f"    if not s{k}.flags.c_contiguous: s{k} = ascontiguous(s{k})", None))
                out.append((f"    P{i}[{a}] = s{k}.__array_interface__['data'][0]", None))
        if update is not None:
            out.append(
                (f"    P{i}[{len(step.inputs)}] = u{i}.__array_interface__['data'][0]", None)
            )
        out.append((f"    C{i}(Q{i})", None))
        if update is not None:
            out.append((f"    s{update.outputs[0]} = u{i}", None))
        out.append(("else:", None))
        out += [("    " + text, body) for text, body in self._shared_fallback(lines)]
        if update is not None and not views and not self._out_views(step):
            out = self._chain_lines(step, update, out)
        return out

    def _update_chain(self, step, update):
        """``[(fused step, its update)]``: ``step`` and ``update``, then each fused step with
        an update right after the previous update, over the same loop shape, reading only
        buffers no earlier update of the chain has written (except through that update's
        value: Adam's m and v updates, then the variable's)."""
        plan, chain = self.plan, [(step, update)]
        written = {update.attrs["var"]}
        producer = getattr(self, "_producer", None) or {k: s for s in plan.steps for k in s.outputs}
        self._producer = producer
        links = {update.outputs[0]}
        loop = tuple(step.loop_shape)
        whole = {k for k in step.inputs if _shape_of(plan.slots[k].shape) == loop}
        while len(chain) < _CHAIN_MAX:
            j = chain[-1][1].index + 1
            nxt = plan.steps[j] if j < len(plan.steps) else None
            if (
                nxt is None
                or nxt.kind != "fused"
                or tuple(nxt.loop_shape) != tuple(step.loop_shape)
                or nxt.index in self._chained
                or self._views_read(nxt)
                or self._out_views(nxt)
            ):
                break
            upd = self._update_after(nxt)
            if upd is None or upd.attrs["var"] in written:
                break
            ok = True
            for k in nxt.inputs:
                slot = plan.slots[k]
                if k in links:
                    continue
                if slot.kind == "variable":
                    ok = producer[k].node not in written
                else:
                    ok = slot.kind in ("arena", "const", "feed")
                if not ok:
                    break
            # joining pays where it saves a pass: nxt reads a value of the chain (an update's,
            # or a whole array an earlier step reads: Adam's gradient); another variable's
            # updates touch other buffers, and one loop over many arrays streams worse
            if not ok or not any(k in links or k in whole for k in nxt.inputs):
                break
            chain.append((nxt, upd))
            written.add(upd.attrs["var"])
            links.add(upd.outputs[0])
            whole.update(k for k in nxt.inputs if _shape_of(plan.slots[k].shape) == loop)
        return chain

    def _chain_lines(self, step, update, lines):
        """Consecutive fused updates (``_update_chain``) as one compiled loop, run from the
        first step's lines; the others run only when it did not (``D<c>`` is False: the
        library is not loaded yet, or a variable's buffer is not the planned one)."""
        plan = self.plan
        if step.index in self._chained:
            return lines  # a later member of a chain heads none (its lines may not run)
        chain = self._update_chain(step, update)
        if len(chain) < 2:
            return lines
        ops = {ASSIGN: "=", ASSIGN_SUB: "-", ASSIGN_ADD: "+"}
        links = {u.outputs[0]: t for t, (_, u) in enumerate(chain)}
        found = host_compile.update_chain_kernel(
            [f for f, _ in chain], [ops[u.op] for _, u in chain], plan.slots, links
        )
        if found is None:
            return lines
        kernel, inputs = found
        c = chain[-1][1].index  # (a state step: it has no table of its own)
        self.compiled[c] = kernel
        self._chain_arrays[c] = list(inputs) + [f.outputs[0] for f, _ in chain]
        self.ns[f"C{c}"] = None
        self.per_thread += [f"P{c}", f"Q{c}"]
        for f, u in chain[1:]:
            self._chained[f.index] = self._chained[u.index] = c
        test = f"C{c} is not None"
        for t, (_, u) in enumerate(chain):
            var = u.attrs["var"]
            self._bind(f"uv{c}_{t}", var)
            self._bind(f"w{c}_{t}", _shape_of(var.outputs[0].shape))
            test += (
                f" and (u{c}_{t} := V.get(uv{c}_{t})) is not None and u{c}_{t}.shape == w{c}_{t}"
                f" and u{c}_{t}.flags.c_contiguous"
            )
        fill = []
        for a, k in enumerate(inputs):
            slot = plan.slots[k]
            if slot.kind in ("variable", "dynamic"):
                dt = self._bind(f"dt{c}_{a}", slot.dtype.np)
                test += f" and s{k}.shape == {_shape_of(slot.shape)!r} and s{k}.dtype == {dt}"
            if slot.kind not in ("arena", "const"):
                fill.append(f"    if not s{k}.flags.c_contiguous: s{k} = ascontiguous(s{k})")
                fill.append(f"    P{c}[{a}] = s{k}.__array_interface__['data'][0]")
        for t in range(len(chain)):
            fill.append(f"    P{c}[{len(inputs) + t}] = u{c}_{t}.__array_interface__['data'][0]")
        fill.append(f"    C{c}(Q{c})")
        fill += [f"    s{u.outputs[0]} = u{c}_{t}" for t, (_, u) in enumerate(chain)]
        out = [(f"if {test}:", None)] + [(text, None) for text in fill]
        out += [(f"    D{c} = True", None), ("else:", None), (f"    D{c} = False", None)]
        # (bound on both branches: a plan split into parts passes them from part to part)
        out += [(f"    s{u.outputs[0]} = None", None) for _, u in chain[1:]]
        return out + [("    " + text, body) for text, body in lines]

    def _shared_fallback(self, lines):
        """A compiled step's numpy fallback (what runs until its library is loaded) as one
        call of a function shared by every fallback of the same structure: the fallbacks of
        a deep model's identical layers differ only in the slots, kernels and variables they
        name, which become the function's arguments (Python compiles each structure once).
        Lines naming anything else (tiles, accumulators, constants) stay as they are."""
        params: dict = {}  # name in the step's lines -> parameter name
        canonical = []
        for text, body in lines:
            parts, at = [], 0
            for m in _FALLBACK_NAME.finditer(text):
                name = m.group(1)
                if m.group(0)[0] == "." or name in _FALLBACK_KEEP:
                    continue
                if not _FALLBACK_PARAM.fullmatch(name):
                    return lines
                parts += [text[at : m.start(1)], params.setdefault(name, f"p{len(params)}")]
                at = m.end(1)
            canonical.append(("".join(parts) + text[at:], body))
        assigned, seen = [], set()  # locals the step leaves to later steps
        made = set()  # ... of them, those it makes (not arguments of the function)
        for text, _ in lines:
            for statement in text.split("; "):
                m = _ASSIGNED.match(statement)
                targets = m.group(1).split(", ") if m else []
                made.update(n for n in targets if n not in seen)
                assigned += [n for n in targets if n not in assigned]
                seen.update(_FALLBACK_NAME.findall(statement))
        args = [n for n in params if n not in made]
        key = (
            tuple(canonical),
            tuple(params[n] for n in assigned),
            tuple(params[n] for n in args),
        )
        fn = self._fallbacks.get(key)
        if fn is None:
            fn = self._fallbacks[key] = f"F{len(self._fallbacks)}"
            self._fallback_defs.append(
                [(f"def {fn}({', '.join(params[n] for n in args)}):", None)]
                + [("    " + text, body) for text, body in canonical]
                + (
                    [(f"    return {''.join(params[n] + ', ' for n in assigned)}", None)]
                    if assigned
                    else []
                )
            )
        call = f"{fn}({', '.join(args)})"
        return [(f"{''.join(n + ', ' for n in assigned)}= {call}" if assigned else call, None)]

    def _view_of_arena(self, step) -> bool:
        """Whether the step is a shape op viewing arena buffers (C-contiguous: never a
        concat's part) or such views, so its result is the same view on every run."""
        if self.trap is not None or step.kind != "alloc" or step.op not in _VIEW_OPS:
            return False
        if step.op is RESHAPE:  # made once, a copy would hold the arena's bytes of that time
            viewable = all(self._c_order(k) for k in step.inputs)
        else:
            viewable = all(self._c_order(k) or k in self._viewed for k in step.inputs)
        return viewable and all(self.plan.slots[k].kind == "dynamic" for k in step.outputs)

    def _c_order(self, k) -> bool:
        """Whether slot ``k`` is an arena buffer (not a concat's part) or a C-ordered view."""
        slot = self.plan.slots[k]
        return (slot.kind == "arena" and k not in self._part_of) or k in self._viewed_c_order

    def _find_concat_parts(self):
        """The concats whose inputs from fused steps are views of their output (see
        ``passes.memory.concat_parts``: the plan keeps the output's buffer live from the
        first such step on): those steps write their parts in place, the concat copies
        only the other inputs."""
        plan = self.plan
        producer = {k: s for s in plan.steps for k in s.outputs}
        reads: dict = {}
        for s in plan.steps:
            for k in s.inputs:
                reads[k] = reads.get(k, 0) + 1
        for step in plan.steps:
            if step.kind != "kernel" or step.op is not CONCAT:
                continue
            out = plan.slots[step.outputs[0]]
            shape = _shape_of(out.shape)
            if out.kind != "arena" or out.result or shape is None:
                continue
            axis, at, parts, copies = step.attrs["axis"] % max(len(shape), 1), 0, {}, []
            for p, k in enumerate(step.inputs):
                n = _shape_of(plan.slots[k].shape)
                if n is None:
                    break
                key = ", ".join([":"] * axis + [f"{at}:{at + n[axis]}"])
                at += n[axis]
                f = producer.get(k)
                if (
                    f is not None
                    and f.kind == "fused"
                    and plan.slots[k].kind == "arena"
                    and reads[k] == 1
                    and k not in plan.fetches
                    and step.inputs.count(k) == 1
                    and out.start <= f.index
                    and not (  # a final reduction's output is written as a whole row
                        f.body[-1].op.kind == "reduction" and f.outputs[f.body_slots[-1][1]] == k
                    )
                ):
                    parts[k] = (out.index, key)
                else:
                    copies.append((p, key))
            else:
                if parts:
                    self._part_of.update(parts)
                    self._concat_copies[step.index] = copies
                    for p, _ in copies:
                        self._bind_per_thread(f"cv{step.index}_{p}")

    def _concat_lines(self, step):
        """A concat whose fused inputs already wrote their parts: copy in the others."""
        lines = [
            (f"np.copyto(cv{step.index}_{p}, s{step.inputs[p]})", None)
            for p, _ in self._concat_copies[step.index]
        ]
        return lines or [("pass", None)]

    def _out_views(self, step):
        """{output slot: element strides} of the step's outputs that are parts of a concat."""
        found = {}
        for k in step.outputs:
            if k in self._part_of:
                out = self.plan.slots[self._part_of[k][0]]
                strides, acc = [], 1
                for d in reversed(_shape_of(out.shape)):
                    strides.insert(0, acc)
                    acc *= d
                found[k] = tuple(strides)
        return found

    def _views_read(self, step):
        """{input position: (element strides, byte strides)} of the inputs that are views
        made by a ``split`` of a contiguous buffer (an LSTM's gates): the loop reads them in
        place, where a copy would cost a pass over each."""
        if not hasattr(self, "_producer"):
            self._producer = {k: s for s in self.plan.steps for k in s.outputs}
        found = {}
        for a, k in enumerate(step.inputs):
            p = self._producer.get(k)
            if p is None or p.op not in (SPLIT, SPLIT_LIKE) or self.plan.slots[k].kind != "dynamic":
                continue
            parent = self.plan.slots[p.inputs[0]]
            shape = _shape_of(parent.shape)
            if parent.kind not in ("arena", "feed", "variable", "const") or shape is None:
                continue
            strides, acc = [], 1
            for d in reversed(shape):
                strides.insert(0, acc)
                acc *= d
            found[a] = (tuple(strides), tuple(st * parent.dtype.itemsize for st in strides))
        return found

    def _update_after(self, step):
        """The variable update that only consumes ``step``'s one output, right after it
        (an optimizer's ``assign``/``assign_sub``), or None."""
        plan, nxt = self.plan, self.plan.steps[step.index + 1 : step.index + 2]
        if not nxt or len(step.outputs) != 1 or step.body[-1].op.kind == "reduction":
            return None
        nxt, out = nxt[0], plan.slots[step.outputs[0]]
        if (
            nxt.kind != "state"
            or nxt.op not in (ASSIGN, ASSIGN_SUB, ASSIGN_ADD)
            or tuple(nxt.inputs) != (out.index,)
            or len(nxt.outputs) != 1
            or out.result
            or out.index in self.plan.fetches
        ):
            return None
        if self._readers().get(out.index, 0) != 1:
            return None  # another step reads the value (the slot's end is no proof:
            #                  it outlives the update's result, which may be its view)
        shape = nxt.attrs["var"].outputs[0].shape
        if shape is None or _shape_of(shape) != _shape_of(out.shape):
            return None
        return nxt

    def _readers(self):
        """slot index -> how many steps read it (counted once, on first use)."""
        if self._reader_count is None:
            count: dict = {}
            for s in self.plan.steps:
                for k in set(s.inputs):
                    count[k] = count.get(k, 0) + 1
            self._reader_count = count
        return self._reader_count

    def _step_lines_unfolded(self, step):
        self._folded.discard(step.index)
        try:
            return self._step_lines(step)
        finally:
            self._folded.add(step.index)

    def _table_arrays(self, i):
        """The slots whose pointers compiled step ``i``'s ``P`` table holds, in order."""
        if i in self._chain_arrays:
            return self._chain_arrays[i]
        step = self.plan.steps[i]
        arrays = list(step.inputs) + [
            step.outputs[k]
            for j, (w, k) in enumerate(step.body_slots)
            if w == "out" and step.body[j].op.kind != "reduction"
        ]
        if step.body[-1].op.kind == "reduction":
            arrays.append(step.outputs[step.body_slots[-1][1]])
        return arrays

    def _pointer_table_lines(self, steps, part=None):
        """In ``ARENA()``: each compiled step's ``P`` table (this thread's arena and the
        constants' pointers, and the loop's sizes) and its address ``Q``. With ``part`` (a
        chunked plan's part number), one ``ptables`` call (bound as ``make_ptables``) makes
        them all from a table bound as ``PT<part>`` (data, not source, as ``AV<part>``)."""
        lines, entries, views = [], [], {}
        for i in steps:
            kernel = self.compiled[i]
            fixed = []
            for a, k in enumerate(self._table_arrays(i)):
                s = self.plan.slots[k]
                if s.kind == "arena":
                    if part is None:
                        fixed.append(f"({a}, s{k})")
                    else:
                        fixed.append((a, True, views.setdefault(f"s{k}", len(views))))
                elif s.kind == "const":
                    name = f"cc{k}"
                    if name not in self.ns:
                        self._bind(name, np.ascontiguousarray(s.value, s.dtype.np))
                    fixed.append(f"({a}, {name})" if part is None else (a, False, self.ns[name]))
            if part is not None:
                entries.append((kernel.n_pointers, tuple(fixed), kernel.scalars))
                continue
            lines.append(
                f"P{i} = ptable({kernel.n_pointers}, ({''.join(f + ', ' for f in fixed)}),"
                f" {kernel.scalars!r})"
            )
            lines.append(f"Q{i} = P{i}.__array_interface__['data'][0]")
        if entries:
            self._bind("make_ptables", ptables)
            names = "".join(f"P{i}, Q{i}, " for i in steps)
            table = self._bind(f"PT{part}", tuple(entries))
            lines.append(f"{names}= make_ptables({table}, ({''.join(v + ', ' for v in views)}))")
        return lines

    def request_compiled(self):
        """Build (or load) this plan's kernels; each step switches once they are loaded."""
        if not self.compiled:
            return
        ns, by_step = self.ns, dict(self.compiled)

        def ready(found):
            for i, kernel in by_step.items():
                ns[f"C{i}"] = found[kernel.name]

        host_compile.request(list(by_step.values()), ready)

    def _out_names(self, step):
        return {f"s{k}" for k in step.outputs}


def _emit_handlers(src):
    """The end of an entry function: a failing kernel is reported by FAIL, which finds its
    step from the traceback's line (a try costs nothing until something raises)."""
    src.emit("    except GraphcError:")
    src.emit("        raise")
    src.emit("    except Exception as e:")
    src.emit("        raise FAIL(e, ctx) from e")


# The most updates one loop runs (_update_chain): Adam's three, RMSProp's with momentum.
_CHAIN_MAX = 4

# A plan of more generated lines than this runs as several functions of about this many
# lines each: CPython compiles one huge function in more than linear time (and a function
# with thousands of locals is slow to build), so code generation stays linear in the plan.
CHUNK_LINES = int(os.environ.get("GRAPHC_CHUNK_LINES", "400"))

# The names generated code keeps in locals from one step to a later one (slots ``s12``,
# scalar locals ``v3``, ``v3_1``, ``a3_0``, whether a chain of updates ran ``D3``) and the
# per-thread ones (tables ``P3``, ``Q3``, ``T3``; a concat's parts to copy into, ``cv3_1``).
_LOCAL_NAME = re.compile(r"\b(?:[sva]\d+(?:_\d+)?|[PQTD]\d+|cv\d+_\d+)\b")


# A shared fallback function's lines (see _Generator._shared_fallback) are marked with this
# step index in ``_Source.where``: an error inside one is the calling step's.
SHARED = -1
_FALLBACK_NAME = re.compile(r"\.?\b([A-Za-z_]\w*)\b")
_FALLBACK_PARAM = re.compile(r"[skn]\d+(?:_\d+)?|V|ctx")  # slots, kernels, variables
_FALLBACK_KEEP = frozenset(("np", "as_tuple", "out"))
_ASSIGNED = re.compile(r"((?:s\d+, )*s\d+),? = ")


def _needs_chunks(body_lines) -> bool:
    return sum(len(lines) for lines in body_lines) > CHUNK_LINES


class _Chunks:
    """A long plan as ``run`` calling ``run_part<c>`` for consecutive runs of steps.

    Each part unpacks the per-thread views it uses from its own tuple (``ARENA()`` returns
    one tuple per part, each made by ``ARENA_part<c>``: a view used by several parts is
    made once for each, over the same bytes). Locals that a step leaves for a later one (a
    variable's buffer, a run-time allocated value, a feed, a scalar) are passed to each
    part that reads them and returned by each part that has them to the parts after it;
    ``run`` holds them in between. Which names a part touches is read off its lines."""

    def __init__(self, gen, body_lines):
        self.gen = gen
        plan = gen.plan
        per_thread = set(gen.per_thread)
        self.parts = []  # [(first step, end step)]
        start, count = 0, 0
        for i, lines in enumerate(body_lines):
            if count and count + len(lines) > CHUNK_LINES:
                self.parts.append((start, i))
                start, count = i, 0
            count += len(lines)
        self.parts.append((start, len(body_lines)))
        self.copy_out = "return [" + gen._copy_out_list() + "]"
        touched = []  # per part: (per-thread names, locals)
        for c, (a, b) in enumerate(self.parts):
            names = set()
            for lines in body_lines[a:b]:
                for text, _ in lines:
                    names.update(_LOCAL_NAME.findall(text))
            if c == len(self.parts) - 1:
                names.update(_LOCAL_NAME.findall(self.copy_out))
            # a compiled loop's table P must live as long as the address Q its call reads
            names.update([f"P{n[1:]}" for n in names if n[0] == "Q"])
            views = names & per_thread
            ns = gen.ns  # (a global, bound in the namespace: a constant, a kernel)
            touched.append((views, {n for n in names - views if n not in ns}))
        position = {v: i for i, v in enumerate(gen.per_thread)}
        self.views = [sorted(views, key=position.__getitem__) for views, _ in touched]
        last = {}  # local name -> the last part that touches it
        for c, (_, local) in enumerate(touched):
            last.update(dict.fromkeys(local, c))
        avail = {f"s{k}" for _, k in plan.feeds}
        self.params, self.returns = [], []
        for c, (_, local) in enumerate(touched):
            self.params.append(sorted(local & avail, key=_name_key))
            self.returns.append(sorted((n for n in local if last[n] > c), key=_name_key))
            avail |= local

    def emit_entry(self, src, entry):
        gen, traced = self.gen, entry == "run_traced"
        tr = "TR, " if traced else ""
        last = len(self.parts) - 1
        for c, (a, b) in enumerate(self.parts):
            params = "".join(f", {p}" for p in self.params[c])
            src.emit(f"def {entry}_part{c}(ctx, {tr}V, W{params}):")
            if self.views[c]:
                src.emit("    " + "".join(f"{v}, " for v in self.views[c]) + "= W")
            for step in gen.plan.steps[a:b]:
                for text, body in gen.body_lines[step.index]:
                    src.emit("    " + text, step.index, body)
                if traced:
                    src.emit("    TR.append(clock())")
            if c == last:
                src.emit("    " + self.copy_out)
            elif self.returns[c]:
                src.emit("    return " + "".join(f"{r}, " for r in self.returns[c]))
            src.emit("")
        params = ["ctx"] + (["TR"] if traced else []) + [f"s{k}" for _, k in gen.plan.feeds]
        src.emit(f"def {entry}({', '.join(params)}):")
        src.emit("    try:")
        src.emit("        W = LOCAL.views")
        src.emit("    except AttributeError:")
        src.emit("        W = LOCAL.views = ARENA()")
        src.emit("    try:")
        src.emit("        V = ctx.variables")
        if traced:
            src.emit("        TR.append(clock())")
        for c in range(len(self.parts)):
            call = f"{entry}_part{c}(ctx, {tr}V, W[{c}]{''.join(f', {p}' for p in self.params[c])})"
            if c == last:
                src.emit(f"        return {call}")
            elif self.returns[c]:
                src.emit("        " + "".join(f"{r}, " for r in self.returns[c]) + f"= {call}")
            else:
                src.emit(f"        {call}")
        _emit_handlers(src)

    def emit_arena(self, src):
        """``ARENA()``: one tuple of per-thread names for each part."""
        gen = self.gen
        src.emit("")
        src.emit("def ARENA():")
        src.emit(f"    arena = {gen._arena_alloc()}")
        src.emit(
            "    return ("
            + "".join(f"ARENA_part{c}(arena), " for c in range(len(self.parts)))
            + ")"
        )
        for c, views in enumerate(self.views):
            src.emit("")
            src.emit(f"def ARENA_part{c}(arena):")
            for line in gen._arena_lines(views, part=c):
                src.emit("    " + line)
            src.emit("    return (" + "".join(f"{v}, " for v in views) + ")")


def _name_key(name):
    return (name[0], [int(p) for p in name[1:].split("_")])


class NumpyExecutable:
    """Runs one compiled plan: ``exe(ctx, feeds)`` as the reference executor, or
    ``exe.call(ctx, *feed_arrays)`` in the plan's feed order (the lowest-overhead path: the
    generated function itself)."""

    def __init__(self, plan, check_numerics=False, views=False):
        self.plan = plan
        self.feed_tensors = [t for t, _ in plan.feeds]
        gen = _Generator(plan, NumericsTrap(plan) if check_numerics else None)
        self._gen = gen
        self._filename = f"<graphc plan {next(_serial)}>"
        self._sources: dict = {}  # code file name -> (its _Source, its first line there)
        gen.ns.update(RUNTIME, LOCAL=threading.local(), FAIL=self._error)
        self._exec(gen.generate(entries=("run",)), self._filename)
        self.call = gen.ns["run"]
        self._run_traced = None  # compiled on the first traced run (most plans never are)
        # views=True: results in the arena come back uncopied (valid until the next run; a
        # plan split into parts copies them)
        self.call_views = None
        if views:
            src = _Source()
            src.split = gen.chunks is not None
            gen.emit_entry(src, "run_views")
            self._exec(src, self._filename[:-1] + " views>")
            self.call_views = gen.ns["run_views"]
        gen.request_compiled()

    def _exec(self, src, filename):
        """Compile ``src`` (unit by unit, each its own code file name) into the namespace."""
        units = src.units()
        for k, (a, b) in enumerate(units):
            name = filename if len(units) == 1 else f"{filename[:-1]}:{k}>"
            code = compile("\n".join(src.lines[a:b]), name, "exec")
            self._sources[name] = (src, a)
            exec(code, self._gen.ns)  # noqa: S102 - our own code

    @property
    def source(self) -> str:
        """The generated source compiled so far: ``run`` and ``ARENA``, then ``run_traced``
        once a traced run has compiled it."""
        srcs = {id(src): src for src, _ in self._sources.values()}.values()
        return "\n\n".join("\n".join(src.lines) for src in srcs)

    def __call__(self, ctx, feeds: dict):
        return self.call(ctx, *[feeds[t] for t in self.feed_tensors])

    def release(self) -> None:
        """Drop every thread's arena (``Session.close``): a large one returns to the pool of
        mappings at once (see ``arena_buffer``); a later run allocates a new one."""
        self._gen.ns["LOCAL"] = threading.local()

    def call_traced(self, ctx, feeds: dict):
        """Run once, timing every step: returns (results, per-step seconds, start time)."""
        if self._run_traced is None:
            src = _Source()
            src.split = self._gen.chunks is not None
            self._gen.emit_entry(src, "run_traced")
            self._exec(src, self._filename[:-1] + " traced>")
            self._run_traced = self._gen.ns["run_traced"]
        marks: list = []
        results = self._run_traced(ctx, marks, *[feeds[t] for t in self.feed_tensors])
        durations = [b - a for a, b in zip(marks, marks[1:], strict=False)]
        return results, durations, marks[0]

    def _generated_line(self, tb):
        """(step index, body op or None) of the generated line a traceback entry ran."""
        src, first = self._sources[tb.tb_frame.f_code.co_filename]
        return src.where.get(first + tb.tb_lineno)

    def _error(self, exc, ctx):
        tb, frames = exc.__traceback__, []
        while tb is not None:
            if tb.tb_frame.f_code.co_filename in self._sources:
                frames.append(tb)
            tb = tb.tb_next
        if not frames:
            return exc
        found = frames.pop()
        line = self._generated_line(found)
        if line is None:
            return exc
        step_index, body = line
        if step_index == SHARED:  # a shared fallback: the step is its caller's
            found = frames.pop() if frames else None
            line = None if found is None else self._generated_line(found)
            if line is None:
                return exc
            step_index = line[0]
        step = self.plan.steps[step_index]
        unset = (
            step.node
            if step.kind == "read"
            else (
                step.attrs["var"]
                if step.op in _INLINE_UPDATE and isinstance(exc, KeyError)
                else None
            )
        )
        if unset is not None:  # an unset variable: its own kernel says so
            try:
                VARIABLE.numpy(ctx, unset, **unset.attrs)
            except GraphcError as e:
                return e
        # arena views are the frame's locals; constants live in its globals
        local = {**found.tb_frame.f_globals, **found.tb_frame.f_locals}
        if body is not None:
            fop = step.body[body]
            what, where = fop.op.name, fop.sources[0] if fop.sources else None
        else:
            what, where = step.op.name, step.sources[0] if step.sources else None
        shapes = ", ".join(_describe(local.get(f"s{k}")) for k in step.inputs)
        origin = ""
        if where is not None and where.origin is not None:
            origin = f" (in the gradient of {where.origin.describe()})"
        name = f" '{where.name}'" if where is not None else ""
        return OpError(
            f"{what}{name}{origin} failed on inputs [{shapes}]: {exc}",
            where.location if where is not None else None,
            node=where,
        )


def _describe(a):
    if a is None:
        return "?"
    a = np.asarray(a)
    return f"{a.dtype}{tuple(a.shape)}"


def as_tuple(out):
    """A kernel's result as a tuple (a kernel returns its array, or a tuple of them)."""
    return out if isinstance(out, tuple) else (out,)


def arena_views(arena, table):
    """The views of ``arena`` that ``table`` lists as ``(start, stop, dtype name, shape)``
    (a chunked plan's ``ARENA_part``: its views as data)."""
    return [arena[a:b].view(dtype).reshape(shape) for a, b, dtype, shape in table]


def tiles(n0, rows, views, whole):
    """The per-tile tuples ``(i, j, view, …)`` of a fused step tiled over ``n0`` rows, ``rows``
    at a time: a view that holds the ``whole`` loop (an output) is sliced at ``[i:j]``;
    tile-sized scratch is used from its start."""
    out = []
    for i in range(0, n0, rows):
        j = min(i + rows, n0)
        out.append(
            (i, j) + tuple(v[i:j] if w else v[: j - i] for v, w in zip(views, whole, strict=True))
        )
    return tuple(out)


def ptable(n_pointers, pointers, scalars):
    """A compiled loop's argument table: ``pointers`` ((position, array) pairs), then the
    loop's ``scalars`` (sizes and strides), as int64 (see host_compile.FusedKernel)."""
    table = np.zeros(n_pointers + len(scalars), np.int64)
    for a, arr in pointers:
        table[a] = arr.__array_interface__["data"][0]
    table[n_pointers:] = scalars
    return table


def ptables(entries, views):
    """``[P, Q, P, Q, …]``: for each ``(n_pointers, pointers, scalars)`` of ``entries`` the
    table ``ptable`` makes (a pointer ``(position, True, i)`` is to ``views[i]``, one
    ``(position, False, array)`` to that array) and its address."""
    out = []
    for n_pointers, pointers, scalars in entries:
        table = np.zeros(n_pointers + len(scalars), np.int64)
        for a, local, ref in pointers:
            table[a] = (views[ref] if local else ref).__array_interface__["data"][0]
        table[n_pointers:] = scalars
        out += (table, table.__array_interface__["data"][0])
    return out


@functools.cache
def _dtype_name(dtype) -> str:
    """numpy's name of a graphc DType (``"float32"``)."""
    return np.dtype(dtype.np).name


def _shape_of(shape):
    try:
        dims = tuple(shape)
    except TypeError:
        return None
    return dims if all(isinstance(d, int) for d in dims) else None


# Names the generated code reads besides its own bindings (``--emit py`` carries these).
def arena_buffer(nbytes):
    """One thread's arena. A large one is mapped without the MADV_HUGEPAGE advice numpy gives
    its large arrays: on first touch that advice makes the kernel compact memory into 2 MiB
    pages (measured 2-3 ms per MiB on a busy VM, against 0.6 ms with ordinary pages), and a
    plan's first run (an evaluation batch of a new size: hundreds of MiB for a CNN over a
    test set) paid it for the whole arena. Free huge pages are still used where available.

    When the executable holding it is dropped, the mapping goes back to a small pool for the
    next plan of a similar size (a new Session over the same model, a test set evaluated
    again): memory the process already touched costs no page faults, as TensorFlow's and
    torch's caching allocators keep theirs."""
    if nbytes < _MAP_MIN_BYTES:
        return np.empty(nbytes, np.uint8)
    with _POOL_LOCK:
        fits = [m for m in _POOL if nbytes <= len(m) <= 2 * nbytes]
        if fits:
            m = min(fits, key=len)
            _POOL.remove(m)
        else:
            m = mmap.mmap(-1, nbytes)
    a = np.frombuffer(m, np.uint8, count=nbytes)
    weakref.finalize(a, _return_mapping, m)
    return a


def _return_mapping(m):
    with _POOL_LOCK:
        _POOL.append(m)
        while sum(len(k) for k in _POOL) > _POOL_MAX_BYTES:
            _POOL.pop(0).close()  # the oldest first


_MAP_MIN_BYTES = 4 << 20
_POOL_MAX_BYTES = 1 << 30
_POOL: list = []  # mappings of dropped arenas, oldest first
_POOL_LOCK = threading.Lock()

RUNTIME = {
    "arena_buffer": arena_buffer,
    "np": np,
    "array": np.array,
    "as_tuple": as_tuple,
    "tiles": tiles,
    "GraphcError": GraphcError,
    "ptable": ptable,
    "ascontiguous": np.ascontiguousarray,
}


def executable(request):
    """The ``numpy`` backend's factory: ``optimize=0`` interprets (the reference executor)
    unless user passes must run; otherwise the generated code of the compiled plan (with
    the NaN trap inside it when the request asks for one)."""
    if request.optimize == 0 and not request.passes:
        return ReferenceExecutable(
            request.fetch_tensors, request.fetch_ops, request.feeds, check=request.check
        )
    return NumpyExecutable(request.plan(), check_numerics=request.check_numerics)
