"""Per-connection budgets, shared by every flow that writes to the connection."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from platypus.config import ConnectionSpec
from platypus.records import Delivery
from platypus.runtime.kafka.ledger import SqliteLedger
from platypus.runtime.limits import ConnectionLimit, Slots
from platypus.runtime.memory import MemoryLedger
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, ingest, running


async def test_a_limit_holds_calls_in_flight_to_its_maximum() -> None:
    limit = ConnectionLimit(max_concurrency=2)
    running_now = 0
    most = 0

    async def call() -> None:
        nonlocal running_now, most
        async with limit.slot():
            running_now += 1
            most = max(most, running_now)
            await asyncio.sleep(0.01)
            running_now -= 1

    await asyncio.gather(*(call() for _ in range(10)))
    assert most == 2


async def test_slots_are_taken_in_the_order_callers_came_and_never_beyond_their_size() -> None:
    slots = Slots(2)
    order: list[int] = []
    inside = most = 0

    async def call(number: int) -> None:
        nonlocal inside, most
        async with slots:
            order.append(number)
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(call(n) for n in range(12)))
    assert order == list(range(12))
    assert most == 2


async def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_the_slot_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    got: list[str] = []

    async def wait(name: str) -> None:
        async with slots:
            got.append(name)

    first = asyncio.create_task(wait("first"))
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0)  # both waiting
    slots.release()  # handed to the first, which has not run yet...
    first.cancel()  # ...and is cancelled before it does
    await asyncio.wait_for(second, timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert got == ["second"]
    await asyncio.wait_for(slots.acquire(), timeout=5)  # and the slot came back after


async def test_a_waiter_cancelled_while_waiting_takes_no_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    slots.release()
    await asyncio.wait_for(slots.acquire(), timeout=5)


async def test_a_waiter_cancelled_and_dropped_by_a_release_before_it_runs_goes_quietly() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # its future is cancelled now; the task runs its handler later
    slots.release()  # finds the cancelled waiter first and drops it
    with pytest.raises(asyncio.CancelledError):
        await waiting  # a CancelledError, not a ValueError from the waiters' queue
    await asyncio.wait_for(slots.acquire(), timeout=5)


async def test_no_limit_lets_every_call_in_and_passes_errors_on() -> None:
    limit = ConnectionLimit()
    inside = 0
    gate, full = asyncio.Event(), asyncio.Event()

    async def call() -> None:
        nonlocal inside
        async with limit.slot():
            inside += 1
            if inside == 20:
                full.set()
            await gate.wait()

    calls = [asyncio.create_task(call()) for _ in range(20)]
    await asyncio.wait_for(full.wait(), timeout=30)  # all twenty inside at once
    gate.set()
    await asyncio.gather(*calls)
    with pytest.raises(LookupError, match="from the adapter"):
        async with limit.slot():
            raise LookupError("from the adapter")


async def test_a_rate_limit_spaces_call_starts() -> None:
    limit = ConnectionLimit(rate=50)
    starts: list[float] = []

    async def call() -> None:
        async with limit.slot():
            starts.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(6)))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.019  # 1/50 s apart, allowing the clock's grain


async def test_two_flows_share_one_connection_s_concurrency_limit(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.delay("/orders", 0.3)
    second = ORDER_FLOW.replace("name: orders", "name: orders-again")
    vendor = ConnectionSpec(
        adapter="http", settings={"base_url": fake_vendor.url}, max_concurrency=2
    )
    async with running(
        tmp_path,
        fake_vendor.url,
        {"orders": ORDER_FLOW, "again": second},
        connections={"vendor": vendor},
        concurrency=16,
    ) as app:
        await ingest(app, *(closed_won() for _ in range(4)))
        await app.drain()

    starts = sorted(r.time for r in fake_vendor.requests_to("/orders"))
    assert len(starts) == 8  # two flows, four events
    # Each call holds its slot 0.3 s: at most two may start within any 0.3 s.
    assert all(later - earlier >= 0.25 for earlier, later in zip(starts, starts[2:], strict=False))


async def test_the_sqlite_ledger_remembers_results_across_instances(tmp_path: Path) -> None:
    first = SqliteLedger(tmp_path / "ledger.db")
    await first.record([Delivery("evt-1", "orders", "create", "v1", {"id": "A-1"}, 1)])
    first.close()
    second = SqliteLedger(tmp_path / "ledger.db")
    found = await second.delivered(["evt-1", "evt-2"])
    assert found == {("evt-1", "orders", "create"): {"id": "A-1"}}
    second.close()


async def test_the_memory_ledger_keys_on_event_flow_and_step() -> None:
    ledger = MemoryLedger()
    await ledger.record([Delivery("evt-1", "orders", "create", "v1", 1, 1)])
    assert await ledger.delivered(["evt-1"]) == {("evt-1", "orders", "create"): 1}
    assert await ledger.delivered(["evt-2"]) == {}
