"""SVG drawings of graphs when Graphviz's ``dot`` is not installed (``graphc viz``,
``gc.viz``, Jupyter's ``_repr_svg_``).

A layered (Sugiyama-style) layout on networkx: one row per topological generation; an edge
that spans several rows passes through a dummy point in each row it crosses, so every edge
segment runs between two adjacent rows and never through a box; a few barycenter sweeps
order each row to cut crossings. Boxes are as wide as their full labels (no cut names).
``dot_to_svg`` reads the DOT text the CLI writes (clusters of ``id [label="..."]`` nodes and
``a -> b`` edges); ``graph_to_svg`` draws ``(title, DiGraph)`` clusters side by side."""

from __future__ import annotations

import re
from html import escape

import networkx as nx

_CLUSTER = re.compile(r'subgraph\s+(\w+)\s*\{\s*label="((?:[^"\\]|\\.)*)"')
_NODE = re.compile(r'^\s*(\w+)\s*\[label="((?:[^"\\]|\\.)*)"(.*)\]')
_EDGE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)(.*)")
FONT, CHAR_W, LINE_H, PAD_X, PAD_Y = 11, 7.0, 14, 8, 6
GAP_X, GAP_Y, MARGIN = 18, 34, 14


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
            style = "group" if "fillcolor" in m.group(3) else None
            clusters[-1][1].add_node(m.group(1), label=_unquote(m.group(2)), style=style)
        elif clusters and (m := _EDGE.match(line)):
            clusters[-1][1].add_edge(m.group(1), m.group(2), dashed="dashed" in m.group(3))
    return clusters


def dot_to_svg(dot_text: str) -> str:
    """The SVG drawing of graphc's DOT text (see the module docstring)."""
    return graph_to_svg(_parse(dot_text))


def _size(lines) -> tuple[float, float]:
    width = max((len(t) for t in lines), default=1) * CHAR_W + 2 * PAD_X
    return max(width, 40), len(lines) * LINE_H + 2 * PAD_Y


def _layers(g: nx.DiGraph):
    """Rows of real and dummy nodes, and each edge as its chain of points."""
    if not nx.is_directed_acyclic_graph(g):
        g = nx.DiGraph([(a, b) for a, b in g.edges if a != b])
        g.add_nodes_from(g.nodes)
        while not nx.is_directed_acyclic_graph(g):
            g.remove_edge(*nx.find_cycle(g)[0])
    rank = {}
    for r, gen in enumerate(nx.topological_generations(g)):
        for n in gen:
            rank[n] = r
    # pull sources down next to their first consumer (constants, variables): shorter edges
    for n in g.nodes:
        if g.in_degree(n) == 0 and g.out_degree(n):
            rank[n] = max(rank[n], min(rank[s] for s in g.successors(n)) - 1)
    rows = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for n in sorted(g.nodes, key=str):
        rows[rank[n]].append(n)
    chains = []
    for a, b in g.edges:
        chain = [a]
        for r in range(rank[a] + 1, rank[b]):
            d = ("dummy", a, b, r)
            rows[r].append(d)
            chain.append(d)
        chains.append((chain + [b], a, b))
    return rows, chains


def _order(rows, chains):
    """Barycenter sweeps (down, then up) to reduce edge crossings."""
    ups, downs = {}, {}
    for chain, _, _ in chains:
        for p, q in zip(chain, chain[1:]):
            downs.setdefault(p, []).append(q)
            ups.setdefault(q, []).append(p)
    for _ in range(4):
        for sweep, nbrs in ((range(1, len(rows)), ups), (range(len(rows) - 2, -1, -1), downs)):
            for r in sweep:
                ref = rows[r - 1] if nbrs is ups else rows[r + 1]
                pos = {n: i for i, n in enumerate(ref)}
                old = {n: i for i, n in enumerate(rows[r])}

                def key(n, pos=pos, old=old, nbrs=nbrs):
                    ps = [pos[m] for m in nbrs.get(n, ()) if m in pos]
                    return sum(ps) / len(ps) if ps else old[n]

                rows[r].sort(key=key)


def graph_to_svg(clusters) -> str:
    """Clusters ``[(title, DiGraph)]`` side by side; a node's ``label`` is a list of lines,
    ``style="group"`` draws a collapsed group (a double, shaded box)."""
    parts, x0, height = [], MARGIN, 0
    for title, g in clusters:
        rows, chains = _layers(g)
        _order(rows, chains)
        size = {n: _size(g.nodes[n].get("label") or [str(n)]) for n in g.nodes}
        pos, y = {}, 40
        width = 0
        for row in rows:
            row_h = max((size[n][1] for n in row if n in size), default=0)
            x = x0
            for n in row:
                w = size[n][0] if n in size else 2
                pos[n] = (x, y, w, max(row_h, 4))
                x += w + (GAP_X if n in size else 6)
            width = max(width, x - x0)
            y += max(row_h, 4) + GAP_Y
        parts.append(
            f'<text x="{x0}" y="22" font-weight="bold" font-size="{FONT + 2}">'
            f"{escape(title)}</text>"
        )
        for chain, a, b in chains:
            # straight down inside a row (below the source box, through a dummy's own
            # column), curves only in the gaps between rows, where there are no boxes
            pts = []
            for k, n in enumerate(chain):
                x, top, w, row_h = pos[n]
                cx = x + w / 2
                if k == 0:
                    pts += [(cx, top + size[n][1]), (cx, top + row_h)]
                elif k == len(chain) - 1:
                    pts.append((cx, top))
                else:
                    pts += [(cx, top), (cx, top + row_h)]
            d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
            for p, q in zip(pts, pts[1:]):
                if p[0] == q[0]:
                    d += f" L{q[0]:.1f},{q[1]:.1f}"
                    continue
                my = (p[1] + q[1]) / 2
                d += f" C{p[0]:.1f},{my:.1f} {q[0]:.1f},{my:.1f} {q[0]:.1f},{q[1]:.1f}"
            dash = ' stroke-dasharray="4,3"' if g.edges[a, b].get("dashed") else ""
            parts.append(
                f'<path d="{d}" fill="none" stroke="#778" stroke-width="1"{dash} '
                'marker-end="url(#arrow)"/>'
            )
        for n in g.nodes:
            x, top, _, _ = pos[n]
            w, h = size[n]
            group = g.nodes[n].get("style") == "group"
            fill, stroke = ("#fff3d6", "#a66") if group else ("#f4f4ff", "#446")
            if group:
                parts.append(
                    f'<rect x="{x + 3}" y="{top + 3}" width="{w}" height="{h}" rx="4" '
                    f'fill="{fill}" stroke="{stroke}"/>'
                )
            parts.append(
                f'<rect x="{x}" y="{top}" width="{w}" height="{h}" rx="4" '
                f'fill="{fill}" stroke="{stroke}"><title>{escape(str(n))}</title>'
                "</rect>"
            )
            for k, text in enumerate(g.nodes[n].get("label") or [str(n)]):
                weight = ' font-weight="bold"' if k == 0 else ' fill="#555"'
                parts.append(
                    f'<text x="{x + PAD_X}" y="{top + PAD_Y + 11 + k * LINE_H}"'
                    f"{weight}>{escape(text)}</text>"
                )
        height = max(height, y)
        x0 += width + 50
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{x0:.0f}" height="{height:.0f}" '
        f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}">\n'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#778"/></marker>'
        '</defs>\n<rect width="100%" height="100%" fill="white"/>\n'
        + "\n".join(parts)
        + "\n</svg>\n"
    )
