"""Operations on Kafka: ``platypus indexer`` over a real broker and the real PostgreSQL.

A ``platypus worker`` and a ``platypus indexer`` run as subprocesses against
Tansu (or ``PLATYPUS_TEST_KAFKA``); the failed-event store is a fresh
PostgreSQL database (skipped, saying why, when the server is unreachable).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from platypus import deadletter as dl
from platypus.config import KafkaSettings
from platypus.ops.actions import Actor, Operations
from platypus.ops.store import FailureFilter, FailureStatus, FailureStore
from platypus.runtime.kafka import ensure_topics
from platypus.runtime.kafka.indexer import indexer_group
from platypus.schema_registry import SchemaRegistry
from tests.fakes.vendor import FakeVendor
from tests.kafka_broker import KafkaBroker
from tests.ops.test_cli import dlq
from tests.ops.test_to_test import (
    TWO_STEPS,
    assert_the_refusal_became_a_passing_case,
    flows_test,
)
from tests.postgres import fresh_database
from tests.runtimes import (
    kafka_ingress,
    start_indexer,
    start_web,
    start_worker,
    stop_worker,
    wait_worker_healthy,
    write_kafka_project,
)
from tests.support import ORDER_FLOW, closed_won, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the store, dropped after the test."""
    with fresh_database("platypus_kops") as url:
        yield url


def _project(
    root: Path,
    vendor: FakeVendor,
    broker: KafkaBroker,
    store_url: str,
    flow: str = ORDER_FLOW,
    **options: Any,
) -> KafkaSettings:
    settings = write_kafka_project(root, vendor.url, {"orders": flow}, broker, **options)
    config = yaml.safe_load((root / "platypus.yaml").read_text())
    config["failures_store"] = store_url
    config["ops"] = {"dashboard": False}
    (root / "platypus.yaml").write_text(yaml.safe_dump(config))
    return settings


async def wait_until(
    check: Callable[[], Any],
    what: str,
    within: float = 60.0,
    process: Any = None,
    poll: float = 0.2,
) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        if process is not None and process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"process exited with {process.returncode}: {stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(poll)


async def wait_http(process: subprocess.Popen[bytes], port: int, within: float = 60.0) -> None:
    async def ok() -> bool:
        async with httpx.AsyncClient() as client:
            try:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

    deadline = time.monotonic() + within
    while not await ok():
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"platypus indexer exited with {process.returncode}: {stderr}")
        if time.monotonic() > deadline:
            raise AssertionError("platypus indexer did not answer /healthz")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def deployment(
    root: Path, vendor: FakeVendor, broker: KafkaBroker, store_url: str, flow: str = ORDER_FLOW
) -> AsyncIterator[tuple[KafkaSettings, Any, FailureStore]]:
    """A worker, an indexer and the ingress, all on the broker and the shared store."""
    settings = _project(root, vendor, broker, store_url, flow)
    await ensure_topics(settings)
    worker = start_worker(root)
    port = free_port()
    indexer = start_indexer(root, port)
    store = FailureStore(store_url)
    try:
        await wait_worker_healthy(worker, settings.web_port)
        await wait_http(indexer, port)
        store.create()
        async with kafka_ingress(settings) as ingress:
            yield settings, ingress, store
    finally:
        stop_worker(worker)
        stop_worker(indexer)
        store.close()


async def test_dead_letter_to_store_to_replay_to_resolved_with_outcomes_history(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker, pg_url: str
) -> None:
    running = deployment(tmp_path, fake_vendor, kafka_broker, pg_url)
    async with running as (settings, ingress, store):
        good = closed_won(amount=2000)
        bad = closed_won(good["subject"], amount=3000)  # same key: read after the good one
        fake_vendor.script("/orders", [201, (400, {"error": "account closed"})])
        for event in (good, bad):
            result = await ingress.accept(json.dumps(event).encode(), "application/json")
            assert result.status == 202, result.body

        [entry] = await wait_until(
            lambda: store.search(FailureFilter(status=(FailureStatus.OPEN,))),
            "the dead letter in the store",
        )
        assert entry.event_id == bad["id"]
        assert entry.flow == "orders"
        assert entry.source_topic == settings.topic("events")
        assert entry.business_key == bad["subject"]

        # The outcome history answers "what happened to X?", successes included.
        [delivered] = await wait_until(
            lambda: store.outcome_history(event_id=good["id"]), "the good event's outcome"
        )
        assert delivered.status == "delivered"
        assert delivered.flow == "orders"
        assert delivered.attempts >= 1
        assert delivered.appended_at is not None
        assert delivered.settled_at >= delivered.appended_at

        # Replay from another process (the CLI, the dashboard): the indexer produces it.
        fake_vendor.script("/orders", [201])
        ops = Operations(store, SchemaRegistry.default())
        report = await ops.replay([entry.id], Actor.operator("ana"))
        assert report.queued  # the running indexer holds the lease and sends it
        resolved = await wait_until(
            lambda: (f := store.get(entry.id)) and f.status is FailureStatus.RESOLVED and f,
            "the replayed entry resolved",
        )
        assert resolved.replay_offset is not None
        history = [(o.status, o.replay_of) for o in store.outcome_history(event_id=bad["id"])]
        assert history == [("dead_lettered", None), ("delivered", entry.id)]
        replayed = fake_vendor.requests_to("/orders")[-1]
        assert replayed.json["external_id"] == bad["data"]["opportunity_id"]
        assert [a.action for a in store.audit_log()][:2] == ["resolve", "replay"]


async def test_a_replay_that_fails_again_reopens_the_same_entry_and_discard_is_audited(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker, pg_url: str
) -> None:
    async with deployment(tmp_path, fake_vendor, kafka_broker, pg_url) as (_, ingress, store):
        event = closed_won(amount=2000)
        fake_vendor.script("/orders", [(400, {"error": "no"}), (422, {"error": "still no"})])
        await ingress.accept(json.dumps(event).encode(), "application/json")
        [entry] = await wait_until(lambda: store.search(), "the dead letter in the store")

        ops = Operations(store, SchemaRegistry.default())
        await ops.replay([entry.id], Actor.operator("ana"))
        again = await wait_until(
            lambda: (f := store.get(entry.id)) and f.failure_count == 2 and f,
            "the entry failed again",
        )
        assert again.status is FailureStatus.OPEN
        assert store.count() == 1  # the same entry, not a new one

        ops.discard([entry.id], Actor.operator("bo"), reason="customer left")
        gone = store.get(entry.id)
        assert gone is not None
        assert gone.status is FailureStatus.DISCARDED
        [row, *_] = store.audit_log()
        assert (row.actor, row.action, row.detail["ids"]) == ("bo", "discard", [entry.id])


async def test_dlq_to_test_turns_a_kafka_dead_letter_into_a_passing_case_with_earlier_answers(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker, pg_url: str
) -> None:
    # What tests/ops/test_to_test.py checks on the embedded runtime: on Kafka the
    # earlier steps' answers are in the workers' ledger, not in an event log.
    running = deployment(tmp_path, fake_vendor, kafka_broker, pg_url, TWO_STEPS)
    async with running as (_, ingress, store):
        fake_vendor.script(
            "/orders", [(201, {"id": "ORD-77", "owner": "grace.hopper@example.com"})]
        )
        fake_vendor.script("/notify", [(400, {"error": "channel_not_found"})])
        event = closed_won(owner_email="grace.hopper@example.com")
        result = await ingress.accept(json.dumps(event).encode(), "application/json")
        assert result.status == 202, result.body
        [entry] = await wait_until(
            lambda: store.search(FailureFilter(status=(FailureStatus.OPEN,))),
            "the dead letter in the store",
        )

        made = await asyncio.to_thread(dlq, tmp_path, "to-test", str(entry.id))
    tests = await asyncio.to_thread(flows_test, tmp_path, "-v")

    assert_the_refusal_became_a_passing_case(tmp_path, event, made, tests)


def _letter(event_id: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    return [
        (dl.TOPIC, b"platypus.events"),
        (dl.PARTITION, str(partition).encode()),
        (dl.OFFSET, str(offset).encode()),
        (dl.EXCEPTION_CLASS, b"platypus.exceptions.PermanentError"),
        (dl.EXCEPTION_MESSAGE, b"vendor said no"),
        (dl.FLOW, b"orders"),
        (dl.STEP, b"create_order"),
        (dl.EVENT_ID, event_id.encode()),
        (dl.EVENT_TYPE, b"sales.opportunity.closed_won.v1"),
        (dl.ATTEMPTS, b"1"),
    ]


async def test_a_foreign_dead_letter_record_is_indexed_with_a_note(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker, pg_url: str
) -> None:
    settings = _project(tmp_path, fake_vendor, kafka_broker, pg_url)
    await ensure_topics(settings)
    topic = settings.topic("dead-letter")
    kafka_broker.produce(
        topic,
        [
            (b"k1", b"\x00\x01 not json", []),
            (b"k2", json.dumps({"id": "evt-x", "type": "a.b.v1"}).encode(), [("x", b"\xff")]),
            (b"k3", b"ok", [(dl.ERRORS, b"{not json")]),
            (b"k4", b"{}", _letter("evt-ours", 0, 7)),
        ],
    )
    port = free_port()
    indexer = start_indexer(tmp_path, port)
    store = FailureStore(pg_url)
    try:
        await wait_http(indexer, port)
        store.create()
        found = await wait_until(lambda: len(store.search()) == 4 and store.search(), "4 entries")
        by_key = {f.business_key: f for f in found}
        assert "without Platypus's headers" in by_key["k1"].error_message
        assert "not a JSON CloudEvent" in by_key["k1"].error_message
        assert by_key["k1"].payload == b"\x00\x01 not json"
        assert by_key["k2"].event_id == "evt-x"  # taken from the value
        assert "header x is not UTF-8" in by_key["k2"].error_message
        assert "platypus.errors is not JSON" in by_key["k3"].error_message
        assert by_key["k4"].error_message == "vendor said no"  # ours: no note
        assert indexer.poll() is None  # still running
    finally:
        stop_worker(indexer)
        store.close()


async def test_kill_9_of_the_indexer_mid_stream_loses_no_dead_letter_and_doubles_none(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker, pg_url: str
) -> None:
    settings = _project(tmp_path, fake_vendor, kafka_broker, pg_url, partitions=4)
    await ensure_topics(settings)
    topic = settings.topic("dead-letter")
    store = FailureStore(pg_url)
    store.create()
    produced = mid_stream = 0
    wave = 4000
    try:
        # Each round adds a wave of dead letters and kills the indexer as soon as it
        # has stored some of them, until at least one kill fell mid-stream.
        for _round in range(8):
            kafka_broker.produce(
                topic,
                [
                    (f"key-{i}".encode(), b"{}", _letter(f"evt-{i}", i % 4, i))
                    for i in range(produced, produced + wave)
                ],
            )
            before, produced = store.count(), produced + wave
            indexer = start_indexer(tmp_path, free_port())
            await wait_until(
                lambda b=before: store.count() > b, "progress", process=indexer, poll=0.01
            )
            indexer.send_signal(signal.SIGKILL)
            indexer.wait()
            if store.count() < produced:
                mid_stream += 1
                if mid_stream >= 2:
                    break
        assert mid_stream >= 1, "every kill came after the wave was stored: no mid-stream kill"
        indexer = start_indexer(tmp_path, free_port())
        try:
            await wait_until(lambda: store.count() >= produced, "all indexed", process=indexer)
            # The consumer group is committed from the store's positions, after them.
            ends = kafka_broker.end_offsets(topic)
            await wait_until(
                lambda: kafka_broker.committed(indexer_group(settings), topic, missing=0) == ends,
                "the indexer's group committed to the end",
            )
        finally:
            stop_worker(indexer)
        with store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT event_id, failure_count FROM failures")).all()
        assert len(rows) == produced
        assert {event_id for event_id, _ in rows} == {f"evt-{i}" for i in range(produced)}
        assert {count for _, count in rows} == {1}  # none indexed twice
    finally:
        store.close()


async def _wait_web(process: subprocess.Popen[bytes], port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"platypus web exited with {process.returncode}: {stderr}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("platypus web did not answer /healthz")
            await asyncio.sleep(0.2)


async def test_a_copy_posted_to_another_web_replica_is_a_duplicate_and_not_produced(
    tmp_path: Path,
    fake_vendor: FakeVendor,
    kafka_broker: KafkaBroker,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.sources.payloads import ENVIRONMENT, SOURCES, dumps, generic_signed, hire_candidate

    settings = _project(tmp_path, fake_vendor, kafka_broker, pg_url)
    config = yaml.safe_load((tmp_path / "platypus.yaml").read_text())
    config["sources"] = {"hooks": SOURCES["hooks"]}
    (tmp_path / "platypus.yaml").write_text(yaml.safe_dump(config))
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    await ensure_topics(settings)
    # Each replica its own project folder, so its own data directory: only the
    # shared store can tell them what the other has seen.
    other_project = tmp_path / "replica"
    shutil.copytree(tmp_path / "flows", other_project / "flows")
    shutil.copy(tmp_path / "platypus.yaml", other_project / "platypus.yaml")
    ports = [free_port(), free_port()]
    webs = [
        start_web(root, port) for root, port in zip((tmp_path, other_project), ports, strict=True)
    ]
    try:
        for web, port in zip(webs, ports, strict=True):
            await _wait_web(web, port)
        a, b = (f"http://127.0.0.1:{port}" for port in ports)
        event = closed_won(amount=2000)
        async with httpx.AsyncClient() as client:
            first = await client.post(f"{a}/events", json=event)
            second = await client.post(f"{b}/events", json=event)
            assert (first.status_code, second.status_code) == (202, 202)
            assert (first.json()["accepted"], first.json()["duplicates"]) == (1, 0)
            assert second.json()["duplicates"] == 1

            body = dumps(hire_candidate())
            hook_a = await client.post(
                f"{a}/webhooks/hooks", content=body, headers=generic_signed(body, "d-1")
            )
            hook_b = await client.post(
                f"{b}/webhooks/hooks", content=body, headers=generic_signed(body, "d-1")
            )
            other = dumps(hire_candidate(2))
            reused = await client.post(
                f"{b}/webhooks/hooks", content=other, headers=generic_signed(other, "d-1")
            )
        assert (hook_a.status_code, hook_b.status_code) == (200, 200)
        assert hook_b.json()["redelivery"] is True
        assert reused.status_code == 409

        records = kafka_broker.read(settings.topic("events"))
        ids = [json.loads(r.value or b"{}")["id"] for r in records]
        assert ids.count(event["id"]) == 1
        assert len(ids) == 2  # the event once, the webhook's event once
    finally:
        for web in webs:
            stop_worker(web)


async def test_indexer_readyz_is_ready_for_the_holder_and_the_standby_and_metrics_scrape(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker, pg_url: str
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    settings = _project(tmp_path, fake_vendor, kafka_broker, pg_url)
    await ensure_topics(settings)
    kafka_broker.produce(settings.topic("dead-letter"), [(b"k", b"{}", _letter("evt-r", 0, 1))])
    ports = [free_port(), free_port()]
    indexers = [start_indexer(tmp_path, port) for port in ports]
    store = FailureStore(pg_url)
    try:
        for indexer, port in zip(indexers, ports, strict=True):
            await wait_http(indexer, port)
        store.create()
        await wait_until(lambda: store.count() == 1, "the dead letter indexed")

        async def ready(port: int) -> tuple[int, dict[str, Any]]:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{port}/readyz")
            return answer.status_code, answer.json()

        answers = [await ready(port) for port in ports]
        assert [status for status, _ in answers] == [200, 200]
        by_role = {body["role"]: body for _, body in answers}
        assert set(by_role) == {"active", "standby"}
        for body in by_role.values():
            assert body["status"] == "ready"
            assert body["checks"] == {
                "broker": True,
                "topics": True,
                "data": True,
                "store": True,
                "indexer": True,
            }
            assert body["lease_holder"]
        assert "ready and idle" in by_role["standby"]["note"]
        assert "note" not in by_role["active"]

        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{ports[0]}/metrics")).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("platypus_ready", ())] == 1
        assert samples[("platypus_broker_up", ())] == 1
        assert samples[("platypus_dead_letters_open", ())] == 1
        lag = {
            labels: value
            for (name, labels), value in samples.items()
            if name == "platypus_indexer_lag"
        }
        assert lag  # both topics' partitions, as last probed
        assert all(value == 0 for value in lag.values())  # everything on the broker is stored
    finally:
        for indexer in indexers:
            stop_worker(indexer)
        store.close()


async def test_two_indexers_post_one_failure_alert_and_a_takeover_keeps_the_cooldown(
    tmp_path: Path,
    fake_vendor: FakeVendor,
    kafka_broker: KafkaBroker,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from platypus.ops.alerts import ALERTS_LEASE
    from tests.fakes.slack import CHANNELS, FakeSlack

    slack = FakeSlack()
    slack.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", FakeSlack.bot_token)
    settings = _project(tmp_path, fake_vendor, kafka_broker, pg_url)
    config = yaml.safe_load((tmp_path / "platypus.yaml").read_text())
    config["connections"]["team-slack"] = {
        "adapter": "slack",
        "settings": {"token": {"env": "SLACK_BOT_TOKEN"}, "base_url": slack.url},
    }
    config["ops"]["alerts"] = {
        "connection": "team-slack",
        "channel": "#ops-alerts",
        "rules": [{"flow": "*", "threshold": 2, "window": 3600}],
        "cooldown": 3600,
        "interval": 0.2,
    }
    (tmp_path / "platypus.yaml").write_text(yaml.safe_dump(config))
    await ensure_topics(settings)
    kafka_broker.produce(
        settings.topic("dead-letter"),
        [(f"k{i}".encode(), b"{}", _letter(f"evt-a{i}", 0, i)) for i in range(3)],
    )
    ports = [free_port(), free_port()]
    indexers = [start_indexer(tmp_path, port) for port in ports]
    store = FailureStore(pg_url)

    async def checks(count: int, other_than: str = "") -> dict[str, Any]:
        # Every check of the rules renews the alerts lease, so its expiry moves:
        # wait for ``count`` moves by a holder other than ``other_than``.
        seen: list[Any] = []

        def moved() -> dict[str, Any] | None:
            now = store.lease_holder(ALERTS_LEASE)
            if now is None or now["holder"] == other_than:
                return None
            if not seen or now["expires_at"] != seen[-1]:
                seen.append(now["expires_at"])
            return now if len(seen) > count else None

        found: dict[str, Any] = await wait_until(moved, f"{count} checks of the alert rules")
        return found

    try:
        for indexer, port in zip(indexers, ports, strict=True):
            await wait_http(indexer, port)
        store.create()
        await wait_until(lambda: store.count() == 3, "the dead letters indexed")
        [message] = await wait_until(
            lambda: slack.posted("ops-alerts"), "the failure alert", within=30
        )
        assert "3 failed events in flow `orders`" in message["text"]
        assert store.last_alerts().keys() == {"orders"}
        # The standby cannot post without the lease; the holder checks on, cooling.
        holder = await checks(3)
        assert len(slack.posted("ops-alerts")) == 1

        # The holder stops; the standby takes the lease over, reads the cooldown
        # from the store and does not alert again for the same failures.
        [active] = [p for p in indexers if f":{p.pid}:" in holder["holder"]]
        stop_worker(active)
        await checks(3, other_than=holder["holder"])
        assert len(slack.posted("ops-alerts")) == 1
        assert CHANNELS["ops-alerts"] in slack.messages
    finally:
        for indexer in indexers:
            stop_worker(indexer)
        store.close()
        slack.stop()
