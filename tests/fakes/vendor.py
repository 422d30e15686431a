"""A programmable fake vendor: a real HTTP server on loopback for integration tests.

::

    def test_retries_on_503(fake_vendor):
        fake_vendor.script("/orders", [(503,), Reply(429, headers={"Retry-After": "1"})])
        ...  # deliver to fake_vendor.url
        assert [r.path for r in fake_vendor.requests] == ["/orders"] * 3

Each request to a scripted path takes the next scripted reply; once the script
is used up (or for paths never scripted) the fake answers 201 to POST and 200 to
anything else, with ``{"id": "fake-<n>"}``. Every request is logged, whatever
the answer. Safe to use from the test thread while the server thread answers.

A scripted reply is a `Reply`, a bare status code, or a tuple
``(status,)``, ``(status, body)`` or ``(status, body, headers)``. A body that is
``str`` or ``bytes`` is sent as is; anything else is sent as JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from platypus._server import ServerThread

__all__ = ["RESET", "FakeVendor", "RecordedRequest", "Reply", "fake_vendor"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``delay`` waits that many seconds before answering."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. Header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    time: float  # time.monotonic() on arrival
    status: int = 0  # what the fake answered (-1: it reset the connection)

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


ReplySpec = Reply | int | tuple[Any, ...]


def _to_reply(spec: ReplySpec) -> Reply:
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, int):
        return Reply(spec)
    if isinstance(spec, tuple) and 1 <= len(spec) <= 3 and isinstance(spec[0], int):
        status, body, headers = (*spec, None, None)[:3]
        if (
            len(spec) == 2
            and isinstance(body, Mapping)
            and any(str(k).lower() == "retry-after" for k in body)
        ):
            # (429, {"Retry-After": "1"}) reads like headers but would be sent as a body.
            raise TypeError(
                f"ambiguous reply {spec!r}: the second item is the body; "
                f"write ({status}, None, {dict(body)!r}) or Reply({status}, headers=...)"
            )
        return Reply(status, body, dict(headers or {}))
    raise TypeError(f"a scripted reply is a Reply, a status or (status, body, headers): {spec!r}")


class FakeVendor:
    """A scriptable HTTP vendor on loopback; see the module docstring."""

    def __init__(self, id_prefix: str = "fake") -> None:
        self.id_prefix = id_prefix
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._delays: dict[str, float] = {}
        # Per held path, the requests waiting: their loop and the event that frees them.
        self._held: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._ids = itertools.count(1)
        self._server = ServerThread(self._app)

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        """Start serving; return the base URL."""
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeVendor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321``."""
        return self._server.url

    def url_for(self, path: str) -> str:
        return self.url + path

    # -- programming --------------------------------------------------------

    def script(self, path: str, responses: Iterable[ReplySpec]) -> None:
        """Queue answers for ``path`` (exact, without query), used one per request."""
        replies = [_to_reply(r) for r in responses]
        with self._lock:
            self._scripts[path].extend(replies)

    def delay(self, path: str, seconds: float) -> None:
        """Wait ``seconds`` before answering every later request to ``path``; 0 clears."""
        with self._lock:
            if seconds > 0:
                self._delays[path] = seconds
            else:
                self._delays.pop(path, None)

    def hold(self, path: str) -> None:
        """Keep every later request to ``path`` unanswered until `release`.

        Tests of concurrency use it instead of timings: requests that are all
        held at once were all in flight at once, however loaded the machine is.
        """
        with self._lock:
            self._held.setdefault(path, [])

    def release(self, path: str) -> None:
        """Answer the requests held for ``path``, and stop holding later ones."""
        with self._lock:
            waiting = self._held.pop(path, [])
        for loop, freed in waiting:
            loop.call_soon_threadsafe(freed.set)

    def reset(self) -> None:
        """Forget the log, scripts and delays; release what is held."""
        with self._lock:
            self._log.clear()
            self._scripts.clear()
            self._delays.clear()
            self._ids = itertools.count(1)
            held = list(self._held)
        for path in held:
            self.release(path)

    # -- inspection ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def last(self) -> RecordedRequest:
        """The latest request; AssertionError when there was none."""
        log = self.requests
        assert log, "the fake vendor received no request"
        return log[-1]

    async def wait_for(
        self, count: int, *, path: str | None = None, within: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until ``count`` requests (to ``path``, if given) arrived; return them."""
        found = await self.wait_until(
            lambda log: len([r for r in log if path is None or r.path == path]) >= count,
            within=within,
            what=f"{count} requests{f' to {path}' if path else ''}",
        )
        return found if path is None else [r for r in found if r.path == path]

    async def wait_until(
        self,
        condition: Callable[[list[RecordedRequest]], bool],
        *,
        within: float = 5.0,
        what: str = "the condition",
    ) -> list[RecordedRequest]:
        """Wait until ``condition`` holds for the requests received so far; return them."""
        deadline = time.monotonic() + within
        while True:
            found = self.requests
            if condition(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {what} within {within}s; got {len(found)} requests: "
                    f"{[r.path for r in found]}"
                )
            await asyncio.sleep(0.01)

    # -- the ASGI app -------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = await read_request(scope, receive, send)
        if received is None:
            return
        path: str = scope["path"]
        arrived = time.monotonic()
        with self._lock:
            script = self._scripts.get(path)
            reply = script.popleft() if script else None
            delay = self._delays.get(path, 0.0)
            freed = None
            if path in self._held:
                freed = asyncio.Event()
                self._held[path].append((asyncio.get_running_loop(), freed))
            default_id = f"{self.id_prefix}-{next(self._ids)}"
            if reply is None:
                reply = Reply(201 if scope["method"] == "POST" else 200, {"id": default_id})
            self._log.append(
                RecordedRequest(
                    method=scope["method"],
                    path=path,
                    query=scope["query_string"].decode("latin-1"),
                    headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                    body=received,
                    time=arrived,
                    status=reply.status,
                )
            )
        if freed is not None:
            await freed.wait()
        if delay + reply.delay > 0:
            await asyncio.sleep(delay + reply.delay)
        await _send_reply(send, reply)


RESET = Reply(-1)
"""A scripted reply that drops the connection mid-answer, as a reset would."""


class _ConnectionResetError(Exception):
    pass


async def _send_reply(send: Send, reply: Reply) -> None:
    if reply.status == RESET.status:
        # Promise a body, send none, and fail: uvicorn then closes the connection,
        # and the client sees it cut off mid-response.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        raise _ConnectionResetError("the fake vendor resets this connection")
    headers = {k.lower(): v for k, v in reply.headers.items()}
    if reply.body is None:
        body = b""
    elif isinstance(reply.body, bytes):
        body = reply.body
    elif isinstance(reply.body, str):
        body = reply.body.encode()
        headers.setdefault("content-type", "text/plain; charset=utf-8")
    else:
        body = json.dumps(reply.body).encode()
        headers.setdefault("content-type", "application/json")
    headers["content-length"] = str(len(body))
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="session")
def _fake_vendor_server() -> Iterator[FakeVendor]:
    # One server for the session: starting and stopping uvicorn costs ~0.2 s a test.
    with FakeVendor() as vendor:
        yield vendor


@pytest.fixture
def fake_vendor(_fake_vendor_server: FakeVendor) -> Iterator[FakeVendor]:
    """A running `FakeVendor` with an empty log, no scripts and no delays."""
    _fake_vendor_server.reset()
    yield _fake_vendor_server
    _fake_vendor_server.reset()


async def read_request(scope: Scope, receive: Receive, send: Send) -> bytes | None:
    """Answer ASGI lifespan messages; for an HTTP request, return its whole body.

    ``None`` for anything that is not an HTTP request: the fake has nothing to do.
    """
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return None
    if scope["type"] != "http":
        return None
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
