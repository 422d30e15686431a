"""A fast loopback vendor, in a process of its own: answers every POST ``201 {}``.

::

    python bench/_vendor.py [--delay-ms MS]      # prints "listening on http://127.0.0.1:PORT"

A few lines of asyncio protocol instead of a web framework, so that the vendor
costs the machine as little as possible (about 20 µs a request) and the peers'
HTTP clients are what is measured. It speaks HTTP/1.1 with keep-alive and
``Content-Length`` bodies (what httpx sends), with ``TCP_NODELAY`` set (without
it a response waits for the client's delayed ACK, ~40 ms).

Each request's JSON body is a mapped event (``external_id``, ``sent_at``) and
its ``Idempotency-Key`` is ``<event id>:<flow>:<step>``: the vendor tallies it
on receipt (`bench._tally`, from the environment), then answers after
``--delay-ms``. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._tally import Tally

_CREATED = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
_UNSUPPORTED = b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self, tally: Tally, delay: float) -> None:
        self._tally = tally
        self._delay = delay
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length, key, chunked = 0, "", False
            for line in bytes(self._buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"idempotency-key":
                    key = value.strip().decode()
                elif name == b"transfer-encoding":
                    chunked = True
            if chunked:  # never sent by the clients measured here
                self._write(_UNSUPPORTED)
                self._buffer.clear()
                return
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            self._received(key, body)

    def _received(self, key: str, body: bytes) -> None:
        try:
            payload = json.loads(body)
            self._tally.delivered(
                str(payload["external_id"]), key.partition(":")[0], payload.get("sent_at")
            )
        except (ValueError, KeyError, TypeError):
            self._tally.other += 1
        if self._delay:
            asyncio.get_running_loop().call_later(self._delay, self._write, _CREATED)
        else:
            self._write(_CREATED)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def _serve(delay: float, port: int) -> None:
    tally = Tally.from_env()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(
        lambda: _Connection(tally, delay), "127.0.0.1", port, backlog=1024
    )
    bound = server.sockets[0].getsockname()
    print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    async with server:
        await stop.wait()
    tally.write_all()


def main(argv: list[str] | None = None) -> int:
    """Serve until told to stop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer after this long")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.delay_ms / 1000, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
