"""What a name means in a ``.g`` file when no statement bound it: a dtype, a builtin
function (the public Python API, nothing else), a parameter initializer, an optimizer.

These tables are the whole vocabulary of the language; the front end calls nothing that is
not listed here (a ``.g`` file cannot reach ``open`` or ``__import__`` because they are not
in any table)."""

from __future__ import annotations

import functools
import inspect

from .. import dtypes as D
from ..ir.printer import CONSTANTS  # noqa: F401  (plain values every file can use)
from ..ops.array import fill
from ..ops.random import random_normal, random_uniform, truncated_normal

# Short and long dtype names: ``f32[N, 3]`` or ``float32[N, 3]``.
DTYPES = {
    "f16": D.float16,
    "f32": D.float32,
    "f64": D.float64,
    "i8": D.int8,
    "i16": D.int16,
    "i32": D.int32,
    "i64": D.int64,
    "u8": D.uint8,
    "bool": D.bool_,
    "float16": D.float16,
    "float32": D.float32,
    "float64": D.float64,
    "int8": D.int8,
    "int16": D.int16,
    "int32": D.int32,
    "int64": D.int64,
    "uint8": D.uint8,
}


# Public functions that are not graph-building functions of one tensor expression.
_NOT_BUILTINS = {
    "placeholder",
    "placeholder_with_default",
    "Variable",
    "global_variables",
    "trainable_variables",
    "global_variables_initializer",
    "variables_initializer",
    "control_dependencies",
    "set_random_seed",
    "name_scope",
    "gradients",
    "load",
    "loads",
    "compile",
    "get_default_graph",
    "reset_default_graph",
    "get_default_session",
    "as_dtype",
    # these take Python callables: a .g file has none to give, and should not try
    "register_op",
    "custom_gradient",
}


@functools.lru_cache(maxsize=1)
def _public_functions() -> dict:
    import graphc as gc  # the public API imports this front end: a cycle
    from graphc import nn

    table = {}
    for module in (nn, gc):  # gc last: its name wins where both define one
        for name in dir(module):
            fn = getattr(module, name)
            if (
                name.startswith("_")
                or name in _NOT_BUILTINS
                or inspect.isclass(fn)
                or not callable(fn)
            ):
                continue
            if getattr(fn, "__module__", "").startswith("graphc"):
                table[name] = fn
    return table


def builtin(name: str):
    """The public graphc function called ``name`` in a ``.g`` file, or None."""
    return _public_functions().get(name)


def builtin_names() -> list[str]:
    return list(_public_functions())


# --- parameter initializers: ``param w : f32[3, 4] = normal(stddev=0.1, seed=1)`` -------------
# Each takes the declared shape and dtype first, then the keyword arguments of the .g call.


def _normal(shape, dtype, mean=0.0, stddev=1.0, seed=None, name=None):
    return random_normal(shape, mean=mean, stddev=stddev, dtype=dtype, seed=seed, name=name)


def _truncated_normal(shape, dtype, mean=0.0, stddev=1.0, seed=None, name=None):
    return truncated_normal(shape, mean=mean, stddev=stddev, dtype=dtype, seed=seed, name=name)


def _uniform(shape, dtype, minval=0.0, maxval=1.0, seed=None, name=None):
    return random_uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed, name=name)


def _glorot_uniform(shape, dtype, seed=None, name=None):
    """Uniform in ±sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in = shape[-2] if len(shape) >= 2 else shape[0] if shape else 1
    fan_out = shape[-1] if shape else 1
    limit = (6.0 / max(1, fan_in + fan_out)) ** 0.5
    return _uniform(shape, dtype, -limit, limit, seed=seed, name=name)


def _fill(shape, dtype, value=0, name=None):
    return fill(shape, value, dtype=dtype, name=name)


INITIALIZERS = {
    "normal": _normal,
    "truncated_normal": _truncated_normal,
    "uniform": _uniform,
    "glorot_uniform": _glorot_uniform,
    "zeros": lambda shape, dtype, name=None: _fill(shape, dtype, 0, name=name),
    "ones": lambda shape, dtype, name=None: _fill(shape, dtype, 1, name=name),
    "fill": _fill,
}


# --- optimizers: ``train loss with adam(lr=0.01)`` ---------------------------------------------
# .g name -> (gc.train class name, {.g keyword: constructor keyword}).
OPTIMIZERS = {
    "sgd": ("GradientDescentOptimizer", {"lr": "learning_rate"}),
    "momentum": ("MomentumOptimizer", {"lr": "learning_rate", "nesterov": "use_nesterov"}),
    "adam": ("AdamOptimizer", {"lr": "learning_rate"}),
    "rmsprop": ("RMSPropOptimizer", {"lr": "learning_rate"}),
    "adagrad": ("AdagradOptimizer", {"lr": "learning_rate"}),
}
