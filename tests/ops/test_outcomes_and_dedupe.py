"""The store's outcome history and its shared ingest de-duplication, on SQLite and PostgreSQL;
dead-letter records from other tools read tolerantly."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from platypus import deadletter as dl
from platypus.ops.dedupe import SharedDedupe
from platypus.ops.indexer import parse_dead_letter
from platypus.ops.store import FailureStore, OutcomeRow, ingest_dedupe
from platypus.ops.web.views import timeline
from platypus.records import Record
from tests.ops.test_store import new_failure, record

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OUTCOMES = "platypus.outcomes"


def outcome(offset: int, status: str = "delivered", **changes: object) -> OutcomeRow:
    values: dict[str, object] = {
        "event_id": f"evt-{offset}",
        "event_type": "sales.opportunity.closed_won.v1",
        "flow": "orders",
        "flow_version": "v1hash",
        "step": "",
        "status": status,
        "detail": "",
        "attempts": 1,
        "business_key": f"key-{offset % 3}",
        "topic": "platypus.events",
        "partition": 0,
        "offset": offset,
        "settled_at": T0 + timedelta(seconds=offset, milliseconds=250),
        "appended_at": T0 + timedelta(seconds=offset),
    }
    values.update(changes)
    return OutcomeRow(**values)  # type: ignore[arg-type]


def test_outcomes_are_kept_once_with_their_position_and_answer_by_event_and_key(
    store: FailureStore,
) -> None:
    rows = [outcome(i) for i in range(6)]
    assert store.record_outcomes(rows[:4], topic=OUTCOMES, positions={0: 4}) == 4
    # Indexed again after a crash before the position moved: nothing doubles.
    assert store.record_outcomes(rows, topic=OUTCOMES, positions={0: 6}) == 2
    assert store.positions(OUTCOMES) == {0: 6}

    [one] = store.outcome_history(event_id="evt-2")
    assert (one.status, one.flow, one.offset) == ("delivered", "orders", 2)
    assert one.to_dict()["duration"] == 0.25
    assert [o.offset for o in store.outcome_history(business_key="key-1")] == [1, 4]
    assert store.outcome_status("platypus.events", 0, 3, "orders") == "delivered"
    assert store.outcome_status("platypus.events", 0, 3, "other") is None


def test_the_history_is_bounded_and_forgets_the_oldest_first(store: FailureStore) -> None:
    store.record_outcomes([outcome(i) for i in range(10)], topic=OUTCOMES, positions={}, keep=4)
    with store.engine.connect() as conn:
        left = sorted(conn.execute(sa.text('SELECT "offset" FROM outcomes')).scalars())
    assert left == [6, 7, 8, 9]


def test_an_entrys_timeline_shows_every_outcome_of_its_event_successes_included(
    store: FailureStore,
) -> None:
    record(store, new_failure(1))
    [entry] = store.search()
    store.record_outcomes(
        [
            outcome(1, "dead_lettered", step="create_order"),
            outcome(7, "delivered", event_id="evt-1", attempts=2),
            outcome(8, "filtered", event_id="evt-1", flow="audit"),
        ],
        topic=OUTCOMES,
        positions={},
    )
    whats = [m.what for m in timeline(store, entry)]
    assert any(
        w.startswith("dead-lettered in orders/create_order (version v1hash), 1 attempt,")
        for w in whats
    )
    assert any(w.startswith("delivered in orders (version v1hash), 2 attempts") for w in whats)
    assert any(w.startswith("filtered in audit") for w in whats)


async def test_a_claimed_event_is_a_duplicate_for_every_later_claim(store: FailureStore) -> None:
    a, b = SharedDedupe(store), SharedDedupe(store)
    key = ("/salesforce", "evt-1")
    assert await a.claim([key, ("/salesforce", "evt-2")]) == {key, ("/salesforce", "evt-2")}
    await a.finish([key, ("/salesforce", "evt-2")])
    assert await b.claim([key, ("/salesforce", "evt-3")]) == {("/salesforce", "evt-3")}


async def test_a_pending_claim_is_waited_for_and_a_released_one_can_be_claimed_again(
    store: FailureStore,
) -> None:
    a, b = SharedDedupe(store), SharedDedupe(store, poll=0.01)
    key = ("/s", "evt-1")
    assert await a.claim([key]) == {key}
    waiting = asyncio.create_task(b.claim([key]))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # another replica is producing it
    await a.release([key])  # its produce failed: the retry may have it
    assert await asyncio.wait_for(waiting, 10) == {key}


async def test_a_claim_left_pending_by_a_dead_replica_is_taken_over_when_stale(
    store: FailureStore,
) -> None:
    key = ("/s", "evt-1")
    assert await SharedDedupe(store).claim([key]) == {key}
    # The claimer died before producing: its claim grows old.
    with store.engine.begin() as conn:
        conn.execute(ingest_dedupe.update().values(seen_at=T0))
    assert await SharedDedupe(store, stale_after=5).claim([key]) == {key}


async def test_webhook_delivery_ids_are_shared_with_their_body_digest(store: FailureStore) -> None:
    a, b = SharedDedupe(store), SharedDedupe(store)
    assert await a.check("hooks", "d-1", "aa") == "new"
    await a.remember("hooks", "d-1", "aa")
    assert await b.check("hooks", "d-1", "aa") == "same"
    assert await b.check("hooks", "d-1", "bb") == "different"
    # Events and delivery ids do not share a namespace.
    assert await b.claim([("hooks", "d-1")]) == {("hooks", "d-1")}


@pytest.mark.parametrize(
    ("value", "headers", "note"),
    [
        (b"\x00 not json", [], "its value is not a JSON CloudEvent"),
        (b"{}", [(dl.EVENT_ID, b"e"), ("x", b"\xff\xfe")], "header x is not UTF-8"),
        (b"{}", [(dl.ERRORS, b"{nope")], "header platypus.errors is not JSON"),
    ],
)
def test_a_dead_letter_from_another_tool_is_read_with_a_note(
    value: bytes, headers: list[tuple[str, bytes]], note: str
) -> None:
    found = parse_dead_letter(Record("x.dead-letter", 2, 9, "k", value, tuple(headers), 0.0))
    assert "without Platypus's headers" in found.error_message
    assert note in found.error_message
    assert (found.dlq_partition, found.dlq_offset, found.payload) == (2, 9, value)
    assert found.entry_key  # an entry can be made of it


def test_a_foreign_cloudevent_lends_its_id_and_type_to_the_entry() -> None:
    value = json.dumps({"id": "evt-9", "type": "a.b.v1"}).encode()
    found = parse_dead_letter(Record("x.dead-letter", 0, 1, "k", value, (), 0.0))
    assert (found.event_id, found.event_type, found.error_class) == ("evt-9", "a.b.v1", "unknown")
