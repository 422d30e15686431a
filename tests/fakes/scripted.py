"""What the HTTPS vendor fakes share: a server on loopback, a request log, scripted answers.

A fake subclasses `ScriptedFake` and implements `ScriptedFake.handle`, its vendor's
behaviour. Before that, the next scripted answer for the request's path (and
method, when the script names one) is used instead, as a vendor's gateway answers
a 429 or a 503 before the service sees the request: a `Reply`, `RESET` (the
connection dropped mid-answer) or `Slow` (the request is handled, and answered
late, which is what a client timeout looks like from the outside).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from tests.fakes.tls import TlsServerThread
from tests.fakes.vendor import RESET, RecordedRequest, Reply, read_request
from tests.fakes.zuora import send_json, send_reset

__all__ = ["RESET", "Answer", "Reply", "ScriptedFake", "Slow"]


@dataclass(frozen=True)
class Slow:
    """Handle the request normally, then answer after ``delay`` seconds."""

    delay: float


Scripted = Reply | Slow


@dataclass
class Answer:
    """What a fake answers: a status, a body (JSON unless ``str`` or ``bytes``), headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedFake:
    """An HTTPS fake on loopback; subclasses implement `handle`."""

    media_type = "application/json"
    """The Content-Type of a JSON body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server = TlsServerThread(self._app, date_header=False)
        self.ca_path = self._server.ca_path
        """The CA certificate (PEM) a client trusts to reach the fake."""
        self._scripts: dict[tuple[str | None, str], deque[Scripted]] = defaultdict(deque)
        self._log: list[RecordedRequest] = []

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def _forget_requests(self) -> None:
        """Forget scripts and the request log (a subclass's `reset` calls it, locked)."""
        self._scripts = defaultdict(deque)
        self._log = []

    # -- programming and inspection ----------------------------------------------

    def fail_next(self, path: str, *answers: Scripted, method: str | None = None) -> None:
        """Answer the next requests to ``path`` (of ``method``, if given) with these."""
        with self._lock:
            self._scripts[(method, path)].extend(answers)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- the vendor -----------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        """The vendor's answer to one request (header names lower-cased)."""
        raise NotImplementedError

    def extra_headers(self) -> dict[str, str]:
        """Headers the vendor puts on every answer."""
        return {}

    # -- the ASGI app -----------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_request(scope, receive, send)
        if body is None:
            return
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope["query_string"].decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scripted: Scripted | None = None
        with self._lock:
            for key in ((method, path), (None, path)):
                script = self._scripts.get(key)
                if script:
                    scripted = script.popleft()
                    break
        if isinstance(scripted, Reply):
            answer = Answer(scripted.status, scripted.body, dict(scripted.headers))
            delay = scripted.delay
        else:
            answer = self.handle(method, path, query, headers, body)
            delay = scripted.delay if isinstance(scripted, Slow) else 0.0
        with self._lock:
            self._log.append(
                RecordedRequest(method, path, query, headers, body, time.monotonic(), answer.status)
            )
        if delay:
            await asyncio.sleep(delay)
        if answer.status == RESET.status:
            await send_reset(send)
        out = {k.lower(): v for k, v in {**self.extra_headers(), **answer.headers}.items()}
        content = answer.body
        if content is not None and not isinstance(content, str | bytes):
            content = json.dumps(content)
            out.setdefault("content-type", self.media_type)
        await send_json(send, answer.status, content, out)
