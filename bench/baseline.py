"""The baseline peer: the service a user would write by hand in an afternoon.

::

    python bench/baseline.py --data-dir DIR [--port 0] [--to sink|http --vendor-url URL]
    python bench/baseline.py --smoke            # a few events through it, checked

Starlette + pydantic + SQLite, about 60 lines (`Baseline`), kept honest so that
Platypus is compared with something correct rather than something merely fast:

* **validating** every event with the same pydantic schema as Platypus (the
  CloudEvent envelope with typed ``data``), from the request bytes; a bad body
  gets a 422 with pydantic's errors;
* **durable**: ``202`` only once the events are committed to SQLite in WAL mode
  with ``synchronous=FULL`` (an fsync per commit). Requests that arrive while a
  commit is in progress go into the next one (group commit);
* **ordered**: one loop reads the log in order and delivers, to the same
  in-process sink as Platypus (`bench._tally`) or to an HTTP vendor with httpx,
  the client Platypus's ``http`` adapter uses, or with ``--client aiohttp``
  (keys in parallel, each key's events one after the other), then durably
  moves its cursor past what it delivered (at least once, in key order).

What it leaves out, that Platypus does: de-duplication by event id, flows
(its mapping is code), retries with backoff and dead letters, outcomes and a
delivery ledger, metrics, the dashboard. Its figures are a yardstick, not a
product.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvicorn
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._opportunity import BATCH_TYPE, load_typed_model, map_event
from bench._tally import Tally

Typed = load_typed_model()
Batch = TypeAdapter(list[Typed])  # type: ignore[valid-type]
Deliver = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class Baseline:
    """POST /events -> validate -> group commit -> one loop delivers in log order."""

    def __init__(self, path: Path, deliver: Deliver, concurrency: int = 1) -> None:
        self.path, self.deliver, self.concurrency = path, deliver, concurrency
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, key TEXT, body BLOB);"
            "CREATE TABLE IF NOT EXISTS cursor (one INTEGER PRIMARY KEY, position INTEGER);"
            "INSERT OR IGNORE INTO cursor VALUES (1, 0);"
        )
        self.writer = ThreadPoolExecutor(1)  # SQLite has one writer: give it one thread
        self.pending: list[tuple[list[tuple[str, str]], asyncio.Future[None]]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.appended = asyncio.Event()
        self.slots = asyncio.Semaphore(concurrency)  # vendor calls in flight

    async def post_events(self, request: Request) -> JSONResponse:
        body = await request.body()
        events: list[Any]
        try:
            if request.headers.get("content-type", "").startswith(BATCH_TYPE):
                events = Batch.validate_json(body)
            else:
                events = [Typed.model_validate_json(body)]
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            return JSONResponse({"error": "invalid events", "errors": errors}, 422)
        rows = [(e.subject, e.model_dump_json()) for e in events]
        done = asyncio.get_running_loop().create_future()
        self.pending.append((rows, done))
        if self.flushing is None:
            self.flushing = asyncio.create_task(self.flush())
        try:
            await done
        except sqlite3.Error as exc:
            return JSONResponse({"error": f"not stored: {exc}"}, 503)
        return JSONResponse({"accepted": len(rows)}, 202)

    async def flush(self) -> None:  # group commit: all that waits, in one transaction
        while self.pending:
            batch, self.pending = self.pending, []
            rows = [row for rows, _ in batch for row in rows]
            try:
                await asyncio.get_running_loop().run_in_executor(self.writer, self.write, rows)
            except sqlite3.Error as exc:
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for _, done in batch:
                done.set_result(None)
            self.appended.set()
        self.flushing = None

    def write(self, rows: list[tuple[str, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT INTO events (key, body) VALUES (?, ?)", rows)

    def advance(self, position: int) -> None:
        with self.db:
            self.db.execute("UPDATE cursor SET position = ? WHERE one = 1", (position,))

    async def deliver_forever(self) -> None:
        reader = sqlite3.connect(self.path)
        (position,) = reader.execute("SELECT position FROM cursor").fetchone()
        while True:
            self.appended.clear()
            rows = reader.execute(
                "SELECT id, key, body FROM events WHERE id > ? ORDER BY id LIMIT 500", (position,)
            ).fetchall()
            if not rows:
                await self.appended.wait()
                continue
            delivering = [(key, json.loads(body)) for _, key, body in rows]
            if self.concurrency == 1:  # an in-process sink: in log order, nothing to wait on
                for key, event in delivering:
                    await self.deliver(key, event["id"], map_event(event))
            else:  # a vendor: keys in parallel, each key's events in order
                by_key: dict[str, list[dict[str, Any]]] = {}
                for key, event in delivering:
                    by_key.setdefault(key, []).append(event)

                async def one_key(key: str, events: list[dict[str, Any]]) -> None:
                    for event in events:
                        async with self.slots:
                            await self.deliver(key, event["id"], map_event(event))

                await asyncio.gather(*(one_key(k, events) for k, events in by_key.items()))
            position = rows[-1][0]
            await asyncio.get_running_loop().run_in_executor(self.writer, self.advance, position)


# -- running it -----------------------------------------------------------------------


def sink_delivery(tally: Tally) -> Deliver:
    """Deliver to the in-process sink every peer shares."""

    async def deliver(key: str, event_id: str, payload: dict[str, Any]) -> None:
        tally.delivered(payload["external_id"], event_id, payload["sent_at"])

    return deliver


def http_delivery(client: httpx.AsyncClient) -> Deliver:
    """POST to the vendor, as Platypus's http adapter does; retry until it takes it."""

    async def deliver(key: str, event_id: str, payload: dict[str, Any]) -> None:
        headers = {"Idempotency-Key": f"{event_id}:baseline:deliver"}
        while True:
            try:
                response = await client.post("/orders", json=payload, headers=headers)
                response.raise_for_status()
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.5)

    return deliver


def aiohttp_delivery(session: aiohttp.ClientSession) -> Deliver:
    """The same POST with aiohttp, whose cost per request does not grow with connections."""

    async def deliver(key: str, event_id: str, payload: dict[str, Any]) -> None:
        headers = {"Idempotency-Key": f"{event_id}:baseline:deliver"}
        while True:
            try:
                async with session.post("/orders", json=payload, headers=headers) as response:
                    await response.read()
                    response.raise_for_status()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.5)

    return deliver


def create_app(
    data_dir: Path,
    *,
    to: str = "sink",
    vendor_url: str = "",
    concurrency: int = 16,
    client: str = "httpx",
) -> Starlette:
    """The baseline as an ASGI app; the delivery loop runs for the app's lifespan."""
    tally = Tally.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with (
            httpx.AsyncClient(base_url=vendor_url or "http://x", limits=limits) as httpx_client,
            aiohttp.ClientSession(vendor_url or None, connector=connector) as session,
        ):
            if to == "http" and client == "aiohttp":
                deliver, lanes = aiohttp_delivery(session), concurrency
            elif to == "http":
                deliver, lanes = http_delivery(httpx_client), concurrency
            else:
                deliver, lanes = sink_delivery(tally), 1
            baseline = Baseline(data_dir / "baseline.db", deliver, lanes)
            app.router.routes.append(Route("/events", baseline.post_events, methods=["POST"]))
            delivering = asyncio.create_task(baseline.deliver_forever())
            try:
                yield
            finally:
                delivering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivering
                baseline.writer.shutdown()
                baseline.db.close()
        tally.write_all()

    app = Starlette(lifespan=lifespan)
    return app


async def _serve(app: Starlette, port: int) -> None:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    await serving


def main(argv: list[str] | None = None) -> int:
    """Serve the baseline, or with ``--smoke`` check it end to end in seconds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, help="where its SQLite file goes")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--to", choices=["sink", "http"], default="sink")
    parser.add_argument("--vendor-url", default="")
    parser.add_argument("--concurrency", type=int, default=16, help="vendor calls in flight")
    parser.add_argument(
        "--client", choices=["httpx", "aiohttp"], default="httpx", help="the vendor's client"
    )
    parser.add_argument("--smoke", action="store_true", help="a quick end-to-end check")
    args = parser.parse_args(argv)
    if args.smoke:  # the same machinery as bench/embedded.py, with this peer alone
        from bench.embedded import main as embedded

        return embedded(["--smoke", "--peers", "baseline,baseline-aiohttp"])
    if args.to == "http" and not args.vendor_url:
        parser.error("--to http needs --vendor-url")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(
        data_dir,
        to=args.to,
        vendor_url=args.vendor_url,
        concurrency=args.concurrency,
        client=args.client,
    )
    asyncio.run(_serve(app, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
