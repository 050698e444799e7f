"""``gc.viz(graph_or_fetches, path=None)``: a picture of a graph built in Python.

    gc.viz(loss, "loss.svg")                 # what computing the loss runs
    gc.viz(train_op, "step.svg", expand=["gradients"])
    gc.viz(gc.get_default_graph())           # the whole graph; returns the SVG text
    plan = gc.compile(...); gc.viz(plan, "plan.svg")

Each op is a box with its full name and type (and static shape). The gradient subgraph
(``gradients/...`` and every gradient node) and the optimizers' update scopes (``Adam/...``,
``GradientDescent/...``) are collapsed into one box each by default, saying how many ops they
hold; ``expand=[...]`` (scope names, or ``True`` for all) draws them op by op, ``collapse=``
adds scopes of your own. The SVG comes from Graphviz's ``dot`` when it is installed, else
from graphc's own layered layout (:mod:`graphc.svg`). A path ending in ``.dot`` gets the
DOT text. ``Graph`` and compiled plans show this picture in Jupyter (``_repr_svg_``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import networkx as nx

from .errors import GraphcError, user_location
from .fileio import write_atomic

OPTIMIZER_SCOPES = re.compile(
    r"^(gradients|GradientDescent|Momentum|Adam|RMSProp|Adagrad|"
    r"Adadelta|Ftrl|ProximalGradientDescent)(_\d+)?$"
)
MAX_NODES = 400  # beyond this, even collapsed, a picture stops being readable


def _group_of(op, expand, collapse) -> str | None:
    """The collapsed box ``op`` belongs to, or None to draw it on its own."""
    if expand is True:
        return None
    top = op.name.split("/", 1)[0] if "/" in op.name else None
    if op.origin is not None and "gradients" not in expand:
        return top if top and OPTIMIZER_SCOPES.match(top) else "gradients"
    if top is None:
        return None
    if top in expand:
        return None
    if OPTIMIZER_SCOPES.match(top) or top in collapse:
        return top
    return None


def _shape_text(t) -> str:
    from .shapes import format_shape

    return f"{t.dtype}{format_shape(t.shape)}"


STATE_UPDATES = ("assign", "assign_add", "assign_sub")


def _update_scopes(ops) -> set:
    """Scopes of training steps: an op ``T`` (the step, a group) with updates under ``T/``
    (``minimize`` named ``train`` in a .g file, or anything else). Initializers, named
    ``.../Assign``, do not count."""
    tops = {op.name for op in ops if op.type == "no_op" and "/" not in op.name}
    return {
        op.name.split("/", 1)[0]
        for op in ops
        if op.type in STATE_UPDATES
        and "/" in op.name
        and not op.name.endswith("/Assign")
        and op.name.split("/", 1)[0] in tops
    }


def graph_digraph(ops, expand=(), collapse=()) -> nx.DiGraph:
    """The drawing's DiGraph: one node per op (or per collapsed group), labels as lines.
    A source (variable, constant) read only by one collapsed group joins it: an optimizer's
    slot variables go with its updates."""
    expand = expand if expand is True else set(expand or ())
    collapse = set(collapse or ()) | _update_scopes(ops)
    g = nx.DiGraph()
    members: dict = {}
    key = {}
    groups = {op: _group_of(op, expand, collapse) for op in ops}
    consumers: dict = {}
    for op in ops:
        for t in op.inputs:
            consumers.setdefault(t.op, set()).add(groups[op] or op)
        for c in op.control_inputs:
            consumers.setdefault(c, set()).add(groups[op] or op)
    for op in ops:
        users = consumers.get(op, set())
        if groups[op] is None and not op.inputs and len(users) == 1:
            (only,) = users
            if isinstance(only, str):
                groups[op] = only
    for op in ops:
        group = groups[op]
        if group is None:
            k = f"op{op.id}"
            label = [op.name, op.type + (f"  {_shape_text(op.outputs[0])}" if op.outputs else "")]
            g.add_node(k, label=label, style=None)
        else:
            k = f"group:{group}"
            members.setdefault(k, (group, []))[1].append(op)
            g.add_node(k)
        key[op] = k
    for k, (group, grouped) in members.items():
        kinds = sorted({o.type for o in grouped})
        what = ", ".join(kinds[:4]) + (", …" if len(kinds) > 4 else "")
        g.nodes[k].update(
            label=[f"{group}/*", f"{len(grouped)} ops collapsed: {what}"], style="group"
        )
    for op in ops:
        for t in op.inputs:
            if t.op in key and key[t.op] != key[op]:
                g.add_edge(key[t.op], key[op], dashed=False)
        for c in op.control_inputs:
            if c in key and key[c] != key[op] and not g.has_edge(key[c], key[op]):
                g.add_edge(key[c], key[op], dashed=True)
    return g


def plan_digraph(plan) -> nx.DiGraph:
    """A compiled plan's steps: each kernel with the user ops it computes."""
    g = nx.DiGraph()
    producer = {}
    for s in plan.steps:
        names = [src.name for src in s.sources]
        shown = ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")
        g.add_node(f"s{s.index}", label=[s.title] + ([shown] if shown else []), style=None)
        for slot in s.inputs:
            if slot in producer:
                g.add_edge(producer[slot], f"s{s.index}", dashed=False)
        for slot in s.outputs:
            producer[slot] = f"s{s.index}"
    return g


def _ops_of(target):
    """The ops to draw for a Graph, a tensor / op / list of them (what computing them runs)."""
    from .ir.graph import Graph, walk_needed
    from .ir.node import Operation, Tensor

    if isinstance(target, Graph):
        return target.get_operations(), "graph"
    items = (
        list(target.values())
        if isinstance(target, dict)
        else list(target)
        if isinstance(target, (list, tuple))
        else [target]
    )
    tensors = [t for t in items if isinstance(t, Tensor)]
    ops = [o for o in items if isinstance(o, Operation)]
    if len(tensors) + len(ops) != len(items) or not items:
        raise GraphcError(
            f"viz draws a Graph, a compiled plan, or tensors / ops (or a list of "
            f"them), got {target!r}",
            user_location(),
        )
    needed = sorted(walk_needed(tensors, ops, set()), key=lambda o: o.id)
    title = ", ".join((t.op.name if isinstance(t, Tensor) else t.name) for t in items[:3])
    return needed, title


def to_dot(clusters) -> str:
    """DOT text of ``[(title, DiGraph)]`` (clusters), the same picture for Graphviz."""

    def q(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = ["digraph graphc {", '  rankdir=TB; node [shape=box, fontsize=10, fontname="monospace"];']
    for i, (title, g) in enumerate(clusters):
        out.append(f"  subgraph cluster_{i} {{ label={q(title)};")
        for n, data in g.nodes(data=True):
            label = "\\n".join(
                x.replace("\\", "\\\\").replace('"', '\\"') for x in data.get("label") or [str(n)]
            )
            extra = ', style="filled,bold", fillcolor="#fff3d6"' if data.get("style") else ""
            out.append(f'    "{n}" [label="{label}"{extra}];')
        for a, b, data in g.edges(data=True):
            out.append(f'    "{a}" -> "{b}"' + (" [style=dashed];" if data.get("dashed") else ";"))
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def render(clusters, use_graphviz=None) -> str:
    """SVG text: Graphviz's when ``dot`` is installed (and ``use_graphviz`` is not False),
    else graphc's own layout."""
    dot = shutil.which("dot") if use_graphviz is not False else None
    if dot:
        try:
            return subprocess.run(
                [dot, "-Tsvg"],
                input=to_dot(clusters),
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        except (subprocess.SubprocessError, OSError):
            pass  # graphc's own drawing below
    from .svg import graph_to_svg

    return graph_to_svg(clusters)


def viz(target, path=None, expand=(), collapse=(), use_graphviz=None) -> str:
    """Draw ``target`` (a Graph, a compiled plan, or tensors / ops: what computing them runs)
    and return the SVG text (DOT text for a ``.dot`` path); write it to ``path`` if given."""
    from .plan import Plan

    if isinstance(target, Plan):
        clusters = [
            (f"plan: {len(target.steps)} steps, peak {target.peak_bytes:,} B", plan_digraph(target))
        ]
    else:
        ops, title = _ops_of(target)
        g = graph_digraph(ops, expand=expand, collapse=collapse)
        if len(g) > MAX_NODES:
            raise GraphcError(
                f"viz: {len(g)} boxes are too many to read; draw a part "
                f"(gc.viz(some_tensor)) or collapse scopes "
                f"(collapse=[...])",
                user_location(),
            )
        clusters = [(f"{title}: {len(ops)} ops", g)]
    if path is not None and os.fspath(path).endswith(".dot"):
        text = to_dot(clusters)
    else:
        text = render(clusters, use_graphviz)
    if path is not None:
        write_atomic(os.fspath(path), text)
    return text
