"""Replays out to the events topic: exactly once per (entry, replay attempt), in key order.

`dispatch_replays` takes the entries asked to be replayed (``replaying``, not yet
placed) from the store in the order their events were first read and hands them
to a `ReplayTarget`, the one thing a runtime provides:

* the embedded runtime's `platypus.runtime.embedded.replays.LogReplayTarget`
  appends them to the event log;
* the Kafka runtime will produce them to the events topic with the same headers
  (issue 12) and learn their positions from the broker's acknowledgements.

Each replay carries a **token**, ``<store id>/<entry id>/<replay attempt>``. The
embedded log keeps the tokens it has appended (as the ``(source, id)`` of the
record, which the ingress uses to de-duplicate events) in the transaction that
appends it, so a token is appended at most once whatever happens around it: two
dispatchers racing, a dispatcher whose lease expired while it was appending, or
a process killed with SIGKILL between the append and the store write that
records it. A token seen before answers with the position of its first copy.

The dispatcher holds the store's indexer lease (`platypus.ops.lease`), so one
process appends at a time and its store writes are fenced by the lease. Within
a pass, records go out in source order, one atomic append per chunk, so every
key's replays reach the log, and therefore the vendor, in their original order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from platypus.envelope import CloudEvent
from platypus.exceptions import EventValidationError, PlatypusError
from platypus.ops.lease import StoreLease
from platypus.ops.store import Failure, FailureStore
from platypus.records import EVENT_ID_HEADER, REPLAY_OF_HEADER, VALIDATED_HEADER
from platypus.schema_registry import SchemaRegistry

__all__ = [
    "REPLAY_SOURCE",
    "Replay",
    "ReplayTarget",
    "dispatch_replays",
]

REPLAY_SOURCE = "platypus replay"
"""The de-duplication namespace of replay tokens in the event log (a space: no
CloudEvent ``source``, a URI reference, can be it)."""

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Replay:
    """One record to put on the events topic for a replay."""

    token: str
    """``<store id>/<entry id>/<attempt>``: the same replay always has the same token."""
    key: str
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class ReplayTarget(Protocol):
    """Where replays go: the events topic of a runtime."""

    @property
    def name(self) -> str:
        """What it writes to, for messages (a path, a topic)."""
        ...

    async def send(self, replays: Sequence[Replay]) -> list[tuple[int, int]]:
        """Put ``replays`` on the events topic in this order; (partition, offset) each.

        A token sent before is not sent again: its answer is where its first copy
        went. (A target that cannot promise that must say so in its docs; the
        delivery ledger then keeps a repeated step from reaching a vendor twice.)
        """
        ...


async def dispatch_replays(
    target: ReplayTarget,
    store: FailureStore,
    lease: StoreLease,
    *,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
    chunk: int = 500,
) -> int:
    """Send every replay asked for to ``target``, in source order; returns how many entries.

    ``lease`` must be held (`StoreLease.acquire`); each chunk's store write renews
    it, or raises `LeaseLostError` if another dispatcher has taken over, in which
    case that one finishes the job (what was sent is not sent again).
    Entries of one event (several of its flows failed) share one record. With
    ``schemas``, a replay that validates now carries ``platypus.validated`` so
    the runtime does not validate it again; otherwise the runtime does.
    """
    held = lease.current
    if held is None:
        raise PlatypusError(
            f"dispatching replays needs the {lease.name!r} lease of the store: acquire it first"
        )
    store_id = store.store_id
    total = 0
    while True:
        pending = await asyncio.to_thread(store.pending_replays, chunk)
        if not pending:
            return total
        replays: list[Replay] = []
        slot: dict[int, int] = {}
        shared: dict[tuple[str, bytes], int] = {}
        for entry in pending:
            value = entry.replay_payload if entry.replay_payload is not None else entry.payload
            same = shared.get((entry.event_id, value)) if entry.event_id else None
            if same is not None:
                slot[entry.id] = same
                continue
            slot[entry.id] = shared[(entry.event_id, value)] = len(replays)
            replays.append(_replay(store_id, entry, value, schemas))
        placed = await target.send(replays)
        await asyncio.to_thread(
            store.mark_replayed,
            {failure_id: placed[index] for failure_id, index in slot.items()},
            lease=held,
        )
        total += len(pending)
        if progress is not None:
            progress(len(pending))


def _replay(store_id: str, entry: Failure, value: bytes, schemas: SchemaRegistry | None) -> Replay:
    headers = [(REPLAY_OF_HEADER, str(entry.id).encode())]
    if entry.event_id:
        headers.append((EVENT_ID_HEADER, entry.event_id.encode()))
    validated = _validated_type(value, schemas) if schemas is not None else None
    if validated is not None:
        headers.append((VALIDATED_HEADER, validated.encode()))
    token = f"{store_id}/{entry.id}/{entry.replays}"
    return Replay(token=token, key=entry.business_key, value=value, headers=headers)


def _validated_type(value: bytes, schemas: SchemaRegistry) -> str | None:
    try:
        event = CloudEvent.model_validate_json(value)
        schemas.validate(event)
    except (ValidationError, EventValidationError):
        return None
    return event.type
