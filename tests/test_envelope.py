"""The CloudEvents envelope: required fields, the spec version, extension names."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from platypus.envelope import CloudEvent, data_kind, from_binary, stored_form


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


def test_data_and_data_base64_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="data and data_base64 are both set"):
        CloudEvent.model_validate(wire(data_base64="eyJhIjoxfQ=="))


def test_data_base64_alone_is_an_event_with_binary_data() -> None:
    event = CloudEvent.model_validate(wire(data=..., data_base64="AP8=", datacontenttype="a/b"))
    assert event.data_base64 == "AP8="


@pytest.mark.parametrize(
    "time",
    ["2024-05-01T12:30:00", "2024-05-01", "2024-05-01T12:30Z", "2024", 0, "2024-02-30T00:00:00Z"],
)
def test_time_is_rfc_3339_with_seconds_and_an_offset(time: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate_json(json.dumps(wire(time=time)), strict=True)
    assert caught.value.errors()[0]["loc"] == ("time",)


@pytest.mark.parametrize("value", ["v", True, 0, 2**31 - 1, -(2**31), None])
def test_extension_values_of_cloudevents_types_are_kept(value: Any) -> None:
    assert CloudEvent.model_validate(wire(ext=value)).model_extra == {"ext": value}


@pytest.mark.parametrize("value", [1.5, 2**31, {"a": 1}, [1], "a\x00b"])
def test_extension_values_of_other_types_are_refused(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate(wire(ext=value))
    assert [e["loc"] for e in caught.value.errors()] == [("ext",)]


@pytest.mark.parametrize("field", ["id", "type", "subject", "source"])
def test_attributes_hold_no_control_characters(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate(wire(**{field: "a\x07b"}))
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        (None, "json"),
        ("application/json", "json"),
        ("application/vnd.api+json; charset=utf-8", "json"),
        ("text/plain", "text"),
        ("TEXT/XML", "text"),
        ("application/soap+xml", "text"),
        ("application/x-www-form-urlencoded", "text"),
        ("application/octet-stream", "binary"),
        ("application/pdf", "binary"),
    ],
)
def test_data_is_carried_as_its_content_type_says(content_type: str | None, kind: str) -> None:
    assert data_kind(content_type) == kind


def test_the_stored_form_drops_unset_attributes_and_decodes_data_base64() -> None:
    event = wire(data=..., subject="s", dataschema=None, ext=None, datacontenttype="text/csv")
    event["data_base64"] = base64.b64encode("a,b\nç,d".encode()).decode()
    assert stored_form(event) == {
        **wire(data=..., subject="s", datacontenttype="text/csv"),
        "data": "a,b\nç,d",
    }


def test_data_base64_without_a_content_type_stays_bytes() -> None:
    event = wire(data=..., data_base64="AP8=")
    assert stored_form(dict(event)) == event


def test_the_stored_form_of_a_binary_mode_event() -> None:
    attributes = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "subject": "k"}
    assert from_binary(attributes, "application/json", b'{"a": 1.5}') == {
        **attributes,
        "datacontenttype": "application/json",
        "data": {"a": ANY},
    }
    assert from_binary(attributes, None, b"") == attributes
    assert from_binary(attributes, "image/png", b"\x89PNG")["data_base64"] == "iVBORw=="


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
