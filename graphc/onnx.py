"""ONNX export and import: ``gc.onnx.export(fetches, path, feed_shapes=..., session=...)``,
``gc.onnx.load(path)`` and ``graphc compile model.g --emit onnx``.

The model is built with the ``onnx`` package's own helpers (``onnx.helper``,
``onnx.numpy_helper``) and checked with ``onnx.checker``; the tests run it in onnxruntime
next to graphc. Both are the ``onnx`` extra (``pip install "graphc-compiler[onnx]"``).

Export walks the ops the fetches need. Each graphc op has an entry in ``EXPORTERS`` (keyed by
op name, the ONNX-side table: the op library knows nothing of ONNX) that emits ONNX nodes;
placeholders become graph inputs (symbolic dims keep their names, unknown ones get
``dim_param``), variables become initializers holding the session's values (trained
weights; without a session, their initial values), constants become initializers. An op
with no ONNX counterpart (random numbers, state updates, gradient-only ops) is an
:class:`OnnxExportError` that lists every such op with its line. NHWC convolutions and
pools are wrapped in transposes (ONNX is NCHW).

Import (``load``) builds a graphc graph from the ONNX ops listed in ``IMPORTERS`` (what
``export`` writes, plus Gemm, Relu, Softmax, Flatten and friends that other exporters use);
initializers become constants (``variables=True``: variables, to train further).
"""

from __future__ import annotations

import os

import numpy as np

from . import dtypes as D
from .errors import GraphcError, user_location
from .fileio import write_atomic

OPSET = 18
INSTALL_HINT = 'pip install "graphc-compiler[onnx]"'
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class OnnxExportError(GraphcError):
    """A graph that ONNX cannot express (the message names each op and its line)."""


class OnnxImportError(GraphcError):
    """An ONNX model graphc cannot build (the message names the node and its op type)."""


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise GraphcError(
            f"ONNX export and import need the onnx package ({e}): {INSTALL_HINT}", user_location()
        ) from None
    return onnx, helper, numpy_helper


# --- export -------------------------------------------------------------------------------------


class _Exporter:
    """The state of one export: nodes, initializers and unique names."""

    def __init__(self, onnx, helper, numpy_helper, values):
        self.onnx, self.helper, self.nh = onnx, helper, numpy_helper
        self.nodes, self.initializers, self.inputs = [], [], []
        self.values = values  # variable op -> numpy value
        self.names: dict = {}  # graphc Tensor -> ONNX name
        self._used: set = set()
        self._tmp = 0

    def name(self, t) -> str:
        return self.names[t]

    def fresh(self, base) -> str:
        self._tmp += 1
        name = f"{base}__{self._tmp}"
        while name in self._used:
            self._tmp += 1
            name = f"{base}__{self._tmp}"
        self._used.add(name)
        return name

    def bind(self, t, name):
        self.names[t] = name
        self._used.add(name)

    def out_name(self, op, k=0) -> str:
        base = op.name if k == 0 else f"{op.name}:{k}"
        if base in self._used:
            base = self.fresh(base)
        return base

    def node(self, op_type, inputs, outputs=None, base="n", **attrs) -> list:
        outputs = outputs or [self.fresh(base)]
        self.nodes.append(
            self.helper.make_node(
                op_type, list(inputs), list(outputs), name=self.fresh(op_type), **attrs
            )
        )
        return outputs

    def one(self, op_type, inputs, base="n", **attrs) -> str:
        return self.node(op_type, inputs, base=base, **attrs)[0]

    def const(self, value, dtype=None, base="c") -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(base)
        self.initializers.append(self.nh.from_array(arr, name))
        return name

    def ints(self, values, base="c") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), base=base)


def _elem_type(dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype.np))


def _value_info(name, t, helper):
    dims = None
    if t.shape is not None:
        dims = [d if isinstance(d, int) else (d if isinstance(d, str) else None) for d in t.shape]
    return helper.make_tensor_value_info(name, _elem_type(t.dtype), dims)


# The ONNX-side table: op name -> fn(ex, op, ins) -> [ONNX output name per op output].
EXPORTERS: dict = {}
# Ops that ONNX cannot express, with the reason the error gives.
NO_ONNX = {
    "assign": "updates a variable: export the model's outputs, not its training step",
    "assign_add": "updates a variable: export the model's outputs, not its training step",
    "assign_sub": "updates a variable: export the model's outputs, not its training step",
    "no_op": "a grouping of updates: export the model's outputs, not its training step",
    "random_normal": "ONNX's RandomNormal draws other numbers than graphc's seeded generator",
    "random_uniform": "ONNX's RandomUniform draws other numbers than graphc's seeded generator",
    "truncated_normal": "ONNX has no truncated normal",
    "random_permutation": "ONNX has no random permutation",
    "custom_gradient": "a Python function: ONNX cannot run it",
    "getitem_grad": "a gradient op: export the forward model",
    "gather_grad": "a gradient op: export the forward model",
    "tile_grad": "a gradient op: export the forward model",
    "tensordot_grad": "a gradient op: export the forward model",
    "max_pool_grad": "a gradient op: export the forward model",
    "max_pool_select": "a gradient op: export the forward model",
    "avg_pool_grad": "a gradient op: export the forward model",
    "conv2d_backprop_input": "a gradient op: export the forward model",
    "conv2d_backprop_filter": "a gradient op: export the forward model",
    "allreduce": "a collective across processes: export the model without the optimizer",
    "broadcast": "a collective across processes: export the model without the optimizer",
}


def exporter(*names):
    def register(fn):
        for n in names:
            EXPORTERS[n] = fn
        return fn

    return register


def _simple(onnx_type):
    def emit(ex, op, ins):
        return [ex.one(onnx_type, ins)]

    return emit


for _g, _o in {
    "identity": "Identity",
    "stop_gradient": "Identity",
    "neg": "Neg",
    "abs": "Abs",
    "sign": "Sign",
    "exp": "Exp",
    "log": "Log",
    "sqrt": "Sqrt",
    "reciprocal": "Reciprocal",
    "sin": "Sin",
    "cos": "Cos",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "erf": "Erf",
    "floor": "Floor",
    "ceil": "Ceil",
    "round": "Round",
    "logical_not": "Not",
    "is_nan": "IsNaN",
    "add": "Add",
    "subtract": "Sub",
    "multiply": "Mul",
    "divide": "Div",
    "pow": "Pow",
    "maximum": "Max",
    "minimum": "Min",
    "equal": "Equal",
    "less": "Less",
    "less_equal": "LessOrEqual",
    "greater": "Greater",
    "greater_equal": "GreaterOrEqual",
    "logical_and": "And",
    "logical_or": "Or",
    "logical_xor": "Xor",
    "where": "Where",
}.items():
    EXPORTERS[_g] = _simple(_o)


def _one_like(ex, op, value=1):
    return ex.const(np.asarray(value, dtype=op.inputs[0].dtype.np))


@exporter("print", "check_numerics", "class_labels")
def _pass_through(ex, op, ins):
    """Identity on the first input: the printing / checking is graphc's run-time business."""
    return [ex.one("Identity", ins[:1])]


@exporter("cast")
def _cast(ex, op, ins):
    return [ex.one("Cast", ins, to=_elem_type(op.attrs["dtype"]))]


@exporter("log1p")
def _log1p(ex, op, ins):
    return [ex.one("Log", [ex.one("Add", [ins[0], _one_like(ex, op)])])]


@exporter("expm1")
def _expm1(ex, op, ins):
    return [ex.one("Sub", [ex.one("Exp", ins), _one_like(ex, op)])]


@exporter("rsqrt")
def _rsqrt(ex, op, ins):
    return [ex.one("Reciprocal", [ex.one("Sqrt", ins)])]


@exporter("square")
def _square(ex, op, ins):
    return [ex.one("Mul", [ins[0], ins[0]])]


@exporter("is_finite")
def _is_finite(ex, op, ins):
    bad = ex.one("Or", [ex.one("IsNaN", ins), ex.one("IsInf", ins)])
    return [ex.one("Not", [bad])]


@exporter("not_equal")
def _not_equal(ex, op, ins):
    return [ex.one("Not", [ex.one("Equal", ins)])]


def _is_int(op):
    return op.inputs[0].dtype.np.kind in "iu"


@exporter("mod")
def _mod(ex, op, ins):
    if _is_int(op):  # ONNX Mod with fmod=0 is Python's (floored) modulo, for integers
        return [ex.one("Mod", ins, fmod=0)]
    a, b = ins  # floats: a - floor(a / b) * b, numpy's sign convention
    return [ex.one("Sub", [a, ex.one("Mul", [ex.one("Floor", [ex.one("Div", [a, b])]), b])])]


@exporter("floordiv")
def _floordiv(ex, op, ins):
    a, b = ins
    if _is_int(op):  # (a - a mod b) / b is exact, and floored
        return [ex.one("Div", [ex.one("Sub", [a, ex.one("Mod", [a, b], fmod=0)]), b])]
    return [ex.one("Floor", [ex.one("Div", [a, b])])]


@exporter("matmul")
def _matmul(ex, op, ins):
    a, b = ins
    for k, flag in ((0, "transpose_a"), (1, "transpose_b")):
        if op.attrs.get(flag):
            rank = len(op.inputs[k].shape)
            perm = list(range(rank - 2)) + [rank - 1, rank - 2]
            if k == 0:
                a = ex.one("Transpose", [a], perm=perm)
            else:
                b = ex.one("Transpose", [b], perm=perm)
    return [ex.one("MatMul", [a, b])]


@exporter("einsum")
def _einsum(ex, op, ins):
    eq = ",".join(op.attrs["subscripts"]) + "->" + op.attrs["output"]
    return [ex.one("Einsum", ins, equation=eq)]


def _reduce(onnx_type):
    def emit(ex, op, ins):
        axes = ex.ints(op.attrs["axis"])
        return [ex.one(onnx_type, [ins[0], axes], keepdims=int(bool(op.attrs["keepdims"])))]

    return emit


for _g, _o in {
    "reduce_sum": "ReduceSum",
    "reduce_mean": "ReduceMean",
    "reduce_max": "ReduceMax",
    "reduce_min": "ReduceMin",
    "reduce_prod": "ReduceProd",
}.items():
    EXPORTERS[_g] = _reduce(_o)


def _bool_reduce(onnx_type):
    def emit(ex, op, ins):
        as_int = ex.one("Cast", ins, to=_onnx()[0].TensorProto.INT32)
        r = ex.one(
            onnx_type, [as_int, ex.ints(op.attrs["axis"])], keepdims=int(bool(op.attrs["keepdims"]))
        )
        return [ex.one("Cast", [r], to=_onnx()[0].TensorProto.BOOL)]

    return emit


EXPORTERS["reduce_any"] = _bool_reduce("ReduceMax")
EXPORTERS["reduce_all"] = _bool_reduce("ReduceMin")


def _arg(onnx_type):
    def emit(ex, op, ins):
        r = ex.one(onnx_type, ins, axis=int(op.attrs["axis"]), keepdims=0, select_last_index=0)
        if op.attrs["output_type"].np != np.int64:
            r = ex.one("Cast", [r], to=_elem_type(op.attrs["output_type"]))
        return [r]

    return emit


EXPORTERS["argmax"] = _arg("ArgMax")
EXPORTERS["argmin"] = _arg("ArgMin")


def _static(t, what):
    if t.shape is None or not all(isinstance(d, int) for d in t.shape):
        raise OnnxExportError(
            f"{what}: {t.describe()} needs a static shape for ONNX export (give feed_shapes=)",
            t.op.location,
        )
    return tuple(t.shape)


@exporter("sum_to_like")
def _sum_to_like(ex, op, ins):
    src, dst = op.inputs
    s, d = _static(src, "sum_to_like"), _static(dst, "sum_to_like")
    lead = len(s) - len(d)
    axes = list(range(lead)) + [lead + i for i, n in enumerate(d) if n == 1 and s[lead + i] != 1]
    r = ex.one("ReduceSum", [ins[0], ex.ints(axes)], keepdims=1) if axes else ins[0]
    return [ex.one("Reshape", [r, ex.ints(d)])]


@exporter("reshape")
def _reshape(ex, op, ins):
    shape = [int(d) for d in op.attrs["shape"]]
    return [ex.one("Reshape", [ins[0], ex.ints(shape)], allowzero=int(0 in shape))]


@exporter("reshape_like")
def _reshape_like(ex, op, ins):
    return [ex.one("Reshape", [ins[0], ex.one("Shape", [ins[1]])])]


@exporter("transpose")
def _transpose(ex, op, ins):
    return [ex.one("Transpose", ins, perm=list(op.attrs["perm"]))]


@exporter("expand_dims")
def _expand_dims(ex, op, ins):
    axis = op.attrs["axis"]
    return [ex.one("Unsqueeze", [ins[0], ex.ints(axis if isinstance(axis, tuple) else [axis])])]


@exporter("squeeze")
def _squeeze(ex, op, ins):
    return [ex.one("Squeeze", [ins[0], ex.ints(op.attrs["axis"])])]


@exporter("concat")
def _concat(ex, op, ins):
    return [ex.one("Concat", ins, axis=int(op.attrs["axis"]))]


@exporter("split")
def _split(ex, op, ins):
    outs = [ex.out_name(op, k) for k in range(len(op.outputs))]
    sizes = [t.shape[op.attrs["axis"]] if t.shape is not None else -1 for t in op.outputs]
    if any(not isinstance(s, int) for s in sizes):  # built on an unknown rank or dimension
        sizes = op.attrs["sizes"]
    ex.node("Split", [ins[0], ex.ints(sizes)], outs, axis=int(op.attrs["axis"]))
    return outs


@exporter("tensordot")
def _tensordot(ex, op, ins):
    """ONNX Einsum, once both ranks are known."""
    from .ops.linalg import _tensordot_axes

    a, b = op.inputs
    if a.shape is None or b.shape is None:
        raise OnnxExportError(
            f"cannot export {op.describe()}: tensordot of an operand of unknown rank "
            "(give the placeholder a shape)",
            op.location,
        )
    axes_a, axes_b = _tensordot_axes(op.attrs["axes"], len(a.shape), len(b.shape))
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    sa = [next(letters) for _ in a.shape]
    sb = [next(letters) for _ in b.shape]
    for i, j in zip(axes_a, axes_b):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in axes_a]
    out += [c for j, c in enumerate(sb) if j not in axes_b]
    eq = f"{''.join(sa)},{''.join(sb)}->{''.join(out)}"
    return [ex.one("Einsum", ins, equation=eq)]


@exporter("split_like")
def _split_like(ex, op, ins):
    axis = int(op.attrs["axis"])
    sizes = [_static(t, "split_like")[axis] for t in op.inputs[1:]]
    outs = [ex.out_name(op, k) for k in range(len(op.outputs))]
    ex.node("Split", [ins[0], ex.ints(sizes)], outs, axis=axis)
    return outs


@exporter("getitem")
def _getitem(ex, op, ins):
    """One Slice over the sliced axes, Squeeze for the int indices, Unsqueeze for None."""
    starts, ends, axes, steps, squeeze, new = [], [], [], [], [], []
    dim, out_pos = 0, 0
    for k in op.attrs["key"]:
        if k is None:
            new.append(out_pos)
            out_pos += 1
            continue
        if isinstance(k, slice):
            step = 1 if k.step is None else k.step
            start = k.start if k.start is not None else (0 if step > 0 else INT64_MAX)
            stop = k.stop if k.stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
            if (start, stop, step) != (0, INT64_MAX, 1):
                starts.append(start), ends.append(stop), axes.append(dim), steps.append(step)
            out_pos += 1
        else:
            starts.append(k), ends.append(k + 1 if k != -1 else INT64_MAX)
            axes.append(dim), steps.append(1)
            squeeze.append(dim)
        dim += 1
    r = ins[0]
    if axes:
        r = ex.one("Slice", [r, ex.ints(starts), ex.ints(ends), ex.ints(axes), ex.ints(steps)])
    if squeeze:
        r = ex.one("Squeeze", [r, ex.ints(squeeze)])
    if new:
        r = ex.one("Unsqueeze", [r, ex.ints(new)])
    if r == ins[0]:
        r = ex.one("Identity", [r])
    return [r]


@exporter("gather")
def _gather(ex, op, ins):
    return [ex.one("Gather", ins, axis=int(op.attrs["axis"]))]


@exporter("one_hot")
def _one_hot(ex, op, ins):
    a = op.attrs
    dt = a["dtype"].np
    values = ex.const(np.array([a["off"], a["on"]], dtype=dt))
    return [ex.one("OneHot", [ins[0], ex.ints([a["depth"]]), values], axis=int(a["axis"]))]


@exporter("flatten_batch")
def _flatten_batch(ex, op, ins):
    return [ex.one("Flatten", ins, axis=1)]


@exporter("one_hot_like")
def _one_hot_like(ex, op, ins):
    """OneHot with the depth read from the second input's shape at run time."""
    values = ex.const(np.array([0, 1], dtype=op.inputs[1].dtype.np))
    depth = ex.one("Slice", [ex.one("Shape", [ins[1]]), ex.ints([-1]), ex.ints([2**62])])
    return [ex.one("OneHot", [ins[0], depth, values], axis=-1)]


@exporter("broadcast_to")
def _broadcast_to(ex, op, ins):
    return [ex.one("Expand", [ins[0], ex.ints(op.attrs["shape"])])]


@exporter("broadcast_like")
def _broadcast_like(ex, op, ins):
    return [ex.one("Expand", [ins[0], ex.one("Shape", [ins[1]])])]


@exporter("tile")
def _tile(ex, op, ins):
    return [ex.one("Tile", [ins[0], ex.ints(op.attrs["multiples"])])]


@exporter("pad")
def _pad(ex, op, ins):
    a = op.attrs
    if a["mode"] == "symmetric":
        raise OnnxExportError(
            f"pad {op.name!r}: ONNX has no SYMMETRIC padding (CONSTANT and REFLECT export)",
            op.location,
        )
    pads = [int(p[0]) for p in a["paddings"]] + [int(p[1]) for p in a["paddings"]]
    extra = (
        [ex.const(np.asarray(a["constant_values"], dtype=op.inputs[0].dtype.np))]
        if a["mode"] == "constant"
        else []
    )
    return [ex.one("Pad", [ins[0], ex.ints(pads)] + extra, mode=a["mode"])]


@exporter("fill")
def _fill(ex, op, ins):
    a = op.attrs
    return [ex.one("Identity", [ex.const(np.full(a["shape"], a["value"], dtype=a["dtype"].np))])]


@exporter("fill_like")
def _fill_like(ex, op, ins):
    a = op.attrs
    value = ex.const(np.asarray(a["value"], dtype=a["dtype"].np))
    return [ex.one("Expand", [value, ex.one("Shape", [ins[0]])])]


@exporter("shape")
def _shape(ex, op, ins):
    return [ex.one("Cast", [ex.one("Shape", ins)], to=_elem_type(op.attrs["dtype"]))]


@exporter("size")
def _size(ex, op, ins):
    return [ex.one("Cast", [ex.one("Size", ins)], to=_elem_type(op.attrs["dtype"]))]


def _same_pads(in_hw, k_hw, s_hw):
    """TF's SAME padding as explicit ONNX pads (the extra pixel goes after)."""
    before, after = [], []
    for n, k, s in zip(in_hw, k_hw, s_hw):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def _pool_pads(ex, op, k_hw, s_hw):
    if op.attrs["padding"] == "VALID":
        return [0, 0, 0, 0]
    shape = op.inputs[0].shape
    if shape is None or not all(isinstance(d, int) for d in shape[1:3]):
        return None  # auto_pad SAME_UPPER: TF's SAME, for any image size
    return _same_pads(shape[1:3], k_hw, s_hw)


def _pads_attr(pads):
    return {"auto_pad": "SAME_UPPER"} if pads is None else {"pads": pads}


@exporter("conv2d")
def _conv2d(ex, op, ins):
    w = op.inputs[1]
    k_hw = _static(w, "conv2d")[:2]
    s_hw = tuple(op.attrs["strides"])
    x = ex.one("Transpose", [ins[0]], perm=[0, 3, 1, 2])
    f = ex.one("Transpose", [ins[1]], perm=[3, 2, 0, 1])
    y = ex.one(
        "Conv",
        [x, f],
        kernel_shape=list(k_hw),
        strides=list(s_hw),
        **_pads_attr(_pool_pads(ex, op, k_hw, s_hw)),
    )
    return [ex.one("Transpose", [y], perm=[0, 2, 3, 1])]


def _pool(onnx_type):
    def emit(ex, op, ins):
        k_hw, s_hw = tuple(op.attrs["ksize"]), tuple(op.attrs["strides"])
        x = ex.one("Transpose", ins[:1], perm=[0, 3, 1, 2])
        extra = {"count_include_pad": 0} if onnx_type == "AveragePool" else {}
        y = ex.one(
            onnx_type,
            [x],
            kernel_shape=list(k_hw),
            strides=list(s_hw),
            **_pads_attr(_pool_pads(ex, op, k_hw, s_hw)),
            **extra,
        )
        return [ex.one("Transpose", [y], perm=[0, 2, 3, 1])]

    return emit


EXPORTERS["max_pool"] = _pool("MaxPool")
EXPORTERS["avg_pool"] = _pool("AveragePool")


def _variable_values(graph, variables, session):
    """Each variable's value: the session's (trained) or, without one, its initial value."""
    from .ops.state import variables_initializer
    from .session import Session

    if not variables:
        return {}
    if session is not None:
        values = session.run([v.outputs[0] for v in variables])
        return dict(zip(variables, values))
    with graph.as_default():
        init = variables_initializer([v.outputs[0] for v in variables])
    with Session(graph=graph, optimize=0) as sess:
        sess.run(init)
        values = sess.run([v.outputs[0] for v in variables])
    return dict(zip(variables, values))


FOLD_LIMIT = 64  # elements: the switches and flags worth knowing, not weights


def _specialize(ops) -> dict:
    """Inference specialization: an input with a default (``placeholder_with_default``, a
    training switch) keeps its default, so ``where(switch, a, b)`` with a known switch is the
    branch it picks: dropout's random draw and batch norm's batch statistics drop out of the
    exported model. Returns {tensor: the tensor that stands for it}."""
    known, alias = {}, {}
    for op in sorted(ops, key=lambda o: o.id):
        ins = [alias.get(t, t) for t in op.inputs]
        if op.type == "const" and np.size(op.attrs["value"]) <= FOLD_LIMIT:
            known[op.outputs[0]] = np.asarray(op.attrs["value"])
        elif op.type == "placeholder_with_default" and ins[0] in known:
            known[op.outputs[0]] = known[ins[0]]
        elif op.type == "where" and ins[0] in known:
            cond = known[ins[0]]
            pick = ins[1] if cond.all() else ins[2] if not cond.any() else None
            out = op.outputs[0]
            if pick is not None and pick.shape == out.shape and pick.dtype == out.dtype:
                alias[out] = pick
        elif (
            op.inputs
            and all(t in known for t in ins)
            and not op.op.stateful
            and op.op.numpy is not None
            and len(op.outputs) == 1
            and op.type in EXPORTERS
        ):
            try:
                value = np.asarray(op.op.numpy(*(known[t] for t in ins), **op.attrs))
            except Exception:  # noqa: BLE001 - left to the exported graph
                continue
            if value.size <= FOLD_LIMIT:
                known[op.outputs[0]] = value
    return alias


def _needed(fetches, alias) -> list:
    """The ops that compute ``fetches`` when each tensor is read through ``alias``."""
    seen, stack = set(), [t.op for t in fetches]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(alias.get(t, t).op for t in op.inputs)
    return sorted(seen, key=lambda o: o.id)


def to_model(fetches, feed_shapes=None, session=None, graph=None, model_name=None, opset=OPSET):
    """The ONNX ModelProto computing ``fetches`` (a tensor, a list, or a dict name -> tensor)."""
    onnx, helper, numpy_helper = _onnx()
    from .ir.graph import get_default_graph, walk_needed
    from .ir.node import Tensor

    if isinstance(fetches, dict):
        named = list(fetches.items())
    else:
        items = fetches if isinstance(fetches, (list, tuple)) else [fetches]
        named = [(None, t) for t in items]
    for _key, t in named:
        if not isinstance(t, Tensor):
            raise OnnxExportError(
                f"ONNX export takes tensors to compute, got {t!r} "
                f"(a training op cannot be exported: fetch the outputs)",
                user_location(),
            )
    graph = graph or (named[0][1].graph if named else get_default_graph())
    feed_shapes = {
        (graph.get_tensor_by_name(k) if isinstance(k, str) else k): tuple(v)
        for k, v in (feed_shapes or {}).items()
    }
    alias = _specialize(walk_needed([t for _, t in named], [], set()))
    ops = _needed([alias.get(t, t) for _, t in named], alias)
    missing = [
        op
        for op in ops
        if op.type not in EXPORTERS
        and op.type not in ("placeholder", "placeholder_with_default", "const", "variable")
    ]
    if missing:
        lines = "\n".join(
            f"  {op.describe()}: {NO_ONNX.get(op.type, 'no ONNX equivalent')}" for op in missing
        )
        kinds = ", ".join(sorted({op.type for op in missing}))
        raise OnnxExportError(
            f"cannot export to ONNX: no ONNX equivalent for {kinds}:\n{lines}", user_location()
        )
    variables = [op for op in ops if op.type == "variable"]
    ex = _Exporter(onnx, helper, numpy_helper, _variable_values(graph, variables, session))

    inputs = []
    for op in ops:
        t = op.outputs[0] if op.outputs else None
        if op.type == "placeholder":
            name = ex.out_name(op)
            ex.bind(t, name)
            shape = feed_shapes.get(t)
            if shape is not None:
                info = helper.make_tensor_value_info(name, _elem_type(t.dtype), list(shape))
            else:
                info = _value_info(name, t, helper)
            inputs.append(info)
        elif op.type in ("variable", "const"):
            name = ex.out_name(op)
            value = ex.values[op] if op.type == "variable" else op.attrs["value"]
            ex.initializers.append(
                numpy_helper.from_array(
                    np.ascontiguousarray(np.asarray(value, dtype=t.dtype.np)), name
                )
            )
            ex.bind(t, name)
        elif op.type == "placeholder_with_default":
            name = ex.out_name(op)
            ex.bind(t, name)
            ex.node("Identity", [ex.name(op.inputs[0])], [name])
        else:
            ins = [ex.name(alias.get(i, i)) for i in op.inputs]
            outs = EXPORTERS[op.type](ex, op, ins)
            for tk, o in zip(op.outputs, outs):
                ex.bind(tk, o)

    outputs, seen = [], set()
    for key, t in named:
        src = ex.name(alias.get(t, t))
        k = t.op.outputs.index(t)
        want = key or (t.op.name if k == 0 else f"{t.op.name}:{k}")
        name = want
        if name in seen or name in {i.name for i in inputs}:
            name = ex.fresh(want)
        seen.add(name)
        if src != name:
            # an output needs its own name; an initializer or input passes through Identity
            ex.node("Identity", [src], [name])
        outputs.append(_value_info(name, t, helper))

    g = helper.make_graph(
        ex.nodes, model_name or "graphc", inputs, outputs, initializer=ex.initializers
    )
    model = helper.make_model(
        g, producer_name="graphc", opset_imports=[helper.make_opsetid("", opset)]
    )
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime releases read
    onnx.checker.check_model(model)
    return model


def export(
    fetches, path, feed_shapes=None, session=None, graph=None, model_name=None, opset=OPSET
) -> str:
    """Write the ONNX model computing ``fetches`` to ``path`` (atomically) and return the path.

    ``feed_shapes`` ({placeholder or name: shape}) fixes input dims that are unknown;
    ``session`` gives the variables' current (trained) values, exported as initializers;
    without it they hold their initial values. Fetch the model's outputs (logits, loss),
    not a training op."""
    model = to_model(
        fetches,
        feed_shapes=feed_shapes,
        session=session,
        graph=graph,
        model_name=model_name,
        opset=opset,
    )
    path = os.fspath(path)
    write_atomic(path, model.SerializeToString())
    return path


# --- import -------------------------------------------------------------------------------------


class _Importer:
    def __init__(self, model, variables):
        _, self.helper, self.nh = _onnx()
        self.model = model
        self.variables = variables
        self.tensors: dict = {}  # ONNX name -> graphc Tensor
        self.static: dict = {}  # ONNX name -> numpy value known without running

    def has(self, name) -> bool:
        return name in self.tensors or name in self.static

    def get(self, name):
        """The graphc tensor for ``name`` (initializers become constants or variables)."""
        from .ops.sources import constant
        from .ops.state import Variable

        if isinstance(self.tensors.get(name), _ShapeOf):
            from .ops.array import shape

            self.tensors[name] = shape(self.tensors[name].of, dtype=D.int64)
        if name not in self.tensors:
            if name not in self.static:
                raise OnnxImportError(f"ONNX value {name!r} is used before it is computed")
            value = self.static[name]
            safe = _safe_name(name)
            if self.variables and value.dtype.kind == "f" and value.ndim > 0:
                self.tensors[name] = Variable(value, name=safe)
            else:
                self.tensors[name] = constant(value, name=safe)
        return self.tensors[name]

    def value(self, name, node, what):
        """The known value of an input that graphc needs static (axes, shapes, pads)."""
        if name in self.static:
            return self.static[name]
        raise OnnxImportError(
            f"ONNX node {node.name!r} ({node.op_type}): its {what} "
            f"({name!r}) must be a constant for graphc"
        )


def _safe_name(name: str) -> str:
    return name.replace(":", "_") or "onnx_value"


def _attrs(node, helper) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _np_dtype(elem_type):
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


IMPORTERS: dict = {}


def _api():
    """The op functions the importers build with, by their public names (``gc.relu``...),
    from the op modules themselves: this module sits below the package's public face."""
    from types import SimpleNamespace

    from .ops import array, conv, elementwise, linalg, nn, reduce

    names = {}
    for module in (elementwise, array, reduce, linalg, nn, conv):
        names.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    return SimpleNamespace(**names, as_dtype=D.as_dtype, int64=D.int64)


def importer(*names):
    def register(fn):
        for n in names:
            IMPORTERS[n] = fn
        return fn

    return register


def _unary(fn_name):
    def build(im, node, a):
        gc = _api()
        return [getattr(gc, fn_name)(im.get(node.input[0]))]

    return build


for _o, _g in {
    "Identity": "identity",
    "Neg": "negative",
    "Abs": "abs",
    "Sign": "sign",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Reciprocal": "reciprocal",
    "Sin": "sin",
    "Cos": "cos",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Erf": "erf",
    "Floor": "floor",
    "Ceil": "ceil",
    "Round": "round",
    "Not": "logical_not",
    "IsNaN": "is_nan",
    "Relu": "relu",
    "Softplus": "softplus",
}.items():
    IMPORTERS[_o] = _unary(_g)


def _binary(fn_name):
    def build(im, node, a):
        gc = _api()
        x, y = (im.get(n) for n in node.input)
        return [getattr(gc, fn_name)(x, y)]

    return build


for _o, _g in {
    "Add": "add",
    "Sub": "subtract",
    "Mul": "multiply",
    "Div": "divide",
    "Pow": "pow",
    "Equal": "equal",
    "Less": "less",
    "LessOrEqual": "less_equal",
    "Greater": "greater",
    "GreaterOrEqual": "greater_equal",
    "And": "logical_and",
    "Or": "logical_or",
    "Xor": "logical_xor",
}.items():
    IMPORTERS[_o] = _binary(_g)


@importer("Max", "Min")
def _im_maxmin(im, node, a):
    gc = _api()
    fn = gc.maximum if node.op_type == "Max" else gc.minimum
    ins = [im.get(n) for n in node.input]
    out = ins[0]
    for t in ins[1:]:
        out = fn(out, t)
    return [out]


@importer("Mod")
def _im_mod(im, node, a):
    gc = _api()
    x, y = (im.get(n) for n in node.input)
    if a.get("fmod", 0):  # C's fmod: the sign of x
        return (
            [x - gc.cast(gc.cast(x / y, gc.int64), x.dtype) * y]
            if x.dtype.np.kind == "f"
            else [
                x
                - (
                    x // y
                    + gc.cast(gc.logical_and(gc.not_equal(x % y, 0), gc.less(x * y, 0)), x.dtype)
                )
                * y
            ]
        )
    return [gc.mod(x, y)]


@importer("IsInf")
def _im_isinf(im, node, a):
    gc = _api()
    x = im.get(node.input[0])
    return [gc.logical_and(gc.logical_not(gc.is_finite(x)), gc.logical_not(gc.is_nan(x)))]


@importer("Where")
def _im_where(im, node, a):
    gc = _api()
    c, x, y = (im.get(n) for n in node.input)
    return [gc.where(c, x, y)]


@importer("Cast")
def _im_cast(im, node, a):
    gc = _api()
    return [gc.cast(im.get(node.input[0]), gc.as_dtype(_np_dtype(a["to"])))]


@importer("MatMul")
def _im_matmul(im, node, a):
    gc = _api()
    return [gc.matmul(im.get(node.input[0]), im.get(node.input[1]))]


@importer("Gemm")
def _im_gemm(im, node, a):
    gc = _api()
    y = gc.matmul(
        im.get(node.input[0]),
        im.get(node.input[1]),
        transpose_a=bool(a.get("transA", 0)),
        transpose_b=bool(a.get("transB", 0)),
    )
    if a.get("alpha", 1.0) != 1.0:
        y = y * a["alpha"]
    if len(node.input) > 2 and node.input[2]:
        c = im.get(node.input[2])
        y = y + (c * a["beta"] if a.get("beta", 1.0) != 1.0 else c)
    return [y]


@importer("Einsum")
def _im_einsum(im, node, a):
    gc = _api()
    eq = a["equation"].decode() if isinstance(a["equation"], bytes) else a["equation"]
    return [gc.einsum(eq.replace(" ", ""), *(im.get(n) for n in node.input))]


def _axes(im, node, a):
    if len(node.input) > 1 and node.input[1]:
        return tuple(int(v) for v in im.value(node.input[1], node, "axes"))
    return tuple(a["axes"]) if "axes" in a else None


def _im_reduce(fn_name):
    def build(im, node, a):
        gc = _api()
        axes = _axes(im, node, a)
        if axes == () and a.get("noop_with_empty_axes", 0):
            return [gc.identity(im.get(node.input[0]))]
        return [
            getattr(gc, fn_name)(
                im.get(node.input[0]), axis=axes or None, keepdims=bool(a.get("keepdims", 1))
            )
        ]

    return build


for _o, _g in {
    "ReduceSum": "reduce_sum",
    "ReduceMean": "reduce_mean",
    "ReduceMax": "reduce_max",
    "ReduceMin": "reduce_min",
    "ReduceProd": "reduce_prod",
}.items():
    IMPORTERS[_o] = _im_reduce(_g)


@importer("ArgMax", "ArgMin")
def _im_arg(im, node, a):
    gc = _api()
    fn = gc.argmax if node.op_type == "ArgMax" else gc.argmin
    out = fn(im.get(node.input[0]), axis=int(a.get("axis", 0)))
    return [gc.expand_dims(out, int(a.get("axis", 0))) if a.get("keepdims", 1) else out]


@importer("Shape")
def _im_shape(im, node, a):
    x = im.get(node.input[0])
    if x.shape is not None and all(isinstance(d, int) for d in x.shape):
        im.static[node.output[0]] = np.array(x.shape, dtype=np.int64)
        return [None]
    return [_ShapeOf(x)]


class _ShapeOf:
    """``Shape(x)`` of a tensor with unknown dims: usable by Reshape / Expand (as *_like)."""

    def __init__(self, of):
        self.of = of


@importer("Size")
def _im_size(im, node, a):
    gc = _api()
    return [gc.size(im.get(node.input[0]), dtype=gc.int64)]


def _shape_input(im, node, k):
    name = node.input[k]
    t = im.tensors.get(name)
    if isinstance(t, _ShapeOf):
        return t
    return tuple(int(v) for v in im.value(name, node, "shape"))


@importer("Reshape")
def _im_reshape(im, node, a):
    gc = _api()
    x, shape = im.get(node.input[0]), _shape_input(im, node, 1)
    if isinstance(shape, _ShapeOf):
        return [gc.reshape_like(x, shape.of)]
    if 0 in shape and not a.get("allowzero", 0):  # 0 copies the input's dim
        shape = tuple(x.shape[i] if d == 0 else d for i, d in enumerate(shape))
    return [gc.reshape(x, shape)]


@importer("Expand")
def _im_expand(im, node, a):
    gc = _api()
    x, shape = im.get(node.input[0]), _shape_input(im, node, 1)
    if isinstance(shape, _ShapeOf):
        return [gc.broadcast_like(x, shape.of)]
    full = np.broadcast_shapes(tuple(d if isinstance(d, int) else 1 for d in x.shape), shape)
    return [gc.broadcast_to(x, tuple(int(d) for d in full))]


@importer("Flatten")
def _im_flatten(im, node, a):
    gc = _api()
    x = im.get(node.input[0])
    axis = int(a.get("axis", 1))
    lead = x.shape[:axis]
    if all(isinstance(d, int) for d in lead):
        return [gc.reshape(x, (int(np.prod(lead, dtype=np.int64)), -1))]
    if axis == 1:
        return [gc.reshape(x, (-1, int(np.prod(x.shape[1:], dtype=np.int64))))]
    raise OnnxImportError(f"Flatten {node.name!r}: needs known dims before axis {axis}")


@importer("Transpose")
def _im_transpose(im, node, a):
    gc = _api()
    x = im.get(node.input[0])
    perm = a.get("perm", list(range(len(x.shape)))[::-1])
    return [gc.transpose(x, perm=list(perm))]


@importer("Unsqueeze")
def _im_unsqueeze(im, node, a):
    gc = _api()
    x = im.get(node.input[0])
    axes = sorted(int(v) % (len(x.shape) + len(_axes(im, node, a))) for v in _axes(im, node, a))
    for ax in axes:
        x = gc.expand_dims(x, ax)
    return [x]


@importer("Squeeze")
def _im_squeeze(im, node, a):
    gc = _api()
    axes = _axes(im, node, a)
    return [gc.squeeze(im.get(node.input[0]), axis=list(axes) if axes else None)]


@importer("Concat")
def _im_concat(im, node, a):
    gc = _api()
    return [gc.concat([im.get(n) for n in node.input], axis=int(a["axis"]))]


@importer("Split")
def _im_split(im, node, a):
    gc = _api()
    x = im.get(node.input[0])
    axis = int(a.get("axis", 0))
    if len(node.input) > 1 and node.input[1]:
        sizes = [int(v) for v in im.value(node.input[1], node, "split sizes")]
    elif "split" in a:
        sizes = list(a["split"])
    else:
        sizes = len(node.output)
    out = gc.split(x, sizes, axis=axis)
    return list(out) if isinstance(out, (list, tuple)) else [out]


@importer("Slice")
def _im_slice(im, node, a):
    x = im.get(node.input[0])
    starts = im.value(node.input[1], node, "starts")
    ends = im.value(node.input[2], node, "ends")
    rank = len(x.shape)
    axes = (
        im.value(node.input[3], node, "axes")
        if len(node.input) > 3 and node.input[3]
        else range(len(starts))
    )
    steps = (
        im.value(node.input[4], node, "steps")
        if len(node.input) > 4 and node.input[4]
        else [1] * len(starts)
    )
    key = [slice(None)] * rank
    for s, e, ax, st in zip(starts, ends, axes, steps):
        s, e, st = int(s), int(e), int(st)
        big = INT64_MAX // 2
        key[int(ax) % rank] = slice(
            None if abs(s) >= big else s, None if abs(e) >= big else e, None if st == 1 else st
        )
    return [x[tuple(key)]]


@importer("Gather")
def _im_gather(im, node, a):
    gc = _api()
    return [gc.gather(im.get(node.input[0]), im.get(node.input[1]), axis=int(a.get("axis", 0)))]


@importer("OneHot")
def _im_one_hot(im, node, a):
    gc = _api()
    depth = int(np.asarray(im.value(node.input[1], node, "depth")).reshape(-1)[0])
    values = im.value(node.input[2], node, "values")
    return [
        gc.one_hot(
            im.get(node.input[0]),
            depth,
            on_value=values[1].item(),
            off_value=values[0].item(),
            axis=int(a.get("axis", -1)),
            dtype=gc.as_dtype(values.dtype),
        )
    ]


@importer("Tile")
def _im_tile(im, node, a):
    gc = _api()
    reps = [int(v) for v in im.value(node.input[1], node, "repeats")]
    return [gc.tile(im.get(node.input[0]), reps)]


@importer("Pad")
def _im_pad(im, node, a):
    gc = _api()
    x = im.get(node.input[0])
    pads = [int(v) for v in im.value(node.input[1], node, "pads")]
    r = len(pads) // 2
    value = 0
    if len(node.input) > 2 and node.input[2]:
        value = np.asarray(im.value(node.input[2], node, "constant value")).item()
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect"):
        raise OnnxImportError(f"Pad {node.name!r}: mode {mode!r} (graphc pads constant, reflect)")
    return [
        gc.pad(
            x, [(pads[i], pads[i + r]) for i in range(r)], mode=mode.upper(), constant_values=value
        )
    ]


@importer("Constant")
def _im_constant(im, node, a):
    value = a.get("value")
    if value is None:
        raise OnnxImportError(f"Constant {node.name!r}: only the `value` form is read")
    im.static[node.output[0]] = im.nh.to_array(value)
    return [None]


@importer("ConstantOfShape")
def _im_constant_of_shape(im, node, a):
    shape = [int(v) for v in im.value(node.input[0], node, "shape")]
    fill = im.nh.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
    im.static[node.output[0]] = np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)
    return [None]


@importer("Softmax", "LogSoftmax")
def _im_softmax(im, node, a):
    gc = _api()
    fn = gc.softmax if node.op_type == "Softmax" else gc.log_softmax
    return [fn(im.get(node.input[0]), axis=int(a.get("axis", -1)))]


@importer("LeakyRelu")
def _im_leaky_relu(im, node, a):
    gc = _api()
    return [gc.leaky_relu(im.get(node.input[0]), alpha=float(a.get("alpha", 0.01)))]


def _nchw_pads(node, a, k_hw, s_hw, x):
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER",):
        return "SAME", None
    if auto == "VALID":
        return "VALID", None
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if not any(pads):
        return "VALID", None
    hw = x.shape[2:4]
    if all(isinstance(d, int) for d in hw) and pads == _same_pads(hw, k_hw, s_hw):
        return "SAME", None
    return "VALID", pads


def _nhwc_input(x, pads):
    gc = _api()
    y = gc.transpose(x, perm=[0, 2, 3, 1])
    if pads:
        y = gc.pad(y, [(0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)])
    return y


@importer("Conv")
def _im_conv(im, node, a):
    gc = _api()
    x, w = im.get(node.input[0]), im.get(node.input[1])
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise OnnxImportError(f"Conv {node.name!r}: groups and dilations are not supported")
    k_hw = tuple(a.get("kernel_shape", w.shape[2:]))
    s_hw = tuple(a.get("strides", [1, 1]))
    padding, pads = _nchw_pads(node, a, k_hw, s_hw, x)
    y = gc.conv2d(
        _nhwc_input(x, pads), gc.transpose(w, perm=[2, 3, 1, 0]), strides=s_hw, padding=padding
    )
    if len(node.input) > 2 and node.input[2]:
        y = gc.bias_add(y, im.get(node.input[2]))
    return [gc.transpose(y, perm=[0, 3, 1, 2])]


@importer("MaxPool", "AveragePool")
def _im_pool(im, node, a):
    gc = _api()
    if len(node.output) > 1 and node.output[1]:
        raise OnnxImportError(f"MaxPool {node.name!r}: the indices output is not supported")
    x = im.get(node.input[0])
    k_hw, s_hw = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
    padding, pads = _nchw_pads(node, a, k_hw, s_hw, x)
    if pads:
        raise OnnxImportError(
            f"{node.op_type} {node.name!r}: pads {pads} are neither SAME nor VALID"
        )
    fn = gc.max_pool if node.op_type == "MaxPool" else gc.avg_pool
    y = fn(gc.transpose(x, perm=[0, 2, 3, 1]), ksize=k_hw, strides=s_hw, padding=padding)
    return [gc.transpose(y, perm=[0, 3, 1, 2])]


def _input_shape(value_info):
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(None)
    return tuple(dims)


def load(path_or_model, variables=False, graph=None):
    """A graphc Graph computing the ONNX model at ``path_or_model`` (a path, bytes or a
    ModelProto). Graph inputs become placeholders and outputs keep their ONNX names
    (``graph.get_tensor_by_name("logits")``; also the graph's ``"outputs"`` collection, as for
    ``gc.load``). Initializers become constants, or with ``variables=True`` variables (run
    ``gc.global_variables_initializer()``), to train further. An ONNX op graphc does not
    know is an :class:`OnnxImportError` naming every such node."""
    onnx, helper, numpy_helper = _onnx()
    from .frontend.dsl import OUTPUTS
    from .ir.graph import Graph
    from .ops.sources import placeholder

    if isinstance(path_or_model, (bytes, bytearray)):
        model = onnx.load_model_from_string(bytes(path_or_model))
    elif isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    else:
        try:
            model = onnx.load(str(path_or_model))
        except Exception as e:
            raise OnnxImportError(f"cannot read ONNX model {path_or_model}: {e}") from None
    g = model.graph
    unknown = [n for n in g.node if n.op_type not in IMPORTERS or n.domain not in ("", "ai.onnx")]
    if unknown:
        listed = ", ".join(f"{n.name or n.output[0]!r} ({n.op_type})" for n in unknown[:20])
        raise OnnxImportError(
            f"cannot load {getattr(path_or_model, 'name', path_or_model)}: "
            f"graphc has no import for {listed}"
        )
    graph = graph or Graph()
    im = _Importer(model, variables)
    inits = {t.name for t in g.initializer}
    with graph.as_default():
        for t in g.initializer:
            im.static[t.name] = numpy_helper.to_array(t)
        for vi in g.input:
            if vi.name in inits:
                continue  # an initializer listed as an input: its value is its default
            dtype = _np_dtype(vi.type.tensor_type.elem_type)
            from .dtypes import as_dtype

            im.tensors[vi.name] = placeholder(
                as_dtype(dtype), shape=_input_shape(vi), name=_safe_name(vi.name)
            )
        for node in g.node:
            try:
                outs = IMPORTERS[node.op_type](im, node, _attrs(node, helper))
            except OnnxImportError:
                raise
            except GraphcError as e:
                raise OnnxImportError(
                    f"ONNX node {node.name!r} ({node.op_type}): {e.message}"
                ) from None
            for name, t in zip(node.output, outs):
                if t is not None:
                    im.tensors[name] = t
        for vi in g.output:
            from .ops.array import identity

            t = identity(im.get(vi.name), name=_safe_name(vi.name))
            graph.add_to_collection(OUTPUTS, t)
    return graph
