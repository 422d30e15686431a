"""The load generator: posts events to ``POST /events`` over real HTTP, cheaply.

A raw HTTP/1.1 keep-alive client on asyncio streams (a request is one write,
its answer one status line, headers and a ``Content-Length`` body), so that
the client costs far less CPU than the servers it measures, and the same
client drives every peer. It runs in the bench process, never in the server's.

Two shapes of load:

* `closed_loop`: ``connections`` clients, each sending its next request as soon
  as the last is answered. Each key is given to one client, and a client sends
  its events in index order, so each key's events arrive in order.
* `paced`: event ``i`` is due at ``start + i / rate`` and carries that moment
  in its ``time``; an event waits only for the previous event of its own key
  (order), never for a busy client. Latency read at the sink from that time
  counts any wait of the sender too, so falling behind cannot hide (no
  coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench._opportunity import BATCH_TYPE, SINGLE_TYPE, Events, batch_body, timestamp


class LoadError(Exception):
    """The server refused or failed a request: the run is void."""


class _Client:
    """One keep-alive connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._host, self._port, limit=1 << 20
            )
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._reader, self._writer

    async def post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        reused = self._writer is not None
        try:
            return await self._post(body, content_type)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
        # The server closed a connection that sat idle longer than its keep-alive
        # (uvicorn: 5 s) before reading the request: send it again on a new one, as
        # HTTP clients do. Had the server taken it, the sink's tally would say so.
        await self.close()
        return await self._post(body, content_type)

    async def _post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        reader, writer = await self._connect()
        writer.write(
            b"POST /events HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: %s\r\n"
            b"content-length: %d\r\n\r\n"
            % (self._host.encode(), self._port, content_type.encode(), len(body))
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise LoadError("the server answered with a chunked body, which is not read here")
        if length is None:
            raise LoadError(f"no content-length in the answer: {head!r}")
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def _check(status: int, body: bytes, sent: int) -> None:
    if status != 202:
        raise LoadError(f"the server answered {status}: {body[:300]!r}")
    try:
        accepted = json.loads(body).get("accepted")
    except ValueError as exc:
        raise LoadError(f"the server's answer is not JSON: {body[:300]!r}") from exc
    if accepted != sent:
        raise LoadError(f"{sent} events sent, {accepted} accepted: {body[:300]!r}")


@dataclass(frozen=True, slots=True)
class Sent:
    """What a load sent: how many events, from when, for how long."""

    events: int
    started_at: float  # time.time() of the first request
    seconds: float  # until the last answer


async def closed_loop(
    url: str,
    events: Events,
    indices: Sequence[int],
    *,
    batch: int,
    connections: int,
    progress: list[int] | None = None,
) -> Sent:
    """Post ``indices`` of ``events`` as fast as the server answers (see the module doc).

    ``progress[0]``, when given, counts the events accepted so far (read by another
    thread: the bench's RSS watcher, which measures memory per event, not per second).
    """
    lanes: list[list[int]] = [[] for _ in range(connections)]
    for index in indices:
        lanes[events.key_of[index] % connections].append(index)
    content_type = BATCH_TYPE if batch > 1 else SINGLE_TYPE
    stamp = timestamp(time.time())

    async def lane(own: list[int]) -> None:
        client = _Client(url)
        try:
            for start in range(0, len(own), batch):
                chunk = own[start : start + batch]
                if batch > 1:
                    body = batch_body([events.raw(i, stamp) for i in chunk])
                else:
                    body = events.raw(chunk[0], stamp)
                status, answer = await client.post(body, content_type)
                _check(status, answer, len(chunk))
                if progress is not None:
                    progress[0] += len(chunk)
        finally:
            await client.close()

    started_at, started = time.time(), time.perf_counter()
    await asyncio.gather(*(lane(own) for own in lanes if own))
    return Sent(len(indices), started_at, time.perf_counter() - started)


async def paced(url: str, events: Events, *, rate: float, max_connections: int = 512) -> Sent:
    """Post every event of ``events`` alone, event ``i`` due at ``start + i / rate``."""
    idle: list[_Client] = []
    opened = 0
    slots = asyncio.Semaphore(max_connections)
    last_of_key: dict[int, asyncio.Task[None]] = {}
    failures: list[BaseException] = []

    async def send(index: int, due: float, previous: asyncio.Task[None] | None) -> None:
        nonlocal opened
        if previous is not None:
            await asyncio.wait([previous])
        async with slots:
            if idle:
                client = idle.pop()
            else:
                client = _Client(url)
                opened += 1
            try:
                status, answer = await client.post(events.raw(index, timestamp(due)), SINGLE_TYPE)
                _check(status, answer, 1)
            except BaseException as exc:
                failures.append(exc)
                await client.close()
                raise
            idle.append(client)

    started_at, started = time.time(), time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for index in range(events.count):
        due = started_at + index / rate
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if failures:
            break
        key = events.key_of[index]
        task = asyncio.create_task(send(index, due, last_of_key.get(key)))
        last_of_key[key] = task
        tasks.append(task)
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in idle:
        await client.close()
    if failures:
        raise LoadError(f"{len(failures)} requests failed, the first: {failures[0]!r}")
    return Sent(events.count, started_at, time.perf_counter() - started)
