"""``/readyz`` and ``/metrics`` of ``platypus worker`` and ``platypus web``, and a broker
that restarts without its data (issue 13 item 5), on a real Kafka-protocol broker.

Tansu keeps its data in memory, so restarting it on the same port is exactly
"the broker lost its data": the topics come back empty, with Tansu's default
partition count instead of the configured one, and the consumer group and its
committed offsets are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.vendor import FakeVendor
from tests.kafka_broker import KafkaBroker, start_tansu
from tests.runtimes import stop_worker, write_kafka_project
from tests.support import closed_won, free_port

pytestmark = pytest.mark.slow

FLOW = """
name: orders
consumes: sales.opportunity.closed_won.v1
steps:
  - name: create_order
    to: vendor.post
    params: {path: /orders}
    payload: {event: id, key: subject}
"""

# Metrics the embedded runtime serves, which a Kafka worker must serve too.
SHARED_METRICS = {
    "platypus_events_consumed",
    "platypus_flow_outcomes",
    "platypus_delivery_attempts",
    "platypus_event_processing_seconds",
    "platypus_consumer_lag",
    "platypus_consumer_running",
}


def _start(root: Path, log: IO[bytes], *args: str) -> subprocess.Popen[bytes]:
    command = Path(sys.executable).parent / "platypus"
    # Output to a file: a pipe nobody reads fills up and blocks the process.
    return subprocess.Popen(
        [str(command), *args, "--project", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextlib.contextmanager
def _processes(root: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            stop_worker(process)


async def _get(client: httpx.AsyncClient, url: str) -> httpx.Response | None:
    try:
        return await client.get(url, timeout=5)
    except httpx.TransportError:
        return None


async def _wait_ready(
    client: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes], log: Path, within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {_tail(log)}")
        reply = await _get(client, url)
        if reply is not None:
            last = reply.json()
            if reply.status_code == 200:
                return dict(last)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not ready within {within} s: {last}\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _metrics(text: str) -> dict[str, list[Any]]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


async def _post(client: httpx.AsyncClient, url: str, event: dict[str, Any]) -> int:
    reply = await client.post(
        url, content=json.dumps(event), headers={"content-type": "application/cloudevents+json"}
    )
    assert reply.status_code in {202, 503}, (reply.status_code, reply.text)
    if reply.status_code == 503:
        assert reply.headers["retry-after"]
    return reply.status_code


async def test_worker_and_web_serve_readiness_and_the_embedded_runtimes_metrics(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker
) -> None:
    settings = write_kafka_project(tmp_path, fake_vendor.url, {"orders": FLOW}, kafka_broker)
    web_port = free_port()
    logs = tmp_path / "worker.log", tmp_path / "web.log"
    with _processes(tmp_path) as started, logs[0].open("wb") as wlog, logs[1].open("wb") as hlog:
        started.append(_start(tmp_path, wlog, "worker", "--log-level", "warning"))
        started.append(_start(tmp_path, hlog, "web", "--port", str(web_port)))
        worker_url = f"http://127.0.0.1:{settings.web_port}"
        web_url = f"http://127.0.0.1:{web_port}"
        async with httpx.AsyncClient() as client:
            ready = await _wait_ready(client, f"{worker_url}/readyz", started[0], logs[0], 90)
            assert ready["checks"] == dict.fromkeys(
                ["broker", "topics", "data", "partitions", "commits", "consumer"], True
            )
            assert ready["partitions"] == [0, 1, 2, 3]
            await _wait_ready(client, f"{web_url}/readyz", started[1], logs[1], 60)
            events = [closed_won() for _ in range(10)]
            for event in events:
                assert await _post(client, f"{web_url}/events", event) == 202
            await fake_vendor.wait_for(10, path="/orders", within=60)

            deadline = time.monotonic() + 30
            while True:
                families = _metrics((await client.get(f"{worker_url}/metrics")).text)
                lag = {s.labels["partition"]: s.value for s in families["platypus_consumer_lag"]}
                delivered = sum(
                    s.value
                    for s in families["platypus_flow_outcomes"]
                    if s.name.endswith("_total")
                    and s.labels == {"flow": "orders", "outcome": "delivered"}
                )
                if delivered == 10 and set(lag) == {"0", "1", "2", "3"} and not any(lag.values()):
                    break
                assert time.monotonic() < deadline, (
                    delivered,
                    lag,
                    kafka_broker.committed(settings.group_id, settings.topic("events")),
                    (await client.get(f"{worker_url}/readyz")).json(),
                    logs[0].read_text()[-3000:],
                )
                await asyncio.sleep(0.3)
            assert set(families) >= SHARED_METRICS
            readyz = (await client.get(f"{worker_url}/readyz")).json()
            assert [s.value for s in families["platypus_ready"]] == [1.0], readyz
            assert [s.value for s in families["platypus_broker_up"]] == [1.0]
            assert [s.value for s in families["platypus_partitions_assigned"]] == [4.0]
            assert [
                s.value for s in families["platypus_commit_failures"] if s.name.endswith("_total")
            ] == [0.0]

            web_families = _metrics((await client.get(f"{web_url}/metrics")).text)
            assert [s.value for s in web_families["platypus_broker_up"]] == [1.0]


async def test_a_broker_that_restarts_without_its_data_is_noticed_and_nothing_posted_is_lost(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    broker_run = start_tansu()
    broker = broker_run.__enter__()
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    # 8 partitions: Tansu recreates lost topics with 4, so the count changes too.
    settings = write_kafka_project(
        tmp_path, fake_vendor.url, {"orders": FLOW}, broker, partitions=8
    )
    web_port = free_port()
    worker_url, web_url = f"http://127.0.0.1:{settings.web_port}", f"http://127.0.0.1:{web_port}"
    logs = tmp_path / "worker.log", tmp_path / "web.log"
    try:
        with (
            _processes(tmp_path) as started,
            logs[0].open("wb") as wlog,
            logs[1].open("wb") as hlog,
        ):
            started.append(_start(tmp_path, wlog, "worker", "--log-level", "warning"))
            started.append(_start(tmp_path, hlog, "web", "--port", str(web_port)))
            async with httpx.AsyncClient() as client:
                await _wait_ready(client, f"{worker_url}/readyz", started[0], logs[0], 90)
                await _wait_ready(client, f"{web_url}/readyz", started[1], logs[1], 60)
                before = [closed_won() for _ in range(200)]
                for event in before:
                    assert await _post(client, f"{web_url}/events", event) == 202
                await fake_vendor.wait_for(len(before), path="/orders", within=90)

                # The broker restarts on the same port, empty.
                broker_run.__exit__(None, None, None)
                broker_run = start_tansu(port)
                broker = broker_run.__enter__()

                # Events posted from now on: each is refused (503) or accepted (202),
                # and every accepted one must reach the vendor.
                accepted: list[str] = []
                refused = 0
                not_ready: dict[str, dict[str, Any]] = {}
                after = [closed_won() for _ in range(60)]
                deadline = time.monotonic() + 120
                for event in after:
                    while True:
                        assert time.monotonic() < deadline, (len(accepted), refused, not_ready)
                        for name, url in (("worker", worker_url), ("web", web_url)):
                            reply = await _get(client, f"{url}/readyz")
                            if reply is not None and reply.status_code == 503:
                                not_ready.setdefault(name, reply.json())
                        if await _post(client, f"{web_url}/events", event) == 202:
                            accepted.append(event["id"])
                            break
                        refused += 1
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(0.05)

                deadline = time.monotonic() + 120
                while not set(accepted) <= _delivered(fake_vendor):
                    missing = set(accepted) - _delivered(fake_vendor)
                    assert time.monotonic() < deadline, (
                        f"{len(missing)} accepted events never delivered; "
                        f"worker log: {logs[0].read_text()[-4000:]}"
                    )
                    await asyncio.sleep(0.3)
                ready = await _wait_ready(client, f"{worker_url}/readyz", started[0], logs[0], 90)
                await _wait_ready(client, f"{web_url}/readyz", started[1], logs[1], 60)
                families = _metrics((await client.get(f"{worker_url}/metrics")).text)
    finally:
        broker_run.__exit__(None, None, None)

    print(
        f"\nafter the restart: {len(accepted)} accepted, {refused} refused with 503; "
        f"not ready in between: {json.dumps(not_ready)}"
    )
    assert len(accepted) == len(after)
    assert "worker" in not_ready, "the worker never said it was not ready"
    reasons = " ".join(not_ready["worker"].get("reasons", {}).values())
    assert "lost" in reasons or "does not answer" in reasons, not_ready["worker"]
    assert ready["status"] == "ready"
    losses = [s for s in families["platypus_broker_data_loss"] if s.name.endswith("_total")]
    assert sum(s.value for s in losses) >= 1, losses
    log = logs[0].read_text()
    assert '"level": "error"' in log
    assert "the Kafka broker lost data" in log


def _delivered(vendor: FakeVendor) -> set[str]:
    return {r.json["event"] for r in vendor.requests_to("/orders") if r.body}
