"""``platypus flows run --dry-run``: what each step would send, nothing sent."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from platypus.authoring.cli import flows_run_command


def dry(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(flows_run_command, [*args, "--project", str(project)])
    return result.exit_code, result.output


def test_prints_each_step_target_params_and_payload_with_placeholders(project: Path) -> None:
    code, output = dry(project, "--dry-run", str(project / "samples" / "big.event.json"))

    assert code == 0, output
    assert "event 'evt-1' (sales.opportunity.closed_won.v1): nothing is sent (dry run)" in output
    assert '  step create_order -> vendor.post\n    params: {"path": "/orders"}' in output
    assert '"external_id": "006Kd00000A1b2cAAA"' in output
    assert '"order_id": "<steps.create_order.id>"' in output
    assert '"text": "Order <steps.create_order.id> created for Acme Pty Ltd"' in output


def test_says_when_the_flow_filters_the_event_out(project: Path) -> None:
    event = json.loads((project / "samples" / "big.event.json").read_text())
    event["data"]["amount"] = 10
    path = project / "small.json"
    path.write_text(json.dumps(event))

    code, output = dry(project, "--dry-run", str(path), "--flow", "closed-won-to-orders")

    assert code == 0
    assert "filtered out: flow condition is false: data.amount >= `1000`" in output
    assert "step create_order" not in output


def test_an_event_its_schema_refuses_is_reported_and_exits_1(project: Path) -> None:
    event = json.loads((project / "samples" / "big.event.json").read_text())
    event["data"]["currency"] = "euro"
    path = project / "bad.json"
    path.write_text(json.dumps(event))

    code, output = dry(project, "--dry-run", str(path))

    assert code == 1
    assert "would be refused" in output
    assert "data.currency" in output


def test_json_lines_give_one_plan_per_event(project: Path) -> None:
    line = (project / "samples" / "big.event.json").read_text().strip()
    path = project / "two.jsonl"
    path.write_text(line + "\n" + line.replace("evt-1", "evt-2") + "\n")

    code, output = dry(project, "--dry-run", str(path))

    assert code == 0
    assert "event 'evt-1'" in output
    assert "event 'evt-2'" in output


def test_without_dry_run_it_refuses_and_points_at_platypus_run(project: Path) -> None:
    code, output = dry(project, str(project / "samples" / "big.event.json"))

    assert code == 2
    assert "`platypus run` runs flows for real" in output


def test_an_unknown_flow_name_is_an_error(project: Path) -> None:
    code, output = dry(
        project, "--dry-run", str(project / "samples" / "big.event.json"), "--flow", "x"
    )

    assert code == 2
    assert "no flow named 'x'" in output
