"""The shared pipeline (`Consumer` + `Processor`) against the in-memory boundary.

No SQLite, no broker, no sockets: `MemoryLog` is the record source, the event
sink and the outcome sink; `MemoryLedger` the delivery ledger. What holds here
holds for every runtime, because the runtimes only implement the same Protocols
(the conformance suite checks that they do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from platypus.adapter import Action, Adapter, AdapterRegistry, NoSettings, Request
from platypus.config import ConnectionSpec, ProjectConfig
from platypus.exceptions import PermanentError
from platypus.flow.loader import load_flow
from platypus.flow.model import FlowSpec
from platypus.records import (
    DEAD_LETTER_TOPIC,
    EVENT_ID_HEADER,
    EVENTS_TOPIC,
    FLOW_DELIVERED,
    VALIDATED_HEADER,
    Delivery,
    NewRecord,
)
from platypus.retry import RetryPolicy
from platypus.runtime.base import Settlement
from platypus.runtime.consumer import Consumer
from platypus.runtime.memory import MemoryLedger, MemoryLog
from platypus.runtime.wiring import build_pipeline
from platypus.validated import proof
from tests.support import closed_won


class Vendor(Adapter):
    """An in-process vendor: records calls in order, can hold or fail a key's calls."""

    name = "vendor"
    Settings = NoSettings
    actions: ClassVar = {
        "upsert": Action(idempotent=True),
        "post": Action(),  # not idempotent: guarded by the ledger
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str, Any]] = []  # (action, key, payload)
        self.held: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()

    async def call(self, request: Request) -> Any:
        self.check_request(request)
        gate = self.held.get(request.key)
        if gate is not None:
            await gate.wait()
        self.calls.append((request.action, request.key, request.payload))
        if request.key in self.failing:
            raise PermanentError("the vendor refused it", status_code=400)
        return {"n": len(self.calls)}


ONE_STEP = """
name: orders
consumes: sales.opportunity.closed_won.v1
steps:
  - name: create
    to: vendor.upsert
    payload: {key: subject, amount: data.amount}
"""

TWO_STEPS = """
name: orders
consumes: sales.opportunity.closed_won.v1
steps:
  - name: post
    to: vendor.post
    payload: {key: subject}
  - name: confirm
    to: vendor.upsert
    payload: {posted: steps.post.n}
"""


def _flow(tmp_path: Path, text: str) -> FlowSpec:
    path = tmp_path / "orders.yaml"
    path.write_text(text)
    return load_flow(path)


class Harness:
    """A consumer wired as a runtime wires it, over the in-memory boundary."""

    def __init__(self, tmp_path: Path, flow_text: str, *, partitions: int = 2) -> None:
        self.vendor = Vendor(NoSettings(), connection="vendor")
        self.ledger = MemoryLedger()
        self.log = MemoryLog(partitions, ledger=self.ledger)
        config = ProjectConfig(
            connections={"vendor": ConnectionSpec(adapter="vendor")},
            retry=RetryPolicy(initial_delay=0.001, max_delay=0.002, max_attempts=2),
        )
        pipeline = build_pipeline(
            config,
            [_flow(tmp_path, flow_text)],
            ledger=self.ledger,
            adapters=AdapterRegistry({"vendor": Vendor}),
            connections={"vendor": self.vendor},
        )
        self.processor = pipeline.processor
        self.consumer = Consumer(self.processor, self.log, max_in_flight=100)
        self._task: asyncio.Task[None] | None = None

    async def append(
        self, *events: Mapping[str, Any], validated: bool = True, claim: bytes | None = None
    ) -> None:
        """Append records as this process's ingress does (``validated``), or as another
        producer would, with ``claim`` as their `VALIDATED_HEADER` if given."""
        records = []
        for event in events:
            value = json.dumps(event).encode()
            headers: tuple[tuple[str, bytes], ...] = ((EVENT_ID_HEADER, event["id"].encode()),)
            if validated:
                headers += ((VALIDATED_HEADER, proof(event["type"], value)),)
            elif claim is not None:
                headers += ((VALIDATED_HEADER, claim),)
            records.append(NewRecord(event["subject"], value, headers))
        await self.log.append(EVENTS_TOPIC, records)

    async def __aenter__(self) -> Harness:
        self.consumer.assign(dict(self.log.committed))
        self._task = asyncio.create_task(self.consumer.run(self.log))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.consumer.stop(grace=1)

    async def settled(self, count: int, within: float = 5.0) -> list[Settlement]:
        """Wait until ``count`` outcomes are settled; the settlements so far."""
        await until(lambda: sum(len(s.outcomes) for s in self.log.settlements) >= count, within)
        return self.log.settlements

    def end(self, partition: int) -> int:
        return len(self.log.topics.get(EVENTS_TOPIC, {}).get(partition, []))


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Return once ``condition()`` holds; fail the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.001)


def _partition(log: MemoryLog, subject: str) -> int:
    from platypus.partitioning import partition_for

    return partition_for(subject, log.partitions)


async def test_each_key_is_delivered_in_order_and_every_offset_is_committed(
    tmp_path: Path,
) -> None:
    events = [closed_won(f"006{k:015d}", amount=n) for n in range(1, 6) for k in range(4)]
    async with Harness(tmp_path, ONE_STEP) as run:
        await run.append(*events)
        await run.settled(len(events))

    by_key: dict[str, list[int]] = {}
    for _, key, payload in run.vendor.calls:
        by_key.setdefault(key, []).append(payload["amount"])
    assert by_key == {f"006{k:015d}": [1, 2, 3, 4, 5] for k in range(4)}
    assert run.log.committed == {p: run.end(p) for p in range(run.log.partitions)}


async def test_the_commit_never_passes_an_event_still_in_flight(tmp_path: Path) -> None:
    slow, fast = "006000000000000001", "006000000000000009"
    run = Harness(tmp_path, ONE_STEP, partitions=1)  # both keys in one partition
    run.vendor.held[slow] = asyncio.Event()
    async with run:
        await run.append(closed_won(slow), closed_won(fast), closed_won(fast))
        await run.settled(2)  # the two fast ones
        assert run.log.committed[0] == 0  # offset 0 (slow) is still in flight
        run.vendor.held[slow].set()
        await run.settled(3)
    assert run.log.committed[0] == 3


async def test_the_ledger_is_read_once_per_batch_not_once_per_event(tmp_path: Path) -> None:
    events = [closed_won() for _ in range(50)]
    run = Harness(tmp_path, ONE_STEP)
    await run.append(*events)  # one batch waiting before the consumer starts
    async with run:
        await run.settled(50)
    assert run.ledger.reads == 1


async def test_steps_the_ledger_has_are_not_sent_again(tmp_path: Path) -> None:
    flow = _flow(tmp_path, TWO_STEPS)
    event = closed_won()
    run = Harness(tmp_path, TWO_STEPS)
    await run.ledger.record([Delivery(event["id"], "orders", "post", flow.version, {"n": 7}, 1)])
    async with run:
        await run.append(event)
        await run.settled(1)
    # Only the second step went out, with the first step's remembered result.
    assert run.vendor.calls == [("upsert", event["subject"], {"posted": 7})]


async def test_a_guarded_write_is_in_the_ledger_before_the_event_settles(tmp_path: Path) -> None:
    event = closed_won()
    run = Harness(tmp_path, TWO_STEPS)
    ledger_at_confirm: dict[Any, Any] = {}
    original = run.vendor.call

    async def watching(request: Request) -> Any:
        if request.step == "confirm":
            ledger_at_confirm.update(run.ledger.entries)
        return await original(request)

    run.vendor.call = watching  # type: ignore[method-assign]
    async with run:
        await run.append(event)
        [settlement] = await run.settled(1)
    # The non-idempotent post was recorded at once; the rest with the outcome, as one
    # row for the whole flow.
    assert list(ledger_at_confirm) == [(event["id"], "orders", "post")]
    assert [d.step for d in settlement.deliveries] == [FLOW_DELIVERED]
    assert set(run.ledger.entries) == {(event["id"], "orders", s) for s in ("post", "")}


async def test_a_flow_delivered_before_is_not_run_again_while_its_version_is_the_same(
    tmp_path: Path,
) -> None:
    event = closed_won()
    run = Harness(tmp_path, TWO_STEPS)
    version = _flow(tmp_path, TWO_STEPS).version
    await run.ledger.record([Delivery(event["id"], "orders", "", "x", version, 2)])
    async with run:
        await run.append(event)
        [settlement] = await run.settled(1)
    assert run.vendor.calls == []
    assert [(o.status, o.detail) for o in settlement.outcomes] == [
        ("delivered", "delivered before")
    ]


async def test_a_flow_changed_since_it_delivered_runs_again(tmp_path: Path) -> None:
    event = closed_won()
    run = Harness(tmp_path, TWO_STEPS)
    await run.ledger.record([Delivery(event["id"], "orders", "", "x", "an-older-version", 2)])
    async with run:
        await run.append(event)
        await run.settled(1)
    assert [call[0] for call in run.vendor.calls] == ["post", "upsert"]


async def test_steps_delivered_before_a_failing_step_are_kept_for_the_replay(
    tmp_path: Path,
) -> None:
    three = (
        TWO_STEPS
        + """  - name: last
    to: vendor.upsert
    payload: {n: steps.confirm.n}
"""
    )
    event = closed_won()
    run = Harness(tmp_path, three)
    original = run.vendor.call

    async def failing_last(request: Request) -> Any:
        if request.step == "last":
            raise PermanentError("no", status_code=400)
        return await original(request)

    run.vendor.call = failing_last  # type: ignore[method-assign]
    async with run:
        await run.append(event)
        [settlement] = await run.settled(1)
    assert [o.status for o in settlement.outcomes] == ["dead_lettered"]
    assert [d.step for d in settlement.deliveries] == ["confirm"]  # post: in the ledger already
    assert set(run.ledger.entries) == {(event["id"], "orders", s) for s in ("post", "confirm")}


async def test_a_second_copy_of_an_event_in_the_same_batch_is_not_posted_twice(
    tmp_path: Path,
) -> None:
    event = closed_won()
    run = Harness(tmp_path, TWO_STEPS)
    await run.append(event, event)  # a producer's retry: the same event twice
    async with run:
        await run.settled(2)
    assert [call[0] for call in run.vendor.calls] == ["post", "upsert"]
    assert run.ledger.reads == 1


async def test_a_failure_settles_its_dead_letter_with_the_outcome(tmp_path: Path) -> None:
    bad = closed_won()
    run = Harness(tmp_path, ONE_STEP)
    run.vendor.failing.add(bad["subject"])
    async with run:
        await run.append(bad, closed_won())
        await run.settled(2)
    statuses = sorted(o.status for s in run.log.settlements for o in s.outcomes)
    assert statuses == ["dead_lettered", "delivered"]
    [letter] = run.log.read(DEAD_LETTER_TOPIC)
    assert json.loads(letter.value) == bad


async def test_an_unvalidated_record_is_validated_and_dead_lettered_when_invalid(
    tmp_path: Path,
) -> None:
    broken = closed_won(amount="lots")  # type: ignore[arg-type]
    run = Harness(tmp_path, ONE_STEP)
    async with run:
        await run.append(broken, validated=False)
        [settlement] = await run.settled(1)
    assert [o.status for o in settlement.outcomes] == ["dead_lettered"]
    assert run.vendor.calls == []


@pytest.mark.parametrize(
    "claim",
    [b"sales.opportunity.closed_won.v1", b"sales.opportunity.closed_won.v1;AAAAAAAAAAAAAAAAAAAAAA"],
    ids=["type-only", "forged-proof"],
)
async def test_a_record_claiming_validation_without_proof_is_validated(
    tmp_path: Path, claim: bytes
) -> None:
    broken = closed_won(currency="euro")
    run = Harness(tmp_path, ONE_STEP)
    async with run:
        await run.append(broken, validated=False, claim=claim)
        [settlement] = await run.settled(1)
    assert [o.status for o in settlement.outcomes] == ["dead_lettered"]
    assert run.vendor.calls == []


async def test_a_record_this_process_validated_is_not_validated_again(tmp_path: Path) -> None:
    # Invalid now, but proven validated by this process (a schema tightened since,
    # say): the proof is what spares the second validation, and it holds.
    checked_before = closed_won(currency="euro")
    run = Harness(tmp_path, ONE_STEP)
    async with run:
        await run.append(checked_before, validated=True)
        [settlement] = await run.settled(1)
    assert [o.status for o in settlement.outcomes] == ["delivered"]


async def test_a_proof_is_for_one_value_only(tmp_path: Path) -> None:
    valid, broken = closed_won(), closed_won(currency="euro")
    stolen = proof(valid["type"], json.dumps(valid).encode())  # copied onto another record
    run = Harness(tmp_path, ONE_STEP)
    async with run:
        await run.append(broken, validated=False, claim=stolen)
        [settlement] = await run.settled(1)
    assert [o.status for o in settlement.outcomes] == ["dead_lettered"]


class FailingSink(MemoryLog):
    async def settle(self, settlement: Settlement) -> None:
        raise OSError("disk full")


async def test_a_settlement_that_fails_stops_the_consumer_and_commits_nothing(
    tmp_path: Path,
) -> None:
    run = Harness(tmp_path, ONE_STEP)
    sink = FailingSink(run.log.partitions)
    run.consumer = Consumer(run.processor, sink, max_in_flight=10)
    await run.log.append(EVENTS_TOPIC, [NewRecord("k", json.dumps(closed_won("k")).encode())])
    async with run:
        await until(lambda: not run.consumer.healthy)
    assert isinstance(run.consumer.problem(), OSError)
    assert sink.committed == dict.fromkeys(range(run.log.partitions), 0)


async def test_a_revoked_partition_settles_what_was_running_but_commits_nothing(
    tmp_path: Path,
) -> None:
    key = "006000000000000001"
    run = Harness(tmp_path, ONE_STEP)
    run.vendor.held[key] = asyncio.Event()
    partition = _partition(run.log, key)
    async with run:
        await run.append(closed_won(key))
        await until(lambda: run.consumer.in_flight > 0)
        run.consumer.revoke([partition])  # another worker owns it now
        run.vendor.held[key].set()
        [settlement] = await run.settled(1)
    assert settlement.commits == {}
    assert run.log.committed[partition] == 0


class ScriptedSource:
    """A source that yields the given batches, then waits forever."""

    def __init__(self, batches: Sequence[Sequence[Any]]) -> None:
        self._batches = list(batches)

    async def batches(self) -> AsyncIterator[Sequence[Any]]:
        for batch in self._batches:
            yield batch
        await asyncio.Event().wait()


@pytest.mark.parametrize("size", [1, 7, 64])
async def test_settlements_group_what_finished_and_commit_in_offset_order(
    tmp_path: Path, size: int
) -> None:
    run = Harness(tmp_path, ONE_STEP, partitions=1)
    await run.append(*(closed_won(f"006{k:015d}") for k in range(size)))
    records = run.log.read(EVENTS_TOPIC)
    consumer = Consumer(run.processor, run.log, max_in_flight=100)
    consumer.assign({0: 0})
    task = asyncio.create_task(consumer.run(ScriptedSource([records])))
    try:
        await run.settled(size)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    commits = [s.commits[0] for s in run.log.settlements if 0 in s.commits]
    assert commits == sorted(commits)
    assert commits[-1] == size
