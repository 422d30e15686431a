"""The embedded event log: partitioned topics, offsets and outcomes in one SQLite file.

No server to install: a WAL-mode SQLite database in the data directory holds

* ``records``     topics as (topic, partition, offset) -> key, value, headers, in
                  append order; an event the ingress accepted also carries its
                  (source, id), which de-duplicates it;
* ``header_sets`` headers many records share (content type, the type they were
                  validated as), stored once and referred to by number from
                  each record, which keeps its own validation tag in ``tag``;
* ``dictionaries`` zstd dictionaries trained on the log's own values; a record's
                  ``dictionary`` says which one its value is compressed with, or
                  NULL for a value stored as it came (`platypus.runtime.embedded.values`);
* ``offsets``     the committed next offset of each consumer group and partition;
* ``deliveries``  the steps already delivered per event, so a replay or a restart
                  skips them (the step in flight may be repeated: at least once);
* ``outcomes``    how each event ended in each flow;
* ``rejected``    request bodies the ingress refused, with the reasons;
* ``checkpoints`` where each poller and backfill has got to (`EventLog.append_with_checkpoint`
                  writes one with the events it covers, in one transaction).

One writer thread owns every write and commits in groups: whatever queued up
while the last transaction was being synced goes into the next one. A write's
future resolves only after its transaction has committed, so "appended" and
"outcome recorded" always mean "on disk". Offsets and outcomes go in one
transaction, so an offset is never committed ahead of the outcome it covers.

What is no longer needed is deleted by `EventLog.compact` (`RetentionSettings`):
committed event records, dead letters, outcomes, deliveries and refused bodies
older than their retention. Freed pages are reused, and handed back to the file
system a little at a time.

The log is this runtime's side of the boundary (`platypus.runtime.base`): the
`EventSink` the ingress appends to, the `DeliveryLedger` the processor asks,
and, with `settle`, where the consumer's settlements go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from platypus.config import RetentionSettings
from platypus.exceptions import ConfigurationError
from platypus.partitioning import partition_for
from platypus.records import (
    CONTENT_TYPE_HEADER,
    DEAD_LETTER_TOPIC,
    EVENT_ID_HEADER,
    EVENTS_TOPIC,
    FLOW_DELIVERED,
    VALIDATED_HEADER,
    Delivery,
    DeliveryKey,
    Headers,
    NewRecord,
    Placement,
    Record,
)
from platypus.runtime.base import Settlement
from platypus.runtime.embedded import values
from platypus.runtime.embedded.values import ValueReader, ValueWriter

__all__ = ["Compaction", "Durability", "EventLog"]

Durability = Literal["full", "normal"]

SCHEMA_VERSION = 4
# Format 3 added header_sets, records.header_set and records.tag: a format 2 log
# gains them on open (its records keep their headers inline, which format 3 reads too).
# Format 4 added dictionaries and records.dictionary: a format 3 log gains them on
# open, and its records read as stored raw (a NULL dictionary), which they are.

CACHE_KIB = 512
"""Page cache of the log's writer connection, in KiB.

Each SQLite connection caches pages up to its ``cache_size`` and keeps them for its
life, so a long run's memory grows until every cache is full. The log's hot pages are
few (each table's and index's right edge, where appends land and the consumer reads),
so 64 pages of 8 KiB hold them, and the reader's cache is emptied anyway whenever
the writer has committed since its last read (WAL). Pages missed are read from the
OS's file cache. (SQLite's own default is 2,000 KiB a connection; 1,024 KiB here
held ~0.7 MiB more over 500,000 events, bench (e), for no CPU measured.)
"""
READER_CACHE_KIB = 256
"""Page cache of the log's reader connection, in KiB: half the writer's.

Under a steady load the writer commits between nearly every two reads, and in WAL
mode each such commit empties the reader's cache at its next read, so a larger one
mostly holds pages that are thrown away unread.
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    topic INTEGER NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT, at REAL NOT NULL,
    source TEXT, event_id TEXT, header_set INTEGER, tag BLOB, dictionary INTEGER
);
CREATE TABLE IF NOT EXISTS header_sets (id INTEGER PRIMARY KEY, headers TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS dictionaries (
    id INTEGER PRIMARY KEY, data BLOB NOT NULL, samples INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_by_position ON records (topic, partition, offset);
CREATE UNIQUE INDEX IF NOT EXISTS records_by_source_id ON records (topic, source, event_id)
    WHERE source IS NOT NULL;
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL, PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL, flow TEXT NOT NULL, step TEXT NOT NULL,
    flow_version TEXT NOT NULL, result TEXT NOT NULL, attempts INTEGER NOT NULL,
    delivered_at REAL NOT NULL, PRIMARY KEY (event_id, flow, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcomes (
    topic INTEGER NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    flow TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL,
    flow_version TEXT NOT NULL, step TEXT NOT NULL, detail TEXT NOT NULL,
    attempts INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (topic, partition, offset, flow)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outcomes_by_event ON outcomes (event_id);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL,
    reason TEXT NOT NULL, errors TEXT NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

OUTCOME_ROW_COLUMNS = (
    "offset",
    "flow",
    "event_id",
    "status",
    "flow_version",
    "step",
    "detail",
    "attempts",
    "at",
    "key",
    "appended_at",
    "headers",
)
"""The columns of `EventLog.outcome_rows_between`, in order."""

_KEYS_REMEMBERED = 4096  # keys whose partition the writer keeps (~0.5 MiB at most)
_DEDUPE_CHUNK = 400  # (source, id) pairs per lookup: 800 parameters, under SQLite's limit
_ID_CHUNK = 500  # ids per IN (...) lookup


def _padded(values: list[Any], most: int) -> list[Any]:
    """``values`` with its first repeated up to the next power of two (at most ``most``).

    A statement with one placeholder per value is a new SQL text for every length, and
    each connection keeps its last 128 prepared statements: with lengths from 1 to 500
    that cache filled to ~11 MiB (~87 KiB a statement of 500) and grew over a long run
    as new lengths came. Padded, a lookup has about ten shapes. A repeated value finds
    the same rows: IN (...) ignores it, and the callers gather rows into sets or dicts.
    """
    size = min(most, 1 << (len(values) - 1).bit_length()) if values else 0
    return values + values[:1] * (size - len(values))


# Headers that repeat across events: the content type, and the event type of the
# validation proof (`platypus.validated`: ``<type>;<tag>``). A record made only
# of these refers to a shared set and keeps the proof's tag as 16 raw bytes,
# instead of carrying ~140 bytes of JSON. Per-event headers (a replay's origin,
# a dead letter's error) stay inline, so the number of sets stays small; past
# MAX_HEADER_SETS new sets are stored inline too, which bounds those in memory.
_SHARED_HEADERS = frozenset({CONTENT_TYPE_HEADER, VALIDATED_HEADER})
MAX_HEADER_SETS = 4096


@dataclass(slots=True)
class _Op:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    notify: bool = False


@dataclass(frozen=True, slots=True)
class Compaction:
    """What one `EventLog.compact` pass deleted, by table."""

    records: int = 0
    dead_letters: int = 0
    outcomes: int = 0
    deliveries: int = 0
    rejected: int = 0
    dictionaries: int = 0

    @property
    def total(self) -> int:
        """Rows deleted in all."""
        return (
            self.records
            + self.dead_letters
            + self.outcomes
            + self.deliveries
            + self.rejected
            + self.dictionaries
        )


_STOP = object()
# An op's future, whether it succeeded, and its result or exception.
_Settled = tuple["asyncio.Future[Any]", bool, Any]

# What the writer keeps in memory that a rolled-back op must give back.
_Memory = tuple[dict[tuple[str, int], int], dict[str, int], dict[Headers, int], ValueWriter | None]


class EventLog:
    """A durable, partitioned log in ``<data_dir>/events.db``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        partitions: int = 8,
        durability: Durability = "full",
        max_group: int = 512,
    ) -> None:
        self.path = data_dir / "events.db"
        self.data_dir = data_dir
        self._requested_partitions = partitions
        self.partitions = partitions
        self._durability = durability
        self._max_group = max_group
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._next: dict[tuple[str, int], int] = {}
        self._topics: dict[str, int] = {}
        # The partition of recent keys (the writer's): murmur2 in Python is ~2.5 us
        # a key, a lookup ~0.03 us, and most keys come again. At most
        # _KEYS_REMEMBERED of them, forgotten all at once past that.
        self._key_partitions: dict[str, int] = {}
        # Shared header sets: headers -> id (the writer's), id -> headers (the reads').
        self._header_ids: dict[Headers, int] = {}
        self._header_sets: dict[int, Headers] = {}
        # Values: the writer's dictionary (None until one is trained) and how well
        # it fits. The values a dictionary is trained on are read back from the
        # file when a training is due (`_recent_values`), not kept in memory.
        self._encoder: ValueWriter | None = None
        self._unencoded = 0  # values appended with no dictionary since the last training
        self._window = (0, 0, 0)  # values, raw bytes, stored bytes of the current window
        self._baseline: float | None = None  # stored/raw of the first window
        self._training = False
        self._failed_trainings = 0
        self._unused_dictionaries: set[int] = set()  # found unused by the last compaction
        self._values: ValueReader | None = None
        self._listeners: list[Callable[[], None]] = []
        self._failure: BaseException | None = None

    # -- life cycle ---------------------------------------------------------------

    def open(self) -> None:
        """Create or open the database and start the writer thread."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create data directory {self.data_dir}: {exc.strerror}"
            ) from None
        if not self.path.exists():
            _create(self.path)
        conn = self._connect()
        if not _has_table(conn, "topics"):
            conn.close()
            raise ConfigurationError(
                f"{self.path} was written by an earlier development version of Platypus "
                "(log format 1), which this version cannot read. Move the data directory "
                "away (or delete it once its events are processed) and start again."
            )
        _migrate(conn, self.path)
        with conn:
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE name = 'partitions'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('partitions', ?), ('schema', ?)",
                    (str(self._requested_partitions), str(SCHEMA_VERSION)),
                )
            else:
                # Changing the count would move keys to other partitions and break
                # per-key order for events already in the log: the file decides.
                self.partitions = int(row[0])
        self._topics = {name: tid for tid, name in conn.execute("SELECT id, name FROM topics")}
        self._key_partitions = {}  # the file decides the partition count
        for sid, text in conn.execute("SELECT id, headers FROM header_sets"):
            self._header_sets[sid] = _read_headers(text, None)
            self._header_ids[self._header_sets[sid]] = sid
        latest = conn.execute(
            "SELECT id, data FROM dictionaries ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if latest is not None:
            self._encoder = ValueWriter(int(latest[0]), bytes(latest[1]))
        names = {tid: name for name, tid in self._topics.items()}
        for topic, partition, last in conn.execute(
            "SELECT topic, partition, MAX(offset) FROM records GROUP BY topic, partition"
        ):
            self._next[(names[topic], partition)] = last + 1
        for topic, partition, committed in conn.execute(
            "SELECT topic, partition, MAX(next_offset) FROM offsets GROUP BY topic, partition"
        ):
            # Compaction may have deleted every record of a partition: its next offset
            # is still at least what was committed.
            key = (topic, partition)
            self._next[key] = max(self._next.get(key, 0), committed)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="platypus-log-writer", daemon=True
        )
        self._writer.start()
        self._reader = self._connect(READER_CACHE_KIB)
        self._values = ValueReader(self._reader, str(self.path))

    def close(self) -> None:
        """Finish queued writes, stop the writer and close the database."""
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._values = None

    def __enter__(self) -> EventLog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self, cache_kib: int = CACHE_KIB) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self._durability == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute(f"PRAGMA cache_size=-{cache_kib}")  # negative: KiB, not pages
        return conn

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the writer thread) after records are appended."""
        self._listeners.append(listener)

    # -- writes -------------------------------------------------------------------

    async def append(self, topic: str, records: Sequence[NewRecord]) -> list[Placement | None]:
        """Append ``records`` atomically; where each landed, None for a duplicate."""
        placed: list[Placement | None] = await self._submit(
            lambda conn: self._append(conn, topic, records), notify=True
        )
        return placed

    async def append_with_checkpoint(
        self, topic: str, records: Sequence[NewRecord], name: str, value: str
    ) -> list[Placement | None]:
        """Append ``records`` and set checkpoint ``name`` to ``value`` in one transaction.

        A poller saves where it has got to with the events it read up to there, so a
        crash leaves both or neither: after a restart it resumes with no gap and no
        duplicate.
        """

        def run(conn: sqlite3.Connection) -> list[Placement | None]:
            placed = self._append(conn, topic, records)
            _save_checkpoint(conn, name, value)
            return placed

        placed: list[Placement | None] = await self._submit(run, notify=bool(records))
        return placed

    async def save_checkpoint(self, name: str, value: str) -> None:
        """Set checkpoint ``name`` to ``value`` (durably), with no events."""
        await self._submit(lambda conn: _save_checkpoint(conn, name, value))

    async def delete_checkpoint(self, name: str) -> None:
        """Forget checkpoint ``name`` (a backfill started over)."""
        await self._submit(
            lambda conn: conn.execute("DELETE FROM checkpoints WHERE name = ?", (name,))
        )

    async def settle(self, settlement: Settlement, *, group: str, topic: str) -> None:
        """Write a settlement in one transaction: outcomes, dead letters, deliveries,
        then the commits they allow (`platypus.runtime.base.OutcomeSink`)."""
        await self._submit(
            lambda conn: self._settle(conn, settlement, group, topic),
            notify=bool(settlement.dead_letters),
        )

    async def record(self, deliveries: Sequence[Delivery]) -> None:
        """Remember delivered steps, durably (`platypus.runtime.base.DeliveryLedger`)."""
        rows = list(deliveries)
        await self._submit(lambda conn: _record_deliveries(conn, rows))

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        """Record a refused request body with why; returns its rejection id."""

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO rejected (received_at, reason, errors, body) VALUES (?, ?, ?, ?)",
                (time.time(), reason, json.dumps(list(errors)), body),
            )
            return int(cur.lastrowid or 0)

        result: int = await self._submit(run)
        return result

    async def compact(
        self,
        retention: RetentionSettings,
        *,
        indexed: Mapping[int, int] | None = None,
        group: str = "platypus",
        now: float | None = None,
    ) -> Compaction:
        """Delete what is older than its retention and no longer needed.

        Event records go once committed by ``group``; dead-letter records once
        the failed-event store has taken them in (``indexed``: the store's next
        position per partition of the dead-letter topic; none are deleted
        without it). A retention of 0 keeps that kind forever.
        """
        moment = time.time() if now is None else now
        positions = dict(indexed or {})

        def run(conn: sqlite3.Connection) -> Compaction:
            return self._compact(conn, retention, positions, group, moment)

        done: Compaction = await self._submit(run)
        return done

    async def train_dictionary(self) -> int | None:
        """Train a dictionary on the recent values now and compress with it from then
        on; its id, or None when the values are too few to learn from.

        The log does this by itself once enough values are appended
        (`platypus.runtime.embedded.values.TRAIN_AFTER`); this is for tools and tests.
        """
        samples: list[bytes] = await self._submit(self._recent_values)
        data = await asyncio.to_thread(values.train, samples)
        made: int | None = await self._submit(lambda conn: self._install(conn, data, len(samples)))
        return made

    def _submit(self, run: Callable[[sqlite3.Connection], Any], notify: bool = False) -> Any:
        if self._writer is None:
            raise RuntimeError("the event log is not open")
        if self._failure is not None:
            raise RuntimeError(f"the event log writer failed: {self._failure}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Op(run, future, loop, notify))
        return future

    # -- on the writer thread -------------------------------------------------------

    def _topic_id(self, conn: sqlite3.Connection, name: str) -> int:
        found = self._topics.get(name)
        if found is None:
            cur = conn.execute("INSERT INTO topics (name) VALUES (?)", (name,))
            found = self._topics[name] = int(cur.lastrowid or 0)
        return found

    def _append(
        self, conn: sqlite3.Connection, topic: str, items: Sequence[NewRecord]
    ) -> list[Placement | None]:
        tid = self._topic_id(conn, topic)
        seen = self._already_appended(conn, tid, items)
        out: list[Placement | None] = []
        rows = []
        now = time.time()
        encoder = self._encoder
        partitions = self._key_partitions
        raw_bytes = stored_bytes = 0
        for item in items:
            if item.dedupe is not None:
                if item.dedupe in seen:
                    out.append(None)
                    continue
                seen.add(item.dedupe)  # a second copy in the same batch
            partition = partitions.get(item.key, -1)
            if partition < 0:
                if len(partitions) >= _KEYS_REMEMBERED:
                    partitions.clear()
                partition = partitions[item.key] = partition_for(item.key, self.partitions)
            offset = self._next.get((topic, partition), 0)
            self._next[(topic, partition)] = offset + 1
            source, event_id, kept = _stored_identity(item)
            header_set = tag = headers = None
            if kept:
                shared = _shareable(kept)
                if shared is not None:
                    header_set = self._header_set(conn, shared[0])
                    tag = shared[1] if header_set is not None else None
                if header_set is None:
                    headers = _headers_text(kept)
            value = item.value
            dictionary = None
            if encoder is not None:
                raw_bytes += len(value)
                value, dictionary = encoder.encode(value)
                stored_bytes += len(value)
            rows.append(
                (
                    tid,
                    partition,
                    offset,
                    item.key,
                    value,
                    headers,
                    now,
                    source,
                    event_id,
                    header_set,
                    tag,
                    dictionary,
                )
            )
            out.append(Placement(partition, offset))
        conn.executemany(
            "INSERT INTO records (topic, partition, offset, key, value, headers, at, source, "
            "event_id, header_set, tag, dictionary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._fit(conn, len(rows), raw_bytes, stored_bytes)
        return out

    # -- value dictionaries (on the writer thread) ----------------------------------

    def _recent_values(self, conn: sqlite3.Connection) -> list[bytes]:
        """The most recent values in the log, oldest first, to train a dictionary on:
        at most `values.SAMPLES` of them and `values.SAMPLE_BYTES` in all.

        Read back from the file (the writer's connection: this transaction's records
        too) rather than kept: 2,000 values held in memory all run long cost ~1.6 MiB
        of RSS, and a copy per append; this read takes ~10 ms, once per training.
        The readers' decompressors are on the reader's connection, which may not see
        a dictionary this transaction has just stored: a reader of its own, dropped
        after, so its contexts are not kept either.
        """
        reader = ValueReader(conn, str(self.path))
        found: list[bytes] = []
        total = 0
        for rid, value, dictionary in conn.execute(
            "SELECT id, value, dictionary FROM records ORDER BY id DESC LIMIT ?",
            (values.SAMPLES,),
        ):
            raw = reader.decode(value, dictionary, f"#{rid}")
            total += len(raw)
            if total > values.SAMPLE_BYTES:  # events may be large
                break
            found.append(raw)
        found.reverse()
        return found

    def _fit(self, conn: sqlite3.Connection, count: int, raw_bytes: int, stored_bytes: int) -> None:
        """Count what was appended; train a dictionary when there is none yet or
        the current one stopped fitting."""
        if self._encoder is None:
            self._unencoded += count
            if self._unencoded >= values.TRAIN_AFTER:
                self._train_in_background(conn)
            return
        seen, raw, stored = self._window
        seen, raw, stored = seen + count, raw + raw_bytes, stored + stored_bytes
        if seen < values.RETRAIN_WINDOW:
            self._window = (seen, raw, stored)
            return
        self._window = (0, 0, 0)
        ratio = stored / max(1, raw)
        if self._baseline is None:
            self._baseline = ratio
        elif ratio > self._baseline * values.RETRAIN_RATIO:
            self._train_in_background(conn)

    def _train_in_background(self, conn: sqlite3.Connection) -> None:
        # Training takes ~0.1 s of CPU for 2,000 events: on its own thread (zstd
        # releases the GIL), so the writer keeps committing meanwhile. The result
        # comes back as an op, so only the writer ever writes or swaps the dictionary.
        if self._training:
            return
        self._training = True
        samples = self._recent_values(conn)

        def run() -> None:
            try:
                data = values.train(samples)
            except Exception:  # noqa: BLE001 -- values stay raw; the writer must hear back
                data = None
            self._queue.put(_Op(lambda conn: self._install(conn, data, len(samples)), None, None))

        threading.Thread(target=run, name="platypus-log-dictionary", daemon=True).start()

    def _install(
        self,
        conn: sqlite3.Connection,
        data: bytes | None,
        samples: int,
        *,
        created_at: float | None = None,
    ) -> int | None:
        """Store a trained dictionary and compress with it from the next value on."""
        self._training = False
        if data is None:
            # Nothing to learn from (values too few, too small or all alike): try
            # again after twice as many as the last time, so a log of such values
            # does not train every 2,000 of them.
            self._failed_trainings += 1
            self._unencoded = -(2 ** min(self._failed_trainings, 10) - 1) * values.TRAIN_AFTER
            return None
        self._unencoded = 0
        self._failed_trainings = 0
        # In this op's transaction: it commits before or with the first record that
        # uses it (a rolled-back op gives the previous encoder back, `_restore`).
        cur = conn.execute(
            "INSERT INTO dictionaries (data, samples, created_at) VALUES (?, ?, ?)",
            (data, samples, time.time() if created_at is None else created_at),
        )
        self._encoder = ValueWriter(int(cur.lastrowid or 0), data)
        self._window = (0, 0, 0)
        self._baseline = None
        return self._encoder.dictionary_id

    def _header_set(self, conn: sqlite3.Connection, shared: Headers) -> int | None:
        found = self._header_ids.get(shared)
        if found is None:
            if len(self._header_ids) >= MAX_HEADER_SETS:
                return None
            cur = conn.execute(
                "INSERT INTO header_sets (headers) VALUES (?)", (_headers_text(shared),)
            )
            found = int(cur.lastrowid or 0)
            # The set first: a reader that sees the id finds its headers.
            self._header_sets[found] = shared
            self._header_ids[shared] = found
        return found

    def _already_appended(
        self, conn: sqlite3.Connection, tid: int, items: Sequence[NewRecord]
    ) -> set[tuple[str, str]]:
        wanted = list({item.dedupe for item in items if item.dedupe is not None})
        found: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), _DEDUPE_CHUNK):
            chunk = _padded(wanted[start : start + _DEDUPE_CHUNK], _DEDUPE_CHUNK)
            marks = ",".join("(?, ?)" for _ in chunk)
            # A join on the (topic, source, event_id) index: one lookup per pair.
            found.update(
                conn.execute(
                    f"SELECT v.column1, v.column2 FROM (VALUES {marks}) AS v "  # noqa: S608 -- placeholders only
                    "JOIN records r ON r.topic = ? AND r.source = v.column1 "
                    "AND r.event_id = v.column2",
                    [*(part for pair in chunk for part in pair), tid],
                )
            )
        return found

    def _settle(
        self, conn: sqlite3.Connection, settlement: Settlement, group: str, topic: str
    ) -> None:
        now = time.time()
        if settlement.dead_letters:
            self._append(
                conn,
                DEAD_LETTER_TOPIC,
                [NewRecord(d.key, d.value, tuple(d.headers)) for d in settlement.dead_letters],
            )
        if settlement.outcomes:
            conn.executemany(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self._topic_id(conn, o.topic),
                        o.partition,
                        o.offset,
                        o.flow,
                        o.event_id,
                        o.status,
                        o.flow_version,
                        o.step,
                        o.detail,
                        o.attempts,
                        now,
                    )
                    for o in settlement.outcomes
                ],
            )
        if settlement.deliveries:
            _record_deliveries(conn, settlement.deliveries)
        for partition, offset in settlement.commits.items():
            _commit(conn, (group, topic, partition, offset))

    def _compact(
        self,
        conn: sqlite3.Connection,
        retention: RetentionSettings,
        indexed: Mapping[int, int],
        group: str,
        now: float,
    ) -> Compaction:
        counts: dict[str, int] = {}
        events = self._topics.get(EVENTS_TOPIC)
        if retention.events and events is not None:
            committed = conn.execute(
                "SELECT partition, next_offset FROM offsets WHERE grp = ? AND topic = ?",
                (group, EVENTS_TOPIC),
            ).fetchall()
            counts["records"] = sum(
                _delete_records(conn, events, partition, next_offset, now - retention.events)
                for partition, next_offset in committed
            )
        letters = self._topics.get(DEAD_LETTER_TOPIC)
        if retention.dead_letters and letters is not None:
            counts["dead_letters"] = sum(
                _delete_records(conn, letters, partition, position, now - retention.dead_letters)
                for partition, position in indexed.items()
            )
        for table, column, keep, name in (
            ("outcomes", "at", retention.outcomes, "outcomes"),
            ("deliveries", "delivered_at", retention.deliveries, "deliveries"),
            ("rejected", "received_at", retention.rejected, "rejected"),
        ):
            if keep:
                counts[name] = conn.execute(
                    f"DELETE FROM {table} WHERE {column} < ?",  # noqa: S608 -- names from the list above
                    (now - keep,),
                ).rowcount
        self._renew_old_dictionary(conn, retention, now)
        counts["dictionaries"] = self._drop_unused_dictionaries(conn)
        # Hand some freed pages back to the file system; the rest are reused.
        conn.execute("PRAGMA incremental_vacuum(2000)")
        return Compaction(**counts)

    def _renew_old_dictionary(
        self, conn: sqlite3.Connection, retention: RetentionSettings, now: float
    ) -> None:
        # A dictionary is made of fragments of the events it was trained on (names,
        # e-mail addresses that recur), and the one in use is never deleted: left
        # alone, those fragments would outlive the events' retention for good. So
        # one older than half that retention is replaced by one trained on recent
        # values; the old one goes with the last record that uses it, so fragments
        # live at most ~1.5 times the retention. On the writer thread, in this
        # pass's transaction (~0.1 s of CPU, once per half retention).
        if self._encoder is None or self._training or not retention.events:
            return
        row = conn.execute(
            "SELECT created_at FROM dictionaries WHERE id = ?", (self._encoder.dictionary_id,)
        ).fetchone()
        if row is None or now - float(row[0]) <= retention.events / 2:
            return
        # Trained on the values still in the log: none left (all past the retention)
        # leaves nothing to learn from, and the old one is kept until there are.
        samples = self._recent_values(conn)
        data = values.train(samples)
        if data is not None:  # nothing recent to learn from: kept, tried at the next pass
            self._install(conn, data, len(samples), created_at=now)

    def _drop_unused_dictionaries(self, conn: sqlite3.Connection) -> int:
        # A dictionary goes once no record refers to it, never the one in use, and
        # only when it was unused at the pass before too: a reader that has just
        # read an old record (in one statement) and loads its dictionary (in the
        # next) finds it still there, though this pass deleted the record.
        # The check scans records (an index on the column would cost every record
        # ~10 bytes), and only when there is an older dictionary; a used one is
        # found among the oldest records, where the scan starts.
        (kept,) = conn.execute("SELECT COUNT(*) FROM dictionaries").fetchone()
        if kept <= 1:
            self._unused_dictionaries = set()
            return 0
        current = -1 if self._encoder is None else self._encoder.dictionary_id
        unused = {
            int(did)
            for (did,) in conn.execute(
                "SELECT id FROM dictionaries d WHERE id != ? AND NOT EXISTS "
                "(SELECT 1 FROM records r WHERE r.dictionary = d.id)",
                (current,),
            )
        }
        gone = sorted(unused & self._unused_dictionaries)
        conn.executemany("DELETE FROM dictionaries WHERE id = ?", [(did,) for did in gone])
        self._unused_dictionaries = unused - set(gone)
        return len(gone)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            ops: list[_Op] = [first]
            while len(ops) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                ops.append(nxt)
            results = self._run_group(conn, ops)
            if any(op.notify for op in ops):
                for listener in self._listeners:
                    listener()
            # One wake-up per loop for the whole group: each call_soon_threadsafe
            # writes to the loop's self-pipe, a syscall on this thread and a wake
            # and read on the loop's.
            settled: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
            for op, (ok, value) in zip(ops, results, strict=True):
                if op.future is not None and op.loop is not None:
                    settled.setdefault(op.loop, []).append((op.future, ok, value))
            for loop, batch in settled.items():
                loop.call_soon_threadsafe(_settle_all, batch)
        conn.close()

    def _memory(self) -> _Memory:
        return dict(self._next), dict(self._topics), dict(self._header_ids), self._encoder

    def _restore(self, saved: _Memory) -> None:
        # A set inserted by a rolled-back op is gone from the file: forget its id
        # (the parsed copy may stay: its id is handed out again to the same text or
        # to another, and _header_set overwrites it before any record refers to it).
        # So is a dictionary: values go on with the one before.
        self._next, self._topics, self._header_ids, self._encoder = saved

    def _run_group(self, conn: sqlite3.Connection, ops: list[_Op]) -> list[tuple[bool, Any]]:
        # Each op in its own savepoint (when there are several): one bad op fails
        # alone, the rest commit together. Appends advance in-memory offsets and
        # topic ids; a rolled-back op must give them back.
        saved = self._memory()
        results: list[tuple[bool, Any]] = []
        alone = len(ops) == 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                before = self._memory() if not alone else saved
                if not alone:
                    conn.execute("SAVEPOINT op")
                try:
                    value = op.run(conn)
                except Exception as exc:  # noqa: BLE001 -- handed to the caller's future
                    if alone:
                        conn.execute("ROLLBACK")
                        self._restore(saved)
                        return [(False, exc)]
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    self._restore(before)
                    results.append((False, exc))
                else:
                    if not alone:
                        conn.execute("RELEASE op")
                    results.append((True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._restore(saved)
            self._failure = exc
            return [(False, exc) for _ in ops]
        return results

    # -- reads (on the caller's thread, through the reader connection) -------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("the event log is not open")
        return self._reader

    def fetch(self, topic: str, positions: Mapping[int, int], limit: int = 500) -> list[Record]:
        """Records of ``topic`` from each partition's position on, up to ``limit`` in all."""
        out: list[Record] = []
        tid = self._topics.get(topic)
        if tid is None:
            return out
        per_partition = max(1, limit // max(1, len(positions)))
        for partition, position in positions.items():
            if self._next.get((topic, partition), 0) <= position:
                continue
            # What is read from a position on is not committed (or not yet in the
            # failed-event store), so compaction deletes neither it nor its dictionary.
            rows = self._db.execute(
                "SELECT offset, key, value, headers, at, event_id, header_set, tag, dictionary "
                "FROM records "
                "WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
                (tid, partition, position, per_partition),
            ).fetchall()
            out.extend(
                Record(
                    topic,
                    partition,
                    off,
                    key,
                    self._value(value, dictionary, topic, partition, off),
                    self._headers(hdrs, eid, hset, tag),
                    at,
                )
                for off, key, value, hdrs, at, eid, hset, tag, dictionary in rows
            )
        return out

    def _value(
        self, stored: bytes, dictionary: int | None, topic: str, partition: int, offset: int
    ) -> bytes:
        """A record's value as it was appended: every read of one comes here."""
        if dictionary is None:
            return stored
        if self._values is None:
            raise RuntimeError("the event log is not open")
        return self._values.decode(stored, dictionary, f"{topic}/{partition}@{offset}")

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written in each partition of ``topic``."""
        return {p: self._next.get((topic, p), 0) for p in range(self.partitions)}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The committed next offset of ``group`` in each partition (0 if none)."""
        found = dict(
            self._db.execute(
                "SELECT partition, next_offset FROM offsets WHERE grp = ? AND topic = ?",
                (group, topic),
            ).fetchall()
        )
        return {p: int(found.get(p, 0)) for p in range(self.partitions)}

    def settled_since(self, topic: str, positions: Mapping[int, int]) -> dict[int, set[int]]:
        """Offsets from ``positions`` on that already have an outcome, per partition.

        An event settled ahead of an earlier one still in flight has a durable
        outcome past the committed offset; after a restart it must not run again.
        """
        tid = self._topics.get(topic)
        out: dict[int, set[int]] = {}
        if tid is None:
            return out
        for partition, position in positions.items():
            found = {
                int(offset)
                for (offset,) in self._db.execute(
                    "SELECT DISTINCT offset FROM outcomes "
                    "WHERE topic = ? AND partition = ? AND offset >= ?",
                    (tid, partition, position),
                )
            }
            if found:
                out[partition] = found
        return out

    async def delivered(self, event_ids: Collection[str]) -> dict[DeliveryKey, Any]:
        """Steps already delivered for ``event_ids`` (`platypus.runtime.base.DeliveryLedger`).

        A flow delivered as a whole is known from its outcome, not from a row per step.
        """
        out: dict[DeliveryKey, Any] = {}
        ids = list(event_ids)
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = _padded(ids[start : start + _ID_CHUNK], _ID_CHUNK)
            marks = ",".join("?" * len(chunk))
            for event_id, flow, step, result in self._db.execute(
                f"SELECT event_id, flow, step, result FROM deliveries WHERE event_id IN ({marks})",  # noqa: S608 -- placeholders only
                chunk,
            ):
                out[(event_id, flow, step)] = json.loads(result)
            for event_id, flow, version in self._db.execute(
                "SELECT event_id, flow, flow_version FROM outcomes "  # noqa: S608 -- placeholders only
                f"WHERE event_id IN ({marks}) AND status = 'delivered' AND flow != ''",
                chunk,
            ):
                out[(event_id, flow, FLOW_DELIVERED)] = version
        return out

    def placements(self, topic: str, source: str, ids: Sequence[str]) -> dict[str, Placement]:
        """Where the records appended with (``source``, id) landed, by id."""
        tid = self._topics.get(topic)
        out: dict[str, Placement] = {}
        if tid is None:
            return out
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = _padded(list(ids[start : start + _ID_CHUNK]), _ID_CHUNK)
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT event_id, partition, offset FROM records "  # noqa: S608 -- placeholders only
                f"WHERE topic = ? AND source = ? AND event_id IN ({marks})",
                [tid, source, *chunk],
            )
            out.update({str(i): Placement(int(p), int(o)) for i, p, o in rows})
        return out

    def outcome(self, topic: str, partition: int, offset: int, flow: str) -> str | None:
        """The status of ``flow`` for the record at (topic, partition, offset), if settled."""
        tid = self._topics.get(topic)
        if tid is None:
            return None
        row = self._db.execute(
            "SELECT status FROM outcomes "
            "WHERE topic = ? AND partition = ? AND offset = ? AND flow = ?",
            (tid, partition, offset, flow),
        ).fetchone()
        return None if row is None else str(row[0])

    def read(self, topic: str) -> list[Record]:
        """Every record of ``topic``, by partition then offset (for tools and tests)."""
        tid = self._topics.get(topic)
        if tid is None:
            return []
        rows = self._db.execute(
            "SELECT partition, offset, key, value, headers, at, event_id, header_set, tag, "
            "dictionary FROM records WHERE topic = ? ORDER BY partition, offset",
            (tid,),
        ).fetchall()
        return [
            Record(
                topic,
                p,
                off,
                key,
                self._value(value, dictionary, topic, p, off),
                self._headers(hdrs, eid, hset, tag),
                at,
            )
            for p, off, key, value, hdrs, at, eid, hset, tag, dictionary in rows
        ]

    def _headers(
        self, text: str | None, event_id: str | None, header_set: int | None, tag: bytes | None
    ) -> Headers:
        if header_set is None:
            return _read_headers(text, event_id)
        shared = self._header_sets.get(header_set)
        if shared is None:  # pragma: no cover -- every set is loaded or made by this log
            row = self._db.execute(
                "SELECT headers FROM header_sets WHERE id = ?", (header_set,)
            ).fetchone()
            shared = self._header_sets[header_set] = _read_headers(row[0], None)
        own: Headers = () if event_id is None else ((EVENT_ID_HEADER, event_id.encode()),)
        if tag is None:
            return own + shared
        proof = tag.hex().encode()
        return own + tuple((k, v + proof if k == VALIDATED_HEADER else v) for k, v in shared)

    def outcomes(self) -> list[dict[str, Any]]:
        """Every recorded outcome, oldest first (with the event's type and key while
        its record is kept)."""
        cur = self._db.execute(
            "SELECT t.name AS topic, o.partition, o.offset, o.flow, o.event_id, o.status, "
            "o.flow_version, o.step, o.detail, o.attempts, o.at, "
            "r.key AS key FROM outcomes o JOIN topics t ON t.id = o.topic "
            "LEFT JOIN records r ON r.topic = o.topic AND r.partition = o.partition "
            "AND r.offset = o.offset ORDER BY o.at, o.topic, o.partition, o.offset"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def outcomes_between(
        self, topic: str, partition: int, start: int, end: int, limit: int = 2000
    ) -> list[dict[str, Any]]:
        """Outcomes of records ``start <= offset < end`` of one partition, in offset order,
        with the record's key, append time and headers (JSON) while the record is kept."""
        return [
            dict(zip(OUTCOME_ROW_COLUMNS, row, strict=True))
            for row in self.outcome_rows_between(topic, partition, start, end, limit)
        ]

    def outcome_rows_between(
        self, topic: str, partition: int, start: int, end: int, limit: int = 2000
    ) -> list[tuple[Any, ...]]:
        """`outcomes_between` as rows of `OUTCOME_ROW_COLUMNS`, without a mapping per
        row (the indexer reads every outcome)."""
        tid = self._topics.get(topic)
        if tid is None or start >= end:
            return []
        return self._db.execute(
            "SELECT o.offset, o.flow, o.event_id, o.status, o.flow_version, o.step, o.detail, "
            "o.attempts, o.at, r.key AS key, r.at AS appended_at, "
            # A shared set's proof lacks its tag here: what is read from these
            # headers (a replay's origin) is never in a shared set.
            "COALESCE(r.headers, h.headers) AS headers FROM outcomes o "
            "LEFT JOIN records r ON r.topic = o.topic AND r.partition = o.partition "
            "AND r.offset = o.offset LEFT JOIN header_sets h ON h.id = r.header_set "
            "WHERE o.topic = ? AND o.partition = ? "
            "AND o.offset >= ? AND o.offset < ? ORDER BY o.offset, o.flow LIMIT ?",
            (tid, partition, start, end, limit),
        ).fetchall()

    def delivery_rows(self) -> list[dict[str, Any]]:
        """Every delivered step with its attempt count, oldest first."""
        cur = self._db.execute("SELECT * FROM deliveries ORDER BY delivered_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def load_checkpoint(self, name: str) -> str | None:
        """The value of checkpoint ``name``, or None when it was never saved."""
        row = self._db.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def checkpoints(self) -> dict[str, str]:
        """Every checkpoint by name (for tools and the dashboard)."""
        rows = self._db.execute("SELECT name, value FROM checkpoints ORDER BY name").fetchall()
        return {str(name): str(value) for name, value in rows}

    def rejected(self) -> list[dict[str, Any]]:
        """Every rejected request body, oldest first, errors parsed."""
        cur = self._db.execute("SELECT id, received_at, reason, errors, body FROM rejected")
        return [
            {"id": i, "received_at": at, "reason": r, "errors": json.loads(e), "body": bytes(b)}
            for i, at, r, e, b in cur.fetchall()
        ]


def _create(path: Path) -> None:
    # Both settings must be made before the first table exists, and the page size
    # before the file is in WAL mode. Freed pages can then be handed back to the
    # file system; 8 KiB pages hold nine 750-byte events where 4 KiB ones hold four.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA page_size = 8192")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.executescript(_SCHEMA)
    finally:
        conn.close()


def _delete_records(
    conn: sqlite3.Connection, topic: int, partition: int, below: int, before: float
) -> int:
    # The last record of a partition is kept whatever its age: it is how the next
    # offset is known when the log is opened again, so no offset is ever reused.
    cur = conn.execute(
        "DELETE FROM records WHERE topic = ? AND partition = ? AND offset < ? AND at < ? "
        "AND offset < (SELECT MAX(offset) FROM records WHERE topic = ? AND partition = ?)",
        (topic, partition, below, before, topic, partition),
    )
    return int(cur.rowcount)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _stored_identity(item: NewRecord) -> tuple[str | None, str | None, list[tuple[str, bytes]]]:
    """(source, event id, the other headers) as stored: the event-id header lives
    in its column."""
    source, event_id = item.dedupe if item.dedupe is not None else (None, None)
    kept: list[tuple[str, bytes]] = []
    for name, value in item.headers:
        if name == EVENT_ID_HEADER and event_id in (None, value.decode("utf-8", "replace")):
            event_id = value.decode("utf-8", "replace")
            continue
        kept.append((name, value))
    return source, event_id, kept


def _headers_text(headers: Iterable[tuple[str, bytes]]) -> str:
    pairs = [[k, v.decode("utf-8", "replace")] for k, v in headers]
    try:
        # orjson: a fifth of json.dumps's time, for every record appended; readers
        # parse either (`_read_headers`).
        return orjson.dumps(pairs).decode()
    except TypeError:  # orjson.JSONEncodeError: a name with a lone surrogate
        return json.dumps(pairs)


def _shareable(kept: Sequence[tuple[str, bytes]]) -> tuple[Headers, bytes | None] | None:
    """(the shared set, the proof's tag) when ``kept`` can refer to a shared set."""
    tag = None
    shared: list[tuple[str, bytes]] = []
    for name, value in kept:
        if name not in _SHARED_HEADERS:
            return None
        if name == VALIDATED_HEADER:
            kind, sep, proof = value.rpartition(b";")
            if tag is not None or not sep or len(proof) != _TAG_HEX:
                return None
            try:
                tag = bytes.fromhex(proof.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return None
            if tag.hex().encode() != proof:  # upper case would not read back the same
                return None
            value = kind + b";"
        shared.append((name, value))
    return tuple(shared), tag


_TAG_HEX = 32  # the proof's tag: 16 bytes (`platypus.validated`), in hex


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring a log of an earlier format up to `SCHEMA_VERSION`, or refuse a later one."""
    conn.execute("BEGIN IMMEDIATE")  # one opener migrates; the others then see the new format
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        found = int(row[0]) if row is not None else SCHEMA_VERSION
        if found > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{path} was written by a later version of Platypus (log format {found}; "
                f"this version reads up to {SCHEMA_VERSION}). Run that version, or move the "
                "data directory away and start again."
            )
        if found == 2:
            # Adding a column rewrites no row: old records keep their headers inline.
            conn.execute("ALTER TABLE records ADD COLUMN header_set INTEGER")
            conn.execute("ALTER TABLE records ADD COLUMN tag BLOB")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS header_sets "
                "(id INTEGER PRIMARY KEY, headers TEXT NOT NULL UNIQUE)"
            )
            found = 3
        if found == 3:
            # No row rewritten either: a NULL dictionary is a value stored raw.
            conn.execute("ALTER TABLE records ADD COLUMN dictionary INTEGER")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS dictionaries (id INTEGER PRIMARY KEY, "
                "data BLOB NOT NULL, samples INTEGER NOT NULL, created_at REAL NOT NULL)"
            )
            conn.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _read_headers(text: str | None, event_id: str | None) -> Headers:
    headers: Headers = () if event_id is None else ((EVENT_ID_HEADER, event_id.encode()),)
    if text:
        try:
            # orjson: twice as fast, and read for every record fetched.
            pairs = orjson.loads(text)
        except orjson.JSONDecodeError:
            pairs = json.loads(text)  # what orjson refuses (a lone surrogate) json reads
        headers += tuple((k, v.encode()) for k, v in pairs)
    return headers


def _record_deliveries(conn: sqlite3.Connection, rows: Iterable[Delivery]) -> None:
    now = time.time()
    conn.executemany(
        "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (event_id, flow, step, version, json.dumps(result, default=str), attempts, now)
            for event_id, flow, step, version, result, attempts in rows
            # A whole flow delivered is in its outcome, written in the same transaction.
            if step != FLOW_DELIVERED
        ],
    )


def _save_checkpoint(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute(
        "INSERT INTO checkpoints VALUES (?, ?, ?) ON CONFLICT (name) "
        "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (name, value, time.time()),
    )


def _commit(conn: sqlite3.Connection, commit: tuple[str, str, int, int]) -> None:
    conn.execute(
        "INSERT INTO offsets VALUES (?, ?, ?, ?) ON CONFLICT (grp, topic, partition) "
        "DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
        commit,
    )


def _settle_all(batch: list[_Settled]) -> None:
    for future, ok, value in batch:
        if future.done():  # its waiter was cancelled
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
