"""Posting events from a JSON Lines file to a running ingress, in file order.

Lines go in batches of consecutive valid-JSON lines, one request at a time, so
events with the same key arrive in the order of the file. A batch refused for a
validation error is resent line by line, so every good line is still accepted
and every bad one is reported (and recorded as rejected by the ingress).

``on_progress`` hears how many lines each answer settled (for a progress bar);
`render_summary` says what was refused and why, grouped, then line by line.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["ProgressCallback", "SendReport", "count_lines", "render_summary", "send_lines"]

ProgressCallback = Callable[[int], None]
"""Called with the number of lines an answer just settled (accepted, duplicate or rejected)."""

# What each refusal status means, for the summary.
_WHY = {
    400: "not JSON, or not an event",
    404: "no such endpoint",
    409: "conflict",
    413: "too large",
    415: "not a JSON content type",
    422: "does not match its schema",
}


@dataclass(slots=True)
class SendReport:
    """What the ingress answered for a file."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicates + len(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        """The report as ``platypus send --json`` prints it (docs/cli.md)."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [{"line": line, "reason": reason} for line, reason in self.rejected],
            "total": self.total,
        }

    @property
    def headline(self) -> str:
        """One line: ``5 accepted, 0 duplicate(s), 2 rejected``."""
        return (
            f"{self.accepted} accepted, {self.duplicates} duplicate(s), "
            f"{len(self.rejected)} rejected"
        )


def count_lines(lines: Iterable[str]) -> int:
    """The lines `send_lines` would post (non-blank): the length of a progress bar."""
    return sum(1 for line in lines if line.strip())


def render_summary(report: SendReport, name: str) -> str:
    """Why lines were rejected, grouped by status, then each one as ``name:line: reason``.

    Empty when nothing was rejected. ``report.headline`` has the totals.
    """
    if not report.rejected:
        return ""
    statuses: Counter[str] = Counter()
    for _, reason in report.rejected:
        code = reason.split(":", 1)[0]
        statuses[code] += 1
    out = ["Rejected (recorded by the ingress as rejected):"]
    for code, count in sorted(statuses.items()):
        why = _WHY.get(int(code), "refused") if code.isdigit() else "refused"
        out.append(f"  {count:>5}  {code} {why}")
    out.append("")
    out.extend(f"  {name}:{number}: {reason}" for number, reason in report.rejected)
    return "\n".join(out)


async def send_lines(
    url: str,
    lines: Iterable[str],
    *,
    batch_size: int = 100,
    client: httpx.AsyncClient | None = None,
    on_progress: ProgressCallback | None = None,
) -> SendReport:
    """Post every non-blank line of ``lines`` to ``url`` (the ``/events`` endpoint)."""
    report = SendReport()
    progress: ProgressCallback = on_progress or _quiet
    owned = client is None
    http = client or httpx.AsyncClient(timeout=60.0)
    batch: list[tuple[int, str]] = []
    try:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                json.loads(text)
            except ValueError:
                await _flush(http, url, batch, report, progress)
                batch = []
                await _post_one(http, url, number, text, report, progress)
                continue
            batch.append((number, text))
            if len(batch) >= batch_size:
                await _flush(http, url, batch, report, progress)
                batch = []
        await _flush(http, url, batch, report, progress)
    finally:
        if owned:
            await http.aclose()
    return report


def _quiet(_lines: int) -> None:
    pass


async def _flush(
    http: httpx.AsyncClient,
    url: str,
    batch: list[tuple[int, str]],
    report: SendReport,
    progress: ProgressCallback,
) -> None:
    if not batch:
        return
    if len(batch) == 1:
        await _post_one(http, url, batch[0][0], batch[0][1], report, progress)
        return
    body = "[" + ",".join(text for _, text in batch) + "]"
    response = await http.post(
        url, content=body, headers={"content-type": "application/cloudevents-batch+json"}
    )
    if response.status_code == 202:
        answer = response.json()
        report.accepted += answer["accepted"]
        report.duplicates += answer["duplicates"]
        progress(len(batch))
        return
    if response.status_code in (400, 413, 422):
        for number, text in batch:
            await _post_one(http, url, number, text, report, progress)
        return
    response.raise_for_status()


async def _post_one(
    http: httpx.AsyncClient,
    url: str,
    number: int,
    text: str,
    report: SendReport,
    progress: ProgressCallback,
) -> None:
    response = await http.post(
        url, content=text, headers={"content-type": "application/cloudevents+json"}
    )
    if response.status_code == 202:
        answer = response.json()
        report.accepted += answer["accepted"]
        report.duplicates += answer["duplicates"]
    elif 400 <= response.status_code < 500:
        try:
            reason = str(response.json().get("error", response.text))
        except ValueError:
            reason = response.text
        report.rejected.append((number, f"{response.status_code}: {reason}"))
    else:
        response.raise_for_status()
    progress(1)
