"""The leak scan of ``test_leaks.py``, on the Kafka runtime.

``platypus web`` and ``platypus worker`` run as subprocesses against the real
broker of the fixtures, logging JSON at debug level. People events go through
the same flows, to the same fake vendor echoing each person back changed
(lower- or upper-cased, JSON-, URL- or HTML-escaped, cut off by the excerpt,
beside the connection's token), one person at a time. Then the scan reads every
log line of both processes, every header of every dead-letter record on the
broker, every refused-body record but its body, every file the worker keeps
on disk (the delivery ledger's SQLite columns, faust's data folder), and what
both processes answer over HTTP, and counts each person's values and every
secret it finds. It must find nothing.

Kept in clear on purpose (docs/operations.md, "Personal data"): the events
themselves, so a dead-letter record's value must be the event exactly as the
events topic holds it, and no more; and the refused bodies.

The Kafka runtime has no dashboard of its own yet; its pages are not scanned here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from platypus.redaction import MASK
from tests.fakes.vendor import FakeVendor
from tests.faults.leakscan import BADGE, ONBOARD, PEOPLE, VENDOR_TOKEN, Scan, script_echoes
from tests.kafka_broker import KafkaBroker
from tests.runtimes import stop_worker, wait_worker_healthy, write_kafka_project
from tests.support import free_port, wait_healthy

pytestmark = pytest.mark.slow


def _start(root: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    command = Path(sys.executable).parent / "platypus"
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [str(command), *args, "--project", str(root), "--log-level", "debug", "--log-json"],
            stdout=stderr,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "VENDOR_TOKEN": VENDOR_TOKEN},
            # faust writes its data folder into the current directory: the project's.
            cwd=root,
        )


async def _drained(broker: KafkaBroker, group: str, topic: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        ends = await asyncio.to_thread(broker.end_offsets, topic)
        done = await asyncio.to_thread(broker.committed, group, topic, missing=0)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return
        assert time.monotonic() < deadline, f"not drained: committed {done}, end {ends}"
        await asyncio.sleep(0.1)


async def test_no_secret_and_no_personal_value_is_kept_or_shown_on_kafka(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker
) -> None:
    project = tmp_path / "project"
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = write_kafka_project(
        project, fake_vendor.url, {"onboard": ONBOARD, "badge": BADGE}, kafka_broker, name="leaks"
    )
    config = yaml.safe_load((project / "platypus.yaml").read_text())
    config["connections"]["vendor"]["settings"]["auth"] = {
        "type": "bearer",
        "token_env": "VENDOR_TOKEN",
    }
    config["data_dir"] = "data"
    (project / "platypus.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    everyone = [v for p in PEOPLE for v in p.values]
    values = [*everyone, VENDOR_TOKEN]
    scan = Scan()
    sent: dict[str, bytes] = {}

    worker = _start(project, logs / "worker.log", "worker")
    web = _start(project, logs / "web.log", "web", "--port", str(port))
    try:
        await wait_worker_healthy(worker, settings.web_port)
        await wait_healthy(url, web)
        async with httpx.AsyncClient(timeout=30) as http:
            for n, person in enumerate(PEOPLE):
                script_echoes(fake_vendor, n, person)
                event = person.event(n)
                answer = await http.post(f"{url}/events", json=event)
                assert answer.status_code == 202, answer.text
                sent[event["id"]] = json.dumps(event).encode()
                # One at a time: each vendor answer is for its own person.
                await _drained(kafka_broker, settings.group_id, settings.topic("events"))
            bad = PEOPLE[0].event(99)
            bad["data"]["hire_date"] = PEOPLE[0].email
            bad["data"]["first_name"] = {"name": PEOPLE[0].first}
            refused = await http.post(f"{url}/events", json=bad)
            assert refused.status_code == 422, refused.text
            scan.check("web 422 answer", "http answers", refused.text, values)
            for where, address in (
                ("web", f"{url}/healthz"),
                ("worker", f"http://127.0.0.1:{settings.web_port}/healthz"),
            ):
                answer = await http.get(address)
                assert answer.status_code < 500, (where, answer.status_code)
                scan.check(f"{where} /healthz", "http answers", answer.text, values)
    finally:
        stop_worker(web)
        stop_worker(worker)

    letters = await asyncio.to_thread(kafka_broker.read, settings.topic("dead-letter"))
    events = {
        json.loads(r.value or b"")["id"]: r.value
        for r in await asyncio.to_thread(kafka_broker.read, settings.topic("events"))
    }
    for letter in letters:
        event_id = dict(letter.headers)["platypus.event.id"].decode()
        # The value is the event as the events topic holds it: nothing of the vendor's added.
        assert letter.value == events[event_id], event_id
        for name, value in letter.headers:
            scan.check(
                f"dead letter {event_id} {name}", "dead-letter headers", value.decode(), values
            )
    for record in await asyncio.to_thread(kafka_broker.read, settings.topic("rejected")):
        kept = json.loads(record.value or b"{}")
        kept.pop("body")  # the refused body, kept whole on purpose
        scan.check("rejected record", "rejected records", json.dumps(kept), values)
    cells = _scan_files(project, scan, values)
    text = ""
    for log in sorted(logs.iterdir()):
        text += log.read_text(errors="replace")
        for number, line in enumerate(log.read_text(errors="replace").splitlines()):
            scan.check(f"{log.name} line {number}", "log lines", line, values)

    print(
        f"\nleak scan (kafka): {len(letters)} dead letters; read "
        + ", ".join(f"{count} {kind}" for kind, count in sorted(scan.read.items()))
        + f"; {len(scan.leaks)} leaks"
    )
    assert scan.leaks == [], "\n".join(scan.leaks[:20])
    # The scan read what it was meant to: every failure but the discarded badge,
    # the vendors' answers kept in the ledger, the echoes masked in the logs.
    assert len(letters) == 6
    assert scan.read["rejected records"] == 1
    assert cells >= 7  # a ledger row for each delivered step: six badges, one onboarding
    assert MASK in text
    assert scan.read["log lines"] > 20


def _scan_files(project: Path, scan: Scan, values: list[str]) -> int:
    """Every file the worker wrote under the project: SQLite by column, others as text."""
    ledger_rows = 0
    written = [
        p
        for p in project.rglob("*")
        if p.is_file() and p.suffix != ".yaml" and "flows" not in p.relative_to(project).parts
    ]
    assert written, "the worker kept nothing on disk"
    for path in written:
        raw = path.read_bytes()
        if raw.startswith(b"SQLite format 3"):
            ledger_rows += _scan_sqlite(path, scan, values)
        scan.check(str(path.relative_to(project)), "files", raw.decode("utf-8", "replace"), values)
    return ledger_rows


def _scan_sqlite(path: Path, scan: Scan, values: list[str]) -> int:
    rows = 0
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 -- its own table names
            names = [d[0] for d in cursor.description]
            for row in cursor:
                rows += table == "ledger"
                record: dict[str, Any] = dict(zip(names, row, strict=True))
                for column, value in record.items():
                    if value is None:
                        continue
                    cell = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    scan.check(f"{path.name} {table}.{column}", "store cells", str(cell), values)
    return rows
