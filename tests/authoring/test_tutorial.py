"""docs/tutorial.md, run: every ```console command, in order, in a fresh project.

Files shown under ``<!-- file: PATH -->`` are written as the reader would edit
them. ``$ COMMAND &`` starts a background process (``kill %1`` stops it);
the ``vendor`` connection points at a loopback stand-in vendor, and the ingress
port 8787 is swapped for a free one. Lines shown after a command must appear
in its output (the page may leave some out, never make them up).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import httpx

from platypus._server import ServerThread
from platypus.demo_vendor import DemoVendor, create_vendor_app
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"

# `platypus` with the authoring commands, whether or not platypus/cli.py has them yet.
BOOT = (
    "import sys; from platypus.cli import main; from platypus.authoring.cli import register; "
    "register(main); sys.exit(main(prog_name='platypus'))"
)

Block = tuple[str, str]  # ("file", path + "\n" + content) or ("console", text)


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    pattern = re.compile(r"(?:<!-- file: (\S+) -->\n)?```(\w*)\n(.*?)```", re.S)
    for match in pattern.finditer(text):
        path, lang, body = match.groups()
        if path:
            found.append(("file", f"{path}\n{body}"))
        elif lang == "console":
            found.append(("console", body))
    return found


def commands(console: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$ `` line of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out and line.strip():
            out[-1][1].append(line)
    return out


def test_the_tutorial_has_commands_for_every_step() -> None:
    found = [
        c
        for kind, body in blocks(TUTORIAL.read_text())
        if kind == "console"
        for c, _ in commands(body)
    ]

    for needed in (
        "platypus new flow",
        "platypus flows lint",
        "platypus flows test",
        "platypus flows run --dry-run",
        "platypus run &",
        "platypus send",
    ):
        assert any(c.startswith(needed) for c in found), needed


def test_every_command_of_the_tutorial_works(tmp_path: Path) -> None:
    shutil.copy(REPO / "samples" / "demo" / "platypus.yaml", tmp_path / "platypus.yaml")
    port = free_port()
    config = (tmp_path / "platypus.yaml").read_text().replace("port: 8787", f"port: {port}")
    (tmp_path / "platypus.yaml").write_text(config)
    vendor_app = create_vendor_app()
    background: list[subprocess.Popen[bytes]] = []
    with ServerThread(vendor_app) as server:
        env = {**os.environ, "PLATYPUS_VENDOR_URL": server.url}
        try:
            for kind, body in blocks(TUTORIAL.read_text()):
                if kind == "file":
                    path, content = body.split("\n", 1)
                    (tmp_path / path).write_text(content)
                    continue
                for command, expected in commands(body):
                    if command == "kill %1":
                        # The event is on disk once `send` returns; let it reach the vendor.
                        wait_for(lambda: bool(vendor_app.state.vendor.received))
                    run(
                        command.replace("8787", str(port)),
                        expected,
                        tmp_path,
                        env,
                        port,
                        background,
                    )
        finally:
            for process in background:
                process.terminate()
                process.wait(10)
        vendor: DemoVendor = vendor_app.state.vendor
        received = vendor.received
    assert [(r["method"], r["path"]) for r in received] == [("POST", "/orders")]
    assert received[0]["json"]["external_id"] == "006AAAAAAAAAAAA"
    svg = ET.fromstring((tmp_path / "flows.svg").read_text())  # noqa: S314 -- our own output
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"


def run(
    command: str,
    expected: list[str],
    cwd: Path,
    env: dict[str, str],
    port: int,
    background: list[subprocess.Popen[bytes]],
) -> None:
    if command == "kill %1":
        process = background.pop()
        process.terminate()
        process.wait(10)
        return
    in_background = command.endswith("&")
    argv = shlex.split(command.removesuffix("&"))
    assert argv[0] == "platypus", command
    full = [sys.executable, "-c", BOOT, *argv[1:]]
    if in_background:
        process = subprocess.Popen(
            full, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        background.append(process)
        wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
        return
    result = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    for line in expected:
        assert line in lines, f"{command}: {line!r} not in\n{result.stdout}"


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "platypus run exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_the_sample_lint_output_is_what_lint_prints_for_that_typo(tmp_path: Path) -> None:
    text = TUTORIAL.read_text()
    shown = re.search(
        r"<!-- output of: platypus flows lint, with (\S+) written (\S+) -->\n```\n(.*?)```",
        text,
        re.S,
    )
    flow = re.search(r"<!-- file: flows/big-deals.yaml -->\n```yaml\n(.*?)```", text, re.S)
    assert shown, "the page shows lint's output for a typo"
    assert flow
    right, wrong, output = shown.groups()
    shutil.copy(REPO / "samples" / "demo" / "platypus.yaml", tmp_path / "platypus.yaml")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "big-deals.yaml").write_text(flow[1].replace(right, wrong))

    result = subprocess.run(
        [sys.executable, "-c", BOOT, "flows", "lint"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == output
