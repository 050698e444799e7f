"""Backends: one registry, one written protocol.

A backend turns one *request* — the fetches and feeds of one ``Session.run`` signature — into
an ``Executable``: usually by asking for the compiled ``Plan`` (``request.plan()``) and
generating code from it, or by interpreting the graph (the reference interpreter). The
session, ``gc.compile`` and the ``graphc`` command know backends only through this module:

    register_backend("mine", factory, tile_elems=None)   # factory(request) -> Executable
    get_backend("mine")                                   # the Backend record (or GraphcError)
    available_backends()                                  # ("numpy", "cupy", "reference", …)

Adding a backend is one module with its factory plus one ``register_backend`` line (below
for the built-in ones, or in the user's own module). A factory given as a
``"module:attribute"`` string is imported on first use, so registering cupy costs nothing on
a machine without it. How a backend runs each op is its own business: its lowering tables
are keyed by the ``OpDef`` objects of ``graphc.ops`` (the op's meaning stays in its OpDef).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

from ..errors import GraphcError, user_location
from ..passes.memory import TILE_ELEMS


@runtime_checkable
class Executable(Protocol):
    """What a backend's factory returns; the session (and through it ``graphc run``) calls
    only these. ``ctx`` is the session's ``reference.RunContext`` (variables keyed by their
    Operation, random generators, printing); results are one host numpy array per fetched
    tensor, in the request's ``fetch_tensors`` order, never a buffer a later run overwrites.

    * ``feed_tensors``: the fed tensors ``call`` takes, in order (a subset of the request's
      feeds: a plan may not need them all);
    * ``plan``: the ``Plan`` it runs, or None for an interpreter (``trace=`` then refuses);
    * ``exe(ctx, feeds)``: run once, ``feeds`` mapping fed tensors to arrays;
    * ``exe.call(ctx, *arrays)``: the same with the arrays in ``feed_tensors`` order — the
      lowest-overhead entry, what ``make_callable`` and the ``sess.run`` fast path call;
    * ``exe.call_traced(ctx, feeds)``: run once timing every plan step; returns
      ``(results, per-step seconds, start time)`` (``Session.run(trace=…)``).
    """

    feed_tensors: list
    plan: object

    def __call__(self, ctx, feeds: dict) -> list: ...

    def call(self, ctx, *arrays) -> list: ...

    def call_traced(self, ctx, feeds: dict) -> tuple: ...


@dataclass(frozen=True)
class Request:
    """One signature a session runs: fetched tensors and ops, fed tensors with the shapes and
    dtypes they are fed with, the optimize level, whether to trap NaN/Inf (``check``, the
    per-kernel check of ``diagnostics.check_kernel``, or None), ``plan()`` — the compiled
    Plan for this backend (the session's ``gc.compile`` call, made on demand) — and the
    user ``passes`` that plan runs (a backend that interprets instead would skip them)."""

    fetch_tensors: tuple
    fetch_ops: tuple
    feeds: dict  # fed Tensor -> (shape, numpy dtype)
    optimize: int
    check: Callable | None
    plan: Callable[[], object]
    backend: str = "numpy"
    passes: tuple = ()

    @property
    def check_numerics(self) -> bool:
        return self.check is not None


@dataclass(frozen=True)
class Backend:
    """A registered backend. ``factory(request) -> Executable``; ``tile_elems``: the element
    count of the tiles fused groups loop over (a CPU cache concern; None: one pass over the
    whole loop, as a GPU kernel does), which ``gc.compile`` plans with."""

    name: str
    factory: Callable | str
    tile_elems: int | None = None
    doc: str = ""

    def executable(self, request: Request) -> Executable:
        factory = self.factory
        if isinstance(factory, str):  # "package.module:attribute", imported lazily
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(request)


_BACKENDS: dict[str, Backend] = {}


def register_backend(
    name: str, factory, *, tile_elems: int | None = None, doc: str = "", replace: bool = False
) -> Backend:
    """Make ``name`` a backend for ``Session(backend=name)``, ``gc.compile(...,
    backend=name)`` and ``graphc … --backend name``. ``factory(request) -> Executable`` (a
    callable, or a ``"module:attribute"`` string imported on first use)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise GraphcError(f"a backend name is an identifier, got {name!r}")
    if name in _BACKENDS and not replace:
        raise GraphcError(
            f"a backend named {name!r} is already registered "
            "(register_backend(..., replace=True) replaces it)"
        )
    backend = Backend(name, factory, tile_elems, doc)
    _BACKENDS[name] = backend
    return backend


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; a GraphcError naming the choices otherwise."""
    try:
        return _BACKENDS[name]
    except (KeyError, TypeError):
        raise GraphcError(
            f"unknown backend {name!r}; choose one of {', '.join(available_backends())}",
            user_location(),
        ) from None


def available_backends() -> tuple:
    """The registered backends' names, in registration order."""
    return tuple(_BACKENDS)


# The built-in backends: one line each.
register_backend(
    "numpy",
    "graphc.backends.numpy_backend:executable",
    tile_elems=TILE_ELEMS,
    doc="generated numpy code from the plan; optimize=0 interprets",
)
register_backend(
    "cupy",
    "graphc.backends.cupy_backend:executable",
    doc="CUDA kernels and cuBLAS through cupy, at every optimize level",
)
register_backend(
    "reference",
    "graphc.backends.reference:executable",
    doc="the reference interpreter: each op's numpy kernel, in graph order",
)

__all__ = [
    "Backend",
    "Executable",
    "Request",
    "available_backends",
    "get_backend",
    "register_backend",
    "unregister_backend",
]
