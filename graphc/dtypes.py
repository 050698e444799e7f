"""The dtypes graphc knows, and the weak-scalar rule (SPEC §2)."""

from __future__ import annotations

import numpy as np

from .errors import DTypeError


class DType:
    """A graphc dtype: a name, its numpy dtype and its short `.g` spelling."""

    __slots__ = ("name", "np", "short")

    def __init__(self, name: str, short: str):
        self.name = name
        self.np = np.dtype(name)
        self.short = short

    @property
    def is_floating(self) -> bool:
        return self.np.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.np.kind in "iu"

    @property
    def is_bool(self) -> bool:
        return self.np.kind == "b"

    @property
    def as_numpy_dtype(self):  # TF1 spelling
        return self.np.type

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @property
    def base_dtype(self) -> DType:  # TF1 spelling
        return self

    def __repr__(self) -> str:
        return f"gc.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self):
        return (as_dtype, (self.name,))


float16 = DType("float16", "f16")
float32 = DType("float32", "f32")
float64 = DType("float64", "f64")
int8 = DType("int8", "i8")
int16 = DType("int16", "i16")
int32 = DType("int32", "i32")
int64 = DType("int64", "i64")
uint8 = DType("uint8", "u8")
bool_ = DType("bool", "bool")

ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
# TF's tf.string: numpy object arrays of bytes that a session can fetch (compat's string
# constants, summaries); not in ALL, since no numeric op takes it
string = DType("object", "string")
FLOATING = (float16, float32, float64)
_BY_NAME = {d.name: d for d in ALL} | {d.short: d for d in ALL}
_BY_NAME |= {
    "float": float32,
    "double": float64,
    "half": float16,
    "int": int32,
    "long": int64,
    "bool_": bool_,
    "boolean": bool_,
}


def as_dtype(x) -> DType:
    """Accept a DType, a numpy dtype or type, a name (``"float32"``, ``"f32"``, ``"float"``)."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        if x in _BY_NAME:
            return _BY_NAME[x]
        raise DTypeError(f"unknown dtype {x!r}; expected one of {', '.join(d.name for d in ALL)}")
    if x is float:
        return float32
    if x is int:
        return int32
    if x is bool:
        return bool_
    try:
        name = np.dtype(x).name
    except TypeError:
        raise DTypeError(f"not a dtype: {x!r}") from None
    if name in _BY_NAME:
        return _BY_NAME[name]
    raise DTypeError(f"dtype {name} is not supported by graphc")


def is_python_scalar(x) -> bool:
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def weak_scalar_dtype(value, other: DType, *, where: str = "") -> DType:
    """The dtype a Python scalar takes next to a tensor of dtype ``other`` (JAX's weak types).

    ints and floats adopt a floating tensor's dtype, ints adopt an integer tensor's dtype;
    a float next to an integer tensor (or a number next to a bool) would silently change
    meaning, so it is an error with a hint to cast.
    """
    if isinstance(value, bool):
        if other.is_bool or other.is_integer or other.is_floating:
            return other
    elif isinstance(value, int):
        if other.is_floating or other.is_integer:
            return other
    elif isinstance(value, float):
        if other.is_floating:
            return other
    raise DTypeError(
        f"{where}cannot combine Python {type(value).__name__} {value!r} with a {other.name} "
        "tensor; "
        f"use gc.cast(tensor, gc.float32) or a value of the tensor's kind"
    )


def default_dtype_of(value) -> DType:
    """dtype of a constant built from Python or numpy data: floats are float32 unless numpy
    says otherwise."""
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        return as_dtype(value.dtype)
    try:
        arr = np.asarray(value)
    except ValueError as e:  # a ragged nested list: numpy says where the lengths differ
        raise DTypeError(
            f"cannot make a tensor from a ragged nested list (its rows have different lengths): {e}"
        ) from None
    if arr.dtype.kind == "f":
        return float32
    if arr.dtype.kind in "iu":
        return int32
    if arr.dtype.kind == "b":
        return bool_
    raise DTypeError(f"cannot make a tensor from {type(value).__name__} (numpy dtype {arr.dtype})")
