"""What every Kafka peer does with one record: validate, map, deliver to the sink.

The same pydantic model (`bench._opportunity.load_typed_model`), the same
mapping (`map_model`, which gives what the flow's mapping gives Platypus), the
same in-process sink (`bench._tally`). A peer differs from another only in
how it gets the records to `handle` and commits them.

Where to read from comes from the environment (the orchestrator,
`bench/kafka_peers.py`, sets it): ``BENCH_BOOTSTRAP`` (host:port),
``BENCH_TOPIC``, ``BENCH_GROUP`` (a fresh consumer group per run),
``BENCH_PARTITIONS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench._opportunity import load_typed_model, map_model
from bench._tally import Tally

Typed = load_typed_model()
TALLY = Tally.from_env()


def handle(raw: bytes) -> None:
    """One record's value: validated, mapped, delivered."""
    event = Typed.model_validate_json(raw)
    payload = map_model(event)
    TALLY.delivered(payload["external_id"], event.id, payload["sent_at"])  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Source:
    """Where the peer reads from."""

    bootstrap: str
    topic: str
    group: str
    partitions: int

    @classmethod
    def from_env(cls) -> Source:
        return cls(
            bootstrap=os.environ["BENCH_BOOTSTRAP"],
            topic=os.environ["BENCH_TOPIC"],
            group=os.environ["BENCH_GROUP"],
            partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
        )
