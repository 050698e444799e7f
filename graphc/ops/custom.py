"""User-defined ops: ``gc.register_op`` and the ``@gc.custom_gradient`` decorator.

They are the graph counterparts of define-by-run's ``autograd.Function``: a forward
computation and a backward rule the user writes. Both build ordinary registry OpDefs, so
user ops are checked, differentiated, optimized and run like built-in ones."""

from __future__ import annotations

import functools

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, GradientError, GraphcError, ShapeError, user_location
from ..ir.node import Tensor
from ..shapes import as_shape, format_shape
from .registry import REGISTRY, OpDef, register
from .sources import convert

# --- register_op ------------------------------------------------------------------------------


def register_op(name, forward, shape_fn=None, dtype_fn=None, gradient=None, doc=""):
    """Register a user op and return the function that builds it.

    * ``forward(*numpy_inputs) -> numpy array`` computes the op when the graph runs;
    * ``shape_fn(*input_shapes) -> shape`` and ``dtype_fn(*input_dtypes) -> dtype`` give
      its static output shape and dtype when a node is built (default: the first input's);
    * ``gradient(op, *output_grads) -> [grad or None per input]`` (graph tensors) is its
      pullback; ``op.inputs`` and ``op.outputs`` are the node's tensors. Without it the op
      is not differentiable.

    Registering a name again replaces an earlier *user* op of that name (re-running a
    notebook cell); a built-in op's name is refused.
    """
    if not callable(forward):
        raise GraphcError(f"register_op({name!r}): forward must be a function of numpy arrays")
    previous = REGISTRY.get(name)
    if previous is not None:
        if not previous.extra.get("user"):
            raise GraphcError(
                f"register_op: {name!r} is a built-in op; choose another name", user_location()
            )
        del REGISTRY[name]

    def infer(inputs, attrs):
        shapes = [t.shape for t in inputs]
        dtypes = [t.dtype for t in inputs]
        if shape_fn is not None:
            shape = shape_fn(*shapes)
            shape = None if shape is None else as_shape(shape)
        elif inputs:
            shape = shapes[0]
        else:
            raise GraphcError(f"user op {name!r} has no inputs: give register_op a shape_fn")
        if dtype_fn is not None:
            dtype = D.as_dtype(dtype_fn(*dtypes))
        elif inputs:
            dtype = dtypes[0]
        else:
            raise GraphcError(f"user op {name!r} has no inputs: give register_op a dtype_fn")
        return [(dtype, shape)]

    def kernel(*arrays, dtype, shape):
        out = np.asarray(forward(*arrays))
        if shape is not None and (
            out.ndim != len(shape)
            or any(isinstance(d, int) and d != n for d, n in zip(shape, out.shape, strict=True))
        ):
            raise ValueError(
                f"forward returned shape {out.shape}, but the op's static shape is "
                f"{format_shape(shape)} (check shape_fn)"
            )
        return out.astype(dtype.np, copy=False)

    def pullback(op, *output_grads):
        grads = gradient(op, *output_grads)
        return _as_grad_list(grads, op)

    opdef = register(
        OpDef(
            name,
            _declared(infer),
            numpy=kernel,
            grad=pullback if gradient is not None else None,
            kind="other",
            differentiable=gradient is not None,
            doc=doc or forward.__doc__ or "",
            extra={"user": True, "user_gradient": True},
        )
    )

    def build(*inputs, name=None):
        tensors = [convert(x) for x in inputs]
        try:
            ((dtype, shape),) = infer(tensors, {})
        except GraphcError:
            raise
        except (TypeError, ValueError, IndexError) as e:
            ins = ", ".join(t.describe() for t in tensors)
            raise ShapeError(
                f"user op {opdef.name!r}: its shape_fn/dtype_fn failed on inputs {ins}: {e}",
                user_location(),
            ) from None
        return opdef(*tensors, name=name, dtype=dtype, shape=shape)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = opdef.doc
    build.opdef = opdef
    return build


def _declared(infer):
    """The infer rule of a user op: the builder already ran the user's rules and stored the
    result as attributes, so graph rewrites that rebuild the node reuse them."""

    def rule(inputs, attrs):
        if "dtype" in attrs:
            return [(attrs["dtype"], attrs["shape"])]
        return infer(inputs, attrs)

    return rule


def _as_grad_list(grads, op):
    """A user rule may return one tensor for a one-input op, or a list; numbers and arrays
    become constants of the input's dtype."""
    if isinstance(grads, Tensor) or grads is None:
        grads = [grads]
    if not isinstance(grads, (list, tuple)):
        raise GradientError(
            f"the gradient of {op.describe()} returned {type(grads).__name__}; "
            "return a list with one tensor (or None) per input"
        )
    return [
        g if g is None or isinstance(g, Tensor) else convert(g, like=t)
        for g, t in zip(grads, op.inputs, strict=False)
    ] + list(grads[len(op.inputs) :])


# --- custom_gradient --------------------------------------------------------------------------


def _custom_infer(inputs, attrs):
    n = attrs["n_outputs"]
    return [(t.dtype, t.shape) for t in inputs[:n]]


def _custom_kernel(*arrays, n_outputs, grad_fn):
    return tuple(arrays[:n_outputs])


def _custom_pullback(op, *output_grads):
    n = op.attrs["n_outputs"]
    xs = op.inputs[n:]
    grads = op.attrs["grad_fn"](*output_grads)
    grads = _as_grad_list(grads, _InputsView(op, xs))
    if len(grads) != len(xs):
        raise GradientError(
            f"the grad_fn of {op.describe()} returned {len(grads)} gradients "
            f"for {len(xs)} tensor inputs"
        )
    # nothing flows into the forward computation itself: grad_fn replaces its gradient
    return [None] * n + list(grads)


class _InputsView:
    """The custom op as ``grad_fn`` sees it: only the user's tensor arguments."""

    def __init__(self, op, inputs):
        self.inputs = inputs
        self._op = op

    def describe(self):
        return self._op.describe()


CUSTOM_GRADIENT = register(
    OpDef(
        "custom_gradient",
        _custom_infer,
        numpy=_custom_kernel,
        grad=_custom_pullback,
        kind="other",
        extra={"user_gradient": True},
        doc="Its first inputs unchanged; gradients come from the user's grad_fn.",
    )
)


def custom_gradient(f):
    """Decorator (TensorFlow's): ``f(*args)`` returns ``(output, grad_fn)`` where
    ``grad_fn(*output_grads)`` returns the gradient of each positional argument (a tensor,
    or a list for several; arguments that are not tensors are converted to tensors). The
    forward value is ``f``'s; its gradient is ``grad_fn``'s, not the one autodiff would
    derive from ``f``'s ops::

        @gc.custom_gradient
        def clip_grad_identity(x):
            return gc.identity(x), lambda dy: gc.clip_by_value(dy, -1.0, 1.0)
    """

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        args = [convert(a) for a in args]  # as TF: every positional argument is a tensor
        result = f(*args, **kwargs)
        if not (isinstance(result, tuple) and len(result) == 2 and callable(result[1])):
            raise GraphcError(
                f"@custom_gradient function {f.__name__} must return (output, grad_fn)",
                user_location(),
            )
        outputs, grad_fn = result
        single = isinstance(outputs, Tensor)
        outs = [outputs] if single else [convert(o) for o in outputs]
        if not outs:
            raise DTypeError(f"@custom_gradient function {f.__name__} returned no outputs")
        xs = list(args)
        node = CUSTOM_GRADIENT.build(
            outs + xs, {"n_outputs": len(outs), "grad_fn": grad_fn}, name=f.__name__
        )
        return node.outputs[0] if single else list(node.outputs)

    return wrapper


__all__ = ["register_op", "custom_gradient", "CUSTOM_GRADIENT"]
