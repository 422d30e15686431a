"""The behaviour every runtime must have, run against both: embedded and Kafka.

Each test runs the whole path on real parts: the ingress's validation, the event
log (SQLite, or a Kafka-protocol broker over TCP with a ``platypus worker``
subprocess), the flow, the http adapter against a fake vendor on loopback, dead
letters and commits. The two runtimes must agree on every assertion.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from platypus.flow.loader import load_flow
from platypus.retry import RetryPolicy
from tests.fakes.netsuite import Credentials, FakeNetSuite, wsdl_path
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
    fake_vendor.script("/slow", [Reply(503, headers={"Retry-After": "5"})])
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


# -- ordering across related records ---------------------------------------------------

OPPORTUNITY = "sales.opportunity.closed_won.v1"
BY_ACCOUNT = {OPPORTUNITY: "data.account_id"}


async def test_an_ordering_key_other_than_the_subject_orders_related_records(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    account = "001ACME00000042"
    first = closed_won(amount=1001, account_id=account)
    second = closed_won(amount=1002, account_id=account)  # another opportunity: another subject
    assert first["subject"] != second["subject"]
    # The first waits out a second's Retry-After: keyed by subject, the second would pass it.
    fake_vendor.script("/orders", [Reply(503, headers={"Retry-After": "1"})])
    async with make_runtime({"orders": ORDER_FLOW}, ordering=BY_ACCOUNT) as runtime:
        await runtime.ingest(first, second)
        await fake_vendor.wait_for(3, path="/orders", within=30)
        await runtime.drain()
        committed = runtime.committed()
        assert runtime.dead_letters() == []

    amounts = [r.json["amount"] for r in fake_vendor.requests_to("/orders")]
    assert amounts == [1001, 1001, 1002]
    # Both records are in the account's partition, whatever their subjects hash to.
    assert committed.get(partition_of(runtime, account)) == 2
    assert sum(committed.values()) == 2


async def test_a_dead_letter_carries_the_ordering_key_of_its_event(
    make_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    account = "001ACME00000043"
    fake_vendor.script("/orders", [(400, {"error": "INVALID_FIELD", "message": "closed"})])
    async with make_runtime({"orders": ORDER_FLOW}, ordering=BY_ACCOUNT) as runtime:
        await runtime.ingest(closed_won(account_id=account))
        await fake_vendor.wait_for(1, path="/orders", within=30)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert letter.key == account
    assert letter.headers["__connect.errors.partition"] == str(partition_of(runtime, account))


# -- waiting for a record that does not exist yet ---------------------------------------

NETSUITE = Credentials(
    account="1234567_SB1",
    consumer_key="ck-conformance-1",
    consumer_secret="netsuite-consumer-secret-conformance",
    token_id="tok-conformance-1",
    token_secret="netsuite-token-secret-conformance",
)

INVOICES = """
name: invoices
consumes: finance.invoice.posted.v1
steps:
  - name: upsert_invoice
    to: erp.upsert_invoice
    retry: {dependency_wait: DEPENDENCY_WAIT}
    payload:
      externalId: data.invoice_number
      entity: {externalId: data.crm_account_id}
      tranDate: data.invoice_date
      items: "data.lines[*].{item: {externalId: 'SUBSCRIPTION'}, amount: amount}"
"""

CUSTOMERS = """
name: customers
consumes: sales.opportunity.closed_won.v1
steps:
  - name: upsert_customer
    to: erp.upsert_customer
    payload:
      externalId: data.account_id
      companyName: data.account_name
"""

_invoices = itertools.count(1)


def invoice_posted(crm_account_id: str) -> dict[str, Any]:
    """A valid ``finance.invoice.posted.v1`` event; its subject is the Zuora account."""
    number = f"INV-{next(_invoices):06d}"
    return {
        "specversion": "1.0",
        "id": f"evt-{number}",
        "source": "/zuora/test",
        "type": "finance.invoice.posted.v1",
        "subject": "A00000042",
        "data": {
            "invoice_id": f"8a8a{number}",
            "invoice_number": number,
            "account_number": "A00000042",
            "crm_account_id": crm_account_id,
            "invoice_date": "2026-11-03",
            "due_date": "2026-12-03",
            "currency": "EUR",
            "amount": 100,
            "balance": 100,
            "lines": [{"charge_name": "Seats", "amount": 100}],
        },
    }


@pytest.fixture(scope="module")
def _netsuite_server() -> Iterator[FakeNetSuite]:
    if not wsdl_path().exists():
        pytest.skip(f"the NetSuite WSDL is not at {wsdl_path()}; set PLATYPUS_NETSUITE_WSDL")
    with FakeNetSuite(NETSUITE) as fake:
        yield fake


@pytest.fixture
def netsuite(_netsuite_server: FakeNetSuite, monkeypatch: pytest.MonkeyPatch) -> FakeNetSuite:
    """The fake NetSuite, emptied, with the secrets in the environment (a worker inherits it)."""
    monkeypatch.setenv("CONFORMANCE_NS_CONSUMER_SECRET", NETSUITE.consumer_secret)
    monkeypatch.setenv("CONFORMANCE_NS_TOKEN_SECRET", NETSUITE.token_secret)
    _netsuite_server.reset()
    return _netsuite_server


def erp(netsuite: FakeNetSuite) -> dict[str, Any]:
    return {
        "adapter": "netsuite",
        "settings": {
            "account": NETSUITE.account,
            "consumer_key": NETSUITE.consumer_key,
            "consumer_secret": {"env": "CONFORMANCE_NS_CONSUMER_SECRET"},
            "token_id": NETSUITE.token_id,
            "token_secret": {"env": "CONFORMANCE_NS_TOKEN_SECRET"},
            "wsdl": str(wsdl_path()),
            "endpoint": netsuite.endpoint,
            "timeout": "5s",
        },
    }


def attempts_for(netsuite: FakeNetSuite, external_id: str) -> int:
    """How many upserts of the record ``external_id`` the fake received."""
    needle = f'externalId="{external_id}"'.encode()
    return sum(1 for r in netsuite.received if needle in r.body)


async def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


async def test_an_invoice_posted_before_its_customer_is_delivered_once_the_customer_exists(
    make_runtime: MakeRuntime, netsuite: FakeNetSuite
) -> None:
    account = "001ACME00000044"
    invoice = invoice_posted(account)
    number = invoice["data"]["invoice_number"]
    flows = {"invoices": INVOICES.replace("DEPENDENCY_WAIT", "60s"), "customers": CUSTOMERS}
    async with make_runtime(flows, connections={"erp": erp(netsuite)}) as runtime:
        await runtime.ingest(invoice)
        # More attempts than max_attempts (4): waiting is not counted in attempts.
        await wait_until(
            lambda: attempts_for(netsuite, number) >= 6, 30, "the invoice retried 6 times"
        )
        assert netsuite.record("invoice", number) is None
        await runtime.ingest(closed_won(account_id=account))  # creates the customer
        await runtime.drain()
        assert runtime.dead_letters() == []

    stored = netsuite.record("invoice", number)
    assert stored is not None
    customer = netsuite.record("customer", account)
    assert customer is not None
    entity = stored.field("entity")
    assert entity is not None
    assert entity.get("externalId") == account


async def test_a_record_still_missing_after_the_dependency_wait_is_dead_lettered(
    make_runtime: MakeRuntime, netsuite: FakeNetSuite
) -> None:
    invoice = invoice_posted("001NOBODY0000045")
    flows = {"invoices": INVOICES.replace("DEPENDENCY_WAIT", "1s")}
    async with make_runtime(flows, connections={"erp": erp(netsuite)}) as runtime:
        [raw] = await runtime.ingest(invoice)
        await runtime.drain()
        [letter] = runtime.dead_letters()

    assert letter.value == raw
    headers = letter.headers
    assert headers["__connect.errors.exception.class.name"] == (
        "platypus.exceptions.MissingDependencyError"
    )
    assert headers["platypus.error.vendor.code"] == "INVALID_KEY_OR_REF"
    assert headers["platypus.error.retryable"] == "true"
    assert int(headers["platypus.attempts"]) > 4  # past max_attempts, bounded by the wait
    assert "001NOBODY0000045" in headers["__connect.errors.exception.message"]


# -- operations: failed events, replay, discard, outcome history ---------------------


@pytest.fixture(params=RUNTIMES)
def make_ops_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, fake_vendor: FakeVendor
) -> MakeRuntime:
    """A runtime with its failed-event store: embedded (SQLite beside the log) or Kafka
    (``platypus worker`` + ``platypus indexer`` on a fresh PostgreSQL database)."""
    kind: str = request.param
    options: dict[str, Any] = {}
    if kind == "kafka":
        options["kafka_broker"] = request.getfixturevalue("kafka_broker")
        options["failures_store"] = request.getfixturevalue("postgres_database")

    def make(flows: Mapping[str, str], **more: Any) -> AbstractAsyncContextManager[Any]:
        return start_runtime(kind, tmp_path, fake_vendor.url, flows, **options, **more)

    return make


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (skipped, saying why, when the server is unreachable)."""
    from tests.postgres import fresh_database

    with fresh_database("platypus_conf") as url:
        yield url


async def _eventually(check: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.1)


async def test_ops_a_dead_letter_reaches_the_store_and_its_replay_resolves_it(
    make_ops_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    from platypus.ops.actions import Actor
    from platypus.ops.store import FailureStatus

    fake_vendor.script("/orders", [201, (400, {"error": "account closed"})])
    async with make_ops_runtime({"orders": ORDER_FLOW}) as runtime:
        good = closed_won(amount=2000)
        bad = closed_won(good["subject"], amount=3000)  # same key: read after the good one
        await runtime.ingest(good, bad)
        store = runtime.store
        [entry] = await _eventually(lambda: store.search(), "the dead letter in the store")
        assert (entry.event_id, entry.flow, entry.status) == (bad["id"], "orders", "open")
        assert entry.business_key == bad["subject"]

        fake_vendor.script("/orders", [201])
        await runtime.operations.replay([entry.id], Actor.operator("ana"))
        done = await _eventually(
            lambda: (f := store.get(entry.id)) and f.status is FailureStatus.RESOLVED and f,
            "the replay resolved the entry",
        )
        assert done.replays == 1
        replayed = fake_vendor.requests_to("/orders")[-1]
        assert replayed.json["external_id"] == bad["data"]["opportunity_id"]

        # "What happened to event X?": the same history on both runtimes.
        statuses = await _eventually(
            lambda: [o.status for o in store.outcome_history(event_id=bad["id"])] or None,
            "the failed event's history",
        )
        assert statuses[0] == "dead_lettered"
        await _eventually(
            lambda: (
                [o.status for o in store.outcome_history(event_id=bad["id"])]
                == ["dead_lettered", "delivered"]
            ),
            "the replay's outcome in the history",
        )
        # Which record was a replay of which entry.
        history = store.outcome_history(event_id=bad["id"])
        assert [o.replay_of for o in history] == [None, entry.id]
        assert history[0].offset != history[1].offset
        [delivered] = await _eventually(
            lambda: store.outcome_history(event_id=good["id"]), "the good event's history"
        )
        assert (delivered.status, delivered.flow) == ("delivered", "orders")
        assert delivered.business_key == good["subject"]


async def test_ops_a_discard_is_kept_with_its_reason_in_the_audit_trail(
    make_ops_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    from platypus.ops.actions import Actor
    from platypus.ops.store import FailureStatus

    fake_vendor.script("/orders", [(400, {"error": "no"})])
    async with make_ops_runtime({"orders": ORDER_FLOW}) as runtime:
        event = closed_won(amount=2000)
        await runtime.ingest(event)
        store = runtime.store
        [entry] = await _eventually(lambda: store.search(), "the dead letter in the store")
        runtime.operations.discard([entry.id], Actor.operator("bo"), reason="test order")
        gone = store.get(entry.id)
        assert gone is not None
        assert (gone.status, gone.status_reason) == (FailureStatus.DISCARDED, "test order")
        [row, *_] = store.audit_log()
        assert (row.actor, row.action, row.detail["ids"]) == ("bo", "discard", [entry.id])
        assert len(fake_vendor.requests_to("/orders")) == 1  # not sent again


async def test_ops_a_second_copy_of_an_event_is_answered_as_a_duplicate_and_not_run(
    make_ops_runtime: MakeRuntime, fake_vendor: FakeVendor
) -> None:
    async with make_ops_runtime({"orders": ORDER_FLOW}) as runtime:
        event = closed_won(amount=2000)
        # Same key: the later event is read after where the copy would be.
        later = closed_won(event["subject"], amount=2000)
        body = json.dumps(event).encode()
        first = await runtime.ingress.accept(body, "application/json")
        again = await runtime.ingress.accept(body, "application/json")
        assert (first.status, first.body["accepted"], first.body["duplicates"]) == (202, 1, 0)
        assert (again.status, again.body["duplicates"]) == (202, 1)
        await runtime.ingest(later)
        await _eventually(
            lambda: runtime.store.outcome_history(event_id=later["id"]), "the later event's outcome"
        )
        assert len(fake_vendor.requests_to("/orders")) == 2
        assert [o.status for o in runtime.store.outcome_history(event_id=event["id"])] == [
            "delivered"
        ]
