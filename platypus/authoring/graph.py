"""``platypus flows graph``: event types -> flows -> connections, as Mermaid or SVG.

`build_graph` reads the flows into three layers of nodes (event types, flows,
connections with their adapter) and the edges between them; `to_mermaid` writes
a Mermaid ``flowchart LR`` (GitHub and most wikis draw it), `to_svg` a picture
laid out in three columns, with no graphviz needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from platypus.config import ProjectConfig
from platypus.flow.model import FlowSpec

__all__ = ["Graph", "Node", "build_graph", "to_mermaid", "to_svg"]


@dataclass(frozen=True, slots=True)
class Node:
    """A box: ``kind`` is event, flow or connection."""

    id: str
    kind: str
    label: str


@dataclass(slots=True)
class Graph:
    """Nodes in layer order and labelled edges (source id, target id, label)."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def layer(self, kind: str) -> list[Node]:
        return [node for node in self.nodes if node.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """The graph as ``platypus flows graph --json`` prints it (docs/cli.md)."""
        return {
            "nodes": [{"id": n.id, "kind": n.kind, "label": n.label} for n in self.nodes],
            "edges": [{"from": a, "to": b, "label": label} for a, b, label in self.edges],
        }


def _id(prefix: str, name: str) -> str:
    return prefix + "_" + re.sub(r"[^A-Za-z0-9]", "_", name)


def build_graph(flows: Sequence[FlowSpec], config: ProjectConfig) -> Graph:
    """The graph of ``flows``: which types each consumes, which connections it writes."""
    graph = Graph()
    seen: set[str] = set()

    def add(node: Node) -> None:
        if node.id not in seen:
            seen.add(node.id)
            graph.nodes.append(node)

    ordered = sorted(flows, key=lambda f: f.name)
    for event_type in sorted({t for flow in ordered for t in flow.consumes}):
        add(Node(_id("e", event_type), "event", event_type))
    for flow in ordered:
        add(Node(_id("f", flow.name), "flow", flow.name))
    for name in sorted({step.connection for flow in ordered for step in flow.steps}):
        adapter = config.connection(name).adapter
        label = name if adapter == name else f"{name} ({adapter})"
        add(Node(_id("c", name), "connection", label))
    for flow in ordered:
        for event_type in flow.consumes:
            graph.edges.append((_id("e", event_type), _id("f", flow.name), ""))
        actions: dict[str, list[str]] = {}
        for step in flow.steps:
            found = actions.setdefault(step.connection, [])
            if step.action not in found:
                found.append(step.action)
        for connection, names in actions.items():
            graph.edges.append((_id("f", flow.name), _id("c", connection), ", ".join(names)))
    return graph


_MERMAID_SHAPES = {"event": ('(["', '"])'), "flow": ('["', '"]'), "connection": ('[("', '")]')}


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart: stadiums for event types, boxes for flows, cylinders for systems."""
    lines = ["flowchart LR"]
    for node in graph.nodes:
        left, right = _MERMAID_SHAPES[node.kind]
        label = node.label.replace('"', "'")
        lines.append(f"    {node.id}{left}{label}{right}")
    for source, target, label in graph.edges:
        arrow = f'-- "{label}" -->' if label else "-->"
        lines.append(f"    {source} {arrow} {target}")
    return "\n".join(lines) + "\n"


_BOX_H = 36
_GAP = 24
_PAD = 24
_CHAR_W = 7.2  # average width of a 12px sans-serif character
_FILLS = {"event": "#e8f1fb", "flow": "#fff4d6", "connection": "#e6f4ea"}
_TITLES = {"event": "Event types", "flow": "Flows", "connection": "Connections"}


def to_svg(graph: Graph) -> str:
    """An SVG picture: one column per layer, boxes stacked, edges as curves with labels."""
    columns = [graph.layer(kind) for kind in ("event", "flow", "connection")]
    widths = [
        max([len(n.label) for n in column] + [len(_TITLES[kind])]) * _CHAR_W + 24
        for column, kind in zip(columns, ("event", "flow", "connection"), strict=True)
    ]
    column_gap = 140
    xs: list[float] = [_PAD]
    for width in widths[:-1]:
        xs.append(xs[-1] + width + column_gap)
    rows = max([len(column) for column in columns] + [1])
    height = _PAD * 2 + 28 + rows * (_BOX_H + _GAP)
    width = xs[-1] + widths[-1] + _PAD
    places: dict[str, tuple[float, float, float]] = {}  # id -> x, y, width
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
        f'<rect width="{width:.0f}" height="{height}" fill="white"/>',
    ]
    for column, kind, x, w in zip(
        columns, ("event", "flow", "connection"), xs, widths, strict=True
    ):
        parts.append(
            f'<text x="{x + w / 2:.1f}" y="{_PAD + 12}" text-anchor="middle" '
            f'font-weight="bold">{_TITLES[kind]}</text>'
        )
        for row, node in enumerate(column):
            y = _PAD + 28 + row * (_BOX_H + _GAP)
            places[node.id] = (x, y, w)
            radius = _BOX_H / 2 if kind == "event" else 4
            parts.append(
                f'<g class="node {kind}" id="{escape(node.id)}">'
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{_BOX_H}" rx="{radius}" '
                f'fill="{_FILLS[kind]}" stroke="#444"/>'
                f'<text x="{x + w / 2:.1f}" y="{y + _BOX_H / 2 + 4}" '
                f'text-anchor="middle">{escape(node.label)}</text></g>'
            )
    for source, target, label in graph.edges:
        sx, sy, sw = places[source]
        tx, ty, _ = places[target]
        x1, y1, x2, y2 = sx + sw, sy + _BOX_H / 2, tx, ty + _BOX_H / 2
        middle = (x1 + x2) / 2
        parts.append(
            f'<path class="edge" d="M {x1:.1f} {y1} C {middle:.1f} {y1}, {middle:.1f} {y2}, '
            f'{x2:.1f} {y2}" fill="none" stroke="#555" marker-end="url(#arrow)"/>'
        )
        if label:
            parts.append(
                f'<text class="edge-label" x="{middle:.1f}" y="{(y1 + y2) / 2 - 4:.1f}" '
                f'text-anchor="middle" fill="#333">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
