"""In-memory implementations of the runtime boundary, for tests and one-off runs.

They keep everything in dicts and lists and lose it with the process; what they
guarantee is the contract of `platypus.runtime.base`, nothing more, so the
shared pipeline can be tested fast and exhaustively against them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

from platypus.partitioning import partition_for
from platypus.records import (
    DEAD_LETTER_TOPIC,
    EVENTS_TOPIC,
    Delivery,
    DeliveryKey,
    NewRecord,
    Placement,
    Record,
)
from platypus.runtime.base import Settlement

__all__ = ["MemoryLedger", "MemoryLog"]


class MemoryLedger:
    """A `DeliveryLedger` in a dict."""

    def __init__(self) -> None:
        self.entries: dict[DeliveryKey, Any] = {}
        self.reads = 0
        """How many `delivered` calls were made (a test asks how often the ledger is read)."""

    async def delivered(self, event_ids: Collection[str]) -> dict[DeliveryKey, Any]:
        self.reads += 1
        wanted = set(event_ids)
        return {key: value for key, value in self.entries.items() if key[0] in wanted}

    async def record(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self.entries[delivery.key] = delivery.result


class MemoryLog:
    """Topics, the `EventSink`, `RecordSource` and `OutcomeSink` of one process's memory.

    Records are partitioned by key as the real runtimes do; `batches` yields what
    was appended to the events topic from the committed offsets on; `settle`
    keeps every settlement, appends its dead letters, records its deliveries in
    ``ledger`` and applies its commits.
    """

    def __init__(
        self,
        partitions: int = 4,
        *,
        topic: str = EVENTS_TOPIC,
        ledger: MemoryLedger | None = None,
    ) -> None:
        self.partitions = partitions
        self.ledger = ledger if ledger is not None else MemoryLedger()
        self.topic = topic
        self.topics: dict[str, dict[int, list[Record]]] = {}
        self.rejected: list[tuple[str, list[Mapping[str, Any]], bytes]] = []
        self.settlements: list[Settlement] = []
        self.committed: dict[int, int] = dict.fromkeys(range(partitions), 0)
        self._seen: set[tuple[str, str, str]] = set()
        self._positions: dict[int, int] = dict(self.committed)
        self._appended = asyncio.Event()

    async def append(self, topic: str, records: Sequence[NewRecord]) -> list[Placement | None]:
        out: list[Placement | None] = []
        for new in records:
            if new.dedupe is not None:
                marker = (topic, *new.dedupe)
                if marker in self._seen:
                    out.append(None)
                    continue
                self._seen.add(marker)
            partition = partition_for(new.key, self.partitions)
            log = self.topics.setdefault(topic, {}).setdefault(partition, [])
            log.append(Record(topic, partition, len(log), new.key, new.value, new.headers))
            out.append(Placement(partition, len(log) - 1))
        self._appended.set()
        return out

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        self.rejected.append((reason, list(errors), body))
        return len(self.rejected)

    def read(self, topic: str) -> list[Record]:
        """Every record of ``topic``, by partition then offset."""
        parts = self.topics.get(topic, {})
        return [record for p in sorted(parts) for record in parts[p]]

    async def batches(self) -> AsyncIterator[Sequence[Record]]:
        while True:
            self._appended.clear()
            parts = self.topics.get(self.topic, {})
            batch: list[Record] = []
            for partition, log in sorted(parts.items()):
                start = self._positions.get(partition, 0)
                batch.extend(log[start:])
                self._positions[partition] = len(log)
            if batch:
                yield batch
            else:
                await self._appended.wait()

    async def settle(self, settlement: Settlement) -> None:
        self.settlements.append(settlement)
        if settlement.dead_letters:
            await self.append(
                DEAD_LETTER_TOPIC,
                [NewRecord(d.key, d.value, tuple(d.headers)) for d in settlement.dead_letters],
            )
        await self.ledger.record(settlement.deliveries)
        for partition, offset in settlement.commits.items():
            self.committed[partition] = max(self.committed.get(partition, 0), offset)
