"""The schema registry and the built-in schemas: lookup, validation, masking, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError, EventValidationError, SchemaError
from platypus.redaction import MASK
from platypus.schema import (
    PERSONAL_DATA_KEY,
    EventSchema,
    PersonalData,
    event_schema,
)
from platypus.schema_registry import SchemaRegistry
from platypus_schemas.sales import OpportunityClosedWon

CLOSED_WON = "sales.opportunity.closed_won.v1"
INVOICE = "finance.invoice.posted.v1"
HIRED = "people.worker.hired.v1"


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.default()


def closed_won(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "opportunity_id": "0065g00000ABCDE",
        "account_id": "0015g00000ABCDE",
        "account_name": "Acme",
        "amount": "1500.00",
        "currency": "EUR",
        "close_date": "2024-05-01",
        "owner_email": "owner@example.com",
        "billing_contact": {"name": "Alice Smith", "email": "alice@example.com"},
        "line_items": [
            {"product_code": "P-1", "quantity": 2, "unit_price": "750", "currency": "EUR"}
        ],
    }
    data.update(changes)
    return data


def event(data: Any, event_type: str = CLOSED_WON) -> CloudEvent:
    return CloudEvent(
        specversion="1.0", id="evt-1", source="/sf", type=event_type, subject="s", data=data
    )


def invalid(registry: SchemaRegistry, data: Any, event_type: str = CLOSED_WON) -> Any:
    with pytest.raises(EventValidationError) as caught:
        registry.validate(event(data, event_type))
    return caught.value


# -- declaring and registering -------------------------------------------------------


def test_default_registry_has_the_built_in_types(registry: SchemaRegistry) -> None:
    types = [schema.type for schema in registry]
    assert {CLOSED_WON, INVOICE, HIRED} <= set(types)
    assert types == sorted(types)
    assert len(registry) == len(types)
    assert CLOSED_WON in registry
    assert "sales.opportunity.closed_won.v2" not in registry


def test_event_schema_attaches_name_version_and_first_docstring_paragraph() -> None:
    schema = registry_get(CLOSED_WON)
    assert (schema.name, schema.version, schema.model) == (
        "sales.opportunity.closed_won",
        1,
        OpportunityClosedWon,
    )
    assert (
        schema.description == "A Salesforce opportunity moved to Closed Won, with its line items."
    )


def registry_get(event_type: str) -> EventSchema:
    return SchemaRegistry.default().get(event_type)


def test_event_schema_versions_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        event_schema("x.y", version=0)


def test_type_is_name_with_version_suffix() -> None:
    assert EventSchema("a.b", 3, BaseModel).type == "a.b.v3"


def test_registering_the_same_type_with_another_model_is_a_configuration_error() -> None:
    @event_schema("sales.opportunity.closed_won", version=1)
    class Impostor(BaseModel):
        x: int

    registry = SchemaRegistry.default()
    with pytest.raises(ConfigurationError, match="declared twice") as caught:
        registry.register_model(Impostor)
    assert "OpportunityClosedWon" in str(caught.value)
    assert "Impostor" in str(caught.value)
    assert registry.get(CLOSED_WON).model is OpportunityClosedWon


def test_registering_the_same_model_twice_is_harmless() -> None:
    registry = SchemaRegistry()
    registry.register_model(OpportunityClosedWon)
    registry.register_model(OpportunityClosedWon)
    assert len(registry) == 1


def test_register_model_refuses_an_undecorated_model() -> None:
    class Plain(BaseModel):
        x: int

    with pytest.raises(ConfigurationError, match="decorate it with @event_schema"):
        SchemaRegistry().register_model(Plain)


def test_a_subclass_of_a_schema_is_not_itself_a_schema() -> None:
    class Sub(OpportunityClosedWon):
        pass

    with pytest.raises(ConfigurationError):
        SchemaRegistry().register_model(Sub)


def test_register_module_finds_every_declared_schema() -> None:
    found = SchemaRegistry().register_module("platypus_schemas.sales")
    assert sorted(s.type for s in found) == [
        "sales.account.upserted.v1",
        CLOSED_WON,
        "sales.quote.accepted.v1",
    ]


def test_register_module_that_cannot_be_imported_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot import schema module 'no_such_mod_x'"):
        SchemaRegistry().register_module("no_such_mod_x")


def test_unknown_type_lookup_suggests_the_closest_type(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaError, match=r"did you mean 'sales\.opportunity\.closed_won\.v1'\?"):
        registry.get("sales.opportunity.closed_won.v2")


def test_unknown_type_without_a_close_match_points_to_the_list(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaError, match="`platypus schemas list` shows them") as caught:
        registry.get("zzz")
    assert "did you mean" not in str(caught.value)


# -- personal data ---------------------------------------------------------------------


def test_personal_paths_of_closed_won(registry: SchemaRegistry) -> None:
    assert registry.personal_paths(CLOSED_WON) == {
        "owner_email",
        "billing_contact.name",
        "billing_contact.email",
        "billing_contact.phone",
    }


def test_personal_paths_of_invoice_and_hire(registry: SchemaRegistry) -> None:
    assert registry.personal_paths(INVOICE) == {"bill_to_email"}
    assert registry.personal_paths(HIRED) == {
        "first_name",
        "last_name",
        "work_email",
        "personal_email",
        "date_of_birth",
    }


def test_personal_paths_of_list_items_use_star() -> None:
    @event_schema("test.people.listed", version=1)
    class Listed(BaseModel):
        contacts: list[Annotated[str, PersonalData]]

    registry = SchemaRegistry()
    registry.register_model(Listed)
    assert registry.personal_paths("test.people.listed.v1") == {"contacts[*]"}


def test_personal_paths_of_unknown_type_are_empty(registry: SchemaRegistry) -> None:
    assert registry.personal_paths("nope.v1") == frozenset()


# -- validation ------------------------------------------------------------------------


def test_validate_returns_the_model(registry: SchemaRegistry) -> None:
    model = registry.validate(event(closed_won()))
    assert isinstance(model, OpportunityClosedWon)
    assert model.line_items[0].quantity == 2


def test_validation_error_paths_are_prefixed_with_data(registry: SchemaRegistry) -> None:
    bad = closed_won(line_items=[{"product_code": "P", "quantity": 0, "unit_price": 1}])
    error = invalid(registry, bad)
    assert error.event_id == "evt-1"
    by_path = {e.path: e for e in error.errors}
    assert set(by_path) == {"data.line_items[0].quantity", "data.line_items[0].currency"}
    assert by_path["data.line_items[0].quantity"].expected == "gt=0"
    assert by_path["data.line_items[0].quantity"].got == "0"
    assert by_path["data.line_items[0].currency"].expected == "a value (field is required)"
    assert by_path["data.line_items[0].currency"].got == ""
    assert "2 errors" in str(error)


def test_one_error_is_counted_in_the_singular(registry: SchemaRegistry) -> None:
    error = invalid(registry, closed_won(currency="eur"))
    assert [e.path for e in error.errors] == ["data.currency"]
    assert str(error).endswith("(1 error)")


def test_got_of_a_personal_field_is_masked(registry: SchemaRegistry) -> None:
    error = invalid(registry, closed_won(owner_email=12345))
    assert [(e.path, e.got) for e in error.errors] == [("data.owner_email", MASK)]


def test_got_of_a_nested_personal_field_is_masked(registry: SchemaRegistry) -> None:
    bad = closed_won(billing_contact={"name": ["Alice Smith"], "email": "a@example.com"})
    error = invalid(registry, bad)
    assert [(e.path, e.got) for e in error.errors] == [("data.billing_contact.name", MASK)]


def test_got_of_a_non_personal_field_is_shown(registry: SchemaRegistry) -> None:
    error = invalid(registry, closed_won(account_name=""))
    assert [(e.path, e.got) for e in error.errors] == [("data.account_name", "''")]


def test_extra_fields_are_refused(registry: SchemaRegistry) -> None:
    error = invalid(registry, closed_won(stage="Closed Won"))
    assert [e.path for e in error.errors] == ["data.stage"]


def test_validate_unknown_type_reports_the_type_with_a_suggestion(
    registry: SchemaRegistry,
) -> None:
    error = invalid(registry, {}, event_type="finance.invoice.posted.v2")
    assert "did you mean 'finance.invoice.posted.v1'?" in str(error)
    assert [(e.path, e.got) for e in error.errors] == [("type", "'finance.invoice.posted.v2'")]


def test_invoice_and_hire_validate(registry: SchemaRegistry) -> None:
    invoice = {
        "invoice_id": "i",
        "invoice_number": "INV-1",
        "account_number": "A-1",
        "invoice_date": "2024-05-01",
        "due_date": "2024-05-31",
        "currency": "EUR",
        "amount": 10,
        "balance": 10,
        "lines": [{"charge_name": "c", "amount": 10}],
    }
    assert registry.validate(event(invoice, INVOICE)).model_dump()["status"] == "Posted"
    hire = {
        "worker_id": "w",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "work_email": "ada@example.com",
        "hire_date": "2024-05-01",
        "position": {"title": "t", "department": "d", "location": "l"},
    }
    assert registry.validate(event(hire, HIRED)).model_dump()["worker_type"] == "employee"


def test_invoice_needs_at_least_one_line(registry: SchemaRegistry) -> None:
    error = invalid(registry, {"lines": []}, event_type=INVOICE)
    assert "data.lines" in [e.path for e in error.errors]


# -- JSON Schema export ----------------------------------------------------------------


def test_json_schema_carries_platypus_metadata(registry: SchemaRegistry) -> None:
    schema = registry.json_schema(CLOSED_WON)
    assert schema["x-event-type"] == CLOSED_WON
    assert schema["x-version"] == 1
    assert schema["$id"] == "urn:platypus:schema:sales.opportunity.closed_won.v1"
    assert schema["properties"]["owner_email"][PERSONAL_DATA_KEY] is True
    assert PERSONAL_DATA_KEY not in schema["properties"]["account_name"]


def test_json_schema_of_unknown_type_is_a_schema_error(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaError):
        registry.json_schema("nope.v1")


def test_export_writes_one_file_per_type(registry: SchemaRegistry, tmp_path: Path) -> None:
    written = registry.export(tmp_path / "out")
    assert [p.name for p in written] == [f"{s.type}.json" for s in registry]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in written]
    for path in written:
        content = json.loads(path.read_text())
        assert content["x-event-type"] == path.name.removesuffix(".json")
        assert content == registry.json_schema(content["x-event-type"])


# -- check_event: the envelope and the data from the stored bytes, strictly ---------------


def _whole(data: Any, event_type: str = CLOSED_WON, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/test",
        "type": event_type,
        "subject": "0065g00000ABCDE",
        "data": data,
        **attributes,
    }


def _check(registry: SchemaRegistry, event: dict[str, Any]) -> bytes:
    return registry.check_event(event, json.dumps(event).encode())


def test_check_event_reports_envelope_and_data_errors_together(registry: SchemaRegistry) -> None:
    event = _whole(closed_won(amount="lots"), time="yesterday")
    with pytest.raises(EventValidationError) as caught:
        _check(registry, event)
    assert sorted(e.path for e in caught.value.errors) == ["data.amount", "time"]
    assert "not a valid CloudEvent" in str(caught.value)


def test_check_event_of_an_unknown_type_reports_the_envelope_too(registry: SchemaRegistry) -> None:
    event = _whole({}, event_type="sales.nope.v1")
    del event["subject"]
    with pytest.raises(EventValidationError) as caught:
        _check(registry, event)
    assert sorted(e.path for e in caught.value.errors) == ["subject", "type"]


def test_check_event_masks_personal_data_but_not_the_envelope(registry: SchemaRegistry) -> None:
    event = _whole(closed_won(owner_email=7), platypusx=[1])
    with pytest.raises(EventValidationError) as caught:
        _check(registry, event)
    got = {e.path: e.got for e in caught.value.errors}
    assert got["data.owner_email"] == MASK


class _Stamp(BaseModel):
    at: Any = None


@event_schema("test.nested.values", version=1)
class _Nested(BaseModel):
    from datetime import datetime as _dt
    from decimal import Decimal as _Dec

    when: _dt
    prices: list[_Dec]
    by_name: dict[str, _Dec] = {}
    maybe: _Dec | None = None
    stamps: list[_Stamp] = []


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"when": "2026", "prices": []}, "data.when"),
        ({"when": "2026-01-02T10:00:00", "prices": []}, "data.when"),
        ({"when": "2026-01-02T10:00:00Z", "prices": [1, " 2"]}, "data.prices[1]"),
        ({"when": "2026-01-02T10:00:00Z", "prices": [], "by_name": {"a": "1e2"}}, "data.by_name.a"),
        ({"when": "2026-01-02T10:00:00Z", "prices": [], "maybe": "1_0"}, "data.maybe"),
    ],
)
def test_what_strict_mode_still_converts_is_refused_where_it_is(
    data: dict[str, Any], path: str
) -> None:
    registry = SchemaRegistry([])
    registry.register_model(_Nested)
    with pytest.raises(EventValidationError) as caught:
        _check(registry, _whole(data, "test.nested.values.v1"))
    assert [e.path for e in caught.value.errors] == [path]


def test_decimal_text_and_rfc_3339_times_are_taken_as_sent() -> None:
    registry = SchemaRegistry([])
    registry.register_model(_Nested)
    data = {"when": "2026-01-02t10:00:00.5+01:00", "prices": ["-0.50", 2, 3.25], "maybe": None}
    event = _whole(data, "test.nested.values.v1")
    assert _check(registry, event) == json.dumps(event).encode()
