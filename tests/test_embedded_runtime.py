"""What only the embedded runtime does: outcome records, the delivery ledger, restarts.

The behaviour both runtimes share (delivery, filtering, retries, dead letters,
ordering, bad input) is in test_conformance.py, run against both.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from platypus.config import ConnectionSpec
from platypus.deadletter import describe_headers
from platypus.records import CONSUMER_GROUP, DEAD_LETTER_TOPIC, EVENTS_TOPIC
from platypus.retry import RetryPolicy
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, ingest, outcome_of, running, worker_hired

TWO_STEPS = """
name: orders
consumes: sales.opportunity.closed_won.v1
steps:
  - name: create_order
    to: vendor.post
    params: {path: /orders}
    payload: {external_id: data.opportunity_id}
  - name: notify
    to: vendor.post
    params: {path: /notify}
    payload: {order: steps.create_order.id, account: data.account_name}
"""


async def test_a_delivered_event_has_an_outcome_with_the_flow_version_and_is_committed(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        event = closed_won(amount=2500)
        await ingest(app, event)
        await app.drain()

        [request] = fake_vendor.requests_to("/orders")
        assert request.method == "POST"
        assert request.json == {
            "external_id": event["data"]["opportunity_id"],
            "amount": 2500,
            "currency": "EUR",
            "skus": ["PLAT-ENT"],
        }
        assert request.headers["idempotency-key"] == f"{event['id']}:orders:create_order"
        [outcome] = outcome_of(app, event["id"])
        assert outcome["status"] == "delivered"
        assert outcome["flow_version"] == app.flows[0].version != ""
        assert app.log.committed(CONSUMER_GROUP, EVENTS_TOPIC) == app.log.end_offsets(EVENTS_TOPIC)


async def test_a_filtered_event_has_an_outcome_naming_the_condition(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        event = closed_won(amount=999)
        await ingest(app, event)
        await app.drain()

        assert fake_vendor.requests == []
        [outcome] = outcome_of(app, event["id"])
        assert outcome["status"] == "filtered"
        assert "data.amount >= `1000`" in outcome["detail"]


async def test_event_no_flow_consumes_is_recorded_as_filtered(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        event = worker_hired("W-77")
        await ingest(app, event)
        await app.drain()

        [outcome] = outcome_of(app, event["id"])
        assert (outcome["flow"], outcome["status"]) == ("", "filtered")
        assert "no flow consumes people.worker.hired.v1" in outcome["detail"]


async def test_a_dead_lettered_event_has_its_outcome_and_record_in_the_log(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script(
        "/orders", [(400, {"error": "INVALID_FIELD", "message": "currency not enabled"})]
    )
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        event = closed_won()
        [raw] = await ingest(app, event)
        await app.drain()

        assert len(fake_vendor.requests_to("/orders")) == 1  # permanent: never retried
        [source] = app.log.read(EVENTS_TOPIC)
        [letter] = app.log.read(DEAD_LETTER_TOPIC)
        assert letter.value == raw
        assert letter.key == event["subject"]
        headers = describe_headers(letter.headers)
        assert headers["__connect.errors.topic"] == EVENTS_TOPIC
        assert headers["__connect.errors.partition"] == str(source.partition)
        assert headers["__connect.errors.offset"] == str(source.offset)
        assert headers["__connect.errors.exception.class.name"] == (
            "platypus.exceptions.PermanentError"
        )
        assert "400" in headers["__connect.errors.exception.message"]
        assert "currency not enabled" in headers["__connect.errors.exception.message"]
        assert headers["platypus.flow"] == "orders"
        assert headers["platypus.flow.version"] == app.flows[0].version
        assert headers["platypus.step"] == "create_order"
        assert headers["platypus.attempts"] == "1"
        assert headers["platypus.error.status.code"] == "400"
        assert headers["platypus.error.vendor.code"] == "INVALID_FIELD"
        assert headers["platypus.first.failure"].endswith("Z")
        [outcome] = outcome_of(app, event["id"])
        assert outcome["status"] == "dead_lettered"


async def test_on_error_discard_records_the_event_as_discarded_without_a_dead_letter(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    flow = ORDER_FLOW + "on_error: discard\n"
    fake_vendor.script("/orders", [(422, {"error": "NOPE"})])
    async with running(tmp_path, fake_vendor.url, {"orders": flow}) as app:
        event = closed_won()
        await ingest(app, event)
        await app.drain()

        assert app.log.read(DEAD_LETTER_TOPIC) == []
        [outcome] = outcome_of(app, event["id"])
        assert outcome["status"] == "discarded"
        assert "422" in outcome["detail"]


async def test_different_keys_are_delivered_concurrently(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    # No request is answered until all four events have one at the vendor: one
    # key at a time, only the first event's would arrive (and its retries).
    events = [closed_won() for _ in range(4)]
    # A held request must not time out and let the next key go meanwhile.
    patient = ConnectionSpec(adapter="http", settings={"base_url": fake_vendor.url, "timeout": 120})
    fake_vendor.hold("/orders")
    async with running(
        tmp_path,
        fake_vendor.url,
        {"orders": ORDER_FLOW},
        concurrency=4,
        connections={"vendor": patient},
    ) as app:
        try:
            await ingest(app, *events)
            await fake_vendor.wait_until(
                lambda log: (
                    {r.json["external_id"] for r in log if r.path == "/orders"}
                    == {e["data"]["opportunity_id"] for e in events}
                ),
                within=30,
            )
        finally:
            fake_vendor.release("/orders")
        await app.drain()
        assert [outcome["status"] for outcome in app.log.outcomes()] == ["delivered"] * 4


async def test_every_delivered_step_is_on_record_with_its_attempts(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/notify", [(503,)])
    async with running(tmp_path, fake_vendor.url, {"orders": TWO_STEPS}) as app:
        event = closed_won()
        await ingest(app, event)
        await app.drain()

        rows = {(r["event_id"], r["flow"], r["step"]): r for r in app.log.delivery_rows()}
    assert rows[(event["id"], "orders", "create_order")]["attempts"] == 1
    assert rows[(event["id"], "orders", "notify")]["attempts"] == 2
    assert json.loads(rows[(event["id"], "orders", "create_order")]["result"]) == {"id": "fake-1"}


async def test_restart_resumes_from_the_commit_and_skips_steps_already_delivered(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/notify", [(503,)] * 1000)
    event = closed_won()
    patient = RetryPolicy(initial_delay=0.2, max_delay=0.5, max_attempts=1000)
    async with running(tmp_path, fake_vendor.url, {"orders": TWO_STEPS}, retry=patient) as app:
        # The event is waiting out a backoff of step two when the app stops.
        await ingest(app, event)
        await fake_vendor.wait_for(2, path="/notify")
        assert app.log.committed(CONSUMER_GROUP, EVENTS_TOPIC) == {0: 0, 1: 0, 2: 0, 3: 0}
    # The app stopped with the event unfinished: stopping cut the backoff short.
    fake_vendor.reset()
    async with running(tmp_path, fake_vendor.url, {"orders": TWO_STEPS}) as app:
        await app.drain()
        [outcome] = outcome_of(app, event["id"])
        assert outcome["status"] == "delivered"

    assert fake_vendor.requests_to("/orders") == []  # delivered before the restart
    assert len(fake_vendor.requests_to("/notify")) == 1


async def test_stopping_with_events_in_flight_loses_none(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.delay("/orders", 0.2)
    events = [closed_won() for _ in range(20)]
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        await ingest(app, *events)
        await asyncio.sleep(0.3)
    fake_vendor.delay("/orders", 0)
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        await app.drain()
        delivered = {row["event_id"] for row in app.log.outcomes() if row["status"] == "delivered"}

    assert delivered == {e["id"] for e in events}
    received = {r.json["external_id"] for r in fake_vendor.requests_to("/orders")}
    assert received == {e["subject"] for e in events}
