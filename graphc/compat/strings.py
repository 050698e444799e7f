"""String constants, for the TF 1.x "hello world": ``sess.run(tf.constant("Hello"))``
gives ``b'Hello'``, as TF does.

graphc's tensors are numeric, so strings get only this: a constant op of the ``tf.string``
dtype (numpy ``object`` arrays of ``bytes``) that a session can fetch. It is kept out of
the op registry on purpose: it has no shape rule worth testing, no gradient and no kernel
besides returning its value, and no numeric op accepts its dtype."""

from __future__ import annotations

import numpy as np

from ..dtypes import string
from ..ops.registry import OpDef


def _encode(value):
    return value.encode("utf-8") if isinstance(value, str) else value


def is_string_value(value) -> bool:
    """True for a str/bytes, or a (nested) list of them."""
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (str, bytes))


STRING_CONSTANT = OpDef(
    "string_constant",
    lambda ins, attrs: [(string, attrs["value"].shape)],
    numpy=lambda ctx, node, value: value,
    kind="source",
    stateful=True,
    differentiable=False,
    doc="A constant array of bytes (TF's tf.string), fetchable but not computable.",
)


def string_constant(value, name=None):
    arr = np.vectorize(_encode, otypes=[object])(np.array(value, dtype=object))
    return STRING_CONSTANT(name=name or "Const", value=arr)
