"""The HTTP server's routes, the same on every runtime.

* ``POST /events`` takes CloudEvents in, in the structured, binary and batched
  modes of the HTTP binding (`platypus.ingress.Ingress`);
* ``POST /webhooks/{source}`` takes a vendor's webhook as the vendor sends it, for
  each source configured in ``platypus.yaml`` (`platypus.sources`);
* ``GET /openapi.json`` describes every endpoint;
* ``GET /healthz`` answers while the process runs.

A runtime adds its own routes beside them (``/metrics``, ``/readyz`` and the
operations dashboard at ``/ops``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from platypus.config import SourceSpec
from platypus.ingress import Ingress
from platypus.sources.openapi import openapi_document
from platypus.sources.receiver import WebhookReceiver
from platypus.sources.replay import DeliveryMemory

__all__ = ["create_app"]


def create_app(
    ingress: Ingress,
    health: Callable[[], Mapping[str, Any]] | None = None,
    *,
    sources: Mapping[str, SourceSpec] | None = None,
    data_dir: Path | None = None,
    routes: Sequence[BaseRoute] = (),
    seen: DeliveryMemory | None = None,
) -> Starlette:
    """The Starlette application serving the ingress endpoints.

    ``sources`` are the webhook receivers of ``platypus.yaml``; their decoders are
    built (and their secrets read) here, so a missing secret stops start-up.
    Delivery ids are remembered in ``<data_dir>/webhooks.db`` (in memory without one),
    or in ``seen``, shared by the replicas of ``platypus web``.
    ``routes`` are served beside them: the app adds ``/metrics``, ``/readyz`` and
    the operations dashboard at ``/ops`` (`platypus.runtime.embedded.Platypus`).
    """
    limit = ingress.settings.max_body_bytes
    webhooks = WebhookReceiver.from_config(ingress, sources or {}, data_dir, seen=seen)
    document = openapi_document(ingress.schemas, ingress.settings, webhooks.decoders)

    async def post_events(request: Request) -> JSONResponse:
        body = await _read_body(request, limit)
        if isinstance(body, tuple):
            result = await ingress.refuse(*body)
            return JSONResponse(result.body, status_code=result.status)
        # Every header: binary mode reads the event's attributes from its ce-* headers.
        result = await ingress.accept(
            body, request.headers.get("content-type", ""), request.headers.items()
        )
        if result.status == 202:
            return _Accepted(result.body, status_code=202)
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


class _Accepted(JSONResponse):
    """The 202 of ``POST /events``: the same bytes as Starlette's JSONResponse, by orjson.

    The body holds only counts and, per event, its id, partition and offset
    (strings and integers), which both encoders write alike: compact, UTF-8.
    For a batch of 100, 73 -> 5 us an answer.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
