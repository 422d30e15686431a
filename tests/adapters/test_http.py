"""The ``http`` adapter under the adapter contract, against a real loopback server."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from platypus.adapter import Adapter, Request
from platypus_adapters.http import HttpAdapter
from tests.adapters.contract import AdapterContract, Failure
from tests.fakes.vendor import RESET, FakeVendor, Reply

TOKEN = "http-contract-token-5f1e"


class TestContract(AdapterContract):
    secret: ClassVar[str] = TOKEN
    # A static bearer token has nothing to refresh: the vendor's 401 for an expired
    # one is permanent (tests/test_http_adapter.py).
    refreshes_credentials: ClassVar[bool] = False

    @pytest.fixture
    def vendor(self, fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch) -> FakeVendor:
        monkeypatch.setenv("CONTRACT_HTTP_TOKEN", TOKEN)
        return fake_vendor

    def make_adapter(self, vendor: FakeVendor) -> Adapter:
        return HttpAdapter.from_config(
            {
                "base_url": vendor.url,
                "timeout": 1.0,  # the "timeout" failure answers after 2 s
                "auth": {"type": "bearer", "token_env": "CONTRACT_HTTP_TOKEN"},
            },
            connection="billing",
        )

    def write(self, event_id: str) -> Request:
        return Request(
            action="post",
            payload={"order": event_id},
            params={"path": "/orders"},
            event_id=event_id,
            flow="orders",
            step="create",
        )

    def record_count(self, vendor: FakeVendor, request: Request) -> int:
        # A generic webhook keeps every 2xx request it took as a record.
        return sum(
            1
            for r in vendor.requests_to("/orders")
            if 200 <= r.status < 300 and r.json == request.payload
        )

    def fail_next(self, vendor: FakeVendor, failure: Failure) -> None:
        replies: dict[str, Any] = {
            "permanent": (400, {"error": "INVALID", "message": f"bad token {TOKEN}"}),
            "retryable": (503,),
            "timeout": Reply(201, {"id": "late"}, delay=2.0),
            "reset": RESET,
        }
        vendor.script("/orders", [replies[failure]])


async def test_a_token_the_vendor_echoes_changed_is_masked_in_the_error(
    fake_vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from platypus.exceptions import PermanentError

    monkeypatch.setenv("CONTRACT_HTTP_TOKEN", TOKEN)
    adapter = TestContract().make_adapter(fake_vendor)
    echo = f"token {TOKEN.upper()} refused, see /auth?t={TOKEN.replace('-', '%2D')}"
    fake_vendor.script("/orders", [(401, {"error": echo})])
    await adapter.start()
    try:
        with pytest.raises(PermanentError) as caught:
            await adapter.call(TestContract().write("evt-echo"))
    finally:
        await adapter.close()

    text = str(caught.value).lower().replace("%2d", "-")
    assert "5f1e" not in text
    assert "***" in text
