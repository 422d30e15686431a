"""A fake Zuora tenant: a real HTTP server on loopback speaking Zuora's v1 REST wire format.

What it does, as Zuora does:

* ``POST /oauth/token`` (form: ``grant_type=client_credentials``, ``client_id``,
  ``client_secret``) issues bearer tokens that expire after ``token_lifetime``
  seconds (``expires_in``); every other endpoint wants ``Authorization: Bearer``
  with a live token, else 401 ``{"success": false, "reasons": [{"code":
  "90000011", ...}]}``.
* ``POST /v1/accounts`` and ``POST /v1/orders`` (CreateSubscription only) keep
  records and answer ``{"success": true, ...ids}``, or HTTP 200 with
  ``{"success": false, "reasons": [...]}`` for a missing field or an unknown
  account, as Zuora does.
* ``POST /v1/action/query`` answers ``select Id, AccountNumber from Account where
  CrmId = '...'`` and refuses other ZOQL with a ``MALFORMED_QUERY`` fault.
* ``Idempotency-Key`` on a write: the first answer (success or failure) is stored
  and replayed for the same key, with no second record; the same key while the
  first request is in flight gets 409; the same key with another path or body
  gets 422 (Zuora: "a mismatch" of the request), code ``50000090``.
* Every answer carries ``RateLimit-Limit``/``-Remaining``/``-Reset``.

Scripted failures (`fail_next`) are answered *before* authentication and the
idempotency layer, like Zuora's gateway answers 429 and 503: nothing is stored
and a retry with the same key is processed afresh. `answer_next` scripts what
the application answers instead, behind the idempotency layer: that answer is
stored under the request's key like any other. `Slow` is the exception: the
request is processed (and stored) and only the answer is late, which is what a
client timeout looks like from the outside.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from platypus._server import ServerThread
from tests.fakes.tls import TestCA, TlsServerThread
from tests.fakes.vendor import RESET, RecordedRequest, Reply, read_request

__all__ = ["AUTH_ERROR", "RESET", "FakeZuora", "Reply", "Slow"]

AUTH_ERROR = {
    "success": False,
    "reasons": [
        {"code": "90000011", "message": "this resource is protected, please sign in first"}
    ],
}
RATE_LIMIT_HEADERS = {"RateLimit-Limit": "50000", "RateLimit-Remaining": "49999"}
_QUERY = re.compile(
    r"^\s*select\s+Id\s*,\s*AccountNumber\s+from\s+Account\s+where\s+CrmId\s*=\s*"
    r"'((?:[^'\\]|\\.)*)'\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Slow:
    """Process the request normally, then answer after ``delay`` seconds."""

    delay: float


Scripted = Reply | Slow


class FakeZuora:
    """A Zuora tenant on loopback; see the module docstring."""

    client_id = "fake-zuora-client"
    client_secret = "fake-zuora-secret-7d41c0"

    def __init__(self, token_lifetime: float = 3600.0, *, tls: TestCA | None = None) -> None:
        """``tls``: serve HTTPS with that CA's certificate (clients need its ``path``)."""
        self.default_token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._server = ServerThread(self._app) if tls is None else TlsServerThread(self._app, tls)
        self.reset()

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def reset(self) -> None:
        """Forget records, tokens, keys, scripts and the request log."""
        with self._lock:
            self.token_lifetime = self.default_token_lifetime
            self.accounts: dict[str, dict[str, Any]] = {}
            self.orders: dict[str, dict[str, Any]] = {}
            self.tokens: dict[str, float] = {}  # token -> expiry on the fake's clock
            self.tokens_issued = 0
            self._skew = 0.0
            self._keys: dict[str, tuple[str, int, Any]] = {}  # key -> (request digest, answer)
            self._in_flight: set[str] = set()
            self._scripts: dict[str, deque[Scripted]] = defaultdict(deque)
            self._answers: dict[str, deque[Reply]] = defaultdict(deque)
            self._log: list[RecordedRequest] = []
            self._ids = itertools.count(1)

    # -- programming --------------------------------------------------------

    def fail_next(self, path: str, *answers: Scripted) -> None:
        """Answer the next requests to ``path`` with these, one each (`RESET` drops one)."""
        with self._lock:
            self._scripts[path].extend(answers)

    def answer_next(self, path: str, *answers: Reply) -> None:
        """The application's next answers to ``path`` (stored under their key, if any)."""
        with self._lock:
            self._answers[path].extend(answers)

    def expire_tokens(self) -> None:
        """Make every token issued so far expired, as if its hour had passed."""
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, float("-inf"))

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on: tokens expire ``seconds`` sooner."""
        with self._lock:
            self._skew += seconds

    # -- inspection ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def accounts_with_crm_id(self, crm_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [a for a in self.accounts.values() if a.get("crmId") == crm_id]

    # -- the ASGI app ---------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() + self._skew

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = await read_request(scope, receive, send)
        if received is None:
            return
        body = received
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            script = self._scripts.get(path)
            scripted = script.popleft() if script else None
        delay = 0.0
        if isinstance(scripted, Reply):
            status, answer, extra = scripted.status, scripted.body, dict(scripted.headers)
            delay = scripted.delay
        else:
            status, answer, extra = self._handle(scope["method"], path, headers, body)
            delay = scripted.delay if isinstance(scripted, Slow) else 0.0
        with self._lock:
            self._log.append(
                RecordedRequest(
                    method=scope["method"],
                    path=path,
                    query=scope["query_string"].decode("latin-1"),
                    headers=headers,
                    body=body,
                    time=time.monotonic(),
                    status=status,
                )
            )
        if delay:
            await asyncio.sleep(delay)
        if status == RESET.status:
            await send_reset(send)
        await send_json(
            send, status, answer, {**RATE_LIMIT_HEADERS, "RateLimit-Reset": "37", **extra}
        )

    def _handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if path == "/oauth/token" and method == "POST":
            return self._token(body)
        if not self._authorized(headers.get("authorization", "")):
            return 401, AUTH_ERROR, {}
        routes = {
            "/v1/accounts": self._create_account,
            "/v1/orders": self._create_order,
            "/v1/action/query": self._query,
        }
        handler = routes.get(path)
        if handler is None or method != "POST":
            return (
                404,
                {"success": False, "reasons": [{"code": "50000040", "message": "Not found"}]},
                {},
            )
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return 400, _failure("50000090", "Malformed JSON body"), {}

        def apply() -> tuple[int, Any]:
            with self._lock:
                queued = self._answers.get(path)
                scripted = queued.popleft() if queued else None
            if scripted is not None:
                return scripted.status, scripted.body
            return handler(data)

        key = headers.get("idempotency-key")
        if key is None or path == "/v1/action/query":
            status, answer = apply()
            return status, answer, {}
        return self._idempotent(key, path, body, apply)

    def _idempotent(
        self, key: str, path: str, body: bytes, handle: Any
    ) -> tuple[int, Any, dict[str, str]]:
        digest = hashlib.sha256(path.encode() + b"\0" + body).hexdigest()
        with self._lock:
            stored = self._keys.get(key)
            if stored is None and key in self._in_flight:
                return 409, _failure("50000050", "A request with this key is in progress"), {}
            if stored is None:
                self._in_flight.add(key)
        if stored is not None:
            if stored[0] != digest:
                message = "Idempotency key was used with a different request"
                return 422, _failure("50000090", message), {}
            return stored[1], stored[2], {"Idempotency-Replayed": "true"}
        try:
            status, answer = handle()
        finally:
            with self._lock:
                self._in_flight.discard(key)
        with self._lock:
            self._keys[key] = (digest, status, answer)
        return status, answer, {}

    # -- endpoints ------------------------------------------------------------

    def _token(self, body: bytes) -> tuple[int, Any, dict[str, str]]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}, {}
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return (
                401,
                {"error": "invalid_client", "error_description": "Bad client credentials"},
                {},
            )
        with self._lock:
            self.tokens_issued += 1
            token = hashlib.sha256(
                f"tok-{self.tokens_issued}-{time.time_ns()}".encode()
            ).hexdigest()
            self.tokens[token] = self._now() + self.token_lifetime
            lifetime = self.token_lifetime
        return (
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(lifetime),
                "scope": "entity.1a2b7a37 service.echo.read tenant.19",
                "jti": token[:32],
            },
            {},
        )

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        with self._lock:
            expiry = self.tokens.get(token)
            return scheme.lower() == "bearer" and expiry is not None and self._now() < expiry

    def _create_account(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict):
            return 400, _failure("50000090", "The request body must be a JSON object")
        contact = data.get("billToContact")
        for field, present in (
            ("name", data.get("name")),
            ("currency", data.get("currency")),
            ("billCycleDay", data.get("billCycleDay") is not None),
            ("billToContact", isinstance(contact, dict)),
        ):
            if not present:
                return 200, _failure("53000022", f"'{field}' may not be null")
        assert isinstance(contact, dict)
        for field in ("firstName", "lastName"):
            if not contact.get(field):
                return 200, _failure("53000022", f"'billToContact.{field}' may not be null")
        with self._lock:
            n = next(self._ids)
            number = data.get("accountNumber") or f"A{n:08d}"
            if number in self.accounts:
                return 200, _failure("53000030", f"Account number {number} already exists")
            account_id = f"8a8{n:029d}"
            self.accounts[number] = {**data, "id": account_id, "accountNumber": number}
        return 200, {
            "success": True,
            "accountId": account_id,
            "accountNumber": number,
            "billToContactId": f"c{n:031d}",
            "soldToContactId": f"c{n:031d}",
        }

    def _create_order(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not data.get("orderDate"):
            return 200, _failure("50000022", "'orderDate' may not be null")
        number = data.get("existingAccountNumber")
        with self._lock:
            if number not in self.accounts:
                return 200, _failure("50000040", f"Account {number} does not exist")
        created = []
        for subscription in data.get("subscriptions") or []:
            for action in subscription.get("orderActions") or []:
                if action.get("type") != "CreateSubscription":
                    return 200, _failure("50000045", "The fake supports CreateSubscription only")
                create = action.get("createSubscription") or {}
                if not create.get("subscribeToRatePlans"):
                    return 200, _failure("50000022", "'subscribeToRatePlans' may not be empty")
                term = (create.get("terms") or {}).get("initialTerm") or {}
                if term.get("termType") not in {"TERMED", "EVERGREEN"}:
                    return 200, _failure(
                        "53100320", "'termType' value should be one of: TERMED, EVERGREEN"
                    )
                created.append(subscription.get("subscriptionNumber"))
        if not created:
            return 200, _failure("50000022", "'subscriptions' may not be empty")
        with self._lock:
            n = next(self._ids)
            order_number = data.get("orderNumber") or f"O-{n:08d}"
            numbers = [given or f"A-S{n:08d}-{i}" for i, given in enumerate(created, 1)]
            self.orders[order_number] = {**data, "subscriptionNumbers": numbers}
        return 200, {
            "success": True,
            "orderNumber": order_number,
            "accountNumber": number,
            "status": "Completed",
            "subscriptionNumbers": numbers,
        }

    def _query(self, data: Any) -> tuple[int, Any]:
        query = data.get("queryString", "") if isinstance(data, dict) else ""
        match = _QUERY.match(query)
        if match is None:
            return 400, {"FaultCode": "MALFORMED_QUERY", "FaultMessage": f"Cannot parse: {query}"}
        crm_id = re.sub(r"\\(.)", r"\1", match.group(1))
        records = [
            {"Id": a["id"], "AccountNumber": a["accountNumber"]}
            for a in self.accounts_with_crm_id(crm_id)
        ]
        return 200, {"records": records, "size": len(records), "done": True}


def _failure(code: str, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "processId": "F4K3PR0C355",
        "reasons": [{"code": code, "message": message}],
    }


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
    """Answer ``status`` with ``body`` as JSON (str and bytes as they are)."""
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = json.dumps(body).encode()
        headers = {"content-type": "application/json", **headers}
    headers = {**headers, "content-length": str(len(content))}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": content})


class FakeResetError(Exception):
    """Raised inside the app so uvicorn cuts the connection mid-answer."""


async def send_reset(send: Send) -> None:
    """Promise a body, send none, and fail: the client sees the connection cut off."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
    )
    raise FakeResetError("the fake resets this connection")
