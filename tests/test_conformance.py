"""The behaviour every runtime must have, run against both: embedded and Kafka.

Each test runs the whole path on real parts: the ingress's validation, the event
log (SQLite, or a Kafka-protocol broker over TCP with a ``platypus worker``
subprocess), the flow, the http adapter against a fake vendor on loopback, dead
letters and commits. The two runtimes must agree on every assertion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from platypus.flow.loader import load_flow
from platypus.retry import RetryPolicy
from tests.fakes.vendor import FakeVendor, Reply
from tests.runtimes import RUNTIMES, Runtime, partition_of, start_runtime
from tests.support import ORDER_FLOW, closed_won

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

MakeRuntime = Callable[..., AbstractAsyncContextManager[Runtime]]


@pytest.fixture(params=RUNTIMES)
def make_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, fake_vendor: FakeVendor
) -> MakeRuntime:
    kind: str = request.param
    broker = request.getfixturevalue("kafka_broker") if kind == "kafka" else None

    def make(flows: Mapping[str, str], **options: Any) -> AbstractAsyncContextManager[Runtime]:
        return start_runtime(kind, tmp_path, fake_vendor.url, flows, kafka_broker=broker, **options)

    return make


def flow_version(tmp_path: Path, name: str) -> str:
    return load_flow(tmp_path / "flows" / f"{name}.yaml").version


async def test_an_event_is_delivered_with_its_mapped_payload(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        event = closed_won(amount=2500)
        await runtime.ingest(event)
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()

    [request] = fake_vendor.requests_to("/orders")
    assert request.json == {
        "external_id": event["data"]["opportunity_id"],
        "amount": 2500,
        "currency": "EUR",
        "skus": ["PLAT-ENT"],
    }
    assert request.headers["idempotency-key"] == f"{event['id']}:orders:create_order"


async def test_an_event_failing_the_flow_condition_is_filtered_and_not_sent(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        await runtime.ingest(closed_won(amount=999), closed_won(amount=1000))
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()
        assert runtime.dead_letters() == []

    [request] = fake_vendor.requests
    assert request.json["amount"] == 1000


async def test_later_steps_read_the_results_of_earlier_steps(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [(201, {"id": "ORD-42"})])
    async with make_runtime({"orders": TWO_STEPS}) as runtime:
        await runtime.ingest(closed_won())
        await fake_vendor.wait_for(1, path="/notify", within=30)
        await runtime.drain()

    assert fake_vendor.requests_to("/notify")[0].json == {
        "order": "ORD-42",
        "account": "Acme Pty Ltd",
    }


async def test_503_twice_then_success_is_retried_and_delivered(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [(503,), (503,)])
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        await runtime.ingest(closed_won())
        await fake_vendor.wait_for(3, path="/orders", within=30)
        await runtime.drain()
        assert runtime.dead_letters() == []

    requests = fake_vendor.requests_to("/orders")
    assert len(requests) == 3
    assert len({r.headers["idempotency-key"] for r in requests}) == 1


async def test_429_retry_after_is_honoured_before_the_next_attempt(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [Reply(429, headers={"Retry-After": "1"})])
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        await runtime.ingest(closed_won())
        await fake_vendor.wait_for(2, path="/orders", within=30)
        await runtime.drain()

    first, second = fake_vendor.requests_to("/orders")
    # The policy's own backoff is at most 0.05 s here: only Retry-After explains this.
    assert second.time - first.time >= 0.95


async def test_a_400_is_dead_lettered_at_once_with_the_original_event_and_why(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor, tmp_path: Path
) -> None:
    fake_vendor.script(
        "/orders", [(400, {"error": "INVALID_FIELD", "message": "currency not enabled"})]
    )
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        event = closed_won()
        [raw] = await runtime.ingest(event)
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert len(fake_vendor.requests_to("/orders")) == 1  # permanent: never retried
    assert letter.value == raw
    assert letter.key == event["subject"]
    headers = letter.headers
    assert headers["__connect.errors.topic"].endswith(".events")
    assert headers["__connect.errors.partition"] == str(partition_of(runtime, event["subject"]))
    assert headers["__connect.errors.offset"].isdigit()
    assert headers["__connect.errors.exception.class.name"] == "platypus.exceptions.PermanentError"
    assert "currency not enabled" in headers["__connect.errors.exception.message"]
    assert headers["platypus.flow"] == "orders"
    assert headers["platypus.flow.version"] == flow_version(tmp_path, "orders")
    assert headers["platypus.step"] == "create_order"
    assert headers["platypus.attempts"] == "1"
    assert headers["platypus.error.status.code"] == "400"
    assert headers["platypus.error.vendor.code"] == "INVALID_FIELD"


async def test_retryable_errors_past_max_attempts_are_dead_lettered_with_the_count(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script("/orders", [(503,)] * 10)
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        await runtime.ingest(closed_won())
        await fake_vendor.wait_for(4, path="/orders", within=30)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert len(fake_vendor.requests_to("/orders")) == 4  # max_attempts of the test policy
    assert letter.headers["platypus.attempts"] == "4"
    assert letter.headers["platypus.error.retryable"] == "true"
    assert letter.headers["platypus.first.failure"] < letter.headers["platypus.last.failure"]


async def test_events_of_one_key_reach_the_vendor_in_order_while_keys_interleave(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    fake_vendor.delay("/orders", 0.01)
    keys = [f"006{k:015d}" for k in range(6)]
    events = [closed_won(key, amount=1000 + seq) for seq in range(8) for key in keys]
    # Some first attempts fail, so retries race with later events of the same key.
    fake_vendor.script("/orders", [(503,), (201,), (503,), (201,), (201,), (503,)])
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        await runtime.ingest(*events)
        await fake_vendor.wait_for(len(events) + 3, path="/orders", within=60)
        await runtime.drain()

    by_key: dict[str, list[int]] = {}
    for request in fake_vendor.requests_to("/orders"):
        by_key.setdefault(request.json["external_id"], []).append(request.json["amount"] - 1000)
    for key in keys:
        assert list(dict.fromkeys(by_key[key])) == list(range(8)), key
        assert by_key[key] == sorted(by_key[key]), key


async def test_a_key_waiting_out_a_backoff_holds_up_neither_other_keys_nor_lets_commits_pass(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
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
    fake_vendor.script("/slow", [Reply(503, headers={"Retry-After": "3"})])
    # One partition and one adapter slot: the strictest case for head-of-line blocking.
    async with make_runtime(flows, partitions=1, concurrency=1) as runtime:
        await runtime.ingest(closed_won(slow_key))
        await fake_vendor.wait_for(1, path="/slow", within=30)
        await runtime.ingest(*(closed_won() for _ in range(10)))
        await fake_vendor.wait_for(10, path="/orders", within=30)

        # Still waiting for the slow event: the commit must not pass it.
        assert len(fake_vendor.requests_to("/slow")) == 1
        assert runtime.committed()[0] == 0
        await runtime.drain()
        assert runtime.committed()[0] == 11

    slow = fake_vendor.requests_to("/slow")
    fast = fake_vendor.requests_to("/orders")
    assert len(slow) == 2
    assert max(r.time for r in fast) < slow[1].time


async def test_a_record_that_is_not_json_is_dead_lettered_not_lost(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        # Another producer wrote straight to the topic, bypassing the ingress.
        await runtime.produce_raw("k", b"{not json")
        await runtime.ingest(closed_won())
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert letter.value == b"{not json"
    assert "not a JSON event" in letter.headers["__connect.errors.exception.message"]


async def test_an_unvalidated_invalid_record_is_dead_lettered_with_structured_errors(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    event = closed_won(amount="lots", owner_email=12345678)
    raw = json.dumps(event).encode()
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        await runtime.produce_raw(event["subject"], raw)
        await runtime.ingest(closed_won())
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert len(fake_vendor.requests) == 1  # only the valid event
    assert letter.value == raw
    errors = {e["path"]: e for e in letter.headers["platypus.errors"]}
    assert errors["data.amount"]["got"] == "'lots'"
    # owner_email is personal data: what was sent is masked, even in an error.
    assert errors["data.owner_email"]["got"] == "***"
    assert "12345678" not in json.dumps(letter.headers)


async def test_personal_data_echoed_by_the_vendor_is_masked_in_the_dead_letter(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    email = "secret.person@example.com"
    fake_vendor.script("/orders", [(400, {"error": "BAD", "message": f"owner {email} unknown"})])
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        [raw] = await runtime.ingest(closed_won(owner_email=email))
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert letter.value == raw  # the original, for replay
    message = letter.headers["__connect.errors.exception.message"]
    assert email not in message
    assert "owner *** unknown" in message


async def test_a_step_retry_override_applies_to_that_step(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    flow = ORDER_FLOW.replace(
        "    to: vendor.post\n", "    to: vendor.post\n    retry: {max_attempts: 2}\n"
    )
    fake_vendor.script("/orders", [(503,)] * 10)
    async with make_runtime({"orders": flow}, retry=RetryPolicy(initial_delay=0.01)) as runtime:
        await runtime.ingest(closed_won())
        await fake_vendor.wait_for(2, path="/orders", within=30)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert len(fake_vendor.requests_to("/orders")) == 2
    assert letter.headers["platypus.attempts"] == "2"


async def test_the_same_event_replayed_leaves_one_record_at_a_vendor_without_idempotency(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    # The http adapter's post is not idempotent at the vendor: the delivery ledger
    # must stop the replay from writing twice.
    event = closed_won()
    raw = json.dumps(event).encode()
    async with make_runtime({"orders": ORDER_FLOW}) as runtime:
        await runtime.produce_raw(event["subject"], raw)
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()
        await runtime.produce_raw(event["subject"], raw)  # a replay, later
        await runtime.drain()

    assert len(fake_vendor.requests_to("/orders")) == 1
