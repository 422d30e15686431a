"""``platypus dlq to-test``: a failed event becomes a flow test that runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from platypus.authoring.cli import flows_test_command
from tests.fakes.vendor import FakeVendor
from tests.ops.test_cli import dlq, listed, run_events
from tests.support import closed_won

TWO_STEPS = """\
name: orders
consumes: sales.opportunity.closed_won.v1
when: "data.amount >= `1000`"
steps:
  - name: create_order
    to: vendor.post
    params: {path: /orders}
    payload:
      external_id: data.opportunity_id
      amount: data.amount
      owner: data.owner_email
  - name: notify
    to: vendor.post
    params: {path: /notify}
    payload:
      order_id: steps.create_order.id
      text: "'An order was created'"
"""


def make_project(root: Path, vendor_url: str, flow: str = TWO_STEPS) -> Path:
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "orders.yaml").write_text(flow, encoding="utf-8")
    (root / "platypus.yaml").write_text(
        textwrap.dedent(
            f"""
            flows: flows
            data_dir: data
            partitions: 4
            retry: {{max_attempts: 2, initial_delay: 10ms, max_delay: 20ms}}
            connections:
              vendor:
                adapter: http
                settings: {{base_url: "{vendor_url}", timeout: 5}}
            """
        ),
        encoding="utf-8",
    )
    return root


def flows_test(root: Path, *args: str) -> Result:
    return CliRunner().invoke(flows_test_command, [*args, "--project", str(root)])


def the_case(root: Path) -> dict[str, Any]:
    text = (root / "flows" / "orders.test.yaml").read_text()
    cases: list[dict[str, Any]] = yaml.safe_load(text)["cases"]
    return cases[-1]


def test_a_vendor_refusal_becomes_a_passing_case_with_the_earlier_answers_and_no_personal_data(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [(201, {"id": "ORD-77", "owner": "grace.hopper@example.com"})])
    fake_vendor.script("/notify", [(400, {"error": "channel_not_found"})])
    event = closed_won(owner_email="grace.hopper@example.com")
    run_events(root, event)
    [entry] = listed(root)

    made = dlq(root, "to-test", str(entry["id"]))
    tests = flows_test(root, "-v")

    assert_the_refusal_became_a_passing_case(root, event, made, tests)


def assert_the_refusal_became_a_passing_case(
    root: Path, event: dict[str, Any], made: Result, tests: Result
) -> None:
    """What `to-test` makes of /notify's 400 after /orders answered ORD-77 (any runtime)."""
    assert made.exit_code == 0, made.output
    assert "earlier steps' answers were not read" not in made.output
    test_file = root / "flows" / "orders.test.yaml"
    assert f"at {test_file}:" in made.output
    text = test_file.read_text()
    assert "grace.hopper" not in text
    case = the_case(root)
    assert case["event"]["id"] == event["id"]
    assert case["event"]["data"]["owner_email"] == "someone@example.com"
    assert case["event"]["data"]["opportunity_id"] == event["data"]["opportunity_id"]
    assert case["results"] == {"create_order": {"id": "ORD-77", "owner": "***"}}
    assert case["fail"]["notify"]["error"] == "PermanentError"
    assert case["fail"]["notify"]["status_code"] == 400
    assert case["dead_lettered"] == {"step": "notify", "error": "PermanentError"}
    assert tests.exit_code == 0, tests.output
    assert "PASS" in tests.output
    assert tests.output.splitlines()[-1] == "1 passed in 1 file"


def test_a_failure_of_the_flow_becomes_a_case_that_fails_until_the_flow_is_fixed(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    broken = TWO_STEPS.replace(
        "      amount: data.amount\n", '      amount: "sum(data.line_items[*].product_code)"\n'
    )
    root = make_project(tmp_path, fake_vendor.url, broken)
    (root / "flows" / "orders.test.yaml").write_text(
        "# kept as written\ncases:\n  - name: small deals are filtered\n"
        "    event: " + json.dumps(closed_won(amount=10)) + "\n    filtered: true\n"
    )
    run_events(root, closed_won())
    [entry] = listed(root)

    made = dlq(root, "to-test", str(entry["id"]), "--flow-dir", str(root / "flows"))
    before_fix = flows_test(root)
    flow = root / "flows" / "orders.yaml"
    flow.write_text(TWO_STEPS)
    after_fix = flows_test(root)

    assert made.exit_code == 0, made.output
    assert "fails until the flow is fixed" in made.output
    text = (root / "flows" / "orders.test.yaml").read_text()
    assert text.startswith("# kept as written\ncases:\n  - name: small deals are filtered\n")
    assert the_case(root)["delivered"] is True
    assert before_fix.exit_code == 1
    assert "expected the event to be delivered, but it was dead-lettered" in before_fix.output
    assert before_fix.output.splitlines()[-1] == "1 passed, 1 failed in 1 file"
    assert after_fix.exit_code == 0, after_fix.output
    assert after_fix.output == "2 passed in 1 file\n"


def test_an_unknown_id_or_flow_folder_is_a_clear_error(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [(400, {"error": "no"})])
    run_events(root, closed_won())
    [entry] = listed(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    unknown = dlq(root, "to-test", "999")
    no_flow = dlq(root, "to-test", str(entry["id"]), "--flow-dir", str(elsewhere))

    assert unknown.exit_code == 2
    assert "no failed event has id 999" in unknown.output
    assert no_flow.exit_code == 2
    assert "no flow named 'orders'" in no_flow.output
    assert not (root / "flows" / "orders.test.yaml").exists()


def test_json_output_has_the_fields_docs_cli_lists(tmp_path: Path, fake_vendor: FakeVendor) -> None:
    from tests.ops.test_cli import _documented

    root = make_project(tmp_path, fake_vendor.url)
    fake_vendor.script("/orders", [(400, {"error": "no"})])
    run_events(root, closed_won())
    [entry] = listed(root)

    made = dlq(root, "to-test", str(entry["id"]), "--json")

    shown = json.loads(made.output)
    assert set(shown) == _documented("to-test")[0]
    assert shown["expects"] == "dead_lettered"
    assert shown["line"] == 3  # cases:, the comment line, then the case
