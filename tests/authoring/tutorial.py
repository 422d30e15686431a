"""Run docs/tutorial.md word for word, and compare or rewrite its output blocks.

The page is the single source: its blocks are read in order and each one is
run as a reader would, in a fresh folder.

- ``<!-- file: PATH -->`` before a fenced block: the block is written to PATH in
  the project, as the reader would edit it.
- A ```` ```console ```` block: each ``$ COMMAND`` line is run; the lines up to
  the next ``$`` line are exactly what it prints on stdout (blank lines
  included). The first block installs Platypus and makes the project beside a
  stand-in clone: ``make`` is checked with ``make -n`` (the install itself takes
  a minute and prints pip's progress, which the page does not show),
  ``. .venv/bin/activate`` by the interpreter running this being such an
  environment, ``mkdir``/``cp`` run for real, ``cd`` moves. ``platypus run``
  without ``--once`` serves until the end of the page (the reader's first
  terminal); it is stopped with SIGINT, as Ctrl+C does, and what it printed is
  compared then.
- ``<!-- output of: COMMAND[, with OLD written NEW] -->`` before a plain fenced
  block: COMMAND is run in a copy of the project (after replacing OLD with NEW
  in the last file the page wrote) and the block is its stdout then its stderr.

Only what must vary is normalised, on both sides: the ingress port the test
picks is shown as the page's 8787, other loopback ports and the demo's
temporary data folder are compared as placeholders.

``python -m tests.authoring.tutorial --update`` (or ``PLATYPUS_UPDATE_TUTORIAL=1``
when running the test) rewrites the output blocks from a real run, keeping the
page's lines where they differ only in what is normalised.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from platypus._server import ServerThread
from platypus.demo_vendor import DemoVendor, create_vendor_app
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
PAGE_PORT = "8787"
UPDATE_ENV = "PLATYPUS_UPDATE_TUTORIAL"

# `platypus` with the authoring commands, whether or not platypus/cli.py has them yet.
BOOT = (
    "import sys; from platypus.cli import main; from platypus.authoring.cli import register; "
    "register(main); sys.exit(main(prog_name='platypus'))"
)

_BLOCK = re.compile(
    r"(?:<!-- (?P<kind>file|output of): (?P<arg>[^\n]*?) -->\n)?"
    r"```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.S | re.M,
)
_VARYING = [
    (re.compile(r"127\.0\.0\.1:(?!8787\b)\d+"), "127.0.0.1:<port>"),
    (re.compile(r"data in \S*platypus-demo-[^,\s]+"), "data in <temporary folder>"),
]


@dataclass
class Block:
    """One fenced block of the page: where its body is, and how to run it."""

    kind: str  # "file", "console" or "output"
    arg: str  # the path, or the "output of" command
    body: str
    start: int  # offsets of the body in the page
    end: int
    line: int  # line of the page where the body starts


@dataclass
class Command:
    """A ``$`` line of a console block and the output the page shows for it."""

    text: str
    expected: str
    line: int


@dataclass
class Mismatch:
    """An output block of the page that is not what its command printed."""

    block: Block
    command: str
    line: int
    expected: str
    actual: str

    def describe(self) -> str:
        diff = difflib.unified_diff(
            self.expected.splitlines(),
            self.actual.splitlines(),
            "the page shows",
            "the command printed",
            lineterm="",
        )
        return (
            f"docs/tutorial.md:{self.line}: the output of `{self.command}` differs "
            f"(the block starting at line {self.block.line}):\n" + "\n".join(diff)
        )


@dataclass
class Run:
    """What running the page produced."""

    project: Path
    mismatches: list[Mismatch] = field(default_factory=list)
    # (block, new body) for every output block, from the real output.
    rewritten: list[tuple[Block, str]] = field(default_factory=list)
    received: list[dict[str, object]] = field(default_factory=list)


def blocks(text: str) -> list[Block]:
    """The blocks of the page the test runs, in order (other fenced blocks are prose)."""
    found: list[Block] = []
    for match in _BLOCK.finditer(text):
        kind, lang = match["kind"], match["lang"]
        line = text.count("\n", 0, match.start("body")) + 1
        where = (match["body"], match.start("body"), match.end("body"), line)
        if kind == "file":
            found.append(Block("file", match["arg"], *where))
        elif kind == "output of":
            found.append(Block("output", match["arg"], *where))
        elif lang == "console":
            found.append(Block("console", "", *where))
    return found


def commands(block: Block) -> list[Command]:
    """Each ``$`` line of a console block with the exact output shown under it."""
    out: list[Command] = []
    for number, line in enumerate(block.body.splitlines(keepends=True), start=block.line):
        if line.startswith("$ "):
            out.append(Command(line[2:].rstrip("\n"), "", number))
        else:
            assert out, f"docs/tutorial.md:{number}: output before any `$ ` command"
            out[-1].expected += line
    return out


def normalise(text: str) -> str:
    for pattern, placeholder in _VARYING:
        text = pattern.sub(placeholder, text)
    return text


def merge(page: str, actual: str) -> str:
    """``actual``, keeping the page's lines where they differ only in what varies."""
    old, new = page.splitlines(keepends=True), actual.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(
        a=[normalise(x) for x in old], b=[normalise(x) for x in new], autojunk=False
    )
    out: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        out += old[i1:i2] if tag == "equal" else new[j1:j2]
    return "".join(out)


class Reader:
    """Runs the page's commands as a reader at a terminal would, in ``root``."""

    def __init__(self, root: Path, env: dict[str, str], port: int) -> None:
        self.root = root
        self.env = env
        self.port = port
        self.cwd = root / "platypus"  # the stand-in clone (see `clone`)
        self.server: tuple[subprocess.Popen[str], Command] | None = None
        self.last_file: Path | None = None

    def clone(self) -> None:
        """The files of a fresh clone the page's commands read."""
        for name in ("Makefile", "pyproject.toml", "setup.py", "samples/demo/platypus.yaml"):
            (self.cwd / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, self.cwd / name)

    def write(self, path: str, content: str) -> None:
        target = self.cwd / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        self.last_file = target

    def shell(self, command: Command) -> str:
        argv = shlex.split(command.text)
        if argv[0] == "make":
            # Checked, not run: the install takes a minute and this test runs installed.
            result = subprocess.run(
                ["make", "-n", *argv[1:]], cwd=self.cwd, capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, f"{command.text}: {result.stderr}"
            assert "pip install" in result.stdout, f"{command.text} does not install"
            return command.expected  # pip's progress, which the page says it does not show
        if argv[:2] == [".", ".venv/bin/activate"]:
            bin_dir = Path(sys.executable).parent
            assert (bin_dir / "activate").is_file(), "tests must run in the .venv make creates"
            assert (bin_dir / "platypus").is_file(), "the install puts `platypus` in .venv/bin"
            return ""
        if argv[0] == "cd":
            self.cwd = (self.cwd / argv[1]).resolve()
            assert self.cwd.is_dir(), command.text
            if (self.cwd / "platypus.yaml").is_file():
                self.listen_on_the_test_port()
            return ""
        assert argv[0] in ("mkdir", "cp"), f"the test does not know how to run `{command.text}`"
        result = subprocess.run(argv, cwd=self.cwd, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{command.text}: {result.stderr}"
        return result.stdout

    def listen_on_the_test_port(self) -> None:
        config = self.cwd / "platypus.yaml"
        text = config.read_text()
        assert f"port: {PAGE_PORT}" in text, "the tutorial's platypus.yaml listens on 8787"
        config.write_text(text.replace(f"port: {PAGE_PORT}", f"port: {self.port}"))

    def platypus(
        self, command: Command, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(command.text.replace(PAGE_PORT, str(self.port)))
        assert argv[0] == "platypus", command.text
        return subprocess.run(
            [sys.executable, "-c", BOOT, *argv[1:]],
            cwd=cwd or self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def serve(self, command: Command) -> None:
        argv = shlex.split(command.text)
        process = subprocess.Popen(
            [sys.executable, "-c", BOOT, *argv[1:]],
            cwd=self.cwd,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.server = (process, command)
        wait_healthy(f"http://127.0.0.1:{self.port}/healthz", process)

    def stop(self) -> tuple[Command, str] | None:
        """Ctrl+C in the first terminal: what ``platypus run`` printed."""
        if self.server is None:
            return None
        process, command = self.server
        self.server = None
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
        assert process.returncode == 0, f"{command.text} exited {process.returncode}"
        return command, stdout

    def output_of(self, block: Block) -> str:
        command, _, edit = block.arg.partition(", with ")
        copy = self.root / f"output-of-{block.line}"
        shutil.copytree(self.cwd, copy)
        if edit:
            old, _, new = edit.partition(" written ")
            assert self.last_file is not None, "`with ... written ...` edits the last file"
            target = copy / self.last_file.relative_to(self.cwd)
            assert old in target.read_text(), f"{old!r} is not in {target.name}"
            target.write_text(target.read_text().replace(old, new))
        result = self.platypus(Command(command, block.body, block.line), cwd=copy)
        return result.stdout + result.stderr


def run_page(root: Path, text: str) -> Run:
    """Run every block of ``text`` in ``root``; the vendor is a loopback stand-in."""
    vendor_app = create_vendor_app()
    port = free_port()
    with ServerThread(vendor_app) as vendor_server:
        env = {**os.environ, "PLATYPUS_VENDOR_URL": vendor_server.url, "COLUMNS": "80"}
        reader = Reader(root, env, port)
        reader.clone()
        outcome = Run(project=reader.cwd)
        served: tuple[Command, str] | None = None
        console: dict[int, list[tuple[Command, str]]] = {}
        page = list(enumerate(blocks(text)))
        try:
            for index, block in page:
                if block.kind == "file":
                    reader.write(block.arg, block.body)
                elif block.kind == "output":
                    actual = reader.output_of(block)
                    outcome.rewritten.append((block, merge(block.body, actual)))
                    check(outcome, block, block.arg, block.line, block.body, actual)
                else:
                    console[index] = run_console(reader, block, outcome)
            outcome.project = reader.cwd
            # The event is on disk once `send` returns; let it reach the vendor.
            vendor: DemoVendor = vendor_app.state.vendor
            if reader.server is not None:
                wait_for(lambda: bool(vendor.received))
            served = reader.stop()
        finally:
            if reader.server is not None:
                reader.server[0].kill()
        outcome.received = list(vendor.received)
    if served is not None:
        command, stdout = served
        actual = stdout.replace(str(port), PAGE_PORT)
        check(outcome, None, command.text, command.line, command.expected, actual)
        for index, ran in console.items():
            console[index] = [(c, actual if c is command else out) for c, out in ran]
    for index, ran in console.items():
        block = page[index][1]
        body = "".join(f"$ {c.text}\n{merge(c.expected, out)}" for c, out in ran)
        outcome.rewritten.append((block, body))
    outcome.mismatches.sort(key=lambda m: m.line)
    return outcome


def run_console(reader: Reader, block: Block, outcome: Run) -> list[tuple[Command, str]]:
    ran: list[tuple[Command, str]] = []
    for command in commands(block):
        argv = shlex.split(command.text)
        if argv[0] != "platypus":
            actual = reader.shell(command)
        elif argv[1] == "run" and "--once" not in argv:
            reader.serve(command)
            ran.append((command, command.expected))  # compared once it is stopped
            continue
        else:
            result = reader.platypus(command)
            assert result.returncode == 0, (
                f"docs/tutorial.md:{command.line}: `{command.text}` exited "
                f"{result.returncode}\n{result.stdout}\n{result.stderr}"
            )
            actual = result.stdout.replace(str(reader.port), PAGE_PORT)
        check(outcome, block, command.text, command.line, command.expected, actual)
        ran.append((command, actual))
    return ran


def check(
    outcome: Run, block: Block | None, command: str, line: int, expected: str, actual: str
) -> None:
    if normalise(expected) != normalise(actual):
        shown = block or Block("console", "", expected, 0, 0, line)
        outcome.mismatches.append(Mismatch(shown, command, line, expected, actual))


def rewrite(text: str, outcome: Run) -> str:
    """The page with every output block replaced by what its commands printed."""
    for block, body in sorted(outcome.rewritten, key=lambda r: r[0].start, reverse=True):
        text = text[: block.start] + body + text[block.end :]
    return text


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "platypus run exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def main(argv: list[str]) -> int:
    """``--update`` rewrites the page's output blocks; without it, report differences."""
    text = TUTORIAL.read_text()
    with tempfile.TemporaryDirectory(prefix="platypus-tutorial-") as root:
        outcome = run_page(Path(root), text)
    for mismatch in outcome.mismatches:
        print(mismatch.describe(), end="\n\n")
    if "--update" in argv:
        TUTORIAL.write_text(rewrite(text, outcome))
        print(f"rewrote {len(outcome.mismatches)} output block(s) of {TUTORIAL}")
        return 0
    return 1 if outcome.mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
