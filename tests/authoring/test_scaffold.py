"""``platypus new flow``: a flow, its tests and a sample event that pass lint and test at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapters.salesforce.soql import bind
from platypus.adapter import AdapterRegistry
from platypus.authoring.cli import flows_test_command, new_group
from platypus.authoring.scaffold import sample_instance
from platypus.cli import flows_lint
from platypus.schema_registry import SchemaRegistry

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "samples" / "demo"  # its `vendor` connection needs no credentials


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    shutil.copy(DEMO / "platypus.yaml", tmp_path / "platypus.yaml")
    return tmp_path


@pytest.mark.parametrize("event_type", [s.type for s in SchemaRegistry.default()])
@pytest.mark.parametrize("to", ["vendor.post", "sink.send"])
def test_the_scaffold_passes_lint_and_its_tests_for_every_event_type(
    empty: Path, event_type: str, to: str
) -> None:
    runner = CliRunner()
    project = ["--project", str(empty)]

    made = runner.invoke(
        new_group, ["flow", "my-flow", "--consumes", event_type, "--to", to, *project]
    )
    lint = runner.invoke(flows_lint, project)
    tests = runner.invoke(flows_test_command, project)

    assert made.exit_code == 0, made.output
    assert made.output.splitlines()[:3] == [
        f"created {empty / 'flows' / 'my-flow.yaml'}",
        f"created {empty / 'flows' / 'my-flow.test.yaml'}",
        f"created {empty / 'samples' / 'my-flow.event.json'}",
    ]
    assert lint.output == "no problems found\n"
    assert tests.exit_code == 0, tests.output
    assert tests.output == "3 passed in 1 file\n"


def test_the_sample_event_is_one_json_line_valid_for_its_schema(empty: Path) -> None:
    event_type = "sales.opportunity.closed_won.v1"
    CliRunner().invoke(new_group, ["flow", "x", "--consumes", event_type, "--project", str(empty)])

    text = (empty / "samples" / "x.event.json").read_text()
    event = json.loads(text)

    assert text.count("\n") == 1
    assert event["type"] == event_type
    assert event["subject"] == event["data"]["opportunity_id"]
    SchemaRegistry.default().get(event_type).model.model_validate(event["data"])


def test_existing_files_are_not_overwritten(empty: Path) -> None:
    runner = CliRunner()
    args = ["flow", "x", "--project", str(empty)]
    runner.invoke(new_group, args)

    again = runner.invoke(new_group, args)

    assert again.exit_code == 2
    assert "not overwriting" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flow", "Bad Name"], "invalid flow name 'Bad Name'"),
        (["flow", "x", "--consumes", "sales.nope.v1"], "unknown event type 'sales.nope.v1'"),
    ],
)
def test_bad_names_and_types_are_refused(empty: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(new_group, [*args, "--project", str(empty)])

    assert result.exit_code == 2
    assert message in result.output


def test_sample_instance_follows_patterns_formats_bounds_and_lists() -> None:
    schema = {
        "type": "object",
        "required": ["id", "when", "n", "items", "kind"],
        "properties": {
            "id": {"type": "string", "pattern": r"^006[A-Za-z0-9]{12}$"},
            "when": {"type": "string", "format": "date"},
            "n": {"type": "integer", "exclusiveMinimum": 0, "maximum": 5},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
            "kind": {"enum": ["b", "a"]},
            "optional": {"type": "string"},
        },
        "$defs": {"Item": {"type": "object", "required": ["x"], "properties": {"x": {}}}},
    }

    assert sample_instance(schema) == {
        "id": "006AAAAAAAAAAAA",
        "when": "2026-01-15",
        "n": 5,
        "items": [{"x": "sample"}],
        "kind": "b",
    }


# Every shipped adapter, each behind one connection: the repository's own
# platypus.yaml (its settings come from the environment, so none are needed to
# lint and test) and the two adapters it does not use.
_MORE_CONNECTIONS = """
  vendor:
    adapter: http
    settings: {base_url: "http://127.0.0.1:8181"}
  scim:
    adapter: scim
    settings:
      base_url: https://example.com/scim/v2
      auth: {type: bearer, token: {env: SCIM_TOKEN}}
"""
_SHIPPED = ["http", "sink", "salesforce", "zuora", "netsuite", "workday"]
_SHIPPED += ["slack", "okta", "scim", "coupa"]
_CONNECTION = {"http": "vendor"}  # the others are named after their adapter
_TYPES = [s.type for s in SchemaRegistry.default()]
_ADAPTERS = AdapterRegistry.default()
_TARGETS = [
    f"{_CONNECTION.get(adapter, adapter)}.{action}"
    for adapter in _SHIPPED
    for action in sorted(_ADAPTERS.get(adapter).actions)
]


@pytest.fixture
def every_connection(tmp_path: Path) -> Path:
    text = (REPO / "platypus.yaml").read_text()
    marker = "\n# Pollers"
    assert marker in text
    (tmp_path / "platypus.yaml").write_text(text.replace(marker, _MORE_CONNECTIONS + marker, 1))
    return tmp_path


def test_the_target_list_has_every_action_of_every_shipped_adapter() -> None:
    assert set(_SHIPPED) <= set(_ADAPTERS)
    assert len(_TARGETS) == sum(len(_ADAPTERS.get(a).actions) for a in _SHIPPED)
    assert {"slack.post_message", "salesforce.query", "netsuite.upsert_invoice"} <= set(_TARGETS)


@pytest.mark.parametrize("to", _TARGETS)
def test_the_scaffold_of_every_action_lints_clean_and_passes_its_tests(
    every_connection: Path, to: str
) -> None:
    # A different event type for each action, so that every type meets several actions.
    event_type = _TYPES[_TARGETS.index(to) % len(_TYPES)]
    runner = CliRunner()
    project = ["--project", str(every_connection)]

    made = runner.invoke(
        new_group, ["flow", "my-flow", "--consumes", event_type, "--to", to, *project]
    )
    lint = runner.invoke(flows_lint, project)
    tests = runner.invoke(flows_test_command, project)

    assert made.exit_code == 0, made.output
    assert lint.output == "no problems found\n", lint.output
    assert tests.exit_code == 0, tests.output
    assert tests.output == "3 passed in 1 file\n"


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("slak.post_message", "no connection 'slak' in platypus.yaml; did you mean 'slack'?"),
        (
            "slack.post_mesage",
            "connection 'slack' has no action 'post_mesage'; did you mean 'post_message'?",
        ),
        ("slack", "write CONNECTION.ACTION"),
        ("okta_x.find_user", "no connection 'okta_x' in platypus.yaml; did you mean 'okta'?"),
    ],
)
def test_a_wrong_to_is_refused_with_a_did_you_mean_and_writes_nothing(
    every_connection: Path, to: str, message: str
) -> None:
    result = CliRunner().invoke(
        new_group, ["flow", "x", "--to", to, "--project", str(every_connection)]
    )

    assert result.exit_code == 2
    assert message in result.output
    assert not (every_connection / "flows").exists()


@pytest.mark.parametrize("event_type", _TYPES)
def test_the_salesforce_query_scaffold_binds_its_where_to_a_field_of_the_event(
    every_connection: Path, event_type: str
) -> None:
    project = ["--project", str(every_connection)]
    args = ["flow", "q", "--consumes", event_type, "--to", "salesforce.query", *project]
    CliRunner().invoke(new_group, args)
    lint = CliRunner().invoke(flows_lint, project)

    step = yaml.safe_load((every_connection / "flows" / "q.yaml").read_text())["steps"][0]
    event = json.loads((every_connection / "samples" / "q.event.json").read_text())
    (field,) = step["payload"]

    assert lint.output == "no problems found\n", lint.output
    assert step["params"]["soql"].startswith("SELECT Id, Name FROM Account WHERE ")
    assert step["params"]["soql"].endswith(f" = :{field} LIMIT 1")
    assert step["payload"] == {field: f"data.{field}"}
    assert isinstance(event["data"][field], str)
    # The adapter binds it from the payload: a quoted literal, the query runnable as is.
    bound = bind(step["params"]["soql"], {field: event["data"][field]})
    assert bound.endswith(f" = '{event['data'][field]}' LIMIT 1")
