"""The embedded runtime: flows run on one machine over the SQLite event log.

The log is the `RecordSource` (every partition read in offset order from its
committed offset) and the `OutcomeSink` (a settlement is one transaction:
outcomes, dead letters, deliveries and the commits they allow). The shared
`Consumer` does the rest: key order, concurrency across keys, safe commits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import structlog

from platypus.records import CONSUMER_GROUP, EVENTS_TOPIC, Record
from platypus.runtime.base import Settlement
from platypus.runtime.consumer import Consumer
from platypus.runtime.embedded.log import EventLog
from platypus.runtime.processor import ProcessingObserver, Processor

__all__ = ["EmbeddedRuntime"]

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
        self.consumer = Consumer(processor, self, max_in_flight=max_in_flight, observer=observer)
        self._fetch_size = fetch_size
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes settled so far, by status."""
        return self.consumer.counts

    async def start(self) -> None:
        """Resume every partition from its committed offset and start consuming."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wakeup.set)

        self.log.subscribe(wake)
        committed = self.log.committed(CONSUMER_GROUP, EVENTS_TOPIC)
        self.consumer.assign(committed, self.log.settled_since(EVENTS_TOPIC, committed))
        self._task = asyncio.create_task(self.consumer.run(self), name="platypus-consumer")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop fetching, let adapter calls in progress finish (up to ``grace`` s).

        Events waiting out a retry backoff stop waiting and stay unfinished: their
        offsets are not committed, so the next start picks them up.
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.consumer.stop(grace)

    async def drain(self, poll: float = 0.02) -> None:
        """Wait until every appended event has an outcome and its offset is committed."""
        while True:
            failure = self.consumer.problem()
            if failure is not None:
                raise RuntimeError("the embedded runtime failed") from failure
            ends = self.log.end_offsets(EVENTS_TOPIC)
            if self.consumer.in_flight == 0 and all(
                (self.consumer.position(p) or 0) >= end for p, end in ends.items()
            ):
                committed = self.log.committed(CONSUMER_GROUP, EVENTS_TOPIC)
                if all(committed[p] >= end for p, end in ends.items()):
                    return
            await asyncio.sleep(poll)

    @property
    def running(self) -> bool:
        """Whether the consumer is started and has not stopped or failed."""
        return self._task is not None and not self._task.done() and self.consumer.healthy

    @property
    def in_flight(self) -> int:
        """Events fetched whose outcome is not yet durable."""
        return self.consumer.in_flight

    # -- RecordSource --------------------------------------------------------------

    async def batches(self) -> AsyncIterator[Sequence[Record]]:
        """Records of the events topic from where the consumer is, as they are appended."""
        while True:
            room = self.consumer.room
            if room == 0:
                # Full: wait for room without fetching more.
                await asyncio.sleep(0.005)
                continue
            self._wakeup.clear()
            positions = {
                p: position
                for p in range(self.log.partitions)
                if (position := self.consumer.position(p)) is not None
            }
            records = self.log.fetch(EVENTS_TOPIC, positions, min(self._fetch_size, room))
            if not records:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
                continue
            yield records

    # -- OutcomeSink ---------------------------------------------------------------

    async def settle(self, settlement: Settlement) -> None:
        """One transaction: outcomes, dead letters, deliveries, then the commits."""
        await self.log.settle(settlement, group=CONSUMER_GROUP, topic=EVENTS_TOPIC)
