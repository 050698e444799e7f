"""SVG for ``graphc viz`` when Graphviz's ``dot`` is not installed.

It reads the DOT text the CLI writes (clusters of ``id [label="..."]`` nodes and
``a -> b`` edges) and lays each cluster out in layers, one row per topological generation
(networkx), clusters side by side. Plainer than Graphviz, but ``-o graph.svg`` always
gives an SVG file that a browser opens."""

from __future__ import annotations

import re
from html import escape

import networkx as nx

_CLUSTER = re.compile(r'subgraph\s+(\w+)\s*\{\s*label="((?:[^"\\]|\\.)*)"')
_NODE = re.compile(r'^\s*(\w+)\s*\[label="((?:[^"\\]|\\.)*)"')
_EDGE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)")
BOX_W, BOX_H, GAP_X, GAP_Y, LINE_H = 150, 34, 20, 26, 12


def _unquote(s: str) -> list[str]:
    """A DOT label's lines (``\\n`` separates them; ``\\"`` and ``\\\\`` are escapes)."""
    out, lines, i = [], [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            if s[i + 1] == "n":
                lines.append("".join(out))
                out = []
            else:
                out.append(s[i + 1])
            i += 2
            continue
        out.append(s[i])
        i += 1
    return lines + ["".join(out)]


def _parse(dot_text: str):
    """[(cluster label, DiGraph with a 'label' per node)] in the order the text has them."""
    clusters: list = []
    for line in dot_text.splitlines():
        if m := _CLUSTER.search(line):
            clusters.append((" ".join(_unquote(m.group(2))), nx.DiGraph()))
        elif clusters and (m := _NODE.match(line)):
            clusters[-1][1].add_node(m.group(1), label=_unquote(m.group(2)))
        elif clusters and (m := _EDGE.match(line)):
            clusters[-1][1].add_edge(m.group(1), m.group(2))
    return clusters


def dot_to_svg(dot_text: str) -> str:
    """The SVG drawing of graphc's DOT text (see the module docstring)."""
    parts, x0, height = [], 10, 0
    for title, g in _parse(dot_text):
        layers = list(nx.topological_generations(g)) if nx.is_directed_acyclic_graph(g) \
            else [list(g)]
        width = max([len(layer) for layer in layers] + [1]) * (BOX_W + GAP_X)
        pos = {}
        for row, layer in enumerate(layers):
            for col, n in enumerate(sorted(layer)):
                pos[n] = (x0 + col * (BOX_W + GAP_X), 40 + row * (BOX_H + GAP_Y))
        parts.append(f'<text x="{x0}" y="20" font-weight="bold">{escape(title)}</text>')
        for a, b in g.edges:
            (xa, ya), (xb, yb) = pos[a], pos[b]
            parts.append(f'<line x1="{xa + BOX_W / 2}" y1="{ya + BOX_H}" x2="{xb + BOX_W / 2}" '
                         f'y2="{yb}" stroke="#888" marker-end="url(#arrow)"/>')
        for n, (x, y) in pos.items():
            parts.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="4" '
                         'fill="#f4f4ff" stroke="#446"/>')
            for k, text in enumerate(g.nodes[n]["label"][:2]):
                parts.append(f'<text x="{x + 6}" y="{y + 14 + k * LINE_H}">'
                             f"{escape(text[:24])}</text>")
        height = max(height, 40 + len(layers) * (BOX_H + GAP_Y))
        x0 += width + 40
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{x0}" height="{height}" '
            'font-family="sans-serif" font-size="10">\n'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
            'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker>'
            "</defs>\n" + "\n".join(parts) + "\n</svg>\n")
