"""The compiler's passes (``pipeline.py`` lists them in order) and the helpers for writing
your own (``api.py``): ``gc.compile(..., passes=[fn])`` with ``fn(g) -> g | None`` over the
program's ``networkx.MultiDiGraph``."""

from .api import (
    add_const,
    add_op,
    constant_value,
    find,
    inputs,
    remove_dead,
    replace_uses,
    users,
)

__all__ = [
    "find",
    "inputs",
    "users",
    "add_op",
    "add_const",
    "constant_value",
    "replace_uses",
    "remove_dead",
]
