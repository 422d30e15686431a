"""Processes of a peer benchmark: start them, read their CPU and memory, stop them.

Also what every results file records about where it was measured: the machine,
the commit, the load average when the run began.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench._opportunity import ROOT
from bench._tally import read_summary

_URL = re.compile(rb"(http://127\.0\.0\.1:\d+)")


class BenchError(Exception):
    """A run did not do what it must (an event lost, repeated, reordered or refused)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Proc:
    """A child process whose output goes to ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:] or "(no output)"
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        """Resident memory now (VmRSS), in MiB."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, so that the process shuts down as it would in production."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    wait_for_url: bool = True,
    patience: float = 60,
) -> Proc:
    """Start ``argv``; with ``wait_for_url``, wait until it prints the URL it listens on."""
    out: IO[bytes]
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd or ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    proc = Proc(name, process, log)
    if not wait_for_url:
        return proc
    deadline = time.monotonic() + patience
    while True:
        found = _URL.search(log.read_bytes())
        if found:
            proc.url = found.group(1).decode()
            return proc
        if process.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            raise BenchError(f"{name} did not start listening:\n{proc.tail()}")
        time.sleep(0.02)


def python() -> str:
    return sys.executable


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` and its threads (0 if unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_tally(
    folder: Path, run: str, procs: Sequence[Proc], patience: float
) -> dict[str, Any]:
    """Wait until the sink of ``run`` has seen every event; its summary."""
    deadline = time.monotonic() + patience
    while True:
        summary = read_summary(folder, run)
        if summary is not None:
            if summary["problem_count"]:
                raise BenchError(f"run {run}: {summary['problems'][:5]}")
            if summary["count"] >= summary["expected"]:
                return summary
        for proc in procs:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(
                f"run {run}: not every event delivered within {patience:.0f} s: {summary}"
            )
        time.sleep(0.01)


def final_check(folder: Path, run: str) -> None:
    """After the sink's process stopped: still exactly the expected deliveries."""
    summary = read_summary(folder, run)
    if summary is None or not summary["complete"]:
        raise BenchError(f"run {run}: at the end, {summary}")


def dir_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder`` (their apparent size, as ``du -b``)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    """Where and on what this was measured."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "commit": commit + ("+dirty" if dirty else ""),
        "loadavg_at_start": list(os.getloadavg()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
