"""Bulk replay of failed events: dead-letter, index, fix, replay all, until all are resolved.

::

    python bench/replay.py [--events 10000] [--per-key 5] [--store URL]
                           [--durability full|normal] [--smoke]

One run:

1. a flow whose vendor (an in-process adapter) rejects every event with a
   permanent error: ``--events`` events over ``events / per-key`` keys, each
   key's events numbered 0, 1, 2, ... are ingested and all dead-lettered;
2. the app's indexer takes the dead letters into the failed-event store (SQLite
   in the data directory, or ``--store`` such as ``postgresql+psycopg://...``);
3. the vendor is fixed and every open entry is replayed in one bulk replay;
4. the app runs the replays while its indexer settles entries, until every
   entry is ``resolved``.

Beside the app's own indexer, a second `Indexer` and an `Operations` that owns
the log run against the same store and log throughout, as the
``platypus.ops`` docs wire them: the store's indexer lease must keep them from
appending a replay twice. (The vendor's action is idempotent, so the delivery
ledger would not hide a second copy.)

It prints the time of each phase and replayed events per second (from the
bulk replay to the last entry resolved), and fails unless every key's events
reached the vendor in their original order, each exactly once after the fix,
and each entry's replay was appended exactly once. Not a test: run it on
demand; ``--smoke`` is a run of seconds that CI makes (tests/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platypus.adapter import Adapter, AdapterRegistry, Request
from platypus.config import ProjectConfig
from platypus.exceptions import PermanentError
from platypus.flow.model import FlowSpec
from platypus.logging import configure_logging
from platypus.ops import (
    Actor,
    FailureFilter,
    FailureStatus,
    FailureStore,
    Indexer,
    Operations,
)
from platypus.ops.store import default_store_url
from platypus.records import EVENTS_TOPIC, REPLAY_OF_HEADER
from platypus.runtime.embedded import LogReplayTarget, Platypus
from platypus.runtime.embedded.log import Durability

EVENT_TYPE = "sales.opportunity.closed_won.v1"
BATCH_TYPE = "application/cloudevents-batch+json"

FLOW = {
    "name": "bench-replay",
    "consumes": [EVENT_TYPE],
    "steps": [
        {
            "name": "create_order",
            "to": "vendor.send",
            "payload": {"key": "data.opportunity_id", "seq": "data.line_items[0].quantity"},
        }
    ],
}

_SINK: type[Adapter] = AdapterRegistry.default().get("sink")


class _Vendor(Adapter):
    """Rejects every call while ``broken``; afterwards records each key's sequence."""

    name = _SINK.name
    actions = _SINK.actions

    def __init__(self) -> None:
        super().__init__(_SINK.Settings(), connection="vendor")
        self.broken = True
        self.rejected = 0
        self.received: dict[str, list[int]] = defaultdict(list)

    async def call(self, request: Request) -> Any:
        if self.broken:
            self.rejected += 1
            raise PermanentError(
                f"account of {request.key} is closed (request {self.rejected})",
                status_code=400,
                vendor_code="ACCOUNT_CLOSED",
            )
        self.received[request.payload["key"]].append(int(request.payload["seq"]))
        return {"id": f"order-{request.event_id}"}


class BenchError(Exception):
    """The run did not do what it must (an event lost, duplicated or out of order)."""


def _events(count: int, per_key: int) -> list[dict[str, Any]]:
    keys = max(1, count // per_key)
    out: list[dict[str, Any]] = []
    for seq in range(per_key):
        for k in range(keys):
            if len(out) == count:
                break
            opp = f"006{k:015d}"
            out.append(
                {
                    "specversion": "1.0",
                    "id": f"evt-{k}-{seq}",
                    "source": "/bench/replay",
                    "type": EVENT_TYPE,
                    "subject": opp,
                    "data": {
                        "opportunity_id": opp,
                        "account_id": "001" + opp[3:],
                        "account_name": "Acme Pty Ltd",
                        "amount": 1000 + seq,
                        "currency": "EUR",
                        "close_date": "2026-11-02",
                        "owner_email": f"owner{k}@example.com",
                        "line_items": [
                            {
                                "product_code": "PLAT-ENT",
                                "quantity": seq + 1,
                                "unit_price": 100,
                                "currency": "EUR",
                            }
                        ],
                    },
                }
            )
    return out


async def run(events: int, per_key: int, store_url: str | None, durability: Durability) -> str:
    data_dir = Path(tempfile.mkdtemp(prefix="platypus-bench-replay-"))
    vendor = _Vendor()
    config = ProjectConfig(data_dir=data_dir, failures_store=store_url)
    app = Platypus(
        config,
        [FlowSpec.model_validate(FLOW)],
        connections={"vendor": vendor},
        durability=durability,
    )
    generated = _events(events, per_key)
    await app.start(http=False)
    store = app.failures
    # The racers: a second indexer and operations owning the log, on the same store.
    target = LogReplayTarget(app.log)
    second = Indexer(
        app.log,
        FailureStore(store_url or default_store_url(data_dir)),
        target=target,
        quiet=True,
    )
    ops = Operations(second.store, app.schemas, target=target, notify=app.indexer.wake)
    try:
        started = time.perf_counter()
        for at in range(0, len(generated), 1000):
            body = json.dumps(generated[at : at + 1000]).encode()
            result = await app.ingress.accept(body, BATCH_TYPE)
            if result.status != 202:
                raise BenchError(f"a batch was refused: {result.status} {result.body}")
        await app.drain()
        failed_in = time.perf_counter() - started

        started = time.perf_counter()
        opened = await _until(
            lambda: store.count(FailureFilter(status=(FailureStatus.OPEN,))) >= len(generated),
            second,
            app.indexer,
        )
        indexed_in = time.perf_counter() - started
        if not opened:
            count = store.count(FailureFilter(status=(FailureStatus.OPEN,)))
            raise BenchError(f"{count} open entries for {len(generated)} failed events")

        vendor.broken = False
        started = time.perf_counter()
        report = await ops.replay(FailureFilter(flow="bench-replay"), Actor.operator("bench"))
        dispatched_in = time.perf_counter() - started

        def settled() -> bool:
            if store.count(FailureFilter(status=(FailureStatus.OPEN,))):
                raise BenchError("replays failed again")
            return store.count(FailureFilter(status=(FailureStatus.RESOLVED,))) >= len(generated)

        if not await _until(settled, second, within=60.0 + len(generated) / 100):
            raise BenchError("the replays were not all resolved in time")
        replayed_in = time.perf_counter() - started
        job = store.replay_job(report.job)
        copies = Counter(record.header(REPLAY_OF_HEADER) for record in app.log.read(EVENTS_TOPIC))
    finally:
        second.close()
        second.store.close()
        await app.stop()

    _check_order(vendor, generated, per_key)
    twice = sorted(k for k, n in copies.items() if k is not None and n > 1)
    if twice:
        raise BenchError(f"{len(twice)} entries were appended more than once, e.g. {twice[:5]}")
    if job is None or not job.done or job.total != len(generated):
        raise BenchError(f"the bulk-replay job in the store does not show it done: {job}")
    rate = len(report.ids) / replayed_in
    return "\n".join(
        [
            f"{len(generated)} events over {len(vendor.received)} keys, store {store.url}",
            f"  dead-lettered in   {failed_in:8.2f} s",
            f"  all indexed        {indexed_in:8.2f} s  after the last dead letter",
            f"  bulk replay        {dispatched_in:8.2f} s  (marked"
            + (", appended)" if not report.queued else "; the app's indexer appends)"),
            f"  replayed+resolved  {replayed_in:8.2f} s  ({rate:,.0f} events/s)",
            "  per-key order at the vendor: ok; each event delivered once; "
            "each replay appended once (a second indexer raced the app's)",
        ]
    )


async def _until(
    done: Callable[[], bool], *indexers: Indexer, within: float = 60.0, poll: float = 0.05
) -> bool:
    """Run passes of ``indexers`` (the app's own runs by itself) until ``done()``."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            return False
        for indexer in indexers:
            await indexer.index_once()
        await asyncio.sleep(poll)
    return True


def _check_order(vendor: _Vendor, generated: list[dict[str, Any]], per_key: int) -> None:
    expected: dict[str, list[int]] = defaultdict(list)
    for event in generated:
        expected[event["subject"]].append(event["data"]["line_items"][0]["quantity"])
    for key, sequence in expected.items():
        got = vendor.received.get(key, [])
        if got != sequence:
            raise BenchError(f"key {key}: the vendor received {got}, expected {sequence}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--per-key", type=int, default=5, help="Events per key.")
    parser.add_argument("--store", help="Store URL (default: SQLite in the data directory).")
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument(
        "--smoke", action="store_true", help="A run of seconds (200 events): for CI."
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.events = min(args.events, 200)
    configure_logging(level="error")
    try:
        print(asyncio.run(run(args.events, args.per_key, args.store, args.durability)))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
