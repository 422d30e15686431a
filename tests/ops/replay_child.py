"""A bulk replay in a process of its own that stops at the worst moment, to be SIGKILLed.

::

    python -m tests.ops.replay_child DATA_DIR STORE_URL MARKER CHUNK

It does what ``platypus dlq replay --all-matching`` does when no app owns the
log (takes the log's owner lock, replays every open entry with an `Operations`
that owns the log), with ``CHUNK`` entries per append. Right after the second
append is on disk, and before the store records where it went, it writes
``MARKER`` and waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from platypus.ops import Actor, FailureFilter, FailureStore, LogOwnerLock, Operations
from platypus.ops.replays import Replay
from platypus.runtime.embedded import EventLog, LogReplayTarget
from platypus.schema_registry import SchemaRegistry


class _StopsAfterSecondAppend(LogReplayTarget):
    def __init__(self, log: EventLog, marker: Path) -> None:
        super().__init__(log)
        self.marker = marker
        self.sent = 0

    async def send(self, replays: Sequence[Replay]) -> list[tuple[int, int]]:
        placed = await super().send(replays)
        self.sent += 1
        if self.sent == 2:
            self.marker.write_text(str(len(replays)))
            while True:  # blocks the loop: nothing more happens until the kill
                time.sleep(60)  # noqa: ASYNC251 -- on purpose: nothing else may run
        return placed


async def main(data_dir: Path, store_url: str, marker: Path, chunk: int) -> None:
    lock = LogOwnerLock(data_dir)
    if not lock.acquire():
        raise SystemExit("another process owns the log")
    store = FailureStore(store_url)
    store.create()
    log = EventLog(data_dir, partitions=4)
    log.open()
    ops = Operations(
        store,
        SchemaRegistry.default(),
        target=_StopsAfterSecondAppend(log, marker),
        dispatch_chunk=chunk,
    )
    await ops.replay(FailureFilter(flow="orders"), Actor.operator("night-shift"))
    raise SystemExit("the replay finished: it should have stopped after its second append")


if __name__ == "__main__":
    data, url, mark, size = sys.argv[1:5]
    asyncio.run(main(Path(data), url, Path(mark), int(size)))
