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
from typing import Any

from platypus.ops.store import FailureStore, Lease, OutcomeRow
from platypus.records import (
    CONSUMER_GROUP,
    EVENTS_TOPIC,
    OUTCOMES,
    REPLAY_OF_HEADER,
    replay_of,
    topic_name,
)
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
        """Copy what was committed since the last call; how many outcomes.

        Every partition's new outcomes go into one store transaction, up to
        ``batch`` rows a transaction: a transaction costs the store ~0.3 ms of
        CPU on the event loop (lease check, positions, commit), whatever it holds.
        """
        total = 0
        committed = self.log.committed(CONSUMER_GROUP, EVENTS_TOPIC)
        saved = store.positions(HISTORY_POSITION)
        starts = {p: saved.get(p, 0) for p in committed}
        # The outcomes of one settlement share their time, the records of one append
        # theirs: each distinct time is made a datetime once.
        times: dict[float, datetime] = {}
        while True:
            rows: list[OutcomeRow] = []
            moved: dict[int, int] = {}
            for partition, end in committed.items():
                start = starts[partition]
                room = self.batch - len(rows)
                if start >= end or room <= 0:
                    continue
                found = self.log.outcome_rows_between(EVENTS_TOPIC, partition, start, end, room)
                # A batch ends at an offset boundary, so an event's flows go together.
                if len(found) == room and found[0][0] != found[-1][0]:
                    last = found[-1][0]
                    found = [row for row in found if row[0] != last]
                    moved[partition] = last
                elif len(found) == room:
                    # One event with more flows than there is room: it goes alone, whole.
                    if rows:
                        break
                    found = self.log.outcome_rows_between(
                        EVENTS_TOPIC, partition, start, found[0][0] + 1, 2**31
                    )
                    moved[partition] = found[0][0] + 1
                else:
                    moved[partition] = end
                rows.extend(_row(partition, row, times) for row in found)
            if not moved:
                return total
            store.record_outcomes(rows, topic=HISTORY_POSITION, positions=moved, lease=lease)
            starts.update(moved)
            total += len(rows)


def _row(partition: int, row: tuple[Any, ...], times: dict[float, datetime]) -> OutcomeRow:
    # Runs for every outcome of the log: the columns come typed from SQLite, so no
    # conversions beyond the two times.
    offset, flow, event_id, status, version, step, detail, attempts, at, key, appended, headers = (
        row  # OUTCOME_ROW_COLUMNS
    )
    return OutcomeRow(
        event_id=event_id,
        event_type="",
        flow=flow,
        flow_version=version,
        step=step,
        status=status,
        detail=detail,
        attempts=attempts,
        business_key=key or "",
        topic=EVENTS_TOPIC,
        partition=partition,
        offset=offset,
        settled_at=_time(at, times),
        appended_at=_time(appended, times) if appended else None,
        replay_of=_replay_of(headers),
    )


def _time(at: float, times: dict[float, datetime]) -> datetime:
    found = times.get(at)
    if found is None:
        found = times[at] = datetime.fromtimestamp(at, UTC)
    return found


def _replay_of(headers: str | None) -> int | None:
    # The record's headers as the log keeps them: JSON [[name, text], ...]. Most
    # records are no replay: the header's (plain ASCII) name is then not in the text.
    if not headers or REPLAY_OF_HEADER not in headers:
        return None
    pairs = tuple((str(k), str(v).encode()) for k, v in json.loads(headers))
    found = replay_of(pairs)
    return found if found is not None and found < 2**31 else None
