"""The Kafka workers' delivery ledger: SQLite on one machine, a shared SQL database on many.

Workers take partitions over from each other, so the ledger must outlive any one
of them: `SqlLedger` keeps it in a database every worker reaches (PostgreSQL,
``kafka.ledger_url``); `SqliteLedger` in the worker's data directory is enough
only while every worker shares one machine. Both implement
`platypus.runtime.base.DeliveryLedger`.
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

__all__ = ["SqlLedger", "SqliteLedger"]

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
        if not deliveries:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        now = time.time()
        rows = [
            (d.event_id, d.flow, d.step, json.dumps(d.result, default=str), now) for d in deliveries
        ]
        self._queue.put((rows, done, loop))
        await done

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
                        [row for rows, _, _ in group for row in rows],
                    )
            except sqlite3.Error as exc:
                error = exc
            for _, done, loop in group:
                loop.call_soon_threadsafe(_settle, done, error)
        conn.close()

    def close(self) -> None:
        """Finish queued records and close the file."""
        self._queue.put(None)
        self._writer.join()
        with self._lock:
            self._conn.close()


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
        metadata.create_all(self._engine)

    async def delivered(self, event_ids: Collection[str]) -> dict[DeliveryKey, Any]:
        """Steps delivered for ``event_ids``."""
        if not event_ids:
            return {}
        return await asyncio.to_thread(self._delivered, list(event_ids))

    async def record(self, deliveries: Sequence[Delivery]) -> None:
        """Remember ``deliveries`` in one transaction."""
        if deliveries:
            await asyncio.to_thread(self._record, list(deliveries))

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

    def _record(self, deliveries: list[Delivery]) -> None:
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

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()
