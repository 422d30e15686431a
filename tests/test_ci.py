"""What `.ci/run` promises: a run of a commit is repeatable."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent


def test_ci_draws_the_same_property_examples_on_every_run() -> None:
    runs: list[list[str]] = []
    for _ in range(2):
        drawn: list[str] = []

        @settings(settings.get_profile("ci"), max_examples=30)
        @given(st.text())
        def record(value: str) -> None:
            drawn.append(value)  # noqa: B023 (called before the next run rebinds it)

        record()
        runs.append(drawn)

    assert len(runs[0]) > 1
    assert runs[0] == runs[1]


def test_ci_runs_the_tests_with_that_profile() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()

    assert "export HYPOTHESIS_PROFILE=ci" in lines
    assert lines.index("export HYPOTHESIS_PROFILE=ci") < lines.index("make test")
