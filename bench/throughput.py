"""Throughput of the embedded runtime against the limit of pydantic validation alone.

::

    python bench/throughput.py [--events N] [--keys K] [--batch B]
                               [--durability full|normal] [--cores 1] [--smoke]

One run, one set of generated events (seeded, so every run sees the same bytes):

1. **bare**: ``model_validate_json`` of each event into a model of the whole
   event with typed ``data``. Nothing can ingest faster than it can validate,
   so this is the ceiling; best of three passes.
2. **platypus**: a fresh data directory, a flow mapping a few fields (and a
   projection of the line items) to an in-process sink, the events fed through
   `Ingress.accept` in batches (JSON parse, envelope and schema validation,
   durable append), then `Platypus.drain` until every event has its outcome.
   Latency is per event: the start of its batch's ``accept`` to its delivery in
   the sink. Every event must be delivered exactly once, or the run fails.

The goal is printed with the figures: >= 25% of bare validation, durability
on, one core. See ``docs/benchmarks.md`` for how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import create_model

from bench._opportunity import generate
from platypus.adapter import Adapter, AdapterRegistry, Request
from platypus.config import ProjectConfig
from platypus.envelope import CloudEvent
from platypus.flow.model import FlowSpec
from platypus.logging import configure_logging
from platypus.runtime.embedded import Platypus
from platypus.runtime.embedded.log import Durability
from platypus.schema_registry import SchemaRegistry

EVENT_TYPE = "sales.opportunity.closed_won.v1"
BATCH_TYPE = "application/cloudevents-batch+json"
GOAL = 0.25


# Projects a few fields and the line items, as a real order flow would.
FLOW = {
    "name": "bench-closed-won",
    "consumes": [EVENT_TYPE],
    "steps": [
        {
            "name": "deliver",
            "to": "sink.send",
            "payload": {
                "external_id": "data.opportunity_id",
                "account": {"crm_id": "data.account_id", "name": "data.account_name"},
                "amount": "data.amount",
                "currency": "data.currency",
                "lines": "data.line_items[*].{sku: product_code, quantity: quantity, "
                "unit_price: unit_price}",
            },
        }
    ],
}


# Both come through the registries the engine uses (the installed names of the
# `adapters/` and `schemas/` folders are import hooks mypy cannot follow).
_SINK: type[Adapter] = AdapterRegistry.default().get("sink")

# The whole event with typed data (OpportunityClosedWon): what bare validation parses into.
_Typed = create_model(
    "_Typed", __base__=CloudEvent, data=(SchemaRegistry.default().get(EVENT_TYPE).model, ...)
)


class _TimingSink(Adapter):
    """The sink adapter, remembering when each event was delivered and how often."""

    name = _SINK.name
    actions = _SINK.actions

    def __init__(self) -> None:
        super().__init__(_SINK.Settings(), connection="sink")
        self._sink = _SINK.from_config({}, connection="sink")
        self.first_delivery: dict[str, float] = {}
        self.deliveries: Counter[str] = Counter()

    async def call(self, request: Request) -> Any:
        now = time.perf_counter()
        self.deliveries[request.event_id] += 1
        self.first_delivery.setdefault(request.event_id, now)
        return await self._sink.call(request)


class BenchError(Exception):
    """The run did not do what it must (an event lost, duplicated or refused)."""


@dataclass(frozen=True, slots=True)
class BareResult:
    events_per_s: float
    seconds: float


@dataclass(frozen=True, slots=True)
class PlatypusResult:
    events_per_s: float
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_share: float  # process CPU time / wall time over the run
    main_thread_share: float  # the event loop's share of that CPU time
    rss_before_mib: float
    rss_peak_mib: float


# -- events -------------------------------------------------------------------------


# -- 1. the limit ---------------------------------------------------------------------


def bench_bare(events: list[tuple[str, bytes]], passes: int = 3) -> BareResult:
    """Best of ``passes`` of validating every event with ``model_validate_json``."""
    raws = [raw for _, raw in events]
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for raw in raws:
            _Typed.model_validate_json(raw)
        best = min(best, time.perf_counter() - started)
    return BareResult(len(raws) / best, best)


# -- 2. Platypus end to end -----------------------------------------------------------


def _batches(events: list[tuple[str, bytes]], size: int) -> list[tuple[list[str], bytes]]:
    out = []
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        out.append(([i for i, _ in chunk], b"[" + b",".join(raw for _, raw in chunk) + b"]"))
    return out


async def _run_platypus(
    events: list[tuple[str, bytes]], batch: int, durability: Durability, data_dir: Path
) -> tuple[float, dict[str, float], _TimingSink, dict[str, int], int]:
    config = ProjectConfig(data_dir=data_dir)
    sink = _TimingSink()
    app = Platypus(
        config, [FlowSpec.model_validate(FLOW)], connections={"sink": sink}, durability=durability
    )
    batches = _batches(events, batch)  # the client's work, not timed
    accepted_at: dict[str, float] = {}
    await app.start(http=False)
    try:
        started = time.perf_counter()
        for ids, body in batches:
            at = time.perf_counter()
            result = await app.ingress.accept(body, BATCH_TYPE)
            if result.status != 202 or result.body.get("accepted") != len(ids):
                raise BenchError(f"a batch was not accepted: {result.status} {result.body}")
            for event_id in ids:
                accepted_at[event_id] = at
        await app.drain()
        elapsed = time.perf_counter() - started
        counts = dict(app.runtime.counts)
        outcomes = len(app.log.outcomes())
    finally:
        await app.stop()
    return elapsed, accepted_at, sink, counts, outcomes


def bench_platypus(
    events: list[tuple[str, bytes]], batch: int, durability: Durability, profile: bool
) -> PlatypusResult:
    """Feed every event through the ingress and wait until all are delivered."""
    rss_before = _peak_rss_mib()
    cpu0, thread0 = time.process_time(), time.thread_time()
    profiler = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory(prefix="platypus-bench-") as tmp:
        if profiler is not None:
            profiler.enable()
        elapsed, accepted_at, sink, counts, outcomes = asyncio.run(
            _run_platypus(events, batch, durability, Path(tmp))
        )
        if profiler is not None:
            profiler.disable()
    cpu, main_cpu = time.process_time() - cpu0, time.thread_time() - thread0
    _check_delivered(events, sink, counts, outcomes)
    if profiler is not None:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats(pstats.SortKey.TIME).print_stats(25)
        stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(40)
    latencies = sorted(sink.first_delivery[i] - accepted_at[i] for i, _ in events)
    return PlatypusResult(
        events_per_s=len(events) / elapsed,
        seconds=elapsed,
        p50_ms=_quantile(latencies, 0.50) * 1000,
        p99_ms=_quantile(latencies, 0.99) * 1000,
        max_ms=latencies[-1] * 1000,
        cpu_share=cpu / elapsed,
        main_thread_share=main_cpu / cpu if cpu else 0.0,
        rss_before_mib=rss_before,
        rss_peak_mib=_peak_rss_mib(),
    )


def _check_delivered(
    events: list[tuple[str, bytes]], sink: _TimingSink, counts: dict[str, int], outcomes: int
) -> None:
    expected = {event_id for event_id, _ in events}
    problems = []
    missing = expected - sink.deliveries.keys()
    if missing:
        problems.append(f"{len(missing)} events never delivered, e.g. {sorted(missing)[:3]}")
    extra = sink.deliveries.keys() - expected
    if extra:
        problems.append(f"{len(extra)} unknown event ids delivered, e.g. {sorted(extra)[:3]}")
    repeated = {i: n for i, n in sink.deliveries.items() if n != 1}
    if repeated:
        problems.append(f"{len(repeated)} events delivered more than once, e.g. {repeated}")
    if counts != {"delivered": len(events)}:
        problems.append(f"outcome counts {counts}, expected {{'delivered': {len(events)}}}")
    if outcomes != len(events):
        problems.append(f"{outcomes} outcomes in the log, expected {len(events)}")
    if problems:
        raise BenchError("; ".join(problems))


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- 3. the report --------------------------------------------------------------------


def _report(args: argparse.Namespace, bare: BareResult, run: PlatypusResult) -> str:
    ratio = run.events_per_s / bare.events_per_s
    verdict = "met" if ratio >= GOAL else "NOT met"
    rows = [
        f"{'':<30}{'events/s':>10}{'seconds':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}",
        f"{'bare model_validate_json':<30}{bare.events_per_s:>10,.0f}{bare.seconds:>9.2f}",
        f"{'platypus end to end':<30}{run.events_per_s:>10,.0f}{run.seconds:>9.2f}"
        f"{run.p50_ms:>9.0f}{run.p99_ms:>9.0f}{run.max_ms:>9.0f}",
    ]
    return "\n".join(
        [
            f"platypus throughput: {args.events} events, {args.keys} keys, batch {args.batch}, "
            f"durability {args.durability}, cores {args.cores or 'all'}, log {args.log_level}, "
            f"python {sys.version.split()[0]}",
            *rows,
            f"every event delivered exactly once; CPU busy {run.cpu_share:.0%} of wall time, "
            f"{run.main_thread_share:.0%} of it on the event loop",
            f"peak RSS {run.rss_peak_mib:.0f} MiB (before platypus started: "
            f"{run.rss_before_mib:.0f} MiB)",
            f"ratio platypus / bare: {ratio:.1%}",
            f"goal: >= {GOAL:.0%} of bare validation, durability on, one core -- {verdict}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run both measurements on the same events and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events to generate")
    parser.add_argument("--keys", type=int, default=2_000, help="distinct opportunities")
    parser.add_argument("--batch", type=int, default=100, help="events per accepted batch")
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument(
        "--cores", type=int, default=1, help="pin the process to this many cores (0: no pinning)"
    )
    parser.add_argument(
        "--log-level", default="info", help="as `platypus run` (default info, JSON, to /dev/null)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the platypus run (slows it down)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="A run of seconds (500 events) for CI: no pinning."
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.keys, args.cores = min(args.events, 500), min(args.keys, 100), 0
    if args.events < 1 or args.keys < 1 or args.batch < 1:
        parser.error("--events, --keys and --batch must be at least 1")
    if args.cores:
        # Before any thread starts: threads inherit the affinity of their creator.
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    with open(os.devnull, "w") as devnull:
        # The production log format at the production level, without a terminal's cost.
        configure_logging(json=True, level=args.log_level, stream=devnull)
        events = generate(args.events, args.keys, args.seed)
        bare = bench_bare(events)
        try:
            run = bench_platypus(events, args.batch, args.durability, args.profile)
        except BenchError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    print(_report(args, bare, run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
