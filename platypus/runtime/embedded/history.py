"""The embedded log's outcomes into the failed-event store's outcome history.

The same history as on Kafka (`platypus.runtime.kafka.indexer`), so "what
happened to event X?" has one answer on both runtimes: the indexer copies the
outcomes of every committed record (an `platypus.ops.indexer.OutcomeFeed`). Only
committed offsets are copied, and the store's position moves in the same
transaction as the rows, so no outcome is skipped or copied twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from platypus.ops.store import FailureStore, Lease, OutcomeRow
from platypus.records import CONSUMER_GROUP, EVENTS_TOPIC, OUTCOMES, replay_of, topic_name
from platypus.runtime.embedded.log import EventLog

__all__ = ["HISTORY_POSITION", "LogOutcomeFeed"]

HISTORY_POSITION = topic_name(OUTCOMES)
"""Under which name the store keeps, per events partition, the next offset to copy."""


class LogOutcomeFeed:
    """Copies the outcomes of committed records from an `EventLog` into the store."""

    def __init__(self, log: EventLog, *, batch: int = 2000) -> None:
        self.log = log
        self.batch = batch

    def index(self, store: FailureStore, lease: Lease) -> int:
        """Copy what was committed since the last call; how many outcomes."""
        total = 0
        committed = self.log.committed(CONSUMER_GROUP, EVENTS_TOPIC)
        saved = store.positions(HISTORY_POSITION)
        for partition, end in committed.items():
            start = saved.get(partition, 0)
            while start < end:
                found = self.log.outcomes_between(EVENTS_TOPIC, partition, start, end, self.batch)
                # A batch ends at an offset boundary, so an event's flows go together.
                if len(found) == self.batch and found[0]["offset"] != found[-1]["offset"]:
                    last = found[-1]["offset"]
                    found = [row for row in found if row["offset"] != last]
                    moved = last
                else:
                    moved = end if len(found) < self.batch else found[-1]["offset"] + 1
                store.record_outcomes(
                    [_row(partition, row) for row in found],
                    topic=HISTORY_POSITION,
                    positions={partition: moved},
                    lease=lease,
                )
                total += len(found)
                start = moved
        return total


def _row(partition: int, row: dict[str, object]) -> OutcomeRow:
    appended = row.get("appended_at")
    return OutcomeRow(
        event_id=str(row["event_id"]),
        event_type="",
        flow=str(row["flow"]),
        flow_version=str(row["flow_version"]),
        step=str(row["step"]),
        status=str(row["status"]),
        detail=str(row["detail"]),
        attempts=int(str(row["attempts"])),
        business_key=str(row.get("key") or ""),
        topic=EVENTS_TOPIC,
        partition=partition,
        offset=int(str(row["offset"])),
        settled_at=datetime.fromtimestamp(float(str(row["at"])), UTC),
        appended_at=(datetime.fromtimestamp(float(str(appended)), UTC) if appended else None),
        replay_of=_replay_of(row.get("headers")),
    )


def _replay_of(headers: object) -> int | None:
    # The record's headers as the log keeps them: JSON [[name, text], ...].
    if not isinstance(headers, str) or not headers:
        return None
    pairs = tuple((str(k), str(v).encode()) for k, v in json.loads(headers))
    found = replay_of(pairs)
    return found if found is not None and found < 2**31 else None
