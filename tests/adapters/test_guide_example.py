"""The adapter of docs/adapters/writing-an-adapter.md, taken from the page, under the contract.

The code is read from the guide itself, so the guide cannot drift from what works.
"""

from __future__ import annotations

import asyncio
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from platypus._server import ServerThread
from platypus.adapter import Adapter, Request
from tests.adapters.contract import AdapterContract, Failure

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "writing-an-adapter.md"
KEY = "acme-guide-key-7731"


def _guide_module() -> types.ModuleType:
    code = re.search(
        r"```python\n(# adapters/acmedesk/__init__\.py\n.*?)```", GUIDE.read_text(), re.S
    )
    assert code, "the guide's adapter code block is missing"
    module = types.ModuleType("acmedesk_from_guide")
    exec(compile(code.group(1), str(GUIDE), "exec", dont_inherit=True), module.__dict__)  # noqa: S102 -- our own docs
    return module


ACME = _guide_module()


class AcmeDeskFake:
    """Acme Desk's ticket API: bearer key, de-duplication on external_id."""

    def __init__(self) -> None:
        self.tickets: dict[str, dict[str, Any]] = {}
        self.failures: list[Failure] = []
        self._app = Starlette(routes=[Route("/tickets", self._open, methods=["POST"])])
        self.server = ServerThread(self._asgi)

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.failures and self.failures[0] == "reset":
            self.failures.pop(0)
            # Promise a body and drop the connection instead, as a reset does.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"50")],
                }
            )
            raise ConnectionResetError("the fake resets this connection")
        await self._app(scope, receive, send)

    async def _open(self, request: HttpRequest) -> Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "permanent":
                return JSONResponse({"error": "subject is required"}, status_code=422)
            if failure == "retryable":
                return JSONResponse(
                    {"error": "busy"}, status_code=503, headers={"Retry-After": "1"}
                )
            if failure == "timeout":
                await asyncio.sleep(1.0)
        body = await request.json()
        ticket = self.tickets.setdefault(
            body["external_id"], {"id": f"T-{len(self.tickets) + 1}", **body}
        )
        return JSONResponse({"id": ticket["id"]}, status_code=201)


@pytest.fixture(scope="module")
def acme() -> Iterator[AcmeDeskFake]:
    fake = AcmeDeskFake()
    fake.server.start()
    yield fake
    fake.server.stop()


class TestContract(AdapterContract):
    secret: ClassVar[str] = KEY
    refreshes_credentials: ClassVar[bool] = False  # a static API key

    @pytest.fixture
    def vendor(self, acme: AcmeDeskFake, monkeypatch: pytest.MonkeyPatch) -> AcmeDeskFake:
        monkeypatch.setenv("ACMEDESK_KEY", KEY)
        acme.tickets.clear()
        acme.failures.clear()
        return acme

    def make_adapter(self, vendor: AcmeDeskFake) -> Adapter:
        adapter: Adapter = ACME.AcmeDeskAdapter.from_config(
            {"base_url": vendor.server.url, "api_key": {"env": "ACMEDESK_KEY"}, "timeout": 0.3},
            connection="desk",
        )
        return adapter

    def write(self, event_id: str) -> Request:
        return Request(
            action="open_ticket",
            payload={"subject": "Laptop for Ada", "requester_email": "ada@example.com"},
            event_id=event_id,
            flow="new-hire-ticket",
            step="laptop",
        )

    def record_count(self, vendor: AcmeDeskFake, request: Request) -> int:
        return sum(1 for key in vendor.tickets if key == request.idempotency_key)

    def fail_next(self, vendor: AcmeDeskFake, failure: Failure) -> None:
        vendor.failures.append(failure)
