"""TF 1.x variable sharing: ``variable_scope``, ``get_variable``, ``AUTO_REUSE``.

The rules (TF 1.x's):
  * ``get_variable(name)`` names the variable ``<enclosing variable scopes>/name``; name
    scopes (``tf.name_scope``) do not count.
  * In a scope with ``reuse=False`` (the default) the name must be new; with ``reuse=True``
    it must exist (and the existing variable is returned); with ``AUTO_REUSE`` either.
    A nested scope inherits reuse, and cannot turn it off again.
  * ``initializer``, ``regularizer`` and ``dtype`` given to a scope are defaults for the
    variables inside; without one, float variables start from ``glorot_uniform`` and
    integer ones from zeros.
  * Entering a variable scope also opens a name scope for the ops built inside.

The variables made this way live in a store kept per graph (a weak mapping, so a graph
that goes away takes its store along)."""

from __future__ import annotations

import contextlib
import weakref

from .. import dtypes as D
from ..errors import DTypeError, GraphcError, NotFoundError, ShapeError, user_location
from ..ir.graph import get_default_graph
from ..ir.node import Tensor
from ..ops.sources import constant
from ..ops.state import Variable
from ..shapes import as_shape, format_shape
from . import initializers as _init

REGULARIZATION_LOSSES = "regularization_losses"


class _AutoReuse:
    def __repr__(self):
        return "tf.AUTO_REUSE"


AUTO_REUSE = _AutoReuse()


class VariableScope:
    """A variable scope: its full name and the defaults it gives ``get_variable``."""

    def __init__(
        self, name="", reuse=False, initializer=None, regularizer=None, dtype=None, name_scope=""
    ):
        self.name = name
        self.reuse = reuse
        self.initializer = initializer
        self.regularizer = regularizer
        self.dtype = dtype
        self.original_name_scope = name_scope

    def reuse_variables(self):
        """From now on ``get_variable`` in this scope returns existing variables."""
        self.reuse = True

    def set_initializer(self, initializer):
        self.initializer = initializer

    def set_regularizer(self, regularizer):
        self.regularizer = regularizer

    def __repr__(self):
        return f"<VariableScope {self.name!r} reuse={self.reuse}>"


class _Store:
    def __init__(self):
        self.variables: dict[str, Variable] = {}
        self.stack = [VariableScope()]
        self.scope_counts: dict[str, int] = {}  # full scope name -> times opened


_stores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _outermost(graph):
    """Variables and scopes belong to the program's graph, not to a control-flow body's."""
    while getattr(graph, "parent", None) is not None:
        graph = graph.parent
    return graph


def _store(graph=None) -> _Store:
    graph = _outermost(graph or get_default_graph())
    store = _stores.get(graph)
    if store is None:
        store = _stores[graph] = _Store()
    return store


def get_variable_scope() -> VariableScope:
    return _store().stack[-1]


def _unique_default(store, parent, default_name):
    """``default_name``, or ``default_name_1``, ``_2``… if a scope of that name was opened
    already inside the enclosing one (how unnamed layers become dense, dense_1…)."""
    base = f"{parent.name}/{default_name}" if parent.name else default_name
    if not store.scope_counts.get(base):
        return base
    i = 1
    while store.scope_counts.get(f"{base}_{i}"):
        i += 1
    return f"{base}_{i}"


def _close_subscopes(store, full):
    # TF forgets which scopes were opened inside a scope when it is left, so that a second
    # pass through the same code (reuse=True) gives its unnamed layers the same names
    prefix = full + "/"
    for key in [k for k in store.scope_counts if k.startswith(prefix)]:
        del store.scope_counts[key]


@contextlib.contextmanager
def variable_scope(
    name_or_scope=None,
    default_name=None,
    values=None,
    initializer=None,
    regularizer=None,
    caching_device=None,
    partitioner=None,
    custom_getter=None,
    reuse=None,
    dtype=None,
    use_resource=None,
    constraint=None,
    auxiliary_name_scope=True,
):
    """``with tf.variable_scope("layer1", reuse=...):`` (see the module docstring)."""
    if name_or_scope is None and default_name is None:
        raise GraphcError("variable_scope needs a name (or a default_name)", user_location())
    graph = get_default_graph()
    store = _store(graph)
    parent = store.stack[-1]
    if isinstance(name_or_scope, VariableScope):
        full, base = name_or_scope.name, name_or_scope
    elif name_or_scope is not None:
        full = f"{parent.name}/{name_or_scope}" if parent.name else str(name_or_scope)
        base = parent
    else:
        full, base = _unique_default(store, parent, default_name), parent
    # reuse is inherited and sticky: once on, a nested scope cannot switch it off
    if parent.reuse is True or parent.reuse is AUTO_REUSE:
        reuse = parent.reuse if reuse in (None, False) else reuse
    elif reuse is None:
        reuse = base.reuse if base is not parent else False
    short = full.rsplit("/", 1)[-1]
    with contextlib.ExitStack() as stack:
        scope_name = ""
        if auxiliary_name_scope:
            scope_name = stack.enter_context(graph.name_scope(short))
        scope = VariableScope(
            full,
            reuse,
            initializer or base.initializer,
            regularizer or base.regularizer,
            dtype or base.dtype,
            scope_name,
        )
        store.stack.append(scope)
        store.scope_counts[full] = store.scope_counts.get(full, 0) + 1
        try:
            yield scope
        finally:
            store.stack.pop()
            _close_subscopes(store, full)


def get_variable(
    name,
    shape=None,
    dtype=None,
    initializer=None,
    regularizer=None,
    trainable=None,
    collections=None,
    caching_device=None,
    partitioner=None,
    validate_shape=True,
    use_resource=None,
    custom_getter=None,
    constraint=None,
    synchronization=None,
    aggregation=None,
):
    """The variable ``<scope>/name``: created, or returned when the scope reuses."""
    store = _store()
    scope = store.stack[-1]
    full = f"{scope.name}/{name}" if scope.name else name
    existing = store.variables.get(full)
    if existing is not None:
        if scope.reuse is not True and scope.reuse is not AUTO_REUSE:
            raise GraphcError(
                f"variable {full} already exists ({existing.describe()}); to share it, set "
                "reuse=True or reuse=tf.AUTO_REUSE in the enclosing variable_scope",
                user_location(),
            )
        _check_same(existing, shape, dtype)
        return existing
    if scope.reuse is True:
        raise NotFoundError(
            f"variable {full} does not exist (or was not made with get_variable), and the "
            "scope reuses variables; use reuse=tf.AUTO_REUSE to create it on first use",
            user_location(),
        )
    var = _create(store, scope, full, shape, dtype, initializer, trainable, collections)
    reg = regularizer or scope.regularizer
    if reg is not None:
        loss = reg(var)
        if loss is not None:
            var.graph.add_to_collection(REGULARIZATION_LOSSES, loss)
    return var


def _check_same(var, shape, dtype):
    if shape is not None and tuple(as_shape(shape)) != tuple(var.shape):
        raise ShapeError(
            f"trying to share variable {var.describe()} with shape {format_shape(as_shape(shape))}",
            user_location(),
        )
    if dtype is not None and D.as_dtype(dtype) is not var.dtype:
        raise DTypeError(
            f"trying to share variable {var.describe()} as {D.as_dtype(dtype)}", user_location()
        )


def _create(store, scope, full, shape, dtype, initializer, trainable, collections):
    # made in the program's graph even when first asked for inside a loop body (TF's
    # init_scope): the body then captures it like any outer tensor
    with _outermost(get_default_graph()).as_default():
        return _create_here(store, scope, full, shape, dtype, initializer, trainable, collections)


def _create_here(store, scope, full, shape, dtype, initializer, trainable, collections):
    graph = get_default_graph()
    init = _init.as_initializer(initializer if initializer is not None else scope.initializer)
    if isinstance(init, Tensor):
        value = init
    elif init is not None and not callable(init):  # a plain value or array
        with graph.name_scope(full + "/Initializer/"):
            value = constant(init, dtype=dtype or scope.dtype, shape=shape)
    else:
        dt = D.as_dtype(dtype or scope.dtype or D.float32)
        if init is None:
            init = _init.GlorotUniform() if dt.is_floating else _init.Zeros()
        if shape is None:
            raise ShapeError(
                f"get_variable {full!r} needs a shape (or an initial value)", user_location()
            )
        # the initializer's ops are named <variable>/Initializer/..., as in TF
        with graph.name_scope(full + "/Initializer/"):
            value = init(tuple(as_shape(shape)), dtype=dt)
    if dtype is not None and value.dtype is not D.as_dtype(dtype):
        raise DTypeError(
            f"get_variable {full!r}: the initial value is {value.describe()} but "
            f"dtype={D.as_dtype(dtype)} was asked for",
            user_location(),
        )
    # the variable's own name ignores name scopes: it is the variable scope path
    with graph.name_scope(""):
        var = Variable(
            value,
            trainable=True if trainable is None else trainable,
            name=full,
            collections=collections,
        )
    store.variables[full] = var
    return var


def all_scoped_variables(graph=None) -> dict:
    """name -> Variable for every variable made by get_variable in ``graph``."""
    return dict(_store(graph).variables)
