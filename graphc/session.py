"""Sessions: hold variables, validate feeds, run (cached) executables, shape the results."""

from __future__ import annotations

import json
import os
import threading

import numpy as np

from .backends import Request, get_backend
from .backends.reference import RunContext
from .compiler import compile as compile_plan
from .diagnostics import GrowthWatch, PlanCacheLog, check_kernel, trap_targets
from .errors import FeedError, GraphcError, NotFoundError, ShapeError, user_location
from .ir import node as _node
from .ir.gcpause import paused_gc
from .ir.graph import Graph, get_default_graph, needed_ops
from .ir.node import Operation, Tensor
from .passes.pipeline import check_passes
from .shapes import format_shape, fully_known

# --- fetch structures -------------------------------------------------------------------------


def _flatten(fetches, leaves):
    """Collect the leaves of a nested fetch structure; return a function rebuilding it."""
    if isinstance(fetches, (list, tuple)) and not hasattr(fetches, "_fields"):
        builders = [_flatten(f, leaves) for f in fetches]
        kind = type(fetches)
        return lambda vals: kind(b(vals) for b in builders)
    if isinstance(fetches, tuple):  # a namedtuple
        builders = [_flatten(f, leaves) for f in fetches]
        kind = type(fetches)
        return lambda vals: kind(*(b(vals) for b in builders))
    if isinstance(fetches, dict):
        builders = {k: _flatten(v, leaves) for k, v in fetches.items()}
        kind = type(fetches)
        return lambda vals: kind((k, b(vals)) for k, b in builders.items())
    i = len(leaves)
    leaves.append(fetches)
    return lambda vals: vals[i]


def _as_numpy_result(a):
    return a[()] if isinstance(a, np.ndarray) and a.ndim == 0 else a


# --- the default session ----------------------------------------------------------------------


class _SessionStack(threading.local):
    def __init__(self):
        self.stack = []


_session_stack = _SessionStack()
_interactive = [None]


def get_default_session():
    if _session_stack.stack:
        return _session_stack.stack[-1]
    return _interactive[0]


def _resolve(what):
    sess = get_default_session()
    if sess is None:
        raise GraphcError(
            f"no default session to evaluate {getattr(what, 'name', what)!r}: use "
            "`with gc.Session() as sess:` or pass session=sess",
            user_location(),
        )
    return sess


_node._default_session_resolver = _resolve


class Session:
    """Runs a graph. Variables live here, one copy per session.

    ``backend``: a registered backend (``graphc.backends.available_backends()``: "numpy", the
    default, "cupy", "reference"…). ``optimize``: 0, 1 or 2 (True), the ``gc.compile`` level;
    the numpy backend interprets at 0 (unless there are user passes to run).
    ``passes``: user passes for every plan (see ``gc.compile``).
    """

    def __init__(
        self,
        target="",
        graph=None,
        config=None,
        *,
        backend="numpy",
        optimize=True,
        check_numerics=None,
        passes=None,
    ):
        if isinstance(target, Graph) and graph is None:  # gc.Session(g), as SPEC §6 writes it
            target, graph = "", target
        self.graph = graph if graph is not None else get_default_graph()
        self._backend = get_backend(backend)  # an unknown name is said here, not at a run
        if isinstance(optimize, bool):
            optimize = 2 if optimize else 0
        if optimize not in (0, 1, 2):
            raise GraphcError(
                f"optimize must be True, False, 0, 1 or 2, got {optimize!r}", user_location()
            )
        self.backend = backend
        self.optimize = int(optimize)
        # user passes (fn(g) -> g | None over the program's networkx graph) run in every plan
        # this session compiles; with passes, optimize=0 compiles too (the interpreter would
        # skip them)
        self.passes = check_passes(passes)
        if check_numerics is None:
            check_numerics = os.environ.get("GRAPHC_CHECK_NUMERICS", "") not in ("", "0")
        self.check_numerics = bool(check_numerics)
        self._variables: dict = {}
        self._rngs: dict = {}
        self._ctx = RunContext(self._variables, self._rngs)
        # a backend that keeps variables elsewhere (the cupy device) registers how to bring a
        # host array up to date; get_variable calls it before it reads
        self._ctx.host_reads = []
        self._cache: dict = {}
        self._callables: dict = {}
        self._lock = threading.RLock()
        self._closed = False
        self._context_managers = []
        self._plan_log = PlanCacheLog(backend, self.optimize, self.check_numerics)
        self._growth = GrowthWatch(self.graph)

    # -- context management ------------------------------------------------------------------
    def as_default(self):
        return _DefaultSession(self)

    def __enter__(self):
        # as in TF 1.x, the session's graph is also the default graph inside the block, so
        # ops built there (``tf.global_variables_initializer()``…) land in the graph it runs
        graph_cm = self.graph.as_default()
        graph_cm.__enter__()
        cm = self.as_default()
        self._context_managers.append((graph_cm, cm))
        cm.__enter__()
        return self

    def __exit__(self, *exc):
        graph_cm, cm = self._context_managers.pop()
        cm.__exit__(*exc)
        graph_cm.__exit__(None, None, None)
        self.close()
        return False

    def close(self):
        self._closed = True
        for exe in self._cache.values():  # arenas go back to the backend now, not at a later gc
            getattr(exe, "release", lambda: None)()
        self._cache.clear()
        self._callables.clear()

    # -- running -----------------------------------------------------------------------------
    def run(self, fetches, feed_dict=None, options=None, run_metadata=None, trace=None):
        """Compute ``fetches`` (a tensor, op, name, or nested lists/tuples/dicts of them)."""
        if self._closed:
            raise _closed_error()
        if len(self.graph) != self._growth.seen:  # ops were built since the last run
            self._growth.check()
        if feed_dict and type(feed_dict) is dict and any(type(k) is not Tensor for k in feed_dict):
            feed_dict = _expand_structured_feeds(feed_dict)
        if trace is None and (feed_dict is None or type(feed_dict) is dict):
            # the fast path: a repeated (fetches, fed tensors) pair reuses one callable
            kind = type(fetches)
            key = (kind, tuple(fetches) if kind is list else fetches, *(feed_dict or ()))
            try:
                call = self._callables[key]
            except KeyError:
                call = None
                if _cacheable(fetches, feed_dict):
                    call = self._callables[key] = self.make_callable(fetches, list(feed_dict or ()))
            except TypeError:  # unhashable: nested or dict fetches take the general path
                call = None
            if call is not None:
                return call(*feed_dict.values()) if feed_dict else call()
        leaves = []
        rebuild = _flatten(fetches, leaves)
        elements = [self._as_element(f) for f in leaves]
        feeds = self._check_feeds(feed_dict or {})
        fetch_tensors = [e for e in elements if isinstance(e, Tensor)]
        fetch_ops = [e for e in elements if isinstance(e, Operation)]
        executable = self._executable(fetch_tensors, fetch_ops, feeds)
        if trace is not None:
            values = iter(_traced_run(executable, self._ctx, feeds, trace))
        else:
            values = iter(executable(self._ctx, feeds))
        results = [
            _as_numpy_result(next(values)) if isinstance(e, Tensor) else None for e in elements
        ]
        return rebuild(results)

    def make_callable(self, fetches, feed_list=None, accept_options=False):
        """A function ``f(*feed_values)`` computing ``fetches``: the lowest-overhead path.

        A call converts each value with its feed's precomputed fast check (see
        ``_fast_feed``) and looks the plan up by the feed shapes, or by nothing when every
        feed's shape is static; anything the fast checks do not vouch for, and the first
        call for new shapes, takes the full checks of ``run``."""
        if self._closed:
            raise _closed_error()
        feed_list = [self._as_element(f) for f in (feed_list or [])]
        feed_list = [f.outputs[0] if isinstance(f, Operation) else f for f in feed_list]
        leaves = []
        rebuild = _flatten(fetches, leaves)
        elements = [self._as_element(f) for f in leaves]
        fetch_tensors = [e for e in elements if isinstance(e, Tensor)]
        fetch_ops = [e for e in elements if isinstance(e, Operation)]
        is_tensor = [isinstance(e, Tensor) for e in elements]
        all_tensors = all(is_tensor)
        no_values = [None] * len(elements)
        n_feeds = len(feed_list)
        convert = _convert_all([_fast_feed(t) for t in feed_list])
        # with every shape static the fed shapes are known, and so is the one plan they need
        static = all(fully_known(t.shape) for t in feed_list)
        by_shapes: dict = {}  # feed shapes (None if static) -> (run, positions of its feeds)
        ctx = self._ctx

        def checked(values):
            """The full checks (and a plan for new shapes): (run, positions, arrays)."""
            if len(values) != n_feeds:
                raise FeedError(
                    f"this callable takes {n_feeds} feed values, got {len(values)}", user_location()
                )
            feeds = self._check_feeds(dict(zip(feed_list, values, strict=True)))
            arrays = list(feeds.values())
            entry = _entry(self._executable(fetch_tensors, fetch_ops, feeds), feed_list)
            by_shapes[None if static else tuple(a.shape for a in arrays)] = entry
            return (*entry, arrays)

        def call(*values):
            if self._closed:
                raise _closed_error()
            try:
                arrays = convert(*values)
                run, positions = by_shapes[None if static else tuple([a.shape for a in arrays])]
            except (_NeedsCheck, KeyError, TypeError):  # TypeError: a wrong feed count
                run, positions, arrays = checked(values)
            if positions is not None:  # the plan takes only the feeds it needs
                arrays = [arrays[i] for i in positions]
            out = run(ctx, *arrays)
            if all_tensors:
                return rebuild([a[()] if a.ndim == 0 else a for a in out])
            if not out:  # only operations fetched (a training step)
                return rebuild(no_values)
            out = iter(out)
            return rebuild([_as_numpy_result(next(out)) if t else None for t in is_tensor])

        return call

    def _executable(self, fetch_tensors, fetch_ops, feeds):
        key = (
            tuple(fetch_tensors),
            tuple(fetch_ops),
            tuple((t, v.shape, v.dtype) for t, v in feeds.items()),
        )
        exe = self._cache.get(key)
        if exe is None:
            with self._lock:
                exe = self._cache.get(key)
                if exe is None:
                    exe = self._build_executable(fetch_tensors, fetch_ops, feeds)
                    self._cache[key] = exe
        return exe

    @paused_gc
    def _build_executable(self, fetch_tensors, fetch_ops, feeds):
        """The backend's executable for exactly these fetches, fed tensors and feed shapes;
        a backend that compiles asks for the plan (unknown dims become the fed sizes)."""
        self._plan_log.record(fetch_tensors, fetch_ops, feeds)

        def plan():
            # gc.compile plans unfed placeholders as later feeds; a run must name a missing one
            needed_ops(fetch_tensors, fetch_ops, set(feeds))
            ops = fetch_ops
            if self.check_numerics:  # trap what the interpreter runs: what a train op waits for
                ops = fetch_ops + trap_targets(fetch_tensors, fetch_ops, feeds)
            return compile_plan(
                fetch_tensors + ops,
                graph=self.graph,
                optimize=self.optimize,
                feed_shapes={t: v.shape for t, v in feeds.items()},
                backend=self.backend,
                passes=self.passes,
            )

        request = Request(
            tuple(fetch_tensors),
            tuple(fetch_ops),
            {t: (v.shape, v.dtype) for t, v in feeds.items()},
            self.optimize,
            check_kernel if self.check_numerics else None,
            plan,
            self.backend,
            tuple(self.passes or ()),
        )
        return self._backend.executable(request)

    def plan_cache_info(self) -> list:
        """Every plan this session compiled (a ``diagnostics.PlanInfo`` each): its signature
        and, for a recompilation of fetches it had compiled before, which feed's shape or
        dtype changed. ``GRAPHC_DEBUG=1`` prints each as it is compiled."""
        return self._plan_log.info()

    # -- fetches and feeds -------------------------------------------------------------------
    def _as_element(self, f):
        if isinstance(f, str):
            return self.graph.as_graph_element(f)
        if hasattr(f, "_as_graph_element"):
            f = f._as_graph_element()
        if isinstance(f, (Tensor, Operation)):
            if f.graph is not self.graph:
                raise GraphcError(
                    f"{f.name!r} belongs to another graph than this session's", user_location()
                )
            return f
        raise GraphcError(
            f"cannot fetch {f!r}: fetch tensors, operations, or their names", user_location()
        )

    def _check_feeds(self, feed_dict) -> dict:
        if not hasattr(feed_dict, "items"):
            raise FeedError(
                f"feed_dict maps tensors (or their names) to values; got a "
                f"{type(feed_dict).__name__}",
                user_location(),
            )
        feeds = {}
        symbols = {}
        for key, value in feed_dict.items():
            t = self._as_element(key)
            if isinstance(t, Operation):
                if not t.outputs:
                    raise FeedError(f"cannot feed the operation '{t.name}': it has no output")
                t = t.outputs[0]
            feeds[t] = _check_feed(t, value, symbols)
        return feeds

    # -- variables ---------------------------------------------------------------------------
    def set_variable(self, var, value):
        if self._closed:
            raise _closed_error()
        arr = _check_feed(var, value, {})
        with self._lock:
            self._variables[var.op] = np.array(arr, copy=True)

    def get_variable(self, var):
        for sync in self._ctx.host_reads:
            sync(var.op)
        return self._variables.get(var.op)


def _closed_error():
    from .errors import ClosedSessionError

    return ClosedSessionError("Attempted to use a closed Session.", user_location())


def _cacheable(fetches, feed_dict) -> bool:
    """Whether run() may keep a callable for these fetches: tensors and ops, alone or in a
    flat list/tuple, fed through tensors (names are resolved once, then not re-checked)."""
    items = fetches if type(fetches) in (list, tuple) else [fetches]
    return all(isinstance(f, (Tensor, Operation)) for f in items) and all(
        isinstance(t, Tensor) for t in (feed_dict or ())
    )


_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FLOAT_SCALARS = frozenset({np.float16, np.float32, np.float64})


class _NeedsCheck(Exception):
    """A feed value that a fast check does not vouch for: the full check decides."""


def _fast_feed(t: Tensor):
    """The fast check of values fed to ``t``: a function returning the value as an array of
    t's dtype where that needs no further checking, and raising _NeedsCheck otherwise.

    It passes an ndarray of exactly t's dtype (and of t's shape, where that is static) as it
    is; a Python float for a float tensor, or a Python int for a number tensor that holds it,
    becomes a new 0-d array, unless t's static shape says it cannot be 0-d. A shape that is
    not static is checked by the caller's plan lookup, which is keyed by the fed shapes."""
    want = t.dtype.np
    shape = tuple(t.shape) if fully_known(t.shape) else None
    scalars = shape is None or shape == ()
    floats = scalars and want.kind == "f"
    numbers = scalars and want.kind in "fiu"
    ndarray, array = np.ndarray, np.array

    def convert(value):
        kind = type(value)
        if kind is ndarray:
            if value.dtype == want and (shape is None or value.shape == shape):
                return value
            if (
                value.dtype.kind == "f"
                and want.kind == "f"
                and (shape is None or value.shape == shape)
            ):
                return value.astype(want)  # what _check_feed's same-kind cast does
        elif kind is float and floats:
            return array(value, want)
        elif kind is want.type and scalars:  # a numpy scalar of t's dtype (np.float32(x))
            return array(value)
        elif floats and kind in _FLOAT_SCALARS:
            return array(value, want)
        elif kind is int and numbers and _INT64_MIN <= value <= _INT64_MAX:
            try:  # (a larger int is no number array for _check_feed: it says so)
                return array(value, want)
            except OverflowError:  # _check_feed says what is wrong with it
                pass
        raise _NeedsCheck

    return convert


def _convert_all(converters):
    """One function applying each feed's fast check to a call's values (one per feed, else
    TypeError). Unrolled for up to three feeds: with a few scalar feeds, a comprehension's
    own overhead would cost more than the checks themselves."""
    if len(converters) == 1:
        (c0,) = converters
        return lambda v0: [c0(v0)]
    if len(converters) == 2:
        c0, c1 = converters
        return lambda v0, v1: [c0(v0), c1(v1)]
    if len(converters) == 3:
        c0, c1, c2 = converters
        return lambda v0, v1, v2: [c0(v0), c1(v1), c2(v2)]

    def convert(*values):
        if len(values) != len(converters):
            raise TypeError("wrong number of feed values")
        return [c(v) for c, v in zip(converters, values, strict=True)]

    return convert


def _entry(exe, feed_list):
    """The executable's lowest-overhead entry point and which feeds it takes, in order."""
    positions = [feed_list.index(t) for t in exe.feed_tensors]
    return exe.call, None if positions == list(range(len(feed_list))) else positions


def _traced_run(exe, ctx, feeds, path):
    """Run once with per-kernel timings, written to ``path`` as Chrome trace-event JSON
    (open it in Perfetto or chrome://tracing); the plan keeps them for report()."""
    results, durations, _ = exe.call_traced(ctx, feeds)
    exe.plan.record_timings(durations)
    with open(path, "w") as f:
        json.dump(exe.plan.chrome_trace(durations), f)
    return results


def _expand_structured_feeds(feed_dict: dict) -> dict:
    """TF feeds a nested tuple of tensors (an RNN's state, ``{initial_state: state}``) with
    a value of the same structure: one feed per tensor."""
    out = {}
    for key, value in feed_dict.items():
        if not isinstance(key, (tuple, list)):
            out[key] = value
            continue
        if not isinstance(value, (tuple, list)) or len(value) != len(key):
            raise FeedError(
                f"the feed for a structure of {len(key)} tensors needs a value of the same "
                f"structure, got {type(value).__name__}"
                + (f" of {len(value)}" if isinstance(value, (tuple, list)) else ""),
                user_location(),
            )
        out.update(_expand_structured_feeds(dict(zip(key, value, strict=True))))
    return out


def _as_bytes(arr, t):
    """Strings fed to a ``tf.string`` placeholder, as an object array of bytes."""
    out = np.empty(arr.shape, dtype=object)
    for i, v in np.ndenumerate(arr):
        if isinstance(v, str):
            v = v.encode("utf-8")
        if not isinstance(v, bytes):
            raise FeedError(
                f"cannot feed {type(v).__name__} value {v!r} to the string tensor {t.describe()}",
                user_location(),
            )
        out[i] = v
    return out


def _check_feed(t: Tensor, value, symbols: dict) -> np.ndarray:
    """The fed value as an array of ``t``'s dtype, after checking kind and static shape."""
    # the user's location is looked up only when a check fails (a stack walk per feed)
    want = t.dtype
    if isinstance(value, Tensor):
        raise FeedError(
            f"cannot feed a symbolic tensor ({value.describe()}) for {t.describe()}; "
            "feed numpy arrays or Python values",
            user_location(),
        )
    if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):
        raise FeedError(
            f"cannot feed a masked array with masked elements for {t.describe()}: "
            "graphc has no masks; fill them first (value.filled(...))",
            user_location(),
        )
    try:
        # subclasses (np.matrix, masked arrays) become plain arrays: every executor then
        # computes the same thing (a matrix's `*` would be a product of matrices)
        arr = value if type(value) is np.ndarray else np.asarray(value)
        if type(arr) is not np.ndarray:
            arr = arr.view(np.ndarray)
    except (TypeError, ValueError, OverflowError) as e:  # ragged nested lists, say
        raise FeedError(
            f"cannot feed {type(value).__name__} value for {t.describe()}: {e}", user_location()
        ) from None
    if want.np.kind == "O" and arr.dtype.kind in "USO":  # tf.string: an array of bytes
        arr = _as_bytes(arr, t)
    elif arr.dtype.kind not in "biuf":
        raise FeedError(
            f"cannot feed a value of numpy dtype {arr.dtype} for {t.describe()}", user_location()
        )
    same_kind = np.can_cast(arr.dtype, want.np, casting="same_kind")
    if arr.dtype.kind == "f" and want.np.kind in "iu":
        # labels loaded with np.loadtxt are floats: TF converts them, so do we when every
        # value is a whole number (and refuse, naming one, when not)
        _check_integral(arr, t)
        same_kind = True
    if not same_kind and not (arr.dtype.kind in "iub" and want.np.kind in "iuf"):
        raise FeedError(
            f"feeding {arr.dtype} values to {t.describe()} would change their kind; "
            f"convert them with .astype({want.name!r}) if that is what you mean",
            user_location(),
        )
    if arr.dtype != want.np:
        if arr.dtype.kind in "iu" and want.np.kind in "iu" and arr.size:
            info = np.iinfo(want.np)  # numpy itself refuses such Python ints: no wrapping
            lo, hi = arr.min(), arr.max()
            if lo < info.min or hi > info.max:
                bad = lo if lo < info.min else hi
                raise FeedError(
                    f"cannot feed {bad} to {t.describe()}: it is outside the range "
                    f"of {want.name} [{info.min}, {info.max}]",
                    user_location(),
                )
        arr = arr.astype(want.np)
    shape = t.shape
    if shape is not None:
        if arr.ndim != len(shape) or any(
            isinstance(d, int) and d != n for d, n in zip(shape, arr.shape, strict=True)
        ):
            raise ShapeError(
                f"cannot feed a value of shape {tuple(arr.shape)} for {t.describe()}: "
                f"it needs shape {format_shape(shape)}",
                user_location(),
            )
        for d, n in zip(shape, arr.shape, strict=True):
            if isinstance(d, str):
                seen = symbols.setdefault(d, (n, t))
                if seen[0] != n:
                    raise ShapeError(
                        f"dimension {d!r} is {seen[0]} in the feed for {seen[1].describe()} but "
                        f"{n} in the feed for {t.describe()}",
                        user_location(),
                    )
    return arr


def _check_integral(arr: np.ndarray, t: Tensor) -> None:
    bad = ~np.isfinite(arr) | (arr != np.round(arr))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        raise FeedError(
            f"cannot feed float values to the integer {t.describe()}: the value "
            f"{arr[where].item()!r} at index {list(where)} is not a whole number; "
            f"round or cast the data first",
            user_location(),
        )
    info = np.iinfo(t.dtype.np)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise FeedError(
            f"cannot feed float values to {t.describe()}: they do not fit in {t.dtype}",
            user_location(),
        )


class _DefaultSession:
    def __init__(self, sess):
        self.sess = sess

    def __enter__(self):
        _session_stack.stack.append(self.sess)
        return self.sess

    def __exit__(self, *exc):
        _session_stack.stack.remove(self.sess)
        return False


class InteractiveSession(Session):
    """A session that installs itself as the default (for shells and notebooks)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _interactive[0] = self

    def close(self):
        if _interactive[0] is self:
            _interactive[0] = None
        super().close()


__all__ = ["Session", "InteractiveSession", "get_default_session", "NotFoundError"]
