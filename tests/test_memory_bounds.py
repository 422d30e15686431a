"""What keeps a long run's memory bounded: SQLite page caches of a set size, the C
heap's free memory handed back (docs/benchmarks.md, RSS over 500,000 events)."""

from __future__ import annotations

import asyncio
import ctypes
import tracemalloc
from pathlib import Path

import orjson
import pytest

from platypus.jsontext import dumps
from platypus.ops.store import SQLITE_CACHE_KIB, FailureStore
from platypus.partitioning import partition_for
from platypus.records import EVENTS_TOPIC, Delivery, NewRecord
from platypus.runtime import allocator
from platypus.runtime.embedded import log as log_module
from platypus.runtime.embedded.log import CACHE_KIB, READER_CACHE_KIB, EventLog, _padded
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, running

glibc = pytest.mark.skipif(
    allocator._malloc_trim() is None, reason="no glibc malloc_trim on this platform"
)


async def test_both_connections_of_the_log_have_the_bounded_page_cache(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        on_writer = await log._submit(lambda conn: conn.execute("PRAGMA cache_size").fetchone()[0])
        assert log._reader is not None
        on_reader = log._reader.execute("PRAGMA cache_size").fetchone()[0]
    assert (on_writer, on_reader) == (-CACHE_KIB, -READER_CACHE_KIB)  # negative: KiB
    # Below SQLite's default, or bounding them would change nothing.
    assert READER_CACHE_KIB < CACHE_KIB < 2000


def test_every_sqlite_connection_of_the_store_has_the_bounded_page_cache(tmp_path: Path) -> None:
    store = FailureStore.for_data_dir(tmp_path)
    try:
        # Two at once: the pool opens a second connection, which must be set too.
        with store.engine.connect() as first, store.engine.connect() as second:
            sizes = [conn.exec_driver_sql("PRAGMA cache_size").scalar() for conn in (first, second)]
    finally:
        store.close()
    assert sizes == [-SQLITE_CACHE_KIB] * 2


def test_trim_asks_malloc_trim_to_release_every_arena(monkeypatch: pytest.MonkeyPatch) -> None:
    pads: list[int] = []
    monkeypatch.setattr(allocator, "_malloc_trim", lambda: lambda pad: pads.append(pad) or 1)
    assert allocator.trim() is True
    assert pads == [0]  # 0: keep no free pad at the top of the heap


async def test_without_glibc_trim_does_nothing_and_the_loop_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(allocator, "_malloc_trim", lambda: None)
    assert allocator.trim() is False
    await asyncio.wait_for(allocator.trim_forever(0.01), timeout=5)


@glibc
async def test_the_app_trims_the_c_heap_periodically_while_running(
    tmp_path: Path, fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "TRIM_INTERVAL", 0.01)
    monkeypatch.setattr(allocator, "trim", lambda: bool(calls.append(1)))
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}):
        for _ in range(500):  # at most 5 s; a pass usually comes within 0.1 s
            if len(calls) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(calls) >= 2
    stopped = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == stopped  # the task stops with the app


def test_lookups_are_padded_to_a_few_lengths_so_prepared_statements_stay_few() -> None:
    shapes = {len(_padded(list(range(n)), 500)) for n in range(1, 501)}
    assert shapes == {1, 2, 4, 8, 16, 32, 64, 128, 256, 500}
    padded = _padded(["a", "b", "c"], 500)
    assert padded == ["a", "b", "c", "a"]
    assert _padded([], 500) == []


async def test_padded_lookups_find_exactly_what_was_stored(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        ids = [f"evt-{n}" for n in range(37)]  # pads to 64: the first id repeated
        placed = await log.append(
            EVENTS_TOPIC, [NewRecord(key="k", value=b"{}", dedupe=("s", i)) for i in ids]
        )
        again = await log.append(
            EVENTS_TOPIC, [NewRecord(key="k", value=b"{}", dedupe=("s", i)) for i in ids[:5]]
        )
        await log.record([Delivery(i, "f", "step", "1", {"n": i}, 1) for i in ids[:3]])
        delivered = await log.delivered(ids)
        found = log.placements(EVENTS_TOPIC, "s", [*ids, "missing"])
    assert all(p is not None for p in placed)
    assert again == [None] * 5
    assert delivered == {(i, "f", "step"): {"n": i} for i in ids[:3]}
    assert found == dict(zip(ids, placed, strict=True))


async def test_the_log_keeps_no_values_in_memory_to_train_its_dictionary_on(
    tmp_path: Path,
) -> None:
    # The next dictionary is trained on the last 2,000 values, read back from the
    # file when it is due: kept in memory all run long they took ~1.6 MiB.
    records = [
        NewRecord(key=f"k{n}", value=orjson.dumps({"id": n, "note": "x" * 700}))
        for n in range(1900)  # fewer than make a training due, which reads them back
    ]
    with EventLog(tmp_path) as log:
        await log.append(EVENTS_TOPIC, records[:10])  # statements, topic: made once
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for start in range(10, len(records), 100):
                await log.append(EVENTS_TOPIC, records[start : start + 100])
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < sum(len(r.value) for r in records) / 10


async def test_the_writer_remembers_the_partition_of_a_bounded_number_of_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys are remembered so that murmur2 (in Python) runs once per key, not per
    # event; past the bound they are forgotten, and every key still lands where
    # Kafka's partitioner puts it.
    monkeypatch.setattr(log_module, "_KEYS_REMEMBERED", 8)
    keys = [f"key-{n}" for n in range(30)] * 2
    with EventLog(tmp_path, partitions=4) as log:
        placed = await log.append(EVENTS_TOPIC, [NewRecord(key, b"{}", ()) for key in keys])
        assert 0 < len(log._key_partitions) <= 8
    assert [p.partition for p in placed if p is not None] == [partition_for(k, 4) for k in keys]


@glibc
def test_the_stored_form_of_an_event_takes_no_more_memory_than_its_length() -> None:
    # orjson's bytes sit in a ~4 KiB allocation whatever their length: every event
    # the ingress holds until it is appended would take five times its size.
    usable = ctypes.CDLL(None).malloc_usable_size
    usable.restype = ctypes.c_size_t
    event = {"specversion": "1.0", "data": {"note": "x" * 700}}
    raw = orjson.dumps(event)
    assert usable(ctypes.c_void_p(id(raw))) > 3 * len(raw)  # what is being guarded against
    stored = dumps(event)
    assert stored == raw
    assert usable(ctypes.c_void_p(id(stored))) < len(stored) + 128  # header and rounding
