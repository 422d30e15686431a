"""One Platypus process on the embedded runtime: event log, flows, adapters, ingress.

::

    app = Platypus.from_project(Path("."))
    await app.start()          # log open, connections started, consumer running, HTTP up
    ...                        # POST events to app.url + "/events"
    await app.drain()          # every accepted event has its outcome
    await app.stop()

Besides the ingress, the HTTP server answers ``/metrics`` (Prometheus),
``/readyz`` and, unless ``ops.dashboard`` is off, the operations dashboard at
``/ops`` (docs/operations.md). Failure alerts run as a task when ``ops.alerts``
is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from platypus.adapter import Adapter, AdapterRegistry
from platypus.config import ProjectConfig, load_config
from platypus.flow.loader import load_flows
from platypus.flow.model import FlowSpec
from platypus.ingress import Ingress
from platypus.ops.actions import Operations
from platypus.ops.alerts import Alerter
from platypus.ops.auth import Authenticator
from platypus.ops.indexer import Indexer
from platypus.ops.metrics import CONTENT_TYPE_LATEST, Metrics
from platypus.ops.store import FailureStore, default_store_url
from platypus.records import CONSUMER_GROUP, DEAD_LETTER_TOPIC, EVENTS_TOPIC
from platypus.runtime import allocator
from platypus.runtime.embedded.history import LogOutcomeFeed
from platypus.runtime.embedded.log import Compaction, Durability, EventLog
from platypus.runtime.embedded.replays import LogReplayTarget
from platypus.runtime.embedded.runtime import EmbeddedRuntime
from platypus.runtime.wiring import build_pipeline
from platypus.schema_registry import SchemaRegistry
from platypus.web import create_app

if TYPE_CHECKING:
    from platypus.sources.pollers import PollerGroup

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
        pipeline = build_pipeline(
            config,
            self.flows,
            ledger=self.log,
            schemas=self.schemas,
            adapters=self.adapters,
            connections=connections,
        )
        self.connections = pipeline.connections
        self.processor = pipeline.processor
        self.metrics = Metrics()
        self.runtime = EmbeddedRuntime(self.log, self.processor, observer=self.metrics)
        data_dir = config.resolve(config.data_dir)
        self.failures = FailureStore(config.failures_store or default_store_url(data_dir))
        self.indexer = Indexer(
            self.log,
            self.failures,
            target=LogReplayTarget(self.log),
            flows=self.flows,
            quiet=True,
            outcomes=LogOutcomeFeed(self.log),
        )
        self._indexing: asyncio.Task[None] | None = None
        self._pollers: PollerGroup | None = None
        # The dashboard only marks replays; the indexer, which owns the log, appends
        # them, woken at once rather than on its next poll.
        self.operations = Operations(
            self.failures, self.schemas, notify=self.indexer.wake, keys=config.ordering
        )
        self.alerter: Alerter | None = None
        if config.ops.alerts is not None:
            # Built now so that it starts with the other connections.
            slack = self.connections.get(config.ops.alerts.connection)
            self.alerter = Alerter(self.failures, slack, config.ops.alerts, metrics=self.metrics)
        self._alerting: asyncio.Task[None] | None = None
        self._compacting: asyncio.Task[None] | None = None
        self._trimming: asyncio.Task[None] | None = None
        self.ingress = Ingress(
            self.log, self.schemas, config.ingress, EVENTS_TOPIC, keys=config.ordering
        )
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
        self._compacting = asyncio.create_task(self._compact_forever(), name="platypus-compact")
        # Without it, RSS creeps with the C heap's free chunks (allocator's docstring).
        self._trimming = asyncio.create_task(
            allocator.trim_forever(allocator.TRIM_INTERVAL), name="platypus-malloc-trim"
        )
        if self.alerter is not None:
            self._alerting = asyncio.create_task(self.alerter.run_forever(), name="platypus-alerts")
        if self.config.pollers:
            from platypus.sources.pollers import start_pollers

            self._pollers = await start_pollers(self.config, self.log, self.ingress)
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
            routes=self._ops_routes(),
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

    def _ops_routes(self) -> list[BaseRoute]:
        """``/metrics``, ``/readyz`` and the dashboard at ``/ops``; secrets are read here."""
        from platypus.ops.web import create_dashboard  # Jinja2 templates: only when serving

        settings = self.config.ops
        auth = Authenticator(settings, self.failures)

        async def metrics(request: Request) -> Response:
            if not auth.metrics_allowed(request.headers):
                return Response(
                    "a bearer token is needed (ops.metrics_token)",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
            await self.metrics.refresh(
                store=self.failures,
                lag=self.consumer_lag,
                running=self.runtime.running,
                adapters=self.connections.built(),
            )
            return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

        async def readyz(_request: Request) -> JSONResponse:
            checks = await self.readiness()
            ready = all(checks.values())
            return JSONResponse(
                {"status": "ready" if ready else "not ready", "checks": checks},
                status_code=200 if ready else 503,
            )

        routes: list[BaseRoute] = [
            Route("/metrics", metrics, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
        if settings.dashboard:
            dashboard = create_dashboard(
                self.operations, auth, prefix="/ops", secure_cookies=settings.secure_cookies
            )
            routes.append(Mount("/ops", app=dashboard))
        return routes

    def consumer_lag(self) -> dict[int, int]:
        """Events appended but not yet committed, per partition of the events topic."""
        ends = self.log.end_offsets(EVENTS_TOPIC)
        committed = self.log.committed(CONSUMER_GROUP, EVENTS_TOPIC)
        return {p: max(0, end - committed.get(p, 0)) for p, end in ends.items()}

    async def readiness(self) -> dict[str, bool]:
        """What ``/readyz`` checks: log readable, consumer and indexer running, store up."""
        checks: dict[str, bool] = {}
        try:
            self.log.end_offsets(EVENTS_TOPIC)
            checks["log"] = True
        except Exception:  # noqa: BLE001 -- any failure means not ready
            checks["log"] = False
        checks["consumer"] = self.runtime.running
        checks["indexer"] = self._indexing is not None and not self._indexing.done()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.failures.count), timeout=5)
            checks["store"] = True
        except Exception:  # noqa: BLE001 -- unreachable, slow or broken: not ready
            checks["store"] = False
        return checks

    async def drain(self) -> None:
        """Wait until every accepted event has an outcome."""
        await self.runtime.drain()

    async def compact(self) -> Compaction:
        """Delete from the log what is past its retention (``retention:``) and not needed:
        dead letters only once the failed-event store has them."""
        indexed = await asyncio.to_thread(self.failures.positions, DEAD_LETTER_TOPIC)
        done = await self.log.compact(self.config.retention, indexed=indexed)
        if done.total:
            _log.info(
                "event log compacted",
                records=done.records,
                dead_letters=done.dead_letters,
                outcomes=done.outcomes,
                deliveries=done.deliveries,
                rejected=done.rejected,
                dictionaries=done.dictionaries,
            )
        return done

    async def _compact_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention.interval)
            try:
                await self.compact()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- the next pass tries again
                _log.exception("compacting the event log failed; trying again later")

    async def stop(self) -> None:
        """Stop HTTP first (no new events), then the consumer, connections and log."""
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
            self._server = None
        if self._pollers is not None:
            await self._pollers.stop()
            self._pollers = None
        for task in (self._alerting, self._compacting, self._trimming):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._alerting = self._compacting = self._trimming = None
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
