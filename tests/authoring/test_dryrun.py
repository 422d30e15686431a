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


DEPENDS = """\
name: find-then-act
consumes: sales.opportunity.closed_won.v1
steps:
  - name: find_account
    to: vendor.post
    payload: {id: data.account_id}
  - name: update_account
    to: vendor.post
    when: "steps.find_account.total_size > `0`"
    payload: {id: "steps.find_account.records[0].Id", name: data.account_name}
  - name: count
    to: vendor.post
    payload: {n: "sum(steps.find_account.sizes)"}
"""


def test_a_condition_on_an_earlier_answer_says_it_depends_instead_of_guessing(
    project: Path,
) -> None:
    (project / "flows" / "find-then-act.yaml").write_text(DEPENDS)
    event = str(project / "samples" / "big.event.json")

    code, output = dry(project, "--dry-run", event, "--flow", "find-then-act")
    _, as_json = dry(project, "--dry-run", event, "--flow", "find-then-act", "--json")

    assert code == 0, output
    assert (
        "  step update_account -> vendor.post: depends on step find_account's answer: runs "
        "only if its condition holds (when: steps.find_account.total_size > `0`); then it sends"
    ) in output
    assert '"name": "Acme Pty Ltd"' in output
    assert "skipped" not in output
    assert (
        "  step count -> vendor.post: depends on step find_account's answer: its payload "
        "cannot be mapped without the answer"
    ) in output
    steps = json.loads(as_json)["events"][0]["flows"][0]["steps"]
    assert [s["status"] for s in steps] == ["send", "depends", "depends"]


def test_a_step_that_would_fail_exits_1_and_an_expression_error_is_no_traceback(
    project: Path,
) -> None:
    (project / "flows" / "broken.yaml").write_text(
        "name: broken\nconsumes: sales.opportunity.closed_won.v1\nsteps:\n"
        '  - name: compare\n    to: vendor.post\n    when: "data.account_name > `0`"\n'
        "    payload: {id: data.account_id}\n"
    )
    (project / "flows" / "unmappable.yaml").write_text(
        "name: unmappable\nconsumes: sales.opportunity.closed_won.v1\nsteps:\n"
        "  - name: total\n    to: vendor.post\n"
        '    payload: {n: "sum(data.line_items[*].product_code)"}\n'
    )
    event = str(project / "samples" / "big.event.json")

    broken = CliRunner().invoke(
        flows_run_command, ["--dry-run", event, "--flow", "broken", "--project", str(project)]
    )
    unmappable = dry(project, "--dry-run", event, "--flow", "unmappable")

    assert broken.exit_code == 1, broken.output
    assert broken.exception is None or isinstance(broken.exception, SystemExit)
    assert "step compare -> vendor.post: would FAIL" in broken.output
    assert "compare values of one type" in broken.output
    assert "Traceback" not in broken.output
    assert unmappable[0] == 1
    assert "step total -> vendor.post: would FAIL: expression 'sum(" in unmappable[1]


def test_a_value_read_deeper_into_an_answer_shows_what_it_stands_for_not_null(
    project: Path,
) -> None:
    (project / "flows" / "deeper.yaml").write_text(
        "name: deeper\nconsumes: sales.opportunity.closed_won.v1\nsteps:\n"
        "  - name: find\n    to: vendor.post\n    payload: {id: data.account_id}\n"
        "  - name: act\n    to: vendor.post\n"
        "    payload:\n"
        '      first: "steps.find.records[0].Id"\n'
        '      deeper: "steps.find.id.x"\n'
        '      listed: ["steps.find.owner.email", data.account_name]\n'
        '      fallback: "data.no_such_field || steps.find.id.x"\n'
    )
    event = str(project / "samples" / "big.event.json")

    code, as_json = dry(project, "--dry-run", event, "--flow", "deeper", "--json")

    assert code == 0, as_json
    act = json.loads(as_json)["events"][0]["flows"][0]["steps"][1]
    assert (act["status"], act["payload"]) == (
        "send",
        {
            "first": "<steps.find.records[0].Id>",
            "deeper": "<steps.find.id.x>",
            "listed": ["<steps.find.owner.email>", "Acme Pty Ltd"],
            "fallback": "<data.no_such_field || steps.find.id.x>",
        },
    )
