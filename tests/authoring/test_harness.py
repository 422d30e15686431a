"""Flow tests beside flows: cases run through the real processor, adapters faked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from platypus.authoring.cli import flows_test_command
from platypus.runtime.processor import Processor
from platypus.testing import (
    FlowHarness,
    TestCase,
    assert_flow_tests_pass,
    run_case,
    run_flow_tests,
)
from tests.support import closed_won

FLOW = "flows/closed-won-to-orders.yaml"

ORDER_PAYLOAD = {
    "external_id": "006Kd00000A1b2cAAA",
    "account": {"crm_id": "001Kd00000A1b2cAAA", "name": "Acme Pty Ltd"},
    "amount": 25000,
    "currency": "EUR",
    "close_date": "2026-11-02",
    "lines": [{"sku": "PLAT-ENT", "quantity": 2, "unit_price": 100}],
}

GOOD_TESTS = """\
cases:
  - name: a big deal becomes an order, then a notification
    event_file: ../samples/big.event.json
    results:
      create_order: {id: ORD-7}
    calls:
      - to: vendor.post
        params: {path: /orders}
        payload:
          external_id: 006Kd00000A1b2cAAA
          account: {crm_id: 001Kd00000A1b2cAAA, name: Acme Pty Ltd}
          amount: 25000
          currency: EUR
          close_date: '2026-11-02'
          lines: [{sku: PLAT-ENT, quantity: 2, unit_price: 100}]
      - to: vendor.post
        payload: {order_id: ORD-7, text: Order ORD-7 created for Acme Pty Ltd}

  - name: small deals are filtered out
    event_file: ../samples/big.event.json
    patch: {data: {amount: 10}}
    filtered: true

  - name: a refused order is dead-lettered
    event_file: ../samples/big.event.json
    fail:
      create_order: {error: PermanentError, message: 400 Bad Request}
    dead_lettered: {step: create_order, error: PermanentError, message_contains: "400"}
"""


def case(**fields: Any) -> dict[str, Any]:
    return {"name": "case", "event_file": "../samples/big.event.json", **fields}


def test_a_case_records_every_call_with_its_rendered_payload(project: Path) -> None:
    result = run_case(
        project / FLOW, case(results={"create_order": {"id": "ORD-1"}}, calls=[]), project=project
    )

    assert result.outcome == "delivered"
    assert [(c.to, c.step, c.params["path"]) for c in result.calls] == [
        ("vendor.post", "create_order", "/orders"),
        ("vendor.post", "notify_account_team", "/throttled/notifications"),
    ]
    assert result.calls[0].payload == ORDER_PAYLOAD
    assert result.calls[1].payload["order_id"] == "ORD-1"


def test_expected_calls_that_differ_fail_with_a_unified_diff(project: Path) -> None:
    wrong = {**ORDER_PAYLOAD, "currency": "USD"}
    result = run_case(
        project / FLOW,
        case(
            calls=[{"to": "vendor.post", "payload": wrong}], results={"create_order": {"id": "O"}}
        ),
        project=project,
    )

    assert not result.passed
    report = result.report()
    assert report.startswith("FAIL ")
    assert "the adapter calls differ (- expected, + actual):" in report
    assert "-    currency: USD" in report
    assert "+    currency: EUR" in report
    assert "  +- to: vendor.post\n  +  step: notify_account_team\n" in report  # not expected


def test_a_filtered_event_makes_no_call(project: Path) -> None:
    result = run_case(project / FLOW, case(patch={"data": {"amount": 10}}, filtered=True))

    assert result.passed, result.report()
    assert result.calls == []
    assert "data.amount >= `1000`" in result.detail


def test_expecting_delivery_of_a_filtered_event_says_why_it_was_filtered(project: Path) -> None:
    result = run_case(project / FLOW, case(patch={"data": {"amount": 10}}, calls=[]))

    assert result.problems == [
        "expected the event to be delivered, but it was filtered: "
        "flow condition is false: data.amount >= `1000`"
    ]


def test_retryable_failures_are_retried_by_the_real_policy_without_waiting(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: list[float] = []

    async def backoff(self: Processor, seconds: float) -> None:
        waited.append(seconds)  # the runtime's own wait: the harness must not reach it

    monkeypatch.setattr(Processor, "_backoff", backoff)
    result = run_case(
        project / FLOW,
        case(
            fail={"create_order": {"error": "RetryableError", "times": 2}},
            results={"create_order": {"id": "ORD-1"}},
            calls=[],
        ),
    )

    assert waited == []
    assert result.outcome == "delivered"
    assert [(c.step, c.attempt) for c in result.calls] == [
        ("create_order", 1),
        ("create_order", 2),
        ("create_order", 3),
        ("notify_account_team", 1),
    ]


def test_a_step_that_always_fails_retryably_is_dead_lettered_after_max_attempts(
    project: Path,
) -> None:
    result = run_case(
        project / FLOW,
        case(
            fail={
                "create_order": {"error": "RetryableError", "message": "503 Service Unavailable"}
            },
            dead_lettered={
                "step": "create_order",
                "error": "RetryableError",
                "message_contains": "503",
                "attempts": 5,  # max_attempts of platypus.yaml
            },
        ),
    )

    assert result.passed, result.report()
    assert len(result.calls) == 5


def test_a_record_that_appears_after_more_attempts_than_max_attempts_is_delivered(
    project: Path,
) -> None:
    result = run_case(
        project / FLOW,
        case(
            fail={"create_order": {"error": "MissingDependencyError", "times": 8}},
            results={"create_order": {"id": "ORD-1"}},
            calls=[],
        ),
    )

    assert result.outcome == "delivered"
    assert [c.attempt for c in result.calls if c.step == "create_order"] == list(range(1, 10))


def test_a_missing_record_that_never_appears_cannot_be_written_as_a_case(project: Path) -> None:
    with pytest.raises(ValueError, match="needs times"):
        run_case(
            project / FLOW,
            case(
                fail={"create_order": {"error": "MissingDependencyError"}},
                dead_lettered={"step": "create_order"},
            ),
        )


def test_a_dead_letter_expectation_names_what_differs(project: Path) -> None:
    result = run_case(
        project / FLOW,
        case(
            fail={"notify_account_team": {"error": "PermanentError", "message": "nope"}},
            results={"create_order": {"id": "O"}},
            dead_lettered={"step": "create_order", "error": "RetryableError"},
        ),
    )

    assert result.problems == [
        "expected the failure at step 'create_order', got 'notify_account_team'",
        "expected error RetryableError, got platypus.exceptions.PermanentError",
    ]


def test_an_event_that_does_not_fit_its_schema_is_dead_lettered_with_the_field(
    project: Path,
) -> None:
    result = run_case(project / FLOW, case(patch={"data": {"currency": "euro"}}, calls=[]))

    assert result.outcome == "dead_lettered"
    assert "data does not match its schema" in result.problems[0]


def test_an_inline_event_works_like_an_event_file(project: Path) -> None:
    harness = FlowHarness(project / FLOW)
    event = harness.event(TestCase.model_validate(case(filtered=True)))
    result = harness.run(
        {"name": "inline", "event": event, "results": {"create_order": {"id": "O"}}, "calls": []}
    )

    assert result.outcome == "delivered"
    assert result.calls[0].payload == ORDER_PAYLOAD


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "x", "calls": []}, re.escape("either inline (event:) or as event_file:")),
        (case(), "say what to expect"),
        (case(filtered=True, discarded=True), "at most one of"),
    ],
)
def test_a_case_must_have_one_event_and_an_expectation(
    project: Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_case(project / FLOW, fields)


def test_assert_flow_tests_pass_runs_the_test_file_beside_the_flow(project: Path) -> None:
    (project / "flows" / "closed-won-to-orders.test.yaml").write_text(GOOD_TESTS)

    assert_flow_tests_pass(project / "flows")
    assert [r.passed for r in run_flow_tests(project / FLOW)] == [True, True, True]


def test_assert_flow_tests_pass_raises_with_the_report_of_failing_cases(project: Path) -> None:
    text = GOOD_TESTS.replace("ORD-7 created", "ORD-8 created")
    (project / "flows" / "closed-won-to-orders.test.yaml").write_text(text)

    with pytest.raises(AssertionError) as raised:
        assert_flow_tests_pass(project / "flows")

    message = str(raised.value)
    assert "a big deal becomes an order, then a notification" in message
    assert "-    text: Order ORD-8 created for Acme Pty Ltd" in message
    assert message.endswith("2 passed, 1 failed in 1 file")


def test_assert_flow_tests_pass_fails_when_there_is_nothing_to_run(project: Path) -> None:
    with pytest.raises(AssertionError, match="no flow test cases"):
        assert_flow_tests_pass(project / "flows")


def test_cli_prints_failures_with_their_line_and_a_summary_and_exits_1(project: Path) -> None:
    text = GOOD_TESTS.replace("amount: 10}", "amount: 5000}")
    tests = project / "flows" / "closed-won-to-orders.test.yaml"
    tests.write_text(text)

    result = CliRunner().invoke(flows_test_command, ["--project", str(project)])

    assert result.exit_code == 1
    assert f"FAIL {tests}:19 small deals are filtered out" in result.output
    # No `results:` for create_order: the notification's join() fails on null.
    assert (
        "expected the event to be filtered, but it was dead-lettered at step 'notify_account_team'"
    ) in result.output
    assert result.output.splitlines()[-1] == "2 passed, 1 failed in 1 file"


def test_cli_passes_quietly_and_lists_cases_with_verbose(project: Path) -> None:
    (project / "flows" / "closed-won-to-orders.test.yaml").write_text(GOOD_TESTS)
    runner = CliRunner()

    quiet = runner.invoke(flows_test_command, ["--project", str(project)])
    verbose = runner.invoke(flows_test_command, ["--project", str(project), "-v"])

    assert quiet.exit_code == 0, quiet.output
    assert quiet.output == "3 passed in 1 file\n"
    assert verbose.output.count("PASS ") == 3


def test_cli_reports_a_malformed_test_file_with_its_location(project: Path) -> None:
    tests = project / "flows" / "closed-won-to-orders.test.yaml"
    tests.write_text("cases:\n  - name: x\n    event_file: a.json\n    filtred: true\n")

    result = CliRunner().invoke(flows_test_command, [str(tests), "--project", str(project)])

    assert result.exit_code == 1
    assert f"{tests}:4:5: cases.0.filtred: unknown key 'filtred'; did you mean 'filtered'?" in (
        result.output
    )


MISTAKES = """\
cases:
  - name: a misspelt calls
    event_file: ../samples/big.event.json
    call: []

  - name: a result for a step the flow lacks
    event_file: ../samples/big.event.json
    results:
      create_ordr: {id: ORD-1}
    calls: []

  - name: a failure of a step the flow lacks
    event_file: ../samples/big.event.json
    fail:
      notify_team: {error: PermanentError}
    dead_lettered: {step: notify_acount_team}

  - name: a patch of a field the schema lacks
    event_file: ../samples/big.event.json
    patch: {data: {amout: 10, billing_contact: {mail: x@example.com}}}
    filtered: true

  - name: a misspelt key inside fail
    event_file: ../samples/big.event.json
    fail:
      create_order: {eror: PermanentError}
    dead_lettered: {step: create_order}

  - name: small deals are filtered out
    event_file: ../samples/big.event.json
    patch: {data: {amount: 10}}
    filtered: true
"""


def test_each_mistaken_case_fails_at_its_line_with_a_hint_and_the_others_run(
    project: Path,
) -> None:
    tests = project / "flows" / "closed-won-to-orders.test.yaml"
    tests.write_text(MISTAKES)

    result = CliRunner().invoke(flows_test_command, [str(tests), "--project", str(project)])

    assert result.exit_code == 1
    out = result.output
    assert f"{tests}:4:5: cases.0.call: unknown key 'call'; did you mean 'calls'?" in out
    assert (
        f"{tests}:9:7: cases.1.results.create_ordr: flow 'closed-won-to-orders' has no step "
        "'create_ordr'; did you mean 'create_order'?"
    ) in out
    assert f"{tests}:15:7: cases.2.fail.notify_team: flow 'closed-won-to-orders' has no step" in out
    assert "did you mean 'notify_account_team'?" in out
    assert f"{tests}:16:27: cases.2.dead_lettered.step: " in out
    assert (
        f"{tests}:20:20: cases.3.patch.data.amout: data has no field 'amout'; "
        "did you mean 'data.amount'?"
    ) in out
    assert (
        f"{tests}:20:49: cases.3.patch.data.billing_contact.mail: data.billing_contact has no "
        "field 'mail'; did you mean 'data.billing_contact.email'?"
    ) in out
    assert f"{tests}:26:22: cases.4.fail.create_order.eror: unknown key 'eror'; did you mean" in out
    assert out.splitlines()[-1] == "1 passed, 5 failed in 1 file"


def test_a_patch_field_at_another_nesting_is_suggested_there(project: Path) -> None:
    tests = project / "flows" / "closed-won-to-orders.test.yaml"
    tests.write_text(
        "cases:\n  - name: x\n    event_file: ../samples/big.event.json\n"
        "    patch: {data: {product_code: X}}\n    filtered: true\n"
    )

    result = CliRunner().invoke(flows_test_command, [str(tests), "--project", str(project)])

    assert result.exit_code == 1
    assert "did you mean 'data.line_items[0].product_code'?" in result.output


def test_flows_test_checks_connections_and_actions_as_lint_does(project: Path) -> None:
    flow = project / "flows" / "closed-won-to-orders.yaml"
    flow.write_text(flow.read_text().replace("to: vendor.post", "to: vendor.pots", 1))
    (project / "flows" / "closed-won-to-orders.test.yaml").write_text(GOOD_TESTS)

    result = CliRunner().invoke(flows_test_command, ["--project", str(project)])

    assert result.exit_code == 1
    assert f"{flow}:10:9: error[unknown-action]: adapter 'http' has no action 'pots'" in (
        result.output
    )
    assert "did you mean 'post'?" in result.output


def test_cli_without_any_test_file_fails(project: Path) -> None:
    result = CliRunner().invoke(flows_test_command, ["--project", str(project)])

    assert result.exit_code == 1
    assert "no flow tests found" in result.output


def test_a_patch_of_list_items_is_checked_against_the_item_schema(project: Path) -> None:
    tests = project / "flows" / "closed-won-to-orders.test.yaml"
    tests.write_text(
        "cases:\n  - name: x\n    event_file: ../samples/big.event.json\n"
        "    patch: {data: {line_items: [{prodct_code: X}]}}\n    filtered: true\n"
    )

    result = CliRunner().invoke(flows_test_command, [str(tests), "--project", str(project)])

    assert result.exit_code == 1
    assert (
        "cases.0.patch.data.line_items.0.prodct_code: data.line_items[0] has no field "
        "'prodct_code'; did you mean 'data.line_items[0].product_code'?"
    ) in result.output


def test_flows_test_refuses_a_soql_bind_the_payload_never_maps(tmp_path: Path) -> None:
    # A case would pass with the query faked, while the real call fails on every event.
    (tmp_path / "platypus.yaml").write_text(
        "flows: flows\n"
        "connections:\n"
        "  crm:\n"
        "    adapter: salesforce\n"
        "    settings:\n"
        "      auth: {type: session, session_id: s, instance_url: 'https://acme.my.salesforce.com'}\n"
    )
    (tmp_path / "flows").mkdir()
    flow = tmp_path / "flows" / "find-account.yaml"
    flow.write_text(
        "name: find-account\n"
        "consumes: sales.opportunity.closed_won.v1\n"
        "steps:\n"
        "  - name: find\n"
        "    to: crm.query\n"
        "    params:\n"
        '      soql: "SELECT Id FROM Account WHERE External_Id__c = :customer_id"\n'
        "    payload: {id: data.account_id}\n"
    )
    (tmp_path / "samples").mkdir()
    event = closed_won("006Kd00000A1b2cAAA", amount=25000, event_id="evt-1")
    (tmp_path / "samples" / "big.event.json").write_text(json.dumps(event), encoding="utf-8")
    (tmp_path / "flows" / "find-account.test.yaml").write_text(
        "cases:\n"
        "  - name: the account is found\n"
        "    event_file: ../samples/big.event.json\n"
        "    results: {find: {records: [{Id: 001Kd00000A1b2cAAA}]}}\n"
        "    delivered: true\n"
    )

    result = CliRunner().invoke(flows_test_command, ["--project", str(tmp_path)])

    assert result.exit_code == 1, result.output
    assert f"{flow}:7:13: error[bind-missing]: params.soql binds :customer_id" in result.output
