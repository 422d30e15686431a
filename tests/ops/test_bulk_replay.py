"""Bulk replay delivers each failed event once, in its key's order, whatever runs beside it.

Every case runs on SQLite and on PostgreSQL (see conftest.py). The vendor is the
loopback fake vendor behind the http adapter, declared to honour
``Idempotency-Key`` (as Zuora, NetSuite and Salesforce upserts do): the runtime
then sends every copy of a replay to the wire, so a replay appended twice shows
up at the vendor as a second request instead of being hidden by the delivery
ledger. Each case checks, at the vendor, one accepted request per event and each
key's events in their original order, and, in the log, one replayed record per
entry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters.http import HttpAdapter, HttpSettings
from platypus.ops import (
    Actor,
    FailureFilter,
    FailureStatus,
    FailureStore,
    Indexer,
    LeaseLostError,
    LogOwnerLock,
    Operations,
    Replay,
    StoreLease,
)
from platypus.ops.replays import dispatch_replays
from platypus.records import EVENTS_TOPIC, REPLAY_OF_HEADER
from platypus.runtime.embedded import EventLog, LogReplayTarget, Platypus
from tests.fakes.vendor import FakeVendor
from tests.ops.test_store import new_failure, record
from tests.support import SEQUENCE_FLOW, closed_won, opportunity_id, running

KEYS = 12
PER_KEY = 5
REJECT = (400, {"error": "ACCOUNT_CLOSED", "message": "the account is closed"})
ANA = Actor.operator("ana")
BEN = Actor.operator("ben")
ROOT = Path(__file__).resolve().parents[2]


class _HonoursIdempotencyKey(HttpAdapter):
    """The http adapter for a vendor that de-duplicates writes by ``Idempotency-Key``."""

    actions: ClassVar = {
        name: dataclasses.replace(action, idempotent=True)
        for name, action in HttpAdapter.actions.items()
    }


def _events(keys: Sequence[int]) -> list[dict[str, Any]]:
    # Key after key within each sequence number, so keys interleave in the log.
    return [
        closed_won(opportunity_id(900 + k), amount=seq, event_id=f"evt-{k}-{seq}")
        for seq in range(1, PER_KEY + 1)
        for k in keys
    ]


@asynccontextmanager
async def _app(root: Path, vendor: FakeVendor, store_url: str) -> AsyncIterator[Platypus]:
    adapter = _HonoursIdempotencyKey(
        HttpSettings(base_url=vendor.url, timeout=5), connection="vendor"
    )
    async with running(
        root,
        vendor.url,
        {"orders": SEQUENCE_FLOW},
        adapters={"vendor": adapter},
        failures_store=store_url,
    ) as app:
        yield app


async def _ingest(app: Platypus, events: Sequence[dict[str, Any]]) -> None:
    import json

    result = await app.ingress.accept(
        json.dumps(list(events)).encode(), "application/cloudevents-batch+json"
    )
    assert result.status == 202, result.body
    await app.drain()


async def _until(
    done: Callable[[], bool], *indexers: Indexer, within: float = 60.0, what: str = ""
) -> None:
    """Wait for ``done()``, running a pass of each of ``indexers`` in between."""
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what or done}"
        for indexer in indexers:
            await indexer.index_once()
        await asyncio.sleep(0.05)


def _count(store: FailureStore, status: FailureStatus) -> int:
    return store.count(FailureFilter(status=(status,)))


def _assert_delivered_once_in_key_order(vendor: FakeVendor, keys: Sequence[int]) -> None:
    accepted = [r for r in vendor.requests_to("/orders") if r.status == 201]
    received: dict[str, list[int]] = defaultdict(list)
    for request in accepted:
        received[request.json["key"]].append(int(request.json["seq"]))
    expected = {opportunity_id(900 + k): list(range(1, PER_KEY + 1)) for k in keys}
    assert dict(received) == expected
    copies = Counter(r.headers["idempotency-key"] for r in accepted)
    assert set(copies.values()) == {1}


def _assert_appended_once(log: EventLog, ids: Sequence[int]) -> None:
    copies = Counter(
        int(found) for r in log.read(EVENTS_TOPIC) if (found := r.header(REPLAY_OF_HEADER))
    )
    assert sorted(copies) == sorted(ids)
    assert set(copies.values()) == {1}


async def test_a_bulk_replay_racing_a_second_indexer_delivers_each_event_once_in_key_order(
    tmp_path: Path, fake_vendor: FakeVendor, store_url: str
) -> None:
    keys = range(KEYS)
    events = _events(keys)
    fake_vendor.script("/orders", [REJECT] * len(events))
    async with _app(tmp_path, fake_vendor, store_url) as app:
        # Beside the app's own indexer: a second one, and operations that own the
        # log, on the same store (as the platypus.ops docs wire them).
        second = Indexer(
            app.log,
            FailureStore(store_url),
            target=LogReplayTarget(app.log),
            flows=app.flows,
            quiet=True,
        )
        ops = Operations(second.store, app.schemas, target=LogReplayTarget(app.log))
        racing: asyncio.Task[None] | None = None
        try:
            await _ingest(app, events)
            store = app.failures
            await _until(lambda: _count(store, FailureStatus.OPEN) == len(events), second)

            async def race() -> None:
                while True:
                    await second.index_once()
                    await asyncio.sleep(0)

            racing = asyncio.create_task(race())
            report = await ops.replay(FailureFilter(flow="orders"), ANA)
            await _until(
                lambda: _count(store, FailureStatus.RESOLVED) == len(events),
                what="every entry resolved",
            )
        finally:
            if racing is not None:
                racing.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await racing
            second.close()
            second.store.close()
        _assert_delivered_once_in_key_order(fake_vendor, keys)
        _assert_appended_once(app.log, report.ids)
        job = store.replay_job(report.job)
        assert job is not None
        assert (job.total, job.dispatched, job.done) == (len(events), len(events), True)
        assert job.statuses[FailureStatus.RESOLVED] == len(events)


async def test_two_concurrent_bulk_replays_over_overlapping_queries_deliver_each_event_once(
    tmp_path: Path, fake_vendor: FakeVendor, store_url: str
) -> None:
    early, late = range(KEYS // 2), range(KEYS // 2, KEYS)
    events = _events(early) + _events(late)
    fake_vendor.script("/orders", [REJECT] * len(events))
    async with _app(tmp_path, fake_vendor, store_url) as app:
        store = app.failures
        await _ingest(app, _events(early))
        await _until(lambda: _count(store, FailureStatus.OPEN) == len(events) // 2)
        split = datetime.now(UTC)
        await asyncio.sleep(0.01)
        await _ingest(app, _events(late))
        await _until(lambda: _count(store, FailureStatus.OPEN) == len(events))

        # Two operators at once, each with operations that own the log and a store
        # connection pool of their own: ana replays everything, ben the later half.
        stores = [FailureStore(store_url), FailureStore(store_url)]
        try:
            target = LogReplayTarget(app.log)
            ana = Operations(stores[0], app.schemas, target=target, dispatch_chunk=7)
            ben = Operations(stores[1], app.schemas, target=target, dispatch_chunk=7)
            everything = FailureFilter(flow="orders")
            later = FailureFilter(flow="orders", since=split)
            assert stores[1].count(dataclasses.replace(later, status=(FailureStatus.OPEN,))) == (
                len(events) // 2
            )
            first, second = await asyncio.gather(
                ana.replay(everything, ANA), ben.replay(later, BEN)
            )
        finally:
            for extra in stores:
                extra.close()
        await _until(
            lambda: _count(store, FailureStatus.RESOLVED) == len(events),
            what="every entry resolved",
        )
        _assert_delivered_once_in_key_order(fake_vendor, [*early, *late])
        assert not set(first.ids) & set(second.ids)
        every = [e.id for e in store.search(limit=None)]
        assert sorted(first.ids + second.ids) == sorted(every)
        _assert_appended_once(app.log, every)
        jobs = [store.replay_job(first.job), store.replay_job(second.job)]
        assert [j.total for j in jobs if j is not None] == [len(first.ids), len(second.ids)]
        assert all(j is not None and j.done for j in jobs)


async def test_a_replay_job_killed_with_sigkill_is_resumed_with_each_event_delivered_once(
    tmp_path: Path, fake_vendor: FakeVendor, store_url: str
) -> None:
    keys = range(KEYS)
    events = _events(keys)
    fake_vendor.script("/orders", [REJECT] * len(events))
    async with _app(tmp_path, fake_vendor, store_url) as app:
        await _ingest(app, events)
        await _until(lambda: _count(app.failures, FailureStatus.OPEN) == len(events))

    # The replay runs in a process of its own (as `platypus dlq replay` with no app
    # up): 20 entries per append; it stops right after its second append reached
    # the log, before the store recorded it, and is killed there.
    await asyncio.to_thread(_replay_killed_after_its_second_append, tmp_path, store_url, 20)

    store = FailureStore(store_url)
    try:
        # Killed half-way: 40 entries appended, only the first 20 known to the store.
        [job_id] = {row.detail.get("job") for row in store.audit_log() if row.action == "replay"}
        ids = store.replay_job_ids(job_id)
        assert len(ids) == len(events)
        assert store.undispatched(ids) == len(events) - 20
        log = EventLog(tmp_path / "data", partitions=4)
        with log:
            assert sum(1 for r in log.read(EVENTS_TOPIC) if r.header(REPLAY_OF_HEADER)) == 40
    finally:
        store.close()

    # The app starts again: its indexer takes the dead process's lease at once and
    # finishes the job; the vendor has been fixed meanwhile.
    async with _app(tmp_path, fake_vendor, store_url) as app:
        await _until(
            lambda: _count(app.failures, FailureStatus.RESOLVED) == len(events),
            within=30,
            what="the resumed job resolved",
        )
        _assert_delivered_once_in_key_order(fake_vendor, keys)
        _assert_appended_once(app.log, ids)
        job = app.failures.replay_job(job_id)
        assert job is not None
        assert (job.actor, job.total, job.dispatched, job.done) == (
            "night-shift",
            len(events),
            len(events),
            True,
        )


def _replay_killed_after_its_second_append(root: Path, store_url: str, chunk: int) -> None:
    marker = root / "appended-twice"
    command = [sys.executable, "-m", "tests.ops.replay_child", str(root / "data"), store_url]
    child = subprocess.Popen(
        [*command, str(marker), str(chunk)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the replay job never reached its second append"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL


class _Pauses(LogReplayTarget):
    """Appends, then waits before answering: the store has not recorded the append yet."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(log)
        self.appended = asyncio.Event()
        self.go_on = asyncio.Event()

    async def send(self, replays: Sequence[Replay]) -> list[tuple[int, int]]:
        placed = await super().send(replays)
        self.appended.set()
        await self.go_on.wait()
        return placed


async def test_a_dispatcher_whose_lease_expired_mid_append_is_fenced_and_nothing_is_appended_twice(
    tmp_path: Path, store: FailureStore
) -> None:
    record(
        store,
        *(
            new_failure(n, business_key=opportunity_id(n % 4), source_offset=n, dlq_offset=n)
            for n in range(1, 31)
        ),
    )
    ids = [e.id for e in store.search(limit=None)]
    store.request_replays(ids, allowed=[FailureStatus.OPEN])
    log = EventLog(tmp_path / "log", partitions=4)
    log.open()
    try:
        slow = StoreLease(store, ttl=0.3)
        assert slow.acquire() is not None
        paused = _Pauses(log)
        stalled = asyncio.create_task(dispatch_replays(paused, store, slow, chunk=10))
        await asyncio.wait_for(paused.appended.wait(), 10)
        await asyncio.sleep(0.5)  # its lease expires while it is stalled

        other = StoreLease(store)
        assert other.acquire() is not None
        assert await dispatch_replays(LogReplayTarget(log), store, other) == 30
        paused.go_on.set()
        with pytest.raises(LeaseLostError):
            await stalled  # its store write is refused: the lease moved on

        _assert_appended_once(log, ids)
        where = {
            int(r.header(REPLAY_OF_HEADER) or 0): (r.partition, r.offset)
            for r in log.read(EVENTS_TOPIC)
        }
        for entry in store.search(limit=None):
            assert (entry.replay_partition, entry.replay_offset) == where[entry.id]
    finally:
        log.close()


def test_overlapping_replay_requests_at_once_take_each_entry_once(store: FailureStore) -> None:
    record(store, *(new_failure(n) for n in range(1, 201)))
    ids = [e.id for e in store.search(limit=None, newest_first=False)]
    start = threading.Barrier(2)
    marked: dict[str, list[int]] = {}

    def ask(name: str, wanted: list[int]) -> None:
        start.wait()
        marked[name] = store.request_replays(
            wanted, allowed=[FailureStatus.OPEN], job=(name, name, {})
        )

    threads = [
        threading.Thread(target=ask, args=("a", ids[:150])),
        threading.Thread(target=ask, args=("b", ids[50:][::-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(marked["a"]) & set(marked["b"])
    assert sorted(marked["a"] + marked["b"]) == sorted(ids)
    assert {e.replays for e in store.search(limit=None)} == {1}
    totals = [job.total for job in (store.replay_job("a"), store.replay_job("b")) if job]
    assert sum(totals) == len(ids)


def test_the_indexer_lease_has_one_holder_and_frees_when_released_expired_or_its_process_died(
    store: FailureStore,
) -> None:
    first, second = StoreLease(store, ttl=30), StoreLease(store, ttl=30)
    held = first.acquire()
    assert held is not None
    assert second.acquire() is None
    assert first.acquire() is not None  # renewing keeps the token
    first.release()
    taken = second.acquire()
    assert taken is not None
    assert taken.token > held.token

    # A holder of this host whose process is gone frees it at once.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.release_lease(taken)
    assert (
        store.acquire_lease("platypus.indexer", "ghost", host=_host(), pid=gone.pid, ttl=30)
        is not None
    )
    assert second.acquire() is not None

    # An expired lease is free for anyone.
    brief = StoreLease(store, "brief", ttl=0.05)
    assert brief.acquire() is not None
    time.sleep(0.1)
    assert StoreLease(store, "brief").acquire() is not None


def _host() -> str:
    from platypus.ops.lease import this_host

    return this_host()


async def test_an_app_started_while_another_process_held_the_log_lock_appends_replays_later(
    tmp_path: Path, fake_vendor: FakeVendor, store_url: str
) -> None:
    events = _events([0])
    fake_vendor.script("/orders", [REJECT] * len(events))
    cli = LogOwnerLock(tmp_path / "data")
    assert cli.acquire()  # a `platypus dlq` command holds it as the app starts
    try:
        async with _app(tmp_path, fake_vendor, store_url) as app:
            await _ingest(app, events)
            await asyncio.sleep(0.3)  # the app's indexer tried the lock, and waits
            assert _count(app.failures, FailureStatus.OPEN) == 0
            cli.release()
            await _until(lambda: _count(app.failures, FailureStatus.OPEN) == len(events))
            report = await app.operations.replay(FailureFilter(flow="orders"), ANA)
            assert report.queued
            await _until(lambda: _count(app.failures, FailureStatus.RESOLVED) == len(events))
            _assert_delivered_once_in_key_order(fake_vendor, [0])
    finally:
        cli.release()


def test_a_chunk_of_pending_replays_never_splits_the_entries_of_one_event(
    store: FailureStore,
) -> None:
    # evt-2 failed in two flows: its two entries share one replayed record, so a
    # chunk ending on one of them takes the other too (every pass groups alike).
    record(store, new_failure(1), new_failure(2), new_failure(2, flow="invoices", dlq_offset=3))
    ids = [e.id for e in store.search(limit=None)]
    store.request_replays(ids, allowed=[FailureStatus.OPEN])
    chunk = store.pending_replays(2)
    assert [(e.event_id, e.flow) for e in chunk] == [
        ("evt-1", "orders"),
        ("evt-2", "orders"),
        ("evt-2", "invoices"),
    ]
