"""Delivery ids already seen, kept in ``<data_dir>/webhooks.db`` (SQLite).

A vendor that sends a delivery id (a header named by ``delivery_id_header``) sends
the same id again when it retries. The receiver looks the id up before decoding:

* not seen                      -> decode and append; the id is remembered after the
                                   append is durable (a crash in between only means
                                   the retry is de-duplicated by the event id instead);
* seen, with the same body      -> a re-delivery: acknowledged, nothing appended;
* seen, with a different body   -> a replayed or reused id: refused with 409.

Rows older than ``retention`` are dropped when the store opens.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Literal, Protocol

__all__ = ["DeliveryMemory", "SeenDeliveries"]

Seen = Literal["new", "same", "different"]


class DeliveryMemory(Protocol):
    """Where delivery ids are remembered: this file, or a store shared by replicas
    (`platypus.ops.dedupe.SharedDedupe`)."""

    async def check(self, source: str, delivery_id: str, digest: str) -> str:
        """``new``, ``same`` (a re-delivery) or ``different`` (a reused id)."""
        ...

    async def remember(self, source: str, delivery_id: str, digest: str) -> None:
        """Record ``delivery_id`` as accepted with a body of ``digest`` (durably)."""
        ...

    def close(self) -> None:
        """Release what it holds open."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_deliveries (
    source TEXT NOT NULL, delivery_id TEXT NOT NULL, body_sha256 TEXT NOT NULL,
    seen_at REAL NOT NULL, PRIMARY KEY (source, delivery_id)
) WITHOUT ROWID;
"""


class SeenDeliveries:
    """Durable (source, delivery id) -> body digest, for re-delivery and replay checks.

    ``path`` None keeps them in memory only (``platypus web`` without a data
    directory); then a restart forgets them and re-deliveries fall back on the
    event-id de-duplication of the log.
    """

    def __init__(self, path: Path | None, *, retention: float = 30 * 86400) -> None:
        self.path = path
        self.retention = retention
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            target = ":memory:" if self.path is None else str(self.path)
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.executescript(_SCHEMA)
            conn.execute(
                "DELETE FROM seen_deliveries WHERE seen_at < ?", (time.time() - self.retention,)
            )
            self._conn = conn
        return self._conn

    def _check(self, source: str, delivery_id: str, digest: str) -> Seen:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT body_sha256 FROM seen_deliveries WHERE source = ? AND delivery_id = ?",
                    (source, delivery_id),
                )
                .fetchone()
            )
        if row is None:
            return "new"
        return "same" if row[0] == digest else "different"

    def _remember(self, source: str, delivery_id: str, digest: str) -> None:
        with self._lock:
            self._db().execute(
                "INSERT OR IGNORE INTO seen_deliveries VALUES (?, ?, ?, ?)",
                (source, delivery_id, digest, time.time()),
            )

    async def check(self, source: str, delivery_id: str, digest: str) -> Seen:
        """Whether ``delivery_id`` of ``source`` was seen, and with the same body or not."""
        return await asyncio.to_thread(self._check, source, delivery_id, digest)

    async def remember(self, source: str, delivery_id: str, digest: str) -> None:
        """Record ``delivery_id`` as accepted with a body of ``digest`` (durably)."""
        await asyncio.to_thread(self._remember, source, delivery_id, digest)

    def close(self) -> None:
        """Close the database (it reopens on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
