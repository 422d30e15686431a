"""The embedded runtime: flows run on one machine over the SQLite event log.

Ordering and commits follow the model of Confluent's Parallel Consumer:

* every partition is read in offset order;
* events are queued per key; each key has at most one event in processing, so
  one record's events are handled strictly in order, while different keys run
  concurrently (adapter calls are bounded by ``concurrency``, and a key waiting
  out a retry backoff holds no slot, so it never holds other keys up);
* a partition's committed offset is the lowest offset still in flight (or the
  next to read when none is): it never passes an event still being processed or
  waiting for a retry, and it is written in the same transaction as the outcome
  that allows it. After a crash, processing resumes there; steps already
  delivered are skipped; the step that was in flight is sent again (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import structlog

from platypus.deadletter import DEAD_LETTER_TOPIC, SourceRecord
from platypus.runtime.log import AppendItem, EventLog, LogRecord, OutcomeRow, WriteBatch
from platypus.runtime.ordering import KeyedExecutor, PartitionProgress
from platypus.runtime.processor import (
    EVENT_ID_HEADER,
    VALIDATED_HEADER,
    EventResult,
    ProcessingObserver,
    Processor,
)

__all__ = ["EVENTS_TOPIC", "GROUP", "EmbeddedRuntime"]

EVENTS_TOPIC = "platypus.events"
GROUP = "platypus"

_log = structlog.get_logger("platypus.runtime")


class EmbeddedRuntime:
    """Consumes the events topic of an `EventLog` and runs every event through a `Processor`."""

    def __init__(
        self,
        log: EventLog,
        processor: Processor,
        *,
        max_in_flight: int = 10_000,
        fetch_size: int = 500,
        observer: ProcessingObserver | None = None,
    ) -> None:
        self.log = log
        self.processor = processor
        self.observer = observer
        """Told about each processed event (`platypus.ops.metrics.Metrics`), or None."""
        self._max_in_flight = max_in_flight
        self._fetch_size = fetch_size
        self._partitions: dict[int, PartitionProgress] = {}
        self._executor: KeyedExecutor[_Item] = KeyedExecutor(
            self._handle, max_in_flight=max_in_flight
        )
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self.counts: dict[str, int] = {}

    async def start(self) -> None:
        """Resume every partition from its committed offset and start consuming."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wakeup.set)

        self.log.subscribe(wake)
        committed = self.log.committed(GROUP, EVENTS_TOPIC)
        self._partitions = {p: PartitionProgress(off) for p, off in committed.items()}
        self._task = asyncio.create_task(self._consume(), name="platypus-consumer")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop fetching, let adapter calls in progress finish (up to ``grace`` s).

        Events waiting out a retry backoff stop waiting and stay unfinished: their
        offsets are not committed, so the next start picks them up.
        """
        self.processor.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._executor.stop(grace)

    async def drain(self, poll: float = 0.02) -> None:
        """Wait until every appended event has an outcome and its offset is committed."""
        while True:
            failure = self._failure or self._executor.failure
            if failure is not None:
                raise RuntimeError("the embedded runtime failed") from failure
            ends = self.log.end_offsets(EVENTS_TOPIC)
            if self._executor.in_flight == 0 and all(
                self._partitions[p].position >= end for p, end in ends.items()
            ):
                committed = self.log.committed(GROUP, EVENTS_TOPIC)
                if all(committed[p] >= end for p, end in ends.items()):
                    return
            await asyncio.sleep(poll)

    @property
    def running(self) -> bool:
        """Whether the consumer is started and has not stopped or failed."""
        return self._task is not None and not self._task.done() and self._failure is None

    @property
    def in_flight(self) -> int:
        """Events fetched whose outcome is not yet durable."""
        return self._executor.in_flight

    async def _consume(self) -> None:
        try:
            while True:
                room = self._executor.room
                if room == 0:
                    # Full: submitting waits for room without fetching more.
                    await asyncio.sleep(0.005)
                    continue
                self._wakeup.clear()
                positions = {p: part.position for p, part in self._partitions.items()}
                records = self.log.fetch(EVENTS_TOPIC, positions, min(self._fetch_size, room))
                if not records:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
                    continue
                delivered = self.log.deliveries([_event_id(r) for r in records])
                for record in records:
                    self._partitions[record.partition].started(record.offset)
                    item = _Item(record, _for_event(delivered, _event_id(record)))
                    await self._executor.submit(record.key, item)
                # Let key workers run before the next fetch; fairness for the loop.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            _log.exception("consumer failed")
            raise

    async def _handle(self, item: _Item) -> None:
        record, delivered = item.record, item.delivered
        source = SourceRecord(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
        )
        started = time.perf_counter()
        result = await self.processor.process(
            source, delivered, validated_type=record.header(VALIDATED_HEADER)
        )
        part = self._partitions[record.partition]
        batch = _batch(record, result)
        # The offset this outcome allows, computed as if it were already done; the
        # outcome and the commit land in one transaction, and commits never go back.
        part.finish(record.offset)
        batch.commit = (GROUP, record.topic, record.partition, part.committable)
        await self.log.write(batch)
        for outcome in result.outcomes:
            self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if self.observer is not None:
            self.observer.processed(result, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class _Item:
    record: LogRecord
    delivered: dict[tuple[str, str, str], Any]


def _event_id(record: LogRecord) -> str:
    # The ingress puts the event id in a header so it is known without parsing.
    found = record.header(EVENT_ID_HEADER)
    if found is not None:
        return found
    try:
        event = json.loads(record.value)
    except ValueError:
        return ""
    return str(event.get("id", "")) if isinstance(event, dict) else ""


def _for_event(
    delivered: dict[tuple[str, str, str], Any], event_id: str
) -> dict[tuple[str, str, str], Any]:
    if not delivered:
        return delivered
    return {k: v for k, v in delivered.items() if k[0] == event_id}


def _batch(record: LogRecord, result: EventResult) -> WriteBatch:
    batch = WriteBatch(deliveries=list(result.deliveries))
    for outcome in result.outcomes:
        batch.outcomes.append(
            OutcomeRow(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                flow=outcome.flow,
                event_id=result.event_id,
                event_type=result.event_type,
                key=record.key,
                status=outcome.status,
                flow_version=outcome.flow_version,
                step=outcome.step,
                detail=outcome.detail,
                attempts=outcome.attempts,
            )
        )
        if outcome.dead_letter is not None:
            letter = outcome.dead_letter
            batch.appends.append(
                (DEAD_LETTER_TOPIC, AppendItem(letter.key, letter.value, letter.headers))
            )
    return batch
