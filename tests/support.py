"""Builders shared by the integration tests: events, projects and running apps."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx

from platypus.adapter import Adapter
from platypus.config import ConnectionSpec, ProjectConfig
from platypus.flow.loader import load_flows
from platypus.records import EVENTS_TOPIC
from platypus.retry import RetryPolicy
from platypus.runtime.embedded import Platypus
from platypus.runtime.embedded.values import ValueReader

_ids = itertools.count(1)


# Salesforce ids: 006 + 15 characters for opportunities, 001 + 15 for accounts.
def opportunity_id(n: int) -> str:
    return f"006{n:015d}"


def closed_won(
    subject: str | None = None,
    *,
    amount: float = 5000,
    event_id: str | None = None,
    owner_email: str = "owner.person@example.com",
    **data: Any,
) -> dict[str, Any]:
    """A valid ``sales.opportunity.closed_won.v1`` event."""
    opp = subject or opportunity_id(next(_ids))
    body: dict[str, Any] = {
        "opportunity_id": opp,
        "account_id": "001" + opp[3:],
        "account_name": "Acme Pty Ltd",
        "amount": amount,
        "currency": "EUR",
        "close_date": "2026-11-02",
        "owner_email": owner_email,
        "line_items": [
            {"product_code": "PLAT-ENT", "quantity": 2, "unit_price": 100, "currency": "EUR"}
        ],
    }
    body.update(data)
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{next(_ids)}",
        "source": "/salesforce/test",
        "type": "sales.opportunity.closed_won.v1",
        "subject": opp,
        "time": "2026-11-02T09:15:00Z",
        "data": body,
    }


def worker_hired(worker_id: str = "W-1", **data: Any) -> dict[str, Any]:
    """A valid ``people.worker.hired.v1`` event."""
    body: dict[str, Any] = {
        "worker_id": worker_id,
        "first_name": "Ada",
        "last_name": "Quillfeather",
        "work_email": "ada.quillfeather@example.com",
        "hire_date": "2026-12-01",
        "position": {"title": "Analyst", "department": "Finance", "location": "Sydney"},
    }
    body.update(data)
    return {
        "specversion": "1.0",
        "id": f"evt-{next(_ids)}",
        "source": "/workday/test",
        "type": "people.worker.hired.v1",
        "subject": worker_id,
        "data": body,
    }


# The crash tests' "settled ahead" case, on both runtimes: an event of amount 1
# waits at /slow while a later one (amount 2) is refused at /refused and
# dead-lettered; a kill then must not run the refused one again.
SETTLED_AHEAD_FLOW = """
name: settled-ahead
consumes: sales.opportunity.closed_won.v1
steps:
  - name: slow
    to: vendor.post
    when: data.amount == `1`
    params: {path: /slow}
    payload: {event: id}
  - name: refused
    to: vendor.post
    when: data.amount == `2`
    params: {path: /refused}
    payload: {event: id}
"""

# The crash and kill tests' flow, on both runtimes: one order a event, carrying
# its key and its place in the key's sequence, so the vendor's log shows order.
SEQUENCE_FLOW = """
name: orders
consumes: sales.opportunity.closed_won.v1
steps:
  - name: create_order
    to: vendor.post
    params: {path: /orders}
    payload: {event: id, key: subject, seq: data.amount}
"""

ORDER_FLOW = """
name: orders
consumes: sales.opportunity.closed_won.v1
when: "data.amount >= `1000`"
steps:
  - name: create_order
    to: vendor.post
    params: {path: /orders}
    payload:
      external_id: data.opportunity_id
      amount: data.amount
      currency: "'EUR'"
      skus: data.line_items[*].product_code
"""


def write_project(root: Path, flows: Mapping[str, str]) -> Path:
    """Write flow files into ``root/flows``; returns that folder."""
    folder = root / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def write_embedded_project(
    root: Path,
    vendor_url: str,
    flows: Mapping[str, str],
    *,
    partitions: int = 4,
    timeout: float | None = None,
) -> None:
    """A project for the ``platypus run`` subprocess tests (crash, kill loops).

    The flows, and a ``platypus.yaml`` whose ``vendor`` connection is the http
    adapter at ``vendor_url``; retries are quick and many, so a kill, not the
    retry budget, decides what happens to an event.
    """
    write_project(root, flows)
    vendor = f'base_url: "{vendor_url}"' + (f", timeout: {timeout:g}" if timeout else "")
    (root / "platypus.yaml").write_text(
        textwrap.dedent(
            f"""
            data_dir: data
            partitions: {partitions}
            concurrency: 8
            retry: {{initial_delay: 10ms, max_delay: 100ms, max_attempts: 50}}
            connections:
              vendor:
                adapter: http
                settings: {{{vendor}}}
            """
        )
    )


def project_config(root: Path, vendor_url: str, **overrides: Any) -> ProjectConfig:
    """A configuration whose ``vendor`` connection is the http adapter at ``vendor_url``."""
    settings: dict[str, Any] = {
        "root": root,
        "data_dir": root / "data",
        "partitions": 4,
        "concurrency": 8,
        # Short waits so retry tests are quick; tests that need longer ones say so.
        "retry": RetryPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=4),
        "connections": {
            "vendor": ConnectionSpec(
                adapter="http", settings={"base_url": vendor_url, "timeout": 5}
            )
        },
    }
    settings.update(overrides)
    return ProjectConfig(**settings)


@asynccontextmanager
async def running(
    root: Path,
    vendor_url: str,
    flows: Mapping[str, str],
    *,
    http: bool = False,
    adapters: Mapping[str, Adapter] | None = None,
    **overrides: Any,
) -> AsyncIterator[Platypus]:
    """A started `Platypus` over ``flows``, stopped on exit.

    ``adapters`` replaces connections by adapter instances; ``overrides`` go to
    `project_config`.
    """
    folder = write_project(root, flows)
    config = project_config(root, vendor_url, **overrides)
    app = Platypus(config, load_flows(folder), connections=adapters)
    await app.start(http=http, port=0)
    try:
        yield app
    finally:
        await app.stop()


def stored_form(event: Mapping[str, Any]) -> bytes:
    """The bytes Platypus stores for ``event``: compact UTF-8 JSON (written here with json)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


async def ingest(app: Platypus, *events: Mapping[str, Any]) -> list[bytes]:
    """Append events through the ingress (one request each); returns the bytes stored."""
    raws = []
    for event in events:
        raw = stored_form(event)
        result = await app.ingress.accept(raw, "application/cloudevents+json")
        assert result.status == 202, result.body
        raws.append(raw)
    return raws


def records_on_disk(database: Path, topic: str) -> list[tuple[bytes, dict[str, str]]]:
    """(value, headers) of each record of ``topic`` in the embedded log at ``database``,
    in the order they were appended, read through a connection of the test's own."""
    with closing(sqlite3.connect(database)) as conn:
        rows = conn.execute(
            "SELECT r.value, r.dictionary, r.partition, r.offset, "
            "COALESCE(r.headers, h.headers) FROM records r "
            "JOIN topics t ON t.id = r.topic LEFT JOIN header_sets h ON h.id = r.header_set "
            "WHERE t.name = ? ORDER BY r.id",
            (topic,),
        ).fetchall()
        # Values compressed with a dictionary read back as the log reads them.
        stored = ValueReader(conn, str(database))
        return [
            (
                stored.decode(bytes(value), dictionary, f"{topic}/{partition}@{offset}"),
                dict(json.loads(headers or "[]")),
            )
            for value, dictionary, partition, offset, headers in rows
        ]


def stored_events(app: Platypus) -> list[bytes]:
    """The events on disk, read through a new connection: proof of a durable append."""
    return [value for value, _ in records_on_disk(app.log.path, EVENTS_TOPIC)]


def outcome_of(app: Platypus, event_id: str) -> list[dict[str, Any]]:
    """The recorded outcomes of one event."""
    return [row for row in app.log.outcomes() if row["event_id"] == event_id]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_platypus(root: Path, port: int) -> subprocess.Popen[bytes]:
    """``platypus run`` for the project in ``root``, as a subprocess."""
    command = Path(sys.executable).parent / "platypus"
    return subprocess.Popen(
        [
            str(command),
            "run",
            "--project",
            str(root),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until ``GET /healthz`` answers; fail with the process's stderr if it died."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"platypus run exited with {process.returncode}: {stderr}")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("platypus run did not become healthy within 30 s")
