"""``graph.to_text()``: any graph — built in Python or loaded from a ``.g`` file — printed as
a ``.g`` model that ``graphc.load`` builds back into the same graph.

One statement per node, in creation (topological) order, named by the node's graph name:
  * placeholders and variables become ``input`` and ``param`` declarations (a variable's
    initializer is written after ``=``, as an initializer call when it is one);
  * arithmetic nodes use operators (``a @ b``, ``x ** 2.0``), scalar constants next to a
    tensor of their dtype are written as literals (they reload as weak scalars);
  * every other node is its registry op applied as is: ``op.sum_to_like(g, x)`` with its
    attributes as keywords, so gradient and update nodes print too;
  * the nodes a ``train`` clause built are written back as that clause.

Printing the graph that loading this text builds gives this text again (a fixed point).
Names that are not plain identifiers are written in backquotes (`` `dense/MatMul` ``); the
graph's names can only hold ``[A-Za-z0-9_.-/]``, so nothing else can reach the text.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from ..dtypes import ALL, DType, as_dtype
from ..errors import GraphcError
from .graph import MODEL_NAME, OUTPUTS, TRAIN_CLAUSES

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GRAPH_NAME = re.compile(r"[A-Za-z0-9_.\-/]+")
KEYWORDS = {
    "model",
    "fn",
    "input",
    "param",
    "const",
    "output",
    "train",
    "with",
    "after",
    "frozen",
    "random_seed",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
}
# Plain values every .g file can use by name (the front end resolves them).
CONSTANTS = {"inf": float("inf"), "nan": float("nan"), "pi": 3.141592653589793}
# Dtype spellings (f32, float32…): names that read as a type, not a node.
_DTYPE_WORDS = {d.short for d in ALL} | {d.name for d in ALL}

# Nodes written with an operator instead of op.NAME(...).
_INFIX = {
    "add": "+",
    "subtract": "-",
    "multiply": "*",
    "divide": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "equal": "==",
    "not_equal": "!=",
    "less": "<",
    "less_equal": "<=",
    "greater": ">",
    "greater_equal": ">=",
}

# Random ops that read as a param's initializer call, and the attributes the call takes.
_INITIALIZER_CALLS = {
    "random_normal": ("normal", ("mean", "stddev", "seed")),
    "truncated_normal": ("truncated_normal", ("mean", "stddev", "seed")),
    "random_uniform": ("uniform", ("minval", "maxval", "seed")),
    "fill": ("fill", ("value",)),
}


def format_name(name: str) -> str:
    """A graph name as a .g name: itself when it is an identifier, else in backquotes."""
    if (
        _IDENT.fullmatch(name)
        and name not in KEYWORDS
        and name not in _DTYPE_WORDS
        and name not in CONSTANTS
    ):
        return name
    if not _GRAPH_NAME.fullmatch(name):
        raise GraphcError(f"cannot print the node name {name!r} as .g")
    return f"`{name}`"


def format_scalar(v) -> str:
    """A number as a literal that parses back to the same value of its dtype."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        # numpy's repr of a float32 is the shortest string that reads back as that float32
        text = str(v) if isinstance(v, np.floating) else repr(float(v))
        return text if any(c in text for c in ".en") else text + ".0"
    raise GraphcError(f"cannot print {v!r} as a .g number")


def format_value(v) -> str:
    """An attribute value as a .g literal."""
    if v is None:
        return "none"
    if v is Ellipsis:
        return "..."
    if isinstance(v, DType):
        return v.short
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # escapes quotes, backslashes, newlines
    if isinstance(v, slice):
        parts = ["" if p is None else format_scalar(p) for p in (v.start, v.stop, v.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if parts[2] else "")
    if isinstance(v, np.ndarray):
        return format_value(v.tolist()) if v.ndim else format_scalar(v[()])
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return format_scalar(v)


def _format_array(a: np.ndarray) -> str:
    # elements keep their own dtype's shortest repr (float32 0.1 prints as 0.1)
    if a.ndim == 0:
        return format_scalar(a[()])
    return "[" + ", ".join(_format_array(x) for x in a) + "]"


def format_type(t) -> str:
    if t.shape is None:
        return f"{t.dtype.short}[*]"
    dims = ["?" if d is None else str(d) for d in t.shape]
    return t.dtype.short + (f"[{', '.join(dims)}]" if dims else "")


def _is_function(v) -> bool:
    """A control op's body (``ops.control.Function``; the IR does not import the ops)."""
    return all(hasattr(v, a) for a in ("graph", "params", "outputs", "targets"))


class _Printer:
    def __init__(self, graph):
        self.root = self
        self.fn_lines: list = []  # fn definitions not yet written (bodies of control ops)
        self.fn_names: dict = {}  # Function -> its fn's name
        self.regions: dict = {}  # a body's graph -> _Region (what its fns share)
        self.graph = graph
        self.ops_by_name = {op.name for op in graph.get_operations()}
        self.ops = graph.get_operations()
        self.clauses = [c for c in graph.get_collection(TRAIN_CLAUSES) if self._writable(c)]
        self.hidden = set()  # ops another statement writes (initializers, clauses)
        for c in self.clauses:
            self.hidden |= {op for op in self.ops if c.first_id <= op.id <= c.last_id}
        self.uses = {}
        for op in self.ops:
            for t in op.inputs:
                self.uses.setdefault(t.op, []).append(op)
        self.inline_init = {}  # variable op -> its initializer written inline
        for op in self.ops:
            if op.type == "variable":
                self._plan_param(op)

    def _writable(self, clause) -> bool:
        """A clause is written as ``train`` only while no op outside it uses a node it built
        (an initializer group made after it names its slots, say): the loader runs clauses
        last, so no statement could name those nodes. Otherwise its nodes are written one by
        one, like a training step built in Python."""

        def inside(op):
            return clause.first_id <= op.id <= clause.last_id

        for op in self.ops:
            if inside(op):
                continue
            var = op.attrs.get("var")
            if (
                any(inside(t.op) for t in op.inputs)
                or any(inside(c) for c in op.control_inputs)
                or (isinstance(var, type(op)) and inside(var))
            ):
                return False
        return True

    def _plan_param(self, var_op):
        init = getattr(var_op.outputs[0], "initializer", None)
        if init is None:
            return
        self.hidden.add(init)
        src = init.inputs[0].op
        var = var_op.outputs[0]
        plain_call = (
            src.type in _INITIALIZER_CALLS
            and not src.inputs
            and src.attrs.get("dtype") is var.dtype
            and tuple(src.attrs.get("shape") or ()) == tuple(var.shape or ())
        )
        if (
            self.uses.get(src) == [init]
            and not src.control_inputs
            and (src.type == "const" or plain_call)
        ):
            self.hidden.add(src)
            self.inline_init[var_op] = src

    # -- operands -----------------------------------------------------------------------------
    def _inline_literal(self, t, other) -> str | None:
        """A 0-d constant beside a tensor of its dtype reads back as a weak scalar literal."""
        op = t.op
        if (
            op.type != "const"
            or op.attrs["value"].ndim != 0
            or op.control_inputs
            or other is None
            or other.op.type == "const"
            or other.dtype is not t.dtype
        ):
            return None
        text = format_scalar(op.attrs["value"][()])
        return f"({text})" if text.startswith("-") else text

    def ref(self, t) -> str:
        name = format_name(t.op.name)
        return f"{name}[{t.index}]" if len(t.op.outputs) > 1 else name

    def operand(self, t, other=None) -> str:
        return self._inline_literal(t, other) if self.is_inlined(t.op) else self.ref(t)

    def is_inlined(self, op) -> bool:
        """A 0-d constant with one consumer, which writes it as a literal, needs no statement
        (a shared one keeps its statement, so loading the text rebuilds the same nodes)."""
        # consumers a train clause rebuilds do not count: they are not printed
        users = [u for u in self.uses.get(op, []) if u not in self.hidden]
        if op.type != "const" or len(users) != 1:
            return False
        (u,) = users
        if u.type not in _INFIX or u.attrs or len(u.inputs) != 2 or u.control_inputs:
            return False
        a, b = u.inputs
        mine, other = (a, b) if a.op is op else (b, a)
        return self._inline_literal(mine, other) is not None

    # -- statements ---------------------------------------------------------------------------
    def _expr(self, op) -> str | None:
        """The right-hand side for ``op``; None when it is not an ordinary node."""
        ins, attrs = op.inputs, dict(op.attrs)
        if op.type in _INFIX and len(ins) == 2 and not attrs:
            a, b = ins
            return f"{self.operand(a, b)} {_INFIX[op.type]} {self.operand(b, a)}"
        if op.type == "matmul" and not attrs.get("transpose_a") and not attrs.get("transpose_b"):
            a, b = ins
            return f"{self.ref(a)} @ {self.ref(b)}"
        if op.type == "neg":
            return f"-{self.ref(ins[0])}"
        if op.type == "getitem":
            return f"{self.ref(ins[0])}[{', '.join(format_value(k) for k in attrs['key'])}]"
        if op.type in ("assign", "assign_add", "assign_sub"):
            return f"{op.type}({self.ref(attrs['var'].outputs[0])}, {self.ref(ins[0])})"
        if op.type == "no_op":
            return f"group({', '.join(self._control(c) for c in op.control_inputs)})"
        if op.type == "const":
            v = attrs["value"]
            dt = as_dtype(v.dtype).short
            if v.size == 0:
                return f"constant([], dtype={dt}, shape={format_value(list(v.shape))})"
            return f"constant({_format_array(v)}, dtype={dt})"
        args = [self.ref(t) for t in ins]
        for k, v in attrs.items():
            if _is_function(v):  # a control op's body: a fn printed before it
                args.append(f"{k}={self.root.function_name(v, op, k)}")
                continue
            try:
                if not _IDENT.fullmatch(k):
                    raise GraphcError("not an identifier")
                args.append(f"{k}={format_value(v)}")
            except GraphcError:
                raise GraphcError(
                    f"cannot print attribute {k}={v!r} of {op.describe()} as "
                    ".g (only numbers, strings, dtypes, lists and arrays print)",
                    op.location,
                ) from None
        return f"op.{op.type}({', '.join(args)})"

    def _control(self, c) -> str:
        var = c.attrs.get("var") if c.type == "assign" else None
        if var is not None and getattr(var.outputs[0], "initializer", None) is c:
            return format_name(var.name + "/Assign")  # the name a param declaration binds
        return format_name(c.name)  # the statement's name: the op, whatever its outputs

    def statement(self, op) -> str:
        name = format_name(op.name)
        if op.type == "placeholder":
            return f"input {name} : {format_type(op.outputs[0])}"
        if op.type == "placeholder_with_default":
            return f"input {name} : {format_type(op.outputs[0])} = {self.ref(op.inputs[0])}"
        if op.type == "variable":
            return self._param(op)
        text = f"{name} = {self._expr(op)}"
        controls = [c for c in op.control_inputs if op.type != "no_op"]
        if controls:
            text += f" after [{', '.join(self._control(c) for c in controls)}]"
        return text

    def _param(self, op) -> str:
        var = op.outputs[0]
        head = f"param {format_name(op.name)} : {format_type(var)}"
        frozen = "" if op.attrs.get("trainable", True) else " frozen"
        src = self.inline_init.get(op)
        init = getattr(var, "initializer", None)
        if src is None:
            if init is None:
                raise GraphcError(f"variable '{op.name}' has no initializer to print")
            return f"{head} = {self.ref(init.inputs[0])}{frozen}"
        if src.type == "const":
            return f"{head} = {self._expr(src)}{frozen}"
        call, keys = _INITIALIZER_CALLS[src.type]
        a = src.attrs
        kwargs = ", ".join(f"{k}={format_value(a[k])}" for k in keys if k in a)
        return f"{head} = {call}({kwargs}){frozen}"

    def function_name(self, fn, op, key) -> str:
        """The name of the fn that prints ``fn`` (the body ``key`` of ``op``), writing its
        definition (and those of bodies nested in it) first: ``fn NAME(p0, p1) = expr``, every
        parameter explicit and the body's nodes as one expression."""
        name = self.fn_names.get(fn)
        if name is None:
            # numbered in printing order (not by node names, which a body's copy changes)
            i = len(self.fn_names)
            name = f"{key}{i}"
            while name in self.fn_names.values() or name in self.ops_by_name:
                i += 1
                name = f"{key}{i}"
            self.fn_names[fn] = name
            region = self._region(fn.graph)
            params = [region.param_name(p) for p in fn.params]
            body = _BodyPrinter(self, fn, region)
            outs = [body.ref(t) for t in fn.outputs]
            expr = outs[0] if len(outs) == 1 else "[" + ", ".join(outs) + "]"
            head = f"  fn {name}({', '.join(params)})"
            if not region.block:
                self.fn_lines.append(f"{head} = {expr}")
            else:
                within = f" in {region.first}" if region.first is not None else ""
                region.first = region.first or name
                lets = "".join(f"    {line}\n" for line in body.lets)
                self.fn_lines.append(f"{head}{within} {{\n{lets}    return {expr}\n  }}")
        return name

    def _region(self, graph) -> _Region:
        region = self.regions.get(graph)
        if region is None:
            fns = []
            for op in self.ops:
                _functions_in(op, fns)
            for g in {f.graph for f in fns}:
                self.regions[g] = _Region(g, [f for f in fns if f.graph is g])
            region = self.regions[graph]
        return region

    def text(self, model_name: str) -> str:
        lines = [] if self.graph.seed is None else [f"  random_seed {int(self.graph.seed)}"]
        for op in self.ops:
            if op in self.hidden or self.is_inlined(op):
                continue
            statement = self.statement(op)
            lines += self.fn_lines
            self.fn_lines = []
            lines.append("  " + statement)
        for c in self.clauses:
            args = ", ".join(f"{k}={format_value(v)}" for k, v in c.kwargs.items())
            lines.append(f"  train {format_name(c.loss.op.name)} with {c.optimizer}({args})")
        outs = self.graph.get_collection(OUTPUTS)
        if outs:
            lines.append("  output " + ", ".join(self.ref(t) for t in outs))
        return f"model {format_name(model_name)} {{\n" + "\n".join(lines) + "\n}\n"


def _functions_in(op, out: list) -> None:
    """The Functions of control op ``op`` and of the control ops in their bodies, in order."""
    for v in op.attrs.values():
        if _is_function(v) and v not in out:
            out.append(v)
            for inner in v.graph.get_operations():
                _functions_in(inner, out)


class _Region:
    """What the fns of one body graph share when printed: its parameters' names (``p0``…,
    unique across the region), the names of the values a block fn binds (``t0``…), and
    how often each node is used. A region whose fns share nodes (a gradient's body is
    traced over its forward body's nodes) or that uses a node twice prints as block fns
    (``fn f(p0) { t0 = … return … }``, the later fns ``in`` the first), so loading the text
    builds each node once, as the graph has it."""

    def __init__(self, graph, fns):
        self.graph = graph
        self.names: dict = {}  # parameter tensor -> name
        self.lets: dict = {}  # op -> the name a block binds it to
        self.first = None  # the name of the region's first printed fn
        params = {p for f in fns for p in f.params}
        self.uses: dict = {}
        seen, todo = set(), [t.op for f in fns for t in f.outputs if t not in params]
        for f in fns:
            for t in f.outputs:
                if t.graph is graph and t not in params:
                    self.uses[t.op] = self.uses.get(t.op, 0) + 1
        while todo:
            op = todo.pop()
            if op in seen or op.graph is not graph:
                continue
            seen.add(op)
            for t in op.inputs:
                if t.graph is graph and t not in params:
                    self.uses[t.op] = self.uses.get(t.op, 0) + 1
                    todo.append(t.op)
        self.block = len(fns) > 1 or any(n > 1 for n in self.uses.values())

    def param_name(self, t) -> str:
        name = self.names.get(t)
        if name is None:
            name = self.names[t] = f"p{len(self.names)}"
        return name


class _BodyPrinter(_Printer):
    """A control op's body as one expression over its parameters ``p0, p1…``: a node used
    once is written inline where it is used; in a block fn, a node used more than once (or
    by another fn of the region) is bound to a name once (``lets``) and named after that."""

    def __init__(self, root, fn, region):
        self.root, self.fn, self.region = root, fn, region
        self.lets: list = []  # this fn's `name = expr` lines, in dependency order

    def ref(self, t) -> str:
        region = self.region
        if t in region.names:
            return region.names[t]
        if t.graph is not self.fn.graph:  # an outer variable an assign names
            return self.root.ref(t)
        op = t.op
        name = region.lets.get(op)
        if name is None:
            if op.type in ("placeholder", "variable"):
                raise GraphcError(f"cannot print {op.describe()} inside a body as .g")
            if op.control_inputs:
                raise GraphcError(
                    f"cannot print {op.describe()} inside a body as .g: it has control dependencies"
                )
            expr = self._expr(op)
            if not (region.block and region.uses.get(op, 0) > 1):
                if op.type in _INFIX or op.type in ("matmul", "neg"):
                    expr = f"({expr})"
                return f"{expr}[{t.index}]" if len(op.outputs) > 1 else expr
            name = region.lets[op] = f"t{len(region.lets)}"
            self.lets.append(f"{name} = {expr}")
        return f"{name}[{t.index}]" if len(op.outputs) > 1 else name

    def operand(self, t, other=None) -> str:
        return self.ref(t)


def to_text(graph, model_name: str | None = None) -> str:
    """The graph as a ``.g`` model (see the module docstring for the rules)."""
    names = graph.get_collection(MODEL_NAME)
    return _Printer(graph).text(model_name or (names[0] if names else "main"))
