"""An entry's timeline on the detail page: what happened to it, in the order it happened."""

from __future__ import annotations

from platypus.ops.store import FailureStatus, FailureStore
from platypus.ops.web.views import timeline
from tests.ops.test_store import new_failure, record


def _whats(store: FailureStore, entry_id: int) -> list[str]:
    entry = store.get(entry_id)
    assert entry is not None
    return [moment.what for moment in timeline(store, entry)]


def test_a_discarded_entry_shows_its_discard_and_is_never_called_resolved(
    store: FailureStore,
) -> None:
    record(store, new_failure(1))
    [entry] = store.search()
    store.discard(
        [entry.id],
        reason="duplicate order",
        allowed=(FailureStatus.OPEN,),
        audit_row=("olga", "discard", {"ids": [entry.id]}),
    )

    assert _whats(store, entry.id) == [
        "first failed at step create_order",
        "discard: duplicate order",
    ]


def test_a_discard_without_its_audit_row_is_still_shown_as_a_discard(store: FailureStore) -> None:
    record(store, new_failure(1))
    [entry] = store.search()
    store.discard([entry.id], reason="not needed", allowed=(FailureStatus.OPEN,))

    assert _whats(store, entry.id)[-1] == "discarded: not needed"


def test_a_discarded_entry_replayed_and_delivered_reads_discard_replay_resolve(
    store: FailureStore,
) -> None:
    record(store, new_failure(1))
    [entry] = store.search()
    store.discard(
        [entry.id],
        reason="later",
        allowed=(FailureStatus.OPEN,),
        audit_row=("olga", "discard", {"ids": [entry.id]}),
    )
    store.request_replays(
        [entry.id],
        allowed=(FailureStatus.DISCARDED,),
        audit_row=("olga", "replay", {"ids": [entry.id]}),
    )
    store.settle({entry.id: (FailureStatus.RESOLVED, "replay delivered")})

    assert _whats(store, entry.id) == [
        "first failed at step create_order",
        "discard: later",
        "replay",
        "resolve",
    ]


def test_a_resolved_entry_without_its_audit_row_says_resolved(store: FailureStore) -> None:
    record(store, new_failure(1))
    [entry] = store.search()
    store.request_replays([entry.id], allowed=(FailureStatus.OPEN,))
    store.settle({entry.id: (FailureStatus.RESOLVED, "replay delivered")})
    assert _whats(store, entry.id)[-1] == "resolve"  # settle() audits it
    # Its audit row beyond the rows read (audit_rows=0): the entry's own fields say it.
    resolved = store.get(entry.id)
    assert resolved is not None
    assert [m.what for m in timeline(store, resolved, audit_rows=0)][-1] == "resolved"
