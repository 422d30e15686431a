"""The embedded event log: partitioned topics, offsets and outcomes in one SQLite file.

No server to install: a WAL-mode SQLite database in the data directory holds

* ``records``    topics as (topic, partition, offset) -> key, value, headers;
* ``offsets``    the committed next offset of each consumer group and partition;
* ``deliveries`` the steps already delivered per event, so a replay after a
                 crash skips them (the step in flight may be repeated: at least once);
* ``outcomes``   how each event ended in each flow;
* ``rejected``   request bodies the ingress refused, with the reasons;
* ``checkpoints`` where each poller and backfill has got to (`EventLog.append_with_checkpoint`
                 writes one with the events it covers, in one transaction).

One writer thread owns every write and commits in groups: whatever queued up
while the last transaction was being synced goes into the next one. A write's
future resolves only after its transaction has committed, so "appended" and
"outcome recorded" always mean "on disk". Offsets and outcomes go in one
transaction, so an offset is never committed ahead of the outcome it covers.

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

from platypus.exceptions import ConfigurationError
from platypus.partitioning import partition_for
from platypus.records import (
    DEAD_LETTER_TOPIC,
    Delivery,
    DeliveryKey,
    NewRecord,
    Placement,
    Record,
)
from platypus.runtime.base import Settlement

__all__ = ["Durability", "EventLog"]

Durability = Literal["full", "normal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT NOT NULL, timestamp REAL NOT NULL,
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ingested (
    topic TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL,
    partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (topic, source, id)
) WITHOUT ROWID;
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
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    flow TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
    key TEXT NOT NULL, status TEXT NOT NULL, flow_version TEXT NOT NULL,
    step TEXT NOT NULL, detail TEXT NOT NULL, attempts INTEGER NOT NULL, at REAL NOT NULL,
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


@dataclass(slots=True)
class _Op:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    notify: bool = False


_STOP = object()


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
        conn = self._connect()
        with conn:
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE name = 'partitions'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('partitions', ?)",
                    (str(self._requested_partitions),),
                )
            else:
                # Changing the count would move keys to other partitions and break
                # per-key order for events already in the log: the file decides.
                self.partitions = int(row[0])
        for topic, partition, last in conn.execute(
            "SELECT topic, partition, MAX(offset) FROM records GROUP BY topic, partition"
        ):
            self._next[(topic, partition)] = last + 1
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="platypus-log-writer", daemon=True
        )
        self._writer.start()
        self._reader = self._connect()

    def close(self) -> None:
        """Finish queued writes, stop the writer and close the database."""
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> EventLog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self._durability == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=10000")
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

    def _submit(self, run: Callable[[sqlite3.Connection], Any], notify: bool = False) -> Any:
        if self._writer is None:
            raise RuntimeError("the event log is not open")
        if self._failure is not None:
            raise RuntimeError(f"the event log writer failed: {self._failure}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Op(run, future, loop, notify))
        return future

    def _append(
        self, conn: sqlite3.Connection, topic: str, items: Iterable[NewRecord]
    ) -> list[Placement | None]:
        out: list[Placement | None] = []
        now = time.time()
        for item in items:
            partition = partition_for(item.key, self.partitions)
            offset = self._next.get((topic, partition), 0)
            if item.dedupe is not None:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO ingested VALUES (?, ?, ?, ?, ?)",
                    (topic, item.dedupe[0], item.dedupe[1], partition, offset),
                )
                if cur.rowcount == 0:
                    out.append(None)
                    continue
            conn.execute(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    topic,
                    partition,
                    offset,
                    item.key,
                    item.value,
                    _encode_headers(item.headers),
                    now,
                ),
            )
            self._next[(topic, partition)] = offset + 1
            out.append(Placement(partition, offset))
        return out

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
        conn.executemany(
            "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    o.topic,
                    o.partition,
                    o.offset,
                    o.flow,
                    o.event_id,
                    o.event_type,
                    o.key,
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
            for op, (ok, value) in zip(ops, results, strict=True):
                if op.future is not None and op.loop is not None:
                    op.loop.call_soon_threadsafe(_settle, op.future, ok, value)
        conn.close()

    def _run_group(self, conn: sqlite3.Connection, ops: list[_Op]) -> list[tuple[bool, Any]]:
        # Each op in its own savepoint: one bad op fails alone, the rest commit together.
        # Appends advance in-memory offsets; a rolled-back op must give them back.
        saved_next = dict(self._next)
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                before = dict(self._next)
                conn.execute("SAVEPOINT op")
                try:
                    value = op.run(conn)
                except Exception as exc:  # noqa: BLE001 -- handed to the caller's future
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    self._next = before
                    results.append((False, exc))
                else:
                    conn.execute("RELEASE op")
                    results.append((True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._next = saved_next
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
        per_partition = max(1, limit // max(1, len(positions)))
        for partition, position in positions.items():
            if self._next.get((topic, partition), 0) <= position:
                continue
            rows = self._db.execute(
                "SELECT offset, key, value, headers, timestamp FROM records "
                "WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
                (topic, partition, position, per_partition),
            ).fetchall()
            out.extend(
                Record(topic, partition, off, key, bytes(value), _decode_headers(hdrs), ts)
                for off, key, value, hdrs, ts in rows
            )
        return out

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

    async def delivered(self, event_ids: Collection[str]) -> dict[DeliveryKey, Any]:
        """Steps already delivered for ``event_ids`` (`platypus.runtime.base.DeliveryLedger`)."""
        out: dict[DeliveryKey, Any] = {}
        ids = list(event_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for event_id, flow, step, result in self._db.execute(
                f"SELECT event_id, flow, step, result FROM deliveries WHERE event_id IN ({marks})",  # noqa: S608 -- placeholders only
                chunk,
            ):
                out[(event_id, flow, step)] = json.loads(result)
        return out

    def read(self, topic: str) -> list[Record]:
        """Every record of ``topic``, by partition then offset (for tools and tests)."""
        rows = self._db.execute(
            "SELECT partition, offset, key, value, headers, timestamp FROM records "
            "WHERE topic = ? ORDER BY partition, offset",
            (topic,),
        ).fetchall()
        return [
            Record(topic, p, off, key, bytes(value), _decode_headers(hdrs), ts)
            for p, off, key, value, hdrs, ts in rows
        ]

    def outcomes(self) -> list[dict[str, Any]]:
        """Every recorded outcome, oldest first."""
        cur = self._db.execute("SELECT * FROM outcomes ORDER BY at, topic, partition, offset")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

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


def _record_deliveries(conn: sqlite3.Connection, rows: Sequence[Delivery]) -> None:
    now = time.time()
    conn.executemany(
        "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (event_id, flow, step, version, json.dumps(result, default=str), attempts, now)
            for event_id, flow, step, version, result, attempts in rows
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


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _encode_headers(headers: Iterable[tuple[str, bytes]]) -> str:
    return json.dumps([[k, v.decode("utf-8", "replace")] for k, v in headers])


def _decode_headers(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode()) for k, v in json.loads(text))
