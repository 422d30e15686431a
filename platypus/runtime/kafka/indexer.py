"""``platypus indexer`` on Kafka: dead letters and outcomes into the failed-event store.

One process per deployment does the indexer's work (the store's indexer lease,
`platypus.ops.lease`, lets one of several work and the others stand by). It is
the same `platypus.ops.indexer.Indexer` as the embedded runtime's, over a log of
Kafka topics:

* ``<prefix>.dead-letter`` becomes failed-event entries, as on the embedded
  runtime (a record another tool wrote is indexed with what it has);
* ``<prefix>.outcomes`` becomes the store's bounded outcome history ("what
  happened to event X?"), which is also how a replay learns its outcome;
* replays asked for from the dashboard or ``platypus dlq replay`` are produced
  to ``<prefix>.events`` with ``acks=all``, keyed as the event was, with the
  ``platypus.replay-of`` header (`KafkaReplayTarget`).

Positions. The store is the truth of how far the indexer has read: the entries
(or outcomes) of a batch and the position after it are written in one
transaction, and a restarted indexer seeks to the store's positions. So a kill
-9 at any moment loses no dead letter and indexes none twice. Its consumer
group (``<group_id>.indexer``) is committed from the store's positions after
each pass, only ever up to what the store holds, so the lag tools of Kafka show
how far behind the indexer is.

The process also serves the operations dashboard at ``/ops``, ``/healthz``,
``/readyz`` and ``/metrics`` (`indexer_readiness`). Readiness fails, and says
why, when the broker does not answer (or a topic is missing, or the broker lost
data), the store does not answer, or indexing stopped. Not holding the indexer
lease is not a failure: a standby is ready, and ``/readyz`` says ``"role":
"standby"`` and who is indexing instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from platypus.config import KafkaSettings, ProjectConfig, load_config
from platypus.flow.model import FlowSpec
from platypus.ops.indexer import Indexer
from platypus.ops.replays import Replay
from platypus.ops.store import FailureStore, Lease, OutcomeRow, default_store_url
from platypus.records import (
    DEAD_LETTER,
    EVENTS,
    OUTCOMES,
    NewRecord,
    Outcome,
    Record,
    decode_outcome,
)
from platypus.runtime.kafka.producer import KafkaEventSink

__all__ = [
    "KafkaIndexedLog",
    "KafkaIndexer",
    "KafkaReplayTarget",
    "indexer_group",
    "indexer_readiness",
    "run_indexer",
]

_log = structlog.get_logger("platypus.ops")

_BUFFERED = 20_000  # records read ahead of the store at most


def indexer_group(settings: KafkaSettings) -> str:
    """The consumer group whose committed offsets show how far the indexer has stored."""
    return f"{settings.group_id}.indexer"


class KafkaIndexedLog:
    """The dead-letter and outcomes topics, read ahead into memory for the indexer.

    An `platypus.ops.indexer.IndexedLog` (dead letters, outcomes of replays) and
    an `platypus.ops.indexer.OutcomeFeed` (the outcome history). `start` seeks
    every partition to the store's position; `commit` tells the consumer group
    what the store now holds.
    """

    def __init__(self, settings: KafkaSettings, store: FailureStore, data_dir: Path) -> None:
        self.settings = settings
        self.store = store
        self._data_dir = data_dir
        self.dead_letter_topic = settings.topic(DEAD_LETTER)
        self.outcomes_topic = settings.topic(OUTCOMES)
        self.events_topic = settings.topic(EVENTS)
        self._consumer: Any = None
        self._partitions: dict[str, list[int]] = {}
        self._buffer: dict[tuple[str, int], deque[Record]] = {}
        self._room = asyncio.Event()
        self._room.set()
        self._pump: asyncio.Task[None] | None = None
        self._committed: dict[tuple[str, int], int] = {}
        self.arrived = asyncio.Event()
        """Set when records arrive: the indexer's cue to run a pass now."""
        self.bad_outcomes = 0

    # -- IndexedLog ---------------------------------------------------------------

    @property
    def partitions(self) -> int:
        """Partitions of the dead-letter topic."""
        return max(self._partitions.get(self.dead_letter_topic, [0])) + 1

    @property
    def data_dir(self) -> Path:
        """Only named in the lease's detail: the Kafka indexer keeps no files."""
        return self._data_dir

    def fetch(self, topic: str, positions: Mapping[int, int], limit: int = 500) -> list[Record]:
        """Buffered records of ``topic`` from each partition's position on, up to ``limit``."""
        out: list[Record] = []
        for partition in self._partitions.get(topic, []):
            queue = self._buffer.get((topic, partition))
            if not queue:
                continue
            start = positions.get(partition, 0)
            while queue and queue[0].offset < start:
                queue.popleft()  # already in the store (another indexer, or before a restart)
            for record in queue:
                if len(out) >= limit:
                    break
                out.append(record)
        self._room.set()
        return out

    def outcome(self, topic: str, partition: int, offset: int, flow: str) -> str | None:
        """The outcome of ``flow`` for that record, once the outcome history has it."""
        return self.store.outcome_status(topic, partition, offset, flow)

    # -- OutcomeFeed ----------------------------------------------------------------

    def index(self, store: FailureStore, lease: Lease) -> int:
        """Store the buffered outcomes and the position after them; how many read."""
        total = 0
        while True:
            saved = store.positions(self.outcomes_topic)
            records = self.fetch(self.outcomes_topic, saved, 2000)
            if not records:
                return total
            moved = dict(saved)
            rows: list[OutcomeRow] = []
            for record in records:
                moved[record.partition] = max(moved.get(record.partition, 0), record.offset + 1)
                row = self._row(record)
                if row is not None:
                    rows.append(row)
            store.record_outcomes(
                rows,
                topic=self.outcomes_topic,
                positions={p: o for p, o in moved.items() if o != saved.get(p)},
                lease=lease,
            )
            total += len(records)

    def _row(self, record: Record) -> OutcomeRow | None:
        try:
            outcome, settled_at = decode_outcome(record.value)
        except (ValueError, TypeError):
            # Not ours (another producer on the topic): skipped, and said once in a while.
            self.bad_outcomes += 1
            if self.bad_outcomes in (1, 10, 100) or self.bad_outcomes % 1000 == 0:
                _log.warning(
                    "a record on the outcomes topic is not an outcome; skipped",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    skipped=self.bad_outcomes,
                )
            return None
        return _outcome_row(outcome, settled_at)

    # -- the consumer -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect, assign every partition of both topics, seek to the store's positions."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=indexer_group(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        assigned: list[Any] = []
        for topic in (self.dead_letter_topic, self.outcomes_topic):
            found = await _partitions_of(self._consumer, topic)
            self._partitions[topic] = found
            assigned.extend(TopicPartition(topic, p) for p in found)
        self._consumer.assign(assigned)
        await self.seek_to_store()
        self._pump = asyncio.create_task(self._read_forever(), name="platypus-indexer-read")

    async def seek_to_store(self) -> None:
        """Read each partition again from where the store's position says (the truth)."""
        from aiokafka import TopicPartition

        for topic in (self.dead_letter_topic, self.outcomes_topic):
            saved = await asyncio.to_thread(self.store.positions, topic)
            for partition in self._partitions[topic]:
                tp = TopicPartition(topic, partition)
                self._buffer[(topic, partition)] = deque()
                if partition in saved:
                    self._consumer.seek(tp, saved[partition])
                else:
                    await self._consumer.seek_to_beginning(tp)

    async def _read_forever(self) -> None:
        while True:
            if sum(len(q) for q in self._buffer.values()) >= _BUFFERED:
                self._room.clear()
                await self._room.wait()
                continue
            batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, messages in batches.items():
                queue = self._buffer.setdefault((tp.topic, tp.partition), deque())
                for message in messages:
                    if queue and message.offset <= queue[-1].offset:
                        continue
                    queue.append(_record(message))
            if batches:
                self.arrived.set()

    async def commit(self) -> None:
        """Commit the consumer group to the store's positions (never past them)."""
        from aiokafka import TopicPartition
        from aiokafka.structs import OffsetAndMetadata

        offsets: dict[Any, Any] = {}
        for topic in (self.dead_letter_topic, self.outcomes_topic):
            saved = await asyncio.to_thread(self.store.positions, topic)
            for partition, offset in saved.items():
                if self._committed.get((topic, partition)) != offset:
                    offsets[TopicPartition(topic, partition)] = OffsetAndMetadata(offset, "")
        if not offsets:
            return
        await self._consumer.commit(offsets)
        for tp, meta in offsets.items():
            self._committed[(tp.topic, tp.partition)] = meta.offset

    async def stop(self) -> None:
        """Stop reading and disconnect."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    @property
    def reading(self) -> bool:
        """Whether the consumer is still reading (for ``/healthz``)."""
        return self._pump is not None and not self._pump.done()


class KafkaReplayTarget:
    """Replays produced to the events topic with ``acks=all``, in order, keyed as before.

    Kafka keeps no idempotency keys, so this target cannot promise what the
    embedded log does (a replay token sent twice lands once): an indexer killed
    between the broker's acknowledgement and the store write that records it
    sends that replay again on its next pass. The entry then follows the second
    copy, and the delivery ledger keeps a step already delivered by the first
    copy from reaching the vendor again.
    """

    def __init__(self, sink: KafkaEventSink, topic: str) -> None:
        self.sink = sink
        self.topic = topic

    @property
    def name(self) -> str:
        """The topic, for messages."""
        return self.topic

    async def send(self, replays: Sequence[Replay]) -> list[tuple[int, int]]:
        """Produce ``replays`` in this order; (partition, offset) of each."""
        records = [NewRecord(key=r.key, value=r.value, headers=tuple(r.headers)) for r in replays]
        placed = await self.sink.append(self.topic, records)
        out: list[tuple[int, int]] = []
        for where in placed:
            if where is None:  # pragma: no cover -- the Kafka sink drops nothing here
                raise RuntimeError("the Kafka sink dropped a replay")
            out.append((where.partition, where.offset))
        return out


def _outcome_row(outcome: Outcome, settled_at: float) -> OutcomeRow:
    return OutcomeRow(
        event_id=outcome.event_id[:256],
        event_type=outcome.event_type[:256],
        flow=outcome.flow,
        flow_version=outcome.flow_version,
        step=outcome.step,
        status=outcome.status,
        detail=outcome.detail,
        attempts=outcome.attempts,
        business_key=outcome.key[:256],
        topic=outcome.topic,
        partition=outcome.partition,
        offset=outcome.offset,
        settled_at=datetime.fromtimestamp(settled_at, UTC),
        appended_at=(
            datetime.fromtimestamp(outcome.appended_at, UTC) if outcome.appended_at else None
        ),
        # Written by another tool, it might be anything: only an entry's id is kept.
        replay_of=(
            outcome.replay_of
            if type(outcome.replay_of) is int and 0 < outcome.replay_of < 2**31
            else None
        ),
    )


def _record(message: Any) -> Record:
    headers = tuple(
        (str(name), value if isinstance(value, bytes) else bytes(value or b""))
        for name, value in (message.headers or ())
    )
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=(message.key or b"").decode("utf-8", "replace"),
        value=message.value or b"",
        headers=headers,
        timestamp=(message.timestamp or 0) / 1000.0,
    )


async def _partitions_of(consumer: Any, topic: str, patience: float = 30.0) -> list[int]:
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return sorted(found)
        if asyncio.get_running_loop().time() > deadline:
            from platypus.exceptions import ConfigurationError

            raise ConfigurationError(
                f"topic {topic} has no partitions on the broker: start a `platypus worker` "
                "first, or create the topics"
            )
        await consumer.topics()  # refreshes the metadata
        await asyncio.sleep(0.2)


class KafkaIndexer:
    """The indexer process's parts: the topics, the replay producer, the shared `Indexer`."""

    def __init__(
        self,
        config: ProjectConfig,
        settings: KafkaSettings,
        store: FailureStore,
        flows: Sequence[FlowSpec] = (),
        *,
        lease_ttl: float | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.store = store
        self.log = KafkaIndexedLog(settings, store, config.resolve(config.data_dir))
        self.sink = KafkaEventSink(settings)
        self.target = KafkaReplayTarget(self.sink, settings.topic(EVENTS))
        options: dict[str, Any] = {} if lease_ttl is None else {"lease_ttl": lease_ttl}
        self.indexer = Indexer(
            self.log,
            store,
            target=self.target,
            flows=flows,
            events_topic=settings.topic(EVENTS),
            dead_letter_topic=settings.topic(DEAD_LETTER),
            outcomes=self.log,
            quiet=True,
            **options,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Create the store's tables, connect, and start indexing."""
        await asyncio.to_thread(self.store.create)
        await self.sink.start()
        await self.log.start()
        self._tasks = [
            asyncio.create_task(self.indexer.run_forever(1.0, lock=False), name="platypus-index"),
            asyncio.create_task(self._wake_and_commit(), name="platypus-index-commit"),
        ]

    async def _wake_and_commit(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.log.arrived.wait(), timeout=1.0)
            self.log.arrived.clear()
            self.indexer.wake()
            try:
                await self.log.commit()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- the store holds the truth; commit again later
                _log.warning("committing the indexer's consumer group failed; trying again")

    @property
    def running(self) -> bool:
        """Whether indexing and reading are both still going."""
        return bool(self._tasks) and all(not t.done() for t in self._tasks) and self.log.reading

    async def stop(self) -> None:
        """Stop indexing (the lease is given up), commit, disconnect."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.log.commit()
        await self.log.stop()
        await self.sink.stop()


_STANDBY_NOTE = (
    "another indexer holds the lease and indexes; this one is ready and idle, "
    "and takes over within the lease's ttl if that one stops"
)


def indexer_readiness(
    kafka: Mapping[str, str | None],
    *,
    store_error: str | None,
    running: bool,
    holding: bool,
    holder: str | None,
) -> tuple[int, dict[str, Any]]:
    """``/readyz`` of ``platypus indexer``: the status code and a body that says why.

    ``kafka`` are the broker's checks (`KafkaHealth.readiness`); ``store_error``
    why the store did not answer (None: it did); ``running`` whether reading and
    indexing still go; ``holding`` whether this process holds the indexer lease,
    ``holder`` who does. A standby (``holding`` false) is ready: it is not failing,
    it waits its turn, and the body says so.
    """
    checks: dict[str, str | None] = dict(kafka)
    checks["store"] = (
        f"the failed-event store does not answer: {store_error}" if store_error else None
    )
    checks["indexer"] = None if running else "indexing stopped (see the process's log)"
    failing = {name: reason for name, reason in checks.items() if reason is not None}
    body: dict[str, Any] = {
        "status": "not ready" if failing else "ready",
        "checks": {name: reason is None for name, reason in checks.items()},
        "role": "active" if holding else "standby",
        "lease_holder": holder,
    }
    if failing:
        body["reasons"] = failing
    if not holding:
        body["note"] = _STANDBY_NOTE
    return (503 if failing else 200), body


def run_indexer(
    project: Path, *, broker: str | None = None, host: str | None = None, port: int = 8788
) -> None:
    """``platypus indexer``: index dead letters and outcomes, serve ``/ops``, until stopped."""
    import uvicorn
    from prometheus_client import Gauge
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import BaseRoute, Mount, Route

    from platypus.adapter import AdapterRegistry
    from platypus.flow.loader import load_flows
    from platypus.ops.actions import Operations
    from platypus.ops.alerts import Alerter
    from platypus.ops.auth import Authenticator
    from platypus.runtime.connections import Connections
    from platypus.runtime.kafka.health import KafkaHealth, metrics_allowed
    from platypus.runtime.kafka.settings import settings_for
    from platypus.runtime.kafka.topics import wait_for_broker
    from platypus.schema_registry import SchemaRegistry

    config = load_config(root=project)
    settings = settings_for(config, broker)
    wait_for_broker(settings)
    data_dir = config.resolve(config.data_dir)
    store = FailureStore(config.failures_store or default_store_url(data_dir))
    flows = list(load_flows(config.resolve(config.flows)))
    node = KafkaIndexer(config, settings, store, flows)
    schemas = SchemaRegistry.default()
    operations = Operations(store, schemas, notify=node.indexer.wake, keys=config.ordering)
    health = KafkaHealth(
        settings,
        [settings.topic(EVENTS), settings.topic(DEAD_LETTER), settings.topic(OUTCOMES)],
    )
    # Failure alerts: the indexer is the deployment's process beside the store. Every
    # indexer runs the rules; the alerts lease lets one of them post.
    connections = Connections(config, AdapterRegistry.default())
    alerter = (
        Alerter(
            store,
            connections.get(config.ops.alerts.connection),
            config.ops.alerts,
            metrics=health.metrics,
        )
        if config.ops.alerts is not None
        else None
    )

    behind = Gauge(
        "platypus_indexer_lag",
        "Records on the broker not yet in the failed-event store, by topic and partition.",
        ["topic", "partition"],
        registry=health.metrics.registry,
    )
    token = config.ops.metrics_token
    metrics_token = token.resolve().get_secret_value() if token is not None else None

    def look_at_store() -> tuple[str | None, str | None]:
        # One query answers both: does the store answer, and who indexes.
        try:
            holder = store.lease_holder(node.indexer.lease.name) or {}
        except Exception as exc:  # noqa: BLE001 -- any failure: the store does not answer
            return f"{type(exc).__name__}: {exc}"[:300], None
        return None, holder.get("holder")

    async def readyz(_request: Request) -> JSONResponse:
        try:
            store_error, holder = await asyncio.wait_for(
                asyncio.to_thread(look_at_store), timeout=5
            )
        except TimeoutError:
            store_error, holder = "no answer within 5 s", None
        _ready, kafka = health.readiness()
        status, body = indexer_readiness(
            kafka,
            store_error=store_error,
            running=node.running,
            holding=node.indexer.lease.current is not None,
            holder=holder,
        )
        return JSONResponse(body, status_code=status)

    def lag() -> None:
        for topic in (settings.topic(DEAD_LETTER), settings.topic(OUTCOMES)):
            saved = store.positions(topic)
            for partition, end in health.state.high_ends.get(topic, {}).items():
                behind.labels(topic, str(partition)).set(max(0, end - saved.get(partition, 0)))

    async def metrics(request: Request) -> Response:
        if not metrics_allowed(metrics_token, request.headers.get("authorization", "")):
            return Response(
                "a bearer token is needed (ops.metrics_token)",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        await health.metrics.refresh(store=store)
        try:
            await asyncio.to_thread(lag)
        except Exception:  # noqa: BLE001 -- a scrape must answer; /readyz says why
            _log.warning("metrics: the failed-event store did not answer", exc_info=True)
        text = await health.render_metrics(running=node.running)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> JSONResponse:
        ok = node.running
        holder = store.lease_holder(node.indexer.lease.name) or {}
        body = {
            "status": "ok" if ok else "failing",
            "indexing": node.indexer.lease.current is not None,
            "lease_holder": holder.get("holder"),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def serve() -> None:
        await node.start()
        await health.probe()
        probing = asyncio.create_task(health.run(), name="platypus-health")
        alerting: asyncio.Task[None] | None = None
        if alerter is not None:
            await connections.start()
            alerting = asyncio.create_task(alerter.run_forever(), name="platypus-alerts")
        routes: list[BaseRoute] = [
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
        if config.ops.dashboard:
            from platypus.ops.web import create_dashboard

            auth = Authenticator(config.ops, store)
            dashboard = create_dashboard(
                operations, auth, prefix="/ops", secure_cookies=config.ops.secure_cookies
            )
            routes.append(Mount("/ops", app=dashboard))
        server = uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=routes),
                host=host or config.ingress.host,
                port=port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        _log.info("platypus indexer started", broker=settings.broker, store=store.url, port=port)
        try:
            await server.serve()
        finally:
            for task in (probing, alerting):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await connections.close()
            await node.stop()
            store.close()

    asyncio.run(serve())
