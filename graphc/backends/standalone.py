"""The standalone backend: a graph as a Python module that needs only numpy
(``graphc compile model.g --emit py``).

The module defines ``run(feeds) -> dict`` (output name -> array) and, for a model with a
``train`` clause, ``train_step(feeds) -> dict`` that updates the embedded parameters in place
and returns the loss. Parameters start at the values the model's initializers give (drawn
once, here, and embedded) or at a checkpoint's values.

Each op's numpy source is one entry of ``SOURCES`` (a backend dispatch table keyed by op
name): ``fn(node, args) -> expression``, where ``args`` are the names of the input variables.
Elementwise ops whose kernel is a numpy ufunc need no entry, and kernels that are plain numpy
functions of graphc's op modules (conv2d, the pools, most gradient kernels) and the random
draws of ``ops.random`` are carried as their own source text: one definition, two uses.

Safety: nothing from the graph reaches the module as code. Variables are named ``v<id>``;
node names, strings and numbers are written with ``repr()`` after checking their type
(``_literal``); arrays are base64 of their raw bytes with a checked dtype. So a hostile
``.g`` file (quotes, newlines or Python in its names and strings) yields inert literals.
"""

from __future__ import annotations

import base64
import dis
import functools
import inspect
import math
import textwrap

import numpy as np

from ..errors import GraphcError, UnimplementedError

# --- literals ---------------------------------------------------------------------------------

_ARRAY_KINDS = "biuf"


def _literal(v) -> str:
    """``v`` as Python source that evaluates to ``v``, for plain data only."""
    from ..dtypes import DType
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


# --- per-op numpy source ----------------------------------------------------------------------

def _kw(node, *keys) -> str:
    return ", ".join(_literal(node.attrs[k]) for k in keys)


def _t(expr, flag) -> str:
    return f"np.swapaxes({expr}, -1, -2)" if flag else expr


SOURCES = {
    "identity": lambda n, a: a[0],
    "stop_gradient": lambda n, a: a[0],
    "cast": lambda n, a: f"np.asarray({a[0]}).astype({_kw(n, 'dtype')})",
    "rsqrt": lambda n, a: f"np.reciprocal(np.sqrt({a[0]}))",
    "erf": lambda n, a: f"_erf({a[0]})",
    "is_finite": lambda n, a: f"np.isfinite({a[0]})",
    "divide": lambda n, a: f"np.true_divide({a[0]}, {a[1]})",
    "where": lambda n, a: f"np.where({a[0]}, {a[1]}, {a[2]})",
    "reshape": lambda n, a: f"np.reshape({a[0]}, {_kw(n, 'shape')})",
    "reshape_like": lambda n, a: f"np.reshape({a[0]}, np.shape({a[1]}))",
    "transpose": lambda n, a: f"np.transpose({a[0]}, {_kw(n, 'perm')})",
    "expand_dims": lambda n, a: f"np.expand_dims({a[0]}, {_kw(n, 'axis')})",
    "squeeze": lambda n, a: f"np.squeeze({a[0]}, {_kw(n, 'axis')})",
    "concat": lambda n, a: f"np.concatenate(({', '.join(a)},), axis={_kw(n, 'axis')})",
    "getitem": lambda n, a: f"np.asarray({a[0]})[{_kw(n, 'key')}]",
    "gather": lambda n, a: f"np.take({a[0]}, {a[1]}, axis={_kw(n, 'axis')})",
    "one_hot": lambda n, a: (f"_one_hot({a[0]}, "
                             f"{_kw(n, 'depth', 'on', 'off', 'axis', 'dtype')})"),
    "broadcast_to": lambda n, a: f"np.broadcast_to({a[0]}, {_kw(n, 'shape')})",
    "broadcast_like": lambda n, a: (f"np.broadcast_to({a[0]}, np.broadcast_shapes("
                                    f"np.shape({a[0]}), np.shape({a[1]})))"),
    "tile": lambda n, a: f"np.tile({a[0]}, {_kw(n, 'multiples')})",
    "fill": lambda n, a: f"np.full({_kw(n, 'shape', 'value')}, dtype={_kw(n, 'dtype')})",
    "fill_like": lambda n, a: (f"np.full(np.shape({a[0]}), {_kw(n, 'value')}, "
                               f"dtype={_kw(n, 'dtype')})"),
    "shape": lambda n, a: f"np.array(np.shape({a[0]}), dtype={_kw(n, 'dtype')})",
    "size": lambda n, a: f"np.array(np.size({a[0]}), dtype={_kw(n, 'dtype')})",
    "matmul": lambda n, a: (f"np.matmul({_t(a[0], n.attrs.get('transpose_a'))}, "
                            f"{_t(a[1], n.attrs.get('transpose_b'))})"),
    "einsum": lambda n, a: f"np.einsum({_equation(n)}, {', '.join(a)}, optimize={len(a) > 2})",
    "reduce_max": lambda n, a: f"_reduce(np.max, {a[0]}, {_kw(n, 'axis', 'keepdims')})",
    "reduce_min": lambda n, a: f"_reduce(np.min, {a[0]}, {_kw(n, 'axis', 'keepdims')})",
    "reduce_prod": lambda n, a: f"_reduce(np.prod, {a[0]}, {_kw(n, 'axis', 'keepdims')})",
    "reduce_any": lambda n, a: f"_reduce(np.any, {a[0]}, {_kw(n, 'axis', 'keepdims')})",
    "reduce_all": lambda n, a: f"_reduce(np.all, {a[0]}, {_kw(n, 'axis', 'keepdims')})",
    "argmax": lambda n, a: (f"np.argmax({a[0]}, axis={_kw(n, 'axis')})"
                            f".astype({_kw(n, 'output_type')})"),
    "argmin": lambda n, a: (f"np.argmin({a[0]}, axis={_kw(n, 'axis')})"
                            f".astype({_kw(n, 'output_type')})"),
    "sum_to_like": lambda n, a: f"_sum_to_shape({a[0]}, np.shape({a[1]}))",
    "random_normal": lambda n, a: _random("_normal", n, a, "mean", "stddev"),
    "truncated_normal": lambda n, a: _random("_truncated", n, a, "mean", "stddev"),
    "random_uniform": lambda n, a: _random("_uniform", n, a, "minval", "maxval"),
    "random_permutation": lambda n, a: (f"_rng({n.id}, {_literal(_seed(n))}).permutation("
                                        f"{_kw(n, 'n')}).astype({_kw(n, 'dtype')})"),
    "print": lambda n, a: (f"_print({a[0]}, {_kw(n, 'message', 'summarize')}, "
                           f"({', '.join(a[1:])},))"),
    "check_numerics": lambda n, a: f"_check_numerics({a[0]}, {_kw(n, 'message')})",
}


def _equation(node) -> str:
    return _literal(",".join(node.attrs["subscripts"]) + "->" + node.attrs["output"])


def _seed(node):
    from ..ops.random import seed_for
    return seed_for(node)


def _random(draw, n, a, *keys):
    shape = f"np.shape({a[0]})" if a else _kw(n, "shape")
    return (f"{draw}(_rng({n.id}, {_literal(_seed(n))}), {shape}, {_kw(n, 'dtype')}, "
            f"{_kw(n, *keys)})")


# Ops that _Emitter.statement writes itself (they touch feeds, PARAMS or module constants).
SPECIAL = {"const", "placeholder", "placeholder_with_default", "variable", "assign",
           "assign_add", "assign_sub", "no_op"}


def supports(opdef) -> bool:
    """Whether generated modules can run ``opdef``."""
    return (opdef.name in SPECIAL or opdef.name in SOURCES
            or isinstance(opdef.numpy, np.ufunc) or _kernel_library(opdef) is not None)


# --- kernels carried as source ----------------------------------------------------------------
# A kernel that is a plain numpy function of graphc's own op modules (conv2d, the pools and
# their gradients) needs no second copy here: the module carries its text, and the text of
# the helpers it calls, read with inspect. Only graphc's source is copied, never user data.

# Names such kernels may use besides their own module's functions and number constants, and
# how to import them.
_KERNEL_IMPORTS = {
    "np": "import numpy as np",
    "builtins": "import builtins",  # (ops.array names ops range and slice, as TF does)
    "math": "import math",
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


@functools.lru_cache(maxsize=None)
def _kernel_library(opdef):
    """(function sources in dependency order, import and constant lines) for ``opdef``'s
    kernel, or None when it is not a named pure-numpy function of a graphc module."""
    kernel = opdef.numpy
    if (opdef.stateful or not inspect.isfunction(kernel) or kernel.__name__ == "<lambda>"
            or not kernel.__module__.startswith("graphc.ops.")):
        return None
    order, imports, seen = [], set(), set()

    def visit(fn):
        if fn in seen:
            return True
        seen.add(fn)
        if fn.__closure__:  # it uses values its text does not hold (a user op's forward)
            return False
        for name in sorted(_global_names(fn.__code__)):
            if name not in fn.__globals__:
                continue  # an attribute or a builtin
            value = fn.__globals__[name]
            if name in _KERNEL_IMPORTS:
                imports.add(_KERNEL_IMPORTS[name])
            elif type(value) in (int, float, bool, str):  # a module constant (a budget)
                imports.add(f"{name} = {_literal(value)}")
            elif inspect.isfunction(value) and value.__module__ == kernel.__module__:
                if value.__name__ == "<lambda>" or not visit(value):
                    return False
            else:
                return False  # anything else is not plain numpy: no standalone source
        order.append(textwrap.dedent(inspect.getsource(fn)))
        return True

    return (tuple(order), tuple(sorted(imports))) if visit(kernel) else None


def _source(node, args, kernels: dict) -> str:
    opdef = node.op
    fn = SOURCES.get(opdef.name)
    if fn is not None:
        return fn(node, args)
    if isinstance(opdef.numpy, np.ufunc) and not node.attrs:
        return f"np.{opdef.numpy.__name__}({', '.join(args)})"
    library = _kernel_library(opdef)
    if library is not None:
        sources, imports = kernels.setdefault(opdef.numpy.__module__, ({}, set()))
        sources.update(dict.fromkeys(library[0]))  # ordered: helpers before their callers
        imports.update(library[1])
        attrs = "".join(f", {k}={_literal(v)}" for k, v in node.attrs.items())
        return f"{opdef.numpy.__name__}({', '.join(args)}{attrs})"
    raise UnimplementedError(
        f"the standalone backend has no numpy source for op {opdef.name!r} (node "
        f"'{node.name}'); compile without --emit py or add it to backends/standalone.SOURCES",
        node.location)


# Helpers every generated module carries (numpy only).
_PRELUDE = '''
import base64
import math

import numpy as np


def _array(data, dtype, shape):
    return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape).copy()


def _feed(feeds, name, dtype, shape, dims):
    if name not in feeds:
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


_RNGS = {}


def _rng(key, seed):
    if key not in _RNGS:
        _RNGS[key] = np.random.default_rng(seed)
    return _RNGS[key]


_erf_vec = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x):
    return _erf_vec(x).astype(np.asarray(x).dtype, copy=False)


def _reduce(fn, x, axis, keepdims):
    x = np.asarray(x)
    return np.asarray(fn(x, axis=axis, keepdims=keepdims), dtype=x.dtype)


def _sum_to_shape(g, shape):
    g = np.asarray(g)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    r = g.sum(axis=axes, keepdims=True) if axes else g
    return r.reshape(shape)


def _one_hot(idx, depth, on, off, axis, dtype):
    eye = np.arange(depth) == np.asarray(idx)[..., None]
    out = np.where(eye, np.asarray(on, dtype), np.asarray(off, dtype))
    return np.moveaxis(out, -1, axis) if axis != -1 else out


def _print(x, message, summarize, data):
    with np.printoptions(threshold=summarize or 1000):
        parts = [message] + [np.array2string(np.asarray(d)) for d in data]
    print(" ".join(p for p in parts if p))
    return x


def _check_numerics(x, message):
    x = np.asarray(x)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise FloatingPointError(f"check_numerics failed: {message}")
    return x


def _assign(name, value):
    buf = PARAMS[name]
    value = np.asarray(value)
    if buf.shape != value.shape:
        PARAMS[name] = np.array(value, dtype=buf.dtype, copy=True)
    else:
        np.copyto(buf, value)
    return PARAMS[name]


def _update(ufunc, name, delta):
    ufunc(PARAMS[name], delta, out=PARAMS[name])
    return PARAMS[name]
'''


# ops.random's draws, carried like the kernels: the same numbers as a session from one text.
_DRAWS = ("_normal", "_truncated", "_uniform")


@functools.lru_cache(maxsize=None)
def _prelude() -> str:
    """The helpers every generated module carries: ``_PRELUDE`` and the random draws."""
    from ..ops import random
    draws = [textwrap.dedent(inspect.getsource(getattr(random, name))) for name in _DRAWS]
    return _PRELUDE.strip("\n") + "\n\n\n" + "\n\n".join(draws).rstrip()


# --- the module -------------------------------------------------------------------------------

def _output_name(t) -> str:
    """An output's key in run()'s result: its .g name, or ``name:i`` for one of several."""
    return t.op.name if len(t.op.outputs) == 1 else t.name


class _Emitter:
    def __init__(self, graph):
        self.graph = graph
        self.constants: dict = {}      # const op -> module-level name
        self.kernels: dict = {}        # graphc module -> ({kernel source: None}, {import})

    def var(self, t) -> str:
        op = t.op
        if op.type == "const":
            return self.constants.setdefault(op, f"C{op.id}")
        return f"v{op.id}" if len(op.outputs) == 1 else f"v{op.id}_{t.index}"

    def ops(self, fetch_tensors, fetch_ops, feeds: set) -> list:
        from ..ir.graph import needed_ops
        ops, _ = needed_ops(fetch_tensors, fetch_ops, feeds)
        # fed placeholders are not "needed" ops; read the feeds the others use, first
        used = {t.op for op in ops for t in op.inputs if t in feeds}
        used |= {t.op for t in fetch_tensors if t in feeds}
        return sorted(used, key=lambda op: op.id) + ops

    def body(self, fetch_tensors, fetch_ops, feeds: set) -> list[str]:
        """Straight-line code for the fetches; every feed they need must be given."""
        lines = ["    dims = {}"]
        for node in self.ops(fetch_tensors, fetch_ops, feeds):
            lines += ["    " + line for line in self.statement(node)]
        return lines

    def guarded_body(self, outputs, feeds: set) -> list[str]:
        """Code for every output the given feeds determine: statements are grouped under
        ``if {needed feeds} <= fed:``, and each output goes into ``result`` once computed."""
        needs: dict = {}
        for node in self.ops(outputs, [], feeds):
            own = {node.name} if node.outputs and node.outputs[0] in feeds else set()
            deps = [t.op for t in node.inputs] + list(node.control_inputs)
            needs[node] = frozenset(own.union(*(needs.get(d, ()) for d in deps)))
        self.needs = {_output_name(t): sorted(needs[t.op]) for t in outputs}
        lines, current = ["    dims, result = {}, {}"], None
        for node, need in needs.items():
            body = self.statement(node) + [
                f"result[{_literal(_output_name(t))}] = np.array({self.var(t)}, copy=True)"
                for t in outputs if t.op is node]
            if not body:
                continue
            if need != current:
                current = need
                if need:
                    lines.append(f"    if fed.issuperset({_literal(sorted(need))}):")
            indent = "        " if need else "    "
            lines += [indent + line for line in body]
        return lines

    def statement(self, node) -> list[str]:
        t = node.type
        args = [self.var(x) for x in node.inputs]
        outs = [self.var(o) for o in node.outputs]
        name = _literal(node.name)
        if t == "const":
            self.var(node.outputs[0])
            return []
        if t == "placeholder":
            out = node.outputs[0]
            return [f"{outs[0]} = _feed(feeds, {name}, {_literal(out.dtype)}, "
                    f"{_literal(None if out.shape is None else tuple(out.shape))}, dims)"]
        if t == "placeholder_with_default":
            out = node.outputs[0]
            shape = _literal(None if out.shape is None else tuple(out.shape))
            return [f"{outs[0]} = (_feed(feeds, {name}, {_literal(out.dtype)}, {shape}, dims)"
                    f" if {name} in feeds else {args[0]})"]
        if t == "variable":
            return [f"{outs[0]} = PARAMS[{name}]"]
        if t in ("assign", "assign_add", "assign_sub"):
            var = _literal(node.attrs["var"].name)
            if t == "assign":
                return [f"{outs[0]} = _assign({var}, {args[0]})"]
            ufunc = "np.add" if t == "assign_add" else "np.subtract"
            return [f"{outs[0]} = _update({ufunc}, {var}, {args[0]})"]
        if t == "no_op":
            return []
        expr = _source(node, args, self.kernels)
        if len(outs) == 1:
            return [f"{outs[0]} = {expr}"]
        return [f"{', '.join(outs)}, = {expr}"]


_RUN = '''

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
    result = _run(feeds, fed)
    return {k: v for k, v in result.items() if outputs is None or k in outputs}
'''


def _kernel_text(kernels: dict) -> list[str]:
    """The carried kernels, each module's functions once; a name two modules define, or
    one that the prelude defines, cannot be carried (UnimplementedError names it)."""
    if not kernels:
        return []
    lines, defined = [], set()
    prelude_names = {line.split("(")[0][4:] for line in _prelude().splitlines()
                     if line.startswith("def ")}
    for module, (sources, imports) in sorted(kernels.items()):
        lines += ["", "", f"# kernels carried from {module}"] + sorted(imports)
        for src in sources:
            name = src.split("(")[0].split()[-1]
            if name in defined or name in prelude_names:
                raise UnimplementedError(f"the standalone backend cannot carry {module}.{name}: "
                                         "another kernel defines that name")
            defined.add(name)
            lines += ["", "", src.rstrip()]
    return lines


def emit_module(graph, source_name: str = "model.g", params: dict | None = None) -> str:
    """The module's source. ``params`` (name -> array) overrides the initial values, e.g.
    from a checkpoint; otherwise the initializers run once here and their values are kept."""
    from ..ir.graph import OUTPUTS, TRAIN_CLAUSES
    from ..ops.state import GLOBAL_VARIABLES, variables_initializer
    from ..session import Session

    variables = graph.get_collection(GLOBAL_VARIABLES)
    values = dict(params or {})
    missing = [v for v in variables if v.op.name not in values]
    if missing:
        with graph.as_default():
            init = variables_initializer(missing)
        with Session(graph=graph, optimize=0) as sess:
            sess.run(init)
            for v in missing:
                values[v.op.name] = sess.run(v)
    outputs = graph.get_collection(OUTPUTS)
    clauses = graph.get_collection(TRAIN_CLAUSES)
    if not outputs and not clauses:
        raise GraphcError("--emit py needs `output` statements or a `train` clause in the model")
    inputs = [op.outputs[0] for op in graph.get_operations() if op.type == "placeholder"]
    em = _Emitter(graph)

    run_lines = em.guarded_body(outputs, set(inputs)) + ["    return result"]
    train_lines = []
    if clauses:
        c = clauses[-1]
        train_lines = em.body([c.loss], [c.op], set(inputs))
        train_lines.append(f"    return {{{_literal(c.loss.op.name)}: "
                           f"np.array({em.var(c.loss)}, copy=True)}}")

    out = [f"# Generated by graphc from {_literal(source_name)}: run(feeds) -> dict"
           + (", train_step(feeds) -> dict" if clauses else "") + ". Needs only numpy.",
           _prelude(), "", ""]
    out.append("PARAMS = {")
    for v in variables:
        out.append(f"    {_literal(v.op.name)}: {_literal(np.asarray(values[v.op.name]))},")
    out.append("}")
    out.append("INPUTS = {" + ", ".join(
        f"{_literal(t.op.name)}: ({_literal(t.dtype)}, "
        f"{_literal(None if t.shape is None else tuple(t.shape))})" for t in inputs) + "}")
    out.append(f"OUTPUTS = {_literal([_output_name(t) for t in outputs])}")
    out.append("NEEDS = {" + ", ".join(f"{_literal(k)}: set({_literal(v)})"
                                       for k, v in em.needs.items()) + "}")
    for op, cname in sorted(em.constants.items(), key=lambda kv: kv[0].id):
        out.append(f"{cname} = {_literal(op.attrs['value'])}")
    out += _kernel_text(em.kernels)
    out += [_RUN, "", "def _run(feeds, fed):"] + run_lines
    if clauses:
        out += ["", "", "def train_step(feeds):",
                '    """One update of PARAMS; returns the loss before it."""'] + train_lines
    return "\n".join(out) + "\n"
