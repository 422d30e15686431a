"""Which record is a replay of which failed-event entry: the ``platypus.replay-of`` header,
carried into each outcome (and from there into the store's outcome history)."""

from __future__ import annotations

import json

from platypus.records import (
    REPLAY_OF_HEADER,
    Outcome,
    decode_outcome,
    encode_outcome,
    replay_of,
)


def test_the_replay_of_header_names_the_entry() -> None:
    assert replay_of(((REPLAY_OF_HEADER, b"42"),)) == 42
    assert replay_of((("other", b"1"),)) is None


def test_a_replay_of_header_that_is_not_an_entry_id_is_ignored() -> None:
    for value in (b"", b"-1", b"4x", b"\xff", "٣".encode(), b"9" * 40):
        assert replay_of(((REPLAY_OF_HEADER, value),)) is None, value


def test_an_outcome_carries_replay_of_through_the_outcomes_topic() -> None:
    outcome = Outcome("events", 1, 7, "orders", "evt-1", "t.v1", "k", "delivered", replay_of=42)
    decoded, settled_at = decode_outcome(encode_outcome(outcome, 12.5))
    assert (decoded.replay_of, settled_at) == (42, 12.5)


def test_an_outcome_written_before_replay_of_existed_still_decodes() -> None:
    old = Outcome("events", 1, 7, "orders", "evt-1", "t.v1", "k", "delivered")
    raw = json.loads(encode_outcome(old, 1.0))
    del raw["replay_of"]
    decoded, _ = decode_outcome(json.dumps(raw).encode())
    assert decoded.replay_of is None
