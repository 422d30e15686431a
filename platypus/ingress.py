"""The ingress: request bodies checked, and the events they carry appended, all or none.

``POST /events`` accepts one event (``application/cloudevents+json`` or
``application/json`` with an object) or a batch (``application/cloudevents-batch+json``
or ``application/json`` with an array). A batch is all or nothing. Answers:

* 202 once every event is durably appended (``{"accepted", "duplicates", "events"}``);
  an event whose (source, id) was already accepted is acknowledged, not appended twice;
* 400 for a body that is not JSON (with line and column), or not an event or a list,
  or JSON that would break its readers: nesting deeper than 128 levels, an integer
  of more than 4,300 digits, an unpaired surrogate (`platypus.safejson`);
* 413 for a body over the size limit, or a batch over the batch limit;
* 415 for a content type that is not JSON;
* 422 with every validation error (index, field path, expected, got) when an
  event or its data does not match its schema, including an unknown type.

Every refused body is recorded in the rejected store with its reasons.

The HTTP endpoints around it are in `platypus.web`. Events go to an
`EventSink` (`platypus.runtime.base`): the embedded log, or a Kafka producer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from platypus.config import IngressSettings
from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError, EventValidationError, FieldError
from platypus.keys import OrderingKeys, ordering_key
from platypus.records import CONTENT_TYPE_HEADER, EVENT_ID_HEADER, VALIDATED_HEADER, NewRecord
from platypus.redaction import personal_values, scrubber
from platypus.runtime.base import EventSink
from platypus.safejson import UnsafeJsonError
from platypus.safejson import loads as load_json
from platypus.schema_registry import SchemaRegistry
from platypus.validation import field_errors

__all__ = ["Ingress", "IngressResult"]

_log = structlog.get_logger("platypus.ingress")

_SINGLE = ("application/cloudevents+json",)
_BATCH = ("application/cloudevents-batch+json",)
_JSON = ("application/json", "text/json")


@dataclass(frozen=True, slots=True)
class IngressResult:
    """The HTTP status and JSON body of an answer."""

    status: int
    body: dict[str, Any]


class _RefusedError(Exception):
    def __init__(self, status: int, reason: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = list(errors)


class Ingress:
    """Validates request bodies and appends the events they carry to the log."""

    def __init__(
        self,
        sink: EventSink,
        schemas: SchemaRegistry,
        settings: IngressSettings,
        topic: str,
        *,
        keys: OrderingKeys | None = None,
    ) -> None:
        self.sink = sink
        self.schemas = schemas
        self.settings = settings
        self.topic = topic
        self.keys = keys or OrderingKeys()
        """Which key orders each event type (``ordering:`` of platypus.yaml)."""
        problems = self.keys.problems((s.type for s in schemas), schemas.json_schema)
        if problems:
            raise ConfigurationError("; ".join(problems))

    async def accept(self, body: bytes, content_type: str) -> IngressResult:
        """Validate ``body`` and append its events; never raises for bad input."""
        try:
            events = self._parse(body, content_type)
            items = [self._item(event, raw) for event, raw in events]
        except _RefusedError as refused:
            rejection = await self.sink.reject(refused.reason, refused.errors, body)
            _log.info("request refused", status=refused.status, reason=refused.reason, id=rejection)
            return IngressResult(
                refused.status,
                {"error": refused.reason, "errors": refused.errors, "rejection_id": rejection},
            )
        return await self._append(items)

    async def accept_events(
        self, events: Sequence[Any], body: bytes, *, context: str = ""
    ) -> IngressResult:
        """Validate events built from a vendor's payload and append them, all or none.

        The same checks as `accept`; a refusal (422) records ``body``, the request as
        the vendor sent it, with ``context`` (``"webhook zuora: "``) before the reason.
        """
        batch = len(events) != 1
        checked = [self._check(raw, f"[{i}]" if batch else "") for i, raw in enumerate(events)]
        errors = [e for _, errs in checked for e in errs]
        if errors:
            reason = context + _summary(errors, batch=batch)
            rejection = await self.sink.reject(reason, errors, body)
            _log.info("request refused", status=422, reason=reason, id=rejection)
            return IngressResult(
                422, {"error": reason, "errors": errors, "rejection_id": rejection}
            )
        items = [
            self._item(event, _encode(raw))
            for (event, _), raw in zip(checked, events, strict=True)
            if event is not None
        ]
        return await self._append(items)

    async def _append(self, items: Sequence[NewRecord]) -> IngressResult:
        placed = await self.sink.append(self.topic, items)
        accepted = [
            {"id": item.dedupe[1] if item.dedupe else "", "partition": p[0], "offset": p[1]}
            for item, p in zip(items, placed, strict=True)
            if p is not None
        ]
        duplicates = sum(1 for p in placed if p is None)
        _log.debug("events accepted", accepted=len(accepted), duplicates=duplicates)
        return IngressResult(
            202, {"accepted": len(accepted), "duplicates": duplicates, "events": accepted}
        )

    async def refuse(self, status: int, reason: str, body: bytes = b"") -> IngressResult:
        """Record and answer a request refused before its body was read (e.g. too large)."""
        rejection = await self.sink.reject(reason, [], body)
        _log.info("request refused", status=status, reason=reason, id=rejection)
        return IngressResult(status, {"error": reason, "errors": [], "rejection_id": rejection})

    def _parse(self, body: bytes, content_type: str) -> list[tuple[CloudEvent, bytes]]:
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in (*_SINGLE, *_BATCH, *_JSON):
            raise _RefusedError(
                415,
                f"unsupported content type {media or '(none)'!r}: send "
                "application/cloudevents+json, application/cloudevents-batch+json "
                "or application/json",
            )
        try:
            parsed = load_json(body)
        except UnicodeDecodeError:
            raise _RefusedError(400, "malformed JSON: the body is not UTF-8 text") from None
        except UnsafeJsonError as exc:
            raise _RefusedError(
                400, f"unsafe JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        except json.JSONDecodeError as exc:
            raise _RefusedError(
                400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        if media in _BATCH or (media in _JSON and isinstance(parsed, list)):
            if not isinstance(parsed, list):
                raise _RefusedError(400, "a batch is a JSON array of events")
            if not parsed:
                raise _RefusedError(400, "the batch is empty")
            if len(parsed) > self.settings.max_batch:
                raise _RefusedError(
                    413,
                    f"the batch has {len(parsed)} events; at most {self.settings.max_batch} "
                    "are accepted in one request",
                )
            checked = [self._check(item, f"[{i}]") for i, item in enumerate(parsed)]
            errors = [e for _, errs in checked for e in errs]
            if errors:
                raise _RefusedError(422, _summary(errors, batch=True), errors)
            events = [ev for ev, _ in checked if ev is not None]
            return [(ev, _encode(raw)) for ev, raw in zip(events, parsed, strict=True)]
        if not isinstance(parsed, dict):
            raise _RefusedError(400, "an event is a JSON object (send an array for a batch)")
        event, errors = self._check(parsed, "")
        if errors or event is None:
            raise _RefusedError(422, _summary(errors, batch=False), errors)
        # A single event is stored byte for byte as it arrived.
        return [(event, body)]

    def _check(self, raw: Any, where: str) -> tuple[CloudEvent | None, list[dict[str, Any]]]:
        if not isinstance(raw, dict):
            return None, [_error(where, FieldError(path="", message="an event is a JSON object"))]
        try:
            event = CloudEvent.model_validate(raw)
        except ValidationError as exc:
            return None, [_error(where, e) for e in field_errors(exc)]
        try:
            self.schemas.validate(event)
        except EventValidationError as exc:
            return None, [_error(where, e) for e in self._masked(exc.errors, raw)]
        return event, []

    def _masked(self, errors: Sequence[FieldError], raw: Mapping[str, Any]) -> list[FieldError]:
        """``errors`` with the event's personal values masked wherever they appear.

        Validation masks what a personal field got; this also masks a personal value
        sent in another field (an e-mail address where a date belongs).
        """
        patterns = self.schemas.personal_paths(str(raw.get("type", "")))
        values = scrubber(personal_values(raw.get("data"), patterns))
        if not values:
            return list(errors)
        return [
            dataclasses.replace(e, message=values.text(e.message), got=values.text(e.got))
            for e in errors
        ]

    def _item(self, event: CloudEvent, raw: bytes) -> NewRecord:
        return NewRecord(
            key=ordering_key(event, self.keys),
            value=raw,
            headers=(
                # Kafka's structured mode: the value is the whole event as JSON.
                (CONTENT_TYPE_HEADER, b"application/cloudevents+json"),
                (EVENT_ID_HEADER, event.id.encode()),
                (VALIDATED_HEADER, event.type.encode()),
            ),
            dedupe=(event.source, event.id),
        )


def _encode(raw: Any) -> bytes:
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode()


def _error(where: str, error: FieldError) -> dict[str, Any]:
    out = error.to_dict()
    out["path"] = f"{where}.{error.path}" if where and error.path else where + error.path
    if where:
        out["index"] = int(where.strip("[]"))
    return out


def _summary(errors: Sequence[Mapping[str, Any]], *, batch: bool) -> str:
    first = errors[0] if errors else {"path": "", "message": "invalid"}
    count = len(errors)
    scope = "the batch was refused as a whole" if batch else "the event was refused"
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"{scope}: {first['path'] or 'event'}: {first['message']}{more}"
