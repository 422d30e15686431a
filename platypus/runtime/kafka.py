"""The Kafka runtime: the same flows on faust-streaming, for more than one machine.

Topics (``kafka.topic_prefix``, default ``platypus``):

* ``platypus.events``      CloudEvents, keyed by ``subject``: one record's events
                           share a partition (Kafka's murmur2 partitioner, the
                           same as the embedded log) and stay in order;
* ``platypus.dead-letter`` the same dead-letter records as the embedded runtime;
* ``platypus.rejected``    bodies the ingress refused, with the reasons.

Events are accepted in both CloudEvents Kafka bindings: structured mode (the
value is the JSON event, ``content-type: application/cloudevents+json``) and
binary mode (the value is ``data``, attributes in ``ce_*`` headers).

Commits. Faust acknowledges events itself unless told not to, and its own
commit arithmetic can pass an unacknowledged offset (see `run_worker`). So the
agent reads with manual acknowledgement, and an event is acknowledged only once
its outcome is durable (delivered, filtered, or its dead letter acknowledged by
the broker with ``acks=all``) AND every earlier event of its partition is too
(`PartitionProgress`). Faust only ever sees a gap-free run of acknowledged
offsets, so whatever it commits is safe. Within a partition, events run
concurrently across keys and in order per key (`KeyedExecutor`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from platypus.adapter import AdapterRegistry
from platypus.config import KafkaSettings, ProjectConfig, load_config
from platypus.deadletter import SourceRecord
from platypus.exceptions import ConfigurationError
from platypus.flow.loader import load_flows
from platypus.flow.model import FlowSpec
from platypus.ledger import SqliteLedger, SqlLedger
from platypus.runtime.log import AppendItem
from platypus.runtime.ordering import KeyedExecutor, PartitionProgress
from platypus.runtime.processor import VALIDATED_HEADER, Connections, Processor
from platypus.schema_registry import SchemaRegistry

__all__ = [
    "KafkaEventSink",
    "KafkaRuntime",
    "decode_record",
    "ensure_topics",
    "run_web",
    "run_worker",
]

_log = structlog.get_logger("platypus.runtime")

BROKER_ENV = "PLATYPUS_BROKER"

_CE_PREFIX = "ce_"


def settings_for(config: ProjectConfig, broker: str | None = None) -> KafkaSettings:
    """The Kafka settings, with ``broker`` (or ``PLATYPUS_BROKER``) overriding the file."""
    chosen = broker or os.environ.get(BROKER_ENV)
    if not chosen:
        return config.kafka
    if "://" not in chosen:
        chosen = f"kafka://{chosen}"
    return config.kafka.model_copy(update={"broker": chosen})


def decode_record(
    value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> tuple[dict[str, Any] | None, str | None]:
    """A Kafka record as a structured CloudEvent dict, or (None, why not).

    Binary mode (``ce_*`` headers) is recognised by its ``ce_specversion``
    header; anything else is read as structured mode.
    """
    found = {name.lower(): raw for name, raw in headers}
    if _CE_PREFIX + "specversion" not in found:
        try:
            event = json.loads(value or b"")
        except ValueError as exc:
            return None, f"the record is not a JSON event: {exc}"
        if not isinstance(event, dict):
            return None, "the record is not a JSON event: a CloudEvent is a JSON object"
        return event, None
    event = {
        name[len(_CE_PREFIX) :]: raw.decode("utf-8", "replace")
        for name, raw in found.items()
        if name.startswith(_CE_PREFIX)
    }
    content_type = found.get("content-type", b"application/json").decode("utf-8", "replace")
    event["datacontenttype"] = content_type
    if value is None:
        event["data"] = None
    elif "json" in content_type:
        try:
            event["data"] = json.loads(value)
        except ValueError as exc:
            return None, f"the record's data is not JSON although its content-type is: {exc}"
    else:
        # Kept so the schema check reports it, rather than dropped.
        event["data"] = base64.b64encode(value).decode()
    return event, None


@dataclass(frozen=True, slots=True)
class _Item:
    event: Any  # faust EventT
    tp: Any  # faust TP
    offset: int
    source: SourceRecord
    headers: dict[str, bytes]


class KafkaRuntime:
    """A faust app that runs the flows over the events topic."""

    def __init__(
        self,
        config: ProjectConfig,
        flows: Sequence[FlowSpec],
        *,
        broker: str | None = None,
        web_port: int | None = None,
        schemas: SchemaRegistry | None = None,
        adapters: AdapterRegistry | None = None,
    ) -> None:
        import faust

        self.config = config
        self.settings = settings_for(config, broker)
        if web_port is not None:
            self.settings = self.settings.model_copy(update={"web_port": web_port})
        self.schemas = schemas or SchemaRegistry.default()
        self.connections = Connections(config, adapters or AdapterRegistry.default())
        params = self.connections.prepare(flows)
        self.ledger: SqliteLedger | SqlLedger = (
            SqlLedger(self.settings.ledger_url)
            if self.settings.ledger_url
            else SqliteLedger(config.resolve(config.data_dir) / "ledger.db")
        )
        self.processor = Processor(
            flows,
            self.schemas,
            self.connections,
            retry=config.retry,
            concurrency=config.concurrency,
            record_delivery=_no_ledger,
            params=params,
            ledger=self.ledger,
        )
        s = self.settings
        self.app = faust.App(
            s.group_id,
            broker=s.broker,
            value_serializer="raw",
            key_serializer="raw",
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=s.session_timeout,
            broker_rebalance_timeout=s.rebalance_timeout,
            broker_heartbeat_interval=s.heartbeat_interval,
            broker_commit_interval=0.5,
            producer_acks=-1,
            # Do not hold a rebalance until every fetched event is acknowledged: an
            # event may be waiting out a long retry backoff.
            stream_wait_empty=False,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            topic_allow_declare=False,
            topic_disable_leader=True,
            web_enabled=True,
            web_port=s.web_port,
            web_bind="0.0.0.0",  # noqa: S104 -- the health endpoint is for the orchestrator
            web_in_thread=False,
        )
        self.events_topic = self.app.topic(
            s.topic("events"), key_type=bytes, value_type=bytes, partitions=s.partitions
        )
        self.dead_letter_topic = s.topic("dead-letter")
        self.executor: KeyedExecutor[_Item] = KeyedExecutor(
            self._handle, max_in_flight=s.max_in_flight
        )
        self._progress: dict[Any, PartitionProgress] = {}
        self._pending: dict[Any, dict[int, Any]] = {}
        self._started = False
        self._start_lock = asyncio.Lock()
        self.app.agent(self.events_topic, name="platypus-events")(self._agent)
        self.app.page("/healthz")(self._health_view())
        # faust's stubs type signal receivers too narrowly for bound async methods.
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]

    def _health_view(self) -> Any:
        from faust import web

        runtime = self

        class Health(web.View):
            async def get(self, request: web.Request) -> web.Response:
                del request
                failure = runtime.executor.failure
                body = {"status": "failing" if failure else "ok", "in_flight": runtime.in_flight}
                return self.json(body, status=500 if failure else 200)

        return Health

    @property
    def in_flight(self) -> int:
        """Events fetched whose outcome is not yet durable."""
        return self.executor.in_flight

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if not self._started:
                await self.connections.start()
                self._started = True

    async def _on_shutdown(
        self, _sender: Any, *_args: Any, signal: Any = None, **_kwargs: Any
    ) -> None:
        self.processor.stop()
        await self.executor.stop(grace=5.0)
        await self.connections.close()
        self.ledger.close()

    async def _on_revoked(
        self, _sender: Any, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        # Another worker resumes these partitions from their committed offsets.
        # Events of them still running here finish, but are no longer acknowledged.
        revoked = kwargs.get("revoked", args[0] if args else ())
        for tp in revoked:
            self._progress.pop(tp, None)
            self._pending.pop(tp, None)

    async def _agent(self, stream: Any) -> None:
        await self._ensure_started()
        async for event in stream.noack().events():
            message = event.message
            tp, offset = message.tp, message.offset
            progress = self._progress.get(tp)
            if progress is None:
                progress = self._progress[tp] = PartitionProgress(offset)
                self._pending[tp] = {}
            progress.started(offset)
            self._pending[tp][offset] = event
            headers = _headers(message.headers)
            key = (message.key or b"").decode("utf-8", "replace")
            source = SourceRecord(
                topic=message.topic,
                partition=tp.partition,
                offset=offset,
                key=key,
                value=message.value or b"",
                headers=tuple(headers),
            )
            await self.executor.submit(key, _Item(event, tp, offset, source, dict(headers)))

    async def _handle(self, item: _Item) -> None:
        event, problem = decode_record(item.source.value, item.source.headers)
        validated = item.headers.get(VALIDATED_HEADER)
        if event is None:
            result = self.processor.unreadable(item.source, problem or "not an event")
        else:
            result = await self.processor.process(
                item.source,
                {},
                validated.decode() if validated else None,
                event=event,
            )
        for outcome in result.outcomes:
            letter = outcome.dead_letter
            if letter is not None:
                await self.app.producer.send_and_wait(
                    self.dead_letter_topic,
                    letter.key.encode(),
                    letter.value,
                    None,
                    None,
                    letter.headers,
                )
        self._done(item)

    def _done(self, item: _Item) -> None:
        progress = self._progress.get(item.tp)
        pending = self._pending.get(item.tp)
        if progress is None or pending is None:
            return  # the partition was revoked meanwhile
        for offset in progress.finish(item.offset):
            pending.pop(offset).ack()


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    if not raw:
        return []
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    return [
        (str(name), value if isinstance(value, bytes) else bytes(value or b""))
        for name, value in pairs
    ]


async def _no_ledger(*_args: Any) -> None:
    # On Kafka, the step-by-step record of the embedded log is replaced by the
    # delivery ledger, which guards the writes vendors do not de-duplicate
    # themselves; writes they do de-duplicate are simply sent again.
    return None


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the events, dead-letter and rejected topics if they do not exist."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.topic(name), count, settings.replication_factor)
            for name, count in (
                ("events", settings.partitions),
                ("dead-letter", settings.partitions),
                ("rejected", 1),
            )
            if settings.topic(name) not in existing
        ]
        if wanted:
            # Another worker may have created them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def run_worker(
    project: Path,
    *,
    broker: str | None = None,
    web_port: int | None = None,
    log_level: str = "info",
) -> None:
    """``platypus worker``: run the flows as a faust worker until stopped."""
    import faust

    config = load_config(root=project)
    flows = load_flows(config.resolve(config.flows))
    runtime = KafkaRuntime(config, flows, broker=broker, web_port=web_port)
    _wait_for_broker(runtime.settings)
    worker = faust.Worker(
        runtime.app,
        loglevel=_FAUST_LEVELS.get(log_level.lower(), "warn"),
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    # faust's start-up spinner writes backspaces and a show-cursor escape to stdout
    # even when it is no terminal, ahead of the first log line; without it, faust
    # logs "Ready" instead.
    worker.spinner = None
    worker.execute_from_commandline()


_FAUST_LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}


def _wait_for_broker(settings: KafkaSettings, patience: float = 60.0) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            asyncio.run(ensure_topics(settings))
            return
        except Exception as exc:  # noqa: BLE001 -- retried, then reported
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"cannot reach the Kafka broker at {settings.broker}: {exc}. "
                    f"Check kafka.broker in platypus.yaml or {BROKER_ENV}."
                ) from None
            _log.warning("broker not reachable yet, retrying", broker=settings.broker)
            time.sleep(1.0)


class KafkaEventSink:
    """The ingress's sink on Kafka: produces with ``acks=all`` before answering."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._client: Any = None

    async def start(self) -> None:
        """Connect the producer (inside the running event loop, as aiokafka requires)."""
        from aiokafka import AIOKafkaProducer

        self._client = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            enable_idempotence=self.settings.idempotent_producer,
        )
        await self._client.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._client is not None:
            await self._client.stop()
            self._client = None

    @property
    def _producer(self) -> Any:
        if self._client is None:
            raise RuntimeError("the Kafka sink is not started")
        return self._client

    async def append(self, topic: str, items: Sequence[AppendItem]) -> list[tuple[int, int] | None]:
        """Produce every item and wait for the broker to acknowledge all of them."""
        futures = [
            await self._producer.send(
                topic, value=item.value, key=item.key.encode(), headers=list(item.headers)
            )
            for item in items
        ]
        placed = await asyncio.gather(*futures)
        return [(meta.partition, meta.offset) for meta in placed]

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        """Produce the refused body and reasons to the rejected topic; its offset is the id."""
        record = {
            "reason": reason,
            "errors": list(errors),
            "body": body.decode("utf-8", "replace"),
            "received_at": time.time(),
        }
        meta = await self._producer.send_and_wait(
            self.settings.topic("rejected"), value=json.dumps(record).encode()
        )
        return int(meta.offset)


def run_web(
    project: Path, *, broker: str | None = None, host: str | None = None, port: int | None = None
) -> None:
    """``platypus web``: the HTTP ingress, producing accepted events to Kafka."""
    import uvicorn

    from platypus.ingress import Ingress, create_app

    config = load_config(root=project)
    settings = settings_for(config, broker)
    _wait_for_broker(settings)
    sink = KafkaEventSink(settings)
    ingress = Ingress(sink, SchemaRegistry.default(), config.ingress, settings.topic("events"))
    app = create_app(ingress, sources=config.sources, data_dir=config.resolve(config.data_dir))

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
