"""``platypus flows graph``: event types -> flows -> connections."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from platypus.authoring.cli import flows_graph_command

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "samples" / "demo"  # three flows to one connection: a small, stable graph
SVG = "{http://www.w3.org/2000/svg}"


def graph(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(flows_graph_command, [*args, "--project", str(DEMO)])
    return result.exit_code, result.output


def test_mermaid_has_every_event_type_flow_and_connection_and_the_edges() -> None:
    code, output = graph()

    assert code == 0, output
    assert output.splitlines() == [
        "flowchart LR",
        '    e_finance_invoice_posted_v1(["finance.invoice.posted.v1"])',
        '    e_people_worker_hired_v1(["people.worker.hired.v1"])',
        '    e_sales_opportunity_closed_won_v1(["sales.opportunity.closed_won.v1"])',
        '    f_closed_won_to_orders["closed-won-to-orders"]',
        '    f_invoice_to_ledger["invoice-to-ledger"]',
        '    f_worker_hired_to_it["worker-hired-to-it"]',
        '    c_vendor[("vendor (http)")]',
        "    e_sales_opportunity_closed_won_v1 --> f_closed_won_to_orders",
        '    f_closed_won_to_orders -- "post" --> c_vendor',
        "    e_finance_invoice_posted_v1 --> f_invoice_to_ledger",
        '    f_invoice_to_ledger -- "post" --> c_vendor',
        "    e_people_worker_hired_v1 --> f_worker_hired_to_it",
        '    f_worker_hired_to_it -- "post" --> c_vendor',
    ]


def test_svg_is_well_formed_with_a_node_per_event_type_flow_and_connection(
    tmp_path: Path,
) -> None:
    out = tmp_path / "flows.svg"

    code, output = graph("--format", "svg", "--output", str(out))

    assert code == 0
    assert output == f"wrote {out}\n"
    root = ET.fromstring(out.read_text())  # noqa: S314 -- our own output, not untrusted
    assert root.tag == f"{SVG}svg"
    nodes: dict[str | None, list[str]] = {g.get("class"): [] for g in root.iter(f"{SVG}g")}
    for g in root.iter(f"{SVG}g"):
        nodes[g.get("class")].append("".join(g.itertext()))
    assert nodes == {
        "node event": [
            "finance.invoice.posted.v1",
            "people.worker.hired.v1",
            "sales.opportunity.closed_won.v1",
        ],
        "node flow": ["closed-won-to-orders", "invoice-to-ledger", "worker-hired-to-it"],
        "node connection": ["vendor (http)"],
    }
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]) == 6


def test_graph_of_one_flow_file(tmp_path: Path) -> None:
    code, output = graph(str(DEMO / "flows" / "invoice-to-ledger.yaml"))

    assert code == 0
    assert "f_invoice_to_ledger" in output
    assert "closed" not in output
