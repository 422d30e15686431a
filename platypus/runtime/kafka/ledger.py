"""The delivery ledger: which (event, flow, step) writes a vendor has already taken.

Vendors with their own idempotency (an upsert by external id, an
``Idempotency-Key`` they honour) turn a repeated write into one record. For the
others, the runtime asks the ledger before a write and records the result after
it, so replaying an event does not create a second record. The embedded runtime
reads it from its event log's delivery records (`platypus.runtime.log`); the
Kafka runtime uses a `SqliteLedger` in the worker's data directory.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from platypus.adapter import Action

__all__ = ["DeliveryLedger", "Key", "MemoryLedger", "SqlLedger", "SqliteLedger", "needs_ledger"]


def needs_ledger(action: Action | None) -> bool:
    """Whether the runtime must guard ``action`` with the ledger: a write the vendor
    does not de-duplicate itself."""
    return action is not None and action.writes and not action.idempotent


Key = tuple[str, str, str]
"""(event id, flow, step): what a delivery is remembered by."""


class DeliveryLedger(Protocol):
    """Remembers the result of each delivered write, by (event id, flow, step)."""

    async def get(self, key: Key) -> tuple[bool, Any]:
        """(True, result) if ``key`` was delivered, else (False, None)."""
        ...

    async def put(self, key: Key, result: Any) -> None:
        """Record, durably, that ``key`` was delivered with ``result``."""
        ...


class MemoryLedger:
    """A ledger in memory, for tests and one-off runs."""

    def __init__(self) -> None:
        self._entries: dict[Key, Any] = {}

    async def get(self, key: Key) -> tuple[bool, Any]:
        return (True, self._entries[key]) if key in self._entries else (False, None)

    async def put(self, key: Key, result: Any) -> None:
        self._entries[key] = result


class SqliteLedger:
    """A ledger in a SQLite file (WAL, ``synchronous=FULL``), with group commit.

    Puts queue up for one writer thread, which commits whatever has queued in one
    transaction: one fsync for many deliveries, not one each. A put returns once
    its transaction is on disk.
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

    async def get(self, key: Key) -> tuple[bool, Any]:
        row = await asyncio.to_thread(self._get, key)
        return (True, json.loads(row[0])) if row else (False, None)

    async def put(self, key: Key, result: Any) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        row = (*key, json.dumps(result, default=str), time.time())
        self._queue.put((row, done, loop))
        await done

    def _get(self, key: Key) -> tuple[str] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT result FROM ledger WHERE event_id = ? AND flow = ? AND step = ?", key
            ).fetchone()
        return None if row is None else (str(row[0]),)

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
                        [row for row, _, _ in group],
                    )
            except sqlite3.Error as exc:
                error = exc
            for _, done, loop in group:
                loop.call_soon_threadsafe(_settle, done, error)
        conn.close()

    def close(self) -> None:
        """Finish queued puts and close the file."""
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

    async def get(self, key: Key) -> tuple[bool, Any]:
        row = await asyncio.to_thread(self._get, key)
        return (True, json.loads(row)) if row is not None else (False, None)

    async def put(self, key: Key, result: Any) -> None:
        await asyncio.to_thread(self._put, key, json.dumps(result, default=str))

    def _get(self, key: Key) -> str | None:
        table = self._table
        with self._engine.connect() as conn:
            found = conn.execute(
                self._sa.select(table.c.result).where(
                    table.c.event_id == key[0], table.c.flow == key[1], table.c.step == key[2]
                )
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def _put(self, key: Key, result: str) -> None:
        table = self._table
        values = {
            "event_id": key[0],
            "flow": key[1],
            "step": key[2],
            "result": result,
            "delivered_at": time.time(),
        }
        with self._engine.begin() as conn:
            # Delete-then-insert: one statement pair that every SQL database takes.
            conn.execute(
                table.delete().where(
                    table.c.event_id == key[0], table.c.flow == key[1], table.c.step == key[2]
                )
            )
            conn.execute(table.insert().values(**values))

    def close(self) -> None:
        self._engine.dispose()
