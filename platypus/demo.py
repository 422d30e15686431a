"""``platypus run --demo``: the sample flows against a stand-in vendor on loopback.

Starts the stand-in vendor (`platypus.demo_vendor`), points the ``vendor``
connection at it through ``PLATYPUS_VENDOR_URL``, posts ``samples/events.jsonl``
to the ingress over HTTP, waits for every outcome and prints what happened to
each event: delivered, filtered, retried, dead-lettered, or refused at the door.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platypus._server import ServerThread
from platypus.app import Platypus
from platypus.deadletter import DEAD_LETTER_TOPIC, describe_headers
from platypus.demo_vendor import create_vendor_app
from platypus.send import SendReport, send_lines

__all__ = ["DemoSummary", "run_demo", "start_vendor"]

VENDOR_URL_ENV = "PLATYPUS_VENDOR_URL"
SAMPLES = Path("samples") / "events.jsonl"


class DemoSummary:
    """Counts of what happened to the sample events, from the durable outcome records."""

    def __init__(self, app: Platypus, sent: SendReport) -> None:
        self.sent = sent
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
            lines.append(f"  samples/events.jsonl:{number}: {reason}")
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
    """Run the demo; returns the still-running app, its summary and the vendor server."""
    vendor, vendor_url = start_vendor()
    echo(f"Stand-in vendor listening on {vendor_url}")
    app = Platypus.from_project(root, data_dir=data_dir)
    await app.start(port=port)
    echo(f"Platypus ingress on {app.url} (data in {data_dir})")
    samples = root / SAMPLES
    with samples.open(encoding="utf-8") as handle:
        report = await send_lines(f"{app.url}/events", handle)
    await app.drain()
    return app, DemoSummary(app, report), vendor
