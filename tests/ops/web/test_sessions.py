"""Dashboard sessions over real HTTP: logout, restarts, replicas, role changes, throttling."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from platypus._server import ServerThread
from platypus.config import OpsUser, Role
from platypus.ops.actions import Operations
from platypus.ops.auth import SESSION_COOKIE, Authenticator
from platypus.ops.store import FailureStore
from platypus.ops.web import create_dashboard
from platypus.schema_registry import SchemaRegistry
from tests.fakes.vendor import FakeVendor
from tests.ops.web.support import PASSWORDS, csrf_of, login, ops_settings, serving


def _cookie_of(client: httpx.AsyncClient) -> str:
    value = client.cookies.get(SESSION_COOKIE)
    assert value, "no session cookie"
    return value


async def _me(base_url: str, cookie: str) -> int:
    async with httpx.AsyncClient(base_url=base_url, cookies={SESSION_COOKIE: cookie}) as other:
        return (await other.get("/ops/api/me")).status_code


async def test_logout_revokes_the_session_so_the_old_cookie_stops_working(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with (
        serving(tmp_path, fake_vendor.url) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        csrf = await login(client, "olga")
        cookie = _cookie_of(client)
        assert await _me(app.url, cookie) == 200

        answer = await client.post("/ops/logout", data={"csrf": csrf})
        assert answer.status_code == 303

        # The cookie from before the logout, replayed from elsewhere: refused.
        assert await _me(app.url, cookie) == 401
        async with httpx.AsyncClient(base_url=app.url, cookies={SESSION_COOKIE: cookie}) as old:
            page = await old.get("/ops/failures")
            assert page.status_code == 303
            assert "/ops/login" in page.headers["location"]
            forged = await old.post(
                "/ops/discard", data={"csrf": csrf, "reason": "x", "flow": "orders"}
            )
            assert forged.status_code == 401
        actions = [(row.actor, row.action) for row in reversed(app.failures.audit_log())]
        assert actions == [("olga", "login"), ("olga", "logout")]


async def test_a_login_survives_a_restart(tmp_path: Path, fake_vendor: FakeVendor) -> None:
    async with (
        serving(tmp_path, fake_vendor.url) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        await login(client, "vera")
        cookie = _cookie_of(client)

    async with serving(tmp_path, fake_vendor.url) as restarted:
        assert await _me(restarted.url, cookie) == 200


async def test_a_role_change_ends_the_logins_made_before_it(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with (
        serving(tmp_path, fake_vendor.url) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        await login(client, "olga")
        cookie = _cookie_of(client)

    demoted = ops_settings()
    users = dict(demoted.users)
    users["olga"] = users["olga"].model_copy(update={"role": Role.VIEWER})
    async with serving(tmp_path, fake_vendor.url, ops=ops_settings(users=users)) as restarted:
        assert await _me(restarted.url, cookie) == 401
        async with httpx.AsyncClient(base_url=restarted.url) as client:
            await login(client, "olga")  # a new login carries the new role
            me = (await client.get("/ops/api/me")).json()
        assert me["role"] == "viewer"
        assert ("platypus", "session.revoked") in {
            (row.actor, row.action) for row in restarted.failures.audit_log()
        }


async def test_a_password_change_ends_the_logins_made_before_it(
    tmp_path: Path, fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        serving(tmp_path, fake_vendor.url) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        await login(client, "dora")  # her password comes from DORA_PW
        cookie = _cookie_of(client)

    monkeypatch.setenv("DORA_PW", "a-new-password")
    async with serving(tmp_path, fake_vendor.url) as restarted:
        assert await _me(restarted.url, cookie) == 401


@contextmanager
def _replica(store_url: str) -> Iterator[str]:
    """One more process serving the dashboard from the same store."""
    store = FailureStore(store_url)
    store.create()
    auth = Authenticator(ops_settings(), store)
    dashboard = create_dashboard(Operations(store, SchemaRegistry.default()), auth)
    with ServerThread(Starlette(routes=[Mount("/ops", app=dashboard)])) as server:
        yield server.url
    store.close()


async def test_a_login_holds_on_every_replica_and_a_logout_ends_it_on_all(
    store_url: str,
) -> None:
    with _replica(store_url) as first, _replica(store_url) as second:
        async with httpx.AsyncClient(base_url=first) as client:
            # The login form from one replica, posted to the other (a load balancer).
            form = await client.get("/ops/login")
            async with httpx.AsyncClient(base_url=second, cookies=client.cookies) as other:
                answer = await other.post(
                    "/ops/login",
                    data={
                        "csrf": csrf_of(form.text),
                        "username": "olga",
                        "password": PASSWORDS["olga"],
                        "next": "/ops/",
                    },
                )
                assert answer.status_code == 303, answer.text
                cookie = other.cookies.get(SESSION_COOKIE)
        assert cookie
        assert await _me(first, cookie) == 200
        assert await _me(second, cookie) == 200

        async with httpx.AsyncClient(base_url=first, cookies={SESSION_COOKIE: cookie}) as client:
            csrf = csrf_of((await client.get("/ops/")).text)
            assert (await client.post("/ops/logout", data={"csrf": csrf})).status_code == 303
        assert await _me(second, cookie) == 401
        assert await _me(first, cookie) == 401


async def test_failed_logins_are_throttled_per_user_with_429_and_audited(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with (
        serving(tmp_path, fake_vendor.url) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        csrf = csrf_of((await client.get("/ops/login")).text)

        async def attempt(user: str, password: str) -> httpx.Response:
            return await client.post(
                "/ops/login",
                data={"csrf": csrf, "username": user, "password": password, "next": "/ops/"},
            )

        statuses = [(await attempt("olga", f"guess-{n}")).status_code for n in range(5)]
        assert statuses == [401] * 5
        # Now even the right password is refused, without being checked, for a while.
        throttled = await attempt("olga", PASSWORDS["olga"])
        assert throttled.status_code == 429
        assert "Too many failed logins" in throttled.text
        assert 0 < int(throttled.headers["retry-after"]) <= 900
        assert (await client.get("/ops/api/me")).status_code == 401

        # Another user from the same address is not locked out by olga's failures.
        assert (await attempt("vera", PASSWORDS["vera"])).status_code == 303

        audit = [(row.actor, row.action) for row in reversed(app.failures.audit_log())]
        assert audit == [
            *[("olga", "login.failed")] * 5,
            ("olga", "login.throttled"),
            ("vera", "login"),
        ]
        assert app.failures.audit_log()[1].detail["address"] == "127.0.0.1"


async def test_many_failed_logins_from_one_address_are_throttled(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with (
        serving(tmp_path, fake_vendor.url) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        csrf = csrf_of((await client.get("/ops/login")).text)
        for n in range(20):
            answer = await client.post(
                "/ops/login",
                data={"csrf": csrf, "username": f"nobody-{n}", "password": "x", "next": "/ops/"},
            )
            assert answer.status_code == 401
        answer = await client.post(
            "/ops/login",
            data={"csrf": csrf, "username": "vera", "password": PASSWORDS["vera"], "next": "/"},
        )
        assert answer.status_code == 429
        throttled = [row for row in app.failures.audit_log() if row.action == "login.throttled"]
        assert [row.detail["scope"] for row in throttled] == ["address"]
        assert {row.actor for row in app.failures.audit_log()} == {"(unknown user)"}


async def test_the_login_settings_are_read_from_ops(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    users = {
        "olga": OpsUser(
            role=Role.OPERATOR, password_hash=ops_settings().users["olga"].password_hash
        )
    }
    ops = ops_settings(
        users=users, login_throttle={"per_user": 1, "per_address": 50, "window": "1m"}
    )
    async with (
        serving(tmp_path, fake_vendor.url, ops=ops) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        csrf = csrf_of((await client.get("/ops/login")).text)
        data = {"csrf": csrf, "username": "olga", "password": "wrong", "next": "/ops/"}
        assert (await client.post("/ops/login", data=data)).status_code == 401
        data["password"] = PASSWORDS["olga"]
        answer = await client.post("/ops/login", data=data)
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) <= 60
