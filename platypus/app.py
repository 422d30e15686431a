"""One Platypus process on the embedded runtime: event log, flows, adapters, ingress.

::

    app = Platypus.from_project(Path("."))
    await app.start()          # log open, connections started, consumer running, HTTP up
    ...                        # POST events to app.url + "/events"
    await app.drain()          # every accepted event has its outcome
    await app.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from platypus.adapter import Adapter, AdapterRegistry
from platypus.config import ProjectConfig, load_config
from platypus.flow.loader import load_flows
from platypus.flow.model import FlowSpec
from platypus.ingress import Ingress, create_app
from platypus.ops.indexer import Indexer
from platypus.ops.store import FailureStore, default_store_url
from platypus.runtime.embedded import EVENTS_TOPIC, EmbeddedRuntime
from platypus.runtime.log import Durability, EventLog
from platypus.runtime.processor import Connections, Processor
from platypus.schema_registry import SchemaRegistry

__all__ = ["Platypus"]

_log = structlog.get_logger("platypus")


class Platypus:
    """The embedded runtime and its HTTP ingress, wired from a project configuration."""

    def __init__(
        self,
        config: ProjectConfig,
        flows: Sequence[FlowSpec],
        *,
        schemas: SchemaRegistry | None = None,
        adapters: AdapterRegistry | None = None,
        connections: Mapping[str, Adapter] | None = None,
        durability: Durability = "full",
    ) -> None:
        self.config = config
        self.flows = list(flows)
        self.schemas = schemas or SchemaRegistry.default()
        self.adapters = adapters or AdapterRegistry.default()
        self.log = EventLog(
            config.resolve(config.data_dir), partitions=config.partitions, durability=durability
        )
        self.connections = Connections(config, self.adapters, connections)
        params = self.connections.prepare(self.flows)
        self.processor = Processor(
            self.flows,
            self.schemas,
            self.connections,
            retry=config.retry,
            concurrency=config.concurrency,
            record_delivery=self.log.record_delivery,
            params=params,
            ledger=self.log,
        )
        self.runtime = EmbeddedRuntime(self.log, self.processor)
        data_dir = config.resolve(config.data_dir)
        self.failures = FailureStore(config.failures_store or default_store_url(data_dir))
        self.indexer = Indexer(self.log, self.failures, flows=self.flows, quiet=True)
        self._indexing: asyncio.Task[None] | None = None
        self.ingress = Ingress(self.log, self.schemas, config.ingress, EVENTS_TOPIC)
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self.url = ""

    @classmethod
    def from_project(cls, root: Path, *, data_dir: Path | None = None, **kwargs: Any) -> Platypus:
        """Read ``platypus.yaml`` and the flows folder under ``root``."""
        config = load_config(root=root)
        if data_dir is not None:
            config = config.model_copy(update={"data_dir": data_dir})
        flows = load_flows(config.resolve(config.flows))
        return cls(config, flows, **kwargs)

    async def start(
        self, *, http: bool = True, host: str | None = None, port: int | None = None
    ) -> None:
        """Open the log, start connections and the consumer, then serve HTTP."""
        self.log.open()
        await self.connections.start()
        await self.runtime.start()
        # Dead letters are indexed into the failed-event store as they come.
        await asyncio.to_thread(self.failures.create)
        self._indexing = asyncio.create_task(self.indexer.run_forever(1.0), name="platypus-dlq")
        if http:
            await self._serve(
                host or self.config.ingress.host, self.config.ingress.port if port is None else port
            )
        _log.info(
            "platypus started",
            flows=len(self.flows),
            data_dir=str(self.log.data_dir),
            partitions=self.log.partitions,
            url=self.url or None,
        )

    async def _serve(self, host: str, port: int) -> None:
        app = create_app(
            self.ingress,
            health=self._health,
            sources=self.config.sources,
            data_dir=self.log.data_dir,
        )
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        server = _Server(config)
        self._server = server
        self._serving = asyncio.create_task(server.serve(), name="platypus-http")
        while not server.started:
            if self._serving.done():
                await self._serving  # raises the bind error
                raise RuntimeError(f"the HTTP server on {host}:{port} stopped at start-up")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()
        self.url = f"http://{bound[0]}:{bound[1]}"

    def _health(self) -> dict[str, Any]:
        return {"in_flight": self.runtime.in_flight, "flows": len(self.flows)}

    async def drain(self) -> None:
        """Wait until every accepted event has an outcome."""
        await self.runtime.drain()

    async def stop(self) -> None:
        """Stop HTTP first (no new events), then the consumer, connections and log."""
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
            self._server = None
        if self._indexing is not None:
            self._indexing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._indexing
            self._indexing = None
        await self.runtime.stop()
        await self.connections.close()
        self.log.close()
        self.failures.close()


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process owner (the CLI) handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
