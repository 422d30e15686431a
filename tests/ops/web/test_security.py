"""The dashboard's access rules over HTTP: login, roles, CSRF, escaping, masking."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from platypus.logging import configure_logging
from platypus.ops.store import FailureStatus
from platypus.redaction import MASK
from platypus.runtime.embedded import Platypus
from tests.fakes.vendor import FakeVendor
from tests.ops.web.support import REJECT, TOKENS, csrf_of, failed, login, serving
from tests.support import closed_won, ingest

EMAIL = "grace.private.hopper@example.com"
SCRIPT = "<script>alert('owned')</script>"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True, level="debug", stream=stream)
    yield stream
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


@pytest.fixture
async def app(tmp_path: Path, fake_vendor: FakeVendor) -> AsyncIterator[Platypus]:
    """A running app with one open failed entry whose event holds HTML and personal data."""
    fake_vendor.script(
        "/orders", [(400, {"error": "INVALID_FIELD", "message": f"bad <b>{SCRIPT}</b>"})]
    )
    async with serving(tmp_path, fake_vendor.url) as running_app:
        event = closed_won(owner_email=EMAIL, account_name=f"Acme {SCRIPT}")
        await ingest(running_app, event)
        await failed(running_app)
        yield running_app


@pytest.fixture
async def client(app: Platypus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, follow_redirects=False) as http:
        yield http


def _entry_id(app: Platypus) -> int:
    [entry] = app.failures.search()
    return entry.id


def _pages(entry: int) -> list[str]:
    return [
        "/ops/",
        "/ops/?range=7d",
        "/ops/failures",
        "/ops/failures?flow=orders&status=open&q=bad",
        f"/ops/failures/{entry}",
        f"/ops/failures/{entry}/edit",
        "/ops/audit",
        "/ops/jobs/nope",
        "/ops/events",
        "/ops/events?id=evt-1&key=" + SCRIPT,
    ]


def _apis(entry: int) -> list[str]:
    return [
        "/ops/api/me",
        "/ops/api/overview",
        "/ops/api/failures",
        f"/ops/api/failures/{entry}",
        "/ops/api/audit",
        "/ops/api/jobs/nope",
        "/ops/api/events?id=evt-1",
    ]


def _posts(entry: int) -> list[str]:
    return [
        f"/ops/failures/{entry}/replay",
        f"/ops/failures/{entry}/discard",
        f"/ops/failures/{entry}/edit",
        f"/ops/failures/{entry}/reveal",
        "/ops/replay",
        "/ops/discard",
        "/ops/logout",
    ]


def _api_posts(entry: int) -> list[str]:
    return [
        f"/ops/api/failures/{entry}/replay",
        f"/ops/api/failures/{entry}/discard",
        f"/ops/api/failures/{entry}/reveal",
        "/ops/api/replay",
        "/ops/api/discard",
    ]


async def test_nothing_is_reachable_without_logging_in(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    entry = _entry_id(app)
    for path in _pages(entry):
        answer = await client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ops/login?next="), path
    for path in _apis(entry):
        answer = await client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["error"].startswith("authentication required")
    for path in _posts(entry):
        assert (await client.post(path, data={"reason": "x"})).status_code == 401, path
    for path in [*_api_posts(entry)]:
        answer = await client.post(path, json={"reason": "x", "flow": "orders"})
        assert answer.status_code == 401, path
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await client.get("/ops/api/failures", headers=bad)).status_code == 401
    assert app.failures.get(entry).status is FailureStatus.OPEN  # type: ignore[union-attr]
    # The login page itself, the static files and the probes are open.
    assert (await client.get("/ops/login")).status_code == 200
    assert (await client.get("/ops/static/app.js")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200


async def test_a_wrong_password_or_unknown_user_is_refused(client: httpx.AsyncClient) -> None:
    page = await client.get("/ops/login")
    token = csrf_of(page.text)
    for user, password in [("olga", "wrong"), ("nobody", "operator-pass-1"), ("olga", "")]:
        answer = await client.post(
            "/ops/login", data={"csrf": token, "username": user, "password": password}
        )
        assert answer.status_code == 401
        assert "Wrong user name or password" in answer.text
    assert (await client.get("/ops/")).status_code == 303


async def test_login_redirects_only_within_the_dashboard(client: httpx.AsyncClient) -> None:
    for target, expected in [
        ("/ops/audit", "/ops/audit"),
        ("https://evil.example/", "/ops/"),
        ("//evil.example/ops/", "/ops/"),
        ("/ops/\\\\evil.example", "/ops/"),
    ]:
        page = await client.get("/ops/login")  # each login starts a new session
        answer = await client.post(
            "/ops/login",
            data={
                "csrf": csrf_of(page.text),
                "username": "vera",
                "password": "viewer-pass-2",
                "next": target,
            },
        )
        assert answer.headers["location"] == expected


async def test_a_viewer_is_refused_every_mutating_endpoint(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    entry = _entry_id(app)
    csrf = await login(client, "vera")
    for path in _posts(entry)[:-2]:  # reveal needs its own permission; logout is fine
        if path.endswith("/reveal"):
            continue
        answer = await client.post(
            path,
            data={"csrf": csrf, "reason": "no", "flow": "orders", "event": "{}"},
        )
        assert answer.status_code == 403, path
    answer = await client.post(f"/ops/failures/{entry}/reveal", data={"csrf": csrf})
    assert answer.status_code == 403
    assert (await client.get(f"/ops/failures/{entry}/edit")).status_code == 403
    viewer = {"Authorization": f"Bearer {TOKENS['grafana']}"}
    for path in _api_posts(entry):
        answer = await client.post(path, json={"reason": "no", "flow": "orders"}, headers=viewer)
        assert answer.status_code == 403, path
    assert app.failures.get(entry).status is FailureStatus.OPEN  # type: ignore[union-attr]
    denied = {(row.actor, row.action) for row in app.failures.audit_log()}
    assert ("vera", "replay.denied") in denied
    assert ("vera", "discard.denied") in denied
    assert ("token:grafana", "replay.denied") in denied
    # ...and sees no action buttons.
    detail = await client.get(f"/ops/failures/{entry}")
    assert 'id="replay"' not in detail.text
    assert 'id="discard"' not in detail.text


async def test_form_posts_without_the_sessions_csrf_token_are_refused(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    entry = _entry_id(app)
    csrf = await login(client, "olga")
    for data in ({}, {"csrf": ""}, {"csrf": csrf[:-2] + "xx"}):
        for path in (f"/ops/failures/{entry}/replay", f"/ops/failures/{entry}/discard"):
            answer = await client.post(path, data={**data, "reason": "r"})
            assert answer.status_code == 403, (path, data)
    # Another session's token does not do either.
    async with httpx.AsyncClient(base_url=app.url) as other:
        other_csrf = await login(other, "olga")
    answer = await client.post(f"/ops/failures/{entry}/replay", data={"csrf": other_csrf})
    assert answer.status_code == 403
    # The JSON API with the session cookie needs the token as a header.
    answer = await client.post(f"/ops/api/failures/{entry}/replay", json={})
    assert answer.status_code == 403
    # A login form without it is refused too.
    answer = await client.post("/ops/login", data={"username": "olga", "password": "x"})
    assert answer.status_code == 403
    assert app.failures.get(entry).status is FailureStatus.OPEN  # type: ignore[union-attr]
    # With the token, the same post works.
    answer = await client.post(f"/ops/failures/{entry}/replay", data={"csrf": csrf})
    assert answer.status_code == 303
    assert app.failures.get(entry).status is not FailureStatus.OPEN  # type: ignore[union-attr]


async def test_html_in_an_event_or_an_error_is_shown_escaped(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    entry = _entry_id(app)
    await login(client, "olga")
    for path in _pages(entry)[:6]:
        answer = await client.get(path)
        assert SCRIPT not in answer.text, path
        assert "<b>" not in answer.text, path
    detail = await client.get(f"/ops/failures/{entry}")
    assert "&lt;script&gt;alert(" in detail.text
    listing = await client.get("/ops/failures")
    assert "&lt;b&gt;" in listing.text
    csp = detail.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert detail.headers["cache-control"] == "no-store"


async def test_masked_fields_never_appear_without_the_reveal_permission(
    app: Platypus, client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    entry = _entry_id(app)
    csrf = await login(client, "olga")
    seen: list[str] = []
    for path in [*_pages(entry), *_apis(entry)]:
        seen.append((await client.get(path)).text)
    shown = (await client.get(f"/ops/api/failures/{entry}")).json()
    assert shown["event"]["data"]["owner_email"] == MASK
    assert shown["masked"] is True
    # Asking to reveal without the permission: refused, and nothing leaks in the answer.
    refused = await client.post(f"/ops/failures/{entry}/reveal", data={"csrf": csrf})
    seen.append(refused.text)
    api_refused = await client.post(
        f"/ops/api/failures/{entry}/reveal", headers={"X-CSRF-Token": csrf}
    )
    seen.append(api_refused.text)
    assert (refused.status_code, api_refused.status_code) == (403, 403)
    # An invalid edit's errors are masked too (the email stays hidden in them).
    edited = dict(shown["event"])
    edited["data"] = {**edited["data"], "amount": "lots"}
    answer = await client.post(
        f"/ops/failures/{entry}/edit", data={"csrf": csrf, "event": json.dumps(edited)}
    )
    assert answer.status_code == 422
    seen.append(answer.text)
    token = {"Authorization": f"Bearer {TOKENS['ops-bot']}"}
    seen.append((await client.get(f"/ops/api/failures/{entry}", headers=token)).text)
    for text in seen:
        assert EMAIL not in text
    assert EMAIL not in log_lines.getvalue()

    # Someone allowed sees it, and the reveal is audited.
    async with httpx.AsyncClient(base_url=app.url) as dora:
        dora_csrf = await login(dora, "dora")
        revealed = await dora.post(f"/ops/failures/{entry}/reveal", data={"csrf": dora_csrf})
        assert revealed.status_code == 200
        assert EMAIL in revealed.text
        assert "personal data revealed" in revealed.text
    actions = [(row.actor, row.action) for row in app.failures.audit_log()]
    assert ("dora", "reveal") in actions
    assert ("olga", "reveal.denied") in actions
    assert EMAIL not in log_lines.getvalue()


async def test_an_edited_replay_keeps_masked_values_and_is_validated(
    app: Platypus, client: httpx.AsyncClient, fake_vendor: FakeVendor
) -> None:
    entry = _entry_id(app)
    csrf = await login(client, "olga")
    editor = await client.get(f"/ops/failures/{entry}/edit")
    assert EMAIL not in editor.text
    event = (await client.get(f"/ops/api/failures/{entry}")).json()["event"]
    bad = {**event, "data": {**event["data"], "amount": "lots"}}
    refused = await client.post(
        f"/ops/failures/{entry}/edit", data={"csrf": csrf, "event": json.dumps(bad)}
    )
    assert refused.status_code == 422
    assert "data.amount" in refused.text
    good = {**event, "data": {**event["data"], "amount": 4321}}
    answer = await client.post(
        f"/ops/failures/{entry}/edit", data={"csrf": csrf, "event": json.dumps(good)}
    )
    assert answer.status_code == 303
    stored = app.failures.get(entry)
    assert stored is not None
    assert stored.replay_payload is not None
    replayed = json.loads(stored.replay_payload)
    assert replayed["data"]["amount"] == 4321
    assert replayed["data"]["owner_email"] == EMAIL  # the masked value was put back


async def test_the_api_lists_filters_replays_and_discards_with_a_token(
    app: Platypus, client: httpx.AsyncClient, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [REJECT, REJECT])
    await ingest(app, closed_won(), closed_won())
    await failed(app, 3)
    token = {"Authorization": f"Bearer {TOKENS['ops-bot']}"}
    listed = (await client.get("/ops/api/failures?q=is+closed", headers=token)).json()
    assert listed["total"] == 2
    first, second = (f["id"] for f in listed["failures"])
    answer = await client.post(
        f"/ops/api/failures/{first}/discard", json={"reason": "sandbox"}, headers=token
    )
    assert answer.json() == {"ids": [first]}
    answer = await client.post("/ops/api/replay", json={"q": "is closed"}, headers=token)
    job = answer.json()
    assert (job["total"], job["selection"]["text"]) == (1, "is closed")
    assert (await client.post("/ops/api/replay", json={}, headers=token)).status_code == 400

    async def progress() -> Any:
        found = (await client.get(f"/ops/api/jobs/{job['id']}", headers=token)).json()
        return found if found["done"] else None

    for _ in range(200):
        done = await progress()
        if done:
            break
        await asyncio.sleep(0.05)
    assert done
    assert done["statuses"]["resolved"] == 1
    assert app.failures.get(second).status is FailureStatus.RESOLVED  # type: ignore[union-attr]
    audit = (await client.get("/ops/api/audit", headers=token)).json()["audit"]
    assert {"token:ops-bot"} <= {row["actor"] for row in audit}
