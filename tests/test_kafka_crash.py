"""Two ``platypus worker`` processes share the partitions; one is killed with SIGKILL.

Its partitions move to the survivor, which resumes them from the committed
offsets. Every event reaches the vendor at least once and in order per key, and
an event is delivered twice only if it was in flight: at or after its
partition's committed offset when the worker died.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.vendor import FakeVendor, Reply
from tests.kafka_broker import KafkaBroker
from tests.runtimes import start_worker, stop_worker, wait_worker_healthy, write_kafka_project
from tests.support import SEQUENCE_FLOW, SETTLED_AHEAD_FLOW, closed_won, free_port

pytestmark = pytest.mark.slow

KEYS = 40
PER_KEY = 10


def _bodies(vendor: FakeVendor) -> list[dict[str, Any]]:
    # A request cut off by the kill arrives without its body: it was not delivered.
    return [r.json for r in vendor.requests_to("/orders") if r.body]


async def test_killing_one_of_two_workers_loses_nothing_and_keeps_key_order(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker
) -> None:
    settings = write_kafka_project(
        tmp_path,
        fake_vendor.url,
        {"orders": SEQUENCE_FLOW},
        kafka_broker,
        name="crash",
        max_in_flight=50,
    )
    fake_vendor.delay("/orders", 0.02)
    keys = [f"006{k:015d}" for k in range(KEYS)]
    events = [closed_won(key, amount=seq + 1) for seq in range(PER_KEY) for key in keys]
    records = [(e["subject"].encode(), json.dumps(e).encode(), []) for e in events]

    first = start_worker(tmp_path)
    second = start_worker(tmp_path, "--web-port", str(free_port()))
    try:
        await wait_worker_healthy(first, settings.web_port)
        await asyncio.to_thread(kafka_broker.produce, settings.topic("events"), records)
        # Let both workers get going, then kill one mid-stream.
        await fake_vendor.wait_for(len(events) // 4, path="/orders", within=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        committed_at_kill = await asyncio.to_thread(
            kafka_broker.committed, settings.group_id, settings.topic("events"), missing=0
        )
        delivered_at_kill = len(_bodies(fake_vendor))
        assert delivered_at_kill < len(events), "the kill came after the end of the stream"

        deadline = time.monotonic() + 90
        while {b["event"] for b in _bodies(fake_vendor)} < {e["id"] for e in events}:
            assert time.monotonic() < deadline, "not every event was delivered within 90 s"
            assert second.poll() is None, "the surviving worker died"
            await asyncio.sleep(0.2)
    finally:
        stop_worker(first)
        stop_worker(second)

    placed = {
        json.loads(r.value or b"")["id"]: (r.partition, r.offset)
        for r in await asyncio.to_thread(
            kafka_broker.read, settings.topic("events"), expected=len(events)
        )
    }
    bodies = _bodies(fake_vendor)
    counts: dict[str, int] = {}
    for body in bodies:
        counts[body["event"]] = counts.get(body["event"], 0) + 1
    duplicates = {event_id for event_id, n in counts.items() if n > 1}
    print(
        f"\n{len(events)} events, {len(bodies)} deliveries, {len(duplicates)} delivered twice "
        f"(in flight when worker 1 was killed; committed then: {committed_at_kill})"
    )

    assert set(counts) == {e["id"] for e in events}
    for event_id in duplicates:
        partition, offset = placed[event_id]
        assert offset >= committed_at_kill[partition], f"{event_id} was committed, yet resent"
    for key in keys:
        arrivals = [b["seq"] for b in bodies if b["key"] == key]
        # First deliveries are in order; a redelivery restarts from the commit and
        # goes on in order again: each run between two steps back is consecutive.
        assert list(dict.fromkeys(arrivals)) == list(range(1, PER_KEY + 1)), key
        runs = _runs(arrivals)
        assert all(run == list(range(run[0], run[-1] + 1)) for run in runs), (key, arrivals)


def _runs(values: list[int]) -> list[list[int]]:
    runs: list[list[int]] = [[values[0]]]
    for value in values[1:]:
        if value <= runs[-1][-1]:
            runs.append([value])
        else:
            runs[-1].append(value)
    return runs


def _settled_marks(root: Path) -> int:
    """Records the worker marked settled, read through a connection of the test's own."""
    import sqlite3

    ledger = root / ".platypus" / "ledger.db"
    if not ledger.exists():
        return 0
    with sqlite3.connect(ledger) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM settled").fetchone()[0])
        except sqlite3.OperationalError:  # the worker has not made the table yet
            return 0


async def test_a_dead_letter_settled_past_the_committed_offset_happens_once_across_a_kill(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker
) -> None:
    # One partition: the refused event (offset 1) is dead-lettered while the slow
    # one (offset 0) holds the commit back. A kill -9 there, then a restart, must
    # not run the refused event again: one request, one dead letter.
    vendor = {"adapter": "http", "settings": {"base_url": fake_vendor.url, "timeout": 60}}
    settings = write_kafka_project(
        tmp_path,
        fake_vendor.url,
        {"orders": SETTLED_AHEAD_FLOW},
        kafka_broker,
        name="settled",
        partitions=1,
        connections={"vendor": vendor},
    )
    fake_vendor.script("/slow", [Reply(201, delay=30)])
    fake_vendor.script("/refused", [(400,), (400,)])  # a second run would dead-letter again
    slow, refused = closed_won("006000000000000001", amount=1), closed_won(amount=2)
    records = [(e["subject"].encode(), json.dumps(e).encode(), []) for e in (slow, refused)]
    dead_letters = settings.topic("dead-letter")

    worker = start_worker(tmp_path)
    try:
        await wait_worker_healthy(worker, settings.web_port)
        await asyncio.to_thread(kafka_broker.produce, settings.topic("events"), records)
        deadline = time.monotonic() + 60
        while not _settled_marks(tmp_path):
            assert time.monotonic() < deadline, "the refused event was never settled"
            assert worker.poll() is None, "the worker died"
            await asyncio.sleep(0.05)
        assert len(fake_vendor.requests_to("/slow")) == 1  # still in flight
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

        worker = start_worker(tmp_path)
        await wait_worker_healthy(worker, settings.web_port)
        await fake_vendor.wait_for(2, path="/slow", within=60)
        # Both offsets committed: nothing of the partition is left to run again.
        deadline = time.monotonic() + 30
        while (
            await asyncio.to_thread(
                kafka_broker.committed, settings.group_id, settings.topic("events"), missing=0
            )
        ).get(0, 0) < 2:
            assert time.monotonic() < deadline, "the partition was not committed to its end"
            await asyncio.sleep(0.2)
    finally:
        stop_worker(worker)

    letters = await asyncio.to_thread(kafka_broker.read, dead_letters, expected=1)
    refusals = fake_vendor.requests_to("/refused")
    print(f"\ndead letters: {len(letters)}, refused requests: {len(refusals)}")
    assert [json.loads(r.value or b"")["id"] for r in letters] == [refused["id"]]
    assert len(refusals) == 1
