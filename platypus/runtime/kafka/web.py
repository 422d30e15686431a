"""``platypus web`` on Kafka: the HTTP ingress, producing accepted events to the events topic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from platypus.config import load_config
from platypus.ingress import Ingress
from platypus.records import EVENTS
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
    dedupe = None
    if config.failures_store:
        # -- shared de-duplication (issue 12): one table for every replica --
        from platypus.ops.dedupe import SharedDedupe
        from platypus.ops.store import FailureStore

        store = FailureStore(config.failures_store)
        store.create()
        dedupe = SharedDedupe(store)
    else:
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
    app = create_app(
        ingress, sources=config.sources, data_dir=config.resolve(config.data_dir), seen=dedupe
    )

    async def serve() -> None:
        await sink.start()
        try:
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
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
            await sink.stop()

    asyncio.run(serve())
