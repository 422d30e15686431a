"""Per-connection limits: calls in flight and calls per second, shared by all flows.

A vendor limits an account, not a flow: every step that writes to the same
connection shares that connection's budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType

__all__ = ["ConnectionLimit"]


class ConnectionLimit:
    """At most ``max_concurrency`` calls at once and ``rate`` calls per second."""

    def __init__(self, max_concurrency: int | None = None, rate: float | None = None) -> None:
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._interval = 1.0 / rate if rate else 0.0
        self._next_start = 0.0
        self._lock = asyncio.Lock()
        self.unlimited = self._slots is None and not self._interval
        """Neither limit is set (most connections): a call need not hold a `slot`."""

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Hold one call's place: wait for a free slot, then for the rate budget."""
        if self.unlimited:
            # Nothing to wait for (most connections): no generator to drive per call.
            return _FREE
        return self._held()

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
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
        # Calls start at least `interval` apart: a steady rate, no bursts. The next
        # start is reckoned from when this call really starts, not from when it was
        # due: a call that wakes late on a busy loop must not let the next one
        # follow it closer than the interval.
        async with self._lock:
            wait = self._next_start - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_start = time.monotonic() + self._interval


class _Free:
    """The slot of a connection without limits: entered and left at once."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_FREE = _Free()
