"""``platypus run --demo``: the sample project against a stand-in vendor on loopback.

The demo runs its own project, ``samples/demo/`` (``platypus.yaml``, ``flows/``
and ``events.jsonl``), so it needs no credentials: the repository's own
``flows/`` are the real catalog flows, which need Salesforce, Zuora and the rest.
`demo_project` finds it (see there). The demo starts the stand-in vendor
(`platypus.demo_vendor`), points the ``vendor`` connection at it through
``PLATYPUS_VENDOR_URL``, posts ``events.jsonl`` to the ingress over HTTP, waits
for every outcome and prints what happened to each event: delivered, filtered,
retried, dead-lettered, or refused at the door.
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

__all__ = ["DemoSummary", "demo_project", "run_demo", "start_vendor"]

VENDOR_URL_ENV = "PLATYPUS_VENDOR_URL"
SAMPLES = "events.jsonl"
DEMO_FOLDER = Path("samples") / "demo"
# The sample project of the checkout this package runs from (an editable install).
BUNDLED_DEMO = Path(__file__).resolve().parent.parent / DEMO_FOLDER


def demo_project(root: Path) -> Path:
    """The sample project the demo runs, for ``--project root``.

    ``root`` itself when it is a sample project (``--project samples/demo``: a
    ``platypus.yaml`` beside an ``events.jsonl``), else its ``samples/demo``
    (the repository root, where ``make demo`` runs), else the one of the
    checkout Platypus runs from.
    """
    for folder in (root, root / DEMO_FOLDER, BUNDLED_DEMO):
        if (folder / CONFIG_FILE).is_file() and (folder / SAMPLES).is_file():
            return folder
    raise ConfigurationError(
        f"no demo project in {root} or {root / DEMO_FOLDER}: the demo needs a folder "
        f"holding {CONFIG_FILE}, flows/ and {SAMPLES}; run it from the repository root "
        "or pass --project samples/demo"
    )


class DemoSummary:
    """Counts of what happened to the sample events, from the durable outcome records."""

    def __init__(self, app: Platypus, sent: SendReport, samples: str = SAMPLES) -> None:
        self.sent = sent
        self.samples = samples
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
            f"Sent {self.sent.total} sample events: {self.sent.accepted} accepted, "
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
        for number, reason in self.sent.rejected:
            lines.append(f"  {self.samples}:{number}: {reason}")
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
    samples = project / SAMPLES
    with samples.open(encoding="utf-8") as handle:
        report = await send_lines(f"{app.url}/events", handle)
    await app.drain()
    return app, DemoSummary(app, report, _shown(samples)), vendor


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is under it, as a user typed it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
