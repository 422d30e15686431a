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
import contextvars
import heapq
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

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

    An item of a key with nothing queued starts at once, in `submit`, and only
    if it has to wait (for I/O, a backoff) does its key get a task to finish it
    and run what queues behind it: a task per key costs more than handling an
    event that completes without waiting (an in-process adapter).
    """

    _YIELD_EVERY = 64  # items handled inline before `submit` lets the loop run others

    def __init__(
        self, handle: Callable[[T], Coroutine[Any, Any, None]], *, max_in_flight: int
    ) -> None:
        self._handle = handle
        self._max = max_in_flight
        self._keys: dict[str, deque[T]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._count = 0
        self._room = asyncio.Event()
        self._room.set()
        self._inline = 0
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
        # Its own context, as a task would have: the one it is finished in, if it waits.
        context = contextvars.copy_context()
        started = self._handle(item)
        try:
            waiting = context.run(started.send, None)
        except StopIteration:
            self._count -= 1
            self._room.set()
            self._inline += 1
            if self._inline >= self._YIELD_EVERY:
                self._inline = 0
                await asyncio.sleep(0)
            return
        except Exception as exc:  # noqa: BLE001 -- as in `_run`: a bug, and the key stops
            self.failure = exc
            _log.exception("processing failed", key=key)
            # Left queued with no task: what comes after it for this key waits.
            self._keys[key] = deque([item])
            return
        self._keys[key] = deque([item])
        task = asyncio.create_task(self._run(key, started, waiting), context=context)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _run(self, key: str, started: Coroutine[Any, Any, None], waiting: Any) -> None:
        queued = self._keys[key]
        try:
            await _finish(started, waiting)
            while True:
                queued.popleft()
                self._count -= 1
                self._room.set()
                if not queued:
                    break
                await self._handle(queued[0])
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


@types.coroutine
def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Drive ``coro`` to its end, started elsewhere and now suspended on ``waiting``.

    Awaited in a task, it hands the task whatever ``coro`` waits on, and passes
    back to ``coro`` what the task sends or throws (a cancellation among them).
    """
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 -- thrown on into the coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration:
                return
