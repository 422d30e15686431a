"""The consumer every runtime runs: records in, key order kept, outcomes settled, safe commits.

It follows the model of Confluent's Parallel Consumer:

* records are taken from a `RecordSource` a batch at a time, in offset order
  per partition, and the ledger is read once per batch (`Processor.prepare`);
* each key has at most one event in processing, so one record's events are
  handled strictly in order while different keys run concurrently
  (`KeyedExecutor`); a key waiting out a retry backoff holds no other key up;
* what finished is settled in groups through the runtime's `OutcomeSink`, one
  settlement at a time and in order: while one is being made durable, the next
  gathers whatever finishes meanwhile (group commit);
* each settlement carries, per partition, the offset it makes safe to commit
  (`PartitionProgress`): never one past an event still in flight or waiting
  for a retry. Since settlements are durable in order, a commit never covers an
  outcome that is not.

After a crash, processing resumes from the committed offsets; steps the ledger
says were delivered are skipped, and the step that was in flight is sent again
(at least once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence

import structlog

from platypus.records import Outcome, Record, replay_of
from platypus.runtime.base import OutcomeSink, RecordSource, Settlement
from platypus.runtime.ordering import KeyedExecutor, PartitionProgress
from platypus.runtime.processor import EventResult, ProcessingObserver, Processor

__all__ = ["Consumer"]

_log = structlog.get_logger("platypus.runtime")


# A record and the progress of the assignment it was read under; once processed,
# with its result (None: settled before a restart, not run again) and how long
# it took. Plain tuples: two of them are made per event, and a frozen dataclass
# costs about a microsecond to build.
_Item = tuple[Record, PartitionProgress]
_Finished = tuple[Record, PartitionProgress, EventResult | None, float]


class Consumer:
    """Runs the records of one topic through a `Processor` and settles what came of them."""

    def __init__(
        self,
        processor: Processor,
        sink: OutcomeSink,
        *,
        max_in_flight: int,
        observer: ProcessingObserver | None = None,
    ) -> None:
        self.processor = processor
        self.sink = sink
        self.observer = observer
        """Told about the events of each settlement (`platypus.ops.metrics.Metrics`), or None."""
        self.counts: dict[str, int] = {}
        """Outcomes settled so far, by status."""
        self.failure: BaseException | None = None
        """Why the consumer stopped, if it did on its own (a settlement that failed)."""
        self._executor: KeyedExecutor[_Item] = KeyedExecutor(
            self._handle, max_in_flight=max_in_flight
        )
        self._progress: dict[int, PartitionProgress] = {}
        self._settled_before: dict[int, set[int]] = {}
        self._finished: list[_Finished] = []
        self._settling: asyncio.Task[None] | None = None

    # -- partitions -------------------------------------------------------------

    def assign(
        self, positions: Mapping[int, int], settled: Mapping[int, Iterable[int]] | None = None
    ) -> None:
        """Start (or restart) partitions at the given next offsets to read.

        ``settled`` holds, per partition, offsets from there on whose outcome is
        already durable (settled ahead of an earlier event before a restart):
        they are passed over, not processed again, so a dead letter or a delivery
        happens once.
        """
        for partition, position in positions.items():
            self._progress[partition] = PartitionProgress(position)
            done = set((settled or {}).get(partition, ()))
            if done:
                self._settled_before[partition] = done
            else:
                self._settled_before.pop(partition, None)

    def pass_over(self, partition: int, offsets: Iterable[int]) -> None:
        """Offsets of ``partition`` whose outcome is already durable, as for `assign`:
        passed over when they arrive, not processed again."""
        self._settled_before.setdefault(partition, set()).update(offsets)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions another worker now owns: what is still running there
        finishes and settles, but commits nothing."""
        for partition in partitions:
            self._progress.pop(partition, None)
            self._settled_before.pop(partition, None)

    def position(self, partition: int) -> int | None:
        """The next offset to read in ``partition``, None if it is not assigned."""
        found = self._progress.get(partition)
        return None if found is None else found.position

    # -- running ----------------------------------------------------------------

    async def run(self, source: RecordSource) -> None:
        """Consume ``source`` until cancelled (or until a settlement fails)."""
        try:
            async for batch in source.batches():
                await self.submit(batch)
                # Let key workers run before the next fetch; fairness for the loop.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
            _log.exception("consumer failed")
            raise

    async def submit(self, batch: Sequence[Record]) -> None:
        """Queue ``batch`` behind the earlier records of each key; waits while full."""
        if self.failure is not None:
            raise RuntimeError("the consumer failed") from self.failure
        items = []
        passed = 0
        for record in batch:
            progress = self._progress.get(record.partition)
            if progress is None:
                progress = self._progress[record.partition] = PartitionProgress(record.offset)
            progress.started(record.offset)
            done = self._settled_before.get(record.partition)
            if done is not None and record.offset in done:
                done.discard(record.offset)
                self._finished.append((record, progress, None, 0.0))
                passed += 1
                continue
            items.append((record, progress))
        if passed:
            _log.info("records settled before the restart passed over", records=passed)
            self._schedule_settle()
        if not items:
            return
        await self.processor.prepare([record for record, _ in items])
        submit = self._executor.submit
        for item in items:
            await submit(item[0].key, item)

    @property
    def room(self) -> int:
        """How many more records can be submitted without waiting."""
        return self._executor.room

    @property
    def in_flight(self) -> int:
        """Records submitted whose outcome is not yet settled."""
        return self._executor.in_flight + len(self._finished) + (1 if self._busy else 0)

    @property
    def _busy(self) -> bool:
        return self._settling is not None and not self._settling.done()

    @property
    def healthy(self) -> bool:
        """Neither a settlement nor a key's processing failed."""
        return self.failure is None and self._executor.failure is None

    def problem(self) -> BaseException | None:
        """The failure that stopped the consumer or one of its keys, if any."""
        return self.failure or self._executor.failure

    async def stop(self, grace: float = 10.0) -> None:
        """Let adapter calls in progress finish (up to ``grace`` s), then settle them.

        Events waiting out a retry backoff stop waiting and stay unfinished
        (`Processor.stop`): their offsets are not committed, so the next start
        picks them up.
        """
        self.processor.stop()
        await self._executor.stop(grace)
        # Nothing finishes any more; a settlement under way takes what is left.
        self._schedule_settle()
        if self._settling is not None:
            await self._settling  # a failure is recorded in `failure`, not raised

    # -- processing and settling --------------------------------------------------

    async def _handle(self, item: _Item) -> None:
        record, progress = item
        started = time.perf_counter()
        result = await self.processor.process(record)
        self._finished.append((record, progress, result, time.perf_counter() - started))
        self._schedule_settle()

    def _schedule_settle(self) -> None:
        if not self._busy and self._finished and self.failure is None:
            self._settling = asyncio.create_task(self._settle_loop(), name="platypus-settle")

    async def _settle_loop(self) -> None:
        while self._finished and self.failure is None:
            done, self._finished = self._finished, []
            settlement = self._settlement(done)
            try:
                await self.sink.settle(settlement)
            except Exception as exc:  # noqa: BLE001 -- recorded in `failure`, and logged
                # Outcomes that cannot be made durable cannot be committed either:
                # stop here, and the next start processes them again.
                self.failure = exc
                _log.exception("settling outcomes failed; the consumer stops")
                return
            counts = self.counts
            observed = []
            for _, _, result, seconds in done:
                if result is None:
                    continue
                for outcome in result.outcomes:
                    counts[outcome.status] = counts.get(outcome.status, 0) + 1
                observed.append((result, seconds))
            if self.observer is not None and observed:
                self.observer.settled(observed)

    def _settlement(self, done: Sequence[_Finished]) -> Settlement:
        settlement = Settlement()
        touched: dict[int, PartitionProgress] = {}
        assigned = self._progress
        for record, progress, result, _ in done:
            if result is not None:
                self._add(settlement, record, result)
            if assigned.get(record.partition) is progress:
                progress.finish(record.offset)
                touched[record.partition] = progress
        settlement.commits = {p: progress.committable for p, progress in touched.items()}
        return settlement

    @staticmethod
    def _add(settlement: Settlement, record: Record, result: EventResult) -> None:
        settlement.deliveries.extend(result.deliveries)
        replayed = replay_of(record.headers)
        for outcome in result.outcomes:
            settlement.outcomes.append(
                Outcome(
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
                    appended_at=record.timestamp,
                    replay_of=replayed,
                )
            )
            if outcome.dead_letter is not None:
                settlement.dead_letters.append(outcome.dead_letter)
