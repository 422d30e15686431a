"""`platypus run --demo` runs a project of its own, else samples/demo/ (from the root or given)."""

from __future__ import annotations

from pathlib import Path

import pytest

from platypus.demo import BUNDLED_DEMO, demo_events, demo_project
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


def test_a_project_of_its_own_runs_itself_with_its_scaffolded_samples(tmp_path: Path) -> None:
    (tmp_path / "platypus.yaml").write_text("connections: {}\n")
    (tmp_path / "samples").mkdir()
    for name in ("b.event.json", "a.event.json", "notes.json"):
        (tmp_path / "samples" / name).write_text("{}\n")

    assert demo_project(tmp_path) == tmp_path
    assert demo_events(tmp_path) == [
        tmp_path / "samples" / "a.event.json",
        tmp_path / "samples" / "b.event.json",
    ]


def test_a_project_s_events_jsonl_comes_before_its_samples(tmp_path: Path) -> None:
    (tmp_path / "platypus.yaml").write_text("connections: {}\n")
    (tmp_path / "events.jsonl").write_text("{}\n")
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "a.event.json").write_text("{}\n")

    assert demo_events(demo_project(tmp_path)) == [tmp_path / "events.jsonl"]


def test_a_project_without_sample_events_says_how_to_get_some(tmp_path: Path) -> None:
    (tmp_path / "platypus.yaml").write_text("connections: {}\n")
    with pytest.raises(ConfigurationError, match=r"no sample events in .*platypus new flow"):
        demo_project(tmp_path)


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
