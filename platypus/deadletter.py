"""Dead-letter records: the original event, unchanged, with headers that say why.

Header names follow Kafka Connect's dead-letter queue where Connect has a name
for the fact (``__connect.errors.*``), so existing Kafka tooling reads them; the
rest are under ``platypus.``. Every header value is UTF-8 text; ``platypus.errors``
is a JSON list of ``{path, message, expected, got}``.

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
    "DeadLetter",
    "Headers",
    "dead_letter",
    "describe_headers",
    "mask_secrets",
]

Headers = list[tuple[str, bytes]]

TOPIC = "__connect.errors.topic"
PARTITION = "__connect.errors.partition"
OFFSET = "__connect.errors.offset"
EXCEPTION_CLASS = "__connect.errors.exception.class.name"
EXCEPTION_MESSAGE = "__connect.errors.exception.message"
STACKTRACE = "__connect.errors.exception.stacktrace"
CONNECTOR = "__connect.errors.connector.name"
STAGE = "__connect.errors.stage"

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
) -> DeadLetter:
    """Build the dead-letter record for ``source`` after ``failure``.

    ``personal`` holds the event's personal-data values (or their `Scrubber`):
    they are masked in the message, the stack trace, the vendor code and each
    field error.
    """
    values = scrubber(personal)
    message = values.text(failure.message)
    text: list[tuple[str, str]] = [
        (TOPIC, source.topic),
        (PARTITION, str(source.partition)),
        (OFFSET, str(source.offset)),
        (EXCEPTION_CLASS, failure.error_class),
        (EXCEPTION_MESSAGE, message),
        (CONNECTOR, flow),
        (STAGE, "TASK_PUT" if step else "TRANSFORMATION"),
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
    if failure.stacktrace:
        text.append((STACKTRACE, values.text(failure.stacktrace)))
    ours = {name for name, _ in text}
    kept = [
        (name, MASK.encode() if is_secret_name(name) and value else value)
        for name, value in source.headers
        if name not in ours
    ]
    headers: Headers = kept + [(name, value.encode()) for name, value in text]
    return DeadLetter(key=source.key, value=source.value, headers=headers)


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
