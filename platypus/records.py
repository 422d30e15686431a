"""The records that flow between the parts of Platypus, and the names they carry.

Everything that moves events around speaks in these terms, whichever runtime
stores them: the ingress, webhooks, pollers and replays append `NewRecord`s to
the events topic; a runtime reads them back as `Record`s, runs them through
their flows, and settles what came of them as `Outcome`s, dead letters and
`Delivery` rows. Nothing here does I/O.

Topics are named ``<prefix>.<kind>``: ``platypus.events`` by default (the
embedded runtime always uses the default prefix; on Kafka it is
``kafka.topic_prefix``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Final, NamedTuple

import orjson

from platypus._frozen import quick_init

__all__ = [
    "CONSUMER_GROUP",
    "CONTENT_TYPE_HEADER",
    "DEAD_LETTER",
    "DEAD_LETTER_TOPIC",
    "DEFAULT_PREFIX",
    "EVENTS",
    "EVENTS_TOPIC",
    "EVENT_ID_HEADER",
    "FLOW_DELIVERED",
    "OUTCOMES",
    "REJECTED",
    "REPLAY_OF_HEADER",
    "VALIDATED_HEADER",
    "Delivery",
    "DeliveryKey",
    "Headers",
    "NewRecord",
    "Outcome",
    "Placement",
    "Record",
    "decode_outcome",
    "encode_outcome",
    "replay_of",
    "topic_name",
]

# -- topics --------------------------------------------------------------------

EVENTS: Final = "events"
"""Accepted CloudEvents, keyed by their ordering key (``subject`` by default)."""
DEAD_LETTER: Final = "dead-letter"
"""Events that could not be delivered: the original record with headers saying why."""
REJECTED: Final = "rejected"
"""Request bodies the ingress refused, with the reasons."""
OUTCOMES: Final = "outcomes"
"""How each event ended in each flow."""

DEFAULT_PREFIX: Final = "platypus"


def topic_name(kind: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The full name of topic ``kind`` (`EVENTS`, `DEAD_LETTER`, ...) under ``prefix``."""
    return f"{prefix}.{kind}"


EVENTS_TOPIC: Final = topic_name(EVENTS)
DEAD_LETTER_TOPIC: Final = topic_name(DEAD_LETTER)

CONSUMER_GROUP: Final = "platypus"
"""The consumer group of the workers (embedded: the only one; Kafka: ``kafka.group_id``)."""

# -- headers -------------------------------------------------------------------

EVENT_ID_HEADER: Final = "platypus.event.id"
"""Set by the ingress: the event's id, so runtimes know it without parsing the value."""

VALIDATED_HEADER: Final = "platypus.validated"
"""Set by the ingress on records whose data it validated against the schema of their type."""

REPLAY_OF_HEADER: Final = "platypus.replay-of"
"""On a replayed record: the id of the failed-event entry it replays."""

CONTENT_TYPE_HEADER: Final = "content-type"
"""The record's content type: ``application/cloudevents+json`` in structured mode."""

Headers = tuple[tuple[str, bytes], ...]


def _header(headers: Headers, name: str) -> str | None:
    found = None
    for key, value in headers:
        if key == name:
            found = value.decode("utf-8", "replace")
    return found


def replay_of(headers: Headers) -> int | None:
    """The failed-event entry a record is a replay of (its ``platypus.replay-of``), or None."""
    found = _header(headers, REPLAY_OF_HEADER)
    if found is None or not found.isascii() or not found.isdigit() or len(found) > 18:
        return None
    return int(found)


# -- records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append to a topic.

    ``dedupe`` = (source, id) lets a runtime drop a second copy of an event it
    has already accepted (the ingress sets it; replays do not).
    """

    key: str
    value: bytes
    headers: Headers = ()
    dedupe: tuple[str, str] | None = None

    def header(self, name: str) -> str | None:
        """The text value of header ``name`` (the last one if repeated), if present."""
        return _header(self.headers, name)


class Placement(NamedTuple):
    """Where an appended record landed."""

    partition: int
    offset: int


@quick_init  # one per event read (platypus._frozen)
@dataclass(frozen=True, slots=True)
class Record:
    """A record read from a topic, with where it was read from."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: Headers = ()
    timestamp: float = 0.0

    def header(self, name: str) -> str | None:
        """The text value of header ``name`` (the last one if repeated), if present."""
        return _header(self.headers, name)


DeliveryKey = tuple[str, str, str]
"""(event id, flow, step): what a delivered step is remembered by."""


FLOW_DELIVERED: Final = ""
"""The step of a `Delivery` that stands for a whole flow delivered (its result is the
flow's version): a replay or a restart does not run that flow again."""


class Delivery(NamedTuple):
    """A step delivered for an event: the vendor took the write and answered ``result``.

    With step `FLOW_DELIVERED`, every step of the flow was delivered.
    """

    event_id: str
    flow: str
    step: str
    flow_version: str
    result: Any
    attempts: int

    @property
    def key(self) -> DeliveryKey:
        """(event id, flow, step)."""
        return (self.event_id, self.flow, self.step)


@quick_init  # one per outcome settled (platypus._frozen)
@dataclass(frozen=True, slots=True)
class Outcome:
    """How the event in one record ended in one flow.

    ``flow`` is empty when no flow consumed the event (or it could not be read).
    ``status`` is delivered, filtered, dead_lettered or discarded.
    """

    topic: str
    partition: int
    offset: int
    flow: str
    event_id: str
    event_type: str
    key: str
    status: str
    flow_version: str = ""
    step: str = ""
    detail: str = ""
    attempts: int = 0
    appended_at: float = 0.0
    """When the record was appended to its topic (epoch seconds; 0 when unknown)."""
    replay_of: int | None = None
    """The failed-event entry the record is a replay of (`replay_of`), if it is one."""


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))
_outcome_values = attrgetter(*_OUTCOME_FIELDS)


def encode_outcome(outcome: Outcome, settled_at: float) -> bytes:
    """The value of an outcomes-topic record: the outcome as JSON, with when it settled."""
    # Every field is a str, int, float or None: a flat dict, not `asdict`'s deep copy
    # (~9x the time, once per outcome of every event the Kafka worker settles).
    value = dict(zip(_OUTCOME_FIELDS, _outcome_values(outcome), strict=True))
    value["settled_at"] = settled_at
    return orjson.dumps(value)


def decode_outcome(value: bytes) -> tuple[Outcome, float]:
    """An outcomes-topic record's outcome and settle time; `ValueError` if it is not one."""
    raw = json.loads(value)
    if not isinstance(raw, dict):
        raise ValueError("an outcome record is a JSON object")
    settled_at = float(raw.pop("settled_at", 0.0))
    try:
        return Outcome(**raw), settled_at
    except TypeError as exc:
        raise ValueError(f"not an outcome record: {exc}") from None
