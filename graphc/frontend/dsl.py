"""The ``.g`` front end: a thin layer from lark's parse tree to the public Python API.

There is no second IR. ``ModelBuilder`` (a lark Interpreter) walks a model's statements in
order; ``ExprBuilder`` (a lark Transformer, one method per grammar alias) evaluates each
expression bottom-up by calling the functions users call from Python — ``gc.placeholder``,
``gc.Variable``, ``gc.relu``, ``x @ w``, ``gc.train.AdamOptimizer`` — inside
``located_at(file:line:col)``, so every node carries its ``.g`` position and every shape or
dtype error names it.

Naming rules (what ``graph.get_tensor_by_name`` sees):
  * inputs, params and named values keep their ``.g`` names; the outermost op of
    ``h = relu(x @ w1)`` is named ``h``, the ops of its arguments ``h/matmul``…;
  * in ``a, b = split(x, 2)`` the call's ops are built inside ``a/`` and ``a``, ``b`` are
    identities of its outputs;
  * the update op of ``train LOSS with OPT(...)`` is named ``train``;
  * a name that is only a Python value (``k = 3``, ``const lr = 0.1``) makes no node: it
    stays a weak scalar, as a Python number would.

A ``.g`` file cannot run code: names resolve only through the tables of ``names.py`` and the
file's own bindings; strings are parsed with ``ast.literal_eval`` from a token that the
grammar restricts to one double-quoted literal.
"""

from __future__ import annotations

import ast
import contextvars
import difflib
import inspect
import os
from dataclasses import dataclass, field

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError
from lark.visitors import Interpreter

from ..errors import (
    DTypeError,
    GraphcError,
    GSyntaxError,
    LimitError,
    NotFoundError,
    ShapeError,
    SourceLocation,
    located_at,
)
from ..ir.graph import MODEL_NAME, OUTPUTS, TRAIN_CLAUSES, Graph, get_default_graph
from ..ir.node import Operation, Tensor
from ..ops.registry import REGISTRY, OpDef
from . import names as N
from .parser import attach_source, parse, source_lines, transform

_MAX_FN_DEPTH = 64
# Limits on what a file may ask for, each reported at the line that passes it: the calls of
# user fns one model may expand to (fns that each call the previous one twice would
# otherwise expand exponentially), the length of a string literal, the digits of an integer
# literal (Python's own int-from-text limit) and a dimension (numpy's: below 2**63).
MAX_FN_CALLS = 50_000
MAX_STRING = 1 << 20
MAX_INT_DIGITS = 4300
_MAX_DIM = (1 << 63) - 1


@dataclass
class TrainClause:
    """What ``train LOSS with OPT(args)`` built: the printer writes it back as that one line
    instead of the gradient and update nodes (ids ``first_id`` to ``last_id``)."""

    loss: Tensor
    optimizer: str
    kwargs: dict
    op: Operation
    first_id: int
    last_id: int


@dataclass
class UserFn:
    name: str
    params: list
    body: Tree
    location: SourceLocation
    scope: Scope  # where it was defined: its body sees those names (lexical scope)
    lets: list = field(default_factory=list)  # a block fn's (name, expr) before its return
    within: str | None = None  # `fn g(...) in f {...}`: traced into f's region


@dataclass
class Scope:
    """Bindings of one model (or one call of a user fn), with the enclosing scope's."""

    values: dict = field(default_factory=dict)
    parent: Scope | None = None

    def lookup(self, name):
        scope = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            scope = scope.parent
        raise KeyError(name)

    def known(self) -> set:
        out, scope = set(), self
        while scope is not None:
            out |= scope.values.keys()
            scope = scope.parent
        return out


class _Source:
    """A file's name and lines, to turn parse-tree positions into SourceLocations."""

    def __init__(self, filename: str, text: str):
        self.filename = filename
        self.lines = source_lines(text)

    def at(self, line: int, col: int) -> SourceLocation:
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return SourceLocation(self.filename, line, col, src)

    def of(self, meta_or_token) -> SourceLocation:
        """The location of a parse-tree node (its meta) or of a token."""
        return self.at(meta_or_token.line, meta_or_token.column)


def _name_of(tree: Tree) -> str:
    """The text of a ``name`` node: ``loss`` or the inside of `` `dense/MatMul` ``."""
    tok = tree.children[0]
    return tok.value[1:-1] if tok.type == "QNAME" else tok.value


class _Guard:
    """Inside: every failure of the Python API becomes a GraphcError at the .g location."""

    def __init__(self, loc: SourceLocation, what: str):
        self.loc, self.what = loc, what

    def __enter__(self):
        self._located = located_at(self.loc)
        self._located.__enter__()

    def __exit__(self, cls, exc, tb):
        self._located.__exit__(cls, exc, tb)
        if exc is None:
            return False
        if isinstance(exc, GraphcError):
            if exc.location is None:
                exc.location = self.loc
                exc.args = (exc._format(),)
            return False
        if isinstance(exc, MemoryError):
            raise LimitError(f"{self.what}: not enough memory", self.loc) from None
        if isinstance(exc, RecursionError):
            raise LimitError(f"{self.what}: too deeply nested", self.loc) from None
        if isinstance(
            exc,
            (
                TypeError,
                ValueError,
                KeyError,
                IndexError,
                AttributeError,
                OverflowError,
                ZeroDivisionError,
            ),
        ):
            detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            kind = DTypeError if isinstance(exc, TypeError) else GraphcError
            raise kind(f"{self.what}: {detail}", self.loc) from None
        return False


def _signature_check(fn, name, args, kwargs, loc):
    """Arity and keyword mistakes, reported against the signature the user can read."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        # an initializer's shape and dtype come from the declaration, not from the user
        hidden = {"shape", "dtype"} if fn in N.INITIALIZERS.values() else set()
        shown = ", ".join(str(p) for p in sig.parameters.values() if p.name not in hidden)
        raise GraphcError(f"{name}(): {e}; it takes ({shown})", loc) from None


class ExprBuilder(Transformer):
    """Evaluates one expression tree. ``root`` is the tree whose op gets ``stmt_name``."""

    def __init__(
        self, model: ModelBuilder, scope: Scope, stmt_name: str | None, root, depth: int = 0
    ):
        super().__init__(visit_tokens=False)
        self.model, self.scope, self.src = model, scope, model.src
        self.stmt_name, self.root, self.depth = stmt_name, root, depth

    def evaluate(self, tree):
        if not isinstance(tree, Tree):  # a bare token (never produced by this grammar)
            raise GraphcError("unexpected token", self.src.of(tree))
        try:
            return transform(self, tree, self.src.filename, self.src.lines)
        except VisitError as e:
            inner = e.orig_exc
            while isinstance(inner, VisitError):
                inner = inner.orig_exc
            raise inner from None

    # -- building, named and located --------------------------------------------------------
    def _build(self, meta, what, fn, *args, at=None, **kwargs):
        """Call ``fn`` located at ``at`` (default: the node's start). The statement's root op
        gets the statement's name at the graph's root scope; the rest is built inside the
        ``NAME/`` scope."""
        loc = at or self.src.of(meta)
        with _Guard(loc, what):
            if meta is self.root and self.stmt_name and _accepts_name(fn):
                with self.model.graph.name_scope(None):
                    return fn(*args, name=self.stmt_name, **kwargs)
            return fn(*args, **kwargs)

    def _tensor(self, value, like, loc, what):
        """A Python literal next to a tensor becomes a weak constant here, inside the
        statement's scope (so it never takes a name a later statement uses)."""
        if isinstance(value, (Tensor, Operation, tuple, str)) or value is None:
            return value
        from ..ops.sources import convert

        with _Guard(loc, what):
            return convert(value, like=like)

    # -- atoms --------------------------------------------------------------------------------
    def int(self, children):
        tok = children[0]
        if len(tok.value) > MAX_INT_DIGITS:
            raise GraphcError(
                f"an integer literal of {len(tok.value)} digits: at most "
                f"{MAX_INT_DIGITS} are allowed",
                self.src.of(tok),
            )
        return int(tok.value)

    def float(self, children):
        return float(children[0].value)

    def string(self, children):
        # The STRING token is exactly one double-quoted literal (see the grammar), so
        # literal_eval only ever decodes escapes; it cannot evaluate anything.
        tok = children[0]
        if len(tok.value) > MAX_STRING:
            raise LimitError(
                f"a string literal of {len(tok.value):,} characters: at most "
                f"{MAX_STRING:,} are allowed",
                self.src.of(tok),
            )
        try:
            return ast.literal_eval(tok.value)
        except (SyntaxError, ValueError) as e:  # "\x", "\N{nothing}", a NUL…
            why = getattr(e, "msg", None) or str(e)
            raise GSyntaxError(f"bad string literal: {why}", self.src.of(tok)) from None
        except MemoryError:
            raise LimitError(
                "a string literal too large for the memory available", self.src.of(tok)
            ) from None

    def true(self, children):
        return True

    def false(self, children):
        return False

    def none(self, children):
        return None

    @v_args(meta=True)
    def ref(self, meta, children):
        return self.model.resolve(_name_of(children[0]), self.scope, self.src.of(meta))

    def list(self, children):
        return tuple(_ellipsis(c) for c in children)

    def slice(self, children):
        parts, current = [], None
        for c in children:
            if isinstance(c, Token) and c.type == "COLON":
                parts.append(current)
                current = None
            else:
                current = c if c is not None else current
        parts.append(current)
        parts += [None] * (3 - len(parts))
        for p in parts:
            if p is not None and not isinstance(p, int):
                raise GraphcError(
                    f"slice bounds must be integers, got {p!r}", self.src.of(children[1])
                )
        return slice(*parts)

    def callee(self, children):
        return ".".join(c.value for c in children)

    def kwarg(self, children):
        return _Kwarg(children[0].value, children[1])

    # -- operators ----------------------------------------------------------------------------
    @v_args(meta=True)
    def binop(self, meta, children):
        a, op, b = children
        loc = self.src.of(op)
        fn = _BINOPS[op.value]
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            with _Guard(loc, f"'{op.value}'"):  # Python values: fold now (weak scalars)
                return _fold(op.value, a, b)
        a = self._tensor(a, b, loc, f"'{op.value}'")
        b = self._tensor(b, a, loc, f"'{op.value}'")
        return self._build(meta, f"'{op.value}'", fn, a, b, at=loc)

    @v_args(meta=True)
    def neg(self, meta, children):
        op, x = children
        if not isinstance(x, Tensor):
            with _Guard(self.src.of(op), "'-'"):
                return -x
        from ..ops.elementwise import neg

        return self._build(meta, "'-'", neg, x, at=self.src.of(op))

    def pos(self, children):
        return children[1]

    @v_args(meta=True)
    def subscript(self, meta, children):
        x, *key = children
        key = tuple(_ellipsis(k) for k in key)
        loc = self.src.of(meta)
        if isinstance(x, (tuple, list)):  # the outputs of split(...): pick one statically
            if len(key) != 1 or not isinstance(key[0], int):
                raise GraphcError("a tuple of tensors takes one integer index", loc)
            if not -len(x) <= key[0] < len(x):
                raise GraphcError(f"index {key[0]} is out of range for {len(x)} values", loc)
            return x[key[0]]
        if not isinstance(x, Tensor):
            raise GraphcError(f"only tensors can be indexed, not {_kind(x)}", loc)
        from ..ops.array import getitem

        return self._build(meta, "indexing", getitem, x, key if len(key) != 1 else key[0])

    @v_args(meta=True)
    def call(self, meta, children):
        callee, *args = children
        positional, kwargs = [], {}
        for a in args:
            if not isinstance(a, _Kwarg):
                if kwargs:
                    raise GraphcError(
                        f"{callee}(): a positional argument after a keyword argument",
                        self.src.of(meta),
                    )
                positional.append(a)
            elif a.name in kwargs:
                raise GraphcError(f"{callee}(): keyword {a.name!r} given twice", self.src.of(meta))
            else:
                kwargs[a.name] = a.value
        return self.model.call(self, meta, callee, positional, kwargs)


@dataclass
class _Kwarg:
    name: str
    value: object


def _ellipsis(item):
    return Ellipsis if isinstance(item, Token) and item.type == "ELLIPSIS" else item


def _kind(v) -> str:
    if isinstance(v, Tensor):
        return f"tensor {v.describe()}"
    if isinstance(v, Operation):
        return f"operation '{v.name}'"
    if isinstance(v, UserFn):
        return f"function {v.name}"
    return f"{type(v).__name__} {v!r}"


def _accepts_name(fn) -> bool:
    if isinstance(fn, OpDef):
        return True
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "name" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _binops():
    from ..ops import elementwise as E
    from ..ops.linalg import matmul

    return {
        "+": E.add,
        "-": E.subtract,
        "*": E.multiply,
        "/": E.divide,
        "//": E.floordiv,
        "%": E.mod,
        "**": E.pow,
        "@": matmul,
        "==": E.equal,
        "!=": E.not_equal,
        "<": E.less,
        "<=": E.less_equal,
        ">": E.greater,
        ">=": E.greater_equal,
    }


_BINOPS = _binops()

_PY_BINOPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "**": lambda a, b: a**b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _fold(op, a, b):
    """Python values combine as Python values (``2 * K``), as long as they are numbers."""
    for v in (a, b):
        if not isinstance(v, (int, float, bool)):
            raise GraphcError(f"'{op}' needs numbers or tensors, got {_kind(v)}")
    if op == "@":
        raise GraphcError("'@' needs tensors, not numbers")
    if op == "**" and abs(b) > 1024:
        raise GraphcError(f"exponent {b} is too large for a constant")
    return _PY_BINOPS[op](a, b)


class ModelBuilder(Interpreter):
    """Builds one model's statements into ``graph``, in order; ``output`` and ``train``
    clauses run last, so they may appear anywhere in the model."""

    def __init__(self, graph: Graph, src: _Source, globals_: Scope):
        self.graph, self.src = graph, src
        self.scope = Scope(parent=globals_)
        self.deferred: list[Tree] = []
        self.fn_calls = 0  # user fn bodies expanded so far (bounded: MAX_FN_CALLS)
        # op.X(..., body_fn=f) bodies: id(fn) -> its Function (a fn named again for the same
        # parameter types is the same body), id(fn) -> (region, names) of its last trace
        # (what `fn g(...) in f` is traced into); _traced collects them during one op's trace
        self._bodies: dict = {}
        self._regions: dict = {}
        self._traced: dict | None = None

    # -- statements ---------------------------------------------------------------------------
    def model(self, tree):
        name_tree, *stmts = tree.children
        self.graph.add_to_collection(MODEL_NAME, _name_of(name_tree))
        for stmt in stmts:
            if stmt.data in ("output", "train"):
                self.deferred.append(stmt)
            else:
                self.visit(stmt)
        for stmt in self.deferred:
            self.visit(stmt)

    def _check_free(self, name: str, meta):
        """Before a statement builds anything: its name must be new and not reserved."""
        if name in self.scope.values:
            raise GraphcError(f"{name!r} is already defined in this model", self.src.of(meta))
        if name in N.DTYPES or name in N.CONSTANTS:
            raise GraphcError(
                f"{name!r} is a reserved name (a dtype or a constant); choose another",
                self.src.of(meta),
            )

    def _bind(self, name: str, value, meta):
        self._check_free(name, meta)
        self.scope.values[name] = value

    def _expr(self, tree, stmt_name):
        """Evaluate ``tree`` for statement ``stmt_name``, its inner ops inside ``stmt_name/``."""
        builder = ExprBuilder(self, self.scope, stmt_name, getattr(tree, "meta", None))
        scope = self.graph.name_scope(stmt_name + "/") if stmt_name else _nullcontext()
        with scope:
            return builder.evaluate(tree)

    def input_decl(self, tree):
        name_tree, type_tree, default = tree.children
        name = _name_of(name_tree)
        self._check_free(name, name_tree.meta)
        dtype, shape = self._type(type_tree)
        loc = self.src.of(tree.meta)
        from ..ops.sources import constant, placeholder, placeholder_with_default

        if default is None:
            with _Guard(loc, f"input {name}"):
                t = placeholder(dtype, shape=shape, name=name)
        else:
            with self.graph.name_scope(name + "/"):  # the placeholder itself takes `name`
                value = self._expr(default, None)
            with _Guard(loc, f"input {name}"), self.graph.name_scope(name + "/"):
                if not isinstance(value, Tensor):
                    value = constant(value, dtype=dtype)
                if value.dtype is not dtype:
                    raise DTypeError(
                        f"the default of input {name} is {value.dtype}, but it is declared {dtype}"
                    )
            with _Guard(loc, f"input {name}"):
                t = placeholder_with_default(value, shape, name=name)
        self._bind(name, t, tree.meta)

    def param_decl(self, tree):
        name_tree, type_tree, init, frozen = tree.children
        name = _name_of(name_tree)
        self._check_free(name, name_tree.meta)
        dtype, shape = self._type(type_tree)
        loc = self.src.of(tree.meta)
        if shape is None or not all(isinstance(d, int) for d in shape):
            raise ShapeError(
                f"param {name} needs a static shape, got "
                f"{list(shape) if shape is not None else '[*]'}",
                loc,
            )
        with self.graph.name_scope(name + "/"):
            value = self._initial_value(name, init, dtype, shape, loc)
        from ..ops.state import Variable

        with _Guard(loc, f"param {name}"):
            if value.dtype is not dtype:
                raise DTypeError(
                    f"param {name} is declared {dtype} but its initializer is {value.describe()}"
                )
            if value.shape is None or tuple(value.shape) != tuple(shape):
                raise ShapeError(
                    f"param {name} is declared with shape {list(shape)} but its "
                    f"initializer is {value.describe()}"
                )
            var = Variable(value, name=name, trainable=frozen is None)
        self._bind(name, var, tree.meta)
        # `NAME/Assign` is the initializer, as printed graphs call it (group of initializers)
        self.scope.values.setdefault(f"{name}/Assign", var.initializer)

    def _initial_value(self, name, init, dtype, shape, loc):
        from ..ops.sources import constant

        if init is None:
            return N.INITIALIZERS["zeros"](shape, dtype)
        if init.data == "ref":  # a bare initializer name: `= zeros` reads as `= zeros()`
            fname = _name_of(init.children[0])
            if fname in N.INITIALIZERS and self._binding(fname) is None:
                with _Guard(self.src.of(init.meta), f"{fname}()"):
                    return N.INITIALIZERS[fname](shape, dtype)
        if init.data == "call":
            callee = init.children[0]
            fname = callee.children[0].value if len(callee.children) == 1 else None
            # an initializer's name means the initializer here, unless a user fn takes it
            if fname in N.INITIALIZERS and not isinstance(self._binding(fname), UserFn):
                builder = ExprBuilder(self, self.scope, None, None)
                kwargs, positional = {}, []
                for a in init.children[1:]:
                    v = builder.evaluate(a)
                    if isinstance(v, _Kwarg):
                        kwargs[v.name] = v.value
                    else:
                        positional.append(v)
                fn = N.INITIALIZERS[fname]
                iloc = self.src.of(init.meta)
                _signature_check(fn, fname, [shape, dtype] + positional, kwargs, iloc)
                with _Guard(iloc, f"{fname}()"):
                    return fn(shape, dtype, *positional, **kwargs)
        value = self._expr(init, None)
        if isinstance(value, Tensor):
            return value
        with _Guard(self.src.of(init.meta), f"the initializer of {name}"):
            if isinstance(value, (int, float, bool)):
                return N.INITIALIZERS["fill"](shape, dtype, value)
            return constant(value, dtype=dtype, shape=shape)

    def _binding(self, name):
        try:
            return self.scope.lookup(name)
        except KeyError:
            return None

    def _bound(self, name):
        try:
            self.scope.lookup(name)
            return True
        except KeyError:
            return False

    def const_def(self, tree):
        name_tree, expr = tree.children
        name = _name_of(name_tree)
        self._check_free(name, name_tree.meta)
        value = self._expr(expr, name)
        self._bind(name, self._named(name, value, tree.meta), tree.meta)

    def fn_def(self, tree):
        fname, *rest = tree.children
        body = rest[-1]
        params = [p.value for p in rest[:-1]]
        if len(set(params)) != len(params):
            raise GraphcError(
                f"fn {fname.value}: a parameter name appears twice", self.src.of(tree.meta)
            )
        self._bind(
            fname.value,
            UserFn(fname.value, params, body, self.src.of(tree.meta), self.scope),
            tree.meta,
        )

    def fn_block(self, tree):
        """``fn NAME(params) [in F] { t0 = expr ... return expr }``: a fn whose named values
        are built once however often they are used (see grammar/graphc.lark)."""
        fname, *rest = tree.children
        params = [p.value for p in rest if isinstance(p, Token)]
        within = next(
            (c.children[0].value for c in rest if getattr(c, "data", "") == "fn_in"), None
        )
        lets = [
            (c.children[0].value, c.children[1])
            for c in rest
            if isinstance(c, Tree) and c.data == "fn_let"
        ]
        if len(set(params)) != len(params):
            raise GraphcError(
                f"fn {fname.value}: a parameter name appears twice", self.src.of(tree.meta)
            )
        fn = UserFn(fname.value, params, rest[-1], self.src.of(tree.meta), self.scope, lets, within)
        self._bind(fname.value, fn, tree.meta)

    def let(self, tree):
        n_targets = next(i for i, c in enumerate(tree.children) if c.data != "name")
        targets = tree.children[:n_targets]  # the names after `after` are not targets
        expr, *after = tree.children[len(targets) :]
        names = [_name_of(t) for t in targets]
        for n, t in zip(names, targets, strict=True):
            self._check_free(n, t.meta)
        loc = self.src.of(tree.meta)
        controls = []
        if after:
            for t in after[1:]:  # after[0] is the `after` keyword
                v = self.resolve(_name_of(t), self.scope, self.src.of(t.meta))
                if isinstance(v, (tuple, list)) and v and isinstance(v[0], Tensor):
                    v = v[0]  # the outputs of one op (split): after that op
                if isinstance(v, Tensor):
                    v = v.op
                if not isinstance(v, Operation):
                    raise GraphcError(
                        f"`after` takes tensors or operations, not {_kind(v)}", self.src.of(t.meta)
                    )
                controls.append(v)
        # `a, b = split(x, 2)`: the ops are built inside `a/`, and each name is an identity
        multi = len(names) > 1
        with (
            self.graph.control_dependencies(controls) if controls else _nullcontext(),
            self.graph.name_scope(names[0] + "/") if multi else _nullcontext(),
        ):
            value = self._expr(expr, None if multi else names[0])
        if len(names) == 1:
            self._bind(names[0], self._named(names[0], value, tree.meta), tree.meta)
            return
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            n = len(value) if isinstance(value, (tuple, list)) else 1
            raise GraphcError(
                f"{len(names)} names on the left but the expression gives {n} value(s)", loc
            )
        for n, v, t in zip(names, value, targets, strict=True):
            self._bind(n, self._named(n, v, t.meta), t.meta)

    def _named(self, name, value, meta):
        """Make sure the graph knows ``name``: a tensor built elsewhere, or one of several
        outputs of an op, gets an identity of that name."""
        if isinstance(value, Tensor) and (value.op.name != name or len(value.op.outputs) > 1):
            from ..ops.array import identity

            with _Guard(self.src.of(meta), name), self.graph.name_scope(None):
                return identity(value, name=name)
        return value

    def output(self, tree):
        for t in tree.children:
            v = self.resolve(_name_of(t), self.scope, self.src.of(t.meta))
            if not isinstance(v, Tensor):
                raise GraphcError(
                    f"output {_name_of(t)!r} is {_kind(v)}, not a tensor", self.src.of(t.meta)
                )
            self.graph.add_to_collection(OUTPUTS, v)

    def train(self, tree):
        loss_tree, opt_tok, *args = tree.children
        loss = self.resolve(_name_of(loss_tree), self.scope, self.src.of(loss_tree.meta))
        if not isinstance(loss, Tensor) or not loss.dtype.is_floating:
            raise GraphcError(
                f"train needs a floating-point loss tensor, got {_kind(loss)}",
                self.src.of(loss_tree.meta),
            )
        builder = ExprBuilder(self, self.scope, None, None)
        kwargs = {}
        for i, a in enumerate(args):
            v = builder.evaluate(a)
            if isinstance(v, _Kwarg):
                kwargs[v.name] = v.value
            elif i == 0:  # sgd(0.1): the one positional argument is the learning rate
                kwargs["lr"] = v
            else:
                raise GraphcError(
                    f"{opt_tok.value}(): only the learning rate may be given "
                    "without a keyword, e.g. adam(0.01, beta1=0.9)",
                    self.src.of(a.meta),
                )
        build_train(self.graph, loss, opt_tok.value, kwargs, self.src.of(opt_tok))

    def random_seed(self, tree):
        """``random_seed 42``: random ops without their own seed derive one from it."""
        self.graph.seed = int(tree.children[0].value)

    # -- helpers ------------------------------------------------------------------------------
    def _type(self, tree):
        dtype_tok, *dims = tree.children
        try:
            dtype = N.DTYPES[dtype_tok.value]
        except KeyError:
            raise DTypeError(
                f"unknown dtype {dtype_tok.value!r}" + _suggest(dtype_tok.value, N.DTYPES),
                self.src.of(dtype_tok),
            ) from None
        shape = []
        for d in dims:
            if d is None:
                continue
            if d.data == "known_dim":
                tok = d.children[0]
                if len(tok.value) > 19 or int(tok.value) > _MAX_DIM:
                    raise ShapeError(
                        f"dimension {tok.value[:30]}{'…' * (len(tok.value) > 30)} "
                        f"is too large (dimensions are below 2**63)",
                        self.src.of(tok),
                    )
                shape.append(int(tok.value))
            elif d.data == "any_dim":
                shape.append(None)
            elif d.data == "any_rank":
                if len(dims) != 1:
                    raise ShapeError("`*` (any rank) stands alone: f32[*]", self.src.of(d.meta))
                return dtype, None
            else:
                sym = d.children[0].value
                bound = self.scope.lookup(sym) if self._bound(sym) else None
                if isinstance(bound, int) and not isinstance(bound, bool):
                    shape.append(bound)
                elif sym == "_":
                    shape.append(None)
                else:
                    shape.append(sym)
        return dtype, tuple(shape)

    def resolve(self, name, scope, loc):
        """A name's value: a binding, a dtype or a constant."""
        try:
            return scope.lookup(name)
        except KeyError:
            pass
        if name in N.DTYPES:
            return N.DTYPES[name]
        if name in N.CONSTANTS:
            return N.CONSTANTS[name]
        if N.builtin(name) is not None or name in N.INITIALIZERS:
            raise GraphcError(f"{name!r} is a function; call it: {name}(...)", loc)
        raise NotFoundError(f"unknown name {name!r}" + _suggest(name, scope.known()), loc)

    def call(self, builder: ExprBuilder, meta, callee: str, args, kwargs):
        loc = self.src.of(meta)
        if callee.startswith("op."):  # a registry op, applied as is: op.sum_to_like(g, x)
            opname = callee[3:]
            opdef = REGISTRY.get(opname)
            if opdef is None:
                raise NotFoundError(
                    f"no op named {opname!r} in the registry" + _suggest(opname, REGISTRY), loc
                )
            like = next((a for a in args if isinstance(a, Tensor)), None)
            ins = [builder._tensor(a, like, loc, callee) for a in args]
            for a in ins:
                if not isinstance(a, Tensor):
                    raise GraphcError(
                        f"{callee}(): positional arguments are tensors; give "
                        f"attributes by keyword, not {_kind(a)}",
                        loc,
                    )
            if any(isinstance(v, UserFn) for v in kwargs.values()):
                # a control op written as is (what graph.to_text prints): op.scan(h0, xs, w,
                # body_fn=f, ...); each fn takes every parameter of its body explicitly
                trace = opdef.extra.get("bodies_from_callables")
                if trace is None:
                    raise GraphcError(f"{callee}() takes no fn arguments", loc)
                kwargs = self._op_bodies(builder, opdef, callee, ins, kwargs, trace, loc)
            return builder._build(meta, callee, opdef, *ins, **kwargs)
        if "." in callee:
            raise NotFoundError(f"unknown namespace in {callee!r}; only op.NAME is allowed", loc)
        try:
            target = builder.scope.lookup(callee)
        except KeyError:
            target = None
        if isinstance(target, UserFn):
            return self._call_fn(builder, meta, target, args, kwargs)
        fn = N.builtin(callee)  # a value named like a function does not hide the function
        if fn is None and target is not None:
            raise GraphcError(f"{callee!r} is {_kind(target)}, not a function", loc)
        if fn is None:
            if callee in N.INITIALIZERS:
                raise GraphcError(
                    f"{callee}() is a parameter initializer: use it after '=' "
                    f"in a param declaration",
                    loc,
                )
            if callee in N.OPTIMIZERS:
                raise GraphcError(
                    f"{callee}() is an optimizer: use it in `train LOSS with {callee}(...)`", loc
                )
            raise NotFoundError(
                f"unknown function {callee!r}"
                + _suggest(callee, builder.scope.known() | set(N.builtin_names())),
                loc,
            )
        if any(isinstance(a, UserFn) for a in [*args, *kwargs.values()]):
            # control flow (cond, while_loop, scan, map_fn, case): a fn is a body to trace
            args = [self._body(builder, a, callee) for a in args]
            kwargs = {k: self._body(builder, v, callee) for k, v in kwargs.items()}
        _signature_check(fn, callee, args, kwargs, loc)
        return builder._build(meta, f"{callee}()", fn, *args, **kwargs)

    def _op_bodies(self, builder, opdef, callee, ins, kwargs, trace, loc):
        """The attributes of ``op.X(..., body_fn=f)`` with each fn traced into a body. A fn
        already traced for the same parameter types (in this graph) is that same body; a
        ``fn g(...) in f`` is traced into the region of f's last trace."""
        from .control import function_in, param_types

        with _Guard(loc, callee):
            types = param_types(opdef, ins, kwargs)
        out, fresh = {}, {}
        for k, v in kwargs.items():
            if not isinstance(v, UserFn):
                out[k] = v
                continue
            prev = self._bodies.get(id(v))
            if (
                prev is not None
                and prev.graph.parent is get_default_graph()
                and [(p.dtype, p.shape) for p in prev.params] == types
            ):
                out[k] = prev
            elif v.within is not None:
                out[k] = self._trace_within(builder, v, k, types, function_in)
            else:
                out[k], fresh[k] = self._body(builder, v, callee), v
        saved, self._traced = self._traced, {}
        try:
            with _Guard(loc, callee):
                out = trace(ins, out)
        finally:
            traced, self._traced = self._traced, saved
        for k, v in fresh.items():
            self._bodies[id(v)] = out[k]
            if id(v) in traced:
                self._regions[id(v)] = traced[id(v)]
        return out

    def _trace_within(self, builder, fn: UserFn, key, types, function_in):
        """``fn g(p...) in f { ... }``: g's body built in the region of f's last trace, where
        a parameter named as one of that region's names is that tensor (f's parameter) and
        any other is a new parameter of the region; its named values join the region's."""
        try:
            target = fn.scope.lookup(fn.within)
        except KeyError:
            target = None
        region_scope = self._regions.get(id(target)) if isinstance(target, UserFn) else None
        if region_scope is None:
            raise GraphcError(
                f"fn {fn.name} is `in {fn.within}`, but {fn.within} is not a fn traced as a "
                "body before it",
                fn.location,
            )
        if len(types) != len(fn.params):
            raise GraphcError(
                f"fn {fn.name} takes ({', '.join(fn.params)}) but its op passes "
                f"{len(types)} values",
                fn.location,
            )
        region, scope = region_scope
        params = []
        for name, (dtype, shape) in zip(fn.params, types, strict=True):
            t = scope.values.get(name)
            if not (isinstance(t, Tensor) and t.graph is region):
                from ..ops.control import param

                t = scope.values[name] = param(region, dtype, shape, name)
            params.append(t)
        before = set(region.get_operations())
        with region.as_default():
            inner = ExprBuilder(self, scope, None, None, builder.depth + 1)
            result = _evaluate_fn(inner, fn, scope)
            return function_in(region, params, result, key, before)

    def _body(self, builder, fn, callee):
        """A user fn passed to ``callee`` as the Python callable it expects (a branch or a
        loop body); its nodes are built where ``callee`` traces it."""
        if not isinstance(fn, UserFn):
            return fn

        def body(*args):
            if len(args) != len(fn.params):
                raise GraphcError(
                    f"{callee}() calls fn {fn.name} with {len(args)} values; "
                    f"it takes ({', '.join(fn.params)})",
                    fn.location,
                )
            if fn.within is not None:
                raise GraphcError(
                    f"fn {fn.name} is `in {fn.within}`: it is a body of op.{callee.split('.')[-1]}"
                    "(...) only (the form graph.to_text prints)",
                    fn.location,
                )
            scope = Scope(dict(zip(fn.params, args, strict=True)), parent=fn.scope)
            inner = ExprBuilder(self, scope, None, None, builder.depth + 1)
            result = _evaluate_fn(inner, fn, scope)
            if self._traced is not None:  # op.X(...): remember the region and its names
                self._traced[id(fn)] = (get_default_graph(), scope)
            return result

        return body

    def _call_fn(self, builder, meta, fn: UserFn, args, kwargs):
        loc = self.src.of(meta)
        if builder.depth == 0:  # count the whole expansion before building any of it
            self.fn_calls += _expansion(fn, {})
        if self.fn_calls > MAX_FN_CALLS:
            raise LimitError(
                f"fn {fn.name}: the model expands to more than {MAX_FN_CALLS:,} "
                "calls of user fns (do fns call each other several times each?)",
                loc,
            )
        if builder.depth >= _MAX_FN_DEPTH:
            raise GraphcError(
                f"fn {fn.name}: calls nest deeper than {_MAX_FN_DEPTH} (is it recursive?)", loc
            )
        if len(args) + len(kwargs) != len(fn.params) or any(k not in fn.params for k in kwargs):
            raise GraphcError(
                f"{fn.name}() takes ({', '.join(fn.params)}); got "
                f"{len(args)} positional and keywords {sorted(kwargs)}",
                loc,
            )
        bound = dict(zip(fn.params, args, strict=False))  # fewer args: rest by keyword
        for k, v in kwargs.items():
            if k in bound:
                raise GraphcError(f"{fn.name}(): {k!r} given twice", loc)
            bound[k] = v
        # The body sees its parameters and the names defined before the fn was called.
        if fn.within is not None:
            raise GraphcError(
                f"fn {fn.name} is `in {fn.within}`: it is a body of op.X(...) only", loc
            )
        scope = Scope(bound, parent=fn.scope)
        inner = ExprBuilder(
            self,
            scope,
            builder.stmt_name if meta is builder.root else None,
            fn.body.meta if meta is builder.root else None,
            builder.depth + 1,
        )
        return _evaluate_fn(inner, fn, scope)


def _evaluate_fn(builder, fn: UserFn, scope: Scope):
    """A fn's value: its block's named values bound in ``scope`` in order, then its body."""
    for name, expr in fn.lets:
        scope.values[name] = builder.evaluate(expr)
    return builder.evaluate(fn.body)


def _expansion(fn: UserFn, memo: dict, active=frozenset()) -> int:
    """How many fn bodies calling ``fn`` expands to: 1 + the expansions of the user fns its
    body calls (a recursive call counts 1: the depth limit stops it)."""
    if id(fn) in memo:
        return memo[id(fn)]
    total, todo = 1, [fn.body] + [expr for _, expr in fn.lets]
    while todo:
        node = todo.pop()
        if not isinstance(node, Tree):
            continue
        if node.data == "call":
            callee = node.children[0]
            name = callee.children[0].value if len(callee.children) == 1 else None
            target = None
            if name is not None and name not in fn.params:
                try:
                    target = fn.scope.lookup(name)
                except KeyError:
                    pass
            if isinstance(target, UserFn) and id(target) not in active:
                total += _expansion(target, memo, active | {id(fn)})
                if total > MAX_FN_CALLS:
                    break
        todo.extend(node.children)
    memo[id(fn)] = total
    return total


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _suggest(name, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


# A function applied to the optimizer of every train clause built while it is set (``graphc
# run --np N`` sets ``graphc.distributed.DistributedOptimizer``).
OPTIMIZER_WRAPPER: contextvars.ContextVar = contextvars.ContextVar(
    "OPTIMIZER_WRAPPER", default=None
)


def build_train(
    graph: Graph, loss: Tensor, optimizer: str, kwargs: dict, loc: SourceLocation
) -> Operation:
    """``train LOSS with OPT(kwargs)``: OPT's ``minimize`` op, named ``train``."""
    import graphc as gc

    if optimizer not in N.OPTIMIZERS:
        raise NotFoundError(
            f"unknown optimizer {optimizer!r}"
            + _suggest(optimizer, N.OPTIMIZERS)
            + f" (known: {', '.join(N.OPTIMIZERS)})",
            loc,
        )
    train_mod = getattr(gc, "train", None)
    cls_name, renames = N.OPTIMIZERS[optimizer]
    cls = getattr(train_mod, cls_name, None)
    if cls is None:
        raise GraphcError(
            f"optimizer {optimizer} needs gc.train.{cls_name}, which this graphc does not provide",
            loc,
        )
    ctor = {renames.get(k, k): v for k, v in kwargs.items()}
    _signature_check(cls, optimizer, [], ctor, loc)
    first = len(graph)
    with _Guard(loc, f"train with {optimizer}"), graph.as_default(), graph.name_scope(None):
        optimizer_ = cls(**ctor)
        wrap = OPTIMIZER_WRAPPER.get()
        op = (wrap(optimizer_) if wrap else optimizer_).minimize(loss, name="train")
        if isinstance(op, Tensor):
            op = op.op
        if op.name != "train":
            from ..ops.state import group

            op = group(op, name="train")
    graph.add_to_collection(
        TRAIN_CLAUSES, TrainClause(loss, optimizer, dict(kwargs), op, first, len(graph) - 1)
    )
    return op


# --- entry points -----------------------------------------------------------------------------


def model_names(text: str, filename: str = "<string>") -> list[str]:
    tree = parse(text, filename)
    return [_name_of(m.children[0]) for m in tree.children if m.data == "model"]


def loads(
    text: str, model: str | None = None, filename: str = "<string>", graph: Graph | None = None
) -> Graph:
    """Build the graph of ``model`` (default: the file's first model) from ``.g`` text."""
    try:
        return _loads(text, model, filename, graph)
    except GraphcError as e:
        raise attach_source(e) from None
    except RecursionError:
        raise LimitError(
            "the file nests too deeply to be built", SourceLocation(filename, 1, 1)
        ) from None
    except MemoryError:
        raise LimitError(
            "not enough memory to build the model", SourceLocation(filename, 1, 1)
        ) from None


def loads_each(text: str, filename: str = "<string>"):
    """``(model name, graph)`` for every model of ``.g`` text, each in a new Graph; the text
    is parsed once (``graphc check`` of a file with many models stays linear)."""
    try:
        tree = parse(text, filename)
    except GraphcError as e:
        raise attach_source(e) from None
    for name in [_name_of(m.children[0]) for m in tree.children if m.data == "model"]:
        try:
            yield name, _loads(text, name, filename, Graph(), tree=tree)
        except GraphcError as e:
            raise attach_source(e) from None
        except RecursionError:
            raise LimitError(
                "the file nests too deeply to be built", SourceLocation(filename, 1, 1)
            ) from None
        except MemoryError:
            raise LimitError(
                "not enough memory to build the model", SourceLocation(filename, 1, 1)
            ) from None


def _loads(text, model, filename, graph, tree=None):
    tree = tree if tree is not None else parse(text, filename)
    src = _Source(filename, text)
    models = [m for m in tree.children if m.data == "model"]
    if not models:
        raise GraphcError(
            "the file defines no model (`model NAME { ... }`)",
            SourceLocation(filename, 1, 1, src.lines[0] if src.lines else ""),
        )
    names = [_name_of(m.children[0]) for m in models]
    if model is None:
        chosen = models[0]
    elif model in names:
        chosen = models[names.index(model)]
    else:
        raise NotFoundError(
            f"no model named {model!r} in {filename}; it defines "
            f"{', '.join(names)}" + _suggest(model, names)
        )
    if graph is None:
        default = get_default_graph()
        graph = default if len(default) == 0 and not default.finalized else Graph()
    builder = ModelBuilder(graph, src, Scope())
    with graph.as_default():
        # file-level fns and consts, in order, are visible to every model of the file
        for item in tree.children:
            if item.data in ("fn_def", "fn_block", "const_def"):
                builder.visit(item)
        builder.visit(chosen)
    return graph


def load(path, model: str | None = None, graph: Graph | None = None) -> Graph:
    """The graph of a ``.g`` file (``model=NAME`` picks one of several). It is built into the
    default graph while that is still empty (the usual script: load, then run), otherwise
    into a new Graph; inputs, params and named values keep their ``.g`` names."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise NotFoundError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise GraphcError(f"{path} is not UTF-8 text ({e.reason})") from None
    return loads(text, model=model, filename=path, graph=graph)


__all__ = [
    "load",
    "loads",
    "loads_each",
    "model_names",
    "build_train",
    "TrainClause",
    "MODEL_NAME",
    "OUTPUTS",
    "TRAIN_CLAUSES",
]
