"""A running app with the dashboard, users and tokens, and helpers to drive it over HTTP."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from platypus.config import OpsSettings, OpsToken, OpsUser, Role
from platypus.ops.auth import hash_password
from platypus.ops.store import FailureStatus
from platypus.runtime.embedded import Platypus
from platypus.secrets import SecretRef
from tests.support import ORDER_FLOW, running

REJECT = (400, {"error": "INVALID_FIELD", "message": "account 001000000000000099 is closed"})

PASSWORDS = {"olga": "operator-pass-1", "vera": "viewer-pass-2", "dora": "revealer-pass-3"}
TOKENS = {"ops-bot": "tok-operator-3f9a1c", "grafana": "tok-viewer-77e2b0"}

# One hash per user for the whole session: scrypt is slow on purpose.
_HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def ops_settings(**overrides: Any) -> OpsSettings:
    """olga operates, vera views, dora operates and may reveal; two API tokens."""
    settings: dict[str, Any] = {
        "users": {
            "olga": OpsUser(role=Role.OPERATOR, password_hash=_HASHES["olga"]),
            "vera": OpsUser(role=Role.VIEWER, password_hash=_HASHES["vera"]),
            "dora": OpsUser(role=Role.OPERATOR, reveal=True, password=SecretRef(env="DORA_PW")),
        },
        "tokens": {
            "ops-bot": OpsToken(role=Role.OPERATOR, token=SecretRef(env="OPS_BOT_TOKEN")),
            "grafana": OpsToken(role=Role.VIEWER, token=SecretRef(env="GRAFANA_TOKEN")),
        },
    }
    settings.update(overrides)
    return OpsSettings(**settings)


def secrets_env(monkeypatch: Any) -> None:
    """The secrets `ops_settings` refers to."""
    monkeypatch.setenv("DORA_PW", PASSWORDS["dora"])
    monkeypatch.setenv("OPS_BOT_TOKEN", TOKENS["ops-bot"])
    monkeypatch.setenv("GRAFANA_TOKEN", TOKENS["grafana"])


@asynccontextmanager
async def serving(
    root: Path, vendor_url: str, *, ops: OpsSettings | None = None, **overrides: Any
) -> AsyncIterator[Platypus]:
    """The orders flow with HTTP (ingress, dashboard, metrics) on a free port."""
    async with running(
        root, vendor_url, {"orders": ORDER_FLOW}, http=True, ops=ops or ops_settings(), **overrides
    ) as app:
        yield app


async def eventually(check: Callable[[], Any], within: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy (for ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


async def failed(app: Platypus, count: int = 1) -> list[Any]:
    """Wait until the app's indexer has ``count`` open entries; returns them."""
    await app.drain()
    open_ = (FailureStatus.OPEN,)
    from platypus.ops.store import FailureFilter

    return list(
        await eventually(
            lambda: (
                (found := app.failures.search(FailureFilter(status=open_)))
                and len(found) >= count
                and found
            ),
            what=f"{count} open failed entries",
        )
    )


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def login(client: httpx.AsyncClient, user: str) -> str:
    """Log ``user`` in on ``client`` (keeps the cookie); returns the session's CSRF token."""
    page = await client.get("/ops/login")
    token = csrf_of(page.text)
    answer = await client.post(
        "/ops/login",
        data={"csrf": token, "username": user, "password": PASSWORDS[user], "next": "/ops/"},
    )
    assert answer.status_code == 303, answer.text
    home = await client.get("/ops/")
    assert home.status_code == 200
    return csrf_of(home.text)
