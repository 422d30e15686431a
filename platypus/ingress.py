"""The HTTP ingress: ``POST /events`` takes CloudEvents in, ``GET /healthz`` answers.

``POST /events`` accepts one event (``application/cloudevents+json`` or
``application/json`` with an object) or a batch (``application/cloudevents-batch+json``
or ``application/json`` with an array). A batch is all or nothing. Answers:

* 202 once every event is durably appended (``{"accepted", "duplicates", "events"}``);
  an event whose (source, id) was already accepted is acknowledged, not appended twice;
* 400 for a body that is not JSON (with line and column), or not an event or a list;
* 413 for a body over the size limit, or a batch over the batch limit;
* 415 for a content type that is not JSON;
* 422 with every validation error (index, field path, expected, got) when an
  event or its data does not match its schema, including an unknown type.

Every refused body is recorded in the rejected store with its reasons.

``POST /webhooks/{source}`` takes a vendor's webhook as the vendor sends it, for
each source configured in ``platypus.yaml`` (`platypus.sources`), and
``GET /openapi.json`` describes every endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from platypus.config import IngressSettings, SourceSpec
from platypus.envelope import CloudEvent
from platypus.exceptions import EventValidationError, FieldError
from platypus.runtime.log import AppendItem
from platypus.runtime.processor import EVENT_ID_HEADER, VALIDATED_HEADER
from platypus.schema_registry import SchemaRegistry
from platypus.sources.openapi import openapi_document
from platypus.sources.receiver import WebhookReceiver
from platypus.validation import field_errors

__all__ = ["EventSink", "Ingress", "IngressResult", "create_app"]

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


class EventSink(Protocol):
    """Where accepted events go: the embedded `EventLog`, or a Kafka producer."""

    async def append(self, topic: str, items: Sequence[AppendItem]) -> list[tuple[int, int] | None]:
        """Durably append ``items``; (partition, offset) each, None for a duplicate."""
        ...

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        """Record a refused body with the reasons; returns an id to quote."""
        ...


class Ingress:
    """Validates request bodies and appends the events they carry to the log."""

    def __init__(
        self, log: EventSink, schemas: SchemaRegistry, settings: IngressSettings, topic: str
    ) -> None:
        self.log = log
        self.schemas = schemas
        self.settings = settings
        self.topic = topic

    async def accept(self, body: bytes, content_type: str) -> IngressResult:
        """Validate ``body`` and append its events; never raises for bad input."""
        try:
            events = self._parse(body, content_type)
            items = [self._item(event, raw) for event, raw in events]
        except _RefusedError as refused:
            rejection = await self.log.reject(refused.reason, refused.errors, body)
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
            rejection = await self.log.reject(reason, errors, body)
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

    async def _append(self, items: Sequence[AppendItem]) -> IngressResult:
        placed = await self.log.append(self.topic, items)
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
        rejection = await self.log.reject(reason, [], body)
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
            parsed = json.loads(body)
        except UnicodeDecodeError:
            raise _RefusedError(400, "malformed JSON: the body is not UTF-8 text") from None
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
            return None, [_error(where, e) for e in exc.errors]
        return event, []

    def _item(self, event: CloudEvent, raw: bytes) -> AppendItem:
        return AppendItem(
            key=event.key,
            value=raw,
            headers=[
                # Kafka's structured mode: the value is the whole event as JSON.
                ("content-type", b"application/cloudevents+json"),
                (EVENT_ID_HEADER, event.id.encode()),
                (VALIDATED_HEADER, event.type.encode()),
            ],
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


def create_app(
    ingress: Ingress,
    health: Callable[[], Mapping[str, Any]] | None = None,
    *,
    sources: Mapping[str, SourceSpec] | None = None,
    data_dir: Path | None = None,
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The Starlette application serving the ingress endpoints.

    ``sources`` are the webhook receivers of ``platypus.yaml``; their decoders are
    built (and their secrets read) here, so a missing secret stops start-up.
    Delivery ids are remembered in ``<data_dir>/webhooks.db`` (in memory without one).
    ``routes`` are served beside them: the app adds ``/metrics``, ``/readyz`` and
    the operations dashboard at ``/ops`` (`platypus.app.Platypus`).
    """
    limit = ingress.settings.max_body_bytes
    webhooks = WebhookReceiver.from_config(ingress, sources or {}, data_dir)
    document = openapi_document(ingress.schemas, ingress.settings, webhooks.decoders)

    async def post_events(request: Request) -> JSONResponse:
        body = await _read_body(request, limit)
        if isinstance(body, tuple):
            result = await ingress.refuse(*body)
            return JSONResponse(result.body, status_code=result.status)
        result = await ingress.accept(body, request.headers.get("content-type", ""))
        return JSONResponse(result.body, status_code=result.status)

    async def post_webhook(request: Request) -> Response:
        source = request.path_params["source"]
        body = await _read_body(request, limit)
        if isinstance(body, tuple):
            reply = await webhooks.refuse(source, *body)
        else:
            reply = await webhooks.receive(source, request.headers, body)
        return Response(
            reply.body, status_code=reply.status, media_type=reply.media_type, headers=reply.headers
        )

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **(health() if health else {})})

    return Starlette(
        routes=[
            Route("/events", post_events, methods=["POST"]),
            Route("/webhooks/{source}", post_webhook, methods=["POST"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            *routes,
        ]
    )


async def _read_body(request: Request, limit: int) -> bytes | tuple[int, str]:
    """The body, or (status, reason) when it is over ``limit`` or the client went away."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return 413, f"the body has {declared} bytes; the limit is {limit}"
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return 413, f"the body is larger than the limit of {limit} bytes"
    except ClientDisconnect:
        return 400, "client disconnected"
    return bytes(body)
