"""``platypus flows lint``: flows checked against schemas, adapters and connections."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from platypus.adapter import Action, Adapter, AdapterRegistry
from platypus.config import ConnectionSpec, ProjectConfig
from platypus.exceptions import SourceLocation
from platypus.flow.lint import Finding, format_findings, lint_paths
from platypus.schema_registry import SchemaRegistry
from platypus_adapters.salesforce import SalesforceAdapter
from platypus_adapters.sink import SinkAdapter

HERE = Path(__file__).parent


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "/"
    headers: dict[str, str] = {}


class OrderInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunity: str
    amount: Decimal
    note: str = ""


class WebhookAdapter(Adapter):
    """Like the http adapter, with a typed ``order`` action besides ``post``."""

    name = "webhook"
    Settings = WebhookSettings
    actions: ClassVar = {
        "post": Action(params=WebhookParams),
        "order": Action(params=WebhookParams, input=OrderInput),
    }


ADAPTERS = AdapterRegistry(
    {"webhook": WebhookAdapter, "sink": SinkAdapter, "broken": "platypus_nowhere:Adapter"}
)
CONFIG = ProjectConfig(
    connections={
        "billing": ConnectionSpec(adapter="webhook", settings={"base_url": "http://127.0.0.1"}),
        "legacy": ConnectionSpec(adapter="webhok"),
        "old": ConnectionSpec(adapter="broken"),
    }
)

HEAD = "name: f\nconsumes: [sales.opportunity.closed_won.v1]\nsteps:\n"
"""Lines 1-3 of most flows below; their steps start on line 4."""


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.default()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def lint(schemas: SchemaRegistry, *paths: Path) -> list[Finding]:
    return lint_paths(list(paths), schemas=schemas, adapters=ADAPTERS, config=CONFIG)


def lint_text(schemas: SchemaRegistry, tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    """(line, column, code) of each finding for a flow file holding ``text``."""
    path = write(tmp_path, "flow.yaml", text)
    findings = lint(schemas, path)
    assert all(f.location.file == str(path) for f in findings)
    return [(f.location.line, f.location.column, f.code) for f in findings]


def messages(schemas: SchemaRegistry, tmp_path: Path, text: str) -> list[str]:
    return [f.message for f in lint(schemas, write(tmp_path, "flow.yaml", text))]


# -- clean flows ---------------------------------------------------------------------


def test_good_flows_folder_lints_clean(schemas: SchemaRegistry) -> None:
    # The tricky ones write to shipped adapters (Slack, Zuora, Salesforce) as well.
    from tests.authoring.project import ADAPTERS as PROJECT_ADAPTERS
    from tests.authoring.project import CONFIG as PROJECT_CONFIG

    good = lint_paths(
        [HERE / "flows_good"], schemas=schemas, adapters=PROJECT_ADAPTERS, config=PROJECT_CONFIG
    )

    assert good == []
    assert len(list((HERE / "flows_good").rglob("*.y*ml"))) >= 5


def test_a_flow_reading_earlier_steps_and_envelope_fields_lints_clean(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = HEAD + (
        "  - name: create-order\n"
        "    to: billing.order\n"
        "    payload: {opportunity: data.opportunity_id, amount: data.amount}\n"
        "  - name: notify\n"
        "    to: sink.send\n"
        "    when: 'steps.\"create-order\".id != `null`'\n"
        "    payload:\n"
        "      order: 'steps.\"create-order\".id'\n"
        "      key: subject\n"
        "      at: time\n"
        "      products: data.line_items[*].product_code\n"
        "      total: sum(data.line_items[*].unit_price)\n"
        "      contact: data.billing_contact.email\n"
    )

    assert lint_text(schemas, tmp_path, text) == []


# -- what the loader refuses -------------------------------------------------------------


def test_loader_problems_come_through_with_their_codes(schemas: SchemaRegistry) -> None:
    broken = HERE / "flows_broken"

    findings = lint(schemas, broken)

    assert [(Path(f.location.file).name, f.location.line, f.code) for f in findings] == [
        ("bad_expression.yaml", 3, "expression-syntax"),
        ("bad_expression.yaml", 10, "expression-syntax"),
        ("bad_target.yaml", 7, "flow-invalid"),
        ("duplicate_key.yaml", 8, "duplicate-key"),
        ("missing_steps.yaml", 1, "flow-invalid"),
        ("same_name_again.yaml", 1, "duplicate-flow-name"),
        ("syntax_error.yaml", 3, "yaml-syntax"),
        ("typo_key.yaml", 8, "flow-invalid"),
    ]
    typo = findings[-1]
    assert typo.message == "steps[1].payloda: unknown key 'payloda'; did you mean 'payload'?"
    assert typo.location.column == 5


def test_a_missing_path_is_a_finding(schemas: SchemaRegistry, tmp_path: Path) -> None:
    (finding,) = lint(schemas, tmp_path / "nope.yaml")

    assert finding.code == "file-unreadable"
    assert finding.location == SourceLocation(str(tmp_path / "nope.yaml"), 1, 1)


def test_duplicate_flow_names_across_paths(schemas: SchemaRegistry, tmp_path: Path) -> None:
    flow = HEAD + "  - name: a\n    to: sink.send\n"
    first = write(tmp_path, "first.yaml", flow)
    second = write(tmp_path, "second.yaml", "# the same flow again\n" + flow)

    (finding,) = lint(schemas, first, second)

    assert finding.code == "duplicate-flow-name"
    assert finding.location == SourceLocation(str(second), 2, 7)
    assert f"already used by {first}:1:7" in finding.message


def test_a_file_given_twice_is_linted_once(schemas: SchemaRegistry, tmp_path: Path) -> None:
    path = write(tmp_path, "flow.yaml", HEAD + "  - name: a\n    to: sink.send\n")

    assert lint(schemas, path, tmp_path) == []


# -- event types and expressions ---------------------------------------------------------


def test_unknown_event_type_suggests_the_registered_one(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = (
        "name: f\n"
        "consumes:\n"
        "  - finance.invoice.posted.v1\n"
        "  - sales.opportunity.closed_wn.v1\n"
        "steps:\n"
        "  - name: a\n"
        "    to: sink.send\n"
    )
    path = write(tmp_path, "flow.yaml", text)

    (finding,) = lint(schemas, path)

    assert finding.code == "unknown-event-type"
    assert finding.location == SourceLocation(str(path), 4, 5)
    assert "did you mean 'sales.opportunity.closed_won.v1'?" in finding.message


def test_field_typo_in_a_mapping_is_located_and_suggests_the_field(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = HEAD + (
        "  - name: a\n"
        "    to: sink.send\n"
        "    payload:\n"
        "      amount: data.amount\n"
        "      opportunity: data.opportunity_idd\n"
    )
    path = write(tmp_path, "flow.yaml", text)

    (finding,) = lint(schemas, path)

    assert finding.code == "expression-field"
    assert finding.location == SourceLocation(str(path), 8, 20)
    assert finding.message == (
        "'data.opportunity_idd': data has no field 'opportunity_idd'; "
        "did you mean 'data.opportunity_id'?"
    )


def test_nested_field_typos_in_lists_and_when_are_found(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = (
        "name: f\n"
        "consumes: [sales.opportunity.closed_won.v1]\n"
        "when: data.ammount > `10`\n"
        "steps:\n"
        "  - name: a\n"
        "    to: sink.send\n"
        "    when: data.billing_contact.emial\n"
        "    payload:\n"
        "      lines:\n"
        "        - data.line_items[*].product_cod\n"
        "      who: dat.owner_email\n"
    )

    assert lint_text(schemas, tmp_path, text) == [
        (3, 7, "expression-field"),
        (7, 11, "expression-field"),
        (10, 11, "expression-field"),
        (11, 12, "expression-field"),
    ]


def test_field_missing_from_one_of_several_consumed_types_names_that_type(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = (
        "name: f\n"
        "consumes: [sales.opportunity.closed_won.v1, finance.invoice.posted.v1]\n"
        "steps:\n"
        "  - name: a\n"
        "    to: sink.send\n"
        "    payload: {amount: data.amount, id: data.opportunity_id}\n"
    )

    (message,) = messages(schemas, tmp_path, text)

    assert message.startswith("'data.opportunity_id': data has no field 'opportunity_id'")
    assert message.endswith("(in event type finance.invoice.posted.v1)")


def test_reading_a_later_step_is_refused(schemas: SchemaRegistry, tmp_path: Path) -> None:
    text = HEAD + (
        "  - name: first\n"
        "    to: sink.send\n"
        "    payload: {order: steps.second.id}\n"
        "  - name: second\n"
        "    to: sink.send\n"
    )
    path = write(tmp_path, "flow.yaml", text)

    (finding,) = lint(schemas, path)

    assert finding.code == "step-reference"
    assert finding.location == SourceLocation(str(path), 6, 22)
    assert finding.message == (
        "step 'first' reads steps.second, which runs later: a step can read only steps before it"
    )


def test_reading_an_unknown_step_is_refused_with_a_suggestion(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = HEAD + (
        "  - name: create\n"
        "    to: sink.send\n"
        "  - name: notify\n"
        "    to: sink.send\n"
        "    when: length(steps.craete.items) > `0`\n"
        "    payload: [steps.notify]\n"
    )

    assert lint_text(schemas, tmp_path, text) == [
        (8, 11, "step-reference"),
        (9, 15, "step-reference"),
    ]
    assert messages(schemas, tmp_path, text) == [
        "step 'notify' reads steps.craete, which does not exist; did you mean 'create'?",
        "step 'notify' reads steps.notify, which is this step itself: "
        "a step can read only steps before it",
    ]


def test_flow_when_cannot_read_steps(schemas: SchemaRegistry, tmp_path: Path) -> None:
    text = (
        "name: f\n"
        "consumes: [sales.opportunity.closed_won.v1]\n"
        "when: steps.a\n"
        "steps:\n"
        "  - name: a\n"
        "    to: sink.send\n"
    )

    assert lint_text(schemas, tmp_path, text) == [(3, 7, "step-reference")]


def test_data_fields_named_steps_are_not_step_references(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = HEAD + (
        "  - name: a\n"
        "    to: sink.send\n"
        "    payload: {x: 'data.line_items[?steps.nope]'}\n"  # steps of each line item
    )

    assert [code for *_, code in lint_text(schemas, tmp_path, text)] == ["expression-field"]


# -- connections, adapters, actions, params, input ---------------------------------------


@pytest.mark.parametrize(
    ("to", "code", "message"),
    [
        (
            "billng.post",
            "unknown-connection",
            "connection 'billng' is not in platypus.yaml and is not an installed adapter; "
            "did you mean 'billing'?",
        ),
        (
            "legacy.post",
            "unknown-adapter",
            "connection 'legacy' uses adapter 'webhok', which is not installed "
            "(installed: broken, sink, webhook); did you mean 'webhook'?",
        ),
        (
            "billing.pots",
            "unknown-action",
            "adapter 'webhook' has no action 'pots' (it has: order, post); did you mean 'post'?",
        ),
        ("old.post", "adapter-unavailable", "adapter 'broken' cannot be imported"),
        (
            "webhook.post",
            "connection-settings",
            "adapter 'webhook' needs settings (base_url): add a connection",
        ),
    ],
)
def test_step_target_is_checked_against_connections_and_adapters(
    schemas: SchemaRegistry, tmp_path: Path, to: str, code: str, message: str
) -> None:
    path = write(tmp_path, "flow.yaml", HEAD + f"  - name: a\n    to: {to}\n")

    (finding,) = lint(schemas, path)

    assert finding.code == code
    assert finding.location == SourceLocation(str(path), 5, 9)
    assert finding.message.startswith(message)


def test_invalid_params_are_reported_each_at_its_node(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = HEAD + (
        "  - name: a\n    to: billing.post\n    params:\n      path: [orders]\n      headres: {}\n"
    )

    assert lint_text(schemas, tmp_path, text) == [
        (7, 13, "invalid-params"),
        (8, 7, "invalid-params"),
    ]
    assert messages(schemas, tmp_path, text) == [
        "params.path: Input should be a valid string, got ['orders']",
        "params.headres: unknown param 'headres'; did you mean 'headers'?",
    ]


def test_required_input_never_mapped_and_unknown_input_keys(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = HEAD + (
        "  - name: a\n"
        "    to: billing.order\n"
        "    payload:\n"
        "      opportunity: data.opportunity_id\n"
        "      amonut: data.amount\n"
    )

    assert lint_text(schemas, tmp_path, text) == [
        (7, 7, "input-missing"),
        (8, 7, "input-unknown-key"),
    ]
    assert messages(schemas, tmp_path, text) == [
        "action 'billing.order' needs 'amount' in its input, but the payload never maps it",
        "action 'billing.order' takes no 'amonut' in its input; did you mean 'amount'?",
    ]


SALESFORCE = AdapterRegistry({"salesforce": SalesforceAdapter})
SALESFORCE_CONFIG = ProjectConfig(connections={"crm": ConnectionSpec(adapter="salesforce")})


def lint_query(schemas: SchemaRegistry, tmp_path: Path, soql: str, payload: str) -> list[str]:
    """``str`` of each finding of a flow whose one step runs ``soql`` with ``payload``."""
    text = HEAD + f"  - name: find\n    to: crm.query\n    params:\n      soql: {soql}\n{payload}"
    path = write(tmp_path, "flow.yaml", text)
    found = lint_paths([path], schemas=schemas, adapters=SALESFORCE, config=SALESFORCE_CONFIG)
    return [str(finding).removeprefix(f"{path}:") for finding in found]


def test_a_soql_bind_the_payload_never_maps_is_reported_at_the_soql(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    soql = '"SELECT Id FROM Account WHERE External_Id__c = :customer_id"'

    assert lint_query(schemas, tmp_path, soql, "    payload: {id: data.account_id}\n") == [
        "7:13: error[bind-missing]: params.soql binds :customer_id, but the payload has no "
        "'customer_id' (it maps: id), so 'crm.query' fails on every event; map customer_id "
        "in the payload"
    ]
    assert lint_query(schemas, tmp_path, soql, "") == [
        "7:13: error[bind-missing]: params.soql binds :customer_id, but the payload has no "
        "'customer_id' (it maps nothing), so 'crm.query' fails on every event; map customer_id "
        "in the payload"
    ]


def test_soql_binds_the_payload_maps_and_text_in_quotes_lint_clean(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    soql = "\"SELECT Id FROM Case WHERE Subject = 'x :not_a_bind' AND Owner = :owner\""

    assert lint_query(schemas, tmp_path, soql, "    payload: {owner: data.account_id}\n") == []


def lint_step(schemas: SchemaRegistry, tmp_path: Path, step: str) -> list[str]:
    """``str`` of each finding of a flow whose one step (after ``- name: s``) is ``step``."""
    path = write(tmp_path, "flow.yaml", HEAD + "  - name: s\n" + step)
    found = lint_paths([path], schemas=schemas, adapters=SALESFORCE, config=SALESFORCE_CONFIG)
    return [str(finding).removeprefix(f"{path}:") for finding in found]


def test_a_salesforce_key_field_the_payload_never_maps_is_reported_at_the_param(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    upsert = (
        "    to: crm.upsert\n"
        "    params: {sobject: Contact, external_id_field: Worker_Id__c}\n"
        "    payload: {Worker_Id: data.account_id, LastName: data.account_id}\n"
    )
    update = (
        "    to: crm.update\n    params: {sobject: Contact}\n    payload: {Title: data.amount}\n"
    )
    freeze = "    to: crm.freeze_user\n    payload: {FederationIdentifier: data.account_id}\n"

    assert lint_step(schemas, tmp_path, upsert) == [
        "6:51: error[bind-missing]: params.external_id_field is 'Worker_Id__c', but the "
        "payload has no 'Worker_Id__c' (it maps: Worker_Id, LastName), so 'crm.upsert' fails "
        "on every event; rename 'Worker_Id' to Worker_Id__c"
    ]
    assert lint_step(schemas, tmp_path, update) == [
        "6:13: error[bind-missing]: params.id_field is 'Id', but the payload has no 'Id' (it "
        "maps: Title), so 'crm.update' fails on every event; map Id in the payload"
    ]
    # A param left at its default is reported at the step's params, which it lacks: the step.
    assert [f.split(": ", 1)[1] for f in lint_step(schemas, tmp_path, freeze)] == [
        "error[bind-missing]: params.match_field is 'Username', but the payload has no "
        "'Username' (it maps: FederationIdentifier), so 'crm.freeze_user' fails on every "
        "event; map Username in the payload"
    ]
    fixed = upsert.replace("Worker_Id:", "Worker_Id__c:")
    assert lint_step(schemas, tmp_path, fixed) == []


def test_input_missing_without_any_payload_points_at_the_step(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    text = HEAD + "  - name: a\n    to: billing.order\n"

    assert lint_text(schemas, tmp_path, text) == [(4, 5, "input-missing"), (4, 5, "input-missing")]


# -- output ------------------------------------------------------------------------------


FINDINGS = [
    Finding(SourceLocation("flows/a.yaml", 3, 7), "unknown-event-type", "unknown event type"),
    Finding(SourceLocation("flows/a.yaml", 9, 9), "unknown-action", "no action 'x'"),
    Finding(SourceLocation("flows/b.yaml", 1, 1), "style", "a hint", severity="warning"),
]


def test_format_findings_text_has_compiler_style_lines_and_a_summary() -> None:
    assert format_findings(FINDINGS[:2], "text") == (
        "flows/a.yaml:3:7: error[unknown-event-type]: unknown event type\n"
        "flows/a.yaml:9:9: error[unknown-action]: no action 'x'\n"
        "2 errors in 1 file"
    )


def test_format_findings_text_counts_warnings_and_files() -> None:
    assert format_findings(FINDINGS, "text").splitlines()[-1] == "2 errors and 1 warning in 2 files"
    assert format_findings(FINDINGS[2:], "text").splitlines()[-1] == "1 warning in 1 file"


def test_format_findings_text_without_findings() -> None:
    assert format_findings([], "text") == "no problems found"


def test_format_findings_json_is_a_list_of_dicts() -> None:
    decoded: Any = json.loads(format_findings(FINDINGS[:1], "json"))

    assert decoded == [
        {
            "file": "flows/a.yaml",
            "line": 3,
            "column": 7,
            "severity": "error",
            "code": "unknown-event-type",
            "message": "unknown event type",
        }
    ]
    assert json.loads(format_findings([], "json")) == []


def test_lint_targets_checks_only_the_steps_targets(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    from platypus.flow.lint import lint_targets
    from platypus.flow.loader import read_flow_file

    text = (
        "name: f\n"
        "consumes: [no.such.event.v1]\n"
        "steps:\n"
        "  - name: a\n"
        "    to: billng.post\n"
        "    payload: {x: data.nope}\n"
        "  - name: b\n"
        "    to: billing.pots\n"
    )
    flow = read_flow_file(write(tmp_path, "flow.yaml", text))
    assert flow.spec is not None

    found = lint_targets(
        flow.spec, flow.locations, schemas=schemas, adapters=ADAPTERS, config=CONFIG
    )

    assert [(f.location.line, f.code) for f in found] == [
        (5, "unknown-connection"),
        (8, "unknown-action"),
    ]
