"""What scripts and people rely on from every command (docs/cli.md).

``--help`` ends with examples that use real options; commands that list or show
something take ``--json`` and print the fields docs/cli.md lists; exit codes
follow one table; colours and escape codes appear only on a terminal without
``NO_COLOR``.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from platypus.cli import main
from platypus.clitools import (
    EXIT_FOUND,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNUSABLE,
    exit_on_error,
    progressbar,
)

REPO = Path(__file__).resolve().parent.parent
DOCS = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
PLATYPUS = str(Path(sys.executable).parent / "platypus")

# The commands that list or show something, and so take --json.
JSON_COMMANDS = {
    ("schemas", "list"),
    ("schemas", "export"),
    ("schemas", "flows"),
    ("schemas", "check"),
    ("flows", "lint"),
    ("flows", "test"),
    ("flows", "run"),
    ("flows", "graph"),
    ("new", "flow"),
    ("send",),
    ("backfill",),
    ("dlq", "list"),
    ("dlq", "show"),
    ("dlq", "audit"),
    ("dlq", "to-test"),
    ("dlq", "history"),
}


def _walk(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _walk(command, (*path, name))


COMMANDS = dict(_walk(main))


def _options(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def _example_commands(epilog: str) -> Iterator[list[str]]:
    for line in epilog.splitlines():
        line = line.strip()
        if not line.startswith(("platypus ", "PLATYPUS_")):
            continue
        part: list[str] = []
        for token in [*shlex.split(line, comments=True), "&&"]:
            if token not in ("&&", "|", "||", ";", ">"):
                part.append(token)
                continue
            while part and "=" in part[0] and not part[0].startswith("-"):
                part.pop(0)  # VAR=value before the command
            if part and part[0] == "platypus":
                yield part[1:]
            part = []


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_ends_with_examples_that_use_real_commands_and_options(path: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(main, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "Examples:" in shown.output
    command = COMMANDS[path]
    examples = list(_example_commands(command.epilog or ""))
    assert examples, f"platypus {' '.join(path)} has no examples"
    for tokens in examples:
        target: Any = main
        words = list(tokens)
        while isinstance(target, click.Group) and words and words[0] in target.commands:
            target = target.commands[words.pop(0)]
        assert not isinstance(target, click.Group), f"example names no command: {tokens}"
        flags = {word.split("=", 1)[0] for word in words if word.startswith("-")}
        assert flags <= _options(target), f"unknown option in example: platypus {' '.join(tokens)}"


def _documented() -> dict[tuple[str, ...], list[list[str]]]:
    """Command -> the brace groups of its row in docs/cli.md's JSON table, in order."""
    rows = {}
    for match in re.finditer(r"^\| `platypus ([^`]+)` \| (.+) \|$", DOCS, re.MULTILINE):
        words = tuple(w for w in match.group(1).split() if w.islower() and not w.startswith("-"))
        groups = [
            [field.strip() for field in inner.split(",")]
            for inner in re.findall(r"\{([^{}]+)\}", match.group(2))
        ]
        rows[words] = groups
    return rows


def test_commands_that_list_or_show_take_json_and_docs_cli_lists_each() -> None:
    with_json = {path for path, command in COMMANDS.items() if "--json" in _options(command)}
    assert with_json == JSON_COMMANDS
    assert set(_documented()) == JSON_COMMANDS


def test_the_exit_codes_table_lists_the_codes_commands_use() -> None:
    table = re.findall(r"^\| (\d+) \|", DOCS, re.MULTILINE)
    assert [int(code) for code in table] == [EXIT_OK, EXIT_FOUND, EXIT_UNUSABLE, EXIT_INTERRUPTED]


# -- --json prints the documented fields ---------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(REPO / "samples/demo/platypus.yaml", tmp_path / "platypus.yaml")
    (tmp_path / "flows").mkdir()
    return tmp_path


def run_json(*args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code in (EXIT_OK, EXIT_FOUND), result.output
    return json.loads(result.stdout)  # stdout holds the JSON and nothing else


def keys(path: tuple[str, ...], group: int = 0) -> set[str]:
    return set(_documented()[path][group])


def test_schemas_commands_print_the_documented_fields(tmp_path: Path) -> None:
    listed = run_json("schemas", "list")
    assert {frozenset(item) for item in listed} == {frozenset(keys(("schemas", "list")))}
    exported = run_json("schemas", "export", str(tmp_path / "old"))
    assert set(exported) == keys(("schemas", "export"))
    assert all(Path(p).exists() for p in exported["written"])
    flows = run_json("schemas", "flows", str(tmp_path / "editor"))
    assert set(flows) == keys(("schemas", "flows"))
    # A field gone from an exported schema reads as a change.
    first = Path(exported["written"][0])
    schema = json.loads(first.read_text())
    schema["properties"]["removed_field"] = {"type": "string"}
    first.write_text(json.dumps(schema))
    checked = run_json("schemas", "check", str(tmp_path / "old"))
    assert set(checked) == keys(("schemas", "check"))
    assert checked["changes"]
    assert {frozenset(c) for c in checked["changes"]} == {frozenset(keys(("schemas", "check"), 1))}


def test_authoring_commands_print_the_documented_fields(project: Path) -> None:
    at = ["--project", str(project)]
    created = run_json("new", "flow", "orders", "--to", "sink.send", *at)
    assert set(created) == keys(("new", "flow"))
    assert len(created["created"]) == 6  # flow, tests, sample and the three editor schemas

    tested = run_json("flows", "test", *at)
    assert set(tested) == keys(("flows", "test"))
    assert tested["passed"] == 3
    assert tested["failed"] == 0
    case_keys, call_keys = keys(("flows", "test"), 1), keys(("flows", "test"), 2)
    assert all(set(case) == case_keys for case in tested["cases"])
    calls = [call for case in tested["cases"] for call in case["calls"]]
    assert calls
    assert all(set(call) == call_keys for call in calls)

    sample = project / "samples" / "orders.event.json"
    planned = run_json("flows", "run", "--dry-run", str(sample), *at)
    assert set(planned) == keys(("flows", "run"))
    [event] = planned["events"]
    assert set(event) == keys(("flows", "run"), 1)
    [flow] = event["flows"]
    assert set(flow) == keys(("flows", "run"), 2)
    assert all(set(step) == keys(("flows", "run"), 3) for step in flow["steps"])

    graph = run_json("flows", "graph", *at)
    assert set(graph) == keys(("flows", "graph"))
    assert all(set(node) == keys(("flows", "graph"), 1) for node in graph["nodes"])
    assert all(set(edge) == keys(("flows", "graph"), 2) for edge in graph["edges"])
    assert graph["edges"]

    (project / "flows" / "broken.yaml").write_text("name: broken\nconsumes: nope.v1\nsteps: []\n")
    findings = run_json("flows", "lint", *at)
    assert findings
    assert all(set(finding) == keys(("flows", "lint")) for finding in findings)


# -- exit codes ---------------------------------------------------------------------------


def test_exit_codes_follow_the_table(project: Path, tmp_path: Path) -> None:
    at = ["--project", str(project)]
    runner = CliRunner()
    assert runner.invoke(main, ["flows", "lint", *at]).exit_code == EXIT_OK
    assert runner.invoke(main, ["flows", "test", *at]).exit_code == EXIT_FOUND  # no tests
    assert runner.invoke(main, ["flows", "lint", "--no-such-option"]).exit_code == EXIT_UNUSABLE
    (project / "platypus.yaml").write_text("partitions: many\n")
    broken = runner.invoke(main, ["flows", "lint", *at])
    assert broken.exit_code == EXIT_UNUSABLE
    assert broken.stderr.startswith("error: ")


def test_ctrl_c_exits_130_with_a_line_not_a_traceback() -> None:
    @click.command()
    @exit_on_error
    def slow() -> None:
        raise KeyboardInterrupt

    result = CliRunner().invoke(slow)
    assert result.exit_code == EXIT_INTERRUPTED
    assert "interrupted" in result.stderr
    assert "Traceback" not in result.output


# -- colours and escape codes -------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("no_color", [False, True])
def test_a_progress_bar_draws_on_a_terminal_unless_no_color(
    no_color: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("TERM", "xterm")
    out = _Terminal()
    with progressbar(length=3, label="Sending", file=out) as bar:
        bar.update(3)
    assert ("\x1b" in out.getvalue()) is not no_color
    assert "Sending" in out.getvalue()


def _run_on_a_terminal(project: Path, env: dict[str, str]) -> bytes:
    """``platypus run --once`` with stdout and stderr on a pseudo-terminal; what it wrote."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [PLATYPUS, "run", "--project", str(project), "--port", "0", "--once"],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(master)
    assert process.returncode == 0, out
    return out


@pytest.mark.slow
def test_platypus_run_colours_its_log_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    coloured = _run_on_a_terminal(tmp_path, {**env, "TERM": "xterm"})
    plain = _run_on_a_terminal(tmp_path, {**env, "TERM": "xterm", "NO_COLOR": "1"})
    assert b"platypus started" in coloured
    assert b"\x1b[" in coloured
    assert b"platypus started" in plain
    assert b"\x1b" not in plain


@pytest.mark.slow
def test_platypus_run_writes_no_escape_codes_to_a_pipe(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    result = subprocess.run(
        [PLATYPUS, "run", "--project", str(tmp_path), "--port", "0", "--once", "--log-console"],
        capture_output=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
    )
    assert result.returncode == 0, result.stderr
    assert b"platypus started" in result.stderr
    assert b"\x1b" not in result.stdout + result.stderr
