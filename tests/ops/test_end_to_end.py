"""Failed events through a real flow against the loopback fake vendor: index, replay, resolve."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from platypus.keys import OrderingKeys
from platypus.ops import (
    Actor,
    FailureFilter,
    FailureStatus,
    FailureStore,
    Indexer,
    InvalidReplayError,
    OperationError,
    Operations,
    Permission,
    PermissionDeniedError,
)
from platypus.ops.store import Failure
from platypus.records import (
    DEAD_LETTER_TOPIC,
    EVENT_ID_HEADER,
    EVENTS_TOPIC,
    REPLAY_OF_HEADER,
    VALIDATED_HEADER,
)
from platypus.redaction import MASK
from platypus.runtime.embedded import LogReplayTarget, Platypus
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, ingest, running

REJECT = (400, {"error": "INVALID_FIELD", "message": "account 001000000000000099 is closed"})
ANA = Actor.operator("ana")


class Ops:
    """A running app with its indexer and operations, as the app will wire them."""

    def __init__(self, app: Platypus, store: FailureStore) -> None:
        self.app = app
        self.store = store
        keys = app.config.ordering
        target = LogReplayTarget(app.log)
        self.indexer = Indexer(app.log, store, target=target, flows=app.flows)
        self.ops = Operations(store, app.schemas, target=target, keys=keys)

    async def settle(self) -> None:
        """Run the flows until every event has an outcome, then index."""
        await self.app.drain()
        await self.indexer.index_once()
        await self.app.drain()
        await self.indexer.index_once()

    def only(self) -> Failure:
        [entry] = self.store.search()
        return entry


@asynccontextmanager
async def operating(
    root: Path, vendor: FakeVendor, store_url: str | None = None, **overrides: object
) -> AsyncIterator[Ops]:
    store = FailureStore(store_url or f"sqlite:///{root / 'failures.db'}")
    store.create()
    try:
        async with running(root, vendor.url, {"orders": ORDER_FLOW}, **overrides) as app:
            ops = Ops(app, store)
            try:
                yield ops
            finally:
                ops.indexer.close()
    finally:
        store.close()


async def test_a_dead_letter_is_indexed_replayed_after_the_fix_and_resolved(
    tmp_path: Path, fake_vendor: FakeVendor, store_url: str
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with operating(tmp_path, fake_vendor, store_url) as ops:
        event = closed_won(amount=2500)
        await ingest(ops.app, event)
        await ops.settle()

        [entry] = ops.store.search(
            FailureFilter(flow="orders", status=(FailureStatus.OPEN,), text="is CLOSED")
        )
        assert (entry.event_id, entry.step, entry.connection) == (
            event["id"],
            "create_order",
            "vendor",
        )
        assert (entry.status_code, entry.vendor_code) == (400, "INVALID_FIELD")
        assert entry.business_key == event["subject"]
        [letter] = ops.app.log.read(DEAD_LETTER_TOPIC)
        assert entry.payload == letter.value

        # The vendor is fixed: its script was used up, it now answers 201.
        report = await ops.ops.replay([entry.id], ANA)
        assert (report.ids, report.dispatched) == ([entry.id], 1)
        assert ops.store.get(entry.id).status is FailureStatus.REPLAYING  # type: ignore[union-attr]
        replayed = ops.app.log.read(EVENTS_TOPIC)[-1]
        assert replayed.key == event["subject"]
        assert replayed.header(REPLAY_OF_HEADER) == str(entry.id)
        assert replayed.header(EVENT_ID_HEADER) == event["id"]
        assert replayed.header(VALIDATED_HEADER) == event["type"]
        await ops.settle()

        resolved = ops.only()
        assert resolved.status is FailureStatus.RESOLVED
        assert resolved.resolved_at is not None
        assert len(fake_vendor.requests_to("/orders")) == 2
        assert fake_vendor.requests_to("/orders")[-1].json["external_id"] == event["subject"]
        actions = [(row.actor, row.action, row.count) for row in ops.store.audit_log()]
        assert actions == [("platypus", "resolve", 1), ("ana", "replay", 1)]


async def test_a_replay_that_fails_again_updates_the_same_entry(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT, REJECT])
    async with operating(tmp_path, fake_vendor) as ops:
        await ingest(ops.app, closed_won())
        await ops.settle()
        first = ops.only()

        await ops.ops.replay([first.id], ANA)
        await ops.settle()

        again = ops.only()
        assert again.id == first.id
        assert again.status is FailureStatus.OPEN
        assert (again.attempts, again.failure_count, again.replays) == (2, 2, 1)
        assert again.last_failure >= first.last_failure
        assert again.source_offset == first.source_offset
        assert len(ops.app.log.read(DEAD_LETTER_TOPIC)) == 2

        # Fixed now: the second replay resolves the one entry.
        await ops.ops.replay([first.id], ANA)
        await ops.settle()
        assert ops.only().status is FailureStatus.RESOLVED


async def test_bulk_replay_keeps_each_keys_order_and_reports_progress(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    keys = [f"006{n:015d}" for n in range(900, 905)]
    events = [closed_won(key, amount=1000 + i) for i in range(3) for key in keys]
    fake_vendor.script("/orders", [REJECT] * len(events))
    async with operating(tmp_path, fake_vendor) as ops:
        await ingest(ops.app, *events)
        await ops.settle()
        assert ops.store.count(FailureFilter(status=(FailureStatus.OPEN,))) == 15
        fake_vendor.reset()

        seen: list[int] = []
        report = await ops.ops.replay(FailureFilter(flow="orders"), ANA, progress=seen.append)
        assert sum(seen) == report.dispatched == 15
        await ops.settle()

        assert ops.store.count(FailureFilter(status=(FailureStatus.RESOLVED,))) == 15
        for key in keys:
            amounts = [
                r.json["amount"]
                for r in fake_vendor.requests_to("/orders")
                if r.json["external_id"] == key
            ]
            assert amounts == [1000, 1001, 1002]
        [audit] = [row for row in ops.store.audit_log() if row.action == "replay"]
        assert audit.count == 15
        assert audit.detail["filter"] == {"flow": "orders"}
        assert len(audit.detail["ids"]) == 15


async def test_discard_needs_a_reason_and_is_audited(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with operating(tmp_path, fake_vendor) as ops:
        await ingest(ops.app, closed_won())
        await ops.settle()
        entry = ops.only()

        with pytest.raises(OperationError, match="say why"):
            ops.ops.discard([entry.id], ANA, reason=" ")
        assert ops.ops.discard([entry.id], ANA, reason="test order, never real") == [entry.id]

        discarded = ops.only()
        assert (discarded.status, discarded.status_reason) == (
            FailureStatus.DISCARDED,
            "test order, never real",
        )
        [row] = ops.store.audit_log()
        assert (row.actor, row.action, row.count) == ("ana", "discard", 1)
        assert row.detail == {"ids": [entry.id], "reason": "test order, never real"}
        with pytest.raises(OperationError, match="only open entries"):
            ops.ops.discard([entry.id], ANA, reason="again")


async def test_an_edited_event_is_refused_when_invalid_and_replayed_when_valid(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with operating(tmp_path, fake_vendor) as ops:
        event = closed_won(amount=2500)
        await ingest(ops.app, event)
        await ops.settle()
        entry = ops.only()

        bad = {**event, "data": {**event["data"], "amount": "lots"}}
        with pytest.raises(InvalidReplayError, match=r"data\.amount") as refused:
            await ops.ops.replay([entry.id], ANA, payload=json.dumps(bad).encode())
        assert refused.value.errors[0]["path"] == "data.amount"
        moved = {**event, "subject": "006000000000000777"}
        with pytest.raises(InvalidReplayError, match="subject"):
            await ops.ops.replay([entry.id], ANA, payload=json.dumps(moved).encode())
        with pytest.raises(InvalidReplayError, match="not JSON"):
            await ops.ops.replay([entry.id], ANA, payload=b"{nope")
        assert ops.only().status is FailureStatus.OPEN
        assert ops.app.log.read(EVENTS_TOPIC)[-1].header(REPLAY_OF_HEADER) is None

        good = {**event, "data": {**event["data"], "amount": 3100}}
        await ops.ops.replay([entry.id], ANA, payload=json.dumps(good).encode())
        await ops.settle()

        assert ops.only().status is FailureStatus.RESOLVED
        assert fake_vendor.requests_to("/orders")[-1].json["amount"] == 3100
        actions = [row.action for row in ops.store.audit_log()]
        assert actions == [
            "resolve",
            "replay",
            "replay.rejected",
            "replay.rejected",
            "replay.rejected",
        ]
        replay_row = ops.store.audit_log()[1]
        assert replay_row.detail["edited"] is True


async def test_a_replay_keeps_the_ordering_key_of_its_type_and_an_edit_may_not_move_it(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    keys = OrderingKeys.model_validate({"sales.opportunity.closed_won.v1": "data.account_id"})
    fake_vendor.script("/orders", [REJECT])
    async with operating(tmp_path, fake_vendor, ordering=keys) as ops:
        event = closed_won(amount=2500, account_id="001ACME00000001")
        await ingest(ops.app, event)
        await ops.settle()
        entry = ops.only()
        assert entry.business_key == "001ACME00000001"

        other_account = {**event, "data": {**event["data"], "account_id": "001OTHER0000002"}}
        with pytest.raises(InvalidReplayError, match="ordering key '001OTHER0000002'"):
            await ops.ops.replay([entry.id], ANA, payload=json.dumps(other_account).encode())
        # The subject is not the key of this type: changing it keeps the order.
        renamed = {**event, "subject": "006000000000000777"}
        await ops.ops.replay([entry.id], ANA, payload=json.dumps(renamed).encode())
        replayed = ops.app.log.read(EVENTS_TOPIC)[-1]
        await ops.settle()

    assert replayed.key == "001ACME00000001"
    assert ops.only().status is FailureStatus.RESOLVED


async def test_show_masks_personal_data_unless_revealed_by_someone_allowed(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with operating(tmp_path, fake_vendor) as ops:
        await ingest(ops.app, closed_won(owner_email="grace.hopper@example.com"))
        await ops.settle()
        entry = ops.only()

        shown = ops.ops.show(entry.id, Actor("viewer"))
        assert shown["masked"] is True
        assert shown["event"]["data"]["owner_email"] == MASK
        assert "grace.hopper" not in json.dumps(shown)
        assert shown["event"]["data"]["account_name"] == "Acme Pty Ltd"
        assert ops.store.audit_log() == []

        with pytest.raises(PermissionDeniedError):
            ops.ops.show(entry.id, Actor("viewer"), reveal=True)
        revealer = Actor("dpo", frozenset({Permission.REVEAL}))
        revealed = ops.ops.show(entry.id, revealer, reveal=True)
        assert revealed["event"]["data"]["owner_email"] == "grace.hopper@example.com"
        actions = [(row.actor, row.action) for row in ops.store.audit_log()]
        assert actions == [("dpo", "reveal"), ("viewer", "reveal.denied")]


async def test_resolved_and_replaying_entries_cannot_be_replayed_again(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT])
    async with operating(tmp_path, fake_vendor) as ops:
        await ingest(ops.app, closed_won())
        await ops.settle()
        entry = ops.only()
        await ops.ops.replay([entry.id], ANA)
        with pytest.raises(InvalidReplayError, match="only open or discarded"):
            await ops.ops.replay([entry.id], ANA)
        await ops.settle()
        with pytest.raises(InvalidReplayError, match="only open or discarded"):
            await ops.ops.replay([entry.id], ANA)
        with pytest.raises(PermissionDeniedError):
            await ops.ops.replay([entry.id], Actor("viewer", frozenset()))


async def test_indexing_is_idempotent_across_indexers(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT, REJECT])
    async with operating(tmp_path, fake_vendor) as ops:
        await ingest(ops.app, closed_won(), closed_won())
        await ops.settle()
        before = [(e.id, e.attempts) for e in ops.store.search()]

        # A fresh indexer from position 0 (as after the position row was lost).
        ops.store.record_failures([], topic=DEAD_LETTER_TOPIC, positions={})
        with ops.store.begin() as conn:
            from platypus.ops.store import indexer_position

            conn.execute(indexer_position.delete())
        fresh = Indexer(ops.app.log, ops.store, target=LogReplayTarget(ops.app.log))
        report = await fresh.index_once()
        fresh.close()

        assert (report.read, report.created, report.updated) == (2, 0, 0)
        assert [(e.id, e.attempts) for e in ops.store.search()] == before
