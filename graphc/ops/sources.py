"""Where values come from: constants, placeholders, and turning Python values into tensors."""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, FeedError, GraphcError
from ..ir.node import Tensor
from ..shapes import as_shape
from .registry import OpDef, register


def _const_infer(inputs, attrs):
    v = attrs["value"]
    return [(D.as_dtype(v.dtype), v.shape)]


def _const_samples(rng):
    return [([], {"value": rng.standard_normal((2, 3)).astype(np.float32)})]


def _const(value):
    return value


CONST = register(
    OpDef(
        "const",
        _const_infer,
        numpy=_const,
        kind="source",
        differentiable=False,
        samples=_const_samples,
        doc="A constant array, stored in the graph.",
    )
)


def _placeholder_infer(inputs, attrs):
    return [(attrs["dtype"], attrs["shape"])]


def _placeholder_kernel(dtype, shape):
    raise FeedError("a placeholder must be fed")  # the session reports which one and why


PLACEHOLDER = register(
    OpDef(
        "placeholder",
        _placeholder_infer,
        numpy=_placeholder_kernel,
        kind="source",
        differentiable=False,
        stateful=True,
        doc="A value that must be fed at run time.",
    )
)


def _pwd_infer(inputs, attrs):
    return [(inputs[0].dtype, attrs["shape"])]


# stateful: it must never be folded into a constant, since a feed may replace its value
def _pwd_kernel(ctx, node, x, shape):
    return x  # what a run computes when nothing is fed for it


PLACEHOLDER_WITH_DEFAULT = register(
    OpDef(
        "placeholder_with_default",
        _pwd_infer,
        numpy=_pwd_kernel,
        kind="source",
        grad=lambda op, g: [g],
        stateful=True,
        samples=lambda rng: [([rng.standard_normal((2, 3))], {"shape": (None, 3)})],
        doc="Its input unless a value is fed for it.",
    )
)


def constant(value, dtype=None, shape=None, name=None) -> Tensor:
    """A constant tensor. Python floats default to float32, ints to int32."""
    if isinstance(value, Tensor):
        raise DTypeError(
            "gc.constant() takes Python or numpy values, not a tensor "
            f"({value.describe()}); use gc.identity or gc.cast"
        )
    dt = D.as_dtype(dtype) if dtype is not None else D.default_dtype_of(value)
    try:
        arr = np.array(value, dtype=dt.np)
    except (TypeError, ValueError) as e:
        raise DTypeError(f"cannot make a {dt} constant from {value!r}: {e}") from None
    if shape is not None:
        shape = tuple(as_shape(shape))
        if arr.size == 1 and np.prod(shape, dtype=np.int64) != 1:
            arr = np.full(shape, arr.reshape(()), dtype=dt.np)
        else:
            try:
                arr = arr.reshape(shape)
            except ValueError:
                raise GraphcError(
                    f"constant of {arr.size} elements cannot have shape {shape}"
                ) from None
    arr.setflags(write=False)
    return CONST(name=name, value=arr)


def placeholder(dtype=D.float32, shape=None, name=None) -> Tensor:
    """A value fed at run time. ``shape=None`` accepts any shape; ``None`` dims accept any
    size; a string dim such as ``"N"`` must take the same size wherever it appears."""
    return PLACEHOLDER(name=name or "placeholder", dtype=D.as_dtype(dtype), shape=as_shape(shape))


def placeholder_with_default(input, shape, name=None) -> Tensor:
    """``input`` unless a value is fed for this tensor."""
    x = convert(input)
    return PLACEHOLDER_WITH_DEFAULT(
        x, name=name or "placeholder_with_default", shape=as_shape(shape)
    )


def convert(value, dtype=None, *, like: Tensor | None = None, what: str = "") -> Tensor:
    """Make ``value`` a tensor. Non-tensor values next to a tensor ``like`` are weak: they take
    its dtype (``x * 2``, ``x + np.ones(3)``) as long as that keeps their meaning."""
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype is not D.as_dtype(dtype):
            raise DTypeError(f"{what}expected a {D.as_dtype(dtype)} tensor, got {value.describe()}")
        return value
    if hasattr(value, "_as_graph_tensor"):  # e.g. layers that behave like tensors
        return value._as_graph_tensor()
    if isinstance(value, (list, tuple)) and _holds_tensor(value):
        return _pack(value, dtype, like)
    if dtype is None and like is not None:
        if D.is_python_scalar(value):
            dtype = D.weak_scalar_dtype(value, like.dtype, where=what)
        else:
            arr = np.asarray(value)
            target = like.dtype
            ok = (
                arr.dtype.kind == target.np.kind
                or (arr.dtype.kind in "iub" and target.np.kind in "fiu")
                or (arr.dtype.kind == "b" and target.is_bool)
            )
            if not ok:
                raise DTypeError(
                    f"{what}cannot combine a {arr.dtype} array with a {target} "
                    "tensor; cast one of them"
                )
            dtype = target
    return constant(value, dtype=dtype)


def _holds_tensor(value) -> bool:
    return any(
        isinstance(v, Tensor)
        or hasattr(v, "_as_graph_tensor")
        or (isinstance(v, (list, tuple)) and _holds_tensor(v))
        for v in value
    )


def _pack(values, dtype=None, like=None) -> Tensor:
    """A (nested) Python list holding tensors, stacked along a new first axis as TF packs
    it (``tf.reduce_mean([a, b])``, ``tf.stop_gradient([y])``); the plain numbers in it
    take the tensors' dtype."""
    from .array import stack

    parts = [
        _pack(v, dtype, like) if isinstance(v, (list, tuple)) and _holds_tensor(v) else v
        for v in values
    ]
    first = next(p for p in parts if isinstance(p, Tensor) or hasattr(p, "_as_graph_tensor"))
    first = convert(first, dtype)
    tensors = [convert(p, dtype, like=first) for p in parts]
    for t in tensors:
        if t.dtype is not first.dtype:
            raise DTypeError(
                f"cannot pack a list of {first.dtype} and {t.dtype} tensors "
                f"({first.describe()}, {t.describe()}); cast them to one dtype"
            )
    return stack(tensors, axis=0)
