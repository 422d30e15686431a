"""The CloudEvents envelope: required fields, the spec version, extension names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from platypus.envelope import CloudEvent


def wire(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/salesforce",
        "type": "sales.opportunity.closed_won.v1",
        "subject": "0065g00000ABCDE",
        "data": {"amount": 10},
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def test_a_complete_event_is_accepted_with_defaults_for_optional_fields() -> None:
    event = CloudEvent.model_validate(wire())
    assert event.id == "evt-1"
    assert event.data == {"amount": 10}
    assert event.time is None
    assert event.datacontenttype == "application/json"
    assert event.dataschema is None


@pytest.mark.parametrize("field", ["specversion", "id", "source", "type", "subject"])
def test_each_required_field_is_required(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate(wire(**{field: ...}))
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]
    assert caught.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize("field", ["id", "source", "type", "subject"])
def test_required_strings_cannot_be_empty(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate(wire(**{field: ""}))
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("version", ["0.3", "1", "1.0.0", "2.0", 1.0])
def test_specversion_other_than_1_0_is_refused(version: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate(wire(specversion=version))
    assert caught.value.errors()[0]["loc"] == ("specversion",)


def test_time_is_parsed_as_a_timezone_aware_datetime() -> None:
    event = CloudEvent.model_validate(wire(time="2024-05-01T12:30:00Z"))
    assert event.time == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize("name", ["traceparent", "partitionkey", "x1", "a" * 40])
def test_valid_extension_attributes_are_kept_as_extra(name: str) -> None:
    event = CloudEvent.model_validate(wire(**{name: "v"}))
    assert event.model_extra == {name: "v"}


@pytest.mark.parametrize("name", ["traceParent", "trace_parent", "trace-parent", "a" * 41, "é"])
def test_extension_names_must_be_lowercase_letters_and_digits(name: str) -> None:
    with pytest.raises(ValidationError, match="lower-case letters and digits only"):
        CloudEvent.model_validate(wire(**{name: "v"}))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=45))
def test_extension_name_rule_matches_the_spec(name: str) -> None:
    known = {"specversion", "id", "source", "type", "subject", "time"}
    known |= {"datacontenttype", "dataschema", "data"}
    if name in known or name == "data_base64":
        return
    spec_ok = len(name) <= 40 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in name)
    try:
        CloudEvent.model_validate(wire(**{name: "v"}))
    except ValidationError:
        assert not spec_ok
    else:
        assert spec_ok


def test_data_base64_is_refused_with_a_hint_to_use_data() -> None:
    with pytest.raises(ValidationError, match="data_base64 is not supported"):
        CloudEvent.model_validate(wire(data=..., data_base64="eyJhIjoxfQ=="))


def test_key_is_the_subject() -> None:
    assert CloudEvent.model_validate(wire(subject="worker-42")).key == "worker-42"


def test_the_event_is_frozen() -> None:
    event = CloudEvent.model_validate(wire())
    with pytest.raises(ValidationError):
        event.subject = "other"  # type: ignore[misc]


def test_dumping_keeps_extensions_and_data_for_a_round_trip() -> None:
    event = CloudEvent.model_validate(wire(traceparent="00-abc"))
    again = CloudEvent.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.model_extra == {"traceparent": "00-abc"}
