"""A temporary Platypus project: the demo project's platypus.yaml and one of its flows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import closed_won

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "samples" / "demo"  # its `vendor` connection needs no credentials


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """platypus.yaml, flows/closed-won-to-orders.yaml and samples/big.event.json."""
    shutil.copy(DEMO / "platypus.yaml", tmp_path / "platypus.yaml")
    (tmp_path / "flows").mkdir()
    shutil.copy(DEMO / "flows" / "closed-won-to-orders.yaml", tmp_path / "flows")
    (tmp_path / "samples").mkdir()
    event = closed_won("006Kd00000A1b2cAAA", amount=25000, event_id="evt-1")
    (tmp_path / "samples" / "big.event.json").write_text(json.dumps(event), encoding="utf-8")
    return tmp_path
