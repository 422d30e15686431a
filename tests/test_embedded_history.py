"""The embedded log's outcomes copied into the store's history (`LogOutcomeFeed`), and how
often the indexer's passes run for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from platypus.ops.indexer import IndexReport
from platypus.ops.lease import INDEXER_LEASE, StoreLease
from platypus.ops.store import FailureStore, Lease, OutcomeRow, default_store_url
from platypus.records import (
    CONSUMER_GROUP,
    CONTENT_TYPE_HEADER,
    EVENT_ID_HEADER,
    EVENTS_TOPIC,
    NewRecord,
    Outcome,
)
from platypus.runtime.base import Settlement
from platypus.runtime.embedded.history import LogOutcomeFeed
from platypus.runtime.embedded.log import EventLog


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(tmp_path / "data", partitions=4, durability="normal") as opened:
        yield opened


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FailureStore]:
    opened = FailureStore(default_store_url(tmp_path))
    opened.create()
    yield opened
    opened.close()


class _CountingStore(FailureStore):
    """A store that counts its `record_outcomes` transactions."""

    transactions = 0

    def record_outcomes(self, rows: Any, **kwargs: Any) -> int:
        self.transactions += 1
        return super().record_outcomes(rows, **kwargs)


async def _settled(log: EventLog, events: int, flows: tuple[str, ...] = ("orders",)) -> None:
    """``events`` appended across the partitions, each settled in ``flows`` and committed."""
    records = [
        NewRecord(
            f"key-{i}",
            b'{"n": %d}' % i,
            ((CONTENT_TYPE_HEADER, b"application/cloudevents+json"), (EVENT_ID_HEADER, b"e%d" % i)),
            dedupe=("test", f"e{i}"),
        )
        for i in range(events)
    ]
    placed = await log.append(EVENTS_TOPIC, records)
    settlement = Settlement()
    for i, where in enumerate(placed):
        assert where is not None
        settlement.outcomes.extend(
            Outcome(
                topic=EVENTS_TOPIC,
                partition=where.partition,
                offset=where.offset,
                flow=flow,
                event_id=f"e{i}",
                event_type="t",
                key=f"key-{i}",
                status="delivered",
                flow_version="v1",
                step="",
                detail="",
                attempts=1,
                appended_at=0.0,
                replay_of=None,
            )
            for flow in flows
        )
    settlement.commits = log.end_offsets(EVENTS_TOPIC)
    await log.settle(settlement, group=CONSUMER_GROUP, topic=EVENTS_TOPIC)


def _lease(store: FailureStore) -> Lease:
    lease = StoreLease(store, INDEXER_LEASE, detail="test").acquire()
    assert lease is not None
    return lease


def _history(store: FailureStore) -> list[OutcomeRow]:
    return store.outcome_history(limit=10_000)


async def test_every_partition_is_copied_in_one_store_transaction(
    log: EventLog, tmp_path: Path
) -> None:
    store = _CountingStore(default_store_url(tmp_path))
    store.create()
    await _settled(log, 40)
    assert len({p for p, end in log.end_offsets(EVENTS_TOPIC).items() if end}) > 1

    copied = LogOutcomeFeed(log).index(store, _lease(store))

    assert copied == 40
    assert store.transactions == 1
    assert len(_history(store)) == 40
    store.close()


async def test_a_batch_ends_at_an_event_boundary_and_nothing_is_copied_twice(
    log: EventLog, store: FailureStore
) -> None:
    await _settled(log, 30, flows=("a", "b", "c"))
    feed, lease = LogOutcomeFeed(log, batch=7), _lease(store)

    assert feed.index(store, lease) == 90
    assert feed.index(store, lease) == 0
    history = _history(store)
    assert sorted((o.partition, o.offset, o.flow) for o in history) == sorted(
        {(o.partition, o.offset, o.flow) for o in history}
    )
    assert len(history) == 90


async def test_an_event_with_more_flows_than_a_batch_is_copied_whole(
    log: EventLog, store: FailureStore
) -> None:
    await _settled(log, 3, flows=tuple(f"flow-{n}" for n in range(5)))
    feed = LogOutcomeFeed(log, batch=2)

    assert feed.index(store, _lease(store)) == 15
    by_event: dict[str, int] = {}
    for row in _history(store):
        by_event[row.event_id] = by_event.get(row.event_id, 0) + 1
    assert by_event == {"e0": 5, "e1": 5, "e2": 5}


async def test_outcomes_of_one_settlement_keep_their_times(
    log: EventLog, store: FailureStore
) -> None:
    await _settled(log, 10)
    LogOutcomeFeed(log).index(store, _lease(store))

    history = _history(store)
    assert len({o.settled_at for o in history}) == 1
    assert {o.appended_at for o in history} != {None}
    assert all(o.settled_at.tzinfo is not None for o in history)


def test_a_pass_that_only_copied_outcomes_does_not_call_for_another_at_once() -> None:
    # Under load a new pass at once found a few outcomes each time, so passes (and
    # their store transactions) ran back to back on the event loop.
    report = IndexReport()
    report.outcomes = report.read = 500
    assert not report.busy
    report.read += 1  # a dead letter read: there may be more
    assert report.busy
