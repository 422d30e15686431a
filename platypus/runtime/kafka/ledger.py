"""The Kafka workers' delivery ledger: SQLite on one machine, a shared SQL database on many.

Workers take partitions over from each other, so the ledger must outlive any one
of them: `SqlLedger` keeps it in a database every worker reaches (PostgreSQL,
``kafka.ledger_url``); `SqliteLedger` in the worker's data directory is enough
only while every worker shares one machine. Both implement
`platypus.runtime.base.DeliveryLedger`.

Both also keep the worker's *settled marks*: records of the events topic whose
dead letter is durable. A record can settle ahead of an earlier one of its
partition that is still in flight, and so sit past the committed offset; after a
crash it is read again, and its mark makes the worker pass over it instead of
dead-lettering it (and calling the vendor) a second time. A mark names the
record's event id too, so a topic recreated with fresh offsets is not mistaken
for the old one. Marks below a partition's committed offset are deleted when a
worker takes the partition on.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from platypus.records import Delivery, DeliveryKey
from platypus.sqlddl import create_tables

__all__ = ["SettledMark", "SqlLedger", "SqliteLedger"]

SettledMark = tuple[str, int, int, str]
"""A record whose outcome is durable: (topic, partition, offset, event id)."""

_CHUNK = 500  # ids per IN (...) list: well under every database's parameter limit


class SqliteLedger:
    """A ledger in a SQLite file (WAL, ``synchronous=FULL``), with group commit.

    Records queue up for one writer thread, which commits whatever has queued in
    one transaction: one fsync for many deliveries, not one each. `record`
    returns once its transaction is on disk.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = _connect(path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS ledger (event_id TEXT NOT NULL, flow TEXT NOT NULL, "
            "step TEXT NOT NULL, result TEXT NOT NULL, delivered_at REAL NOT NULL, "
            "PRIMARY KEY (event_id, flow, step)) WITHOUT ROWID"
        )
        self._conn.execute(_SETTLED_TABLE)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, args=(_connect(path),), name="platypus-ledger", daemon=True
        )
        self._writer.start()

    async def delivered(self, event_ids: Collection[str]) -> dict[DeliveryKey, Any]:
        """Steps delivered for ``event_ids``."""
        if not event_ids:
            return {}
        return await asyncio.to_thread(self._delivered, list(event_ids))

    async def record(self, deliveries: Sequence[Delivery]) -> None:
        """Remember ``deliveries``; returns once they are on disk."""
        await self.settle(deliveries, ())

    async def settle(self, deliveries: Sequence[Delivery], marks: Sequence[SettledMark]) -> None:
        """Remember ``deliveries`` and the records ``marks`` settled, in one transaction."""
        if not deliveries and not marks:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((_rows(deliveries), marks, done, loop))
        await done

    async def settled(self, topic: str, partition: int, since: int) -> dict[int, str]:
        """Marks of ``partition`` from offset ``since`` on (offset -> event id); older
        ones are deleted, since ``since`` is the offset the partition resumes from."""
        return await asyncio.to_thread(self._settled, topic, partition, since)

    def _settled(self, topic: str, partition: int, since: int) -> dict[int, str]:
        with self._lock, self._conn:
            self._conn.execute(
                "DELETE FROM settled WHERE topic = ? AND part = ? AND record_offset < ?",
                (topic, partition, since),
            )
            return dict(
                self._conn.execute(
                    "SELECT record_offset, event_id FROM settled WHERE topic = ? AND part = ?",
                    (topic, partition),
                ).fetchall()
            )

    def _delivered(self, ids: list[str]) -> dict[DeliveryKey, Any]:
        out: dict[DeliveryKey, Any] = {}
        with self._lock:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for event_id, flow, step, result in self._conn.execute(
                    f"SELECT event_id, flow, step, result FROM ledger WHERE event_id IN ({marks})",  # noqa: S608 -- placeholders only
                    chunk,
                ):
                    out[(event_id, flow, step)] = json.loads(result)
        return out

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(item)
            error: BaseException | None = None
            try:
                with conn:
                    conn.executemany(
                        "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?, ?)",
                        [row for rows, _, _, _ in group for row in rows],
                    )
                    marks = [mark for _, marks, _, _ in group for mark in marks]
                    if marks:
                        conn.executemany(
                            "INSERT OR REPLACE INTO settled VALUES (?, ?, ?, ?)", marks
                        )
            except sqlite3.Error as exc:
                error = exc
            for _, _, done, loop in group:
                loop.call_soon_threadsafe(_settle, done, error)
        conn.close()

    def close(self) -> None:
        """Finish queued records and close the file."""
        self._queue.put(None)
        self._writer.join()
        with self._lock:
            self._conn.close()


_SETTLED_TABLE = (
    "CREATE TABLE IF NOT EXISTS settled (topic TEXT NOT NULL, part INTEGER NOT NULL, "
    "record_offset INTEGER NOT NULL, event_id TEXT NOT NULL, "
    "PRIMARY KEY (topic, part, record_offset)) WITHOUT ROWID"
)


def _rows(deliveries: Sequence[Delivery]) -> list[tuple[str, str, str, str, float]]:
    now = time.time()
    return [
        (d.event_id, d.flow, d.step, json.dumps(d.result, default=str), now) for d in deliveries
    ]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


class SqlLedger:
    """A ledger in a SQL database shared by every worker (PostgreSQL, say).

    Workers on different machines take partitions over from each other; a
    ledger each keeps on local disk cannot tell one that another already
    delivered a write. Give them one database: ``kafka.ledger_url``.
    """

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._engine = sa.create_engine(url, pool_pre_ping=True)
        metadata = sa.MetaData()
        self._table = sa.Table(
            "platypus_ledger",
            metadata,
            sa.Column("event_id", sa.String(256), primary_key=True),
            sa.Column("flow", sa.String(64), primary_key=True),
            sa.Column("step", sa.String(64), primary_key=True),
            sa.Column("result", sa.Text, nullable=False),
            sa.Column("delivered_at", sa.Float, nullable=False),
        )
        self._settled_table = sa.Table(
            "platypus_settled",
            metadata,
            sa.Column("topic", sa.String(256), primary_key=True),
            sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("record_offset", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("event_id", sa.String(256), nullable=False),
        )
        create_tables(self._engine, metadata)

    async def delivered(self, event_ids: Collection[str]) -> dict[DeliveryKey, Any]:
        """Steps delivered for ``event_ids``."""
        if not event_ids:
            return {}
        return await asyncio.to_thread(self._delivered, list(event_ids))

    async def record(self, deliveries: Sequence[Delivery]) -> None:
        """Remember ``deliveries`` in one transaction."""
        await self.settle(deliveries, ())

    async def settle(self, deliveries: Sequence[Delivery], marks: Sequence[SettledMark]) -> None:
        """Remember ``deliveries`` and the records ``marks`` settled, in one transaction."""
        if deliveries or marks:
            await asyncio.to_thread(self._record, list(deliveries), list(marks))

    async def settled(self, topic: str, partition: int, since: int) -> dict[int, str]:
        """Marks of ``partition`` from offset ``since`` on (offset -> event id); older
        ones are deleted, since ``since`` is the offset the partition resumes from."""
        return await asyncio.to_thread(self._settled, topic, partition, since)

    def _settled(self, topic: str, partition: int, since: int) -> dict[int, str]:
        table = self._settled_table
        mine = (table.c.topic == topic) & (table.c.part == partition)
        with self._engine.begin() as conn:
            conn.execute(table.delete().where(mine & (table.c.record_offset < since)))
            query = self._sa.select(table.c.record_offset, table.c.event_id).where(mine)
            rows = conn.execute(query)
            return {int(offset): str(event_id) for offset, event_id in rows}

    def _delivered(self, ids: list[str]) -> dict[DeliveryKey, Any]:
        table = self._table
        out: dict[DeliveryKey, Any] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                rows = conn.execute(
                    self._sa.select(
                        table.c.event_id, table.c.flow, table.c.step, table.c.result
                    ).where(table.c.event_id.in_(ids[start : start + _CHUNK]))
                )
                for event_id, flow, step, result in rows:
                    out[(event_id, flow, step)] = json.loads(result)
        return out

    def _record(self, deliveries: list[Delivery], marks: list[SettledMark]) -> None:
        table = self._table
        now = time.time()
        # The last copy of a key wins, as an upsert would.
        latest = {d.key: d for d in deliveries}
        with self._engine.begin() as conn:
            # Delete-then-insert: one statement pair that every SQL database takes.
            for key in latest:
                conn.execute(
                    table.delete().where(
                        table.c.event_id == key[0], table.c.flow == key[1], table.c.step == key[2]
                    )
                )
            if latest:
                conn.execute(
                    table.insert(),
                    [
                        {
                            "event_id": d.event_id,
                            "flow": d.flow,
                            "step": d.step,
                            "result": json.dumps(d.result, default=str),
                            "delivered_at": now,
                        }
                        for d in latest.values()
                    ],
                )
            settled = self._settled_table
            for topic, partition, offset, _ in marks:
                conn.execute(
                    settled.delete().where(
                        (settled.c.topic == topic)
                        & (settled.c.part == partition)
                        & (settled.c.record_offset == offset)
                    )
                )
            if marks:
                conn.execute(
                    settled.insert(),
                    [
                        {"topic": t, "part": p, "record_offset": o, "event_id": e}
                        for t, p, o, e in marks
                    ],
                )

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()
