"""Kill ``platypus run`` with SIGKILL mid-stream, restart it, and lose nothing.

The process is the real command, started as a subprocess; events arrive over
HTTP; the vendor is a real HTTP server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from platypus.records import DEAD_LETTER_TOPIC
from tests.fakes.vendor import FakeVendor, Reply
from tests.support import (
    SEQUENCE_FLOW,
    SETTLED_AHEAD_FLOW,
    closed_won,
    free_port,
    records_on_disk,
    start_platypus,
    wait_healthy,
    write_embedded_project,
)

pytestmark = pytest.mark.slow

KEYS = 40
PER_KEY = 15


def _bodies(vendor: FakeVendor) -> list[dict[str, Any]]:
    # A request cut off by the kill arrives without its body: it was not delivered.
    return [r.json for r in vendor.requests_to("/orders") if r.body]


async def _post(client: httpx.AsyncClient, url: str, batch: list[dict[str, object]]) -> bool:
    try:
        response = await client.post(f"{url}/events", json=batch)
    except httpx.TransportError:
        return False
    assert response.status_code == 202, response.text
    return True


async def test_sigkill_mid_stream_then_restart_delivers_every_accepted_event_in_key_order(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    write_embedded_project(tmp_path, fake_vendor.url, {"orders": SEQUENCE_FLOW})
    fake_vendor.delay("/orders", 0.02)
    # Some deliveries fail at first, so retries are under way when the process dies.
    fake_vendor.script("/orders", [(503,), (201,), (201,), (503,), (201,)] * 10)
    keys = [f"006{k:015d}" for k in range(KEYS)]
    events = [closed_won(key, amount=seq + 1) for seq in range(PER_KEY) for key in keys]
    batches = [events[i : i + 20] for i in range(0, len(events), 20)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    accepted: set[str] = set()

    process = start_platypus(tmp_path, port)
    try:
        await wait_healthy(url, process)
        async with httpx.AsyncClient(timeout=10) as client:
            half = len(batches) // 2
            for batch in batches[:half]:
                assert await _post(client, url, batch)
                accepted.update(str(e["id"]) for e in batch)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            delivered_at_kill = {body["event"] for body in _bodies(fake_vendor)}
            # The kill must land mid-stream for this test to mean anything.
            assert 0 < len(delivered_at_kill & accepted) < len(accepted)

            process = start_platypus(tmp_path, port)
            await wait_healthy(url, process)
            for batch in batches[half:]:
                assert await _post(client, url, batch)
                accepted.update(str(e["id"]) for e in batch)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivered = {body["event"] for body in _bodies(fake_vendor)}
            if accepted <= delivered:
                break
            await asyncio.sleep(0.1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    assert process.returncode == 0  # a SIGTERM stops it cleanly
    requests = _bodies(fake_vendor)
    assert accepted <= {r["event"] for r in requests}, "an accepted event never reached the vendor"
    for key in keys:
        arrivals = [r["seq"] for r in requests if r["key"] == key]
        # At least once: a repeat is allowed, going back to an earlier event is not.
        assert arrivals == sorted(arrivals), f"events of {key} arrived out of order: {arrivals}"
        assert set(arrivals) == set(range(1, PER_KEY + 1))


def _dead_letters(root: Path) -> list[bytes]:
    return [value for value, _ in records_on_disk(root / "data" / "events.db", DEAD_LETTER_TOPIC)]


async def test_a_dead_letter_settled_ahead_of_an_event_in_flight_happens_once_across_a_kill(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    # One partition: the refused event (offset 1) settles while the slow one
    # (offset 0) holds the commit back. A kill -9 there, then a restart, must not
    # run the refused event again: one request, one dead letter.
    write_embedded_project(tmp_path, fake_vendor.url, {"orders": SETTLED_AHEAD_FLOW}, partitions=1)
    fake_vendor.script("/slow", [Reply(201, delay=30)])
    fake_vendor.script("/refused", [(400,)])
    slow, refused = closed_won(amount=1), closed_won(amount=2)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    process = start_platypus(tmp_path, port)
    try:
        await wait_healthy(url, process)
        async with httpx.AsyncClient(timeout=10) as client:
            assert await _post(client, url, [slow, refused])
        deadline = time.monotonic() + 30
        while not _dead_letters(tmp_path):
            assert time.monotonic() < deadline, "the refused event was never dead-lettered"
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        process = start_platypus(tmp_path, port)
        await wait_healthy(url, process)
        deadline = time.monotonic() + 30
        while len(fake_vendor.requests_to("/slow")) < 2:
            assert time.monotonic() < deadline, "the slow event was not sent again"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # time enough for a second dead letter to be written
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    letters = _dead_letters(tmp_path)
    refusals = fake_vendor.requests_to("/refused")
    print(f"dead letters: {len(letters)}, refused requests: {len(refusals)}")
    assert [json.loads(v)["id"] for v in letters] == [refused["id"]]
    assert len(refusals) == 1
