"""The embedded log's values: compressed with a dictionary trained on its own values,
read back as they were appended."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import zstandard
from structlog.testing import capture_logs

from platypus.config import RetentionSettings
from platypus.exceptions import PlatypusError, StoredDataError
from platypus.records import CONSUMER_GROUP, DEAD_LETTER_TOPIC, EVENTS_TOPIC, NewRecord
from platypus.runtime.base import Settlement
from platypus.runtime.embedded import values
from platypus.runtime.embedded.log import SCHEMA_VERSION, EventLog
from tests.support import records_on_disk

DAY = 86400.0


def _value(n: int, kind: str = "opportunity") -> bytes:
    rng = random.Random(n)
    event = {
        "specversion": "1.0",
        "type": f"com.example.{kind}.closed_won.v1",
        "source": "/crm/salesforce",
        "id": f"evt-{n}",
        "time": f"2026-12-02T10:{n % 60:02d}:00Z",
        "data": {
            f"{kind}_id": f"006{n:015d}",
            "account": {"name": f"Account {rng.randrange(10_000)}", "region": "EMEA"},
            "amount": round(rng.uniform(100, 100_000), 2),
            "items": [
                {"sku": f"SKU-{rng.randrange(1000)}", "quantity": rng.randrange(1, 9)}
                for _ in range(3)
            ],
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _invoice(n: int) -> bytes:
    rng = random.Random(-n)
    invoice = {
        "InvoiceNumber": f"INV/{n:08d}",
        "Customer": {"VatNumber": f"GB{rng.randrange(10**9)}", "PostCode": f"SW{n % 9} 1AA"},
        "Lines": [
            {"Description": f"Licence {rng.randrange(99)}", "NetValue": rng.randrange(10**5)}
            for _ in range(4)
        ],
        "DueDays": rng.choice([14, 30, 60]),
    }
    return json.dumps(invoice).encode()


def _records(start: int, count: int, kind: str = "opportunity") -> list[NewRecord]:
    return [NewRecord(f"k{n % 7}", _value(n, kind)) for n in range(start, start + count)]


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20.0
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_values_are_compressed_with_a_trained_dictionary_and_read_back_as_appended(
    tmp_path: Path,
) -> None:
    before, after = _records(0, 300), _records(300, 300)
    with EventLog(tmp_path, partitions=2) as log:
        await log.append(EVENTS_TOPIC, before)
        made = await log.train_dictionary()
        await log.append(EVENTS_TOPIC, after)
        read = log.read(EVENTS_TOPIC)
        fetched = log.fetch(EVENTS_TOPIC, {0: 0, 1: 0}, limit=10_000)
    appended = sorted(r.value for r in before + after)
    assert made == 1
    assert sorted(r.value for r in read) == appended
    assert sorted(r.value for r in fetched) == appended
    # The test's own reader of the file gives the same bytes, in append order.
    assert [v for v, _ in records_on_disk(tmp_path / "events.db", EVENTS_TOPIC)] == [
        r.value for r in before + after
    ]
    path = tmp_path / "events.db"
    # Records from before the dictionary stay as they came; the later ones shrink.
    assert _rows(path, "SELECT dictionary, COUNT(*) FROM records GROUP BY 1 ORDER BY 1") == [
        (None, 300),
        (1, 300),
    ]
    (stored,) = _rows(path, "SELECT AVG(LENGTH(value)) FROM records WHERE dictionary = 1")[0]
    raw = sum(len(r.value) for r in after) / len(after)
    assert isinstance(stored, float)
    assert stored < raw / 2


async def test_a_value_the_dictionary_does_not_shrink_is_stored_as_it_came(
    tmp_path: Path,
) -> None:
    noise = [NewRecord("k", os.urandom(600)), NewRecord("k", b"{}")]
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        assert await log.train_dictionary() == 1
        await log.append(EVENTS_TOPIC, noise)
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read[-2:]] == [n.value for n in noise]
    assert _rows(
        tmp_path / "events.db", "SELECT dictionary, value FROM records WHERE offset >= 300"
    ) == [(None, noise[0].value), (None, noise[1].value)]


async def test_too_few_values_give_no_dictionary(tmp_path: Path) -> None:
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 3))
        assert await log.train_dictionary() is None
        await log.append(EVENTS_TOPIC, _records(3, 3))
    assert _rows(
        tmp_path / "events.db", "SELECT COUNT(*) FROM records WHERE dictionary IS NULL"
    ) == [(6,)]


async def test_values_nothing_can_be_learnt_from_are_tried_again_later_and_less_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "TRAIN_AFTER", 10)
    tried: list[int] = []

    def train(samples: Sequence[bytes]) -> bytes | None:
        tried.append(len(samples))

    monkeypatch.setattr(values, "train", train)
    with EventLog(tmp_path, partitions=1) as log:
        for _ in range(100):
            await log.append(EVENTS_TOPIC, [NewRecord("k", b"{}")])
            await _until(lambda: not log._training)  # the attempt is back before the next
    # Tried after 10 values, then 20 more, then 40 more: 10, 30, 70 seen.
    assert tried == [10, 30, 70]


async def test_the_values_trained_on_are_bounded_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "SAMPLE_BYTES", 10_000)
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, [NewRecord("k", b"x" * 3000) for _ in range(5)])
        assert len(await log._submit(log._recent_values)) == 3
        await log.append(EVENTS_TOPIC, [NewRecord("k", b"y" * 20_000)])
        assert await log._submit(log._recent_values) == []
        await log.append(EVENTS_TOPIC, _records(0, 10))
        assert await log._submit(log._recent_values) == [r.value for r in _records(0, 10)]


async def test_the_values_trained_on_are_read_back_from_the_file_as_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not kept in memory: the most recent values in the log, compressed or not,
    # from before a restart too, and the dead letters' as well.
    monkeypatch.setattr(values, "SAMPLES", 400)
    trained: list[list[bytes]] = []
    train = values.train

    def spy(samples: Sequence[bytes]) -> bytes | None:
        trained.append(list(samples))
        return train(samples)

    monkeypatch.setattr(values, "train", spy)
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        assert await log.train_dictionary() == 1
        await log.append(EVENTS_TOPIC, _records(300, 50))  # compressed with 1
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(DEAD_LETTER_TOPIC, _records(350, 10))
        assert await log.train_dictionary() == 2
    assert trained[0] == [r.value for r in _records(0, 300)]
    assert trained[1] == [r.value for r in _records(0, 360)][-400:]


async def test_the_dictionary_is_kept_in_the_file_and_used_again_after_a_restart(
    tmp_path: Path,
) -> None:
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        await log.train_dictionary()
        await log.append(EVENTS_TOPIC, _records(300, 10))
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(310, 10))
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read] == [r.value for r in _records(0, 320)]
    assert _rows(tmp_path / "events.db", "SELECT DISTINCT dictionary FROM records") == [
        (None,),
        (1,),
    ]
    assert _rows(tmp_path / "events.db", "SELECT COUNT(*) FROM dictionaries") == [(1,)]


async def test_a_dictionary_is_trained_by_itself_once_enough_values_are_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "TRAIN_AFTER", 200)
    path = tmp_path / "events.db"
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 199))
        await asyncio.sleep(0.2)
        assert _rows(path, "SELECT COUNT(*) FROM dictionaries") == [(0,)]
        await log.append(EVENTS_TOPIC, _records(199, 1))
        await _until(lambda: _rows(path, "SELECT COUNT(*) FROM dictionaries") == [(1,)])
        await log.append(EVENTS_TOPIC, _records(200, 5))
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read] == [r.value for r in _records(0, 205)]
    assert _rows(path, "SELECT COUNT(*) FROM records WHERE dictionary = 1") == [(5,)]


async def test_another_dictionary_is_trained_when_the_values_stop_fitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "RETRAIN_WINDOW", 100)
    monkeypatch.setattr(values, "SAMPLES", 300)
    path = tmp_path / "events.db"
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        await log.train_dictionary()
        await log.append(EVENTS_TOPIC, _records(300, 200))  # two windows that fit
        await asyncio.sleep(0.2)
        assert _rows(path, "SELECT COUNT(*) FROM dictionaries") == [(1,)]
        # Another kind of event, with other field names: the first dictionary knows less.
        other = [NewRecord("k", _invoice(n)) for n in range(300)]
        await log.append(EVENTS_TOPIC, other)
        await _until(lambda: _rows(path, "SELECT COUNT(*) FROM dictionaries") == [(2,)])
        await log.append(EVENTS_TOPIC, other[:5])
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read[-5:]] == [r.value for r in other[:5]]
    assert _rows(path, "SELECT dictionary FROM records ORDER BY id DESC LIMIT 1") == [(2,)]


async def test_compaction_keeps_every_dictionary_a_record_uses(tmp_path: Path) -> None:
    week = RetentionSettings(events=7 * DAY)
    path = tmp_path / "events.db"
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        await log.train_dictionary()
        await log.append(EVENTS_TOPIC, _records(300, 10))  # dictionary 1
        await log.train_dictionary()
        await log.append(EVENTS_TOPIC, _records(310, 10))  # dictionary 2, the one in use
        await log.settle(Settlement(commits={0: 315}), group=CONSUMER_GROUP, topic=EVENTS_TOPIC)
        # Nothing old enough: every dictionary stays, whatever the passes.
        for _ in range(2):
            assert (await log.compact(week, now=time.time() + DAY)).dictionaries == 0
        # Records 0-314 go: no record uses dictionary 1 any more. It is kept one more
        # pass (a reader may just have read one of its records), then deleted.
        first = await log.compact(week, now=time.time() + 8 * DAY)
        assert first.records == 315
        assert first.dictionaries == 0
        assert (await log.compact(week, now=time.time() + 8 * DAY)).dictionaries == 1
        # The one in use stays though no record needs it yet... and its records read.
        assert (await log.compact(week, now=time.time() + 8 * DAY)).dictionaries == 0
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read] == [r.value for r in _records(315, 5)]
    # Dictionary 2 is older than half the retention, but the 5 values left in the
    # log are too few to train its replacement on: it stays, in use and used.
    assert _rows(path, "SELECT id FROM dictionaries") == [(2,)]


async def test_the_dictionary_in_use_is_kept_when_no_record_uses_it(tmp_path: Path) -> None:
    week = RetentionSettings(events=7 * DAY)
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        await log.train_dictionary()
        await log.append(EVENTS_TOPIC, _records(300, 10))
        await log.train_dictionary()  # 2 in use, no record yet
        await log.settle(Settlement(commits={0: 310}), group=CONSUMER_GROUP, topic=EVENTS_TOPIC)
        for _ in range(3):
            await log.compact(week, now=time.time() + 8 * DAY)
        await log.append(EVENTS_TOPIC, _records(310, 3))
        read = log.read(EVENTS_TOPIC)
    # Record 309, the last of its partition, is kept and so is its dictionary.
    # Dictionary 2, older than half the retention, has one value left in the log to
    # train a replacement on, too few: it stays in use through the three passes
    # though no record had it yet.
    assert [r.value for r in read] == [r.value for r in _records(309, 4)]
    assert _rows(tmp_path / "events.db", "SELECT id FROM dictionaries") == [(1,), (2,)]
    assert _rows(tmp_path / "events.db", "SELECT DISTINCT dictionary FROM records") == [
        (1,),
        (2,),
    ]


async def test_a_dictionary_older_than_half_the_events_retention_is_replaced(
    tmp_path: Path,
) -> None:
    # Its fragments of old events (names, addresses) must not outlive the events.
    week = RetentionSettings(events=7 * DAY)
    path = tmp_path / "events.db"
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        assert await log.train_dictionary() == 1
        await log.append(EVENTS_TOPIC, _records(300, 10))
        await log.compact(week, now=time.time() + 3 * DAY)  # younger than half: kept
        assert _rows(path, "SELECT id FROM dictionaries") == [(1,)]
        await log.compact(week, now=time.time() + 4 * DAY)
        assert _rows(path, "SELECT id FROM dictionaries") == [(1,), (2,)]
        await log.append(EVENTS_TOPIC, _records(310, 10))
        await log.settle(Settlement(commits={0: 319}), group=CONSUMER_GROUP, topic=EVENTS_TOPIC)
        # Once the records written with it are past the retention, the old one goes
        # (two passes: a reader may just have read one of its records).
        for _ in range(2):
            await log.compact(week, now=time.time() + 12 * DAY)
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read] == [r.value for r in _records(319, 1)]
    assert (1,) not in _rows(path, "SELECT id FROM dictionaries")


async def test_a_dictionary_without_recent_values_to_learn_from_is_kept(tmp_path: Path) -> None:
    week = RetentionSettings(events=7 * DAY)
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        await log.train_dictionary()
        await log.settle(Settlement(commits={0: 300}), group=CONSUMER_GROUP, topic=EVENTS_TOPIC)
        # The values go first, past the retention (all but the last of the
        # partition): what is left is too little to train a replacement on.
        assert (await log.compact(week, now=time.time() + 8 * DAY)).records == 299
        await log.append(EVENTS_TOPIC, _records(300, 1))
        read = log.read(EVENTS_TOPIC)
    assert read[-1].value == _records(300, 1)[0].value
    assert _rows(tmp_path / "events.db", "SELECT id FROM dictionaries") == [(1,)]


async def _one_compressed(tmp_path: Path) -> None:
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, _records(0, 300))
        await log.train_dictionary()
        await log.append(EVENTS_TOPIC, _records(300, 1))


async def test_a_missing_dictionary_is_a_clear_error_not_a_lost_event(tmp_path: Path) -> None:
    await _one_compressed(tmp_path)
    with sqlite3.connect(tmp_path / "events.db") as conn:
        conn.execute("DELETE FROM dictionaries")
    with EventLog(tmp_path, partitions=1) as log:
        with pytest.raises(
            StoredDataError,
            match=r"platypus.events/0@300 .* dictionary 1, which is not in the file",
        ):
            log.fetch(EVENTS_TOPIC, {0: 299})
        assert issubclass(StoredDataError, PlatypusError)


async def test_a_damaged_dictionary_or_value_is_a_clear_error(tmp_path: Path) -> None:
    await _one_compressed(tmp_path)
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE records SET value = substr(value, 1, 20) WHERE dictionary = 1")
    with (
        EventLog(tmp_path, partitions=1) as log,
        pytest.raises(StoredDataError, match="cannot be read with dictionary 1"),
    ):
        log.read(EVENTS_TOPIC)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE dictionaries SET data = zeroblob(2000)")
    with (
        EventLog(tmp_path, partitions=1) as log,
        pytest.raises(StoredDataError, match=r"dictionary 1 in .* is damaged"),
    ):
        log.read(EVENTS_TOPIC)


# The tables of log format 3 as that version created them (the rest are unchanged).
_FORMAT_3 = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    topic INTEGER NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT, at REAL NOT NULL,
    source TEXT, event_id TEXT, header_set INTEGER, tag BLOB
);
CREATE TABLE header_sets (id INTEGER PRIMARY KEY, headers TEXT NOT NULL UNIQUE);
CREATE UNIQUE INDEX records_by_position ON records (topic, partition, offset);
CREATE UNIQUE INDEX records_by_source_id ON records (topic, source, event_id)
    WHERE source IS NOT NULL;
INSERT INTO meta VALUES ('partitions', '1'), ('schema', '3');
INSERT INTO topics VALUES (1, 'platypus.events');
"""


async def test_a_log_of_format_3_is_upgraded_on_open_and_its_records_read_as_they_were(
    tmp_path: Path,
) -> None:
    old = _records(0, 300)
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_FORMAT_3)
        conn.executemany(
            "INSERT INTO records (topic, partition, offset, key, value, at) "
            "VALUES (1, 0, ?, ?, ?, 1.0)",
            [(n, r.key, r.value) for n, r in enumerate(old)],
        )
    with EventLog(tmp_path) as log:
        # Trained on the values in the file, the old records' too.
        assert await log.train_dictionary() == 1
        await log.append(EVENTS_TOPIC, _records(300, 305))
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read] == [r.value for r in _records(0, 605)]
    assert _rows(path, "SELECT value FROM meta WHERE name = 'schema'") == [(str(SCHEMA_VERSION),)]
    assert SCHEMA_VERSION == 4
    # Not one old row rewritten.
    assert _rows(
        path, "SELECT COUNT(*) FROM records WHERE offset < 300 AND dictionary IS NULL"
    ) == [(300,)]


def test_the_trainer_runs_in_a_process_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # What zstd's trainer touches (several MiB the allocator would keep) goes with it.
    def here(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained in the log's own process")

    monkeypatch.setattr(zstandard, "train_dictionary", here)
    samples = [_value(n) for n in range(300)]
    data = values.train(samples)
    assert data is not None
    writer = values.ValueWriter(1, data)
    assert len(writer.encode(samples[0])[0]) < len(samples[0]) / 2


@pytest.mark.parametrize(
    ("trainer", "said"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "status -9"),
        ("raise SystemExit('out of memory')", "out of memory"),
        ("import sys; sys.stdout.buffer.write(b'not a dictionary')", "not a zstd dictionary"),
    ],
)
async def test_a_trainer_that_fails_leaves_the_values_raw_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trainer: str, said: str
) -> None:
    working = values._TRAINER
    monkeypatch.setattr(values, "_TRAINER", trainer)
    monkeypatch.setattr(values, "TRAIN_AFTER", 200)
    path = tmp_path / "events.db"
    with EventLog(tmp_path, partitions=1) as log, capture_logs() as logs:
        await log.append(EVENTS_TOPIC, _records(0, 200))
        await _until(lambda: log._failed_trainings == 1)
        assert log._encoder is None
        await log.append(EVENTS_TOPIC, _records(200, 100))
        monkeypatch.setattr(values, "_TRAINER", working)
        # Tried again after twice as many values as the first time.
        await log.append(EVENTS_TOPIC, _records(300, 300))
        await _until(lambda: log._encoder is not None)
        await log.append(EVENTS_TOPIC, _records(600, 10))
        read = log.read(EVENTS_TOPIC)
    assert [r.value for r in read] == [r.value for r in _records(0, 610)]
    assert _rows(path, "SELECT COUNT(*) FROM records WHERE dictionary IS NULL") == [(600,)]
    assert _rows(path, "SELECT COUNT(*) FROM records WHERE dictionary = 1") == [(10,)]
    failed = [e for e in logs if e["event"] == "log_dictionary_training_failed"]
    assert len(failed) == 1
    assert said in failed[0]["error"]
    assert failed[0]["log_level"] == "warning"


def test_without_an_interpreter_to_start_the_dictionary_is_trained_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", "")  # embedded in another program
    monkeypatch.setattr(values, "_TRAINER", "raise SystemExit(1)")
    assert values.train([_value(n) for n in range(300)]) is not None
