"""docs/tutorial.md, run word for word: every command, and every output block exactly.

`tests.authoring.tutorial` reads the page and runs it (see there for how each
kind of block is run and what is normalised). After a change to what a command
prints, regenerate the page's blocks with
``.venv/bin/python -m tests.authoring.tutorial --update`` (or set
``PLATYPUS_UPDATE_TUTORIAL=1`` when running this test) and read the diff.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.authoring.tutorial import (
    TUTORIAL,
    UPDATE_ENV,
    blocks,
    commands,
    normalise,
    rewrite,
    run_page,
)


def console_commands(text: str) -> list[str]:
    return [c.text for b in blocks(text) if b.kind == "console" for c in commands(b)]


def test_the_tutorial_starts_from_a_clone_and_has_a_command_for_every_step() -> None:
    found = console_commands(TUTORIAL.read_text())

    # The install of the README's quickstart, then the project beside the clone.
    assert found[:5] == [
        "make .venv/.installed",
        ". .venv/bin/activate",
        "mkdir ../big-deals",
        "cp samples/demo/platypus.yaml ../big-deals/",
        "cd ../big-deals",
    ]
    assert "make demo" in (TUTORIAL.parents[1] / "README.md").read_text()
    for needed in (
        "platypus new flow",
        "platypus flows lint",
        "platypus flows test",
        "platypus run --demo --once",
        "platypus flows run --dry-run",
        "platypus run",
        "platypus send",
    ):
        assert any(c.startswith(needed) for c in found), needed


def test_every_command_of_the_tutorial_prints_what_the_page_shows(tmp_path: Path) -> None:
    text = TUTORIAL.read_text()

    outcome = run_page(tmp_path, text)

    if os.environ.get(UPDATE_ENV):
        TUTORIAL.write_text(rewrite(text, outcome))
    report = "\n\n".join(m.describe() for m in outcome.mismatches)
    assert not outcome.mismatches, (
        f"{report}\n\nIf the product is right, regenerate the page: "
        f"{UPDATE_ENV}=1 pytest {__file__} (or python -m tests.authoring.tutorial --update)"
    )
    # What the page says happens, happened: the order reached the order system ...
    assert [(r["method"], r["path"]) for r in outcome.received] == [("POST", "/orders")]
    json = outcome.received[0]["json"]
    assert isinstance(json, dict)
    assert json["external_id"] == "006AAAAAAAAAAAA"
    # ... in the project the page made beside the clone, which has the picture.
    assert outcome.project == tmp_path / "big-deals"
    svg = ET.fromstring((outcome.project / "flows.svg").read_text())  # noqa: S314 -- our own
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"


def test_each_output_block_is_checked_so_a_changed_line_is_found(tmp_path: Path) -> None:
    """Changing one printed line of the page, and nothing else, fails on that block."""
    text = TUTORIAL.read_text()
    wrong = text.replace("4 passed in 1 file\n", "5 passed in 1 file\n", 1)
    assert wrong != text

    outcome = run_page(tmp_path, wrong)

    assert [(m.command, m.expected, m.actual) for m in outcome.mismatches] == [
        ("platypus flows test", "5 passed in 1 file\n", "4 passed in 1 file\n")
    ]
    assert rewrite(wrong, outcome) == text


@pytest.mark.parametrize(
    ("page", "printed"),
    [
        (
            "Stand-in vendor listening on http://127.0.0.1:41235\n",
            "Stand-in vendor listening on http://127.0.0.1:3999\n",
        ),
        (
            "(data in /tmp/platypus-demo-k2v9x1qa, flows in flows)",
            "(data in /var/tmp/x/platypus-demo-ab_1, flows in flows)",
        ),
    ],
)
def test_a_random_port_and_the_demo_folder_compare_equal(page: str, printed: str) -> None:
    assert normalise(page) == normalise(printed)


@pytest.mark.parametrize(
    ("page", "printed"),
    [
        ("http://127.0.0.1:8787/events", "http://127.0.0.1:8788/events"),
        ("(data in /tmp/platypus-demo-k2, flows in flows)", "(data in .platypus, flows in flows)"),
        ("4 passed in 1 file", "4 passed in 2 files"),
    ],
)
def test_the_page_s_port_and_everything_else_compare_exactly(page: str, printed: str) -> None:
    assert normalise(page) != normalise(printed)
