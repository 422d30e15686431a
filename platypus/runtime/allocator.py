"""Hand the C heap's free memory back to the operating system, where glibc allows it.

A long-running process frees as much as it allocates (event bytes, SQLite pages,
pydantic-core buffers), but glibc's ``free`` returns memory to the system only
from the top of each arena: free chunks below a live one stay resident. Measured
on the embedded runtime (500,000 events in batches of 100, docs/benchmarks.md),
the bytes in use stayed flat at ~28.5 MiB while the free bytes held inside the
arenas grew from ~3 to ~5.6 MiB and RSS crept with them. ``malloc_trim(0)``
gives the free pages of every arena back (``madvise``), at a few milliseconds
for a heap of tens of MiB, so the runtime calls it every `TRIM_INTERVAL` seconds.

Elsewhere (musl, macOS, Windows) there is no ``malloc_trim`` and `trim` does
nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable

import structlog

__all__ = ["TRIM_INTERVAL", "trim", "trim_forever"]

TRIM_INTERVAL = 10.0
"""Seconds between two trims: ~4 ms of CPU each (0.04%), and the creep between them
is small (well under a MiB at thousands of events a second)."""

_log = structlog.get_logger("platypus.runtime")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        found: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    found.argtypes = [ctypes.c_size_t]  # type: ignore[attr-defined]
    found.restype = ctypes.c_int  # type: ignore[attr-defined]
    return found


def trim() -> bool:
    """Return the C heap's free pages to the system; whether anything was released
    (False also where there is no glibc)."""
    found = _malloc_trim()
    return bool(found(0)) if found is not None else False


async def trim_forever(interval: float = TRIM_INTERVAL) -> None:
    """`trim` every ``interval`` seconds until cancelled (on a worker thread: ctypes
    releases the GIL, so the event loop goes on meanwhile)."""
    if _malloc_trim() is None:
        return
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(trim)
        except Exception:  # noqa: BLE001 -- memory housekeeping must never stop the app
            _log.exception("malloc_trim failed; not trying again")
            return
