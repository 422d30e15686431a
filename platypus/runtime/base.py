"""The boundary every runtime implements: four small Protocols around the shared pipeline.

::

    ingress, webhooks, pollers, replays
                 │ NewRecord
                 ▼
            EventSink.append ─────▶ events topic (SQLite log | Kafka)
                                          │ Record
                                          ▼
                                 RecordSource.batches
                                          │
                     Consumer (key order, safe commits) ──▶ Processor ──▶ adapters
                                          │                    │
                                          │          DeliveryLedger.delivered / .record
                                          ▼
                                 OutcomeSink.settle(Settlement)
                     outcomes, dead letters, deliveries and the commits they allow

The shared code (`platypus.runtime.consumer`, `platypus.runtime.processor`, the
ingress, the sources, ops) depends only on these Protocols and on the records of
`platypus.records`. A runtime is a package that implements them over its storage:
`platypus.runtime.embedded` (one SQLite file) and `platypus.runtime.kafka`
(faust-streaming). `platypus.runtime.memory` has in-memory versions for tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from platypus.deadletter import DeadLetter
from platypus.records import Delivery, DeliveryKey, NewRecord, Outcome, Placement, Record

__all__ = [
    "CheckpointStore",
    "DeliveryLedger",
    "EventSink",
    "OutcomeSink",
    "RecordSource",
    "Settlement",
]


class EventSink(Protocol):
    """Where accepted events go: the embedded log, or a Kafka producer."""

    async def append(self, topic: str, records: Sequence[NewRecord]) -> list[Placement | None]:
        """Durably append ``records``, all or none: where each landed, None for a duplicate."""
        ...

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        """Record a refused request body with the reasons; returns an id to quote."""
        ...


class DeliveryLedger(Protocol):
    """Which steps an event was already delivered to: the one answer to "was this sent?".

    The processor reads it once per batch of records and skips what it finds;
    it records a write the vendor does not de-duplicate itself as soon as the
    vendor took it, and every other delivery with the event's outcome.
    """

    async def delivered(self, event_ids: Collection[str]) -> dict[DeliveryKey, Any]:
        """Steps delivered for ``event_ids``: (event id, flow, step) -> the vendor's result."""
        ...

    async def record(self, deliveries: Sequence[Delivery]) -> None:
        """Remember ``deliveries``, durably, before returning."""
        ...


class CheckpointStore(Protocol):
    """Where pollers and backfills keep how far they have read, beside the events they read.

    `append_with_checkpoint` makes the events durable first and moves the
    checkpoint only then (in one transaction where the store allows it), so a
    crash repeats a page at worst and never skips one.
    """

    def load_checkpoint(self, name: str) -> str | None:
        """The value of checkpoint ``name``, None when it was never saved."""
        ...

    async def save_checkpoint(self, name: str, value: str) -> None:
        """Set checkpoint ``name`` to ``value``, durably."""
        ...

    async def delete_checkpoint(self, name: str) -> None:
        """Forget checkpoint ``name``."""
        ...

    async def append_with_checkpoint(
        self, topic: str, records: Sequence[NewRecord], name: str, value: str
    ) -> list[Placement | None]:
        """Append ``records`` (as `EventSink.append`), then set checkpoint ``name``."""
        ...

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        """Record a refused body (as `EventSink.reject`)."""
        ...


class RecordSource(Protocol):
    """Where the records of the events topic come from, a batch at a time, in offset
    order within each partition."""

    def batches(self) -> AsyncIterator[Sequence[Record]]:
        """Batches of records until cancelled; waits while there are none."""
        ...


@dataclass(slots=True)
class Settlement:
    """What a turn of processing produced, to be made durable together.

    ``commits`` maps a partition of the events topic to the offset it is now safe
    to commit: every record before it has its outcome in this settlement or an
    earlier one. A runtime writes the outcomes, dead letters and deliveries first
    (or in the same transaction), then commits.
    """

    outcomes: list[Outcome] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    commits: dict[int, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.dead_letters or self.deliveries or self.commits)


class OutcomeSink(Protocol):
    """Where outcomes, dead letters and the commits they allow go."""

    async def settle(self, settlement: Settlement) -> None:
        """Make ``settlement`` durable; commits only once the rest is."""
        ...
