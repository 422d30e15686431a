"""Per-connection limits: calls in flight and calls per second, shared by all flows.

A vendor limits an account, not a flow: every step that writes to the same
connection shares that connection's budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

__all__ = ["ConnectionLimit"]


class ConnectionLimit:
    """At most ``max_concurrency`` calls at once and ``rate`` calls per second."""

    def __init__(self, max_concurrency: int | None = None, rate: float | None = None) -> None:
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._interval = 1.0 / rate if rate else 0.0
        self._next_start = 0.0
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one call's place: wait for a free slot, then for the rate budget."""
        if self._slots is not None:
            await self._slots.acquire()
        try:
            if self._interval:
                await self._pace()
            yield
        finally:
            if self._slots is not None:
                self._slots.release()

    async def _pace(self) -> None:
        # Calls start at least `interval` apart: a steady rate, no bursts.
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)
