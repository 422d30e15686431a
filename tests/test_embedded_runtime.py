"""The embedded runtime against a real HTTP vendor on loopback.

Each test runs the whole path: ingress validation, durable append to the SQLite
log, the consumer, the flow, the http adapter over TCP, outcomes, dead letters
and offset commits.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from platypus.deadletter import DEAD_LETTER_TOPIC, describe_headers
from platypus.retry import RetryPolicy
from platypus.runtime.embedded import EVENTS_TOPIC, GROUP
from platypus.runtime.log import AppendItem
from tests.fakes.vendor import FakeVendor, Reply
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


async def test_event_is_delivered_with_its_mapped_payload(
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
        assert app.log.committed(GROUP, EVENTS_TOPIC) == app.log.end_offsets(EVENTS_TOPIC)


async def test_event_failing_the_flow_condition_is_filtered_and_not_sent(
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


async def test_503_twice_then_success_is_retried_and_delivered(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [(503,), (503,)])
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        event = closed_won()
        await ingest(app, event)
        await app.drain()

        assert len(fake_vendor.requests_to("/orders")) == 3
        [outcome] = outcome_of(app, event["id"])
        assert (outcome["status"], outcome["attempts"]) == ("delivered", 3)
        assert app.log.read(DEAD_LETTER_TOPIC) == []
        # Every attempt carries the same idempotency key, so the vendor can drop repeats.
        assert len({r.headers["idempotency-key"] for r in fake_vendor.requests}) == 1


async def test_429_retry_after_is_honoured_before_the_next_attempt(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [Reply(429, headers={"Retry-After": "1"})])
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        await ingest(app, closed_won())
        await app.drain()

    first, second = fake_vendor.requests_to("/orders")
    # The policy's own backoff is at most 0.05 s here: only Retry-After explains this.
    assert second.time - first.time >= 0.95


async def test_400_is_dead_lettered_at_once_with_the_original_event_and_why(
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


async def test_retryable_errors_past_max_attempts_are_dead_lettered_with_the_count(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [(503,)] * 10)
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        await ingest(app, closed_won())
        await app.drain()

        assert len(fake_vendor.requests_to("/orders")) == 4  # max_attempts of the test policy
        [letter] = app.log.read(DEAD_LETTER_TOPIC)
        headers = describe_headers(letter.headers)
        assert headers["platypus.attempts"] == "4"
        assert headers["platypus.error.retryable"] == "true"
        assert headers["platypus.first.failure"] < headers["platypus.last.failure"]


async def test_step_retry_override_applies_to_that_step_only(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    flow = ORDER_FLOW.replace(
        "    to: vendor.post\n", "    to: vendor.post\n    retry: {max_attempts: 2}\n"
    )
    fake_vendor.script("/orders", [(503,)] * 10)
    async with running(tmp_path, fake_vendor.url, {"orders": flow}) as app:
        await ingest(app, closed_won())
        await app.drain()

    assert len(fake_vendor.requests_to("/orders")) == 2


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


async def test_later_steps_read_the_results_of_earlier_steps(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [(201, {"id": "ORD-42"})])
    async with running(tmp_path, fake_vendor.url, {"orders": TWO_STEPS}) as app:
        await ingest(app, closed_won())
        await app.drain()

    assert fake_vendor.requests_to("/notify")[0].json == {
        "order": "ORD-42",
        "account": "Acme Pty Ltd",
    }


async def test_events_of_one_key_reach_the_vendor_in_order_while_keys_interleave(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.delay("/orders", 0.01)
    keys = [f"006{k:015d}" for k in range(6)]
    events = [closed_won(key, amount=1000 + seq) for seq in range(8) for key in keys]
    # Some first attempts fail, so retries race with later events of the same key.
    fake_vendor.script("/orders", [(503,), (201,), (503,), (201,), (201,), (503,)])
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, concurrency=8) as app:
        await ingest(app, *events)
        await app.drain()

    by_key: dict[str, list[int]] = {}
    for request in fake_vendor.requests_to("/orders"):
        body = request.json
        by_key.setdefault(body["external_id"], []).append(body["amount"] - 1000)
    for key in keys:
        deduplicated = list(dict.fromkeys(by_key[key]))
        assert deduplicated == list(range(8)), key
        assert by_key[key] == sorted(by_key[key]), key


async def test_different_keys_are_delivered_concurrently(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    fake_vendor.delay("/orders", 0.5)
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, concurrency=4) as app:
        await ingest(app, *(closed_won() for _ in range(4)))
        await app.drain()

    arrivals = sorted(r.time for r in fake_vendor.requests_to("/orders"))
    # One at a time, each would arrive 0.5 s after the previous one.
    assert arrivals[-1] - arrivals[0] < 0.4


async def test_a_key_waiting_out_a_backoff_does_not_hold_up_other_keys(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    slow_key = "006000000000000999"
    flows = {
        "slow": ORDER_FLOW.replace("name: orders", "name: slow")
        .replace("/orders", "/slow")
        .replace('"data.amount >= `1000`"', f"\"subject == '{slow_key}'\""),
        "fast": ORDER_FLOW.replace("name: orders", "name: fast").replace(
            '"data.amount >= `1000`"', f"\"subject != '{slow_key}'\""
        ),
    }
    fake_vendor.script("/slow", [Reply(503, headers={"Retry-After": "2"})])
    # One partition and one adapter slot: the strictest case for head-of-line blocking.
    async with running(tmp_path, fake_vendor.url, flows, partitions=1, concurrency=1) as app:
        await ingest(app, closed_won(slow_key))
        await fake_vendor.wait_for(1, path="/slow")
        await ingest(app, *(closed_won() for _ in range(10)))
        await fake_vendor.wait_for(10, path="/orders")

        # The slow event is still waiting: the committed offset must not pass it.
        assert len(fake_vendor.requests_to("/slow")) == 1
        assert app.log.committed(GROUP, EVENTS_TOPIC)[0] == 0
        await app.drain()

    slow = fake_vendor.requests_to("/slow")
    fast = fake_vendor.requests_to("/orders")
    assert len(slow) == 2
    assert max(r.time for r in fast) < slow[1].time


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
        assert app.log.committed(GROUP, EVENTS_TOPIC) == {0: 0, 1: 0, 2: 0, 3: 0}
    # The app stopped with the event unfinished: stopping cut the backoff short.
    fake_vendor.reset()
    async with running(tmp_path, fake_vendor.url, {"orders": TWO_STEPS}) as app:
        await app.drain()
        [outcome] = outcome_of(app, event["id"])
        assert outcome["status"] == "delivered"

    assert fake_vendor.requests_to("/orders") == []  # delivered before the restart
    assert len(fake_vendor.requests_to("/notify")) == 1


async def test_a_record_that_is_not_json_is_dead_lettered_not_lost(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        # Another producer wrote straight to the log, bypassing the ingress.
        await app.log.append(EVENTS_TOPIC, [AppendItem(key="k", value=b"{not json")])
        await app.drain()

        [letter] = app.log.read(DEAD_LETTER_TOPIC)
        assert letter.value == b"{not json"
        headers = describe_headers(letter.headers)
        assert "not a JSON event" in headers["__connect.errors.exception.message"]


async def test_an_unvalidated_invalid_record_is_dead_lettered_with_structured_errors(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    event = closed_won(amount="lots", owner_email=12345678)
    raw = json.dumps(event).encode()
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        await app.log.append(EVENTS_TOPIC, [AppendItem(key=event["subject"], value=raw)])
        await app.drain()

        assert fake_vendor.requests == []
        [letter] = app.log.read(DEAD_LETTER_TOPIC)
        assert letter.value == raw
        errors = {e["path"]: e for e in describe_headers(letter.headers)["platypus.errors"]}
        assert errors["data.amount"]["got"] == "'lots'"
        assert errors["data.amount"]["expected"]
        # owner_email is personal data: what was sent is masked, even in an error.
        assert errors["data.owner_email"]["got"] == "***"
        assert "12345678" not in json.dumps(describe_headers(letter.headers))


async def test_personal_data_echoed_by_the_vendor_is_masked_in_the_dead_letter(
    tmp_path: Path, fake_vendor: FakeVendor
) -> None:
    email = "secret.person@example.com"
    fake_vendor.script("/orders", [(400, {"error": "BAD", "message": f"owner {email} unknown"})])
    async with running(tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}) as app:
        event = closed_won(owner_email=email)
        [raw] = await ingest(app, event)
        await app.drain()

        [letter] = app.log.read(DEAD_LETTER_TOPIC)
        assert letter.value == raw  # the original, for replay
        message = describe_headers(letter.headers)["__connect.errors.exception.message"]
        assert email not in message
        assert "owner *** unknown" in message


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
