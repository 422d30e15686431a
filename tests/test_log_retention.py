"""The embedded log's retention: what compaction deletes, what it keeps, and the file size."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from platypus.config import ProjectConfig, RetentionSettings
from platypus.deadletter import DeadLetter
from platypus.exceptions import ConfigurationError
from platypus.records import (
    CONSUMER_GROUP,
    DEAD_LETTER_TOPIC,
    EVENTS_TOPIC,
    Delivery,
    NewRecord,
    Outcome,
)
from platypus.runtime.base import Settlement
from platypus.runtime.embedded.log import EventLog
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, ingest, running

DAY = 86400.0
WEEK = RetentionSettings(events=7 * DAY, dead_letters=7 * DAY, outcomes=7 * DAY)


def _event(n: int, key: str = "006000000000000001") -> NewRecord:
    event = closed_won(key, event_id=f"evt-{n}")
    return NewRecord(key, json.dumps(event).encode(), dedupe=(event["source"], event["id"]))


async def _settle_all(log: EventLog, count: int) -> None:
    """Give every event an outcome and commit all of them."""
    records = log.fetch(EVENTS_TOPIC, dict.fromkeys(range(log.partitions), 0), limit=10_000)
    assert len(records) == count
    settlement = Settlement(
        outcomes=[
            Outcome(
                r.topic, r.partition, r.offset, "orders", f"e{r.offset}", "t", r.key, "delivered"
            )
            for r in records
        ],
        commits={p: end for p, end in log.end_offsets(EVENTS_TOPIC).items() if end},
    )
    await log.settle(settlement, group=CONSUMER_GROUP, topic=EVENTS_TOPIC)


async def test_committed_records_past_retention_go_and_the_rest_stay(tmp_path: Path) -> None:
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, [_event(n) for n in range(10)])
        await _settle_all(log, 10)
        await log.append(EVENTS_TOPIC, [_event(n) for n in range(10, 13)])  # not committed

        kept = await log.compact(WEEK, now=time.time() + 6 * DAY)
        done = await log.compact(WEEK, now=time.time() + 8 * DAY)

        offsets = [r.offset for r in log.read(EVENTS_TOPIC)]
    assert kept.records == 0
    # Committed and old: gone; not yet committed: kept, however old.
    assert done.records == 10
    assert offsets == [10, 11, 12]


async def test_the_last_record_of_a_partition_is_kept_whatever_its_age(tmp_path: Path) -> None:
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, [_event(n) for n in range(4)])
        await _settle_all(log, 4)
        await log.compact(WEEK, now=time.time() + 8 * DAY)
        offsets = [r.offset for r in log.read(EVENTS_TOPIC)]
    assert offsets == [3]


async def test_offsets_are_never_reused_after_compaction(tmp_path: Path) -> None:
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, [_event(n) for n in range(5)])
        await _settle_all(log, 5)
        await log.compact(WEEK, now=time.time() + 8 * DAY)
    with EventLog(tmp_path, partitions=1) as log:
        [placed] = await log.append(EVENTS_TOPIC, [_event(99)])
    assert placed == (0, 5)


async def test_dead_letters_go_only_once_the_store_has_taken_them_in(tmp_path: Path) -> None:
    letters = [DeadLetter(key="k", value=b"{}", headers=[("h", b"v")]) for _ in range(6)]
    with EventLog(tmp_path, partitions=1) as log:
        await log.settle(Settlement(dead_letters=letters), group=CONSUMER_GROUP, topic=EVENTS_TOPIC)
        later = time.time() + 8 * DAY
        nothing = await log.compact(WEEK, now=later)  # the store has read none of them
        some = await log.compact(WEEK, indexed={0: 4}, now=later)
        left = [r.offset for r in log.read(DEAD_LETTER_TOPIC)]
    assert (nothing.dead_letters, some.dead_letters) == (0, 4)
    assert left == [4, 5]


async def test_outcomes_deliveries_and_refused_bodies_go_after_their_retention(
    tmp_path: Path,
) -> None:
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, [_event(1)])
        await _settle_all(log, 1)
        await log.record([Delivery("evt-1", "orders", "create", "v", {"id": 1}, 1)])
        await log.reject("bad", [], b"{")
        keep_forever = RetentionSettings(events=0, outcomes=0, deliveries=0, rejected=0)
        assert (await log.compact(keep_forever, now=time.time() + 365 * DAY)).total == 0
        done = await log.compact(RetentionSettings(), now=time.time() + 31 * DAY)
        assert (log.outcomes(), log.delivery_rows(), log.rejected()) == ([], [], [])
    assert (done.outcomes, done.deliveries, done.rejected) == (1, 1, 1)


async def test_the_file_stops_growing_once_compaction_keeps_up(tmp_path: Path) -> None:
    # Ten rounds of a thousand events, each round compacting the one before: the
    # database holds about one round's pages, not ten (freed pages are reused).
    with EventLog(tmp_path, partitions=2) as log:
        pages = []
        for round_ in range(10):
            start = round_ * 1000
            batch = [_event(n, f"k{n % 50}") for n in range(start, start + 1000)]
            await log.append(EVENTS_TOPIC, batch)
            ends = log.end_offsets(EVENTS_TOPIC)
            await log.settle(
                Settlement(commits=dict(ends)), group=CONSUMER_GROUP, topic=EVENTS_TOPIC
            )
            await log.compact(RetentionSettings(events=1.0), now=time.time() + 2)
            pages.append(_pages(log.path))
    assert max(pages[1:]) <= 2 * pages[0], pages


def _pages(path: Path) -> int:
    """The database's size in pages, WAL included, as a new reader sees it."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


def test_retention_reads_days_and_zero_means_forever() -> None:
    config = ProjectConfig.model_validate({"retention": {"events": "3d", "outcomes": 0}})
    assert config.retention.events == 3 * DAY
    assert config.retention.outcomes == 0


async def test_a_log_of_the_earlier_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "events.db") as conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    with pytest.raises(ConfigurationError, match="earlier development version"):
        EventLog(tmp_path).open()


async def test_the_app_compacts_dead_letters_only_after_the_store_has_them(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [(400,)] * 3)
    quick = RetentionSettings(events=0.001, dead_letters=0.001)
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, retention=quick) as app:
        await ingest(app, *(closed_won(f"006{n:015d}") for n in range(3)))
        await app.drain()
        await until_indexed(app, 3)
        await asyncio.sleep(0.01)
        done = await app.compact()
        entries = app.failures.search(limit=None)
    assert done.dead_letters >= 1
    # Every failure is still in the store, with its event: nothing was lost.
    assert len(entries) == 3
    assert all(json.loads(entry.payload)["type"] for entry in entries)


async def until_indexed(app: Any, count: int, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if len(app.failures.search(limit=None)) >= count:
                return
            await asyncio.sleep(0.05)
