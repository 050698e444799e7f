"""Operations (immutable nodes) and the symbolic Tensors they produce."""

from __future__ import annotations

from types import MappingProxyType

from ..errors import DefineAndRunError
from ..shapes import format_shape


class TensorShape(tuple):
    """A static shape: a tuple of dims (``None`` unknown), with TF1's helpers."""

    def as_list(self):
        return list(self)

    @property
    def ndims(self):
        return len(self)

    @property
    def rank(self):
        return len(self)

    @property
    def dims(self):
        return list(self)

    def is_fully_defined(self):
        return all(isinstance(d, int) for d in self)

    def num_elements(self):
        n = 1
        for d in self:
            if not isinstance(d, int):
                return None
            n *= d
        return n

    def __getitem__(self, key):
        # TF1 code slices shapes: ``shape[1:4].num_elements()``
        item = tuple.__getitem__(self, key)
        return TensorShape(item) if isinstance(key, slice) else item

    def __repr__(self):
        return f"TensorShape({list(self)})"


_NO_ATTRS = MappingProxyType({})  # shared by the many ops without attributes


class Operation:
    """One node of the graph. Built once, never changed: passes build new nodes."""

    __slots__ = (
        "graph",
        "op",
        "inputs",
        "attrs",
        "name",
        "outputs",
        "control_inputs",
        "location",
        "id",
        "origin",
        "__weakref__",
    )

    def __init__(self, graph, op, inputs, attrs, name, control_inputs, location, id, origin=None):
        self.graph = graph
        self.op = op  # the OpDef (registry entry) this node applies
        self.inputs = tuple(inputs)  # Tensors
        self.attrs = MappingProxyType(dict(attrs)) if attrs else _NO_ATTRS
        self.name = name
        self.control_inputs = tuple(control_inputs)
        self.location = location  # SourceLocation of the user's line
        self.id = id  # creation index: a topological order of the graph
        self.origin = origin  # the forward op a gradient node differentiates
        self.outputs = ()

    @property
    def type(self) -> str:
        return self.op.name

    def run(self, feed_dict=None, session=None):
        """Run this operation in ``session`` (default: the default session)."""
        _resolve_session(session, self).run(self, feed_dict)

    def describe(self) -> str:
        """``matmul 'dense/MatMul' at model.py:12`` — the way errors name a node."""
        where = f" at {self.location}" if self.location else ""
        return f"{self.op.name} '{self.name}'{where}"

    def __repr__(self):
        return f"<Operation '{self.name}' type={self.op.name}>"


class Tensor:
    """A symbolic value: output ``index`` of operation ``op``, with a static dtype and shape."""

    __slots__ = ("op", "index", "dtype", "_shape")

    # Tensors are dict keys (feed_dict), so == and hash are identity, as in TensorFlow 1.x;
    # use gc.equal for the elementwise comparison.
    __array_priority__ = 100

    def __init__(self, op: Operation, index: int, dtype, shape):
        self.op = op
        self.index = index
        self.dtype = dtype
        self._shape = None if shape is None else TensorShape(shape)

    @property
    def shape(self):
        return self._shape

    def get_shape(self):
        return self._shape if self._shape is not None else TensorShape(())

    @property
    def ndim(self):
        return None if self._shape is None else len(self._shape)

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.index}"

    @property
    def graph(self):
        return self.op.graph

    @property
    def location(self):
        return self.op.location

    def eval(self, feed_dict=None, session=None):
        """Compute this tensor in ``session`` (default: the default session)."""
        return _resolve_session(session, self).run(self, feed_dict)

    def describe(self) -> str:
        where = f" (built at {self.op.location})" if self.op.location else ""
        return f"'{self.name}' [{self.dtype}{format_shape(self._shape)}]{where}"

    def __repr__(self):
        return f"<Tensor '{self.name}' shape={format_shape(self._shape)} dtype={self.dtype}>"

    def __bool__(self):
        raise DefineAndRunError(
            f"a symbolic tensor {self.describe()} has no value while the graph is being built, "
            "so it cannot be used in a Python `if`, `while`, `and`/`or` or `bool()`. graphc is "
            "define-and-run: use gc.where(cond, a, b) to choose inside the graph, or run the "
            "tensor in a Session and branch on the numpy result.",
            self.op.location,
        )

    def __array__(self, dtype=None, copy=None):
        raise DefineAndRunError(
            f"a symbolic tensor {self.describe()} has no value while the graph is being built, "
            "so numpy cannot convert it (np.asarray, np.array, a numpy function). graphc is "
            "define-and-run: use graphc's ops on it inside the graph, or run the tensor in a "
            "Session and use the numpy result.",
            self.op.location,
        )

    def __len__(self):
        if self._shape is None or not self._shape or not isinstance(self._shape[0], int):
            raise DefineAndRunError(
                f"len() of {self.describe()}: its first dimension is not static", self.op.location
            )
        return self._shape[0]

    def __iter__(self):
        raise DefineAndRunError(
            f"cannot iterate over the symbolic tensor {self.describe()}; use gc.split or "
            "gc.unstack, or run it first",
            self.op.location,
        )

    def __index__(self):
        raise DefineAndRunError(
            f"the symbolic tensor {self.describe()} cannot be used as a Python integer",
            self.op.location,
        )

    def __float__(self):  # without it float() falls back to __index__ and says "integer"
        raise DefineAndRunError(
            f"the symbolic tensor {self.describe()} has no value to convert "
            "with float() until it runs: fetch it with sess.run first",
            self.op.location,
        )

    # identity hashing in C: feed_dict and plan-cache lookups hash tensors on every run
    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other


# The session is a later stage: it registers how to find the default session here.
_default_session_resolver = None


def _resolve_session(session, what):
    if session is not None:
        return session
    return _default_session_resolver(what)


# Operator overloads are installed by graphc.ops (a later module): the IR does not know the ops.
def install_operators(table: dict) -> None:
    for dunder, fn in table.items():
        setattr(Tensor, dunder, fn)
