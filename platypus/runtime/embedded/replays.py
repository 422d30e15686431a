"""Replays of failed events appended to the embedded log, each at most once.

The embedded runtime's `platypus.ops.replays.ReplayTarget`: a replay's token is
the record's (source, id), so the log's de-duplication drops a second append of
the same replay in the transaction that would have made it, and says where the
first copy went.
"""

from __future__ import annotations

from collections.abc import Sequence

from platypus.exceptions import PlatypusError
from platypus.ops.replays import REPLAY_SOURCE, Replay
from platypus.records import EVENTS_TOPIC, NewRecord, Placement
from platypus.runtime.embedded.log import EventLog

__all__ = ["LogReplayTarget"]


class LogReplayTarget:
    """Replays appended to the events topic of an `EventLog`."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    @property
    def name(self) -> str:
        """The log file, for messages."""
        return str(self.log.path)

    async def send(self, replays: Sequence[Replay]) -> list[tuple[int, int]]:
        """Append ``replays`` in this order; where each (or its first copy) landed."""
        items = [
            NewRecord(
                key=r.key, value=r.value, headers=tuple(r.headers), dedupe=(REPLAY_SOURCE, r.token)
            )
            for r in replays
        ]
        placed = await self.log.append(EVENTS_TOPIC, items)
        seen = [r.token for r, where in zip(replays, placed, strict=True) if where is None]
        earlier: dict[str, Placement] = (
            self.log.placements(EVENTS_TOPIC, REPLAY_SOURCE, seen) if seen else {}
        )
        out: list[tuple[int, int]] = []
        for replay, where in zip(replays, placed, strict=True):
            found = where if where is not None else earlier.get(replay.token)
            if found is None:
                raise PlatypusError(
                    f"the event log {self.log.path} dropped replay {replay.token} as a "
                    "duplicate but has no record of its first copy; run `platypus dlq list` "
                    "and replay the entry again"
                )
            out.append((found.partition, found.offset))
        return out

    def close(self) -> None:
        """Nothing to release: the log belongs to its owner."""
