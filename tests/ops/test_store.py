"""The failed-event store, on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from platypus.ops.store import FailureFilter, FailureStatus, FailureStore, NewFailure
from platypus.records import DEAD_LETTER_TOPIC

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def new_failure(n: int, **changes: Any) -> NewFailure:
    values: dict[str, Any] = {
        "event_id": f"evt-{n}",
        "event_type": "sales.opportunity.closed_won.v1",
        "flow": "orders",
        "flow_version": "v1hash",
        "step": "create_order",
        "connection": "vendor",
        "business_key": f"006{n:015d}",
        "error_class": "platypus.exceptions.PermanentError",
        "error_message": f"POST /orders answered 400 Bad Request: account 001{n:015d} is closed",
        "retryable": False,
        "status_code": 400,
        "vendor_code": "CLOSED",
        "errors": [],
        "headers": {"platypus.flow": "orders"},
        "attempts": 1,
        "first_failure": T0 + timedelta(minutes=n),
        "last_failure": T0 + timedelta(minutes=n),
        "source_topic": "platypus.events",
        "source_partition": 0,
        "source_offset": n,
        "dlq_partition": 0,
        "dlq_offset": n,
        "payload": b'{"id": "evt-%d"}' % n,
    }
    values.update(changes)
    return NewFailure(**values)


def record(store: FailureStore, *items: NewFailure) -> tuple[int, int]:
    positions = {i.dlq_partition: i.dlq_offset + 1 for i in items}
    return store.record_failures(items, topic=DEAD_LETTER_TOPIC, positions=positions)


def test_a_dead_letter_becomes_an_open_entry_with_every_field(store: FailureStore) -> None:
    item = new_failure(1, errors=[{"path": "data.amount", "message": "too big"}])
    assert record(store, item) == (1, 0)

    [entry] = store.search()
    assert entry.status is FailureStatus.OPEN
    assert (entry.event_id, entry.flow, entry.step, entry.connection) == (
        "evt-1",
        "orders",
        "create_order",
        "vendor",
    )
    assert entry.business_key == item.business_key
    assert entry.first_failure == item.first_failure
    assert entry.first_failure.tzinfo is not None
    assert entry.errors == [{"path": "data.amount", "message": "too big"}]
    assert entry.payload == item.payload
    assert entry.fingerprint == item.fingerprint
    assert (entry.status_code, entry.vendor_code, entry.attempts) == (400, "CLOSED", 1)
    assert store.positions(DEAD_LETTER_TOPIC) == {0: 2}


def test_indexing_the_same_dead_letter_twice_is_a_no_op(store: FailureStore) -> None:
    item = new_failure(1)
    record(store, item)
    assert record(store, item) == (0, 0)

    [entry] = store.search()
    assert (entry.attempts, entry.failure_count) == (1, 1)


def test_a_later_dead_letter_of_the_same_event_and_flow_updates_its_entry(
    store: FailureStore,
) -> None:
    record(store, new_failure(1))
    [entry] = store.search()
    store.request_replays([entry.id], allowed=[FailureStatus.OPEN])
    again = new_failure(
        1,
        attempts=3,
        dlq_offset=7,
        source_offset=40,
        error_message="POST /orders answered 503 Service Unavailable",
        status_code=503,
        last_failure=T0 + timedelta(hours=1),
        first_failure=T0 + timedelta(minutes=59),
    )
    assert record(store, again) == (0, 1)

    [updated] = store.search()
    assert updated.id == entry.id
    assert updated.status is FailureStatus.OPEN
    assert (updated.attempts, updated.failure_count, updated.replays) == (4, 2, 1)
    assert updated.last_failure == T0 + timedelta(hours=1)
    assert updated.first_failure == entry.first_failure
    assert updated.error_message.endswith("503 Service Unavailable")
    assert updated.fingerprint == again.fingerprint != entry.fingerprint
    # The original position is kept: it orders replays of the key.
    assert updated.source_offset == 1


def test_the_same_event_failing_in_two_flows_has_two_entries(store: FailureStore) -> None:
    record(store, new_failure(1), new_failure(1, flow="invoices", dlq_offset=2))
    assert sorted(e.flow for e in store.search()) == ["invoices", "orders"]


def test_events_without_an_id_get_an_entry_per_dead_letter(store: FailureStore) -> None:
    record(store, new_failure(1, event_id="", flow=""), new_failure(2, event_id="", flow=""))
    assert store.count() == 2


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (FailureFilter(flow="invoices"), [3]),
        (FailureFilter(step="notify"), [2]),
        (FailureFilter(event_type="finance.invoice.posted.v1"), [3]),
        (FailureFilter(error_class="platypus.exceptions.RetryableError"), [2]),
        (FailureFilter(business_key="006000000000000001"), [1]),
        (FailureFilter(text="SERVICE unavail"), [2]),
        (FailureFilter(text="100%"), []),
        (FailureFilter(since=T0 + timedelta(minutes=2)), [2, 3]),
        (FailureFilter(until=T0 + timedelta(minutes=2)), [1]),
        (FailureFilter(flow="orders", text="closed"), [1]),
        (FailureFilter(status=(FailureStatus.OPEN,)), [1, 2, 3]),
        (FailureFilter(status=(FailureStatus.DISCARDED,)), []),
    ],
)
def test_filters_select_entries(
    store: FailureStore, where: FailureFilter, expected: list[int]
) -> None:
    record(
        store,
        new_failure(1),
        new_failure(
            2,
            step="notify",
            error_class="platypus.exceptions.RetryableError",
            error_message="POST /notify answered 503 Service Unavailable",
        ),
        new_failure(3, flow="invoices", event_type="finance.invoice.posted.v1"),
    )
    found = sorted(int(e.event_id.split("-")[1]) for e in store.search(where))
    assert found == expected
    assert store.count(where) == len(expected)


def test_fingerprint_filter_groups_the_same_failure_of_different_events(
    store: FailureStore,
) -> None:
    record(store, *(new_failure(n) for n in range(1, 6)), new_failure(6, step="notify"))
    [first] = store.search(FailureFilter(business_key="006000000000000001"))
    assert store.count(FailureFilter(fingerprint=first.fingerprint)) == 5


def test_search_pages_newest_failure_first(store: FailureStore) -> None:
    record(store, *(new_failure(n) for n in range(1, 6)))
    page = store.search(limit=2, offset=1)
    assert [e.event_id for e in page] == ["evt-4", "evt-3"]


def test_replays_are_pending_in_source_order_until_marked_appended(
    store: FailureStore,
) -> None:
    record(
        store,
        new_failure(1, source_partition=1, source_offset=5),
        new_failure(2, source_partition=0, source_offset=9),
        new_failure(3, source_partition=1, source_offset=2),
    )
    ids = {e.event_id: e.id for e in store.search()}
    marked = store.request_replays(list(ids.values()), allowed=[FailureStatus.OPEN])
    assert sorted(marked) == sorted(ids.values())
    assert [e.event_id for e in store.pending_replays()] == ["evt-2", "evt-3", "evt-1"]
    assert store.undispatched(marked) == 3

    store.mark_replayed({ids["evt-2"]: (0, 100)})
    assert [e.event_id for e in store.pending_replays()] == ["evt-3", "evt-1"]
    [waiting] = store.awaiting_outcome()
    assert (waiting.replay_partition, waiting.replay_offset) == (0, 100)


def test_only_entries_in_an_allowed_status_change(store: FailureStore) -> None:
    record(store, new_failure(1), new_failure(2))
    one, two = (e.id for e in store.search(newest_first=False))
    assert store.discard([one], reason="duplicate", allowed=[FailureStatus.OPEN]) == [one]
    assert store.request_replays([one, two], allowed=[FailureStatus.OPEN]) == [two]
    assert store.discard([one, two], reason="x", allowed=[FailureStatus.OPEN]) == []
    entry = store.get(one)
    assert entry is not None
    assert (entry.status, entry.status_reason) == (FailureStatus.DISCARDED, "duplicate")


def test_settling_resolves_only_replaying_entries_and_audits(store: FailureStore) -> None:
    record(store, new_failure(1), new_failure(2))
    one, two = (e.id for e in store.search(newest_first=False))
    store.request_replays([one], allowed=[FailureStatus.OPEN])
    settled = store.settle(
        {one: (FailureStatus.RESOLVED, "replay delivered"), two: (FailureStatus.RESOLVED, "")}
    )
    assert settled == 1
    assert store.counts_by_status() == {
        FailureStatus.OPEN: 1,
        FailureStatus.REPLAYING: 0,
        FailureStatus.RESOLVED: 1,
        FailureStatus.DISCARDED: 0,
    }
    [row] = store.audit_log()
    assert (row.actor, row.action, row.count, row.detail["ids"]) == (
        "platypus",
        "resolve",
        1,
        [one],
    )


def test_audit_rows_are_kept_newest_first(store: FailureStore) -> None:
    store.audit("ana", "replay", {"filter": {"flow": "orders"}}, 12)
    store.audit("ben", "discard", {"ids": [1], "reason": "test data"}, 1)
    rows = store.audit_log()
    assert [(r.actor, r.action, r.count) for r in rows] == [
        ("ben", "discard", 1),
        ("ana", "replay", 12),
    ]
    assert rows[1].detail == {"filter": {"flow": "orders"}}
    assert rows[0].at >= rows[1].at
    assert rows[0].at.tzinfo is not None


def test_the_indexer_position_only_moves_forward(store: FailureStore) -> None:
    store.record_failures([], topic=DEAD_LETTER_TOPIC, positions={0: 5, 1: 3})
    store.record_failures([], topic=DEAD_LETTER_TOPIC, positions={0: 2, 1: 4})
    assert store.positions(DEAD_LETTER_TOPIC) == {0: 5, 1: 4}


def test_create_is_idempotent(store: FailureStore) -> None:
    record(store, new_failure(1))
    store.create()
    assert store.count() == 1


def test_entries_compare_as_frozen_values(store: FailureStore) -> None:
    record(store, new_failure(1))
    [entry] = store.search()
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.status = FailureStatus.RESOLVED  # type: ignore[misc]
