"""``--emit py``: the optimized plan as a Python module that needs only numpy.

The module is the numpy backend's own product, written out: for each plan it needs, the
source that ``numpy_backend`` generates and executes (one call per kernel into views of a
preallocated arena, fused groups in tiles, 0-d arithmetic in locals) plus what that source
names — the kernels it calls, carried as their graphc source text (``inspect.getsource``,
with the helpers and module constants they use), the plan's constants, and a small runtime.
So the emitted module differs between ``-O0`` and ``-O2`` exactly as the plans do.

It defines ``run(feeds, outputs=None) -> dict`` (output name -> array: every output the given
feeds determine, or the named ``outputs``), and for a model with a ``train`` clause
``train_step(feeds) -> dict``, which updates ``PARAMS`` in place and returns the loss.
``PARAMS`` starts at the values the model's initializers give (computed here once by the
reference interpreter, and embedded) or at a checkpoint's values.

Safety: nothing from the graph reaches the module as code. The generated code names slots
and steps (``s12``, ``k3``), never user names; node names, strings and numbers are written
with ``repr()`` after checking their type (``_literal``); arrays are base64 of their raw bytes
with a checked dtype; only graphc's own functions are carried as text, and a user op's
Python kernel is refused. A hostile ``.g`` file (quotes, newlines or Python in its names and
strings) yields inert literals.
"""

from __future__ import annotations

import base64
import dis
import functools
import inspect
import math
import textwrap

import numpy as np

from ..compiler import compile as compile_plan
from ..dtypes import DType
from ..errors import GraphcError, UnimplementedError
from ..ir.graph import OUTPUTS, TRAIN_CLAUSES, walk_needed
from ..ir.node import Operation
from ..ops import control
from ..ops.random import seed_for
from ..ops.state import GLOBAL_VARIABLES
from . import numpy_backend
from .numpy_backend import LOWERINGS, RUNTIME, _Generator
from .reference import ReferenceExecutable, RunContext

# --- literals ---------------------------------------------------------------------------------

_ARRAY_KINDS = "biuf"


def _literal(v) -> str:
    """``v`` as Python source that evaluates to ``v``, for plain data only."""
    if v is None or v is Ellipsis or type(v) in (bool, int, str):
        return repr(v)
    if isinstance(v, (bool, np.bool_)):
        return repr(bool(v))
    if isinstance(v, (int, np.integer)):
        return repr(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return repr(f) if math.isfinite(f) else f"float({repr(str(f))})"
    if isinstance(v, str):
        return repr(str(v))
    if isinstance(v, DType):
        return f"np.dtype({_literal(np.dtype(v.np).name)})"
    if isinstance(v, slice):
        return f"slice({_literal(v.start)}, {_literal(v.stop)}, {_literal(v.step)})"
    if isinstance(v, (tuple, list)):
        inner = ", ".join(_literal(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, np.ndarray):
        return _array_literal(v)
    raise GraphcError(f"the standalone backend cannot embed a {type(v).__name__} value")


def _array_literal(a: np.ndarray) -> str:
    a = np.asarray(a)  # (not ascontiguousarray: it makes a 0-d array 1-d; tobytes is C order)
    if a.dtype.kind not in _ARRAY_KINDS:
        raise GraphcError(f"the standalone backend cannot embed arrays of dtype {a.dtype}")
    dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    data = base64.b64encode(a.astype(dtype, copy=False).tobytes()).decode("ascii")
    return f"_array({data!r}, {dtype.str!r}, {_literal(tuple(a.shape))})"


def _attr_literal(v) -> str:
    """A kernel attribute: a DType is the module's ``_DType`` stand-in (kernels read
    ``dtype.np``); a variable is its name (the key of ``PARAMS``, which is the generated
    code's ``ctx.variables``); anything else is plain data."""
    if isinstance(v, DType):
        return f"_DType({_literal(np.dtype(v.np).name)})"
    if isinstance(v, Operation) and v.type == "variable":
        return _literal(v.name)
    if isinstance(v, (tuple, list)) and any(isinstance(x, (DType, Operation)) for x in v):
        inner = ", ".join(_attr_literal(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return _literal(v)


def _scalar_literal(v) -> str:
    """A numpy scalar keeps its type (0-d arithmetic in the plan depends on it)."""
    return f"np.dtype({np.dtype(type(v)).name!r}).type({_literal(v.item())})"


# --- kernels carried as source ----------------------------------------------------------------
# A kernel is a named module-level function of graphc (STYLE: no lambdas in the registry):
# the module carries its text, and the text of the graphc functions it calls, read with
# inspect. Only graphc's own source is copied, never user code or data.

# Names carried functions may use besides graphc functions, number constants and error
# classes, and how to import them.
_KERNEL_IMPORTS = {
    "np": "import numpy as np",
    "builtins": "import builtins",  # (ops.array names ops range and slice, as TF does)
    "math": "import math",
    "functools": "import functools",
    "sliding_window_view": "from numpy.lib.stride_tricks import sliding_window_view",
}


def _global_names(code) -> set:
    """The global names ``code`` (and the functions nested in it) reads; attribute names
    such as ``x.reshape`` are not globals, so they do not tie a kernel to its module's
    function of the same name."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname == "LOAD_GLOBAL"}
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names


# graphc functions a generated module defines itself, instead of carrying their text: a
# control op's kernel runs its body through ``run_function``, which in graphc compiles the
# body on first use (backends/subplan.py) and here calls the body's rendered plan (_PRELUDE).
_PROVIDED = {control.run_function: "run_function", control.loop_function: "loop_function"}


@functools.lru_cache(maxsize=None)
def _library(fn):
    """``(functions in dependency order, import and constant lines, error class names)`` that
    carrying ``fn`` takes, or None when it is not a named module-level graphc function whose
    every global is one of those."""
    order, imports, errors, seen = [], set(), set(), set()

    def visit(f):
        if f in seen:
            return True
        seen.add(f)
        if (
            not inspect.isfunction(f)
            or f.__name__ != f.__qualname__
            or f.__closure__
            or not f.__module__.startswith("graphc.")
        ):
            return False  # a lambda, a closure, a method, or not graphc's own code
        for name in sorted(_global_names(f.__code__)):
            if name not in f.__globals__:
                continue  # an attribute or a builtin
            value = f.__globals__[name]
            if (
                name in _KERNEL_IMPORTS
                and inspect.ismodule(value)
                or (name == "sliding_window_view")
            ):
                imports.add(_KERNEL_IMPORTS[name])
            elif type(value) in (int, float, bool, str):  # a module constant (a budget)
                imports.add(f"{name} = {_literal(value)}")
            elif isinstance(value, type) and issubclass(value, GraphcError):
                if value.__name__ != name:
                    return False
                errors.add(name)
            elif any(value is f and n == name for f, n in _PROVIDED.items()):
                pass  # the module's runtime defines it
            elif inspect.isfunction(value) and value.__name__ == name:
                if not visit(value):
                    return False
            else:
                return False  # anything else is not plain numpy: no standalone source
        order.append(f)
        return True

    if not visit(fn):
        return None
    return tuple(order), tuple(sorted(imports)), tuple(sorted(errors))


def _kernel_library(opdef):
    """(function sources in dependency order, import and constant lines) for the kernel the
    numpy backend runs for ``opdef``, or None when it cannot be carried (a user op)."""
    kernel = LOWERINGS.get(opdef, opdef.numpy)
    if isinstance(kernel, np.ufunc):
        return (), ()
    lib = _library(kernel)
    if lib is None:
        return None
    return tuple(_source_of(f) for f in lib[0]), lib[1]


def supports(opdef) -> bool:
    """Whether generated modules can run ``opdef``."""
    return _kernel_library(opdef) is not None


@functools.lru_cache(maxsize=None)
def _source_of(fn) -> str:
    return textwrap.dedent(inspect.getsource(fn)).rstrip()


class _Carried:
    """The functions one module carries: each once, helpers before their callers; a name
    two different functions (or constants) would define is refused, not shadowed."""

    def __init__(self):
        self.functions: dict = {}  # function -> None (ordered)
        self.names: dict = {}  # name -> function or constant line
        self.imports: set = set()
        self.errors: set = set()
        # control-op bodies: Function -> the module-level name of its rendered ``_Body``;
        # ``render_body(fn)`` (set by emit_module) renders one the first time it is named
        self.bodies: dict = {}
        self.render_body = None

    def body(self, fn) -> str:
        name = self.bodies.get(fn)
        return name if name is not None else self.render_body(fn)

    def add(self, fn, what) -> str:
        """Carry ``fn``; returns its name. ``what`` names the op for an error."""
        lib = _library(fn)
        if lib is None:
            raise UnimplementedError(
                f"--emit py cannot carry the kernel of {what}: it is not "
                "a named function of graphc (a user op's Python is not "
                "copied into generated modules)"
            )
        order, imports, errors = lib
        for f in order:
            self._claim(f.__name__, f, what)
        for line in imports:
            if " = " in line:
                self._claim(line.split(" = ")[0], line, what)
        self.functions.update(dict.fromkeys(order))
        self.imports.update(imports)
        self.errors.update(errors)
        return fn.__name__

    def _claim(self, name, value, what):
        if (
            name in _RESERVED
            or self.names.setdefault(name, value) is not value
            and (self.names[name] != value)
        ):
            raise UnimplementedError(
                f"--emit py cannot carry {name!r} for {what}: another "
                "carried kernel (or the module itself) defines that name"
            )

    def text(self) -> list[str]:
        lines = sorted(line for line in self.imports if " = " not in line)
        lines += sorted(line for line in self.imports if " = " in line)
        lines += [
            f"\n\nclass {name}(GraphcError):\n    pass"
            for name in sorted(self.errors)
            if name != "GraphcError"
        ]
        lines += ["\n\n" + _source_of(f) for f in self.functions]
        return lines


# --- rendering a numpy plan -------------------------------------------------------------------


def _node_literal(node) -> str:
    """A stateful step's node: what its kernel reads of it (name, random seed, inputs; a
    control op's kernel names its op and location in a loop-shape error)."""
    if node.type == "variable":
        return _literal(node.name)
    seed = seed_for(node) if node.op.kind == "random" else None
    inputs = tuple(t.name for t in node.inputs)
    extra = ""
    if node.op in control.CONTROL_OPS:
        where = str(node.location) if node.location else None
        extra = f", {_literal(node.op.name)}, {_literal(where)}"
    return f"_Node({_literal(node.name)}, {_literal(seed)}, {_literal(inputs)}{extra})"


def _what(step) -> str:
    src = step.sources[0] if step.sources else None
    where = f" at {src.location}" if src is not None and src.location else ""
    name = f" '{src.name}'" if src is not None else ""
    return f"op {step.op.name!r}{name}{where}"


def _binding(name, value, carried, what) -> str:
    """Source for one name the generated code reads from its namespace."""
    if callable(value) and getattr(np, getattr(value, "__name__", ""), None) is value:
        return f"np.{value.__name__}"  # a numpy ufunc or function
    if isinstance(value, functools.partial):
        fn = _binding(name, value.func, carried, what)
        kw = "".join(
            f", {k}={carried.body(v) if isinstance(v, control.Function) else _attr_literal(v)}"
            for k, v in value.keywords.items()
        )
        args = "".join(f", {_attr_literal(a)}" for a in value.args)
        return f"functools.partial({fn}{args}{kw})"
    if inspect.isfunction(value):
        return carried.add(value, what)
    if isinstance(value, Operation):
        return _node_literal(value)
    if isinstance(value, np.ndarray):
        return _array_literal(value)
    if isinstance(value, np.generic):
        return _scalar_literal(value)
    if callable(value):
        raise UnimplementedError(
            f"--emit py cannot carry the kernel of {what}: "
            f"{type(value).__name__} {value!r} is not a named function"
        )
    return _literal(value)


def _render_plan(plan, fn_name, carried) -> list[str]:
    """``def fn_name():`` returning the plan's ``run(ctx, *feeds)``: the numpy backend's
    generated source, with everything it names bound as local literals and carried code."""
    gen = _Generator(plan, compiled_loops=False)  # numpy only: the source runs elsewhere
    src = gen.generate(entries=("run",))
    what = {}
    for step in plan.steps:
        for key in (f"k{step.index}",) + tuple(f"k{step.index}_{j}" for j in range(len(step.body))):
            what[key] = step
    lines = [f"def {fn_name}():"]
    for name, value in gen.ns.items():
        if name in RUNTIME or name == "clock":
            continue
        step = what.get(name)
        lines.append(
            f"    {name} = "
            + _binding(name, value, carried, _what(step) if step is not None else name)
        )
    lines.append("    LOCAL = threading.local()   # each thread runs on its own arena")
    lines.append("    FAIL = _fail")
    lines += ["    " + line if line else "" for line in src.lines]
    lines.append("    return run")
    return lines


# --- the module -------------------------------------------------------------------------------

# The runtime every generated module carries (numpy only): stand-ins for what the generated
# code reads of graphc (its error class, DTypes, nodes, the session's run context).
_PRELUDE = '''
class GraphcError(Exception):
    def __init__(self, message="", location=None, **_):
        super().__init__(f"{location}: {message}" if location else message)


class _DType:
    """What kernels read of a graphc DType."""

    def __init__(self, name):
        self.name = name
        self.np = np.dtype(name)
        self.is_floating = self.np.kind == "f"
        self.is_integer = self.np.kind in "iu"
        self.is_bool = self.np.kind == "b"


class _Node:
    """What stateful kernels read of their node: name, random seed, input names (and a
    control op's op name and location, for its errors)."""

    def __init__(self, name, seed=None, inputs=(), op=None, location=None):
        self.name = name
        self.seed = seed
        self.inputs = [_Node(i) for i in inputs]
        self.op = _Node(op) if op is not None else None
        self.location = location


class _Spec:
    """What a control op's kernel reads of a body's parameter or result: its static type."""

    def __init__(self, dtype, shape):
        self.dtype = _DType(dtype)
        self.shape = shape

    def describe(self):
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d)
                                                        for d in self.shape)
        return f"[{self.dtype.name}({dims})]"


class _Body:
    """A control op's body (a branch, a loop's condition or step): its plan's ``run`` over
    the parameters at ``positions``, and the static types of its parameters and results."""

    def __init__(self, name, run, positions, params, outputs):
        self.name = name
        self.run = run
        self.positions = positions
        self.params = [_Spec(*p) for p in params]
        self.outputs = [_Spec(*o) for o in outputs]


def run_function(fn, ctx, arrays):
    """Run body ``fn`` on ``arrays`` (its parameters' values, in order): a list of arrays."""
    arrays = [a if type(a) is np.ndarray else np.asarray(a) for a in arrays]
    return fn.run(ctx, *[arrays[i] for i in fn.positions])


def loop_function(fn, ctx, arrays):
    """A loop's step function for body ``fn`` (its results are fresh arrays here)."""
    return lambda values: run_function(fn, ctx, values)


class _Context:
    """The run context: variables (PARAMS, by name), random generators, printing."""

    def __init__(self, variables):
        self.variables = variables
        self.rngs = {}
        self.print = print
        self.locks = {}

    def lock(self, var):
        return self.locks.setdefault(var.name, threading.Lock())

    def rng(self, node):
        gen = self.rngs.get(node.name)
        if gen is None:
            gen = self.rngs[node.name] = np.random.default_rng(node.seed)
        return gen


def _fail(exc, ctx):
    return exc


def _array(data, dtype, shape):
    return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape).copy()


def _feed(feeds, name, dtype, shape, dims, default=None):
    if name not in feeds:
        if default is not None:
            return default
        raise KeyError(f"missing feed {name!r}")
    value = np.asarray(feeds[name])
    if value.dtype != dtype:
        if not np.can_cast(value.dtype, dtype, casting="same_kind") and not (
                value.dtype.kind in "iub" and dtype.kind in "iuf"):
            raise TypeError(f"feed {name!r}: cannot use {value.dtype} values as {dtype}")
        value = value.astype(dtype)
    if shape is not None:
        if value.ndim != len(shape):
            raise ValueError(f"feed {name!r}: expected rank {len(shape)}, got shape {value.shape}")
        for d, n in zip(shape, value.shape):
            if isinstance(d, int) and d != n:
                raise ValueError(f"feed {name!r}: expected shape {shape}, got {value.shape}")
            if isinstance(d, str) and dims.setdefault(d, n) != n:
                raise ValueError(f"feed {name!r}: dimension {d!r} is {dims[d]} in another "
                                 f"feed but {n} here")
    return value


array = np.array
'''

_RUN = '''

def _call(plan, feeds, dims):
    outputs, names, fn = plan
    args = [_feed(feeds, n, INPUTS[n][0], INPUTS[n][1], dims, DEFAULTS.get(n)) for n in names]
    return dict(zip(outputs, fn(_CTX, *args)))


def run(feeds, outputs=None):
    """Output name -> array: every output the feeds (input name -> array) determine, or the
    named ``outputs`` (a KeyError names the feeds they still need)."""
    fed = set(feeds)
    for name in outputs or ():
        missing = sorted(NEEDS[name] - fed)
        if missing:
            raise KeyError(f"output {name!r} needs the feeds {missing}")
    if not outputs and OUTPUTS and not any(NEEDS[name] <= fed for name in OUTPUTS):
        raise KeyError(f"no output can be computed from the feeds {sorted(fed)}; "
                       f"they need {[sorted(NEEDS[name]) for name in OUTPUTS]}")
    dims, result = {}, {}
    if OUTPUTS and all(NEEDS[name] <= fed for name in OUTPUTS):
        result = _call(RUN_PLANS[0], feeds, dims)           # the plan of every output
    else:                                                   # the plans the feeds allow
        for plan in RUN_PLANS[1:]:
            if set(plan[1]) - set(DEFAULTS) <= fed:
                result.update(_call(plan, feeds, dims))
    return {k: v for k, v in result.items() if outputs is None or k in outputs}
'''


def _output_name(t) -> str:
    """An output's key in run()'s result: its .g name, or ``name:i`` for one of several."""
    return t.op.name if len(t.op.outputs) == 1 else t.name


def _initial_values(graph, variables) -> dict:
    """Each variable's initial value, from its initializer, run by the reference
    interpreter (no Session: the emitter is a backend, below the session)."""
    ctx = RunContext({}, {})
    inits = []
    for v in variables:
        init = getattr(v, "initializer", None)
        if init is None:
            raise GraphcError(
                f"--emit py: variable '{v.op.name}' has no initializer; give it "
                "an initial value or start from a checkpoint (--restore)"
            )
        inits.append(init)
    ReferenceExecutable([], inits, [])(ctx, {})
    return {v.op.name: ctx.variables[v.op] for v in variables}


def _defaults(graph, inputs) -> dict:
    """A ``placeholder_with_default`` whose default needs no feed and no variable can be fed:
    its default value is embedded. Others compute their default in the plan."""
    out = {}
    for t in inputs:
        if t.op.type != "placeholder_with_default":
            continue
        deps = list(walk_needed([t.op.inputs[0]], [], set()))
        if any(op.type in ("placeholder", "variable") or op.op.stateful for op in deps):
            continue
        (value,) = ReferenceExecutable([t.op.inputs[0]], [], [])(RunContext({}, {}), {})
        out[t.op.name] = value
    return out


def _needs(t, placeholders) -> frozenset:
    """The names of the placeholders that output ``t`` needs fed."""
    fed = set(placeholders)
    used = {x.op.name for op in walk_needed([t], [], fed) for x in op.inputs if x in fed}
    used |= {
        x.op.name
        for op in walk_needed([t], [], fed)
        for c in op.control_inputs
        for x in c.outputs
        if x in fed
    }
    return frozenset(used | ({t.op.name} if t in fed else set()))


def emit_module(
    graph, source_name: str = "model.g", params: dict | None = None, optimize: int = 2
) -> str:
    """The module's source: the ``optimize``-level numpy plans of the model's outputs and of
    its train clause. ``params`` (name -> array) overrides the initial values, e.g. from a
    checkpoint; otherwise the initializers run once here and their values are kept."""
    variables = graph.get_collection(GLOBAL_VARIABLES)
    values = dict(params or {})
    missing = [v for v in variables if v.op.name not in values]
    if missing:
        values.update(_initial_values(graph, missing))
    outputs = graph.get_collection(OUTPUTS)
    clauses = graph.get_collection(TRAIN_CLAUSES)
    if not outputs and not clauses:
        raise GraphcError("--emit py needs `output` statements or a `train` clause in the model")
    placeholders = [op.outputs[0] for op in graph.get_operations() if op.type == "placeholder"]
    with_default = [
        op.outputs[0] for op in graph.get_operations() if op.type == "placeholder_with_default"
    ]
    defaults = _defaults(graph, with_default)
    feedable = [t for t in with_default if t.op.name in defaults]
    needs = {_output_name(t): _needs(t, placeholders) for t in outputs}
    carried = _Carried()
    plans, tables = [], []

    def body_of(fn):
        """A control op's body, compiled at its parameters' static shapes (an unknown dim
        is allocated at run time, as in any plan) and rendered as ``_BODY_<k>``; a body it
        runs in turn is rendered first. Returns the name."""
        k = len(carried.bodies)
        carried.bodies[fn] = name = f"_BODY_{k}"
        plan = compile_plan(
            list(fn.outputs) + list(fn.targets),
            feed_shapes={p: p.shape for p in fn.params if p.shape is not None},
            optimize=optimize,
            graph=fn.graph,
        )
        index = {p: i for i, p in enumerate(fn.params)}
        positions = [index[t] for t, _ in plan.feeds]
        lines = _render_plan(plan, f"_body_{k}", carried)  # (renders nested bodies first)

        def spec(t):
            return (np.dtype(t.dtype.np).name, None if t.shape is None else tuple(t.shape))

        plans.append(
            [f"# body {_literal(fn.name)}: {plan.stats['kernels']} kernels"]
            + lines
            + [
                f"{name} = _Body({_literal(fn.name)}, _body_{k}(), {_literal(positions)}, "
                f"{_literal([spec(p) for p in fn.params])}, "
                f"{_literal([spec(o) for o in fn.outputs])})"
            ]
        )
        return name

    carried.render_body = body_of

    def plan_of(fetches, fetch_ops, label):
        """A plan for these fetches, rendered as ``_plan_<i>()``; its table entry."""
        shapes = {t: t.shape for t in feedable}
        plan = compile_plan(
            list(fetches) + list(fetch_ops), feed_shapes=shapes, optimize=optimize, graph=graph
        )
        fn = f"_plan_{len(plans)}"
        plans.append(
            [
                f"# {label}: {plan.stats['kernels']} kernels, "
                f"{plan.stats['nodes_before']} -> {plan.stats['nodes_after']} nodes"
            ]
            + _render_plan(plan, fn, carried)
            + [f"_PLAN_{len(plans)} = {fn}()"]
        )
        names = tuple(t.op.name for t, _ in plan.feeds)
        return (
            f"({_literal(tuple(_output_name(t) for t in fetches))}, {_literal(names)}, "
            f"_PLAN_{len(plans) - 1})"
        )

    if outputs:
        tables.append(plan_of(outputs, [], "run: every output"))
        everything = frozenset().union(*needs.values())
        for need in sorted(set(needs.values()) - {everything}, key=sorted):
            part = [t for t in outputs if needs[_output_name(t)] <= need]
            tables.append(plan_of(part, [], f"run: the outputs of the feeds {sorted(need)}"))
    train = None
    if clauses:
        c = clauses[-1]
        train = plan_of([c.loss], [c.op], "train_step")

    out = [
        f"# Generated by graphc from {_literal(source_name)} at -O{optimize}: "
        "run(feeds) -> dict"
        + (", train_step(feeds) -> dict" if clauses else "")
        + ". Needs only numpy.",
        "from __future__ import annotations  # (carried functions' annotations name graphc types)",
        "",
        "import base64",
        "import functools",
        "import threading",
        "",
        "import numpy as np",
        "",
        _PRELUDE.strip("\n"),
        "",
    ]
    # the generated code's own runtime (numpy_backend.as_tuple, tiles), carried as its text
    runtime = [carried.add(getattr(numpy_backend, n), n) for n in ("as_tuple", "tiles")]
    assert runtime == ["as_tuple", "tiles"]
    body = [line for p in plans for line in ["", ""] + p]
    out += carried.text()
    out += ["", "", "PARAMS = {"]
    for v in variables:
        out.append(f"    {_literal(v.op.name)}: {_literal(np.asarray(values[v.op.name]))},")
    out.append("}")
    out.append(
        "INPUTS = {"
        + ", ".join(
            f"{_literal(t.op.name)}: ({_literal(t.dtype)}, "
            f"{_literal(None if t.shape is None else tuple(t.shape))})"
            for t in placeholders + feedable
        )
        + "}"
    )
    out.append(
        "DEFAULTS = {"
        + ", ".join(f"{_literal(k)}: {_literal(np.asarray(v))}" for k, v in defaults.items())
        + "}"
    )
    out.append(f"OUTPUTS = {_literal([_output_name(t) for t in outputs])}")
    out.append(
        "NEEDS = {"
        + ", ".join(f"{_literal(k)}: set({_literal(sorted(v))})" for k, v in needs.items())
        + "}"
    )
    out.append("_CTX = _Context(PARAMS)")
    out += body
    out += ["", "", "RUN_PLANS = [" + ", ".join(tables) + "]"]
    out.append(_RUN)
    if train is not None:
        out += [
            "",
            "def train_step(feeds):",
            '    """One update of PARAMS; returns the loss before it."""',
            f"    return _call({train}, feeds, {{}})",
        ]
    return "\n".join(out) + "\n"


_RESERVED = {
    "GraphcError",
    "_Spec",
    "_Body",
    "run_function",
    "loop_function",
    "_DType",
    "_Node",
    "_Context",
    "_fail",
    "_array",
    "_feed",
    "array",
    "PARAMS",
    "INPUTS",
    "DEFAULTS",
    "OUTPUTS",
    "NEEDS",
    "RUN_PLANS",
    "run",
    "train_step",
    "_call",
    "_CTX",
    "np",
    "base64",
    "functools",
    "threading",
}
