"""The op library. Importing it fills the registry and gives Tensor its operators."""

from ..ir.node import install_operators
from . import array, control, elementwise, linalg, nn, random, reduce, sources, state  # noqa: F401
from .array import getitem, transpose
from .elementwise import (
    abs,
    add,
    divide,
    floordiv,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    mod,
    multiply,
    neg,
    pow,
    subtract,
)
from .linalg import matmul
from .registry import REGISTRY, OpDef, register

install_operators(
    {
        "__add__": lambda a, b: add(a, b),
        "__radd__": lambda a, b: add(b, a),
        "__sub__": lambda a, b: subtract(a, b),
        "__rsub__": lambda a, b: subtract(b, a),
        "__mul__": lambda a, b: multiply(a, b),
        "__rmul__": lambda a, b: multiply(b, a),
        "__truediv__": lambda a, b: divide(a, b),
        "__rtruediv__": lambda a, b: divide(b, a),
        "__floordiv__": lambda a, b: floordiv(a, b),
        "__rfloordiv__": lambda a, b: floordiv(b, a),
        "__mod__": lambda a, b: mod(a, b),
        "__rmod__": lambda a, b: mod(b, a),
        "__pow__": lambda a, b: pow(a, b),
        "__rpow__": lambda a, b: pow(b, a),
        "__matmul__": lambda a, b: matmul(a, b),
        "__rmatmul__": lambda a, b: matmul(b, a),
        "__neg__": lambda a: neg(a),
        "__pos__": lambda a: a,
        "__abs__": lambda a: abs(a),
        "__lt__": lambda a, b: less(a, b),
        "__le__": lambda a, b: less_equal(a, b),
        "__gt__": lambda a, b: greater(a, b),
        "__ge__": lambda a, b: greater_equal(a, b),
        "__invert__": lambda a: logical_not(a),
        "__and__": lambda a, b: logical_and(a, b),
        "__rand__": lambda a, b: logical_and(b, a),
        "__or__": lambda a, b: logical_or(a, b),
        "__ror__": lambda a, b: logical_or(b, a),
        "__xor__": lambda a, b: logical_xor(a, b),
        "__rxor__": lambda a, b: logical_xor(b, a),
        "__getitem__": lambda a, key: getitem(a, key),
        "T": property(lambda a: transpose(a)),
    }
)

__all__ = ["REGISTRY", "OpDef", "register"]
