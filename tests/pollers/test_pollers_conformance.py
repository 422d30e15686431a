"""Pollers behave the same on both runtimes: a conformance case of their own.

A poller reads the vendor, turns each record into a typed event, and the flows
deliver it like any other event. This runs the whole path on each runtime (the
embedded app; a ``platypus worker`` subprocess on a real broker, holding the
poller's lease) against the same fake Salesforce and the same fake vendor.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.vendor import FakeVendor
from tests.pollers.conftest import SoqlSalesforce, salesforce_settings
from tests.pollers.test_pollers import T0, won
from tests.runtimes import RUNTIMES, start_runtime
from tests.support import ORDER_FLOW


async def _requests_to(
    vendor: FakeVendor, path: str, count: int, within: float = 60
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while len(vendor.requests_to(path)) < count:
        assert time.monotonic() < deadline, f"{len(vendor.requests_to(path))} of {count} calls"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # none more come: a repeat would land here
    return [request.json for request in vendor.requests_to(path)]


@pytest.mark.parametrize("kind", RUNTIMES)
async def test_records_polled_from_the_vendor_are_delivered_by_the_flow_once_each(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fake_vendor: FakeVendor,
    salesforce: SoqlSalesforce,
) -> None:
    broker = request.getfixturevalue("kafka_broker") if kind == "kafka" else None
    ids = [won(salesforce, n, T0 - timedelta(minutes=10 - n)) for n in range(4)]
    won(salesforce, 9, T0 - timedelta(minutes=1), stage="Negotiation")  # not an event
    pollers = {
        "won": {
            "kind": "salesforce",
            "connection": "crm",
            "page_size": 2,  # two pages and a checkpoint between them
            "interval": 0.3,
            "overlap": 0,
            "start_from": (T0 - timedelta(days=1)).isoformat(),
        }
    }
    connections = {"crm": {"adapter": "salesforce", "settings": salesforce_settings(salesforce)}}
    flow = ORDER_FLOW.replace('"data.amount >= `1000`"', '"data.amount > `0`"')

    async with start_runtime(
        kind,
        tmp_path,
        fake_vendor.url,
        {"orders": flow},
        kafka_broker=broker,
        connections=connections,
        pollers=pollers,
    ):
        orders = await _requests_to(fake_vendor, "/orders", len(ids))

    assert sorted(order["external_id"] for order in orders) == ids
    assert {order["skus"] == ["SKU-1"] and order["amount"] == 100.0 for order in orders} == {True}
