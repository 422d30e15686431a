"""The OAuth token cache and the HTTP client adapters share (platypus.oauth, vendorhttp)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from platypus.exceptions import ConfigurationError
from platypus.oauth import TokenCache
from platypus.vendorhttp import USER_AGENT, async_client
from tests.fakes.tls import TlsServerThread, loopback_ca
from tests.fakes.vendor import read_request


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting_fetch(lifetime: float = 60.0) -> tuple[list[int], object]:
    calls: list[int] = []

    async def fetch() -> tuple[SecretStr, float]:
        calls.append(1)
        await asyncio.sleep(0)  # let concurrent callers pile up behind the lock
        return SecretStr(f"token-{len(calls)}"), lifetime

    return calls, fetch


async def test_concurrent_calls_share_one_fetch_and_the_token_is_reused_until_the_margin() -> None:
    calls, fetch = counting_fetch(lifetime=60.0)
    clock = Clock()
    cache = TokenCache(fetch, margin=10.0, clock=clock)  # type: ignore[arg-type]

    tokens = await asyncio.gather(*(cache.get() for _ in range(5)))
    assert len(calls) == 1
    assert {t.value.get_secret_value() for t in tokens} == {"token-1"}

    clock.now += 49.0  # 11 s of life left: still fresh
    assert (await cache.get()).value.get_secret_value() == "token-1"
    clock.now += 2.0  # within the margin: fetched again
    assert (await cache.get()).value.get_secret_value() == "token-2"


async def test_a_refused_token_is_dropped_once_however_many_calls_saw_it_refused() -> None:
    calls, fetch = counting_fetch()
    cache = TokenCache(fetch, margin=0.0, clock=Clock())  # type: ignore[arg-type]
    refused = await cache.get()
    cache.invalidate(refused)
    replacement = await cache.get()
    cache.invalidate(refused)  # a late caller with the old token: the new one stays

    assert await cache.get() is replacement
    assert len(calls) == 2
    assert "token-" not in repr(cache)


def test_a_ca_bundle_that_cannot_be_read_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot use ca_bundle"):
        async_client(
            base_url="https://example.com",
            timeout=1,
            max_connections=1,
            ca_bundle=tmp_path / "missing.pem",
        )


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    if await read_request(scope, receive, send) is None:
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_the_client_trusts_the_ca_bundle_given_and_names_platypus() -> None:
    server = TlsServerThread(_ok)
    url = server.start()
    try:
        trusting = async_client(
            base_url=url, timeout=5, max_connections=2, ca_bundle=loopback_ca()[0]
        )
        async with trusting:
            response = await trusting.get("/")
        assert response.status_code == 200
        assert response.request.headers["User-Agent"] == USER_AGENT
        untrusting = async_client(base_url=url, timeout=5, max_connections=2)
        async with untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get("/")
    finally:
        server.stop()
