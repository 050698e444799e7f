"""The Graph: an append-only list of operations with names, scopes and collections,
and a networkx view of it for the passes."""

from __future__ import annotations

import contextlib
import difflib
import re
import threading
from collections import defaultdict

import networkx as nx

from ..errors import FeedError, GraphcError, GraphFinalizedError, NotFoundError, user_location
from ..shapes import format_shape, num_elements
from .node import Operation, Tensor

_VALID_NAME = re.compile(r"[A-Za-z0-9_.\-/]+")

# Graph collections the .g front end fills, so the printer, the CLI, generated modules and
# users can find them (defined here, below the front end, because all of those read them).
MODEL_NAME = "graphc.model_name"  # [the model's .g name]
OUTPUTS = "graphc.outputs"  # the tensors of `output` statements, in order
TRAIN_CLAUSES = "graphc.train"  # TrainClause records of `train` statements


class Graph:
    """A define-and-run program. Operations are appended in creation order, which is
    also a topological order (an op's inputs always exist before it)."""

    def __init__(self):
        self._ops: list[Operation] = []
        self._by_name: dict[str, Operation] = {}
        self._name_counts: dict[str, int] = {}
        self._local = threading.local()
        self._collections: dict[str, list] = defaultdict(list)
        self._finalized = False
        self._lock = threading.RLock()
        self.seed = None  # graph-level random seed (TF1's set_random_seed)
        self._nx_cache = None
        self._grad_origin = None  # set by autodiff while a pullback builds nodes
        self._plans: dict = {}  # gc.compile's latest plans by signature (compiler.py)

    # -- building -----------------------------------------------------------------------------
    @property
    def _scopes(self) -> list:
        if not hasattr(self._local, "scopes"):
            self._local.scopes = []
        return self._local.scopes

    @property
    def _control_stack(self) -> list:
        if not hasattr(self._local, "control"):
            self._local.control = []
        return self._local.control

    @contextlib.contextmanager
    def name_scope(self, name):
        """Prefix the names of ops built inside with ``name/``. ``None`` or ``""`` resets to
        the root."""
        scopes = self._scopes
        saved = list(scopes)
        if not name:
            scopes.clear()
        elif name.endswith("/"):  # an absolute scope, as TF returns from name_scope
            scopes[:] = [name.rstrip("/")]
        else:
            scopes.append(self.unique_name(name, mark_used=True).rsplit("/", 1)[-1])
        try:
            yield "/".join(scopes) + "/" if scopes else ""
        finally:
            scopes[:] = saved

    def get_name_scope(self) -> str:
        return "/".join(self._scopes)

    def unique_name(self, name: str, mark_used: bool = True) -> str:
        """``name`` inside the current scope, with ``_1``, ``_2``… appended if it is taken."""
        if not _VALID_NAME.fullmatch(name):
            name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name) or "op"
        prefix = self.get_name_scope()
        full = f"{prefix}/{name}" if prefix else name
        counts = self._name_counts  # every name used by an op or a scope
        i = counts.get(full, 0)
        candidate = full if i == 0 else f"{full}_{i}"
        while candidate in counts:
            i += 1
            candidate = f"{full}_{i}"
        if mark_used:
            counts[full] = i + 1
            counts.setdefault(candidate, 1)
        return candidate

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs):
        """Ops built inside run only after ``control_inputs`` (``None`` clears the stack)."""
        stack = self._control_stack
        saved = list(stack)
        if control_inputs is None:
            stack.clear()
        else:
            for c in control_inputs:
                stack.append(c.op if isinstance(c, Tensor) else c)
        try:
            yield
        finally:
            stack[:] = saved

    def create_op(
        self,
        op,
        inputs,
        attrs,
        out_avals,
        name=None,
        location=None,
        control_inputs=(),
        output_cls=Tensor,
        origin=None,
    ) -> Operation:
        """Append a node. ``out_avals`` are (dtype, shape) pairs computed by the op's rules."""
        with self._lock:
            if self._finalized:
                raise GraphFinalizedError(
                    f"cannot add a {op.name} op: the graph is finalized (graph.finalize() was "
                    "called, or a session froze it); build every op before the training loop",
                    location or user_location(),
                )
            if origin is None and self._grad_origin is not None:
                origin = self._grad_origin
                location = location or origin.location
            name = self.unique_name(name or op.name)
            controls = list(control_inputs) + [
                c for c in self._control_stack if c not in control_inputs
            ]
            node = Operation(
                self,
                op,
                inputs,
                attrs,
                name,
                controls,
                location if location is not None else user_location(),
                len(self._ops),
                origin,
            )
            node.outputs = tuple(output_cls(node, i, d, s) for i, (d, s) in enumerate(out_avals))
            self._ops.append(node)
            self._by_name[name] = node
            self._nx_cache = None
            for hook in self._on_grow:
                hook(node)
            return node

    _on_grow: tuple = ()

    # -- lookup -------------------------------------------------------------------------------
    def get_operations(self) -> list[Operation]:
        return list(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    @property
    def version(self) -> int:
        return len(self._ops)

    def get_operation_by_name(self, name: str) -> Operation:
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFoundError(
                f"the graph has no operation named {name!r}" + self._suggest(name)
            ) from None

    def get_tensor_by_name(self, name: str) -> Tensor:
        """``"loss"`` or ``"loss:0"``."""
        op_name, _, index = name.rpartition(":") if ":" in name else (name, "", "0")
        try:
            op = self._by_name[op_name]
        except KeyError:
            raise NotFoundError(
                f"the graph has no tensor named {name!r}" + self._suggest(op_name)
            ) from None
        if not index.isdigit() or int(index) >= len(op.outputs):
            raise NotFoundError(
                f"operation {op_name!r} has {len(op.outputs)} output(s); {name!r} does not exist"
            )
        return op.outputs[int(index)]

    def as_graph_element(self, obj):
        if isinstance(obj, (Tensor, Operation)):
            return obj
        if isinstance(obj, str):
            if ":" in obj:
                return self.get_tensor_by_name(obj)
            op = self.get_operation_by_name(obj)
            return op.outputs[0] if op.outputs else op
        raise TypeError(f"cannot interpret {obj!r} as a tensor or operation")

    def _suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._by_name.keys(), n=3)
        return f"; did you mean {', '.join(map(repr, close))}?" if close else ""

    # -- collections --------------------------------------------------------------------------
    def add_to_collection(self, key: str, value) -> None:
        self._collections[key].append(value)

    def get_collection(self, key: str, scope: str | None = None) -> list:
        items = list(self._collections.get(key, ()))
        if scope:
            items = [v for v in items if getattr(v, "name", "").startswith(scope)]
        return items

    def get_all_collection_keys(self) -> list:
        return list(self._collections)

    def summary(self, print_fn=print) -> str:
        """Print (and return) a table: one row per layer call recorded in the ``"layers"``
        collection (``gc.layers`` records ``.name``, ``.kind``, ``.output``, ``.variables``),
        one per trainable variable no layer owns, then the parameter totals. A variable counts
        once however many layers share it; optimizer slots (non-trainable, owned by no layer)
        are not model parameters and are left out."""
        rows, seen = [], {}
        for rec in self.get_collection("layers"):
            new = [v for v in rec.variables if v not in seen]
            seen.update((v, True) for v in rec.variables)
            rows.append(
                (
                    f"{rec.name} ({rec.kind})",
                    format_shape(rec.output.shape),
                    ", ".join(
                        v.op.name.rsplit("/", 1)[-1] + format_shape(v.shape) for v in rec.variables
                    ),
                    sum(num_elements(v.shape) or 0 for v in new),
                )
            )
        for v in self.get_collection("trainable_variables"):
            if v not in seen:
                seen[v] = True
                rows.append(
                    (
                        f"{v.op.name} (Variable)",
                        format_shape(v.shape),
                        "",
                        num_elements(v.shape) or 0,
                    )
                )
        variables = list(seen)
        total = sum(num_elements(v.shape) or 0 for v in variables)
        trainable = sum(num_elements(v.shape) or 0 for v in variables if v.trainable)
        header = ("Layer (type)", "Output shape", "Variables", "Params")
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
        line = "  ".join("{:<%d}" % w for w in widths[:3]) + "  {:>%d}" % widths[3]
        rule = "-" * (sum(widths) + 6)
        text = "\n".join(
            [line.format(*header), rule]
            + [line.format(*r) for r in rows]
            + [
                rule,
                f"Total params: {total:,}",
                f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable:,}",
            ]
        )
        print_fn(text)
        return text

    # -- lifecycle ----------------------------------------------------------------------------
    def finalize(self) -> None:
        """Make the graph read-only: adding an op raises, naming the line that tried."""
        self._finalized = True

    @property
    def finalized(self) -> bool:
        return self._finalized

    def as_default(self):
        return _default_graph_stack.get_controller(self)

    def to_text(self, model_name: str | None = None) -> str:
        """This graph as a ``.g`` model that ``graphc.loads`` builds back (``ir/printer.py``)."""
        from .printer import to_text  # (the printer reads this module: a cycle)

        return to_text(self, model_name)

    def _repr_svg_(self) -> str:
        """Jupyter shows a graph as its picture (``gc.viz``; gradients collapsed)."""
        from ..viz import viz

        return viz(self)

    def to_networkx(self) -> nx.DiGraph:
        """A DiGraph of the operations: an edge per data input (``kind="data"``, with the
        input's position) and per control input (``kind="control"``). Cached until the graph
        grows."""
        cache = self._nx_cache
        if cache is not None:
            return cache
        g = nx.MultiDiGraph()
        for op in self._ops:
            g.add_node(op)
            for pos, t in enumerate(op.inputs):
                g.add_edge(t.op, op, kind="data", pos=pos, index=t.index)
            for c in op.control_inputs:
                g.add_edge(c, op, kind="control")
        self._nx_cache = g
        return g


class _DefaultGraphStack(threading.local):
    def __init__(self):
        self.stack = []

    @contextlib.contextmanager
    def get_controller(self, graph):
        self.stack.append(graph)
        try:
            yield graph
        finally:
            # the innermost entry: a graph entered again inside another graph's block (a
            # variable made in the program's graph from inside a loop body) leaves the
            # outer entries where they were
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(graph)]


_default_graph_stack = _DefaultGraphStack()
_global_default_graph = Graph()


def get_default_graph() -> Graph:
    if _default_graph_stack.stack:
        return _default_graph_stack.stack[-1]
    return _global_default_graph


def reset_default_graph() -> Graph:
    """Start a fresh global default graph (not allowed inside ``with graph.as_default()``)."""
    global _global_default_graph
    if _default_graph_stack.stack:
        raise GraphcError("reset_default_graph() called inside a `with graph.as_default()` block")
    _global_default_graph = Graph()
    return _global_default_graph


def walk_needed(fetch_tensors, fetch_ops, fed):
    """Each op a run of the fetches reaches, once: through inputs that ``fed`` (a container
    of tensors) does not hold and through control inputs. Depth first, no particular order."""
    seen = set()
    stack = [t.op for t in fetch_tensors if t not in fed] + list(fetch_ops)
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        yield op
        stack.extend(t.op for t in op.inputs if t not in fed)
        stack.extend(c for c in op.control_inputs if not _all_fed(c, fed))


def _all_fed(op, fed) -> bool:
    """Whether every output of ``op`` is fed: then it has nothing to run, and a control
    dependency on it (an optimizer's on a fed gradient) is already met."""
    return bool(op.outputs) and all(t in fed for t in op.outputs)


def needed_ops(fetch_tensors, fetch_ops, fed):
    """The ops a run must execute, in topological order, and for each the fetch that needs it.
    Raises FeedError for an unfed placeholder, naming the fetch that depends on it.
    (Placeholders are known by their type name: the op library builds on this module.)"""
    reason = {}
    stack = [(t.op, t) for t in fetch_tensors if t not in fed] + [(op, op) for op in fetch_ops]
    while stack:
        op, why = stack.pop()
        if op in reason:
            continue
        reason[op] = why
        if op.type == "placeholder":
            fetch = why.describe() if hasattr(why, "describe") else repr(why)
            t = op.outputs[0]
            raise FeedError(
                f"placeholder '{op.name}' ({t.dtype}, shape {format_shape(t.shape)}) must be fed: "
                f"fetch {fetch} depends on it. Pass feed_dict={{{op.name}: value}}.",
                op.location,
                node=op,
            )
        for t in op.inputs:
            if t not in fed and t.op not in reason:
                stack.append((t.op, why))
        for c in op.control_inputs:
            if c not in reason and not _all_fed(c, fed):
                stack.append((c, why))
    return sorted(reason, key=lambda op: op.id), reason
