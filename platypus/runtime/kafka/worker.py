"""``platypus worker``: the flows on faust-streaming, for more than one machine.

Topics (``kafka.topic_prefix``, default ``platypus``):

* ``platypus.events``      CloudEvents, keyed by their ordering key: one
                           record's events share a partition (Kafka's murmur2
                           partitioner, the same as the embedded log) and stay
                           in order;
* ``platypus.dead-letter`` the same dead-letter records as the embedded runtime;
* ``platypus.outcomes``    how each event ended in each flow (JSON,
                           `platypus.records.encode_outcome`), for the indexer's
                           history of "what happened to event X?";
* ``platypus.rejected``    bodies the ingress refused, with the reasons.

Events are accepted in both CloudEvents Kafka bindings (`platypus.runtime.codec`).

The worker is this runtime's side of the boundary (`platypus.runtime.base`):
its fetch loop, under faust's agent, feeds the shared `Consumer`
(`RecordSource`), and a settlement (`OutcomeSink`) produces its dead letters
and outcomes with ``acks=all``, records its deliveries in the ledger, and only
then acknowledges offsets.

Commits. Faust acknowledges events itself unless told not to, and its own
commit arithmetic can pass an unacknowledged offset. So the worker reads each
fetch below faust's stream (`_drain`) and acknowledges by hand, an offset only
once the consumer's settlements say it is safe: its outcome, and every earlier
one of its partition, is durable. Faust only ever sees a gap-free run of
acknowledged offsets, so whatever it commits is safe.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from platypus.adapter import AdapterRegistry
from platypus.config import ProjectConfig, load_config
from platypus.flow.loader import load_flows
from platypus.flow.model import FlowSpec
from platypus.records import (
    DEAD_LETTER,
    EVENTS,
    FLOW_DELIVERED,
    OUTCOMES,
    Record,
    encode_outcome,
)
from platypus.runtime.base import Settlement
from platypus.runtime.connections import Connections
from platypus.runtime.consumer import Consumer
from platypus.runtime.kafka import health as _health
from platypus.runtime.kafka.ledger import SqliteLedger, SqlLedger
from platypus.runtime.kafka.settings import settings_for
from platypus.runtime.kafka.topics import wait_for_broker
from platypus.runtime.processor import record_event_id
from platypus.runtime.wiring import build_pipeline
from platypus.schema_registry import SchemaRegistry

__all__ = ["KafkaRuntime", "run_worker"]

_log = structlog.get_logger("platypus.runtime")

_BATCH = 1000  # records handed to the consumer at most at once
_LINGER = 0.002
"""Seconds a batch waits for more records once the first is there. faust hands
records over one at a time; without the wait most batches held a single record,
and each paid a ledger read of its own (3,100 of 3,600 batches in a 30,000-event
run)."""


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
        self.ledger: SqliteLedger | SqlLedger = (
            SqlLedger(self.settings.ledger_url)
            if self.settings.ledger_url
            else SqliteLedger(config.resolve(config.data_dir) / "ledger.db")
        )
        pipeline = build_pipeline(
            config, flows, ledger=self.ledger, schemas=schemas, adapters=adapters
        )
        self.connections = pipeline.connections
        self.processor = pipeline.processor
        self._sent_again = flows_sent_again(flows, self.connections)
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
            s.topic(EVENTS), key_type=bytes, value_type=bytes, partitions=s.partitions
        )
        self.dead_letter_topic = s.topic(DEAD_LETTER)
        self.outcomes_topic = s.topic(OUTCOMES)
        # -- health (platypus.runtime.kafka.health): /readyz, /metrics, data-loss recovery
        self.health = _health.KafkaHealth(
            s,
            [s.topic(EVENTS), s.topic(DEAD_LETTER)],
            events_topic=s.topic(EVENTS),
            group=s.group_id,
            on_data_loss=self._after_data_loss,
        )
        self.consumer = Consumer(
            self.processor, self, max_in_flight=s.max_in_flight, observer=self.health.metrics
        )
        self.health.consumer_problem = self.consumer.problem
        # -- end health
        # Faust events read but not yet acknowledged, in offset order, per partition.
        self._pending: dict[int, deque[tuple[int, Any]]] = {}
        self._buffer: list[Record] = []
        # Per partition, records settled ahead of the committed offset before a
        # restart (offset -> event id), read from the ledger when the partition is
        # first seen after its assignment.
        self._marks: dict[int, dict[int, str]] = {}
        self._buffered = asyncio.Event()
        self._taken = asyncio.Event()
        self._consuming: asyncio.Task[None] | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._faust_new_consumer = self.app._new_consumer
        self.app._new_consumer = self._new_consumer  # type: ignore[method-assign]
        self.app.agent(self.events_topic, name="platypus-events")(self._agent)
        self.app.page("/healthz")(self._health_view())
        token = config.ops.metrics_token
        secret = token.resolve().get_secret_value() if token is not None else None
        for path, view in _health.faust_views(self.health, lambda: self._started, secret).items():
            self.app.page(path)(view)
        self.app.task(self._watch_health)
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        if config.pollers:
            # One active poller per source across the workers: a lease (pollers.py).
            self.app.task(self._run_pollers)
        # faust's stubs type signal receivers too narrowly for bound async methods.
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]

    def _health_view(self) -> Any:
        from faust import web

        runtime = self

        class Health(web.View):
            async def get(self, request: web.Request) -> web.Response:
                del request
                failure = runtime.consumer.problem()
                body = {"status": "failing" if failure else "ok", "in_flight": runtime.in_flight}
                return self.json(body, status=500 if failure else 200)

        return Health

    async def _watch_health(self) -> None:
        undo = _health.watch_client_logs(self.health)
        try:
            await self.health.run()
        finally:
            undo()

    async def _run_pollers(self) -> None:
        from platypus.runtime.kafka.pollers import run_pollers

        await run_pollers(self.config, self.settings)

    async def _on_assigned(self, _sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = kwargs.get("assigned", args[0] if args else ())
        events = self.settings.topic(EVENTS)
        self.health.partitions_assigned(tp.partition for tp in assigned if tp.topic == events)

    async def _after_data_loss(self, loss: _health.DataLoss) -> None:
        events = self.settings.topic(EVENTS)
        if loss.topic != events:
            return
        stale = _health.stale_partitions(self.health, loss, self.consumer.position)
        if stale:
            self._forget(stale)
            await _health.restart_partitions(self.app, events, stale, reread=loss.kind)

    @property
    def in_flight(self) -> int:
        """Events fetched whose outcome is not yet durable."""
        return self.consumer.in_flight + len(self._buffer)

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if not self._started:
                await self.connections.start()
                self._consuming = asyncio.create_task(
                    self.consumer.run(self), name="platypus-consumer"
                )
                self._started = True

    async def _on_shutdown(
        self, _sender: Any, *_args: Any, signal: Any = None, **_kwargs: Any
    ) -> None:
        if self._consuming is not None:
            self._consuming.cancel()
            await asyncio.gather(self._consuming, return_exceptions=True)
        await self.consumer.stop(grace=5.0)
        await self.connections.close()
        self.ledger.close()

    async def _on_revoked(
        self, _sender: Any, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        # Another worker resumes these partitions from their committed offsets.
        # Events of them still running here finish, but are no longer acknowledged.
        revoked = kwargs.get("revoked", args[0] if args else ())
        events = self.settings.topic(EVENTS)
        partitions = {tp.partition for tp in revoked if tp.topic == events}
        self.health.partitions_assigned(self.health.state.assigned - partitions)
        self._forget(partitions)

    def _forget(self, partitions: set[int]) -> None:
        self.consumer.revoke(partitions)
        for partition in partitions:
            self._pending.pop(partition, None)
            self._marks.pop(partition, None)
        self._buffer = [r for r in self._buffer if r.partition not in partitions]
        self._taken.set()  # a fetch held back for room may go on

    async def _agent(self, stream: Any) -> None:
        # The agent keeps faust's subscription, start-up and rebalances as they are;
        # the events themselves are read below its stream, by `_drain`.
        await self._ensure_started()
        async for event in stream.noack().events():
            # Not reached: `_drain` takes every record of the events topic. Left
            # unacknowledged, such an event would hold commits back, never pass them.
            _log.warning("an event reached faust's stream", offset=event.message.offset)

    def _new_consumer(self) -> Any:
        consumer: Any = self._faust_new_consumer()
        # faust's Fetcher calls this per consumer; the instance attribute is ours.
        consumer._drain_messages = self._drain
        return consumer

    async def _drain(self, fetcher: Any) -> None:
        """faust's fetch loop (``Consumer._drain_messages``), one fetch at a time.

        faust passes each record through its conductor, a queue and the agent's
        stream, which costs more than all the worker's own work (the bare-agent
        peer of ``bench/kafka_peers.py``). Here each record of a fetch becomes a
        `Record` in the buffer directly. faust still fetches (``getmany``, with
        its flow control and generation checks during rebalances), keeps its read
        offsets and gaps, and commits what `settle` acknowledges; records of any
        other topic go through faust's conductor as before.
        """
        await self._ensure_started()
        consumer: Any = self.app.consumer  # faust's internals, untyped in its stubs
        events = self.settings.topic(EVENTS)
        callback = consumer.callback
        read_offset = consumer._read_offset
        commit_every = consumer._commit_every
        consumer_stopped = consumer._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        pending = self._pending  # never replaced, only emptied
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await asyncio.sleep(0)
                if consumer.should_stop:
                    continue
                async for tp, message in consumer.getmany(timeout=1.0):
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # read before: faust drops these too
                    if last and offset - last > 1:
                        await consumer._add_gap(tp, last + 1, offset)
                    if commit_every is not None and consumer._n_acked >= commit_every:
                        consumer._n_acked = 0
                        await consumer.commit()
                    if message.topic == events:
                        partition = tp.partition
                        queue = pending.get(partition)
                        if queue is None:
                            queue = pending[partition] = deque()
                        queue.append((offset, message))
                        self._buffer.append(
                            Record(
                                topic=message.topic,
                                partition=partition,
                                offset=offset,
                                key=(message.key or b"").decode("utf-8", "replace"),
                                value=message.value or b"",
                                headers=_headers(message.headers),
                                timestamp=message.timestamp or 0.0,
                            )
                        )
                    else:
                        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
                    read_offset[tp] = offset
                if self._buffer:
                    self._buffered.set()
                    while len(self._buffer) >= _BATCH:
                        # Hold the fetch back until the consumer takes the batch (it
                        # stops taking while it is full): the broker keeps the rest.
                        self._taken.clear()
                        await self._taken.wait()
        except consumer.consumer_stopped_errors:
            if not self.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.app.should_stop:
                raise

    # -- RecordSource --------------------------------------------------------------

    async def batches(self) -> AsyncIterator[Sequence[Record]]:
        """What faust delivered since the last batch, in offset order per partition."""
        while True:
            if not self._buffer:
                self._buffered.clear()
                await self._buffered.wait()
                continue
            if len(self._buffer) < _BATCH:
                await asyncio.sleep(_LINGER)
                if not self._buffer:  # revoked meanwhile
                    continue
            batch, self._buffer = self._buffer[:_BATCH], self._buffer[_BATCH:]
            self._taken.set()
            await self._pass_over_settled(batch)
            yield batch

    async def _pass_over_settled(self, batch: Sequence[Record]) -> None:
        """Tell the consumer which records of ``batch`` were settled before a restart.

        A record dead-lettered while an earlier one of its partition was still in
        flight is past the committed offset; read again after a crash, it is
        passed over, so its dead letter (and the vendor's refusal) happen once.
        """
        first: dict[int, int] = {}
        for record in batch:
            if record.partition not in self._marks:
                first.setdefault(record.partition, record.offset)
        for partition, since in first.items():
            # Faust resumes a partition from its committed offset: marks before it
            # are spent, and the ledger forgets them.
            self._marks[partition] = await self.ledger.settled(
                self.events_topic.get_topic_name(), partition, since
            )
        passed: dict[int, list[int]] = {}
        for record in batch:
            marks = self._marks.get(record.partition)
            if not marks:
                continue
            event_id = marks.pop(record.offset, None)
            # The event id guards against a topic recreated with fresh offsets.
            if event_id is not None and event_id == record_event_id(record):
                passed.setdefault(record.partition, []).append(record.offset)
        for partition, offsets in passed.items():
            self.consumer.pass_over(partition, offsets)

    # -- OutcomeSink ---------------------------------------------------------------

    async def settle(self, settlement: Settlement) -> None:
        """Dead letters and outcomes acknowledged by the broker, deliveries and settled
        marks in the ledger, then acks.

        A record is marked settled once its dead letters are on the broker, so a
        restart passes over it (`_pass_over_settled`). A crash between the two
        leaves the dead letter unmarked, and it is written again: at least once,
        the broker having no transaction here that spans both.
        """
        producer = self.app.producer
        sent = [
            await producer.send(
                self.dead_letter_topic,
                letter.key.encode(),
                letter.value,
                None,
                None,
                letter.headers,
            )
            for letter in settlement.dead_letters
        ]
        # -- outcomes topic (issue 12): every outcome, for the indexer's history --
        settled_at = time.time()
        for outcome in settlement.outcomes:
            sent.append(
                await producer.send(
                    self.outcomes_topic,
                    outcome.key.encode(),
                    encode_outcome(outcome, settled_at),
                    None,
                    None,
                    None,
                )
            )
        # -- end outcomes topic --
        if sent:
            await asyncio.gather(*sent)
        marks = {
            (o.topic, o.partition, o.offset): o.event_id
            for o in settlement.outcomes
            if o.status == "dead_lettered"
        }
        sent_again = self._sent_again
        deliveries = [
            d for d in settlement.deliveries if d.step != FLOW_DELIVERED or d.flow not in sent_again
        ]
        await self.ledger.settle(
            deliveries, [(*where, event_id) for where, event_id in marks.items()]
        )
        ack = self.app.consumer.ack
        for partition, offset in settlement.commits.items():
            pending = self._pending.get(partition)
            while pending and pending[0][0] < offset:
                ack(pending.popleft()[1])


def flows_sent_again(flows: Sequence[FlowSpec], connections: Connections) -> frozenset[str]:
    """The flows whose every step may simply be sent again: a lookup, or a write the
    vendor de-duplicates itself (docs/kafka.md, "The delivery ledger is a separate store").

    The worker does not record that such a flow delivered an event: re-read after a
    crash, or replayed for another flow's failure, it runs again with the same
    idempotency keys, as each of its steps would on its own. That row cost a ledger
    transaction per settlement. A flow with a step the ledger guards keeps it, and
    steps delivered before a failing one are kept in every flow (a replay, and
    ``dlq to-test``, read their answers).
    """
    found = []
    for flow in flows:
        specs = [connections.get(step.connection).actions.get(step.action) for step in flow.steps]
        if all(spec is not None and not spec.guarded for spec in specs):
            found.append(flow.name)
    return frozenset(found)


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    return tuple(
        (str(name), value if isinstance(value, bytes) else bytes(value or b""))
        for name, value in pairs
    )


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
    wait_for_broker(runtime.settings)
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
    # What is loaded by now (modules, faust's app, the flows and their schemas) lives
    # as long as the process: out of the cyclic collector's sight, a full collection
    # no longer walks it. Those ran about once per 6,000 events in flight and cost
    # ~8 us an event (bench/kafka_peers.py's worker; docs/benchmarks.md).
    gc.freeze()
    # Thousands of events in flight keep many young objects alive, and a batch of
    # 1,000 allocates ~100,000 that live until it settles: with the default 700
    # allocations a young pass ran every ~50 events, and with 10,000 still ten times
    # a batch, each walking what was in flight, and every tenth pass (the middle
    # generation) took 40-70 ms. None of them found garbage: the worker's objects
    # form no cycles in the normal course (a failure's traceback does). At 100,000
    # a young pass runs about once per several batches and the middle one almost
    # never: the collector's CPU over 30,000 bench events 480-500 -> 150-200 ms
    # (~16 -> ~6 us an event; docs/benchmarks.md), while cyclic garbage still waits
    # for at most 100,000 allocations (a few MB) before it is freed.
    gc.set_threshold(100_000, 10, 10)
    worker.execute_from_commandline()


_FAUST_LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}
