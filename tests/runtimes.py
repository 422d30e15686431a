"""The two runtimes behind one test interface, for the conformance suite.

``embedded``: a `Platypus` app in the test's event loop, over the SQLite log.
``kafka``: a real ``platypus worker`` subprocess consuming from a real broker
(Tansu, or ``PLATYPUS_TEST_KAFKA``), with events produced through the same
ingress code ``platypus web`` runs.

Both talk to the same fake vendor over loopback HTTP, so a test asserts the same
behaviour, in the same words, on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from platypus.config import ConnectionSpec, KafkaSettings
from platypus.deadletter import describe_headers
from platypus.ingress import Ingress
from platypus.keys import OrderingKeys
from platypus.ops.actions import Operations
from platypus.ops.store import FailureStore
from platypus.partitioning import partition_for
from platypus.records import CONSUMER_GROUP, DEAD_LETTER_TOPIC, EVENTS_TOPIC, NewRecord
from platypus.retry import RetryPolicy
from platypus.runtime.embedded import Platypus
from platypus.runtime.kafka import KafkaEventSink, ensure_topics
from platypus.schema_registry import SchemaRegistry
from tests.kafka_broker import KafkaBroker
from tests.support import free_port, running, stored_form

RUNTIMES = ["embedded", "kafka"]

# Short waits so retry tests are quick; tests that need longer ones say so.
TEST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=4)


@dataclass(frozen=True)
class Letter:
    """A dead-letter record as any client reads it."""

    key: str
    value: bytes
    headers: dict[str, Any]


class Runtime(Protocol):
    name: str
    partitions: int

    async def ingest(self, *events: Mapping[str, Any]) -> list[bytes]:
        """Accept events through the ingress (202 each); returns the bytes stored."""
        ...

    async def produce_raw(self, key: str, value: bytes) -> None:
        """Write a record straight to the events topic, as another producer would."""
        ...

    async def drain(self) -> None:
        """Wait until every event has a durable outcome and is committed."""
        ...

    def committed(self) -> dict[int, int]:
        """Committed offset of each partition of the events topic."""
        ...

    def dead_letters(self) -> list[Letter]:
        """Every record on the dead-letter topic."""
        ...


class OpsRuntime(Runtime, Protocol):
    """A runtime with its failed-event store and the operations over it."""

    store: FailureStore
    operations: Operations


class EmbeddedDriver:
    name = "embedded"

    def __init__(self, app: Platypus) -> None:
        self.app = app
        self.partitions = app.log.partitions
        self.store = app.failures
        self.operations = app.operations
        self.ingress = app.ingress

    async def ingest(self, *events: Mapping[str, Any]) -> list[bytes]:
        raws = []
        for event in events:
            raw = stored_form(event)
            result = await self.app.ingress.accept(raw, "application/cloudevents+json")
            assert result.status == 202, result.body
            raws.append(raw)
        return raws

    async def produce_raw(self, key: str, value: bytes) -> None:
        await self.app.log.append(EVENTS_TOPIC, [NewRecord(key=key, value=value)])

    async def drain(self) -> None:
        await self.app.drain()

    def committed(self) -> dict[int, int]:
        return self.app.log.committed(CONSUMER_GROUP, EVENTS_TOPIC)

    def dead_letters(self) -> list[Letter]:
        return [
            Letter(r.key, r.value, describe_headers(r.headers))
            for r in self.app.log.read(DEAD_LETTER_TOPIC)
        ]


class KafkaDriver:
    name = "kafka"

    def __init__(
        self,
        broker: KafkaBroker,
        settings: KafkaSettings,
        ingress: Ingress,
        store: FailureStore | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.ingress = ingress
        if store is not None:
            self.store = store
            self.operations = Operations(store, SchemaRegistry.default())
        self.partitions = settings.partitions
        self.events_topic = settings.topic("events")

    async def ingest(self, *events: Mapping[str, Any]) -> list[bytes]:
        raws = []
        for event in events:
            raw = stored_form(event)
            result = await self.ingress.accept(raw, "application/cloudevents+json")
            assert result.status == 202, result.body
            raws.append(raw)
        return raws

    async def produce_raw(self, key: str, value: bytes) -> None:
        await asyncio.to_thread(self.broker.produce, self.events_topic, [(key.encode(), value, [])])

    async def drain(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while True:
            ends = await asyncio.to_thread(self.broker.end_offsets, self.events_topic)
            done = await asyncio.to_thread(self.committed)
            if all(done.get(p, 0) >= end for p, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not drained within {within}s: committed {done}, end {ends}")
            await asyncio.sleep(0.1)

    def committed(self) -> dict[int, int]:
        return self.broker.committed(self.settings.group_id, self.events_topic, missing=0)

    def dead_letters(self) -> list[Letter]:
        return [
            Letter(
                (r.key or b"").decode(),
                r.value or b"",
                describe_headers([(k, v) for k, v in r.headers]),
            )
            for r in self.broker.read(self.settings.topic("dead-letter"))
        ]


def partition_of(runtime: Runtime, key: str) -> int:
    """The partition both runtimes put ``key`` in."""
    return partition_for(key, runtime.partitions)


@asynccontextmanager
async def start_runtime(
    kind: str,
    root: Path,
    vendor_url: str,
    flows: Mapping[str, str],
    *,
    kafka_broker: KafkaBroker | None = None,
    partitions: int = 4,
    concurrency: int = 8,
    retry: RetryPolicy = TEST_RETRY,
    ordering: Mapping[str, str] | None = None,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    failures_store: str | None = None,
    pollers: Mapping[str, Mapping[str, Any]] | None = None,
) -> AsyncIterator[Any]:
    """A started runtime of ``kind`` over ``flows``, stopped on exit.

    ``ordering`` is the project's ``ordering:``; ``connections`` adds connections
    (as in platypus.yaml: ``{adapter, settings}``) beside the ``vendor`` one;
    ``pollers`` is the project's ``pollers:``.
    ``failures_store`` (Kafka) also runs ``platypus indexer`` on that store, and
    the driver is an `OpsRuntime`; the embedded one always is.
    """
    if kind == "embedded":
        specs = {
            "vendor": ConnectionSpec(
                adapter="http", settings={"base_url": vendor_url, "timeout": 5}
            ),
            **{name: ConnectionSpec(**spec) for name, spec in (connections or {}).items()},
        }
        async with running(
            root,
            vendor_url,
            flows,
            partitions=partitions,
            concurrency=concurrency,
            retry=retry,
            ordering=OrderingKeys.model_validate(dict(ordering or {})),
            connections=specs,
            pollers=dict(pollers or {}),
        ) as app:
            yield EmbeddedDriver(app)
        return
    assert kafka_broker is not None, "the kafka runtime needs the kafka_broker fixture"
    async with _kafka_runtime(
        root,
        vendor_url,
        flows,
        kafka_broker,
        partitions,
        concurrency,
        retry,
        ordering=ordering,
        connections=connections,
        failures_store=failures_store,
        pollers=pollers,
    ) as driver:
        yield driver


def write_kafka_project(
    root: Path,
    vendor_url: str,
    flows: Mapping[str, str],
    broker: KafkaBroker,
    *,
    partitions: int = 4,
    concurrency: int = 8,
    retry: RetryPolicy = TEST_RETRY,
    name: str = "conformance",
    ordering: Mapping[str, str] | None = None,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    failures_store: str | None = None,
    pollers: Mapping[str, Mapping[str, Any]] | None = None,
    **kafka_options: Any,
) -> KafkaSettings:
    """Write ``platypus.yaml`` and flows for a worker with its own topics and group."""
    (root / "flows").mkdir(parents=True, exist_ok=True)
    for flow_name, text in flows.items():
        (root / "flows" / f"{flow_name}.yaml").write_text(textwrap.dedent(text))
    prefix = broker.unique_name(name)
    kafka = {
        "broker": broker.url,
        "group_id": prefix,
        "topic_prefix": prefix,
        "partitions": partitions,
        "session_timeout": 6,
        "rebalance_timeout": 3,
        "heartbeat_interval": 1,
        "web_port": free_port(),
        # Tansu answers InitProducerId with an error; a real Kafka does not.
        "idempotent_producer": broker.external,
        **kafka_options,
    }
    config = {
        "concurrency": concurrency,
        "retry": retry.model_dump(),
        "kafka": kafka,
        "connections": {
            "vendor": {"adapter": "http", "settings": {"base_url": vendor_url, "timeout": 5}},
            **{name: dict(spec) for name, spec in (connections or {}).items()},
        },
        "ordering": dict(ordering or {}),
    }
    if pollers:
        config["pollers"] = {name: dict(spec) for name, spec in pollers.items()}
    if failures_store is not None:
        config["failures_store"] = failures_store
        config["ops"] = {"dashboard": False}
    (root / "platypus.yaml").write_text(yaml.safe_dump(config))
    return KafkaSettings(**kafka)


def start_worker(root: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``platypus worker`` for the project in ``root``."""
    command = Path(sys.executable).parent / "platypus"
    return subprocess.Popen(
        [str(command), "worker", "--project", str(root), "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def start_indexer(root: Path, port: int) -> subprocess.Popen[bytes]:
    """``platypus indexer`` for the project in ``root``, serving /healthz on ``port``."""
    command = Path(sys.executable).parent / "platypus"
    arguments = ["--project", str(root), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        [str(command), "indexer", *arguments, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def start_web(root: Path, port: int) -> subprocess.Popen[bytes]:
    """``platypus web`` for the project in ``root``, on ``port``."""
    command = Path(sys.executable).parent / "platypus"
    return subprocess.Popen(
        [str(command), "web", "--project", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_worker_healthy(
    process: subprocess.Popen[bytes], port: int, within: float = 60.0
) -> None:
    """Wait for the worker's ``/healthz``; fail with its stderr if it died."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"platypus worker exited with {process.returncode}: {stderr}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"platypus worker did not answer /healthz within {within}s")


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def kafka_ingress(
    settings: KafkaSettings, keys: OrderingKeys | None = None, store: FailureStore | None = None
) -> AsyncIterator[Ingress]:
    """The ingress ``platypus web`` runs, in this event loop, producing to the broker
    (de-duplicated through ``store`` when given, as with ``failures_store``)."""
    from platypus.config import IngressSettings
    from platypus.ops.dedupe import SharedDedupe

    await ensure_topics(settings)
    sink = KafkaEventSink(settings, dedupe=SharedDedupe(store) if store is not None else None)
    await sink.start()
    try:
        yield Ingress(
            sink,
            SchemaRegistry.default(),
            IngressSettings(),
            settings.topic("events"),
            keys=keys,
        )
    finally:
        await sink.stop()


@asynccontextmanager
async def _kafka_runtime(
    root: Path,
    vendor_url: str,
    flows: Mapping[str, str],
    broker: KafkaBroker,
    partitions: int,
    concurrency: int,
    retry: RetryPolicy,
    *,
    ordering: Mapping[str, str] | None = None,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    failures_store: str | None = None,
    pollers: Mapping[str, Mapping[str, Any]] | None = None,
) -> AsyncIterator[KafkaDriver]:
    settings = write_kafka_project(
        root,
        vendor_url,
        flows,
        broker,
        partitions=partitions,
        concurrency=concurrency,
        retry=retry,
        ordering=ordering,
        connections=connections,
        failures_store=failures_store,
        pollers=pollers,
    )
    if failures_store is not None:
        await ensure_topics(settings)  # the indexer reads topics a worker creates
    process = start_worker(root)
    indexer = None
    store = None
    try:
        await wait_worker_healthy(process, settings.web_port)
        if failures_store is not None:
            port = free_port()
            indexer = start_indexer(root, port)
            await wait_worker_healthy(indexer, port)
            store = FailureStore(failures_store)
            store.create()
        keys = OrderingKeys.model_validate(dict(ordering or {}))
        async with kafka_ingress(settings, keys, store) as ingress:
            yield KafkaDriver(broker, settings, ingress, store)
    finally:
        stop_worker(process)
        if indexer is not None:
            stop_worker(indexer)
        if store is not None:
            store.close()
