"""Key-ordered concurrency and safe commits: `PartitionProgress` and `KeyedExecutor`."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from platypus.runtime.ordering import KeyedExecutor, PartitionProgress


def test_nothing_in_flight_commits_the_next_offset_to_read() -> None:
    progress = PartitionProgress(position=7)
    assert progress.committable == 7


def test_an_offset_finished_ahead_of_an_earlier_one_is_not_released() -> None:
    progress = PartitionProgress(position=0)
    for offset in range(3):
        progress.started(offset)
    assert progress.finish(2) == []
    assert progress.committable == 0
    assert progress.finish(0) == [0]
    assert progress.committable == 1
    assert progress.finish(1) == [1, 2]
    assert progress.committable == 3


@settings(max_examples=300, deadline=None)
@given(st.permutations(list(range(12))), st.integers(min_value=0, max_value=100))
def test_commits_never_pass_an_unfinished_offset_whatever_the_finishing_order(
    order: list[int], start: int
) -> None:
    progress = PartitionProgress(position=start)
    offsets = [start + o for o in range(12)]
    for offset in offsets:
        progress.started(offset)
    finished: set[int] = set()
    released: list[int] = []
    for index in order:
        finished.add(offsets[index])
        released += progress.finish(offsets[index])
        unfinished = [o for o in offsets if o not in finished]
        assert progress.committable == (min(unfinished) if unfinished else start + 12)
        # Released offsets are exactly the finished prefix, in order.
        assert released == offsets[: len(released)]
        assert all(o in finished for o in released)
    assert released == offsets


async def test_items_of_one_key_run_in_order_and_keys_run_concurrently() -> None:
    seen: dict[str, list[int]] = {}
    running = 0
    most = 0
    rng = random.Random(3)

    async def handle(item: tuple[str, int]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(rng.random() / 100)
        seen.setdefault(item[0], []).append(item[1])
        running -= 1

    executor: KeyedExecutor[tuple[str, int]] = KeyedExecutor(handle, max_in_flight=100)
    for n in range(10):
        for key in "abcde":
            await executor.submit(key, (key, n))
    await executor.stop(grace=5)  # waits for every key to finish

    assert executor.in_flight == 0
    assert seen == {key: list(range(10)) for key in "abcde"}
    assert most == 5  # one per key at a time, all keys at once


async def test_submit_waits_while_the_executor_is_full() -> None:
    gate = asyncio.Event()

    async def handle(_item: int) -> None:
        await gate.wait()

    executor: KeyedExecutor[int] = KeyedExecutor(handle, max_in_flight=2)
    await executor.submit("a", 1)
    await executor.submit("b", 2)
    assert executor.room == 0
    third = asyncio.create_task(executor.submit("c", 3))
    await asyncio.sleep(0.01)
    assert not third.done()
    gate.set()
    await asyncio.wait_for(third, 1)
    assert executor.in_flight <= 2


async def test_a_handler_bug_is_recorded_and_stops_only_its_key() -> None:
    done: list[str] = []

    async def handle(item: str) -> None:
        if item == "boom":
            raise RuntimeError("bug")
        done.append(item)

    executor: KeyedExecutor[str] = KeyedExecutor(handle, max_in_flight=10)
    await executor.submit("a", "boom")
    await executor.submit("a", "after-boom")
    await executor.submit("b", "fine")
    await asyncio.sleep(0.01)

    assert isinstance(executor.failure, RuntimeError)
    assert done == ["fine"]


async def test_stop_cancels_what_does_not_finish_within_the_grace() -> None:
    async def handle(_item: int) -> None:
        await asyncio.sleep(10)

    executor: KeyedExecutor[int] = KeyedExecutor(handle, max_in_flight=10)
    await executor.submit("a", 1)
    await asyncio.sleep(0)
    await executor.stop(grace=0.05)
    assert executor.in_flight == 1  # never finished


async def test_a_handler_timing_out_cancels_only_itself_never_the_submitter() -> None:
    # Adapters enter asyncio.timeout (and aiohttp its timer) before their first
    # suspension: each item must run in a task of its own, or the timeout would
    # cancel whatever task called submit (the consumer's loop).
    outcomes: list[str] = []

    async def handle(item: str) -> None:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        except TimeoutError:
            outcomes.append(f"{item} timed out")

    executor: KeyedExecutor[str] = KeyedExecutor(handle, max_in_flight=10)
    submitter = asyncio.current_task()
    assert submitter is not None
    await executor.submit("a", "first")
    await executor.submit("b", "second")
    await executor.stop(grace=5)
    await asyncio.sleep(0.05)  # a stray cancellation of this task would land here

    assert submitter.cancelling() == 0
    assert sorted(outcomes) == ["first timed out", "second timed out"]


async def test_keys_whose_handlers_do_not_wait_share_one_task() -> None:
    tasks: set[asyncio.Task[object] | None] = set()

    async def handle(_item: int) -> None:
        tasks.add(asyncio.current_task())

    executor: KeyedExecutor[int] = KeyedExecutor(handle, max_in_flight=100)
    for n in range(50):
        await executor.submit(f"key-{n}", n)
    await executor.stop(grace=5)

    assert executor.in_flight == 0
    assert len(tasks) == 1  # not a task per key


async def test_a_key_submitted_while_every_worker_waits_is_not_held_up() -> None:
    gate = asyncio.Event()
    done: list[str] = []

    async def handle(item: str) -> None:
        if item == "slow":
            await gate.wait()
        done.append(item)

    executor: KeyedExecutor[str] = KeyedExecutor(handle, max_in_flight=10)
    await executor.submit("a", "slow")
    await executor.submit("b", "quick-1")
    await asyncio.sleep(0.01)  # "a" waits in its worker; "b" went on
    await executor.submit("c", "quick-2")
    for _ in range(100):
        if len(done) == 2:
            break
        await asyncio.sleep(0.001)

    assert done == ["quick-1", "quick-2"]
    gate.set()
    await executor.stop(grace=5)
    assert done == ["quick-1", "quick-2", "slow"]
