"""``platypus flows graph``: event types -> flows and their steps -> connections.

`build_graph` reads the flows into nodes (event types, flows, each flow's steps
in order, connections with their adapter) and the edges between them. Two
drawings come from it:

- `to_mermaid`: a Mermaid ``flowchart LR``, fenced as a ```` ```mermaid ```` block so it
  can be pasted into Markdown (GitHub and most wikis draw it); each flow is a
  subgraph with its condition and its steps in order, each step names the
  action it calls and its own condition.
- `to_svg`: a picture a browser opens, laid out here with no graphviz or
  browser needed. Every text is monospace, so its width is known from its
  length; long conditions are wrapped; edges carry no labels (the action is
  written in the step it belongs to). So no label can overprint another, which
  `text_boxes` lets a test check.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from platypus.config import ProjectConfig
from platypus.exceptions import ConfigurationError
from platypus.flow.model import FlowSpec

__all__ = ["Graph", "Node", "TextBox", "build_graph", "text_boxes", "to_mermaid", "to_svg"]


@dataclass(frozen=True, slots=True)
class Node:
    """A box: ``kind`` is event, flow, step or connection.

    A step has its ``flow``, its position ``order`` (1-based), where it writes
    (``to``) and its condition (``when``); a flow may have a ``when`` too.
    """

    id: str
    kind: str
    label: str
    flow: str = ""
    order: int = 0
    to: str = ""
    when: str = ""


@dataclass(slots=True)
class Graph:
    """Nodes in layer order and labelled edges (source id, target id, label)."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def layer(self, kind: str) -> list[Node]:
        return [node for node in self.nodes if node.kind == kind]

    def steps(self, flow: str) -> list[Node]:
        """The steps of ``flow``, in the order they run."""
        return sorted((n for n in self.layer("step") if n.flow == flow), key=lambda n: n.order)

    def to_dict(self) -> dict[str, Any]:
        """The graph as ``platypus flows graph --json`` prints it (docs/cli.md)."""
        nodes = []
        for n in self.nodes:
            step = n.kind == "step"
            nodes.append(
                {
                    "id": n.id,
                    "kind": n.kind,
                    "label": n.label,
                    "flow": n.flow if step else None,
                    "order": n.order if step else None,
                    "to": n.to if step else None,
                    "when": n.when or None,
                }
            )
        return {
            "nodes": nodes,
            "edges": [{"from": a, "to": b, "label": label} for a, b, label in self.edges],
        }


def _id(prefix: str, name: str) -> str:
    return prefix + "_" + re.sub(r"[^A-Za-z0-9]", "_", name)


def build_graph(flows: Sequence[FlowSpec], config: ProjectConfig) -> Graph:
    """The graph of ``flows``: the types each consumes, its steps, the connections they write.

    Edges: event type -> flow, flow -> its first step, each step -> the next
    (label ``then``), and each step -> its connection (label: the action).
    """
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
        when = flow.when.source if flow.when is not None else ""
        add(Node(_id("f", flow.name), "flow", flow.name, when=when))
        for order, step in enumerate(flow.steps, start=1):
            add(
                Node(
                    _step_id(flow.name, order),
                    "step",
                    step.name,
                    flow=flow.name,
                    order=order,
                    to=step.to,
                    when=step.when.source if step.when is not None else "",
                )
            )
    for name in sorted({step.connection for flow in ordered for step in flow.steps}):
        try:
            adapter = config.connection(name).adapter
        except ConfigurationError:
            adapter = name  # an adapter named directly; lint says whether that works
        label = name if adapter == name else f"{name} ({adapter})"
        add(Node(_id("c", name), "connection", label))
    for flow in ordered:
        flow_id = _id("f", flow.name)
        for event_type in flow.consumes:
            graph.edges.append((_id("e", event_type), flow_id, ""))
        previous = flow_id
        for order, step in enumerate(flow.steps, start=1):
            step_id = _step_id(flow.name, order)
            graph.edges.append((previous, step_id, "" if previous == flow_id else "then"))
            graph.edges.append((step_id, _id("c", step.connection), step.action))
            previous = step_id
    return graph


def _step_id(flow: str, order: int) -> str:
    return f"{_id('f', flow)}__{order}"


# -- Mermaid -----------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    # Mermaid reads quotes, angle brackets and # in labels: its entity codes keep them.
    out = text.replace("#", "#35;").replace('"', "#quot;").replace("&", "#amp;")
    return out.replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(graph: Graph, *, fenced: bool = True) -> str:
    """A Mermaid flowchart, in a ```` ```mermaid ```` fence unless ``fenced`` is false.

    Event types are stadiums, each flow a subgraph whose first node is its
    condition (a hexagon) and then its steps in order, connections cylinders;
    dotted arrows go from a step to the connection it writes.
    """
    lines = ["flowchart LR"]
    for node in graph.layer("event"):
        lines.append(f'    {node.id}(["{_mermaid_text(node.label)}"])')
    for flow in graph.layer("flow"):
        lines.append(f'    subgraph {flow.id}["{_mermaid_text(flow.label)}"]')
        lines.append("        direction TB")
        chain: list[str] = []
        if flow.when:
            when_id = f"{flow.id}__when"
            lines.append(f'        {when_id}{{{{"when {_mermaid_text(flow.when)}"}}}}')
            chain.append(when_id)
        for step in graph.steps(flow.label):
            text = f"{step.order}. {step.label}<br/>{step.to}"
            if step.when:
                text += f"<br/>when {step.when}"
            label = _mermaid_text(text).replace("#lt;br/#gt;", "<br/>")
            lines.append(f'        {step.id}["{label}"]')
            chain.append(step.id)
        if len(chain) > 1:
            lines.append("        " + " --> ".join(chain))
        lines.append("    end")
    for node in graph.layer("connection"):
        lines.append(f'    {node.id}[("{_mermaid_text(node.label)}")]')
    for source, target, _label in graph.edges:
        if source.startswith("e_"):
            lines.append(f"    {source} --> {target}")
        elif target.startswith("c_"):
            lines.append(f"    {source} -.-> {target}")
    text = "\n".join(lines) + "\n"
    return f"```mermaid\n{text}```\n" if fenced else text


# -- SVG ---------------------------------------------------------------------------

_FONT = 12
_CHAR_W = 7.2  # a 12px monospace character: 0.6 em, the advance of common monospace fonts
_LINE_H = 18
_BOX_H = 32
_GAP = 16
_PAD = 24
_INSET = 10  # text inside its box, from the box's left edge
_COLUMN_GAP = 120
_WRAP = 56  # characters of a condition on one line
_FILLS = {"event": "#e8f1fb", "flow": "#fff4d6", "step": "#ffffff", "connection": "#e6f4ea"}
_TITLES = ("Event types", "Flows and their steps", "Connections")


@dataclass(frozen=True, slots=True)
class TextBox:
    """Where a text of the SVG is drawn: its bounding box, from its length."""

    text: str
    x: float
    y: float  # top
    width: float
    height: float

    def overlaps(self, other: TextBox) -> bool:
        return not (
            self.x + self.width <= other.x
            or other.x + other.width <= self.x
            or self.y + self.height <= other.y
            or other.y + other.height <= self.y
        )


@dataclass(slots=True)
class _Canvas:
    parts: list[str] = field(default_factory=list)

    def box(self, x: float, y: float, w: float, h: float, kind: str, rx: float = 4) -> None:
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" '
            f'fill="{_FILLS[kind]}" stroke="#444"/>'
        )

    def text(self, x: float, baseline: float, text: str, *, css: str = "") -> None:
        style = f' class="{css}"' if css else ""
        self.parts.append(f'<text x="{x:.1f}" y="{baseline:.1f}"{style}>{escape(text)}</text>')


def _width(text: str) -> float:
    return len(text) * _CHAR_W


def _card_lines(graph: Graph, flow: Node) -> list[tuple[str, str, str]]:
    """(kind, text, step id) of each line of a flow's card: name, condition, steps."""
    lines = [("title", flow.label, "")]
    for part in _wrapped(f"when {flow.when}") if flow.when else []:
        lines.append(("when", part, ""))
    for step in graph.steps(flow.label):
        lines.append(("step", f"{step.order}. {step.label} -> {step.to}", step.id))
        for part in _wrapped(f"when {step.when}") if step.when else []:
            lines.append(("step-when", "   " + part, step.id))
    return lines


def _wrapped(text: str) -> list[str]:
    lines = textwrap.wrap(text, _WRAP, break_long_words=True, break_on_hyphens=False)
    return [lines[0], *("  " + line for line in lines[1:])] if lines else [text]


def to_svg(graph: Graph) -> str:
    """An SVG picture: event types, flow cards (condition, steps in order), connections.

    Each event type sits beside the first flow consuming it and each connection
    beside the steps writing to it, pushed down only as far as needed to keep
    boxes apart; an arrow goes from each type to its flows and from each step
    to its connection.
    """
    events, flows, connections = (graph.layer(k) for k in ("event", "flow", "connection"))
    cards = {flow.id: _card_lines(graph, flow) for flow in flows}
    column_w = [
        max([_width(n.label) for n in events] + [_width(_TITLES[0])]) + 2 * _INSET,
        max([_width(t) for lines in cards.values() for _, t, _ in lines] + [_width(_TITLES[1])])
        + 2 * _INSET,
        max([_width(n.label) for n in connections] + [_width(_TITLES[2])]) + 2 * _INSET,
    ]
    xs = [float(_PAD)]
    for width in column_w[:-1]:
        xs.append(xs[-1] + width + _COLUMN_GAP)
    top = _PAD + _LINE_H + _GAP
    canvas = _Canvas()
    anchors: dict[str, tuple[float, float]] = {}  # id -> (x of its right edge, y) for edges
    lefts: dict[str, tuple[float, float]] = {}  # id -> (x of its left edge, y)

    # Flow cards first: the other columns line up with them.
    y = float(top)
    for flow in flows:
        lines = cards[flow.id]
        card_h = len(lines) * _LINE_H + _INSET
        canvas.box(xs[1], y, column_w[1], card_h, "flow")
        lefts[flow.id] = (xs[1], y + _LINE_H / 2 + _INSET / 2)
        for index, (kind, text, step_id) in enumerate(lines):
            line_top = y + _INSET / 2 + index * _LINE_H
            if kind == "step":
                canvas.box(xs[1] + 4, line_top + 1, column_w[1] - 8, _LINE_H - 2, "step", rx=2)
                anchors.setdefault(step_id, (xs[1] + column_w[1], line_top + _LINE_H / 2))
            canvas.text(xs[1] + _INSET, line_top + _LINE_H - 5, text, css=kind)
        y += card_h + _GAP
    bottom = y

    def column(
        nodes: list[Node], x: float, width: float, kind: str, wanted: dict[str, float]
    ) -> float:
        next_free = float(top)
        for node in nodes:
            at = max(next_free, wanted.get(node.id, next_free) - _BOX_H / 2)
            canvas.box(x, at, width, _BOX_H, kind, rx=_BOX_H / 2 if kind == "event" else 4)
            canvas.text(x + _INSET, at + _BOX_H / 2 + _FONT / 2 - 2, node.label, css=kind)
            anchors[node.id] = (x + width, at + _BOX_H / 2)
            lefts[node.id] = (x, at + _BOX_H / 2)
            next_free = at + _BOX_H + _GAP
        return next_free

    wanted_events: dict[str, float] = {}
    wanted_connections: dict[str, list[float]] = {}
    for source, target, _label in graph.edges:
        if source.startswith("e_") and source not in wanted_events:
            wanted_events[source] = lefts[target][1]
        if target.startswith("c_") and source in anchors:
            wanted_connections.setdefault(target, []).append(anchors[source][1])
    bottom = max(bottom, column(events, xs[0], column_w[0], "event", wanted_events))
    averages = {k: sum(v) / len(v) for k, v in wanted_connections.items()}
    bottom = max(bottom, column(connections, xs[2], column_w[2], "connection", averages))

    for source, target, _label in graph.edges:
        if not (source.startswith("e_") or target.startswith("c_")):
            continue  # step order is the order of the card's lines
        x1, y1 = anchors[source]
        x2, y2 = lefts[target]
        middle = (x1 + x2) / 2
        canvas.parts.append(
            f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {middle:.1f} {y1:.1f}, '
            f'{middle:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}" fill="none" stroke="#777" '
            'marker-end="url(#arrow)"/>'
        )
    for title, left in zip(_TITLES, xs, strict=True):
        canvas.text(left, _PAD + _FONT, title, css="heading")
    width = xs[-1] + column_w[-1] + _PAD
    height = bottom + _PAD
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">',
        "<title>Platypus flows</title>",
        "<style>text { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; "
        f"font-size: {_FONT}px; fill: #222; }} .heading, .title {{ font-weight: bold; }} "
        ".when, .step-when { fill: #7a4b00; }</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#777"/></marker></defs>',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
    ]
    return "\n".join([*head, *canvas.parts, "</svg>"]) + "\n"


def text_boxes(svg: str) -> list[TextBox]:
    """The bounding box of every ``<text>`` of an SVG `to_svg` wrote (for checks).

    Bold text is reckoned 10% wider, more than any monospace font's bold needs.
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
    boxes = []
    for element in root.iter("{http://www.w3.org/2000/svg}text"):
        text = "".join(element.itertext())
        bold = element.get("class") in ("heading", "title")
        width = _width(text) * (1.1 if bold else 1.0)
        baseline = float(element.get("y", 0))
        # Ascent about 0.8 em above the baseline, descent 0.2 em below.
        boxes.append(
            TextBox(text, float(element.get("x", 0)), baseline - 0.8 * _FONT, width, _FONT)
        )
    return boxes
