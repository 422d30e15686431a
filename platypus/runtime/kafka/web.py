"""``platypus web`` on Kafka: the HTTP ingress, producing accepted events to the events topic.

Besides the ingress it serves ``/readyz`` and ``/metrics`` (`KafkaHealth`), and
answers ``503`` with ``Retry-After`` instead of ``202`` while the broker does
not answer, a topic is missing or the broker has just lost data: an event
accepted then might be produced into a topic no worker reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from platypus.config import load_config
from platypus.ingress import Ingress
from platypus.records import DEAD_LETTER, EVENTS, REJECTED
from platypus.runtime.kafka.health import KafkaHealth, metrics_allowed
from platypus.runtime.kafka.producer import KafkaEventSink
from platypus.runtime.kafka.settings import settings_for
from platypus.runtime.kafka.topics import wait_for_broker
from platypus.schema_registry import SchemaRegistry
from platypus.web import create_app

__all__ = ["run_web"]

_log = structlog.get_logger("platypus.runtime")


def run_web(
    project: Path, *, broker: str | None = None, host: str | None = None, port: int | None = None
) -> None:
    """``platypus web``: serve the ingress until stopped."""
    import uvicorn

    config = load_config(root=project)
    settings = settings_for(config, broker)
    wait_for_broker(settings)
    # -- shared de-duplication (issue 12): one table for every replica --
    from platypus.ops.dedupe import shared_dedupe

    dedupe = shared_dedupe(config.failures_store)
    if dedupe is None:
        _log.warning(
            "no failures_store in platypus.yaml: replicas of platypus web do not share "
            "de-duplication, so a copy of an event posted twice is produced twice"
        )
    sink = KafkaEventSink(settings, dedupe=dedupe)
    ingress = Ingress(
        sink,
        SchemaRegistry.default(),
        config.ingress,
        settings.topic(EVENTS),
        keys=config.ordering,
    )
    health = KafkaHealth(
        settings, [settings.topic(EVENTS), settings.topic(DEAD_LETTER), settings.topic(REJECTED)]
    )
    token = config.ops.metrics_token
    app = create_app(
        ingress,
        sources=config.sources,
        data_dir=config.resolve(config.data_dir),
        routes=health_routes(
            health, token.resolve().get_secret_value() if token is not None else None
        ),
        seen=dedupe,
    )

    async def serve() -> None:
        await sink.start()
        await health.probe()
        probing = asyncio.create_task(health.run(), name="platypus-health")
        try:
            server = uvicorn.Server(
                uvicorn.Config(
                    guard(app, health),
                    host=host or config.ingress.host,
                    port=config.ingress.port if port is None else port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
            )
            _log.info("platypus web started", broker=settings.broker)
            await server.serve()
        finally:
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
            await sink.stop()

    asyncio.run(serve())


def health_routes(health: KafkaHealth, metrics_token: str | None = None) -> list[BaseRoute]:
    """``/readyz`` and ``/metrics`` (behind ``ops.metrics_token`` when set)."""

    async def readyz(_request: Request) -> JSONResponse:
        status, body = health.readyz()
        return JSONResponse(body, status_code=status)

    async def metrics(request: Request) -> Response:
        if not metrics_allowed(metrics_token, request.headers.get("authorization", "")):
            return Response(
                "a bearer token is needed (ops.metrics_token)",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        return Response(await health.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def guard(app: Starlette, health: KafkaHealth, retry_after: int = 5) -> ASGIApp:
    """``app``, answering ``503`` to ``POST`` requests while the broker cannot take
    events (`KafkaHealth.accepting`) and when producing fails: the sender keeps
    the event and sends it again later."""
    from aiokafka.errors import KafkaError

    async def producing_failed(_request: Request, exc: Exception) -> Response:
        _log.error("producing to the broker failed", error=str(exc) or type(exc).__name__)
        return _unavailable(f"the broker did not take the event: {type(exc).__name__}", retry_after)

    app.add_exception_handler(KafkaError, producing_failed)
    return RefuseWhileUnavailable(app, health, retry_after)


class RefuseWhileUnavailable:
    """Answers ``503`` to ``POST`` requests while `KafkaHealth.accepting` says why."""

    def __init__(self, app: ASGIApp, health: KafkaHealth, retry_after: int = 5) -> None:
        self.app = app
        self.health = health
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            why = self.health.accepting()
            if why is not None:
                await _unavailable(why, self.retry_after)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unavailable(why: str, retry_after: int) -> Response:
    return JSONResponse(
        {"status": "unavailable", "detail": f"{why}; nothing was accepted, send it again later"},
        status_code=503,
        headers={"Retry-After": str(retry_after)},
    )
