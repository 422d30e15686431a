"""A loopback TCP proxy in front of a fake vendor, with vendor outages on demand.

::

    with OutageProxy(fake_vendor.url) as proxy:
        ...  # a connection whose base_url is proxy.url
        proxy.outage("refused", 0.4)   # returns at once; the outage ends by itself

Kinds of outage, as a vendor has them:

* ``"503"``: every request is answered ``503 Service Unavailable``;
* ``"retry-after"``: the same with ``Retry-After: 1``;
* ``"refused"``: the listening socket is closed, so connecting is refused
  (``ECONNREFUSED``); it listens again on the same port when the outage ends;
* ``"timeout"``: connections are accepted and requests read, but never answered
  until the outage ends, so the client's timeout fires.

An outage cuts every connection open when it starts (a pooled keep-alive
connection would otherwise carry on as if nothing happened). Outside an outage
bytes are copied both ways untouched. Counts of what the proxy did are in
`OutageProxy.counts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["Kind", "OutageProxy"]

Kind = Literal["503", "retry-after", "refused", "timeout"]

MAX_EXTENSION = 10.0
"""Seconds an outage asked to be met by requests may run past its length."""


class OutageProxy:
    """See the module docstring. Safe to drive from the test thread."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._port = 0
        self._kind: Kind | None = None
        self._until = 0.0
        self._live: set[asyncio.StreamWriter] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._ending: asyncio.Future[None] | None = None
        self.counts: Counter[str] = Counter()

    # -- life ---------------------------------------------------------------

    def start(self) -> str:
        """Start listening on a free loopback port; returns the URL."""
        self._thread.start()
        self._call(self._listen())
        return self.url

    def stop(self) -> None:
        self._call(self._close_all(listening=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> OutageProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- outages ------------------------------------------------------------

    def outage(self, kind: Kind, seconds: float, *, met_by: int = 0) -> float:
        """Start an outage of ``kind`` for ``seconds``; returns when it is due to end
        (monotonic).

        ``met_by`` keeps it going past ``seconds`` (by up to `MAX_EXTENSION`) until
        that many requests have met it, so a test on a slow machine still sees the
        outage it asked for. Requests are counted for every kind but ``"refused"``,
        where the proxy sees none.
        """
        return self._call(self._begin(kind, seconds, met_by))

    @property
    def in_outage(self) -> bool:
        return self._kind is not None

    def _call(self, coro: object) -> object:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(10)

    async def _begin(self, kind: Kind, seconds: float, met_by: int) -> float:
        self._kind = kind
        self._until = time.monotonic() + seconds
        wanted = self.counts[kind] + met_by
        give_up = self._until + MAX_EXTENSION
        await self._close_all(listening=kind == "refused")

        async def end_when_met() -> None:
            await asyncio.sleep(seconds)
            while self.counts[kind] < wanted and time.monotonic() < give_up:  # noqa: ASYNC110 -- a bounded poll of counts bumped in several places
                await asyncio.sleep(0.01)
            self._until = time.monotonic()
            await self._end()

        self._ending = asyncio.ensure_future(end_when_met())
        return self._until

    async def _end(self) -> None:
        kind, self._kind = self._kind, None
        for writer in list(self._held):
            writer.close()
        self._held.clear()
        if kind == "refused":
            await self._listen()

    async def _listen(self) -> None:
        # reuse_address (asyncio's default on Unix) lets the same port listen again.
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close_all(self, *, listening: bool) -> None:
        if listening and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._live):
            writer.close()
        self._live.clear()

    # -- connections --------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind = self._kind
        try:
            if kind in ("503", "retry-after"):
                await _read_request(reader)
                extra = b"Retry-After: 1\r\n" if kind == "retry-after" else b""
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\n" + extra + b"Content-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
                await writer.drain()
                self.counts[kind] += 1
                writer.close()
            elif kind == "timeout":
                self.counts["timeout"] += 1
                self._held.add(writer)
                await _read_request(reader)
                await asyncio.sleep(max(self._until - time.monotonic(), 0) + 1)
                writer.close()
            else:
                await self._forward(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["forwarded"] += 1
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._live.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._live.difference_update((writer, up_writer))


async def _read_request(reader: asyncio.StreamReader) -> None:
    """Read one HTTP/1.1 request head and its body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
