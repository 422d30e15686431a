"""A scan for secrets and personal data in every place Platypus keeps or shows text.

Vendors echo personal data back changed: lower- or upper-cased, JSON-, URL- or
HTML-escaped, cut off by an excerpt. This runs people events through flows whose
fake vendor does all of that (for failures that dead-letter, that are discarded,
that are retried, and for answers to deliveries), logs in to the dashboard (also
with a password typed into the user name box) and calls its API with tokens.
Then it reads every log line, every dead-letter header, every column of both
databases, every dashboard page and API answer for a viewer and an operator, and
``platypus dlq list/show``, and counts what it finds of each person's values and
of every secret. It must find nothing, and no page may answer 5xx.

Kept in clear on purpose, and so not scanned (docs/operations.md, "Personal
data"): the events themselves (``records.value``, the failed-event entries'
``payload``), and the bodies of refused requests (``rejected.body``).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from click.testing import CliRunner

from platypus.config import ConnectionSpec
from platypus.flow.loader import load_flows
from platypus.logging import configure_logging
from platypus.ops.auth import SESSION_COOKIE
from platypus.ops.store import FailureStatus
from platypus.redaction import MASK
from platypus.retry import RetryPolicy
from platypus.runtime.embedded import Platypus
from tests.fakes.vendor import FakeVendor
from tests.faults.leakscan import (
    BADGE,
    ONBOARD,
    PEOPLE,
    VENDOR_TOKEN,
    Scan,
    script_echoes,
)
from tests.ops.web.support import PASSWORDS, TOKENS, csrf_of, login, ops_settings, secrets_env
from tests.support import project_config, write_project


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def _project(root: Path, vendor_url: str) -> None:
    write_project(root, {"onboard": ONBOARD, "badge": BADGE})
    (root / "platypus.yaml").write_text(
        textwrap.dedent(
            """
            flows: flows
            data_dir: data
            partitions: 4
            """
        ),
        encoding="utf-8",
    )


async def test_no_secret_and_no_personal_value_is_kept_or_shown_anywhere(
    tmp_path: Path,
    fake_vendor: FakeVendor,
    captured: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets_env(monkeypatch)
    monkeypatch.setenv("VENDOR_TOKEN", VENDOR_TOKEN)
    _project(tmp_path, fake_vendor.url)
    connection = ConnectionSpec(
        adapter="http",
        settings={
            "base_url": fake_vendor.url,
            "timeout": 5,
            "auth": {"type": "bearer", "token_env": "VENDOR_TOKEN"},
        },
    )
    config = project_config(
        tmp_path,
        fake_vendor.url,
        connections={"vendor": connection},
        ops=ops_settings(),
        retry=RetryPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3),
    )
    app = Platypus(config, load_flows(tmp_path / "flows"))
    await app.start(http=True, port=0)
    scan = Scan()
    everyone = [v for p in PEOPLE for v in p.values]
    secrets = [VENDOR_TOKEN, *PASSWORDS.values(), *TOKENS.values()]
    cookies: list[str] = []
    try:
        for n, person in enumerate(PEOPLE):
            script_echoes(fake_vendor, n, person)
            result = await app.ingress.accept(
                json.dumps(person.event(n)).encode(), "application/cloudevents+json"
            )
            assert result.status == 202, result.body
            await app.drain()  # one at a time: each vendor answer is for its own person
        # An invalid event, refused with 422: its errors are kept, its personal data not.
        bad = PEOPLE[0].event(99)
        bad["data"]["hire_date"] = PEOPLE[0].email
        bad["data"]["first_name"] = {"name": PEOPLE[0].first}
        refused = await app.ingress.accept(json.dumps(bad).encode(), "application/cloudevents+json")
        assert refused.status == 422

        entries = await _entries(app, 6)
        async with httpx.AsyncClient(base_url=app.url) as http:
            await _use_the_dashboard(app, http, scan, everyone + secrets, entries, cookies)
        await app.drain()
    finally:
        await app.stop()

    outcomes = _outcome_counts(tmp_path)
    dead_letters = _scan_stores(tmp_path, scan, everyone + secrets + cookies)
    # The CLI runs its own event loop: in a thread of its own, as from a shell.
    await asyncio.to_thread(_scan_cli, tmp_path, scan, everyone + secrets, [e.id for e in entries])
    for number, line in enumerate(captured.getvalue().splitlines()):
        scan.check(f"log line {number}", "log lines", line, everyone + secrets + cookies)

    print(
        f"\nleak scan: outcomes {outcomes}; {dead_letters} dead letters; read "
        + ", ".join(f"{count} {kind}" for kind, count in sorted(scan.read.items()))
        + f"; {len(scan.leaks)} leaks, {len(scan.server_errors)} 5xx"
    )
    assert scan.server_errors == []
    assert scan.leaks == [], "\n".join(scan.leaks[:20])
    # The scan read what it was meant to: masked text, in every place.
    # Badges for everyone but the first (discarded), the fifth onboarding after its
    # retries, and both flows again for the replayed first event.
    assert outcomes == {"dead_lettered": 6, "delivered": 9, "discarded": 1, "replay": 1}
    assert scan.read["log lines"] > 20
    assert MASK in captured.getvalue()  # the vendors' echoes did reach the logs, masked
    assert scan.read["dashboard pages"] >= 20
    assert dead_letters == 6


async def _entries(app: Platypus, count: int) -> list[Any]:
    for _ in range(400):
        found = app.failures.search(limit=None)
        if len(found) >= count:
            return sorted(found, key=lambda e: e.id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} failed entries")


async def _use_the_dashboard(
    app: Platypus,
    http: httpx.AsyncClient,
    scan: Scan,
    values: list[str],
    entries: list[Any],
    cookies: list[str],
) -> None:
    # A password typed into the user name box, then the real logins.
    form = await http.get("/ops/login")
    await http.post(
        "/ops/login",
        data={"csrf": csrf_of(form.text), "username": PASSWORDS["vera"], "password": "x"},
    )
    paths = ["/ops/", "/ops/failures", "/ops/audit", "/ops/failures?q=corp-pii"]
    paths += [f"/ops/failures/{e.id}" for e in entries]
    api = ["/ops/api/overview", "/ops/api/failures", "/ops/api/audit", "/ops/api/me"]
    api += [f"/ops/api/failures/{e.id}" for e in entries]

    for user in ("vera", "olga"):
        async with httpx.AsyncClient(base_url=app.url) as client:
            csrf = await login(client, user)
            cookies.append(client.cookies.get(SESSION_COOKIE) or "")
            extra = [f"/ops/failures/{e.id}/edit" for e in entries] if user == "olga" else []
            for path in paths + extra:
                await _page(client, path, scan, values, f"{user} {path}")
            if user == "olga":
                # Discard one (the timeline and audit show it), replay another: the
                # vendor now answers 201 echoing the person, kept in deliveries.
                answer = await client.post(
                    f"/ops/failures/{entries[1].id}/discard",
                    data={"csrf": csrf, "reason": "duplicate"},
                )
                assert answer.status_code == 303
                answer = await client.post(
                    f"/ops/failures/{entries[0].id}/replay", data={"csrf": csrf}
                )
                assert answer.status_code == 303
                await _settled(app, entries[0].id)
                for path in (f"/ops/failures/{entries[0].id}", f"/ops/failures/{entries[1].id}"):
                    await _page(client, path, scan, values, f"{user} {path} after")
                await client.post("/ops/logout", data={"csrf": csrf})
    for token in TOKENS.values():
        headers = {"Authorization": f"Bearer {token}"}
        for path in api:
            await _page(http, path, scan, values, f"token {path}", headers=headers)


async def _page(
    client: httpx.AsyncClient,
    path: str,
    scan: Scan,
    values: list[str],
    where: str,
    headers: dict[str, str] | None = None,
) -> None:
    answer = await client.get(path, headers=headers)
    if answer.status_code >= 500:
        scan.server_errors.append(f"{where}: {answer.status_code}")
    assert answer.status_code == 200, (where, answer.status_code, answer.text[:300])
    scan.check(where, "dashboard pages", answer.text, values)


async def _settled(app: Platypus, entry_id: int) -> None:
    for _ in range(400):
        entry = app.failures.get(entry_id)
        if entry is not None and entry.status is FailureStatus.RESOLVED:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"entry {entry_id} was not resolved by its replay")


def _outcome_counts(root: Path) -> dict[str, int]:
    with sqlite3.connect(root / "data" / "events.db") as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM outcomes GROUP BY status").fetchall()
        replays = conn.execute(
            "SELECT COUNT(*) FROM records r JOIN topics t ON t.id = r.topic "
            "WHERE t.name = 'platypus.events' AND r.headers LIKE '%platypus.replay-of%'"
        ).fetchone()[0]
    return {**dict(rows), "replay": replays}


# Columns that hold the events themselves or the bodies of refused requests, on purpose.
_KEPT_WHOLE = {
    ("records", "value"),
    ("failures", "payload"),
    ("failures", "replay_payload"),
    ("rejected", "body"),
}


def _scan_stores(root: Path, scan: Scan, values: list[str]) -> int:
    dead_letters = 0
    for database in ("events.db", "failures.db"):
        with sqlite3.connect(root / "data" / database) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            topics = dict(conn.execute("SELECT id, name FROM topics")) if "topics" in tables else {}
            for table in tables:
                cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 -- our own table names
                names = [d[0] for d in cursor.description]
                for row in cursor:
                    record = dict(zip(names, row, strict=True))
                    topic = topics.get(record.get("topic"), record.get("topic"))
                    if table == "records" and topic == "platypus.dead-letter":
                        dead_letters += 1
                    for column, value in record.items():
                        if (table, column) in _KEPT_WHOLE or value is None:
                            continue
                        text = (
                            value.decode("utf-8", "replace")
                            if isinstance(value, bytes)
                            else str(value)
                        )
                        scan.check(f"{database} {table}.{column}", "store cells", text, values)
    return dead_letters


def _scan_cli(root: Path, scan: Scan, values: list[str], ids: list[int]) -> None:
    from platypus.ops.cli import dlq

    runs = [["list"], ["list", "--format", "json"], ["audit"]]
    runs += [["show", str(i)] for i in ids]
    for args in runs:
        result = CliRunner().invoke(
            dlq, [args[0], "--project", str(root), *args[1:]], catch_exceptions=False
        )
        assert result.exit_code == 0, (args, result.output)
        assert MASK in result.output or args[0] != "show"
        scan.check(f"platypus dlq {' '.join(args)}", "dlq outputs", result.output, values)
