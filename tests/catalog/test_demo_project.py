"""`platypus run --demo` runs samples/demo/, found from the repository root or given itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from platypus.demo import BUNDLED_DEMO, demo_project
from platypus.exceptions import ConfigurationError
from tests.catalog.conftest import REPO

DEMO = REPO / "samples" / "demo"


def test_the_repository_root_runs_its_samples_demo() -> None:
    assert demo_project(REPO) == DEMO


def test_the_demo_project_itself_can_be_given() -> None:
    assert demo_project(DEMO) == DEMO


def test_elsewhere_the_demo_of_the_checkout_runs(tmp_path: Path) -> None:
    assert demo_project(tmp_path) == BUNDLED_DEMO
    assert BUNDLED_DEMO.resolve() == DEMO.resolve()


def test_no_demo_anywhere_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("platypus.demo.BUNDLED_DEMO", tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="--project samples/demo"):
        demo_project(tmp_path)


def test_the_demo_project_keeps_the_vendor_connection_and_three_flows() -> None:
    assert sorted(p.name for p in (DEMO / "flows").glob("*.yaml")) == [
        "closed-won-to-orders.yaml",
        "invoice-to-ledger.yaml",
        "worker-hired-to-it.yaml",
    ]
    assert "vendor:" in (DEMO / "platypus.yaml").read_text()
    assert len((DEMO / "events.jsonl").read_text().splitlines()) == 8
