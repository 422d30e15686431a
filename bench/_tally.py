"""What every peer's sink (and the loopback vendor) does with a delivery: count and check it.

A benchmark run names its events ``evt-<run>-<index>`` (`bench._opportunity`),
and its sender sends each key's events in index order. So a sink that sees,
for every key, strictly increasing indices, each below the run's count, and
``count`` deliveries in all, has seen every event exactly once and in key
order: a repeat or a reordering shows as an index not above the key's last.
That check costs a dict lookup per event and keeps one integer per key, so it
neither slows a peer down nor grows its memory.

The runs a process is to expect come from ``BENCH_TALLY`` (``run:count,...``)
and the results go to ``BENCH_TALLY_DIR/<run>.json``, written once when a run
is complete (and, for a run that never completes, at exit, to say what was
missing). ``BENCH_LATENCY=1`` also keeps each event's latency: delivery time
minus the ``sent_at`` it carries (the moment its sender meant to send it).

Imports nothing outside the standard library: the quixstreams peer runs it in
a virtual environment of its own.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

TALLY_ENV = "BENCH_TALLY"
DIR_ENV = "BENCH_TALLY_DIR"
LATENCY_ENV = "BENCH_LATENCY"
_MAX_PROBLEMS = 20


def _sent_at(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


@dataclass(slots=True)
class _Run:
    name: str
    expected: int
    count: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    last: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    latencies: list[float] | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.name,
            "expected": self.expected,
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "keys": len(self.last),
            "problem_count": self.problem_count,
            "problems": self.problems,
            "complete": self.count == self.expected and not self.problem_count,
        }
        if self.latencies is not None and self.latencies:
            ordered = sorted(self.latencies)
            n = len(ordered)
            out["latency_ms"] = {
                "p50": ordered[n // 2] * 1000,
                "p99": ordered[min(n - 1, int(n * 0.99))] * 1000,
                "max": ordered[-1] * 1000,
                "samples": n,
            }
        return out


class Tally:
    """Deliveries of one or more runs, checked as they come (see the module doc)."""

    def __init__(self, runs: dict[str, int], out: Path | None, *, latency: bool = False) -> None:
        self._runs = {
            name: _Run(name, expected, latencies=[] if latency else None)
            for name, expected in runs.items()
        }
        self._out = out
        self.other = 0  # deliveries of events no run expects (not counted as problems)
        if out is not None:
            atexit.register(self.write_all)

    @classmethod
    def from_env(cls) -> Tally:
        """The tally the environment describes (an empty one when it describes none)."""
        runs: dict[str, int] = {}
        for part in os.environ.get(TALLY_ENV, "").split(","):
            name, _, count = part.strip().partition(":")
            if name and count.isdigit():
                runs[name] = int(count)
        folder = os.environ.get(DIR_ENV)
        return cls(
            runs,
            Path(folder) if folder else None,
            latency=os.environ.get(LATENCY_ENV) == "1",
        )

    def delivered(self, key: str, event_id: str, sent_at: Any = None) -> None:
        """One delivery of ``event_id`` (of ordering key ``key``)."""
        now = time.time()
        run_name, _, tail = event_id[4:].rpartition("-")  # "evt-<run>-<index>"
        run = self._runs.get(run_name)
        if run is None:
            self.other += 1
            return
        index = int(tail) if tail.isdigit() else -1
        previous = run.last.get(key, -1)
        if not 0 <= index < run.expected:
            self._problem(run, f"unexpected event {event_id!r}")
        elif index <= previous:
            self._problem(
                run, f"key {key}: {event_id!r} after index {previous} (repeated or out of order)"
            )
        run.last[key] = max(index, previous)
        if not run.count:
            run.first_at = now
            if self._out is not None:  # tells the bench when to start counting CPU
                self._out.mkdir(parents=True, exist_ok=True)
                (self._out / f"{run.name}.first").write_text(str(now))
        run.count += 1
        run.last_at = now
        if run.latencies is not None:
            sent = _sent_at(sent_at)
            if sent is not None:
                run.latencies.append(now - sent)
        if run.count == run.expected:
            self._write(run)

    @staticmethod
    def _problem(run: _Run, message: str) -> None:
        run.problem_count += 1
        if len(run.problems) < _MAX_PROBLEMS:
            run.problems.append(message)

    def _write(self, run: _Run) -> None:
        if self._out is None:
            return
        self._out.mkdir(parents=True, exist_ok=True)
        target = self._out / f"{run.name}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(run.summary()))
        temporary.replace(target)  # atomic: a reader never sees half a file

    def write_all(self) -> None:
        """Write every run as it stands (at exit: a repeat after the last, or what was
        missing, is seen)."""
        for run in self._runs.values():
            self._write(run)

    def summary(self, run: str) -> dict[str, Any]:
        """The figures and checks of ``run`` so far."""
        return self._runs[run].summary()


def read_summary(folder: Path, run: str) -> dict[str, Any] | None:
    """A run's summary as a sink wrote it, or None while it has written none."""
    try:
        found: dict[str, Any] = json.loads((folder / f"{run}.json").read_text())
    except (OSError, ValueError):
        return None
    return found


def has_started(folder: Path, run: str) -> bool:
    """Whether the sink of ``run`` has seen its first delivery."""
    return (folder / f"{run}.first").exists()


def tally_env(folder: Path, runs: dict[str, int], *, latency: bool = False) -> dict[str, str]:
    """The environment variables that make a sink process tally ``runs`` into ``folder``."""
    return {
        TALLY_ENV: ",".join(f"{name}:{count}" for name, count in runs.items()),
        DIR_ENV: str(folder),
        LATENCY_ENV: "1" if latency else "0",
    }
