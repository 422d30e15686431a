"""Dead-letter records: the original event, unchanged, with headers that say why.

Every record carries all ten headers of Kafka Connect's dead-letter queue
(``__connect.errors.*``, `CONNECT_HEADERS`), with Connect's values and types, so
existing Kafka tooling reads them; the rest are under ``platypus.``. Every header
value is UTF-8 text, numbers in decimal; ``platypus.errors`` is a JSON list of
``{path, message, expected, got}``.

The record's value is the event exactly as it was accepted, so it can be
replayed. Everything derived from it or from the vendor's answer (the message,
the stack trace, the vendor's code, each error's ``message`` and ``got``) is
scrubbed of the event's personal-data values, also where the vendor changed
them (`platypus.redaction.Scrubber`), before it is written. Headers the source
record carried under a credential-looking name are masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from platypus.core import Failed
from platypus.exceptions import FieldError
from platypus.records import Record
from platypus.redaction import MASK, Scrubber, is_secret_name, scrubber

__all__ = [
    "CONNECT_HEADERS",
    "DeadLetter",
    "Headers",
    "dead_letter",
    "describe_headers",
    "mask_secrets",
]

Headers = list[tuple[str, bytes]]

# Kafka Connect's names (DeadLetterQueueReporter), in the order Connect writes them.
TOPIC = "__connect.errors.topic"
PARTITION = "__connect.errors.partition"
OFFSET = "__connect.errors.offset"
CONNECTOR = "__connect.errors.connector.name"
TASK_ID = "__connect.errors.task.id"
STAGE = "__connect.errors.stage"
EXECUTING_CLASS = "__connect.errors.class.name"
EXCEPTION_CLASS = "__connect.errors.exception.class.name"
EXCEPTION_MESSAGE = "__connect.errors.exception.message"
STACKTRACE = "__connect.errors.exception.stacktrace"

CONNECT_HEADERS = (
    TOPIC,
    PARTITION,
    OFFSET,
    CONNECTOR,
    TASK_ID,
    STAGE,
    EXECUTING_CLASS,
    EXCEPTION_CLASS,
    EXCEPTION_MESSAGE,
    STACKTRACE,
)
"""The ten headers Kafka Connect puts on a dead letter; every record here has them all."""

# Connect's Stage names for where a record failed.
STAGE_VALUE_CONVERTER = "VALUE_CONVERTER"  # not an event, or not valid against its schema
STAGE_TRANSFORMATION = "TRANSFORMATION"  # a flow's condition or a step's mapping
STAGE_TASK_PUT = "TASK_PUT"  # the adapter call

NO_FLOW_CONNECTOR = "platypus"
"""``connector.name`` of a record no flow got to run (unreadable, invalid)."""

_STAGE_CLASSES = {
    STAGE_VALUE_CONVERTER: "platypus.schema_registry.SchemaRegistry",
    STAGE_TRANSFORMATION: "platypus.expression.Expression",
    STAGE_TASK_PUT: "platypus.adapter.Adapter",
}

FLOW = "platypus.flow"
FLOW_VERSION = "platypus.flow.version"
STEP = "platypus.step"
EVENT_ID = "platypus.event.id"
EVENT_TYPE = "platypus.event.type"
ATTEMPTS = "platypus.attempts"
FIRST_FAILURE = "platypus.first.failure"
LAST_FAILURE = "platypus.last.failure"
RETRYABLE = "platypus.error.retryable"
STATUS_CODE = "platypus.error.status.code"
VENDOR_CODE = "platypus.error.vendor.code"
ERRORS = "platypus.errors"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record for the dead-letter topic: ``value`` is the original event, unchanged."""

    key: str
    value: bytes
    headers: Headers

    def header(self, name: str) -> str | None:
        """The value of header ``name`` as text (the last one if repeated)."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value.decode()
        return found

    def describe(self) -> dict[str, Any]:
        """The headers as a dict, ``platypus.errors`` parsed, for display and tests."""
        return describe_headers(self.headers)


def dead_letter(
    source: Record,
    failure: Failed,
    *,
    flow: str,
    flow_version: str,
    step: str,
    event_id: str,
    event_type: str,
    attempts: int,
    first_failure: datetime,
    last_failure: datetime,
    personal: Iterable[str] | Scrubber = (),
    call: str = "",
    executing_class: str = "",
    task_id: int = 0,
) -> DeadLetter:
    """Build the dead-letter record for ``source`` after ``failure``.

    ``personal`` holds the event's personal-data values (or their `Scrubber`):
    they are masked in the message, the stack trace, the vendor code and each
    field error. ``call`` is the step's ``connection.action`` and
    ``executing_class`` the class that failed (the adapter's, for a call), as
    Connect's ``class.name``; ``task_id`` is Connect's task number (one task per
    flow here: 0).
    """
    values = scrubber(personal)
    message = values.text(failure.message)
    stage = failure.stage or (
        STAGE_VALUE_CONVERTER if not flow else STAGE_TASK_PUT if step else STAGE_TRANSFORMATION
    )
    trace = _trace(
        failure,
        source,
        flow=flow,
        flow_version=flow_version,
        step=step,
        call=call,
        executing_class=executing_class,
        attempts=attempts,
    )
    text: list[tuple[str, str]] = [
        (TOPIC, source.topic),
        (PARTITION, str(source.partition)),
        (OFFSET, str(source.offset)),
        (CONNECTOR, flow or NO_FLOW_CONNECTOR),
        (TASK_ID, str(task_id)),
        (STAGE, stage),
        (EXECUTING_CLASS, executing_class or _STAGE_CLASSES.get(stage, "")),
        (EXCEPTION_CLASS, failure.error_class),
        (EXCEPTION_MESSAGE, message),
        (STACKTRACE, values.text(trace)),
        (FLOW, flow),
        (FLOW_VERSION, flow_version),
        (STEP, step),
        (EVENT_ID, event_id),
        (EVENT_TYPE, event_type),
        (ATTEMPTS, str(attempts)),
        (FIRST_FAILURE, _iso(first_failure)),
        (LAST_FAILURE, _iso(last_failure)),
        (RETRYABLE, "true" if failure.retryable else "false"),
        (ERRORS, json.dumps([_scrub_error(e, values) for e in failure.errors])),
    ]
    if failure.status_code is not None:
        text.append((STATUS_CODE, str(failure.status_code)))
    if failure.vendor_code:
        text.append((VENDOR_CODE, values.text(failure.vendor_code)))
    ours = {name for name, _ in text}
    kept = [
        (name, MASK.encode() if is_secret_name(name) and value else value)
        for name, value in source.headers
        if name not in ours
    ]
    headers: Headers = kept + [(name, value.encode()) for name, value in text]
    return DeadLetter(key=source.key, value=source.value, headers=headers)


def _trace(
    failure: Failed,
    source: Record,
    *,
    flow: str,
    flow_version: str,
    step: str,
    call: str,
    executing_class: str,
    attempts: int,
) -> str:
    """Connect's ``exception.stacktrace``: what failed, where, and with which answer.

    An unclassified exception keeps its Python traceback, after these lines; a
    classified one (a vendor's refusal, a mapping, a schema) has no traceback worth
    reading, so these lines are the whole of it.
    """
    lines = [f"{failure.error_class}: {failure.message}"]
    if flow:
        where = f"  in flow {flow!r}" + (f" (version {flow_version})" if flow_version else "")
        lines.append(where + (f", step {step!r}" if step else ", its condition"))
    else:
        at = f"{source.topic} partition {source.partition} offset {source.offset}"
        lines.append(f"  reading {at}")
    if call:
        adapter = f" ({executing_class})" if executing_class else ""
        plural = "s" if attempts != 1 else ""
        lines.append(f"  calling {call}{adapter}, {attempts} attempt{plural}")
    answer = [
        *([f"status {failure.status_code}"] if failure.status_code is not None else []),
        *([f"code {failure.vendor_code}"] if failure.vendor_code else []),
    ]
    if answer:
        retry = "retries ran out" if failure.retryable else "not retryable"
        lines.append(f"  the vendor answered {', '.join(answer)} ({retry})")
    lines.extend(f"  {e.path or 'event'}: {e.message}" for e in failure.errors[:_TRACE_ERRORS])
    if len(failure.errors) > _TRACE_ERRORS:
        lines.append(f"  ... and {len(failure.errors) - _TRACE_ERRORS} more (platypus.errors)")
    if failure.stacktrace:
        lines.append(failure.stacktrace.rstrip("\n"))
    return "\n".join(lines)


_TRACE_ERRORS = 5


def describe_headers(headers: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    """Dead-letter headers as a dict of text, with ``platypus.errors`` parsed."""
    out: dict[str, Any] = {key: value.decode() for key, value in headers}
    if ERRORS in out:
        out[ERRORS] = json.loads(out[ERRORS])
    return out


def mask_secrets(headers: Mapping[str, str]) -> dict[str, str]:
    """HTTP-style headers with the values of credential-looking names masked.

    The names are `platypus.redaction.SECRET_WORDS`, the same the logs mask.
    """
    return {name: MASK if is_secret_name(name) else value for name, value in headers.items()}


def _scrub_error(error: FieldError, values: Scrubber) -> dict[str, Any]:
    out = error.to_dict()
    out["got"] = values.text(out["got"])
    out["message"] = values.text(out["message"])
    return out


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
