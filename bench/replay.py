"""Bulk replay of failed events: dead-letter, index, fix, replay all, until all are resolved.

::

    python bench/replay.py [--events 10000] [--per-key 5] [--store URL]
                           [--durability full|normal]

One run:

1. a flow whose vendor (an in-process adapter) rejects every event with a
   permanent error: ``--events`` events over ``events / per-key`` keys, each
   key's events numbered 0, 1, 2, ... are ingested and all dead-lettered;
2. the indexer takes the dead letters into the failed-event store (SQLite in
   the data directory, or ``--store`` such as ``postgresql+psycopg://...``);
3. the vendor is fixed and every open entry is replayed in one bulk replay;
4. the app runs the replays while the indexer settles entries, until every
   entry is ``resolved``.

It prints the time of each phase and replayed events per second (from the
bulk replay to the last entry resolved), and fails unless every key's events
reached the vendor in their original order, each exactly once after the fix.
Not a test: run it on demand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from platypus.adapter import Adapter, AdapterRegistry, Request
from platypus.config import ProjectConfig
from platypus.exceptions import PermanentError
from platypus.flow.model import FlowSpec
from platypus.logging import configure_logging
from platypus.ops import Actor, FailureFilter, FailureStatus, FailureStore, Indexer
from platypus.ops.actions import Operations
from platypus.ops.store import default_store_url
from platypus.runtime.embedded import Platypus
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
    app = Platypus(
        ProjectConfig(data_dir=data_dir),
        [FlowSpec.model_validate(FLOW)],
        connections={"vendor": vendor},
        durability=durability,
    )
    store = FailureStore(store_url or default_store_url(data_dir))
    store.create()
    indexer = Indexer(app.log, store, flows=app.flows, quiet=True)
    ops = Operations(store, app.schemas, log=app.log)
    generated = _events(events, per_key)
    await app.start(http=False)
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
        await indexer.index_once()
        indexed_in = time.perf_counter() - started
        open_count = store.count(FailureFilter(status=(FailureStatus.OPEN,)))
        if open_count != len(generated):
            raise BenchError(f"{open_count} open entries for {len(generated)} failed events")

        vendor.broken = False
        started = time.perf_counter()
        report = await ops.replay(FailureFilter(flow="bench-replay"), Actor.operator("bench"))
        dispatched_in = time.perf_counter() - started
        resolved = 0
        while resolved < len(generated):
            await asyncio.sleep(0.05)
            await indexer.index_once()
            resolved = store.count(FailureFilter(status=(FailureStatus.RESOLVED,)))
            reopened = store.count(FailureFilter(status=(FailureStatus.OPEN,)))
            if reopened:
                raise BenchError(f"{reopened} replays failed again")
        replayed_in = time.perf_counter() - started
    finally:
        await app.stop()
        indexer.close()
        store.close()

    _check_order(vendor, generated, per_key)
    rate = len(report.ids) / replayed_in
    return "\n".join(
        [
            f"{len(generated)} events over {len(vendor.received)} keys, store {store.url}",
            f"  dead-lettered in   {failed_in:8.2f} s",
            f"  indexed in         {indexed_in:8.2f} s  ({len(generated) / indexed_in:,.0f}/s)",
            f"  bulk replay        {dispatched_in:8.2f} s  (marked and appended)",
            f"  replayed+resolved  {replayed_in:8.2f} s  ({rate:,.0f} events/s)",
            "  per-key order at the vendor: ok; each event delivered once",
        ]
    )


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
    args = parser.parse_args(argv)
    configure_logging(level="error")
    try:
        print(asyncio.run(run(args.events, args.per_key, args.store, args.durability)))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
