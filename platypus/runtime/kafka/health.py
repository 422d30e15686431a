"""Health of a Kafka process: ``/healthz``, ``/readyz`` and ``/metrics`` for workers and web.

A `KafkaHealth` watches the broker from beside the process's own clients, with
clients of its own, every ``interval`` seconds (`KafkaHealth.probe`): is the
broker answering, do the topics exist, with how many partitions, where do they
end, and (for a worker) what has its consumer group committed. What the process
itself sees is reported to it: partitions assigned and revoked, offset commits
that failed, fetch offsets out of range (`watch_client_logs` picks the last
two out of the Kafka client's own log, which is the only place it says them).

Readiness (`HealthState.readiness`) fails, and says why, when the process
cannot do its job:

* ``broker``: the last probe got no answer from the broker;
* ``topics``: a topic the process needs does not exist;
* ``data``: the broker lost data (a topic's partition count changed, its end
  offsets went back, the group's committed offsets vanished, a fetch offset was
  out of range), for ``loss_hold`` seconds after it was last seen;
* ``partitions`` (worker): no partitions assigned for ``unassigned_grace`` s;
* ``commits`` (worker): an offset commit failed in the last ``commit_window`` s;
* ``consumer`` (worker): the event consumer stopped on a failure.

Broker data loss is logged at error level once per finding and counted in
``platypus_broker_data_loss_total``; the process is told (``on_data_loss``) so
that it can start the new topic from its beginning instead of waiting, silently,
for offsets the new topic has not reached. The pure part (`HealthState`) does no
I/O and takes the time as an argument, so every rule is unit-tested.

Metrics, besides the ones of `platypus.ops.metrics.Metrics` (the same names as
the embedded runtime):

=========================================  ===========================================
``platypus_ready``                         1 while ``/readyz`` says ready
``platypus_broker_up``                     1 while the broker answers the probe
``platypus_partitions_assigned``           events-topic partitions this worker holds
``platypus_commit_failures_total``         offset commits that failed
``platypus_broker_data_loss_total``        data-loss findings, by topic and kind
``platypus_topic_partitions``              partitions of each topic, as last probed
=========================================  ===========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from platypus.config import KafkaSettings
from platypus.ops.metrics import Metrics

__all__ = [
    "DataLoss",
    "HealthState",
    "KafkaHealth",
    "faust_views",
    "metrics_allowed",
    "restart_partitions",
    "stale_partitions",
    "watch_client_logs",
]

_log = structlog.get_logger("platypus.runtime")

DataLossHandler = Callable[["DataLoss"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class DataLoss:
    """One finding that the broker lost data: where, what kind, and what was seen."""

    topic: str
    kind: str
    """``partitions_changed``, ``end_offsets_decreased``, ``committed_offsets_lost``,
    ``offsets_out_of_range`` or ``topic_missing``."""
    reason: str
    partitions: frozenset[int] = frozenset()
    """The partitions affected; empty when it is the whole topic."""


@dataclass(slots=True)
class HealthState:
    """What is known about a Kafka process's health, and the rules that judge it. No I/O.

    ``topics`` are the topics the process needs; ``events_topic`` is the one a
    worker consumes (``None`` for ``platypus web``, which checks no assignment,
    commits or consumer).
    """

    topics: Sequence[str]
    events_topic: str | None = None
    started: float = 0.0
    unassigned_grace: float = 30.0
    commit_window: float = 15.0
    loss_hold: float = 15.0

    broker_error: str | None = "not probed yet"
    partition_counts: dict[str, int] = field(default_factory=dict)
    """Partitions per topic as last probed (0: missing)."""
    baseline_counts: dict[str, int] = field(default_factory=dict)
    """The partition count first seen for each topic (reset after a data loss)."""
    high_ends: dict[str, dict[int, int]] = field(default_factory=dict)
    """The highest end offset seen per topic and partition."""
    committed: dict[int, int] = field(default_factory=dict)
    """The group's committed offsets on the events topic, as last probed."""
    assigned: frozenset[int] = frozenset()
    unassigned_since: float | None = 0.0
    commit_failures: list[tuple[float, str]] = field(default_factory=list)
    losses: list[tuple[float, DataLoss]] = field(default_factory=list)
    consumer_problem: str | None = None

    def __post_init__(self) -> None:
        self.unassigned_since = self.started

    # -- observations ---------------------------------------------------------------

    def broker_unreachable(self, error: str) -> None:
        """The probe got no answer."""
        self.broker_error = error or "no answer"

    def observe_metadata(self, now: float, counts: Mapping[str, int]) -> list[DataLoss]:
        """Partition counts of the needed topics (0 for a missing one); findings."""
        self.broker_error = None
        found: list[DataLoss] = []
        for topic in self.topics:
            count = counts.get(topic, 0)
            self.partition_counts[topic] = count
            before = self.baseline_counts.get(topic)
            if count == 0:
                if before:
                    found.append(
                        DataLoss(
                            topic,
                            "topic_missing",
                            f"topic {topic} had {before} partitions and is gone: "
                            "the broker lost its data or the topic was deleted",
                        )
                    )
                    del self.baseline_counts[topic]
                    self.high_ends.pop(topic, None)
                continue
            if before is None:
                self.baseline_counts[topic] = count
            elif before != count:
                found.append(
                    DataLoss(
                        topic,
                        "partitions_changed",
                        f"topic {topic} had {before} partitions and now has {count}: "
                        "it was recreated (the broker lost its data?)",
                    )
                )
                self.baseline_counts[topic] = count
                self.high_ends.pop(topic, None)
                if topic == self.events_topic:
                    self.committed = {}
        return self._record(now, found)

    def observe_end_offsets(
        self, now: float, topic: str, ends: Mapping[int, int]
    ) -> list[DataLoss]:
        """End offsets of ``topic`` per partition; a decrease is a finding."""
        seen = self.high_ends.setdefault(topic, {})
        back = {p: (seen[p], end) for p, end in ends.items() if p in seen and end < seen[p]}
        for partition, end in ends.items():
            seen[partition] = end if partition in back else max(end, seen.get(partition, 0))
        if not back:
            return []
        detail = ", ".join(f"{p}: {was} -> {now_}" for p, (was, now_) in sorted(back.items()))
        loss = DataLoss(
            topic,
            "end_offsets_decreased",
            f"end offsets of {topic} went back ({detail}): the broker lost records",
            frozenset(back),
        )
        return self._record(now, [loss])

    def observe_committed(self, now: float, committed: Mapping[int, int]) -> list[DataLoss]:
        """The group's committed offsets on the events topic; vanished ones are a finding."""
        count = self.partition_counts.get(self.events_topic or "", 0)
        lost = frozenset(p for p in self.committed if p not in committed and p < count)
        self.committed = dict(committed)
        if not lost or self.events_topic is None:
            return []
        loss = DataLoss(
            self.events_topic,
            "committed_offsets_lost",
            f"the consumer group's committed offsets for partitions {sorted(lost)} of "
            f"{self.events_topic} are gone: the broker lost the group's state",
            lost,
        )
        return self._record(now, [loss])

    def offsets_out_of_range(self, now: float, topic: str, partition: int, offset: int) -> DataLoss:
        """The consumer's fetch offset is past the partition's end (or before its start)."""
        loss = DataLoss(
            topic,
            "offsets_out_of_range",
            f"fetch offset {offset} is out of range for {topic} partition {partition}: "
            "the broker lost records; reading the partition again from its beginning",
            frozenset({partition}),
        )
        self._record(now, [loss])
        return loss

    def partitions_assigned(self, now: float, partitions: Iterable[int]) -> None:
        """The events-topic partitions the worker holds now."""
        self.assigned = frozenset(partitions)
        if self.assigned:
            self.unassigned_since = None
        elif self.unassigned_since is None:
            self.unassigned_since = now

    def commit_failed(self, now: float, detail: str) -> None:
        """An offset commit failed."""
        self.commit_failures.append((now, detail))
        cutoff = now - self.commit_window
        self.commit_failures = [(t, d) for t, d in self.commit_failures if t >= cutoff][-100:]

    def _record(self, now: float, found: list[DataLoss]) -> list[DataLoss]:
        self.losses.extend((now, loss) for loss in found)
        self.losses = [(t, x) for t, x in self.losses if t >= now - self.loss_hold][-100:]
        return found

    # -- judgement ------------------------------------------------------------------

    def readiness(self, now: float) -> dict[str, str | None]:
        """Each check and why it fails (``None``: it passes)."""
        checks: dict[str, str | None] = {"broker": None, "topics": None, "data": None}
        if self.broker_error is not None:
            checks["broker"] = f"the broker does not answer: {self.broker_error}"
        else:
            missing = [t for t in self.topics if not self.partition_counts.get(t)]
            if missing:
                checks["topics"] = f"topics missing on the broker: {', '.join(missing)}"
        recent = [loss for t, loss in self.losses if now - t < self.loss_hold]
        if recent:
            checks["data"] = (
                f"the broker lost data {now - max(t for t, _ in self.losses):.0f} s ago: "
                + "; ".join(dict.fromkeys(loss.reason for loss in recent))
            )
        if self.events_topic is None:
            return checks
        checks["partitions"] = None
        since = self.unassigned_since
        if since is not None and now - since >= self.unassigned_grace:
            checks["partitions"] = (
                f"no partition of {self.events_topic} assigned for {now - since:.0f} s "
                "(the group is rebalancing, the broker lost the group, or there are "
                "more workers than partitions)"
            )
        failed = [(t, d) for t, d in self.commit_failures if now - t < self.commit_window]
        checks["commits"] = (
            f"{len(failed)} offset commit(s) failed in the last {self.commit_window:g} s "
            f"(last: {failed[-1][1]})"
            if failed
            else None
        )
        checks["consumer"] = (
            f"the event consumer stopped: {self.consumer_problem}"
            if self.consumer_problem
            else None
        )
        return checks

    def ready(self, now: float) -> bool:
        """Whether every check passes."""
        return all(reason is None for reason in self.readiness(now).values())

    def accepting(self, now: float) -> str | None:
        """Why events must not be accepted now (``platypus web``), or None."""
        checks = self.readiness(now)
        return checks["broker"] or checks["topics"] or checks["data"]

    def lag(self) -> dict[int, int]:
        """End offset minus committed offset per events-topic partition (0 if ahead)."""
        if self.events_topic is None:
            return {}
        ends = self.high_ends.get(self.events_topic, {})
        count = self.partition_counts.get(self.events_topic, 0)
        return {p: max(0, ends.get(p, 0) - self.committed.get(p, 0)) for p in range(count)}


class KafkaHealth:
    """The health of one ``platypus worker`` or ``platypus web`` process, kept current.

    Run `run` as a task of the process; report what the process sees with
    `partitions_assigned`, `commit_failed` and `offsets_out_of_range` (the last
    two come from the client's log once `watch_client_logs` is installed).
    ``group`` is the consumer group of a worker (None for web).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        *,
        events_topic: str | None = None,
        group: str | None = None,
        metrics: Metrics | None = None,
        interval: float = 2.0,
        unassigned_grace: float | None = None,
        commit_window: float = 15.0,
        loss_hold: float | None = None,
        on_data_loss: DataLossHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.group = group
        self.interval = interval
        self.clock = clock
        self.metrics = metrics or Metrics()
        # A rebalance takes up to rebalance_timeout, a dead member session_timeout.
        patience = settings.session_timeout + settings.rebalance_timeout
        self.state = HealthState(
            topics,
            events_topic,
            started=clock(),
            unassigned_grace=unassigned_grace if unassigned_grace is not None else patience * 2,
            commit_window=commit_window,
            loss_hold=loss_hold if loss_hold is not None else max(3 * interval, patience),
        )
        self.on_data_loss = on_data_loss
        self.consumer_problem: Callable[[], BaseException | None] | None = None
        self._lock = threading.Lock()  # client log records arrive from faust's thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: tuple[Any, Any, Any] | None = None
        r = self.metrics.registry
        self._ready = Gauge("platypus_ready", "1 while /readyz says ready.", registry=r)
        self._broker_up = Gauge(
            "platypus_broker_up", "1 while the Kafka broker answers.", registry=r
        )
        self._assigned = Gauge(
            "platypus_partitions_assigned",
            "Events-topic partitions assigned to this worker.",
            registry=r,
        )
        self._commit_failures = Counter(
            "platypus_commit_failures", "Offset commits that failed.", registry=r
        )
        self._losses = Counter(
            "platypus_broker_data_loss",
            "Findings that the broker lost data, by topic and kind.",
            ["topic", "kind"],
            registry=r,
        )
        self._partitions = Gauge(
            "platypus_topic_partitions",
            "Partitions of each topic, as last probed (0: missing).",
            ["topic"],
            registry=r,
        )

    # -- what the process reports -----------------------------------------------------

    def partitions_assigned(self, partitions: Iterable[int]) -> None:
        """The events-topic partitions this worker holds now."""
        with self._lock:
            self.state.partitions_assigned(self.clock(), partitions)
            self._assigned.set(len(self.state.assigned))

    def commit_failed(self, detail: str) -> None:
        """An offset commit failed (any thread)."""
        with self._lock:
            self.state.commit_failed(self.clock(), detail)
        self._commit_failures.inc()

    def offsets_out_of_range(self, topic: str, partition: int, offset: int) -> None:
        """The consumer's fetch offset was out of range (any thread)."""
        if topic not in self.state.topics:
            return
        with self._lock:
            loss = self.state.offsets_out_of_range(self.clock(), topic, partition, offset)
        self._call_soon(self._found, [loss])

    # -- probing --------------------------------------------------------------------

    async def run(self) -> None:
        """Probe every ``interval`` seconds until cancelled."""
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                await self.probe()
                await asyncio.sleep(self.interval)
        finally:
            await self.close()

    async def probe(self) -> None:
        """One look at the broker: metadata, end offsets, the group's commits."""
        self._loop = asyncio.get_running_loop()
        timeout = max(5.0, 2 * self.interval)
        try:
            try:
                found = await asyncio.wait_for(self._probe(), timeout=timeout)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- a connection the broker closed: once more
                await self.close()
                found = await asyncio.wait_for(self._probe(), timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure: the broker does not answer
            with self._lock:
                first = self.state.broker_error is None
                self.state.broker_unreachable(f"{type(exc).__name__}: {exc}".strip(": "))
            if first:
                _log.error(
                    "the Kafka broker does not answer",
                    broker=self.settings.broker,
                    error=str(exc) or type(exc).__name__,
                )
            await self.close()  # connect afresh next time
            found = []
        await self._found(found)
        self._refresh_gauges()

    async def _probe(self) -> list[DataLoss]:
        from aiokafka.structs import TopicPartition

        client, consumer, admin = await self._connect()
        metadata = await client.fetch_all_metadata()
        counts = {t: len(metadata.partitions_for_topic(t) or ()) for t in self.state.topics}
        now = self.clock()
        with self._lock:
            recovered = self.state.broker_error not in (None, "not probed yet")
            found = self.state.observe_metadata(now, counts)
        if recovered:
            _log.info("the Kafka broker answers again", broker=self.settings.broker)
        if any(count == 0 for count in counts.values()):
            from platypus.runtime.kafka.topics import ensure_topics

            # Recreate them as configured, before a client's metadata request has
            # the broker create them with its default partition count.
            await ensure_topics(self.settings)
        for topic, count in counts.items():
            if not count:
                continue
            tps = [TopicPartition(topic, p) for p in range(count)]
            ends = await consumer.end_offsets(tps)
            with self._lock:
                found += self.state.observe_end_offsets(
                    now, topic, {tp.partition: int(off) for tp, off in ends.items()}
                )
        events = self.state.events_topic
        if admin is not None and events is not None and counts.get(events):
            committed: dict[int, int] = {}
            for p in range(counts[events]):
                offset = await admin.committed(TopicPartition(events, p))
                if offset is not None and offset >= 0:
                    committed[p] = int(offset)
            with self._lock:
                found += self.state.observe_committed(now, committed)
        return found

    async def _connect(self) -> tuple[Any, Any, Any]:
        if self._clients is None:
            from aiokafka import AIOKafkaConsumer
            from aiokafka.client import AIOKafkaClient

            servers = self.settings.bootstrap_servers
            client = AIOKafkaClient(bootstrap_servers=servers, request_timeout_ms=5000)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=servers, group_id=None, request_timeout_ms=5000
            )
            # Reads the group's commits (OffsetFetch) without joining it: it never
            # subscribes, and commits nothing. (aiokafka's admin client's
            # OffsetFetch is not understood by every broker; Tansu closes on it.)
            group = (
                AIOKafkaConsumer(
                    bootstrap_servers=servers,
                    group_id=self.group,
                    enable_auto_commit=False,
                    request_timeout_ms=5000,
                )
                if self.group is not None
                else None
            )
            started: list[Any] = []
            try:
                await client.bootstrap()
                started.append(client)
                await consumer.start()
                started.append(consumer)
                if group is not None:
                    await group.start()
            except BaseException:
                for done in started:
                    with contextlib.suppress(Exception):
                        await (done.close() if done is client else done.stop())
                raise
            self._clients = (client, consumer, group)
        return self._clients

    async def close(self) -> None:
        """Close the probe's clients."""
        clients, self._clients = self._clients, None
        if clients is None:
            return
        client, consumer, group = clients
        for closing in (group, consumer):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing.stop()
        with contextlib.suppress(Exception):
            await client.close()

    async def _found(self, found: Sequence[DataLoss]) -> None:
        for loss in found:
            self._losses.labels(loss.topic, loss.kind).inc()
            _log.error(
                "the Kafka broker lost data",
                topic=loss.topic,
                kind=loss.kind,
                partitions=sorted(loss.partitions),
                reason=loss.reason,
            )
            if self.on_data_loss is not None:
                try:
                    outcome = self.on_data_loss(loss)
                    if outcome is not None:
                        await outcome
                except Exception:  # noqa: BLE001 -- recovery must not stop the probe
                    _log.exception("recovering from the broker's data loss failed")
        if found:
            self._refresh_gauges()

    def _call_soon(self, fn: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def start() -> None:
            loop.create_task(fn(*args))

        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(start)

    # -- what is served ---------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, str | None]]:
        """Whether the process is ready, and each check with why it fails (None: passes)."""
        problem = self.consumer_problem() if self.consumer_problem is not None else None
        with self._lock:
            self.state.consumer_problem = (
                f"{type(problem).__name__}: {problem}" if problem is not None else None
            )
            checks = self.state.readiness(self.clock())
        ready = all(reason is None for reason in checks.values())
        self._ready.set(1 if ready else 0)
        return ready, checks

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """``/readyz``: the status code and the body, which says why when not ready."""
        ready, checks = self.readiness()
        failing = {name: reason for name, reason in checks.items() if reason is not None}
        body: dict[str, Any] = {
            "status": "ready" if ready else "not ready",
            "checks": {name: reason is None for name, reason in checks.items()},
        }
        if failing:
            body["reasons"] = failing
        if self.state.events_topic is not None:
            body["partitions"] = sorted(self.state.assigned)
        return (200 if ready else 503), body

    def accepting(self) -> str | None:
        """Why ``platypus web`` must answer 503 instead of producing now, or None."""
        with self._lock:
            return self.state.accepting(self.clock())

    async def render_metrics(self, *, running: bool | None = None) -> bytes:
        """``/metrics`` in Prometheus's text format."""
        self.readiness()
        self._refresh_gauges()
        with self._lock:
            lag = self.state.lag()
        await self.metrics.refresh(lag=lambda: lag, running=running)
        return self.metrics.render()

    def _refresh_gauges(self) -> None:
        with self._lock:
            up = self.state.broker_error is None
            counts = dict(self.state.partition_counts)
            assigned = len(self.state.assigned)
        self._broker_up.set(1 if up else 0)
        for topic, count in counts.items():
            self._partitions.labels(topic).set(count)
        self._assigned.set(assigned)


def metrics_allowed(token: str | None, authorization: str) -> bool:
    """Whether a scrape may read ``/metrics``: always, unless ``ops.metrics_token`` is set."""
    if token is None:
        return True
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


# -- the Kafka client's log -----------------------------------------------------------

_OUT_OF_RANGE = re.compile(
    r"Fetch offset (\d+) is out of range for partition TopicPartition\("
    r"topic='([^']*)', partition=(\d+)\)"
)


class _ClientLogWatcher(logging.Filter):
    """Reads what the Kafka client says only in its log; passes records on as before."""

    def __init__(self, health: KafkaHealth, threshold: Callable[[], int]) -> None:
        super().__init__()
        self.health = health
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 -- a malformed record is not ours to judge
            return True
        if _is_commit_failure(message):
            self.health.commit_failed(message[:300])
        else:
            match = _OUT_OF_RANGE.search(message)
            if match:
                offset, topic, partition = match.groups()
                self.health.offsets_out_of_range(topic, int(partition), int(offset))
        # The logger's level was lowered to see the INFO records above; the rest
        # of the process still only sees what its configured level lets through.
        return record.levelno >= self.threshold()


def _is_commit_failure(message: str) -> bool:
    if "OffsetCommit failed" in message:
        return "before join" not in message
    return "Committing raised exception" in message or "Auto offset commit failed" in message


_WATCHED = (
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "faust.transport.drivers.aiokafka",
)


def watch_client_logs(health: KafkaHealth) -> Callable[[], None]:
    """Have ``health`` read commit failures and out-of-range offsets from the client's log.

    Returns a function that undoes it.
    """

    def threshold() -> int:
        return logging.getLogger().getEffectiveLevel()

    undo: list[Callable[[], None]] = []
    for name in _WATCHED:
        logger = logging.getLogger(name)
        watcher = _ClientLogWatcher(health, threshold)
        previous = logger.level
        logger.addFilter(watcher)
        logger.setLevel(logging.INFO)

        def restore(
            logger: logging.Logger = logger,
            watcher: logging.Filter = watcher,
            level: int = previous,
        ) -> None:
            logger.removeFilter(watcher)
            logger.setLevel(level)

        undo.append(restore)

    def undo_all() -> None:
        for step in undo:
            step()

    return undo_all


# -- the worker (faust) ---------------------------------------------------------------


def faust_views(
    health: KafkaHealth, running: Callable[[], bool], metrics_token: str | None = None
) -> dict[str, Any]:
    """faust web views for ``/readyz`` and ``/metrics`` (behind ``ops.metrics_token``)."""
    from faust import web
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    class Ready(web.View):
        async def get(self, request: web.Request) -> web.Response:
            del request
            status, body = health.readyz()
            return self.json(body, status=status)

    class Scrape(web.View):
        async def get(self, request: web.Request) -> web.Response:
            if not metrics_allowed(metrics_token, request.headers.get("Authorization", "")):
                return self.text(
                    "a bearer token is needed (ops.metrics_token)",
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
            text = await health.render_metrics(running=running())
            return self.bytes(text, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return {"/readyz": Ready, "/metrics": Scrape}


def stale_partitions(
    health: KafkaHealth, loss: DataLoss, position: Callable[[int], int | None]
) -> set[int]:
    """Partitions of the events topic to read again from the beginning after ``loss``.

    Out-of-range ones always (the client already moved to the beginning, but the
    worker would pass over offsets below where it was); the others when the
    worker's next offset is past the partition's end now, where it would wait,
    silently, for offsets the new topic has not reached.
    """
    if loss.kind == "offsets_out_of_range":
        return set(loss.partitions)
    state = health.state
    ends = state.high_ends.get(loss.topic, {})
    candidates = loss.partitions or state.assigned
    stale = set()
    for partition in candidates:
        next_offset = position(partition)
        if next_offset is not None and next_offset > ends.get(partition, 0):
            stale.add(partition)
    return stale


async def restart_partitions(app: Any, topic: str, partitions: set[int], *, reread: str) -> None:
    """Make faust forget where it was in ``partitions`` and, unless the client already
    did (``reread`` is ``offsets_out_of_range``), read them from the beginning."""
    from faust.types import TP

    consumer = app.consumer
    tps = [TP(topic, p) for p in sorted(partitions)]
    # What faust keeps per partition: it drops records below the last offset it
    # read, and commits nothing below the last offset it committed.
    for name in ("_read_offset", "_committed_offset", "_acked", "_acked_index", "_gap"):
        kept = getattr(consumer, name, None)
        if isinstance(kept, dict):
            for tp in tps:
                kept.pop(tp, None)
    if reread != "offsets_out_of_range":
        for tp in tps:
            await consumer.seek(tp, 0)
    _log.error(
        "reading partitions again from the beginning after the broker lost data",
        topic=topic,
        partitions=sorted(partitions),
    )
