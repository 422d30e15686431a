"""The catalog's flows: each linted clean, each with passing cases of every kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from platypus.cli import flows_lint
from platypus.envelope import CloudEvent
from platypus.schema_registry import SchemaRegistry
from platypus.testing import assert_flow_tests_pass
from tests.catalog.conftest import REPO

FLOWS = sorted(p for p in (REPO / "flows").glob("*.yaml") if not p.name.endswith(".test.yaml"))


def test_the_catalog_ships_the_quote_to_cash_and_people_flows() -> None:
    assert [p.stem for p in FLOWS] == [
        "coupa-invoice-to-netsuite",
        "hire-to-okta",
        "hire-to-onboarding",
        "invoice-to-netsuite",
        "opportunity-to-subscription",
        "payment-to-salesforce",
        "start-date-to-okta",
        "termination-to-access-removal",
        "termination-to-offboarding",
    ]


def test_every_flow_test_case_passes() -> None:
    assert_flow_tests_pass(REPO / "flows")


@pytest.mark.parametrize("flow", FLOWS, ids=lambda p: p.stem)
def test_every_flow_passes_lint(flow: Path) -> None:
    result = CliRunner().invoke(flows_lint, [str(flow), "--project", str(REPO)])
    assert result.exit_code == 0, result.output
    assert result.output == "no problems found\n"


@pytest.mark.parametrize("flow", FLOWS, ids=lambda p: p.stem)
def test_every_flow_has_a_happy_a_filtered_and_a_failing_case(flow: Path) -> None:
    cases = yaml.safe_load(flow.with_name(f"{flow.stem}.test.yaml").read_text())["cases"]
    assert any(c.get("calls") and not c.get("fail") for c in cases), "no happy path"
    assert any(c.get("filtered") for c in cases), "no filtered case"
    assert any(c.get("dead_lettered") for c in cases), "no failure"


@pytest.mark.parametrize("flow", FLOWS, ids=lambda p: p.stem)
def test_every_flow_has_a_valid_sample_event_to_send(flow: Path) -> None:
    spec = yaml.safe_load(flow.read_text())
    text = (REPO / "samples" / f"{flow.stem}.event.json").read_text()
    assert text.count("\n") == 1  # one JSON line: `platypus send` posts it as it is
    event = CloudEvent.model_validate_json(text)
    assert event.type == spec["consumes"]
    SchemaRegistry.default().validate(event)  # raises if the data does not fit


def test_the_catalog_page_shows_the_graph_of_the_flows_as_they_are() -> None:
    from platypus.authoring.cli import flows_graph_command

    result = CliRunner().invoke(flows_graph_command, ["--project", str(REPO)])
    page = (REPO / "docs" / "catalog.md").read_text()

    assert result.exit_code == 0, result.output
    assert result.output.startswith("```mermaid\n")
    assert result.output in page
