"""The embedded log's writer thread: ops grouped into one transaction, answered per op."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from platypus.runtime.embedded.log import EventLog


async def test_a_group_of_writes_answers_each_op_and_wakes_the_loop_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(tmp_path, partitions=1)
    log.open()
    try:
        loop = asyncio.get_running_loop()
        wakes: list[Any] = []
        real = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            wakes.append(callback)
            return real(callback, *args)

        monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
        gate = threading.Event()

        def held(conn: sqlite3.Connection) -> str:
            gate.wait(5)
            return "first"

        def failing(conn: sqlite3.Connection) -> str:
            raise ValueError("this op alone fails")

        # The first op holds the writer while the rest queue up behind it, so
        # they are taken as one group.
        first = log._submit(held)
        await asyncio.sleep(0.05)
        rest = [log._submit(lambda conn, n=n: n) for n in range(5)]
        bad = log._submit(failing)
        gate.set()
        assert await first == "first"
        assert await asyncio.gather(*rest) == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="alone fails"):
            await bad
        # The held op's group, then the other six together.
        assert len(wakes) == 2
    finally:
        monkeypatch.undo()
        log.close()
