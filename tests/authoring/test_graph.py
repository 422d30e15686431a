"""``platypus flows graph``: event types -> flows and their steps -> connections."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from platypus.authoring.cli import flows_graph_command
from platypus.authoring.graph import text_boxes

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "samples" / "demo"  # three flows to one connection: a small, stable graph
SVG = "{http://www.w3.org/2000/svg}"


def graph(*args: str, project: Path = DEMO) -> tuple[int, str]:
    result = CliRunner().invoke(flows_graph_command, [*args, "--project", str(project)])
    return result.exit_code, result.output


def test_mermaid_is_fenced_for_markdown_and_shows_each_flows_condition_and_steps_in_order() -> None:
    code, output = graph()

    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "```mermaid"
    assert lines[-1] == "```"
    assert lines[1] == "flowchart LR"
    start = lines.index('    subgraph f_closed_won_to_orders["closed-won-to-orders"]')
    assert lines[start : start + 7] == [
        '    subgraph f_closed_won_to_orders["closed-won-to-orders"]',
        "        direction TB",
        '        f_closed_won_to_orders__when{{"when data.amount #gt;= `1000`"}}',
        '        f_closed_won_to_orders__1["1. create_order<br/>vendor.post"]',
        '        f_closed_won_to_orders__2["2. notify_account_team<br/>vendor.post"]',
        "        f_closed_won_to_orders__when --> f_closed_won_to_orders__1"
        " --> f_closed_won_to_orders__2",
        "    end",
    ]
    assert "    e_sales_opportunity_closed_won_v1 --> f_closed_won_to_orders" in lines
    assert "    f_closed_won_to_orders__2 -.-> c_vendor" in lines
    assert '    c_vendor[("vendor (http)")]' in lines


def test_bare_mermaid_has_no_fence() -> None:
    code, output = graph("--bare")

    assert code == 0
    assert output.startswith("flowchart LR\n")
    assert "```" not in output


def test_a_step_condition_is_shown_with_its_step() -> None:
    code, output = graph(project=REPO)

    assert code == 0, output
    assert (
        '        f_opportunity_to_subscription__2["2. create_account<br/>zuora.create_account'
        '<br/>when !(steps.find_account.found)"]'
    ) in output


def svg_of(project: Path, tmp_path: Path) -> str:
    out = tmp_path / "flows.svg"
    code, output = graph("--format", "svg", "--output", str(out), project=project)
    assert code == 0, output
    assert output == f"wrote {out}\n"
    return out.read_text()


def test_the_catalog_svg_parses_and_no_two_labels_overlap(tmp_path: Path) -> None:
    svg = svg_of(REPO, tmp_path)

    root = ET.fromstring(svg)  # noqa: S314 -- our own output, not untrusted
    boxes = text_boxes(svg)

    assert root.tag == f"{SVG}svg"
    assert len(boxes) > 40  # the catalog: 9 flows, their steps and conditions
    overlapping = [(a.text, b.text) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    assert overlapping == []
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    for box in boxes:
        assert box.x >= 0, box
        assert box.x + box.width <= width, box
        assert box.y >= 0, box
        assert box.y + box.height <= height, box


def test_every_label_sits_inside_its_box_and_boxes_of_a_column_do_not_overlap(
    tmp_path: Path,
) -> None:
    svg = svg_of(REPO, tmp_path)
    root = ET.fromstring(svg)  # noqa: S314 -- our own output, not untrusted
    rects = [
        (
            float(r.get("x", 0)),
            float(r.get("y", 0)),
            float(r.get("width", 0)),
            float(r.get("height", 0)),
        )
        for r in root.iter(f"{SVG}rect")
        if r.get("x") is not None
    ]
    cards = [r for r in rects if r[3] >= 30]  # event, flow and connection boxes, not step rows

    for box in text_boxes(svg):
        if box.y < 40:
            continue  # the column headings, above every box
        inside = [
            r
            for r in cards
            if r[0] <= box.x
            and box.x + box.width <= r[0] + r[2]
            and r[1] <= box.y
            and box.y + box.height <= r[1] + r[3]
        ]
        assert inside, f"{box.text!r} is outside every box"
    for a, b in itertools.combinations(cards, 2):
        apart = (
            a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
        )
        assert apart, (a, b)


def test_the_svg_shows_every_step_in_order_with_its_action_and_condition(tmp_path: Path) -> None:
    texts = [box.text for box in text_boxes(svg_of(REPO, tmp_path))]

    start = texts.index("opportunity-to-subscription")
    assert texts[start : start + 7] == [
        "opportunity-to-subscription",
        "when data.amount > `0`",
        "1. find_account -> zuora.find_account",
        "2. create_account -> zuora.create_account",
        "   when !(steps.find_account.found)",
        "3. create_subscription -> zuora.create_subscription",
        "4. upsert_customer -> netsuite.upsert_customer",
    ]
    assert "sales.opportunity.closed_won.v1" in texts
    assert "zuora" in texts


def test_a_long_condition_is_wrapped_not_drawn_past_its_box(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (tmp_path / "platypus.yaml").write_text((DEMO / "platypus.yaml").read_text())
    condition = " && ".join(f"data.amount > `{n}`" for n in range(8))
    (flows / "long.yaml").write_text(
        "name: long\nconsumes: sales.opportunity.closed_won.v1\n"
        f'when: "{condition}"\nsteps:\n'
        "  - {name: a, to: vendor.post, payload: {x: data.amount}}\n"
    )

    svg = svg_of(tmp_path, tmp_path)
    when_lines = [b.text for b in text_boxes(svg) if "data.amount" in b.text]

    assert len(when_lines) > 2
    assert all(len(line) <= 60 for line in when_lines)
    assert " ".join(line.strip() for line in when_lines) == f"when {condition}"


def test_graph_of_one_flow_file() -> None:
    code, output = graph(str(DEMO / "flows" / "invoice-to-ledger.yaml"))

    assert code == 0
    assert "f_invoice_to_ledger" in output
    assert "closed" not in output


def test_json_lists_steps_with_their_order_target_and_condition() -> None:
    import json

    code, output = graph("--json", project=REPO)

    nodes = {node["id"]: node for node in json.loads(output)["nodes"]}
    assert code == 0
    assert nodes["f_opportunity_to_subscription__2"] == {
        "id": "f_opportunity_to_subscription__2",
        "kind": "step",
        "label": "create_account",
        "flow": "opportunity-to-subscription",
        "order": 2,
        "to": "zuora.create_account",
        "when": "!(steps.find_account.found)",
    }
