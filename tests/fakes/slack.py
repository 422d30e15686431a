"""A fake Slack workspace: a real HTTP server on loopback speaking the Web API's wire format.

What it does, as Slack does:

* ``POST /api/chat.postMessage`` with ``Authorization: Bearer <token>`` and a
  JSON body posts to a channel (by ID, or by name with or without ``#``) and
  answers ``{"ok": true, "channel": "C...", "ts": "...", "message": {...}}``.
  Failures are HTTP 200 with ``{"ok": false, "error": "<code>"}``:
  ``not_authed``, ``invalid_auth``, ``token_expired``, ``channel_not_found``,
  ``not_in_channel``, ``is_archived``, ``no_text``, ``msg_too_long``.
* ``POST /api/oauth.v2.access`` (form: ``grant_type=refresh_token``,
  ``refresh_token``, ``client_id``, ``client_secret``) rotates tokens: a new
  access token that expires in ``token_lifetime`` seconds and a new refresh
  token; the refresh token used is revoked (``invalid_refresh_token`` after).

Scripted answers (`fail_next`) come before authentication, as Slack's rate
limiter and outages do: nothing is posted. `Slow` posts, then answers late.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from platypus._server import ServerThread
from tests.fakes.tls import TestCA, TlsServerThread
from tests.fakes.vendor import RESET, RecordedRequest, Reply, read_request

# The answer-writing helpers are the same for every JSON fake.
from tests.fakes.zuora import Slow, send_json, send_reset

__all__ = ["RESET", "FakeSlack", "Reply", "Slow"]

CHANNELS = {"general": "C0GENERAL1", "ops-alerts": "C0OPSALRT1", "billing": "C0BILLING1"}
ARCHIVED = {"old-news": "C0OLDNEWS1"}
WITHOUT_BOT = {"private": "G0PRIVATE1"}
MAX_TEXT = 40_000


class FakeSlack:
    """A Slack workspace on loopback; see the module docstring."""

    bot_token = "xoxb-1111-2222-fakeslackbottoken"
    client_id = "1111.2222"
    client_secret = "fake-slack-client-secret-93ab"
    refresh_token = "xoxe-1-fake-refresh-0"

    def __init__(self, token_lifetime: float = 43_200.0, *, tls: TestCA | None = None) -> None:
        """``tls``: serve HTTPS with that CA's certificate (clients need its ``path``)."""
        self.default_token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._server = ServerThread(self._app) if tls is None else TlsServerThread(self._app, tls)
        self.reset()

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        """Base URL of the Web API, such as ``http://127.0.0.1:54321/api``."""
        return self._server.url + "/api"

    def reset(self) -> None:
        """Forget messages, rotated tokens, scripts and the log."""
        with self._lock:
            self.token_lifetime = self.default_token_lifetime
            # token -> expiry (monotonic); the static bot token never expires
            self.tokens: dict[str, float] = {self.bot_token: float("inf")}
            self.refresh_tokens = {self.refresh_token}
            self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
            self._scripts: dict[str, deque[Reply | Slow]] = defaultdict(deque)
            self._log: list[RecordedRequest] = []
            self._rotations = itertools.count(1)
            self._ts = itertools.count(1)

    # -- programming --------------------------------------------------------

    def fail_next(self, method: str, *answers: Reply | Slow) -> None:
        """Answer the next calls of ``method`` (e.g. ``chat.postMessage``) with these."""
        with self._lock:
            self._scripts[method].extend(answers)

    def expire_tokens(self) -> None:
        """Expire every access token, the static bot token included (as rotation would)."""
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, float("-inf"))

    # -- inspection ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def calls_of(self, method: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == f"/api/{method}"]

    def posted(self, channel: str) -> list[dict[str, Any]]:
        """Messages in ``channel`` (ID or name)."""
        with self._lock:
            return list(self.messages.get(_channel_id(channel) or channel, []))

    # -- the ASGI app ---------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = await read_request(scope, receive, send)
        if received is None:
            return
        body = received
        path: str = scope["path"]
        method = path.removeprefix("/api/")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            script = self._scripts.get(method)
            scripted = script.popleft() if script else None
        delay = 0.0
        if isinstance(scripted, Reply):
            status, answer, extra = scripted.status, scripted.body, dict(scripted.headers)
            delay = scripted.delay
        else:
            status, answer, extra = 200, self._handle(method, headers, body), {}
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
        await send_json(send, status, answer, extra)

    def _handle(self, method: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if method == "oauth.v2.access":
            return self._rotate(body)
        if method != "chat.postMessage":
            return {"ok": False, "error": "unknown_method"}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return {"ok": False, "error": "not_authed"}
        with self._lock:
            expiry = self.tokens.get(token)
        if expiry is None:
            return {"ok": False, "error": "invalid_auth"}
        if time.monotonic() >= expiry:
            return {"ok": False, "error": "token_expired"}
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return {"ok": False, "error": "invalid_json"}
        if not isinstance(data, dict):
            return {"ok": False, "error": "invalid_arguments"}
        return self._post(data)

    def _post(self, data: dict[str, Any]) -> dict[str, Any]:
        name = str(data.get("channel") or "")
        if not name:
            return {"ok": False, "error": "channel_not_found"}
        stripped = name.removeprefix("#")
        if stripped in ARCHIVED or name in ARCHIVED.values():
            return {"ok": False, "error": "is_archived"}
        if stripped in WITHOUT_BOT or name in WITHOUT_BOT.values():
            return {"ok": False, "error": "not_in_channel"}
        channel = _channel_id(name)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        text, blocks = data.get("text"), data.get("blocks")
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if text and len(text) > MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        with self._lock:
            ts = f"{1_700_000_000 + next(self._ts)}.000100"
            message = {"type": "message", "user": "U0BOTUSER1", "text": text or "", "ts": ts}
            if blocks:
                message["blocks"] = blocks
            if data.get("thread_ts"):
                message["thread_ts"] = data["thread_ts"]
            self.messages[channel].append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _rotate(self, body: bytes) -> dict[str, Any]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("client_id") != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if form.get("client_secret") != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        if form.get("grant_type") != "refresh_token":
            return {"ok": False, "error": "invalid_grant_type"}
        with self._lock:
            used = form.get("refresh_token")
            if used not in self.refresh_tokens:
                return {"ok": False, "error": "invalid_refresh_token"}
            n = next(self._rotations)
            access = f"xoxe.xoxb-1-rotated-access-{n}-{time.time_ns()}"
            refresh = f"xoxe-1-fake-refresh-{n}"
            self.refresh_tokens.discard(used)
            self.refresh_tokens.add(refresh)
            self.tokens[access] = time.monotonic() + self.token_lifetime
            lifetime = self.token_lifetime
        return {
            "ok": True,
            "app_id": "A0FAKEAPP1",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(lifetime),
            "token_type": "bot",
            "scope": "chat:write",
            "bot_user_id": "U0BOTUSER1",
            "team": {"id": "T0FAKETEAM", "name": "Fake"},
        }


def _channel_id(name: str) -> str | None:
    stripped = name.removeprefix("#")
    if stripped in CHANNELS:
        return CHANNELS[stripped]
    return name if name in CHANNELS.values() else None
