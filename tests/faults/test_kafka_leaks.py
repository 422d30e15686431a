"""The leak scan of ``test_leaks.py``, on the Kafka runtime.

``platypus web`` and ``platypus worker`` run as subprocesses against the real
broker of the fixtures, logging JSON at debug level. People events go through
the same flows, to the same fake vendor echoing each person back changed
(lower- or upper-cased, JSON-, URL- or HTML-escaped, cut off by the excerpt,
beside the connection's token), one person at a time. Then the scan reads every
log line of both processes, every header of every dead-letter record on the
broker, every refused-body record but its body, every file the worker and
the indexer keep on disk (the delivery ledger's and the failed-event store's
SQLite columns, faust's data folder), what the processes answer over HTTP, and
the indexer's operations dashboard (every HTML page and JSON API answer, for a
viewer logged in and for a viewer's API token), and counts each person's values
and every secret it finds. It must find nothing.

Kept in clear on purpose (docs/operations.md, "Personal data"): the events
themselves, so a dead-letter record's value must be the event exactly as the
events topic holds it, and no more (and the store's copy of it, `_KEPT_WHOLE`);
and the refused bodies.
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

from platypus.ops.auth import hash_password
from platypus.ops.store import FailureStore
from platypus.redaction import MASK
from tests.fakes.vendor import FakeVendor
from tests.faults.leakscan import BADGE, ONBOARD, PEOPLE, VENDOR_TOKEN, Scan, script_echoes
from tests.kafka_broker import KafkaBroker
from tests.ops.web.support import PASSWORDS, TOKENS, login
from tests.runtimes import stop_worker, wait_worker_healthy, write_kafka_project
from tests.support import free_port, wait_healthy

pytestmark = pytest.mark.slow

# The events, kept whole on purpose in the failed-event store as on the topics.
_KEPT_WHOLE = {("failures", "payload"), ("failures", "replay_payload")}


def _start(root: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    command = Path(sys.executable).parent / "platypus"
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [str(command), *args, "--project", str(root), "--log-level", "debug", "--log-json"],
            stdout=stderr,
            stderr=stderr,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "VENDOR_TOKEN": VENDOR_TOKEN,
                "GRAFANA_TOKEN": TOKENS["grafana"],
            },
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
    (project / "store").mkdir(parents=True)
    store_url = f"sqlite:///{project / 'store' / 'failures.db'}"
    config["failures_store"] = store_url
    # A viewer, by password and by API token: what anyone allowed to look sees.
    config["ops"] = {
        "users": {"vera": {"role": "viewer", "password_hash": hash_password(PASSWORDS["vera"])}},
        "tokens": {"grafana": {"role": "viewer", "token": {"env": "GRAFANA_TOKEN"}}},
    }
    (project / "platypus.yaml").write_text(yaml.safe_dump(config))
    port, ops_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    ops_url = f"http://127.0.0.1:{ops_port}"
    everyone = [v for p in PEOPLE for v in p.values]
    values = [*everyone, VENDOR_TOKEN, PASSWORDS["vera"], TOKENS["grafana"]]
    cookies: list[str] = []
    scan = Scan()
    sent: dict[str, bytes] = {}

    worker = _start(project, logs / "worker.log", "worker")
    web = _start(project, logs / "web.log", "web", "--port", str(port))
    indexer = _start(
        project, logs / "indexer.log", "indexer", "--host", "127.0.0.1", "--port", str(ops_port)
    )
    try:
        await wait_worker_healthy(worker, settings.web_port)
        await wait_healthy(url, web)
        await wait_healthy(ops_url, indexer)
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
                ("indexer", f"{ops_url}/healthz"),
            ):
                answer = await http.get(address)
                assert answer.status_code < 500, (where, answer.status_code)
                scan.check(f"{where} /healthz", "http answers", answer.text, values)
        ids = await _indexed(store_url, 6, indexer)
        await _scan_dashboard(ops_url, ids, scan, values, cookies)
    finally:
        stop_worker(indexer)
        stop_worker(web)
        stop_worker(worker)
    values += [c for c in cookies if c]

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
    assert scan.server_errors == []
    assert scan.read["dashboard pages"] == (4 + 6) * 2 + (4 + 6)  # session: pages, API; token
    assert MASK in text
    assert scan.read["log lines"] > 20


async def _indexed(store_url: str, count: int, indexer: subprocess.Popen[bytes]) -> list[int]:
    """The ids of the failed-event entries, once the indexer has stored ``count``."""
    store = FailureStore(store_url)
    deadline = time.monotonic() + 60
    try:
        while True:
            assert indexer.poll() is None, f"platypus indexer exited with {indexer.returncode}"
            found = await asyncio.to_thread(store.search, limit=None)
            if len(found) >= count:
                return sorted(e.id for e in found)
            assert time.monotonic() < deadline, f"{len(found)} of {count} entries indexed"
            await asyncio.sleep(0.2)
    finally:
        store.close()


async def _scan_dashboard(
    ops_url: str, ids: list[int], scan: Scan, values: list[str], cookies: list[str]
) -> None:
    """Every page and API answer of the indexer's dashboard, for a viewer, by session and token."""
    pages = ["/ops/", "/ops/failures", "/ops/audit", "/ops/failures?q=corp-pii"]
    pages += [f"/ops/failures/{i}" for i in ids]
    api = ["/ops/api/overview", "/ops/api/failures", "/ops/api/audit", "/ops/api/me"]
    api += [f"/ops/api/failures/{i}" for i in ids]

    async def read(client: httpx.AsyncClient, path: str, where: str, **headers: str) -> str:
        answer = await client.get(path, headers=headers)
        if answer.status_code >= 500:
            scan.server_errors.append(f"{where}: {answer.status_code}")
        assert answer.status_code == 200, (where, answer.status_code, answer.text[:300])
        scan.check(where, "dashboard pages", answer.text, values)
        return answer.text

    async with httpx.AsyncClient(base_url=ops_url, timeout=30) as viewer:
        await login(viewer, "vera")
        cookies.extend(viewer.cookies.values())
        shown = {path: await read(viewer, path, f"vera {path}") for path in pages + api}
    # The pages show the failures, with the vendors' echoes masked, not an empty list.
    assert json.loads(shown["/ops/api/failures"])["total"] == len(ids)
    assert all(MASK in shown[f"/ops/failures/{i}"] for i in ids[:1])
    async with httpx.AsyncClient(base_url=ops_url, timeout=30) as bot:
        for path in api:
            await read(bot, path, f"token {path}", Authorization=f"Bearer {TOKENS['grafana']}")


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
        if path.name.startswith("failures.db"):
            continue  # it holds the events whole (_KEPT_WHOLE): read by column only
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
                    if value is None or (table, column) in _KEPT_WHOLE:
                        continue
                    cell = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    scan.check(f"{path.name} {table}.{column}", "store cells", str(cell), values)
    return rows
