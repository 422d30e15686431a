"""The embedded runtime side by side with its peers: the hand-written baseline, bare validation.

::

    python bench/embedded.py                     # the full run, 20-25 minutes here
    python bench/embedded.py --cases a,b --runs 3
    python bench/embedded.py --smoke             # seconds: completes and checks, no timing

Same events (`bench._opportunity`: a closed-won opportunity with 5 line items,
~770 bytes, the real schema), same machine, one run. Each server is a process
of its own with a fresh data directory: ``platypus run`` (through
`bench._platypus_cli`, whose ``sink`` tallies), or `bench/baseline.py`. This
process is the load generator (`bench._loadgen`, raw HTTP/1.1 to ``POST
/events``), so client CPU is not charged to the server; the ``http`` adapter's
vendor is `bench/_vendor.py`, a third process. Every run begins with a warm-up
(imports, connections, first commits) that is not timed, and must end with
every event delivered exactly once and in key order (`bench._tally`), or the
whole bench fails.

Cases (each peer's figure is the median of ``--runs`` runs, alternated: the
peers take turns, in a rotated order each round):

a. **batches of 100 to sink**: Platypus, the baseline, and a bare
   ``model_validate_json`` loop over the same bytes (in this process);
b. **single-event posts** to ``sink``, and to ``http`` on the fast vendor;
c. **paced single posts**, p50/p99/max latency from the time the event was due
   to be sent (its ``time``) to its delivery: to ``http`` at 500/s and to
   ``sink`` at 1,000/s, for ``--paced-seconds``;
d. **a vendor answering in 50 ms**, ``concurrency`` 16, 64 and 256 (Platypus's
   ``concurrency:`` and the baseline's), against the bound concurrency / 0.05 s;
   events: the bound x ``--vendor-seconds``, at most ``--vendor-events-cap``,
   posted in batches of 100 as fast as the server takes them;
e. **memory and disk**: RSS after the warm-up and after ``--rss-events``
   events (batches to sink), and the data directory's bytes per event.

events/s is events / (last delivery - first request sent). Ratios are of
medians. Results: a table on stdout, and JSON in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _loadgen
from bench._opportunity import FLOW, ROOT, SINGLE_TYPE, Events, load_typed_model, map_event
from bench._procs import (
    BenchError,
    Proc,
    dir_bytes,
    final_check,
    machine,
    median,
    python,
    start,
    wait_for_tally,
    write_results,
)
from bench._tally import tally_env

PEERS = ("platypus", "baseline", "baseline-aiohttp", "bare")
SERVERS = ("platypus", "baseline", "baseline-aiohttp")
WARMUP = 400
VENDOR_MS = 50.0

# The targets (issue 11, item 5), checked against the figures.
TARGETS = {
    "a_vs_bare": 0.25,
    "a_vs_baseline": 1.5,
    "b_vs_baseline": 1.0,
    "c_sink_p99_ms": 50.0,
    "c_http_p99_ms": 100.0,
    "d_share_of_bound": 0.80,
    "e_rss_growth": 0.10,
    "e_bytes_per_event": 1200.0,
}


@dataclass(frozen=True, slots=True)
class Settings:
    keys: int
    seed: int
    runs: int
    batch_events: int
    single_events: int
    batch_connections: int
    single_connections: int
    paced_seconds: float
    vendor_seconds: float
    vendor_events_cap: int
    concurrencies: tuple[int, ...]
    rss_events: int
    log_level: str
    patience: float
    smoke: bool
    warmup: int = WARMUP
    profile: Path | None = None  # py-spy the platypus server of each run into this folder
    keep_data: Path | None = None  # copy each (e) platypus data dir here after the stop


@dataclass(slots=True)
class Run:
    """One measured run of one peer."""

    peer: str
    events: int
    seconds: float
    events_per_s: float
    server_cpu_us: float | None = None  # server CPU per event
    vendor_cpu_us: float | None = None
    client_cpu_us: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- servers --------------------------------------------------------------------------


def _platypus_project(root: Path, *, to: str, vendor_url: str, concurrency: int) -> Path:
    project = root / "project"
    (project / "flows").mkdir(parents=True)
    flow = json.loads(json.dumps(FLOW))
    if to == "http":
        flow["steps"][0]["to"] = "vendor.post"
        flow["steps"][0]["params"] = {"path": "/orders"}
    (project / "flows" / "bench.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    config: dict[str, Any] = {
        "data_dir": str(root / "data"),
        "concurrency": concurrency,
        "ingress": {"host": "127.0.0.1", "port": 0},
    }
    if to == "http":
        config["connections"] = {
            "vendor": {
                "adapter": "http",
                "settings": {
                    "base_url": vendor_url,
                    "timeout": 10,
                    "max_connections": max(concurrency, 1),
                },
            }
        }
    (project / "platypus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return project


def start_server(
    peer: str,
    root: Path,
    *,
    to: str,
    vendor_url: str,
    concurrency: int,
    env: dict[str, str],
    log_level: str,
) -> Proc:
    """A fresh server process of ``peer`` with its data under ``root``."""
    if peer == "platypus":
        project = _platypus_project(root, to=to, vendor_url=vendor_url, concurrency=concurrency)
        argv = [
            python(),
            str(ROOT / "bench" / "_platypus_cli.py"),
            "run",
            "--project",
            str(project),
            "--port",
            "0",
            "--log-level",
            log_level,
            "--log-json",
        ]
    else:
        client = ["--client", "aiohttp"] if peer == "baseline-aiohttp" else []
        argv = [
            python(),
            str(ROOT / "bench" / "baseline.py"),
            *client,
            "--data-dir",
            str(root / "data"),
            "--port",
            "0",
            "--to",
            to,
            "--vendor-url",
            vendor_url,
            "--concurrency",
            str(concurrency),
        ]
    return start(peer, argv, root / f"{peer}.log", env=env)


def start_vendor(root: Path, delay_ms: float, env: dict[str, str]) -> Proc:
    argv = [python(), str(ROOT / "bench" / "_vendor.py"), "--delay-ms", str(delay_ms)]
    return start("vendor", argv, root / "vendor.log", env=env)


# -- one run --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """What to send in a run, and where it is delivered."""

    to: str  # "sink" or "http"
    events: int
    batch: int = 1
    connections: int = 1
    rate: float | None = None  # paced when set
    vendor_ms: float = 0.0
    concurrency: int = 16
    watch_rss: bool = False


def run_server(peer: str, load: Load, s: Settings) -> Run:
    """Start a fresh ``peer`` (and vendor), warm it up, send ``load``, check it all arrived."""
    warm = Events(s.warmup, s.keys, seed=s.seed, run="warm")
    measured = Events(load.events, s.keys, seed=s.seed, run="m")
    paced = load.rate is not None
    with tempfile.TemporaryDirectory(prefix=f"bench-{peer}-") as tmp:
        root = Path(tmp)
        tallies = root / "tally"
        env = tally_env(tallies, {"warm": s.warmup, "m": load.events}, latency=paced)
        vendor = start_vendor(root, load.vendor_ms, env) if load.to == "http" else None
        procs: list[Proc] = [vendor] if vendor else []
        try:
            server = start_server(
                peer,
                root,
                to=load.to,
                vendor_url=vendor.url if vendor else "",
                concurrency=load.concurrency,
                env={} if vendor else env,
                log_level=s.log_level,
            )
            procs.append(server)
            _check_refuses_bad_event(server.url)
            asyncio.run(
                _loadgen.closed_loop(
                    server.url, warm, range(s.warmup), batch=min(load.batch, 100), connections=4
                )
            )
            wait_for_tally(tallies, "warm", procs, s.patience)
            rss_start = server.rss_mib()
            cpu0 = [p.cpu_seconds() for p in procs]
            own0 = time.process_time()
            samples: list[tuple[float, float, int]] = []
            progress = [0]
            watching = threading.Event()
            watcher = None
            if load.watch_rss:
                watcher = threading.Thread(
                    target=_watch_rss, args=(server, samples, progress, watching), daemon=True
                )
                watcher.start()
            profiler = None
            if s.profile is not None and peer == "platypus":
                from bench._profile import Profiler

                name = f"embedded-{load.to}-batch{load.batch}-{time.strftime('%H%M%S')}.txt"
                profiler = Profiler(server.pid, s.profile / name)
            if paced:
                assert load.rate is not None
                sent = asyncio.run(_loadgen.paced(server.url, measured, rate=load.rate))
            else:
                sent = asyncio.run(
                    _loadgen.closed_loop(
                        server.url,
                        measured,
                        range(load.events),
                        batch=load.batch,
                        connections=load.connections,
                        progress=progress,
                    )
                )
            summary = wait_for_tally(tallies, "m", procs, s.patience)
            if profiler is not None:
                profiler.stop()
                print(_summarise(profiler.output), file=sys.stderr)
            watching.set()
            if watcher is not None:
                watcher.join()
            cpu = [p.cpu_seconds() - c for p, c in zip(procs, cpu0, strict=True)]
            own = time.process_time() - own0
            extra: dict[str, Any] = {}
            if load.watch_rss:
                extra["rss_start_mib"] = rss_start
                extra["rss_end_mib"] = server.rss_mib()
                # By events accepted, not by time: a run slowed by the machine's other
                # load has more samples per event, not more memory.
                half = [r for _, r, n in samples if n >= load.events // 2]
                extra["rss_half_mib"] = half[0] if half else rss_start
                extra["rss_samples_mib"] = _by_tenths(samples, load.events, rss_start)
                extra["disk_bytes_live"] = dir_bytes(root / "data")
            if paced:
                extra["latency_ms"] = summary.get("latency_ms")
                extra["rate"] = load.rate
        finally:
            for proc in reversed(procs):
                proc.stop()
        final_check(tallies, "m")
        if load.watch_rss:
            extra["disk_bytes_stopped"] = dir_bytes(root / "data")
            extra["bytes_per_event"] = extra["disk_bytes_stopped"] / (load.events + s.warmup)
            if s.keep_data is not None:
                kept = s.keep_data / f"{peer}-{time.strftime('%H%M%S')}"
                shutil.copytree(root / "data", kept)
                print(f"(e) {peer} data dir kept in {kept}", file=sys.stderr)
    seconds = summary["last_at"] - sent.started_at
    events = load.events
    return Run(
        peer=peer,
        events=events,
        seconds=seconds,
        events_per_s=events / seconds,
        server_cpu_us=cpu[-1] / events * 1e6,
        vendor_cpu_us=cpu[0] / events * 1e6 if vendor else None,
        client_cpu_us=own / events * 1e6,
        extra=extra,
    )


def _summarise(path: Path) -> str:
    from bench._profile import summarise

    return summarise(path)


def _watch_rss(
    server: Proc,
    samples: list[tuple[float, float, int]],
    progress: list[int],
    stop: threading.Event,
) -> None:
    while not stop.wait(0.5):
        samples.append((time.time(), server.rss_mib(), progress[0]))


def _by_tenths(
    samples: Sequence[tuple[float, float, int]], events: int, start: float
) -> list[list[float]]:
    """[events accepted, RSS MiB] at the warm-up's end and at each tenth of the run."""
    out = [[0, round(start, 1)]]
    for tenth in range(1, 11):
        found = next((s for s in samples if s[2] >= events * tenth // 10), None)
        if found is not None:
            out.append([found[2], round(found[1], 1)])
    return out


def _check_refuses_bad_event(url: str) -> None:
    """A server that accepts an event its schema forbids is not worth measuring."""
    bad = Events(1, 1, run="bad").raw(0).replace(b'"quantity":', b'"quantity":-', 1)

    async def post() -> tuple[int, bytes]:
        client = _loadgen._Client(url)
        try:
            return await client.post(bad, SINGLE_TYPE)
        finally:
            await client.close()

    status, body = asyncio.run(post())
    if status != 422:
        raise BenchError(f"an invalid event got {status}, not 422: {body[:300]!r}")


def run_bare(count: int, s: Settings) -> Run:
    """``model_validate_json`` of every event, in this process: the ceiling."""
    typed = load_typed_model()
    events = Events(count, s.keys, seed=s.seed, run="m")
    raws = [events.raw(i) for i in range(count)]
    started = time.perf_counter()
    for raw in raws:
        typed.model_validate_json(raw)
    seconds = time.perf_counter() - started
    return Run(peer="bare", events=count, seconds=seconds, events_per_s=count / seconds)


# -- cases ----------------------------------------------------------------------------


def servers(peers: Sequence[str], to: str) -> list[str]:
    """The server peers of a case; the aiohttp baseline differs only in its vendor client."""
    return [p for p in peers if p in SERVERS and (to == "http" or p != "baseline-aiohttp")]


def alternate(
    peers: Sequence[str], runs: int, one: Callable[[str], Run], label: str
) -> dict[str, list[Run]]:
    """``runs`` rounds; each round every peer once, the order rotated round by round."""
    out: dict[str, list[Run]] = {p: [] for p in peers}
    for round_ in range(runs):
        order = list(peers[round_ % len(peers) :]) + list(peers[: round_ % len(peers)])
        for peer in order:
            run = one(peer)
            out[peer].append(run)
            print(
                f"  {label} {peer} run {round_ + 1}: {run.events_per_s:,.0f} events/s",
                file=sys.stderr,
                flush=True,
            )
    return out


def summarise(runs: dict[str, list[Run]]) -> dict[str, Any]:
    return {
        peer: {
            "median_events_per_s": median([r.events_per_s for r in rs]),
            "runs": [r.events_per_s for r in rs],
            "server_cpu_us_per_event": median(
                [r.server_cpu_us for r in rs if r.server_cpu_us is not None]
            ),
            "client_cpu_us_per_event": median(
                [r.client_cpu_us for r in rs if r.client_cpu_us is not None]
            ),
            "details": [r.extra for r in rs if r.extra],
        }
        for peer, rs in runs.items()
        if rs
    }


def case_a(peers: Sequence[str], s: Settings) -> dict[str, Any]:
    load = Load("sink", s.batch_events, batch=100, connections=s.batch_connections)

    def one(peer: str) -> Run:
        return run_bare(s.batch_events, s) if peer == "bare" else run_server(peer, load, s)

    chosen = [p for p in peers if p == "bare" or p in servers(peers, "sink")]
    return summarise(alternate(chosen, s.runs, one, "(a) batches of 100 to sink"))


def case_b(peers: Sequence[str], s: Settings) -> dict[str, Any]:
    out = {}
    for to in ("sink", "http"):
        load = Load(to, s.single_events, batch=1, connections=s.single_connections)
        runs = alternate(
            servers(peers, to),
            s.runs,
            lambda peer, load=load: run_server(peer, load, s),  # type: ignore[misc]
            f"(b) single posts to {to}",
        )
        out[to] = summarise(runs)
    return out


def case_c(peers: Sequence[str], s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for to, rate in (("sink", 1000.0), ("http", 500.0)):
        count = max(1, int(rate * s.paced_seconds))
        load = Load(to, count, rate=rate)
        runs = alternate(
            servers(peers, to),
            1,
            lambda peer, load=load: run_server(peer, load, s),  # type: ignore[misc]
            f"(c) paced {rate:.0f}/s to {to}",
        )
        out[to] = {
            peer: {
                "rate": rate,
                "seconds": s.paced_seconds,
                "achieved_per_s": rs[0].events_per_s,
                "latency_ms": rs[0].extra.get("latency_ms"),
                "server_cpu_us_per_event": rs[0].server_cpu_us,
                "client_cpu_us_per_event": rs[0].client_cpu_us,
            }
            for peer, rs in runs.items()
        }
    return out


def case_d(peers: Sequence[str], s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for concurrency in s.concurrencies:
        bound = concurrency / (VENDOR_MS / 1000)
        count = max(100, min(int(bound * s.vendor_seconds), s.vendor_events_cap))
        load = Load(
            "http", count, batch=100, connections=4, vendor_ms=VENDOR_MS, concurrency=concurrency
        )
        runs = alternate(
            servers(peers, "http"),
            s.runs,
            lambda peer, load=load: run_server(peer, load, s),  # type: ignore[misc]
            f"(d) vendor {VENDOR_MS:.0f} ms, concurrency {concurrency}",
        )
        summary = summarise(runs)
        for figures in summary.values():
            figures["bound_per_s"] = bound
            figures["share_of_bound"] = figures["median_events_per_s"] / bound
        out[str(concurrency)] = summary
    return out


def case_e(peers: Sequence[str], s: Settings) -> dict[str, Any]:
    load = Load("sink", s.rss_events, batch=100, connections=s.batch_connections, watch_rss=True)
    out: dict[str, Any] = {}
    for peer in servers(peers, "sink"):
        run = run_server(peer, load, s)
        print(f"  (e) {peer}: {run.events_per_s:,.0f} events/s", file=sys.stderr, flush=True)
        e = run.extra
        out[peer] = {
            "events": run.events,
            "rss_start_mib": e["rss_start_mib"],
            "rss_end_mib": e["rss_end_mib"],
            "rss_growth": e["rss_end_mib"] / e["rss_start_mib"] - 1,
            # After its caches have filled: the second half of the run alone (by events).
            "rss_growth_second_half": e["rss_end_mib"] / e["rss_half_mib"] - 1,
            "server_cpu_us": run.server_cpu_us,
            "rss_samples_mib": e["rss_samples_mib"],
            "disk_bytes_live": e["disk_bytes_live"],
            "disk_bytes_stopped": e["disk_bytes_stopped"],
            "bytes_per_event": e["bytes_per_event"],
            "events_per_s": run.events_per_s,
        }
    return out


CASES: dict[str, Callable[[Sequence[str], Settings], dict[str, Any]]] = {
    "a": case_a,
    "b": case_b,
    "c": case_c,
    "d": case_d,
    "e": case_e,
}


# -- the report -----------------------------------------------------------------------


def _ratio(results: dict[str, Any], path: Sequence[str], peer: str, other: str) -> float | None:
    node: Any = results
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    if peer not in node or other not in node:
        return None
    mine = node[peer]["median_events_per_s"]
    theirs = node[other]["median_events_per_s"]
    return float(mine / theirs) if theirs else None


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue, the measured figure, and whether it is met."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, target: float, *, at_most: bool = False) -> None:
        if value is None:
            return
        met = value <= target if at_most else value >= target
        out.append({"target": name, "value": value, "goal": target, "met": met, "at_most": at_most})

    cases = results["cases"]
    add("(a) platypus / bare", _ratio(cases, ["a"], "platypus", "bare"), TARGETS["a_vs_bare"])
    add(
        "(a) platypus / baseline",
        _ratio(cases, ["a"], "platypus", "baseline"),
        TARGETS["a_vs_baseline"],
    )
    for to in ("sink", "http"):
        add(
            f"(b) single posts to {to}: platypus / baseline",
            _ratio(cases, ["b", to], "platypus", "baseline"),
            TARGETS["b_vs_baseline"],
        )
    for to, key in (("sink", "c_sink_p99_ms"), ("http", "c_http_p99_ms")):
        figures = cases.get("c", {}).get(to, {}).get("platypus")
        if figures and figures.get("latency_ms"):
            add(
                f"(c) p99 ms, paced to {to} at {figures['rate']:.0f}/s",
                figures["latency_ms"]["p99"],
                TARGETS[key],
                at_most=True,
            )
    for concurrency, peers in cases.get("d", {}).items():
        if "platypus" in peers:
            add(
                f"(d) share of bound, concurrency {concurrency}",
                peers["platypus"]["share_of_bound"],
                TARGETS["d_share_of_bound"],
            )
    e = cases.get("e", {}).get("platypus")
    if e:
        add("(e) RSS growth", e["rss_growth"], TARGETS["e_rss_growth"], at_most=True)
        add(
            "(e) bytes on disk per event",
            e["bytes_per_event"],
            TARGETS["e_bytes_per_event"],
            at_most=True,
        )
    return out


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"platypus embedded vs peers: commit {m['commit']}, {m['nproc']} x {m['cpu']}, "
        f"load average at start {' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}, "
        f"python {m['python']}, event {results['event_bytes']} bytes, "
        f"{results['settings']['runs']} run(s) per figure (median)",
        f"{'case':<44}{'peer':<17}{'events/s':>10}{'srv µs/ev':>11}  runs",
    ]
    cases = results["cases"]

    def rows(label: str, node: dict[str, Any]) -> None:
        for peer, f in node.items():
            cpu = f.get("server_cpu_us_per_event")
            cpu_text = f"{cpu:>11.0f}" if isinstance(cpu, float) and cpu == cpu else f"{'-':>11}"
            runs = ", ".join(f"{x:,.0f}" for x in f.get("runs", []))
            lines.append(
                f"{label:<44}{peer:<17}{f['median_events_per_s']:>10,.0f}{cpu_text}  {runs}"
            )

    if "a" in cases:
        rows("(a) batches of 100 -> sink", cases["a"])
    for to, node in cases.get("b", {}).items():
        rows(f"(b) single posts -> {to}", node)
    for concurrency, node in cases.get("d", {}).items():
        bound = next(iter(node.values()))["bound_per_s"]
        rows(f"(d) vendor 50 ms, c={concurrency} (bound {bound:,.0f}/s)", node)
    for to, node in cases.get("c", {}).items():
        for peer, f in node.items():
            lat = f["latency_ms"] or {}
            lines.append(
                f"(c) paced {f['rate']:.0f}/s -> {to}, {f['seconds']:.0f} s: {peer:<16} "
                f"p50 {lat.get('p50', float('nan')):.1f} ms, p99 {lat.get('p99', float('nan')):.1f}"
                f" ms, max {lat.get('max', float('nan')):.1f} ms, "
                f"achieved {f['achieved_per_s']:,.0f}/s"
            )
    for peer, f in cases.get("e", {}).items():
        lines.append(
            f"(e) {peer:<16} {f['events']:,} events: RSS {f['rss_start_mib']:.0f} -> "
            f"{f['rss_end_mib']:.0f} MiB ({f['rss_growth']:+.0%}; second half "
            f"{f['rss_growth_second_half']:+.1%}), disk "
            f"{f['bytes_per_event']:,.0f} bytes/event after stop "
            f"({f['disk_bytes_live'] / max(f['events'], 1):,.0f} live, with the WAL); "
            f"server CPU {f['server_cpu_us']:.0f} µs/event"
        )
        lines.append(
            "    RSS MiB at [events accepted]: "
            + ", ".join(f"{n:,}: {r}" for n, r in f["rss_samples_mib"])
        )
    lines.append("targets (issue 11):")
    for v in results["verdicts"]:
        lines.append(
            f"  {v['target']:<52} {v['value']:>9.3f}  goal {'<=' if v['at_most'] else '>='} "
            f"{v['goal']:<7} {'met' if v['met'] else 'NOT met'}"
        )
    lines.append("every run: every event delivered exactly once, in key order; bad event -> 422")
    return "\n".join(lines)


def check_mapping() -> None:
    """The peers' hand-written mapping gives what the flow's mapping gives Platypus."""
    from platypus import core
    from platypus.flow.model import FlowSpec

    raw = Events(1, 1, run="map").raw(0, "2026-01-02T03:04:05.123456Z")
    event = json.loads(raw)
    flow = FlowSpec.model_validate(FLOW)
    by_flow = core.render(flow.steps[0].payload, core.event_context(event, {}))
    if by_flow != map_event(event):
        raise BenchError(
            f"the peers' mapping differs from the flow's: {map_event(event)} != {by_flow}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny N: completes and checks only")
    parser.add_argument("--cases", default="a,b,c,d,e", help="which cases, e.g. a,b")
    parser.add_argument("--peers", default=",".join(PEERS), help="which peers, e.g. platypus,bare")
    parser.add_argument("--runs", type=int, default=3, help="alternated runs per figure")
    parser.add_argument("--keys", type=int, default=2000, help="distinct ordering keys")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-events", type=int, default=20_000, help="events per (a) run")
    parser.add_argument("--single-events", type=int, default=4_000, help="events per (b) run")
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--single-connections", type=int, default=32)
    parser.add_argument("--paced-seconds", type=float, default=60.0, help="length of (c) runs")
    parser.add_argument(
        "--vendor-seconds", type=float, default=4.0, help="(d): events = bound x this"
    )
    parser.add_argument(
        "--vendor-events-cap",
        type=int,
        default=5000,
        help="(d): at most this many events a run (a slow peer would take minutes at 256); "
        "at 1,000 the bound at 256 is four rounds of the vendor, too short to fill the pipeline",
    )
    parser.add_argument("--concurrency", default="16,64,256", help="(d) concurrencies")
    parser.add_argument("--rss-events", type=int, default=500_000, help="events of (e)")
    parser.add_argument("--log-level", default="info", help="platypus run --log-level")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy (the bench extra) every platypus run into this folder, and summarise it "
        "(the figures are then not comparable: use with e.g. --cases a --peers platypus --runs 1)",
    )
    parser.add_argument(
        "--keep-data",
        type=Path,
        help="copy the data dir of each (e) run here after the stop (to see where the bytes go)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embedded.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.keys = 1, 50
        args.batch_events, args.single_events = 300, 60
        args.paced_seconds, args.vendor_seconds = 0.5, 0.3
        args.concurrency, args.rss_events = "16", 2_000
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [p for p in peers if p not in PEERS] + [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown peers or cases: {unknown}")
    settings = Settings(
        keys=args.keys,
        seed=args.seed,
        runs=args.runs,
        batch_events=args.batch_events,
        single_events=args.single_events,
        batch_connections=args.batch_connections,
        single_connections=args.single_connections,
        paced_seconds=args.paced_seconds,
        vendor_seconds=args.vendor_seconds,
        vendor_events_cap=args.vendor_events_cap,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        rss_events=args.rss_events,
        log_level=args.log_level,
        patience=60.0 if args.smoke else 600.0,
        smoke=args.smoke,
        warmup=50 if args.smoke else WARMUP,
        profile=args.profile,
        keep_data=args.keep_data,
    )
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": vars(args) | {"out": str(args.out)},
        "event_bytes": round(
            sum(len(Events(200, args.keys, seed=args.seed).raw(i)) for i in range(200)) / 200
        ),
        "cases": {},
    }
    try:
        if "platypus" in peers:
            check_mapping()
        for case in cases:
            results["cases"][case] = CASES[case](peers, settings)
            if not args.smoke:  # what is measured so far survives a failure later on
                write_results(args.out, results)
    except (BenchError, _loadgen.LoadError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    results["verdicts"] = verdicts(results)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    results["loadavg_at_end"] = list(os.getloadavg())
    print(render(results))
    if args.smoke:
        print("smoke: every case completed and every check passed (no timing asserted)")
    else:
        write_results(args.out, results)
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
