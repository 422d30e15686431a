"""``platypus run --demo``: a project's flows against a stand-in vendor on loopback.

The demo runs the project it is started in when that folder has its own
``platypus.yaml`` (a project of your own, such as the tutorial's): it posts the
project's ``events.jsonl``, or else every ``samples/*.event.json`` that
``platypus new flow`` wrote. From the repository root, and from a folder with no
``platypus.yaml``, it runs the sample project ``samples/demo/`` instead
(``platypus.yaml``, ``flows/`` and ``events.jsonl``), which needs no
credentials: the repository's own ``flows/`` are the real catalog flows, which
need Salesforce, Zuora and the rest. `demo_project` finds the project (see
there). The demo starts the stand-in vendor (`platypus.demo_vendor`), points the
``vendor`` connection at it through ``PLATYPUS_VENDOR_URL``, posts the events to
the ingress over HTTP, waits for every outcome and prints what happened to each
event: delivered, filtered, retried, dead-lettered, or refused at the door.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platypus._server import ServerThread
from platypus.config import CONFIG_FILE
from platypus.deadletter import describe_headers
from platypus.demo_vendor import create_vendor_app
from platypus.exceptions import ConfigurationError
from platypus.records import DEAD_LETTER_TOPIC
from platypus.runtime.embedded import Platypus
from platypus.send import SendReport, send_lines

__all__ = ["DemoSummary", "demo_events", "demo_project", "run_demo", "start_vendor"]

VENDOR_URL_ENV = "PLATYPUS_VENDOR_URL"
SAMPLES = "events.jsonl"
DEMO_FOLDER = Path("samples") / "demo"
# What `platypus new flow` writes beside a flow: one event on one line.
EVENT_SAMPLES = "samples/*.event.json"
# The sample project of the checkout this package runs from (an editable install).
BUNDLED_DEMO = Path(__file__).resolve().parent.parent / DEMO_FOLDER


def demo_project(root: Path) -> Path:
    """The project the demo runs, for ``--project root``.

    ``root`` itself when it is a sample project (``--project samples/demo``: a
    ``platypus.yaml`` beside an ``events.jsonl``), else its ``samples/demo``
    (the repository root, where ``make demo`` runs), else ``root`` when it has a
    ``platypus.yaml`` and sample events (`demo_events`: a project of your own,
    such as the tutorial's), else the sample project of the checkout Platypus
    runs from.
    """
    for folder in (root, root / DEMO_FOLDER):
        if (folder / CONFIG_FILE).is_file() and (folder / SAMPLES).is_file():
            return folder
    if (root / CONFIG_FILE).is_file():
        # A project of its own: demoing another one would show flows it does not have.
        if not demo_events(root):
            raise ConfigurationError(
                f"no sample events in {root}: the demo posts the project's {SAMPLES} or "
                f"its {EVENT_SAMPLES}; `platypus new flow` writes one, or write "
                f"{SAMPLES} with one CloudEvent a line"
            )
        return root
    if (BUNDLED_DEMO / CONFIG_FILE).is_file() and (BUNDLED_DEMO / SAMPLES).is_file():
        return BUNDLED_DEMO
    raise ConfigurationError(
        f"no demo project in {root} or {root / DEMO_FOLDER}: the demo needs a folder "
        f"holding {CONFIG_FILE}, flows/ and {SAMPLES}; run it from the repository root "
        "or pass --project samples/demo"
    )


def demo_events(project: Path) -> list[Path]:
    """The files the demo posts: ``events.jsonl``, else ``samples/*.event.json`` by name."""
    if (project / SAMPLES).is_file():
        return [project / SAMPLES]
    return sorted(project.glob(EVENT_SAMPLES))


class DemoSummary:
    """Counts of what happened to the sample events, from the durable outcome records."""

    def __init__(self, app: Platypus, sent: list[tuple[str, SendReport]]) -> None:
        """``sent``: each file posted, as shown to the user, with what the ingress answered."""
        self.sent = SendReport()
        self.refused: list[str] = []
        for name, report in sent:
            self.sent.accepted += report.accepted
            self.sent.duplicates += report.duplicates
            self.sent.rejected += report.rejected
            self.refused += [f"{name}:{number}: {reason}" for number, reason in report.rejected]
        outcomes = app.log.outcomes()
        by_event: dict[str, list[dict[str, Any]]] = {}
        for row in outcomes:
            by_event.setdefault(row["event_id"], []).append(row)
        self.events = len(by_event)
        self.status: Counter[str] = Counter()
        for rows in by_event.values():
            statuses = {r["status"] for r in rows}
            # An event is dead-lettered if any flow dead-lettered it, delivered if any
            # flow delivered it (and none failed), filtered if every flow filtered it.
            for status in ("dead_lettered", "discarded", "delivered", "filtered"):
                if status in statuses:
                    self.status[status] += 1
                    break
        self.retried = sum(1 for row in app.log.delivery_rows() if row["attempts"] > 1) + sum(
            1 for row in outcomes if row["status"] == "dead_lettered" and row["attempts"] > 1
        )
        self.dead_letters = [
            describe_headers(record.headers) for record in app.log.read(DEAD_LETTER_TOPIC)
        ]

    def render(self) -> str:
        """The summary as the terminal shows it."""
        lines = [
            f"Sent {self.sent.total} sample event{'' if self.sent.total == 1 else 's'}: "
            f"{self.sent.accepted} accepted, "
            f"{len(self.sent.rejected)} refused at the door (recorded as rejected).",
            "",
            f"  delivered      {self.status['delivered']:>3}",
            f"  filtered       {self.status['filtered']:>3}",
            f"  retried        {self.retried:>3}   (deliveries that needed more than one attempt)",
            f"  dead-lettered  {self.status['dead_lettered']:>3}",
        ]
        if self.status["discarded"]:
            lines.append(f"  discarded      {self.status['discarded']:>3}")
        if self.sent.rejected:
            lines.append("\nRefused at the door:")
        lines.extend(f"  {refused}" for refused in self.refused)
        if self.dead_letters:
            lines.append("\nDead letters (original event kept for replay):")
        for letter in self.dead_letters:
            lines.append(
                f"  event {letter.get('platypus.event.id')} "
                f"flow {letter.get('platypus.flow')} step {letter.get('platypus.step')} "
                f"after {letter.get('platypus.attempts')} attempt(s):\n    "
                f"{letter.get('__connect.errors.exception.message')}"
            )
        return "\n".join(lines)


def start_vendor() -> tuple[ServerThread, str]:
    """Start the stand-in vendor and point ``PLATYPUS_VENDOR_URL`` at it."""
    server = ServerThread(create_vendor_app())
    url = server.start()
    os.environ[VENDOR_URL_ENV] = url
    return server, url


async def run_demo(
    root: Path,
    *,
    data_dir: Path,
    port: int | None,
    echo: Callable[[str], None],
) -> tuple[Platypus, DemoSummary, ServerThread]:
    """Run the demo project of ``root`` (see `demo_project`).

    Returns the still-running app, its summary and the vendor server.
    """
    project = demo_project(root)
    vendor, vendor_url = start_vendor()
    echo(f"Stand-in vendor listening on {vendor_url}")
    app = Platypus.from_project(project, data_dir=data_dir)
    await app.start(port=port)
    echo(f"Platypus ingress on {app.url} (data in {data_dir}, flows in {project / 'flows'})")
    sent: list[tuple[str, SendReport]] = []
    for samples in demo_events(project):
        with samples.open(encoding="utf-8") as handle:
            sent.append((_shown(samples), await send_lines(f"{app.url}/events", handle)))
    await app.drain()
    return app, DemoSummary(app, sent), vendor


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is under it, as a user typed it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
