"""The embedded log's on-disk format: shared header sets, and what an older or newer file gets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from platypus.exceptions import ConfigurationError
from platypus.records import (
    CONTENT_TYPE_HEADER,
    EVENT_ID_HEADER,
    EVENTS_TOPIC,
    REPLAY_OF_HEADER,
    VALIDATED_HEADER,
    NewRecord,
)
from platypus.runtime.embedded import log as log_module
from platypus.runtime.embedded.log import SCHEMA_VERSION, EventLog
from platypus.validated import proof, proven

TAG = "0123456789abcdef" * 2
CLOUDEVENTS = (CONTENT_TYPE_HEADER, b"application/cloudevents+json")
SHARED = (CLOUDEVENTS, (VALIDATED_HEADER, proof("t.v1", b"{}")))

# The tables of log format 2 as that version created them.
_FORMAT_2 = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    topic INTEGER NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT, at REAL NOT NULL,
    source TEXT, event_id TEXT
);
CREATE UNIQUE INDEX records_by_position ON records (topic, partition, offset);
CREATE UNIQUE INDEX records_by_source_id ON records (topic, source, event_id)
    WHERE source IS NOT NULL;
INSERT INTO meta VALUES ('partitions', '1'), ('schema', '2');
INSERT INTO topics VALUES (1, 'platypus.events');
INSERT INTO records VALUES (1, 1, 0, 0, 'k', x'7b7d',
    '[["content-type", "application/cloudevents+json"], ["platypus.validated", "t.v1;TAG"]]',
    1.0, '/src', 'evt-0');
"""


def _event(n: int, headers: tuple[tuple[str, bytes], ...] = SHARED) -> NewRecord:
    return NewRecord("k", b"{}", ((EVENT_ID_HEADER, f"evt-{n}".encode()), *headers))


def _signed(n: int) -> tuple[tuple[str, bytes], ...]:
    return (CLOUDEVENTS, (VALIDATED_HEADER, proof("t.v1", b"%d" % n)))


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_records_of_the_same_headers_share_one_stored_set(tmp_path: Path) -> None:
    replayed = (*SHARED, (REPLAY_OF_HEADER, b"7"))
    unproven = ((VALIDATED_HEADER, b"t.v1;not-a-tag"),)
    with EventLog(tmp_path, partitions=1) as log:
        # Each record's own proof: the tags differ, the set they share does not.
        await log.append(
            EVENTS_TOPIC,
            [
                _event(n, (SHARED[0], (VALIDATED_HEADER, proof("t.v1", b"%d" % n))))
                for n in range(20)
            ],
        )
        await log.append(EVENTS_TOPIC, [_event(20, replayed), _event(21, unproven)])
        read = log.read(EVENTS_TOPIC)
    assert [r.headers[:2] for r in read[:20]] == [
        ((EVENT_ID_HEADER, f"evt-{n}".encode()), SHARED[0]) for n in range(20)
    ]
    assert all(proven(r.header(VALIDATED_HEADER), b"%d" % n) for n, r in enumerate(read[:20]))
    # A per-event header, or a proof of another shape, keeps the whole set inline.
    assert read[20].headers == ((EVENT_ID_HEADER, b"evt-20"), *replayed)
    assert read[21].headers == ((EVENT_ID_HEADER, b"evt-21"), *unproven)
    path = tmp_path / "events.db"
    assert _rows(path, "SELECT COUNT(*) FROM header_sets") == [(1,)]
    assert _rows(path, "SELECT COUNT(*) FROM records WHERE headers IS NULL") == [(20,)]
    with EventLog(tmp_path, partitions=1) as log:  # read back after a restart too
        assert [r.headers for r in log.read(EVENTS_TOPIC)] == [r.headers for r in read]


async def test_the_header_sets_kept_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "MAX_HEADER_SETS", 2)
    kinds = [((VALIDATED_HEADER, proof(f"t.v{n}", b"{}")),) for n in range(5)]
    with EventLog(tmp_path, partitions=1) as log:
        await log.append(EVENTS_TOPIC, [_event(n, kinds[n]) for n in range(5)])
        assert len(log._header_ids) == 2
        assert len(log._header_sets) == 2
        read = log.read(EVENTS_TOPIC)
    assert [r.headers[1:] for r in read] == kinds
    assert _rows(tmp_path / "events.db", "SELECT COUNT(*) FROM header_sets") == [(2,)]


async def test_a_log_of_format_2_is_migrated_on_open_and_keeps_its_records(
    tmp_path: Path,
) -> None:
    with sqlite3.connect(tmp_path / "events.db") as conn:
        conn.executescript(_FORMAT_2.replace("TAG", TAG))
    with EventLog(tmp_path) as log:
        await log.append(EVENTS_TOPIC, [_event(1)])
        read = log.read(EVENTS_TOPIC)
    old = (SHARED[0], (VALIDATED_HEADER, f"t.v1;{TAG}".encode()))
    assert [r.headers for r in read] == [
        ((EVENT_ID_HEADER, b"evt-0"), *old),
        ((EVENT_ID_HEADER, b"evt-1"), *SHARED),
    ]
    assert [(r.partition, r.offset) for r in read] == [(0, 0), (0, 1)]
    path = tmp_path / "events.db"
    assert _rows(path, "SELECT value FROM meta WHERE name = 'schema'") == [(str(SCHEMA_VERSION),)]
    assert _rows(path, "SELECT COUNT(*) FROM header_sets") == [(1,)]


async def test_a_log_of_a_later_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with EventLog(tmp_path):
        pass
    with sqlite3.connect(tmp_path / "events.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(ConfigurationError, match="later version of Platypus"):
        EventLog(tmp_path).open()
