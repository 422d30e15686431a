"""The dashboard in a real Chromium against a Kafka deployment: web, 2 workers, the indexer.

Every process is a real ``platypus`` subprocess on the real Kafka-protocol broker
(`tests.kafka_broker`) and the real PostgreSQL as the failed-event store (skipped,
saying why, when either is missing, as is Chromium: see `tests.ops.web.test_browser`).
Events go in over HTTP to ``platypus web``; the dashboard is the indexer's ``/ops``.
Every wait is on a condition, with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from platypus.ops.auth import hash_password
from platypus.ops.store import FailureFilter, FailureStatus, FailureStore
from platypus.runtime.kafka import ensure_topics
from tests.fakes.vendor import FakeVendor
from tests.kafka_broker import KafkaBroker
from tests.ops.web.support import REJECT
from tests.ops.web.test_browser import browser  # noqa: F401 -- the fixture
from tests.postgres import fresh_database
from tests.runtimes import (
    start_indexer,
    start_web,
    start_worker,
    stop_worker,
    write_kafka_project,
)
from tests.support import ORDER_FLOW, closed_won, free_port

pytestmark = pytest.mark.slow

OPERATOR, PASSWORD = "olga", "operator-pass-1"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the store, dropped after the test."""
    with fresh_database("platypus_kbrowser") as url:
        yield url


async def _until(check: Callable[[], Any], what: str, processes: list[Any], within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        for process in processes:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"{process.args[1]} exited {process.returncode}: {stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@asynccontextmanager
async def kafka_deployment(
    root: Path, vendor: FakeVendor, broker: KafkaBroker, store_url: str
) -> AsyncIterator[tuple[str, str, FailureStore]]:
    """web + 2 workers + the indexer; the web and dashboard base URLs, and the store."""
    settings = write_kafka_project(
        root, vendor.url, {"orders": ORDER_FLOW}, broker, failures_store=store_url
    )
    config = yaml.safe_load((root / "platypus.yaml").read_text())
    config["ops"] = {
        "dashboard": True,
        "users": {OPERATOR: {"role": "operator", "password_hash": hash_password(PASSWORD)}},
    }
    (root / "platypus.yaml").write_text(yaml.safe_dump(config))
    await ensure_topics(settings)
    web_port, ops_port = free_port(), free_port()
    worker_ports = [free_port(), free_port()]
    processes = [
        *(start_worker(root, "--web-port", str(port)) for port in worker_ports),
        start_indexer(root, ops_port),
        start_web(root, web_port),
    ]
    store = FailureStore(store_url)
    web, ops = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{ops_port}"
    try:
        urls = [
            *(f"http://127.0.0.1:{port}/readyz" for port in worker_ports),
            f"{ops}/readyz",
            f"{web}/readyz",
        ]
        await _until(
            lambda: all(_answers(url) for url in urls), "every process ready", processes, 45
        )
        store.create()
        yield web, ops, store
    finally:
        for process in processes:
            stop_worker(process)
        store.close()


async def test_an_operator_replays_a_dead_letter_of_a_kafka_deployment_in_the_browser(
    tmp_path: Path,
    fake_vendor: FakeVendor,
    kafka_broker: KafkaBroker,
    pg_url: str,
    browser: Any,  # noqa: F811 -- the fixture imported above
) -> None:
    fake_vendor.script("/orders", [REJECT])  # the first call is refused, later ones pass
    async with kafka_deployment(tmp_path, fake_vendor, kafka_broker, pg_url) as (web, ops, store):
        event = closed_won(amount=2500)
        async with httpx.AsyncClient() as client:
            posted = await client.post(f"{web}/events", json=event)
        assert posted.status_code == 202, posted.text
        [entry] = await _until(
            lambda: store.search(FailureFilter(status=(FailureStatus.OPEN,))),
            "the dead letter in the store",
            [],
            30,
        )
        assert entry.event_id == event["id"]

        context = await browser.new_context(base_url=ops)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        await page.goto("/ops/failures")
        assert "/ops/login" in page.url
        await page.fill("input[name=username]", OPERATOR)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#whoami")

        await page.goto("/ops/failures")
        row = page.locator(f"#failures tr[data-id='{entry.id}']")
        assert event["subject"] in (await row.text_content() or "")
        await row.locator("a").first.click()
        await page.wait_for_selector("#status")
        assert (await page.text_content("#status") or "").strip() == "open"
        assert "is closed" in (await page.text_content("#error-message") or "")
        assert "first failed at step" in (await page.text_content("#timeline") or "")

        # The vendor is fixed (its script is used up: it answers 201 now). Replay.
        await page.click("#replay")
        await page.wait_for_selector(".notice")
        deadline = time.monotonic() + 30
        while (await page.text_content("#status") or "").strip() != "resolved":
            assert time.monotonic() < deadline, "the entry did not become resolved"
            await page.wait_for_timeout(250)
            await page.reload()
        # The timeline has the replay, and the outcomes from the outcomes topic: the
        # dead letter, then the replay's delivery (which is what resolved the entry).
        moments = await page.locator("#timeline li").all_text_contents()
        assert any("replay" in m and "by olga" in m for m in moments), moments
        assert any(m.split(" ", 2)[2].startswith("dead-lettered in orders") for m in moments)
        [delivered] = [m for m in moments if m.split(" ", 2)[2].startswith("delivered in orders")]
        assert delivered.endswith(f", a replay of entry #{entry.id}")
        await context.close()

        resolved = store.get(entry.id)
        assert resolved is not None
        assert resolved.status is FailureStatus.RESOLVED
        assert resolved.replay_offset is not None  # produced to the events topic
        assert fake_vendor.requests_to("/orders")[-1].json["external_id"] == event["subject"]
