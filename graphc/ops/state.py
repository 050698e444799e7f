"""State and control: variables and their assignments, groups, print, check_numerics.

Variables live in the session (``ctx.variables``, keyed by the variable's node); these
kernels read and update them in place, so compiled plans may keep references to them."""

from __future__ import annotations

import threading

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, NumericsError, ShapeError, UninitializedError
from ..ir.graph import get_default_graph
from ..ir.node import Operation, Tensor, _resolve_session
from ..shapes import as_shape, dims_compatible, format_shape
from .array import cast, identity
from .registry import OpDef, register
from .sources import constant, convert

GLOBAL_VARIABLES = "variables"
TRAINABLE_VARIABLES = "trainable_variables"


def _var_kernel(ctx, node, dtype, shape, trainable):
    try:
        return ctx.variables[node]
    except KeyError:
        raise UninitializedError(
            f"variable '{node.name}' is used before it is initialized; run "
            "gc.global_variables_initializer() (or its own .initializer) first",
            node.location,
        ) from None


VARIABLE = register(
    OpDef(
        "variable",
        lambda ins, a: [(a["dtype"], a["shape"])],
        numpy=_var_kernel,
        kind="source",
        stateful=True,
        differentiable=False,
        doc="A value that persists across runs of one session.",
    )
)


class _VariableMeta(type):
    # gc.Variable(initial_value, ...) builds a variable; the graph builds the
    # instance itself as (node, index, dtype, shape).
    def __call__(cls, *args, **kwargs):
        if args and isinstance(args[0], Operation):
            return super().__call__(*args, **kwargs)
        return _make_variable(*args, **kwargs)


class Variable(Tensor, metaclass=_VariableMeta):
    """``gc.Variable(initial_value)``: the tensor that reads the variable's current value,
    with its initializer and assignment helpers."""

    def __init__(self, op, index, dtype, shape):
        super().__init__(op, index, dtype, shape)
        self.initializer = None
        self.initial_value = None
        self.trainable = True

    @property
    def var_op(self):
        return self.op

    def value(self):
        return self

    def read_value(self):
        return self

    def assign(self, value, use_locking=None, name=None, read_value=True):
        return assign(self, value, use_locking=use_locking, name=name)

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        return assign_add(self, delta, use_locking=use_locking, name=name)

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        return assign_sub(self, delta, use_locking=use_locking, name=name)

    def load(self, value, session=None):
        """Set the value directly (TF1's ``Variable.load``)."""
        _resolve_session(session, self).set_variable(self, value)

    def set_shape(self, shape):
        pass

    def __repr__(self):
        return f"<gc.Variable '{self.op.name}' shape={format_shape(self.shape)} dtype={self.dtype}>"


def _make_variable(
    initial_value=None,
    trainable=True,
    name=None,
    dtype=None,
    shape=None,
    collections=None,
    validate_shape=True,
    *,
    caching_device=None,
    expected_shape=None,
    constraint=None,
    use_resource=None,
    synchronization=None,
    aggregation=None,
    import_scope=None,
):
    # the keyword-only arguments are TF 1.x's placement and resource options: accepted so
    # that TF scripts run, and meaningless in graphc
    if initial_value is None:
        raise DTypeError("gc.Variable needs an initial_value (a tensor, array or number)")
    if callable(initial_value) and not isinstance(initial_value, Tensor):
        initial_value = initial_value()
    init = (
        convert(initial_value)
        if isinstance(initial_value, Tensor)
        else constant(initial_value, dtype=dtype)
    )
    if dtype is not None and init.dtype is not D.as_dtype(dtype):
        init = cast(init, dtype)
    vshape = as_shape(shape) if shape is not None else init.shape
    graph = init.graph if isinstance(initial_value, Tensor) else get_default_graph()
    # outside any control_dependencies block, as TF's init_scope: reading the variable must
    # not run what the block waits for (an EMA's shadow made under the update it follows)
    with graph.control_dependencies(None):
        node = VARIABLE.build(
            [],
            {"dtype": init.dtype, "shape": vshape, "trainable": trainable},
            name=name or "Variable",
            output_cls=Variable,
        )
    var = node.outputs[0]
    var.initial_value = init
    var.trainable = trainable
    with graph.control_dependencies(None):
        var.initializer = assign(var, init, name=node.name + "/Assign").op
    for key in collections or [GLOBAL_VARIABLES] + ([TRAINABLE_VARIABLES] if trainable else []):
        graph.add_to_collection(key, var)
    return var


# --- assignment -------------------------------------------------------------------------------

# The target variable is an attribute, not an input: assigning must not read the old value
# (an initializer runs before there is one).


def _assign_infer(ins, attrs):
    (value,) = ins
    ref = attrs["var"].outputs[0]
    if ref.dtype is not value.dtype:
        raise DTypeError(f"cannot assign a {value.dtype} value to {ref.describe()}")
    if ref.shape is not None and value.shape is not None:
        if len(ref.shape) != len(value.shape) or not all(
            dims_compatible(a, b) for a, b in zip(ref.shape, value.shape)
        ):
            raise ShapeError(
                f"cannot assign a value of shape {format_shape(value.shape)} to {ref.describe()}"
            )
    return [(ref.dtype, ref.shape)]


def _assign_kernel(ctx, node, value, var, use_locking=False):
    if use_locking:
        with ctx.lock(var):
            return _assign_kernel(ctx, node, value, var)
    buf = ctx.variables.get(var)
    if buf is None or buf.shape != value.shape:
        ctx.variables[var] = np.array(value, copy=True)  # value has var's dtype (infer)
    else:
        np.copyto(buf, value)
    return ctx.variables[var]


def _assign_add_kernel(ctx, node, delta, var, use_locking=False):
    return _update_in_place(np.add, ctx, delta, var, use_locking)


def _assign_sub_kernel(ctx, node, delta, var, use_locking=False):
    return _update_in_place(np.subtract, ctx, delta, var, use_locking)


def _update_in_place(ufunc, ctx, delta, var, use_locking):
    buf = ctx.variables.get(var)
    if buf is None:
        _var_kernel(ctx, var, None, None, None)
    if use_locking:
        with ctx.lock(var):
            ufunc(buf, delta, out=buf)
    else:
        ufunc(buf, delta, out=buf)
    return buf


# --- use_locking ------------------------------------------------------------------------------
# As in TF 1.x: an assign op built with ``use_locking=True`` holds its variable's lock (one per
# variable and session: ``RunContext.lock``) while it writes, so concurrent updates of one
# variable are serialized and none is lost. Reads take no lock. Without it, concurrent updates
# of one variable may interleave (numpy releases the GIL inside large in-place ufuncs): updates
# can be lost.

_locking_default = threading.local()


class locking:
    """``with locking(True):`` assign ops built inside default to ``use_locking=True`` (how an
    optimizer built with ``use_locking=True`` locks every update it builds)."""

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)

    def __enter__(self):
        self.saved = getattr(_locking_default, "on", False)
        _locking_default.on = self.enabled or self.saved

    def __exit__(self, *exc):
        _locking_default.on = self.saved
        return False


ASSIGN = register(
    OpDef(
        "assign",
        _assign_infer,
        numpy=_assign_kernel,
        kind="state",
        stateful=True,
        differentiable=False,
    )
)
ASSIGN_ADD = register(
    OpDef(
        "assign_add",
        _assign_infer,
        numpy=_assign_add_kernel,
        kind="state",
        stateful=True,
        differentiable=False,
    )
)
ASSIGN_SUB = register(
    OpDef(
        "assign_sub",
        _assign_infer,
        numpy=_assign_sub_kernel,
        kind="state",
        stateful=True,
        differentiable=False,
    )
)


def _assign_fn(opdef):
    def fn(ref, value, use_locking=None, name=None, **_tf_kwargs):
        if not isinstance(ref, Variable):
            raise DTypeError(f"{opdef.name}: the target must be a gc.Variable, got {ref!r}")
        if use_locking is None:
            use_locking = getattr(_locking_default, "on", False)
        extra = {"use_locking": True} if use_locking else {}
        return opdef(convert(value, like=ref), name=name, var=ref.op, **extra)

    fn.__name__ = opdef.name
    return fn


assign = _assign_fn(ASSIGN)
assign_add = _assign_fn(ASSIGN_ADD)
assign_sub = _assign_fn(ASSIGN_SUB)
assign.__doc__ = "Set ``ref`` to ``value`` in the session; returns the new value."
assign_add.__doc__ = "``ref += delta`` in place (the graph form of ``add_``)."
assign_sub.__doc__ = "``ref -= delta`` in place."


# --- grouping and control ---------------------------------------------------------------------


def _no_op_kernel(ctx, node):
    return ()  # it exists for its control edges


NO_OP = register(
    OpDef(
        "no_op",
        lambda ins, a: [],
        numpy=_no_op_kernel,
        kind="state",
        stateful=True,
        differentiable=False,
    )
)


def no_op(name=None):
    """An op that does nothing: a target for control dependencies."""
    return NO_OP.build([], {}, name=name)


def group(*inputs, name=None):
    """An op that runs all of ``inputs`` (tensors or ops); fetch it for their side effects."""
    if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
        inputs = tuple(inputs[0])
    ops = [t.op if isinstance(t, Tensor) else t for t in inputs if t is not None]
    graph = ops[0].graph if ops else get_default_graph()
    # as_default: the no_op has no inputs, so it would otherwise join the default graph
    with graph.as_default(), graph.control_dependencies(ops):
        return NO_OP.build([], {}, name=name or "group_deps")


def control_dependencies(control_inputs):
    """``with gc.control_dependencies([a, b]):`` ops built inside run after a and b."""
    return get_default_graph().control_dependencies(control_inputs)


def tuple_(tensors, name=None):
    """Identities of ``tensors`` that are computed only once all of them are (TF's ``tuple``)."""
    g = group(*tensors)
    with control_dependencies([g]):
        return [identity(t) for t in tensors]


# --- print and check_numerics -----------------------------------------------------------------


def _print_kernel(ctx, node, x, *data, message, summarize):
    with np.printoptions(threshold=summarize or 1000):
        parts = [message] + [np.array2string(np.asarray(d)) for d in data]
    ctx.print(" ".join(p for p in parts if p))
    return x


PRINT = register(
    OpDef(
        "print",
        lambda ins, a: [(ins[0].dtype, ins[0].shape)],
        numpy=_print_kernel,
        kind="state",
        stateful=True,
        grad=lambda op, g: [g] + [None] * (len(op.inputs) - 1),
        samples=lambda rng: [
            (
                [rng.standard_normal((2, 3)), rng.standard_normal(4)],
                {"message": "sample:", "summarize": None},
            )
        ],
    )
)


def print_(input_, data=None, message="", summarize=None, name=None):
    """Identity on ``input_`` that prints ``message`` and ``data`` (default: the value) each run."""
    x = convert(input_)
    data = [x] if data is None else [convert(d) for d in data]
    return PRINT(x, *data, name=name, message=message, summarize=summarize)


def _check_numerics_kernel(ctx, node, x, message):
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        n_nan = int(np.isnan(x).sum())
        n_inf = int(np.isinf(x).sum())
        raise NumericsError(
            f"check_numerics failed: {message} ({n_nan} NaN, {n_inf} Inf in "
            f"'{node.inputs[0].name}', shape {x.shape})",
            node.location,
        )
    return x


CHECK_NUMERICS = register(
    OpDef(
        "check_numerics",
        lambda ins, a: [(ins[0].dtype, ins[0].shape)],
        numpy=_check_numerics_kernel,
        kind="state",
        stateful=True,
        grad=lambda op, g: [g],
        samples=lambda rng: [([rng.standard_normal((2, 3))], {"message": "finite"})],
    )
)


def check_numerics(tensor, message="", name=None):
    """Identity that raises a NumericsError naming this line when ``tensor`` has NaN or Inf."""
    return CHECK_NUMERICS(convert(tensor), name=name, message=message)


# --- collections ------------------------------------------------------------------------------


def global_variables(scope=None):
    """The graph's variables (those whose name starts with ``scope``, if given)."""
    return get_default_graph().get_collection(GLOBAL_VARIABLES, scope)


def trainable_variables(scope=None):
    """The variables optimizers update by default (``trainable=True``)."""
    return get_default_graph().get_collection(TRAINABLE_VARIABLES, scope)


def variables_initializer(var_list, name="init"):
    """An op that runs the initializers of ``var_list``."""
    inits = [v.initializer for v in var_list]
    if not inits:
        return no_op(name=name)
    return group(*inits, name=name)


def global_variables_initializer():
    """An op that initializes every variable of the default graph."""
    return variables_initializer(global_variables(), name="init")
