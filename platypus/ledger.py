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
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from platypus.adapter import Action

__all__ = ["DeliveryLedger", "Key", "MemoryLedger", "SqliteLedger", "needs_ledger"]


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
    """A ledger in a SQLite file (WAL, ``synchronous=FULL``)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS ledger (event_id TEXT NOT NULL, flow TEXT NOT NULL, "
            "step TEXT NOT NULL, result TEXT NOT NULL, delivered_at REAL NOT NULL, "
            "PRIMARY KEY (event_id, flow, step)) WITHOUT ROWID"
        )

    async def get(self, key: Key) -> tuple[bool, Any]:
        row = await asyncio.to_thread(self._get, key)
        return (True, json.loads(row[0])) if row else (False, None)

    async def put(self, key: Key, result: Any) -> None:
        await asyncio.to_thread(self._put, key, json.dumps(result, default=str))

    def _get(self, key: Key) -> tuple[str] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT result FROM ledger WHERE event_id = ? AND flow = ? AND step = ?", key
            ).fetchone()
        return None if row is None else (str(row[0]),)

    def _put(self, key: Key, result: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?, ?)", (*key, result, time.time())
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
