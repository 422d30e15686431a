"""The catalog's event schemas: versioned, closed, personal data marked, v1 kept compatible."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from platypus.cli import main
from platypus.schema_registry import SchemaRegistry
from tests.catalog.conftest import REPO

# The schemas as exported before the catalog: `platypus schemas export` of d8544bd.
BASELINE = Path(__file__).parent / "schema_baseline"

PERSONAL = {
    "sales.opportunity.closed_won.v1": {"owner_email", "billing_contact.email"},
    "sales.account.upserted.v1": {"owner_email", "primary_contact.email"},
    "sales.quote.accepted.v1": {"accepted_by.name", "accepted_by.email"},
    "finance.invoice.posted.v1": {"bill_to_email"},
    "finance.subscription.created.v1": {"sold_to_email"},
    "finance.payment.received.v1": {"payer_email"},
    "people.worker.hired.v1": {"first_name", "last_name", "work_email", "date_of_birth"},
    "people.worker.terminated.v1": {"first_name", "last_name", "work_email", "reason"},
    "people.worker.changed.v1": {"first_name", "last_name", "work_email"},
    "people.candidate.hired.v1": {"first_name", "last_name", "personal_email", "phone"},
    "people.worker.started.v1": {"work_email", "first_name", "last_name"},
    "finance.coupa.invoice.approved.v1": {"requester_email"},
}


def test_the_catalog_event_types_are_registered() -> None:
    assert {schema.type for schema in SchemaRegistry.default()} >= set(PERSONAL)


@pytest.mark.parametrize(("event_type", "fields"), sorted(PERSONAL.items()))
def test_personal_data_is_marked(event_type: str, fields: set[str]) -> None:
    assert fields <= set(SchemaRegistry.default().personal_paths(event_type))


@pytest.mark.parametrize("event_type", sorted(PERSONAL))
def test_every_schema_refuses_unknown_fields(event_type: str) -> None:
    schema = next(s for s in SchemaRegistry.default() if s.type == event_type)
    assert schema.model.model_config.get("extra") == "forbid"


def test_the_existing_schemas_change_in_no_breaking_way(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(BASELINE, old)

    result = CliRunner().invoke(main, ["schemas", "check", str(old)])

    assert result.exit_code == 0, result.output
    assert "breaking" not in result.output.lower().replace("non-breaking", "")
    assert sorted(p.name for p in BASELINE.iterdir()) == [
        "finance.invoice.posted.v1.json",
        "people.worker.hired.v1.json",
        "sales.opportunity.closed_won.v1.json",
    ]
    assert REPO.joinpath("schemas").is_dir()
