"""The stand-in vendor that ``platypus run --demo`` starts on loopback.

A small webhook receiver whose behaviour is chosen by the request path, so a
demo flow can show delivery, retries, throttling and dead-lettering without any
real vendor. Attempts are counted per path and ``Idempotency-Key`` header (or,
without one, per hash of the body), so every event sees the same story:

================  ===========================================================
``/flaky/...``    503 for the first 2 attempts, then 201
``/throttled/..`` 429 with ``Retry-After: 1`` on the first attempt, then 201
``/reject/...``   400 ``{"error": "INVALID_FIELD", "message": ...}``, always
``/slow/...``     waits ``?ms=`` milliseconds (default 200), then 201
anything else     201 ``{"id": "ORD-<n>"}`` (``POST``, ``PUT``, ``PATCH``)
``GET /_received``  accepted requests in arrival order
``GET /_stats``     responses sent, counted per status code
================  ===========================================================

A write repeated with an ``Idempotency-Key`` that was already accepted on the
same path is answered with the first answer (and ``Idempotent-Replayed: true``)
and is not recorded twice, as vendors that honour idempotency keys do.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FLAKY_FAILURES", "DemoVendor", "create_vendor_app"]

FLAKY_FAILURES = 2
"""How many attempts per key ``/flaky/...`` fails with 503 before it accepts."""

_WRITE_METHODS = ["POST", "PUT", "PATCH"]
_HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization"})


class DemoVendor:
    """The stand-in vendor's state: what it accepted and what it answered.

    Held by the app as ``app.state.vendor``; thread-safe, so a test can read it
    while the server runs in another thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[dict[str, Any]] = []
        self._stats: Counter[int] = Counter()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._accepted: dict[tuple[str, str], str] = {}
        self._next_id = 0

    @property
    def received(self) -> list[dict[str, Any]]:
        """Accepted requests in arrival order: method, path, headers, json."""
        with self._lock:
            return list(self._received)

    @property
    def stats(self) -> dict[int, int]:
        """Responses sent, counted per status code."""
        with self._lock:
            return dict(self._stats)

    def attempt(self, path: str, key: str) -> int:
        """Count one more attempt at ``path`` with ``key``; return its number (1-based)."""
        with self._lock:
            self._attempts[path, key] += 1
            return self._attempts[path, key]

    def accept(
        self, path: str, idempotency_key: str | None, record: dict[str, Any]
    ) -> tuple[str, bool]:
        """Record an accepted write; return its id and whether it is a replay of one."""
        with self._lock:
            if idempotency_key is not None:
                known = self._accepted.get((path, idempotency_key))
                if known is not None:
                    return known, True
            self._next_id += 1
            order_id = f"ORD-{self._next_id}"
            if idempotency_key is not None:
                self._accepted[path, idempotency_key] = order_id
            self._received.append(record)
            return order_id, False

    def answered(self, status: int) -> None:
        with self._lock:
            self._stats[status] += 1

    def reset(self) -> None:
        """Forget everything, as if just started."""
        with self._lock:
            self._received.clear()
            self._stats.clear()
            self._attempts.clear()
            self._accepted.clear()
            self._next_id = 0


def create_vendor_app() -> Starlette:
    """A new stand-in vendor app with fresh state in ``app.state.vendor``."""
    app = Starlette(
        routes=[
            Route("/_received", _received, methods=["GET"]),
            Route("/_stats", _stats, methods=["GET"]),
            Route("/{path:path}", _write, methods=_WRITE_METHODS),
        ]
    )
    app.state.vendor = DemoVendor()
    return app


def _vendor(request: Request) -> DemoVendor:
    vendor: DemoVendor = request.app.state.vendor
    return vendor


async def _received(request: Request) -> Response:
    return JSONResponse(_vendor(request).received)


async def _stats(request: Request) -> Response:
    return JSONResponse({str(code): n for code, n in sorted(_vendor(request).stats.items())})


def _behaviour(path: str) -> str:
    first = path.strip("/").split("/", 1)[0]
    return first if first in {"flaky", "throttled", "reject", "slow"} else "accept"


async def _write(request: Request) -> Response:
    vendor = _vendor(request)
    path = request.url.path
    body = await request.body()
    idempotency_key = request.headers.get("idempotency-key")
    key = idempotency_key or "sha256:" + hashlib.sha256(body).hexdigest()
    attempt = vendor.attempt(path, key)
    behaviour = _behaviour(path)

    response: Response
    if behaviour == "reject":
        response = JSONResponse(
            {
                "error": "INVALID_FIELD",
                "message": "the demo vendor rejects everything under /reject",
            },
            status_code=400,
        )
    elif behaviour == "flaky" and attempt <= FLAKY_FAILURES:
        response = JSONResponse(
            {"error": "UNAVAILABLE", "message": f"flaky: attempt {attempt} fails"},
            status_code=503,
        )
    elif behaviour == "throttled" and attempt == 1:
        response = JSONResponse(
            {"error": "RATE_LIMITED", "message": "slow down"},
            status_code=429,
            headers={"Retry-After": "1"},
        )
    else:
        if behaviour == "slow":
            await asyncio.sleep(_milliseconds(request.query_params.get("ms")) / 1000)
        record = {
            "method": request.method,
            "path": path,
            "headers": {
                name: value
                for name, value in request.headers.items()
                if name not in _HIDDEN_HEADERS
            },
            "json": _json_or_none(body),
        }
        order_id, replayed = vendor.accept(path, idempotency_key, record)
        response = JSONResponse(
            {"id": order_id},
            status_code=201,
            headers={"Idempotent-Replayed": "true"} if replayed else None,
        )
    vendor.answered(response.status_code)
    return response


def _milliseconds(value: str | None) -> float:
    try:
        ms = float(value) if value is not None else 200.0
    except ValueError:
        ms = 200.0
    return min(max(ms, 0.0), 60_000.0)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
