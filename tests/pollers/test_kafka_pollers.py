"""Pollers on Kafka: one active poller per source across the workers, failover on SIGKILL,
checkpoints only after the broker acknowledged the events, and ``platypus backfill --kafka``.

The lease and checkpoints live in a PostgreSQL database shared by the workers
(``kafka.ledger_url``) and, for the unit cases, on SQLite too. The vendor is the
loopback Salesforce of the poller tests; the broker is the real one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import yaml
from click.testing import CliRunner

from platypus.runtime.kafka.pollers import PollerLeaseLostError, SqlCheckpoints
from platypus.sources.pollers.cli import backfill
from tests.fakes.vendor import FakeVendor
from tests.kafka_broker import KafkaBroker
from tests.ops.conftest import store_url  # noqa: F401 -- the fixture, SQLite and PostgreSQL
from tests.pollers.conftest import SoqlSalesforce, salesforce_settings
from tests.pollers.test_pollers import won
from tests.postgres import fresh_database
from tests.runtimes import start_worker, stop_worker, write_kafka_project
from tests.support import free_port

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

FLOW = """
name: orders
consumes: sales.opportunity.closed_won.v1
steps:
  - name: create_order
    to: vendor.post
    params: {path: /orders}
    payload: {event: id, key: subject}
"""


# -- the lease and the fenced checkpoint, on each database ------------------------------


def test_one_holder_at_a_time_and_a_lost_lease_moves_no_checkpoint(store_url: str) -> None:  # noqa: F811
    db = SqlCheckpoints(store_url)
    try:
        first = db.acquire("poller:won", "worker-a", ttl=30)
        assert first is not None
        assert db.acquire("poller:won", "worker-b", ttl=30) is None
        db.save("poller:won", "page-1", first)
        assert db.load("poller:won") == "page-1"

        db.release(first)
        second = db.acquire("poller:won", "worker-b", ttl=30)
        assert second is not None
        assert second.token == first.token + 1
        with pytest.raises(PollerLeaseLostError, match="no longer held by worker-a"):
            db.save("poller:won", "page-2-from-a-stale-holder", first)
        assert db.load("poller:won") == "page-1"
        db.save("poller:won", "page-2", second)
        assert db.load("poller:won") == "page-2"
    finally:
        db.close()


def test_an_expired_lease_is_taken_over(store_url: str) -> None:  # noqa: F811
    db = SqlCheckpoints(store_url)
    try:
        assert db.acquire("poller:won", "worker-a", ttl=0.05) is not None
        deadline = time.monotonic() + 30
        while (taken := db.acquire("poller:won", "worker-b", ttl=30)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert taken.holder == "worker-b"
    finally:
        db.close()


# -- two workers, the holder killed ----------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database the workers share (skipped when the server is unreachable)."""
    with fresh_database("platypus_pollers") as url:
        yield url


def _project(
    root: Path, vendor: FakeVendor, broker: KafkaBroker, sf: SoqlSalesforce, ledger_url: str
) -> Any:
    settings = write_kafka_project(
        root,
        vendor.url,
        {"orders": FLOW},
        broker,
        name="pollers",
        ledger_url=ledger_url,
        connections={"crm": {"adapter": "salesforce", "settings": salesforce_settings(sf)}},
    )
    config = yaml.safe_load((root / "platypus.yaml").read_text())
    # The store every producer of the events topic claims (source, id) in (issue 12.5).
    config["failures_store"] = ledger_url
    config["pollers"] = {
        "won": {
            "kind": "salesforce",
            "connection": "crm",
            "page_size": 3,
            "interval": 0.3,
            "overlap": 0,
            "start_from": (T0 - timedelta(days=1)).isoformat(),
        }
    }
    (root / "platypus.yaml").write_text(yaml.safe_dump(config))
    return settings


def _since(sf: SoqlSalesforce) -> list[str]:
    """The ``SystemModstamp >= X`` of every SOQL query, in order: where each read started."""
    out = []
    for request in sf.requests:
        query = unquote_plus(request.query)
        if "SystemModstamp >=" in query:
            out.append(query.split("SystemModstamp >=", 1)[1].split()[0])
    return out


async def _events(broker: KafkaBroker, topic: str, expected: int) -> list[str]:
    records = await asyncio.to_thread(broker.read, topic, expected=expected, timeout=60)
    return [json.loads(r.value or b"")["subject"] for r in records]


async def test_killing_the_poller_holder_moves_the_poller_with_no_window_skipped(
    tmp_path: Path,
    fake_vendor: FakeVendor,
    kafka_broker: KafkaBroker,
    salesforce: SoqlSalesforce,
    pg_url: str,
) -> None:
    settings = _project(tmp_path, fake_vendor, kafka_broker, salesforce, pg_url)
    first_ids = [won(salesforce, n, T0 + timedelta(minutes=n)) for n in range(7)]
    db = SqlCheckpoints(pg_url)
    workers = [
        start_worker(tmp_path),
        start_worker(tmp_path, "--web-port", str(free_port())),
    ]
    try:
        deadline = time.monotonic() + 90
        while (held := db.holder("poller:won")) is None:
            assert time.monotonic() < deadline, "no worker took the poller's lease"
            for w in workers:
                assert w.poll() is None, (w.stderr.read() if w.stderr else b"")[-3000:]
            await asyncio.sleep(0.2)
        assert sorted(await _events(kafka_broker, settings.topic("events"), 7)) == first_ids
        # Exactly one worker polls: the lease's holder.
        [holder] = [w for w in workers if w.pid == held["pid"]]
        [survivor] = [w for w in workers if w is not holder]
        checkpoint_at_kill = db.load("poller:won")
        queries_before = len(_since(salesforce))

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        killed_at = time.monotonic()
        more_ids = [won(salesforce, n, T0 + timedelta(minutes=n)) for n in range(7, 12)]

        deadline = time.monotonic() + 60
        while (held := db.holder("poller:won")) is None or held["pid"] != survivor.pid:
            assert time.monotonic() < deadline, f"the survivor never took the lease: {held}"
            assert survivor.poll() is None, "the surviving worker died"
            await asyncio.sleep(0.2)
        failover = time.monotonic() - killed_at
        subjects = await _events(kafka_broker, settings.topic("events"), 12)
    finally:
        for worker in workers:
            stop_worker(worker)
        db.close()

    print(
        f"\n{len(subjects)} events for 12 records; the survivor held the lease "
        f"{failover:.1f} s after the kill ({held['holder']})"
    )
    assert sorted(set(subjects)) == sorted(first_ids + more_ids), "a record was skipped"
    # A page produced but not yet checkpointed when the holder was killed is read
    # again by the survivor: its events are claimed in the shared store, so the topic
    # holds each record once.
    assert len(subjects) == len(set(subjects)), subjects
    # The survivor went on from the checkpoint the killed holder saved: no read started
    # before that watermark (no window read again), none after the data (none skipped).
    assert checkpoint_at_kill is not None
    watermark = json.loads(checkpoint_at_kill)["watermark"]
    assert watermark is not None
    later = _since(salesforce)[queries_before:]
    assert later, "the survivor never polled"
    assert all(
        datetime.fromisoformat(s.replace("Z", "+00:00")) >= datetime.fromisoformat(watermark)
        for s in later
    ), (watermark, later)


def test_backfill_on_kafka_produces_the_range_and_resumes_from_its_checkpoint(
    tmp_path: Path,
    fake_vendor: FakeVendor,
    kafka_broker: KafkaBroker,
    salesforce: SoqlSalesforce,
    pg_url: str,
) -> None:
    settings = _project(tmp_path, fake_vendor, kafka_broker, salesforce, pg_url)
    ids = [won(salesforce, n, datetime(2023, 5, 1 + n, tzinfo=UTC)) for n in range(7)]
    args = ["won", "--since", "2023-05-01", "--until", "2023-05-31", "--project", str(tmp_path)]
    from platypus.runtime.kafka.topics import wait_for_broker

    wait_for_broker(settings)
    first = CliRunner().invoke(backfill, [*args, "--kafka", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["accepted"] == 7
    records = kafka_broker.read(settings.topic("events"), expected=7)
    assert sorted(json.loads(r.value or b"")["subject"] for r in records) == ids

    # Done: the same command resumes from its checkpoint, which says the range is read.
    again = CliRunner().invoke(backfill, [*args, "--kafka", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["records"] == 0
    db = SqlCheckpoints(pg_url)
    try:
        saved = db.load("backfill:won")
    finally:
        db.close()
    assert saved is not None
    assert json.loads(saved)["done"] is True
    assert len(kafka_broker.read(settings.topic("events"), expected=7)) == 7


class _Broker:
    """An in-memory stand-in for the producer: acknowledges, or refuses, each append."""

    def __init__(self, db: SqlCheckpoints, refuse: bool) -> None:
        self.db = db
        self.refuse = refuse
        self.checkpoint_when_acknowledged: list[str | None] = []

    async def append(self, topic: str, records: Any) -> list[Any]:
        # What the checkpoint says at the moment the broker acknowledges the page.
        self.checkpoint_when_acknowledged.append(self.db.load("poller:won"))
        if self.refuse:
            from aiokafka.errors import KafkaTimeoutError

            raise KafkaTimeoutError
        return [None for _ in records]


@pytest.mark.parametrize("refuse", [False, True])
async def test_a_checkpoint_moves_only_after_the_broker_acknowledged_the_page(
    tmp_path: Path, refuse: bool
) -> None:
    from platypus.runtime.kafka.pollers import KafkaCheckpointStore

    db = SqlCheckpoints(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        held = db.acquire("poller:won", "worker-a")
        db.save("poller:won", "before", held)
        broker = _Broker(db, refuse)
        store = KafkaCheckpointStore(broker, db, held)  # type: ignore[arg-type]
        if refuse:
            with pytest.raises(Exception, match="KafkaTimeoutError"):
                await store.append_with_checkpoint("t", [object()], "poller:won", "after")
        else:
            await store.append_with_checkpoint("t", [object()], "poller:won", "after")
        assert broker.checkpoint_when_acknowledged == ["before"]
        assert db.load("poller:won") == ("before" if refuse else "after")
    finally:
        db.close()
