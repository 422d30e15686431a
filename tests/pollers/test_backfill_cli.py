"""``platypus backfill`` end to end: platypus.yaml, a loopback Salesforce, the embedded log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
import yaml
from click.testing import CliRunner

from platypus.records import EVENTS_TOPIC
from platypus.runtime.embedded.log import EventLog
from platypus.sources.pollers.cli import backfill
from tests.pollers.conftest import SoqlSalesforce, salesforce_settings
from tests.pollers.test_pollers import won


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    # The command configures logging for the process, as a CLI does: undo it after.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def project(tmp_path: Path, fake: SoqlSalesforce) -> Path:
    config = {
        "data_dir": "data",
        "connections": {"crm": {"adapter": "salesforce", "settings": salesforce_settings(fake)}},
        "pollers": {"won": {"kind": "salesforce", "connection": "crm", "page_size": 3}},
    }
    (tmp_path / "platypus.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_backfill_replays_a_range_and_running_it_again_appends_nothing(
    tmp_path: Path, salesforce: SoqlSalesforce
) -> None:
    ids = [won(salesforce, n, datetime(2023, 5, 1 + n, tzinfo=UTC)) for n in range(7)]
    root = project(tmp_path, salesforce)
    args = ["won", "--since", "2023-05-01", "--until", "2023-05-31", "--project", str(root)]

    first = CliRunner().invoke(backfill, args)
    assert first.exit_code == 0, first.output
    assert "7 events appended" in first.output
    second = CliRunner().invoke(backfill, [*args, "--restart"])
    assert "0 events appended, 7 already there" in second.output
    third = CliRunner().invoke(backfill, [*args, "--restart", "--json"])
    assert json.loads(third.stdout) == {  # the counts alone on stdout; progress on stderr
        "source": "won",
        "pages": 3,
        "records": 7,
        "accepted": 0,
        "duplicates": 7,
        "ignored": 0,
        "rejected": 0,
    }

    with EventLog(root / "data") as log:
        subjects = sorted(json.loads(r.value)["subject"] for r in log.read(EVENTS_TOPIC))
        assert subjects == ids
        assert "backfill:won" in log.checkpoints()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--since", "2023-05-01"], "no poller 'nope'"),
        (["won", "--since", "2023-06-01", "--until", "2023-05-01"], "--since must be before"),
    ],
)
def test_backfill_refuses_an_unknown_source_or_an_empty_range(
    tmp_path: Path, salesforce: SoqlSalesforce, args: list[str], message: str
) -> None:
    root = project(tmp_path, salesforce)
    result = CliRunner().invoke(backfill, [*args, "--project", str(root)])
    assert result.exit_code == 2
    assert message in result.output
