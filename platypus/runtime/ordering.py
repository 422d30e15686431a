"""Key-ordered concurrency and safe commits, shared by every runtime.

This is the model of Confluent's Parallel Consumer:

* `KeyedExecutor` runs items one at a time per key and many keys at once, so
  one record's events are handled in order while a slow key holds no other up;
* `PartitionProgress` tracks which offsets of a partition are still in flight
  and says which offsets are safe to commit: never one past an event that has
  not finished, however the others finish around it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

__all__ = ["KeyedExecutor", "PartitionProgress"]

T = TypeVar("T")

_log = structlog.get_logger("platypus.runtime")


class PartitionProgress:
    """Offsets of one partition: which are in flight, which are safe to commit."""

    def __init__(self, position: int) -> None:
        self.position = position  # the next offset to read
        self._in_flight: list[int] = []  # heap
        self._finished: set[int] = set()  # finished, but behind an unfinished offset

    def started(self, offset: int) -> None:
        """``offset`` was read and is being processed."""
        heapq.heappush(self._in_flight, offset)
        self.position = max(self.position, offset + 1)

    def finish(self, offset: int) -> list[int]:
        """``offset`` is done; returns the offsets now safe, in order.

        An offset is safe once it and every offset before it are done. Offsets
        finished ahead of an unfinished one wait until it finishes too.
        """
        self._finished.add(offset)
        released = []
        while self._in_flight and self._in_flight[0] in self._finished:
            done = heapq.heappop(self._in_flight)
            self._finished.discard(done)
            released.append(done)
        return released

    @property
    def committable(self) -> int:
        """The offset to commit: the lowest still in flight, else the next to read."""
        return self._in_flight[0] if self._in_flight else self.position

    @property
    def in_flight(self) -> int:
        """Offsets started and not yet safe."""
        return len(self._in_flight)


class KeyedExecutor(Generic[T]):
    """Runs ``handle(item)`` in submission order per key, concurrently across keys.

    At most ``max_in_flight`` items are queued or running; `submit` waits for
    room. An exception from ``handle`` is a bug (handlers classify failures
    themselves): it is recorded in `failure`, logged, and that key stops.
    """

    def __init__(self, handle: Callable[[T], Awaitable[None]], *, max_in_flight: int) -> None:
        self._handle = handle
        self._max = max_in_flight
        self._keys: dict[str, deque[T]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._count = 0
        self._room = asyncio.Event()
        self._room.set()
        self.failure: BaseException | None = None

    @property
    def in_flight(self) -> int:
        """Items submitted and not yet handled."""
        return self._count

    @property
    def room(self) -> int:
        """How many more items can be submitted without waiting."""
        return max(self._max - self._count, 0)

    async def submit(self, key: str, item: T) -> None:
        """Queue ``item`` behind the earlier items of ``key``; wait while full."""
        while self._count >= self._max:
            self._room.clear()
            await self._room.wait()
        self._count += 1
        queued = self._keys.get(key)
        if queued is not None:
            queued.append(item)
            return
        self._keys[key] = deque([item])
        task = asyncio.create_task(self._run(key))
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _run(self, key: str) -> None:
        queued = self._keys[key]
        try:
            while queued:
                await self._handle(queued[0])
                queued.popleft()
                self._count -= 1
                self._room.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
            _log.exception("processing failed", key=key)
            raise
        finally:
            # Nothing awaits between the loop's last check and here, so no item
            # can have been queued for this key in between.
            if not queued or self.failure is not None:
                self._keys.pop(key, None)

    async def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running items, then cancel the rest."""
        if not self._workers:
            return
        _done, pending = await asyncio.wait(set(self._workers), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
