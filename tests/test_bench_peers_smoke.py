"""The peer benchmarks run: each script's ``--smoke`` completes and its own checks pass.

A smoke run sends a few hundred events through every peer and asserts only
what the scripts assert themselves: every event delivered exactly once, in key
order, an invalid event refused with 422, the peers' mapping equal to the
flow's. No timing is asserted (speed is for the full runs, as ratios).

A peer whose library is not installed is skipped with the reason: FastStream
comes with the ``bench`` extra, and quixstreams lives in a virtual environment
of its own that a full run of ``bench/kafka_peers.py`` makes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
QUIX_VENV = BENCH / ".venvs" / "quixstreams"


def smoke(script: str, *args: str, timeout: float = 300) -> str:
    """Run ``bench/<script> --smoke``; its output, or a failure that shows it."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def test_baseline_smoke_delivers_every_event_once_in_key_order() -> None:
    output = smoke("baseline.py")
    assert "every check passed" in output
    assert "baseline" in output


def test_embedded_smoke_runs_every_case_against_every_peer() -> None:
    output = smoke("embedded.py", timeout=600)
    assert "every check passed" in output
    for case in ("(a)", "(b)", "(c)", "(d)", "(e)"):
        assert case in output
    for peer in ("platypus", "baseline", "bare"):
        assert peer in output


@pytest.mark.parametrize("peer", ["faust", "aiokafka", "faststream", "quixstreams", "platypus"])
def test_kafka_peer_smoke_delivers_every_event_once_in_key_order(peer: str) -> None:
    if peer == "faststream" and importlib.util.find_spec("faststream") is None:
        pytest.skip("faststream is not installed: pip install -e '.[bench]'")
    if peer == "quixstreams" and not (QUIX_VENV / ".installed").exists():
        pytest.skip(f"no quixstreams venv at {QUIX_VENV}: run python bench/kafka_peers.py once")
    output = smoke("kafka_peers.py", "--peers", peer)
    assert "every check passed" in output
    assert f"skipped {peer}" not in output
    assert any(line.startswith(peer) for line in output.splitlines())
