"""The ingress: request bodies checked, and the events they carry appended, all or none.

``POST /events`` takes CloudEvents in each mode of the HTTP binding:

* **structured**: ``application/cloudevents+json``, one event in the JSON event
  format (``data``, or ``data_base64`` for data that is not JSON);
* **binary**: the attributes in ``ce-*`` headers (percent-encoded), the body the
  event's ``data`` in any content type (its ``Content-Type``): JSON, XML, text,
  bytes;
* **batched**: ``application/cloudevents-batch+json``, a JSON array of events;

and ``application/json`` without ``ce-*`` headers, as one event (an object) or
a batch (an array). Every event is stored in one form, whatever its mode
(`platypus.envelope`): the structured JSON event, with its data as JSON, text,
or base64. A batch is all or nothing. Answers:

* 202 once every event is durably appended (``{"accepted", "duplicates", "events"}``);
  an event whose (source, id) was already accepted is acknowledged, not appended twice;
* 400 for a body that is not JSON an event is read from (with line and column:
  malformed, a duplicate name, NaN, UTF-16, nesting deeper than 128 levels, a
  number out of range; `platypus.jsontext`), or not an event or a list, or
  binary-mode headers that cannot be read;
* 413 for a body over the size limit, or a batch over the batch limit;
* 415 for a content type that is none of the above;
* 422 with every validation error (index, field path, expected, got) when an
  event or its data does not match its schema, including an unknown type.

Reasons end with the mode they were read in (``... (binary mode)``). Every
refused body is recorded in the rejected store with its reasons.

The body is parsed once, each event written once in its stored form, and that
is validated, from those bytes, in one call (`SchemaRegistry.check_event`): what
is stored, and what flows read, is exactly what was validated.

The HTTP endpoints around it are in `platypus.web`. Events go to an
`EventSink` (`platypus.runtime.base`): the embedded log, or a Kafka producer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import structlog

from platypus.config import IngressSettings
from platypus.envelope import from_binary, stored_form
from platypus.exceptions import ConfigurationError, EventValidationError, FieldError, JsonTextError
from platypus.jsontext import dumps, from_python, integral, parse
from platypus.keys import OrderingKeys, ordering_key
from platypus.records import CONTENT_TYPE_HEADER, EVENT_ID_HEADER, VALIDATED_HEADER, NewRecord
from platypus.redaction import personal_values, scrubber
from platypus.runtime.base import EventSink
from platypus.schema_registry import SchemaRegistry
from platypus.validated import proof

__all__ = ["Ingress", "IngressResult"]

_log = structlog.get_logger("platypus.ingress")

_SINGLE = "application/cloudevents+json"
_BATCH = "application/cloudevents-batch+json"
_JSON = ("application/json", "text/json")
_CE = "ce-"
# Not attributes: the data travels in the body of a binary-mode request.
_NOT_HEADERS = frozenset({"data", "data_base64", "datacontenttype"})


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

    async def accept(
        self, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> IngressResult:
        """Validate ``body`` and append its events; never raises for bad input.

        ``headers`` are the request's (name, value) pairs: binary mode reads the
        event's attributes from its ``ce-*`` headers.
        """
        try:
            items = self._read(body, content_type, headers)
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

        The same checks as `accept`, as strict; a refusal (422, naming each bad
        event's index in a batch) records ``body``, the request as the vendor
        sent it, with ``context`` (``"webhook zuora: "``) before the reason.
        """
        batch = len(events) != 1
        try:
            # Read as a body of POST /events would be (and copied: the caller's stay).
            items = self._events(
                [_from_python(e, batch, i) for i, e in enumerate(events)], batch=batch, mode=""
            )
        except _RefusedError as refused:
            reason = context + refused.reason
            rejection = await self.sink.reject(reason, refused.errors, body)
            _log.info("request refused", status=refused.status, reason=reason, id=rejection)
            return IngressResult(
                refused.status,
                {"error": reason, "errors": refused.errors, "rejection_id": rejection},
            )
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

    # -- the modes ----------------------------------------------------------------

    def _read(
        self, body: bytes, content_type: str, headers: Iterable[tuple[str, str]]
    ) -> list[NewRecord]:
        media = content_type.split(";", 1)[0].strip().lower()
        # HTTP binding, section 3: the content type picks the mode.
        if media.startswith("application/cloudevents-batch"):
            if media != _BATCH:
                raise _RefusedError(415, _only_json("batched", media, _BATCH))
            return self._batch(_parse(body, "batched mode"), "batched mode")
        if media.startswith("application/cloudevents"):
            if media != _SINGLE:
                raise _RefusedError(415, _only_json("structured", media, _SINGLE))
            return self._structured(_parse(body, "structured mode"), "structured mode")
        attributes = [(name.lower(), value) for name, value in headers]
        if any(name == "ce-specversion" for name, _ in attributes):
            return self._binary(body, content_type, attributes)
        if media in _JSON:
            parsed = _parse(body, "structured mode")
            if isinstance(parsed, list):
                return self._batch(parsed, "batched mode")
            return self._structured(parsed, "structured mode")
        raise _RefusedError(
            415,
            f"unsupported content type {media or '(none)'!r}: send "
            "application/cloudevents+json (structured mode), application/cloudevents-batch+json "
            "(batched mode), application/json, or the event's attributes as ce-* headers "
            "with its data in the body (binary mode)",
        )

    def _structured(self, parsed: Any, mode: str) -> list[NewRecord]:
        if not isinstance(parsed, dict):
            raise _RefusedError(
                400, _in(mode, "an event is a JSON object (send an array for a batch)")
            )
        return self._events([parsed], batch=False, mode=mode)

    def _batch(self, parsed: Any, mode: str) -> list[NewRecord]:
        if not isinstance(parsed, list):
            raise _RefusedError(400, _in(mode, "a batch is a JSON array of events"))
        if not parsed:
            raise _RefusedError(400, _in(mode, "the batch is empty"))
        if len(parsed) > self.settings.max_batch:
            raise _RefusedError(
                413,
                _in(
                    mode,
                    f"the batch has {len(parsed)} events; at most "
                    f"{self.settings.max_batch} are accepted in one request",
                ),
            )
        return self._events(parsed, batch=True, mode=mode)

    def _binary(
        self, body: bytes, content_type: str, headers: Sequence[tuple[str, str]]
    ) -> list[NewRecord]:
        mode = "binary mode"
        attributes: dict[str, str] = {}
        for name, value in headers:
            if not name.startswith(_CE):
                continue
            attribute = name[len(_CE) :]
            if attribute in _NOT_HEADERS:
                raise _RefusedError(400, _not_a_header(mode, name))
            if attribute in attributes:
                raise _RefusedError(400, _in(mode, f"header {name} is sent twice; send it once"))
            attributes[attribute] = _header_value(mode, name, value)
        try:
            event = from_binary(attributes, content_type.strip() or None, body)
        except JsonTextError as exc:
            raise _RefusedError(400, _in(mode, str(exc)), [_error("", _json_error(exc))]) from None
        except EventValidationError as exc:
            errors = [_error("", e) for e in exc.errors]
            raise _RefusedError(422, _summary(errors, batch=False, mode=mode), errors) from None
        return self._events([event], batch=False, mode=mode)

    # -- every event --------------------------------------------------------------

    def _events(self, events: list[Any], *, batch: bool, mode: str) -> list[NewRecord]:
        items: list[NewRecord] = []
        errors: list[dict[str, Any]] = []
        status = 422
        for index, raw in enumerate(events):
            where = f"[{index}]" if batch else ""
            try:
                items.append(self._record(raw))
            except EventValidationError as exc:
                errors.extend(_error(where, e) for e in self._masked(exc.errors, raw))
            except JsonTextError as exc:
                # Parsed, but not storable as read (a number out of range, too deep): a
                # 400 for a request body; a 422 for events a source built, whose
                # callers (pollers) set aside the events a 422 names and send the rest.
                status = 400 if mode else status
                errors.append(_error(where, _json_error(exc)))
        if errors:
            raise _RefusedError(status, _summary(errors, batch=batch, mode=mode), errors)
        return items

    def _record(self, raw: Any) -> NewRecord:
        if not isinstance(raw, dict):
            raise EventValidationError(
                "not an event", [FieldError(path="", message="an event is a JSON object")]
            )
        event = stored_form(integral(raw))
        value = self.schemas.check_event(event, dumps(event))
        event_id, event_type = str(event["id"]), str(event["type"])
        return NewRecord(
            key=ordering_key(event, self.keys),
            value=value,
            headers=(
                # Kafka's structured mode: the value is the whole event as JSON.
                (CONTENT_TYPE_HEADER, b"application/cloudevents+json"),
                (EVENT_ID_HEADER, event_id.encode()),
                (VALIDATED_HEADER, proof(event_type, value)),
            ),
            dedupe=(str(event["source"]), event_id),
        )

    def _masked(self, errors: Sequence[FieldError], raw: Any) -> list[FieldError]:
        """``errors`` with the event's personal values masked wherever they appear.

        Validation masks what a personal field got; this also masks a personal value
        sent in another field (an e-mail address where a date belongs).
        """
        if not isinstance(raw, Mapping):
            return list(errors)
        patterns = self.schemas.personal_paths(str(raw.get("type", "")))
        values = scrubber(personal_values(raw.get("data"), patterns))
        if not values:
            return list(errors)
        return [
            dataclasses.replace(e, message=values.text(e.message), got=values.text(e.got))
            for e in errors
        ]


def _from_python(event: Any, batch: bool, index: int) -> Any:
    try:
        return from_python(event)
    except JsonTextError as exc:
        where = f"[{index}]" if batch else ""
        error = _error(where, _json_error(exc))
        summary = _summary([error], batch=batch, mode="")
        raise _RefusedError(422, summary, [error]) from None


def _parse(body: bytes, mode: str) -> Any:
    try:
        return parse(body)
    except JsonTextError as exc:
        raise _RefusedError(400, _in(mode, str(exc))) from None


def _header_value(mode: str, name: str, value: str) -> str:
    """An attribute from its header: quoted-string unescaped, then percent-decoded once."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        # RFC 7230 section 3.2.6, kept for senders of older versions of the binding.
        inner, out, escaped = text[1:-1], [], False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        text = "".join(out)
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise _RefusedError(
            400,
            _in(
                mode,
                f"header {name} is not UTF-8 once percent-decoded (HTTP binding, 3.1.3.2)",
            ),
        ) from None


def _not_a_header(mode: str, name: str) -> str:
    if name == "ce-datacontenttype":
        return _in(
            mode,
            f"send the data's content type as Content-Type, not as {name} "
            "(HTTP binding, section 3.1.1)",
        )
    return _in(mode, f"{name} is not an attribute: the data is the body of the request")


def _only_json(mode: str, media: str, accepted: str) -> str:
    return _in(f"{mode} mode", f"the event format {media!r} is not supported: send {accepted}")


def _json_error(exc: JsonTextError) -> FieldError:
    return FieldError(path=exc.path, message=str(exc))


def _error(where: str, error: FieldError) -> dict[str, Any]:
    out = error.to_dict()
    out["path"] = f"{where}.{error.path}" if where and error.path else where + error.path
    if where:
        out["index"] = int(where.strip("[]"))
    return out


def _summary(errors: Sequence[Mapping[str, Any]], *, batch: bool, mode: str) -> str:
    first = errors[0] if errors else {"path": "", "message": "invalid"}
    count = len(errors)
    scope = "the batch was refused as a whole" if batch else "the event was refused"
    more = f" (and {count - 1} more)" if count > 1 else ""
    return _in(mode, f"{scope}: {first['path'] or 'event'}: {first['message']}{more}")


def _in(mode: str, reason: str) -> str:
    """``reason``, saying which mode of the HTTP binding the body was read in."""
    return f"{reason} ({mode})" if mode else reason
