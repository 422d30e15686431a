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

    Keys run in worker tasks, not in a task each: a worker takes the next key
    that has items and no worker, and runs that key's items until none is left.
    While a worker's handler waits (a vendor, a backoff), another worker takes
    the next key: every time a worker takes a key it makes sure a check is
    scheduled, which runs as soon as the loop gets control back (the worker
    waits, or is done) and starts a worker if keys are still waiting. So a key
    never waits behind another key's waiting handler (a new worker takes it
    within a turn of the loop per waiting key ahead of it), and a batch whose
    handlers do not wait costs one task, not one per key (~2.4 µs each). A
    handler runs from start to end in one worker task, so what it binds to
    `asyncio.current_task()` (`asyncio.timeout`, aiohttp's timers) cancels only
    that worker, never the submitter. Handlers that run one after the other in a
    worker share its context variables, as the items of one key always did.
    """

    def __init__(self, handle: Callable[[T], Awaitable[None]], *, max_in_flight: int) -> None:
        self._handle = handle
        self._max = max_in_flight
        self._keys: dict[str, deque[T]] = {}
        self._waiting: deque[str] = deque()  # keys with items and no worker, in order
        self._workers: set[asyncio.Task[None]] = set()
        self._check_due = False
        self._stopped = False
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
        self._waiting.append(key)
        self._schedule_check()

    def _schedule_check(self) -> None:
        if not self._check_due:
            self._check_due = True
            asyncio.get_running_loop().call_soon(self._check)

    def _check(self) -> None:
        # Runs once the task that scheduled it has given the loop back: keys still
        # waiting then have no running worker that will get to them now.
        self._check_due = False
        if self._waiting and not self._stopped:
            task = asyncio.create_task(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        while self._waiting and not self._stopped:
            key = self._waiting.popleft()
            # If this key's handler waits, the check starts a worker for the next.
            self._schedule_check()
            await self._run(key)

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
        except Exception as exc:  # noqa: BLE001 -- recorded in `failure` and logged
            self.failure = exc
            _log.exception("processing failed", key=key)
        finally:
            # Nothing awaits between the loop's last check and here, so no item
            # can have been queued for this key in between.
            if not queued or self.failure is not None:
                self._keys.pop(key, None)

    async def stop(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for queued and running items, then cancel the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (self._workers or self._waiting) and loop.time() < deadline:
            if self._workers:
                await asyncio.wait(set(self._workers), timeout=deadline - loop.time())
            else:
                await asyncio.sleep(0)  # the check due starts a worker for them
        self._stopped = True
        pending = set(self._workers)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # As when each key had its task: what was cancelled or never started stays
        # queued under its key, unfinished, and is not started later.
        self._waiting.clear()
        self._stopped = False
