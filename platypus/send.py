"""Posting events from a JSON Lines file to a running ingress, in file order.

Lines go in batches of consecutive valid-JSON lines, one request at a time, so
events with the same key arrive in the order of the file. A batch refused for a
validation error is resent line by line, so every good line is still accepted
and every bad one is reported (and recorded as rejected by the ingress).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

__all__ = ["SendReport", "send_lines"]


@dataclass(slots=True)
class SendReport:
    """What the ingress answered for a file."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicates + len(self.rejected)


async def send_lines(
    url: str,
    lines: Iterable[str],
    *,
    batch_size: int = 100,
    client: httpx.AsyncClient | None = None,
) -> SendReport:
    """Post every non-blank line of ``lines`` to ``url`` (the ``/events`` endpoint)."""
    report = SendReport()
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
                await _flush(http, url, batch, report)
                batch = []
                await _post_one(http, url, number, text, report)
                continue
            batch.append((number, text))
            if len(batch) >= batch_size:
                await _flush(http, url, batch, report)
                batch = []
        await _flush(http, url, batch, report)
    finally:
        if owned:
            await http.aclose()
    return report


async def _flush(
    http: httpx.AsyncClient, url: str, batch: list[tuple[int, str]], report: SendReport
) -> None:
    if not batch:
        return
    if len(batch) == 1:
        await _post_one(http, url, batch[0][0], batch[0][1], report)
        return
    body = "[" + ",".join(text for _, text in batch) + "]"
    response = await http.post(
        url, content=body, headers={"content-type": "application/cloudevents-batch+json"}
    )
    if response.status_code == 202:
        answer = response.json()
        report.accepted += answer["accepted"]
        report.duplicates += answer["duplicates"]
        return
    if response.status_code in (400, 413, 422):
        for number, text in batch:
            await _post_one(http, url, number, text, report)
        return
    response.raise_for_status()


async def _post_one(
    http: httpx.AsyncClient, url: str, number: int, text: str, report: SendReport
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
