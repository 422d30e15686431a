"""CPU microseconds per event of the event codec: the ingress and the consumer's read.

::

    python bench/ingress_codec.py [--events N] [--batch B] [--rounds R] [--smoke]

What a CloudEvent costs where the bytes are turned into a validated event and
back, measured as process CPU time (not wall time: the machine is shared), the best and the
median of ``--rounds`` rounds, the same seeded events every run:

* **ingress, batch**: `Ingress.accept` of ``application/cloudevents-batch+json``
  bodies of ``--batch`` events (parse, envelope and schema validation, the
  stored bytes), into a sink that keeps nothing: everything `POST /events` does
  with a body but the durable append;
* **ingress, single**: the same, one ``application/cloudevents+json`` event a body;
* **consumer read**: `Processor.process` of each stored record, with no flow
  (the record decoded, validated if need be, routed, filtered): what a
  runtime's consumer spends on an event before its flows run. Once for the
  records as this process's ingress wrote them (the embedded runtime), once for
  the same records without its ``platypus.validated`` header (another producer,
  or ``platypus web`` seen from a Kafka worker).

Then the steps alone, one library against another, on the same events:
parsing (``json.loads``, orjson, jiter with duplicate keys caught), validating
(dict then model as before, pydantic from bytes per event, pydantic from bytes
per batch in one call) and writing (``json.dumps``, orjson).

``--smoke`` runs a few events once and checks that every event was accepted
and read back, so the script cannot rot (it prints figures, but they mean
nothing at that size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import jiter
import orjson
from pydantic import Field, TypeAdapter, create_model

from bench._opportunity import generate as closed_won_events
from platypus.config import IngressSettings, ProjectConfig
from platypus.envelope import CloudEvent
from platypus.ingress import Ingress
from platypus.logging import configure_logging
from platypus.records import EVENTS_TOPIC, NewRecord, Placement, Record
from platypus.runtime.memory import MemoryLedger
from platypus.runtime.wiring import build_pipeline
from platypus.schema_registry import SchemaRegistry

EVENT_TYPE = "sales.opportunity.closed_won.v1"
BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"


def generate(count: int, seed: int = 7) -> list[bytes]:
    """``count`` closed-won events of about 750 bytes, compact JSON, seeded.

    The events of ``bench/throughput.py`` (`bench._opportunity.generate`), each of
    its own opportunity.
    """
    return [raw for _, raw in closed_won_events(count, count, seed)]


class _NullSink:
    """An `EventSink` that keeps what it is given in memory, for the consumer pass."""

    def __init__(self) -> None:
        self.kept: list[NewRecord] = []
        self.rejected: list[str] = []

    async def append(self, topic: str, records: Sequence[NewRecord]) -> list[Placement | None]:
        self.kept.extend(records)
        return [Placement(0, i) for i in range(len(records))]

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        self.rejected.append(reason)
        return len(self.rejected)


class Suite:
    """Named measurements, run in turn round after round (so load changes hit all alike).

    Each figure is process CPU time per event: the best round, and the median.
    On a shared machine the best round is the steadier of the two (others'
    load only ever adds time); compare runs by it.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.cases: list[tuple[str, Callable[[], object], int]] = []

    def add(self, what: str, run: Callable[[], object], events: int) -> None:
        self.cases.append((what, run, events))

    def run(self, rounds: int) -> dict[str, float]:
        samples: dict[str, list[float]] = {what: [] for what, _, _ in self.cases}
        for _ in range(rounds):
            for what, run, events in self.cases:
                started = time.process_time()
                run()
                samples[what].append((time.process_time() - started) / events * 1e6)
        print(f"{self.title}:{'best':>55} {'median':>8}")
        out = {}
        for what, values in samples.items():
            out[what] = min(values)
            median = statistics.median(values)
            print(f"  {what:<52} {out[what]:8.1f} {median:8.1f} us/event", flush=True)
        return out


def pipeline_suite(events: list[bytes], batch: int) -> tuple[Suite, Callable[[], tuple[int, int]]]:
    """The three end-to-end figures, and a check: (accepted, read back) of the last round."""
    schemas = SchemaRegistry.default()
    settings = IngressSettings(max_batch=max(batch, 1), max_body_bytes=64 * 1024 * 1024)
    bodies = [b"[" + b",".join(events[i : i + batch]) + b"]" for i in range(0, len(events), batch)]
    loop = asyncio.new_event_loop()
    sink = _NullSink()

    def accept_batches() -> None:
        sink.kept.clear()
        ingress = Ingress(sink, schemas, settings, EVENTS_TOPIC)
        for body in bodies:
            loop.run_until_complete(ingress.accept(body, BATCH))

    def accept_singles() -> None:
        ingress = Ingress(_NullSink(), schemas, settings, EVENTS_TOPIC)
        for raw in events:
            loop.run_until_complete(ingress.accept(raw, SINGLE))

    accept_batches()  # what the consumer pass reads: the records as the ingress wrote them
    records = [
        Record(EVENTS_TOPIC, 0, i, item.key, item.value, item.headers)
        for i, item in enumerate(sink.kept)
    ]
    # No flow: every event is decoded, validated, routed and filtered, nothing is sent.
    processor = build_pipeline(
        ProjectConfig(), [], ledger=MemoryLedger(), schemas=schemas
    ).processor
    # The same records as another producer (or another process) would have written them.
    foreign = [
        Record(r.topic, r.partition, r.offset, r.key, r.value, r.headers[:1]) for r in records
    ]
    read = [0]

    def consume(these: list[Record]) -> None:
        read[0] = 0

        async def all_records() -> None:
            for record in these:
                result = await processor.process(record)
                read[0] += result.outcomes[0].status == "filtered"

        loop.run_until_complete(all_records())

    suite = Suite("end to end")
    suite.add("ingress, batch (accept, no append)", accept_batches, len(events))
    suite.add("ingress, single event a body", accept_singles, len(events))
    suite.add("consumer read, validated by this process", lambda: consume(records), len(records))
    suite.add("consumer read, from another producer", lambda: consume(foreign), len(records))
    return suite, lambda: (len(sink.kept), read[0])


def steps_suite(events: list[bytes], batch: int) -> Suite:
    """Each step alone, with each candidate library."""
    schemas = SchemaRegistry.default()
    data_model = schemas.get(EVENT_TYPE).model
    parsed = [json.loads(raw) for raw in events]
    parse = jiter.from_json

    def jiter_strict() -> None:
        for raw in events:
            parse(raw, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys")

    def dict_then_model() -> None:
        for event in parsed:
            data_model.model_validate(CloudEvent.model_validate(event).data)

    tag: Any = Literal[EVENT_TYPE]
    typed: Any = create_model(
        "_Typed", __base__=CloudEvent, type=(tag, ...), data=(data_model, ...)
    )
    one: TypeAdapter[Any] = TypeAdapter(typed)
    # A discriminated union of one type: the shape a batch of many types would take.
    union: TypeAdapter[Any] = TypeAdapter(list[Annotated[typed, Field(discriminator="type")]])
    bodies = [b"[" + b",".join(events[i : i + batch]) + b"]" for i in range(0, len(events), batch)]

    def json_dumps() -> None:
        for event in parsed:
            json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()

    n = len(events)
    suite = Suite("steps")
    suite.add("parse: json.loads", lambda: [json.loads(r) for r in events], n)
    suite.add("parse: orjson.loads", lambda: [orjson.loads(r) for r in events], n)
    suite.add("parse: jiter, duplicate keys caught", jiter_strict, n)
    suite.add("validate: dict, then envelope, then data (lax)", dict_then_model, n)
    suite.add(
        "validate: from bytes, per event (strict)",
        lambda: [one.validate_json(r, strict=True) for r in events],
        n,
    )
    suite.add(
        "validate: from bytes, one call per batch (strict)",
        lambda: [union.validate_json(b, strict=True) for b in bodies],
        n,
    )
    suite.add("write: json.dumps", json_dumps, n)
    suite.add("write: orjson.dumps", lambda: [orjson.dumps(e) for e in parsed], n)
    return suite


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if an event was refused or not read back."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--smoke", action="store_true", help="a few events, once: checks only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.batch, args.rounds = 20, 10, 1
    # As `platypus run` logs by default (info), to nowhere: debug lines would dominate.
    devnull = open(os.devnull, "w")  # noqa: SIM115 -- open for the whole run
    configure_logging(json=True, level="info", stream=devnull)
    events = generate(args.events)
    size = sum(map(len, events)) / len(events)
    print(
        f"{len(events)} events of {size:.0f} bytes, batches of {args.batch}, {args.rounds} rounds"
    )
    pipeline, check = pipeline_suite(events, args.batch)
    pipeline.run(args.rounds)
    accepted, read = check()
    steps_suite(events, args.batch).run(args.rounds)
    if accepted != len(events) or read != len(events):
        print(f"FAILED: {accepted} accepted, {read} read back of {len(events)}", file=sys.stderr)
        return 1
    print(f"every event accepted and read back as stored ({accepted} of {len(events)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
