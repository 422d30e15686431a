"""Dead-letter records: the original bytes, Kafka Connect headers, scrubbed details."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platypus.core import Failed, classify
from platypus.deadletter import (
    CONNECT_HEADERS,
    DeadLetter,
    dead_letter,
    describe_headers,
    mask_secrets,
)
from platypus.exceptions import FieldError, PermanentError
from platypus.records import Record
from platypus.redaction import MASK

VALUE = b'{"specversion":"1.0","id":"evt-1","data":{"owner_email":"owner@example.com"}}'
SOURCE = Record(topic="platypus.events", partition=3, offset=1042, key="006A", value=VALUE)
FIRST = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
LAST = datetime(2024, 5, 1, 12, 5, 30, tzinfo=UTC)


def make(failure: Failed, **kwargs: Any) -> DeadLetter:
    args: dict[str, Any] = {
        "flow": "closed-won-to-billing",
        "flow_version": "abc123",
        "step": "notify-billing",
        "event_id": "evt-1",
        "event_type": "sales.opportunity.closed_won.v1",
        "attempts": 5,
        "first_failure": FIRST,
        "last_failure": LAST,
    }
    args.update(kwargs)
    return dead_letter(SOURCE, failure, **args)


FAILED = Failed(
    error_class="platypus.exceptions.RetryableError",
    message="503 Service Unavailable",
    retryable=True,
)


def test_value_and_key_are_the_original_record_unchanged() -> None:
    record = make(FAILED)
    assert record.value is VALUE
    assert record.key == "006A"


def test_kafka_connect_headers_say_where_the_event_came_from_and_what_failed() -> None:
    headers = make(FAILED).describe()
    assert headers["__connect.errors.topic"] == "platypus.events"
    assert headers["__connect.errors.partition"] == "3"
    assert headers["__connect.errors.offset"] == "1042"
    assert headers["__connect.errors.exception.class.name"] == "platypus.exceptions.RetryableError"
    assert headers["__connect.errors.exception.message"] == "503 Service Unavailable"
    assert headers["__connect.errors.connector.name"] == "closed-won-to-billing"


def test_stage_is_task_put_for_a_step_and_transformation_without_one() -> None:
    assert make(FAILED).header("__connect.errors.stage") == "TASK_PUT"
    assert make(FAILED, step="").header("__connect.errors.stage") == "TRANSFORMATION"


def test_platypus_headers_name_the_flow_step_event_and_attempts() -> None:
    headers = make(FAILED).describe()
    assert headers["platypus.flow"] == "closed-won-to-billing"
    assert headers["platypus.flow.version"] == "abc123"
    assert headers["platypus.step"] == "notify-billing"
    assert headers["platypus.event.id"] == "evt-1"
    assert headers["platypus.event.type"] == "sales.opportunity.closed_won.v1"
    assert headers["platypus.attempts"] == "5"
    assert headers["platypus.error.retryable"] == "true"
    assert headers["platypus.errors"] == []


def test_failure_times_are_utc_iso_with_milliseconds_and_z() -> None:
    headers = make(FAILED).describe()
    assert headers["platypus.first.failure"] == "2024-05-01T12:00:00.123Z"
    assert headers["platypus.last.failure"] == "2024-05-01T12:05:30.000Z"


def test_failure_times_in_other_zones_are_converted_and_naive_ones_taken_as_utc() -> None:
    plus_two = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    record = make(FAILED, first_failure=plus_two, last_failure=datetime(2024, 5, 1, 9, 0))
    assert record.header("platypus.first.failure") == "2024-05-01T12:00:00.000Z"
    assert record.header("platypus.last.failure") == "2024-05-01T09:00:00.000Z"


def test_every_header_value_is_utf8_bytes() -> None:
    for name, value in make(FAILED).headers:
        assert isinstance(name, str)
        assert isinstance(value, bytes)
        value.decode("utf-8")


def test_errors_header_is_a_json_list_of_path_message_expected_got() -> None:
    failure = Failed(
        error_class="platypus.exceptions.EventValidationError",
        message="payload does not fit",
        retryable=False,
        errors=(FieldError("payload.qty", "must be > 0", expected="gt=0", got="0"),),
    )
    record = make(failure)
    raw = record.header("platypus.errors")
    assert raw is not None
    assert json.loads(raw) == [
        {"path": "payload.qty", "message": "must be > 0", "expected": "gt=0", "got": "0"}
    ]
    assert record.header("platypus.error.retryable") == "false"


def test_personal_values_are_scrubbed_from_message_and_errors() -> None:
    failure = Failed(
        error_class="x.Error",
        message="vendor rejected owner@example.com for Alice Smith",
        retryable=False,
        errors=(
            FieldError(
                "payload.email",
                "owner@example.com is taken",
                expected="unique",
                got="'owner@example.com'",
            ),
        ),
    )
    headers = make(failure, personal={"owner@example.com", "Alice Smith"}).describe()
    assert headers["__connect.errors.exception.message"] == f"vendor rejected {MASK} for {MASK}"
    assert headers["platypus.errors"] == [
        {
            "path": "payload.email",
            "message": f"{MASK} is taken",
            "expected": "unique",
            "got": f"'{MASK}'",
        }
    ]


def test_error_location_is_kept_in_the_errors_header() -> None:
    from platypus.exceptions import SourceLocation

    error = FieldError("when", "bad", location=SourceLocation("f.yaml", 3, 7))
    failure = Failed(error_class="E", message="m", retryable=False, errors=(error,))
    assert make(failure).describe()["platypus.errors"][0]["location"] == "f.yaml:3:7"


def test_status_and_vendor_code_headers_only_when_set() -> None:
    names = {name for name, _ in make(FAILED).headers}
    assert "platypus.error.status.code" not in names
    assert "platypus.error.vendor.code" not in names
    failure = Failed(
        error_class="E", message="m", retryable=True, status_code=429, vendor_code="RATE_LIMIT"
    )
    record = make(failure)
    assert record.header("platypus.error.status.code") == "429"
    assert record.header("platypus.error.vendor.code") == "RATE_LIMIT"


def test_header_returns_none_when_absent_and_the_last_value_when_repeated() -> None:
    record = DeadLetter(key="k", value=b"", headers=[("a", b"1"), ("a", b"2")])
    assert record.header("a") == "2"
    assert record.header("b") is None


def test_describe_headers_round_trips_the_headers() -> None:
    record = make(FAILED, personal=())
    described = describe_headers(record.headers)
    assert [name for name, _ in record.headers] == list(described)
    for name, value in record.headers:
        expected = value.decode()
        if name == "platypus.errors":
            assert json.dumps(described[name]) == expected
        else:
            assert described[name] == expected


def test_describe_headers_without_errors_header_leaves_values_as_text() -> None:
    assert describe_headers([("a", b"[1]")]) == {"a": "[1]"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=20), st.integers(min_value=0, max_value=10**6))
def test_any_message_survives_the_headers_unchanged_without_personal_values(
    message: str, step: str, attempts: int
) -> None:
    failure = Failed(error_class="E", message=message, retryable=False)
    headers = make(failure, step=step, attempts=attempts).describe()
    assert headers["__connect.errors.exception.message"] == message
    assert headers["platypus.step"] == step
    assert headers["platypus.attempts"] == str(attempts)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Authorization", True),
        ("X-Api-Key", True),
        ("x-api_key", True),
        ("X-APIKEY", True),
        ("X-Auth-Token", True),
        ("client_secret", True),
        ("Password", True),
        ("Cookie", True),
        ("set-cookie", True),
        ("Content-Type", False),
        ("Cookie-Policy", False),
        ("X-Request-Id", False),
    ],
)
def test_mask_secrets_masks_credential_looking_headers(name: str, masked: bool) -> None:
    assert mask_secrets({name: "value"}) == {name: MASK if masked else "value"}


def test_an_unclassified_exception_carries_its_stacktrace_with_personal_values_masked() -> None:
    def adapter_bug() -> None:
        raise KeyError("ada.quill@example.com")

    try:
        adapter_bug()
    except KeyError as exc:
        failure = classify(exc)
    assert "adapter_bug" in failure.stacktrace
    letter = dead_letter(
        Record("platypus.events", 0, 7, "k", b"{}"),
        failure,
        flow="orders",
        flow_version="abc",
        step="create",
        event_id="evt-1",
        event_type="t.v1",
        attempts=1,
        first_failure=datetime(2026, 1, 1, tzinfo=UTC),
        last_failure=datetime(2026, 1, 1, tzinfo=UTC),
        personal={"ada.quill@example.com"},
    )
    trace = letter.header("__connect.errors.exception.stacktrace") or ""
    assert "adapter_bug" in trace
    assert "ada.quill@example.com" not in trace


class _VendorAdapter:
    """Stands in for an adapter's code path: the frames a classified error is raised in."""

    def call(self) -> None:
        self._answer()

    def _answer(self) -> None:
        raise PermanentError(
            "POST https://billing.example/orders answered 400 Bad Request: "
            '{"error": "no account for owner@example.com"}',
            status_code=400,
            vendor_code="NO_ACCOUNT",
        )


def test_a_classified_error_gets_a_short_trace_of_adapter_call_and_vendor_answer() -> None:
    try:
        _VendorAdapter().call()
    except PermanentError as exc:
        failure = classify(exc)
    letter = make(
        failure,
        attempts=1,
        call="billing.post",
        executing_class="platypus_adapters.http.HttpAdapter",
        personal={"owner@example.com"},
    )
    trace = letter.header("__connect.errors.exception.stacktrace") or ""
    lines = trace.splitlines()

    assert lines[0].startswith("platypus.exceptions.PermanentError: POST https://billing.example")
    assert "in flow 'closed-won-to-billing' (version abc123), step 'notify-billing'" in trace
    assert "calling billing.post (platypus_adapters.http.HttpAdapter), 1 attempt" in trace
    assert "the vendor answered status 400, code NO_ACCOUNT (not retryable)" in trace
    assert f"raised at {__name__}:_VendorAdapter._answer line" in trace
    assert f"called from {__name__}:_VendorAdapter.call line" in trace
    assert "owner@example.com" not in trace
    assert MASK in trace
    assert "Traceback" not in trace  # short: no runtime frames
    assert len(lines) <= 8


def test_a_mapping_failure_is_a_transformation_with_a_trace_naming_the_step() -> None:
    failure = Failed(
        error_class="platypus.exceptions.MappingError",
        message="data.amount: not a number",
        retryable=False,
        stage="TRANSFORMATION",
    )
    letter = make(failure, attempts=1)
    assert letter.header("__connect.errors.stage") == "TRANSFORMATION"
    assert letter.header("__connect.errors.class.name") == "platypus.expression.Expression"
    trace = letter.header("__connect.errors.exception.stacktrace") or ""
    assert trace.splitlines()[0] == "platypus.exceptions.MappingError: data.amount: not a number"
    assert "step 'notify-billing'" in trace


def test_an_unreadable_record_is_a_value_converter_failure_with_its_field_errors() -> None:
    error = FieldError("data.amount", "Input should be a valid decimal", got=MASK)
    failure = Failed(
        error_class="platypus.exceptions.EventValidationError",
        message="data does not match its schema",
        retryable=False,
        errors=(error,),
    )
    letter = make(failure, flow="", flow_version="", step="", attempts=1)
    headers = letter.describe()
    assert headers["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert headers["__connect.errors.connector.name"] == "platypus"
    assert headers["__connect.errors.class.name"] == "platypus.schema_registry.SchemaRegistry"
    trace = headers["__connect.errors.exception.stacktrace"]
    assert "reading platypus.events partition 3 offset 1042" in trace
    assert "data.amount: Input should be a valid decimal" in trace


# Kafka Connect's Stage enum (org.apache.kafka.connect.runtime.errors.Stage).
CONNECT_STAGES = {
    "TASK_POLL",
    "TASK_PUT",
    "TRANSFORMATION",
    "KEY_CONVERTER",
    "VALUE_CONVERTER",
    "HEADER_CONVERTER",
    "KAFKA_PRODUCE",
    "KAFKA_CONSUME",
}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # a step's call
        {"step": ""},  # a flow's condition
        {"flow": "", "flow_version": "", "step": ""},  # a record no flow got to
    ],
    ids=["step", "flow", "unreadable"],
)
def test_every_dead_letter_carries_all_ten_connect_headers_with_connect_types(
    kwargs: dict[str, Any],
) -> None:
    letter = make(FAILED, **kwargs)
    names = [name for name, _ in letter.headers if name.startswith("__connect.errors.")]
    assert names == list(CONNECT_HEADERS)
    headers = letter.describe()
    for name in CONNECT_HEADERS:
        assert headers[name], f"{name} is empty"
    for name in ("partition", "offset", "task.id"):
        int(headers[f"__connect.errors.{name}"])  # Connect writes String.valueOf(int/long)
    assert headers["__connect.errors.stage"] in CONNECT_STAGES
