"""Pollers against loopback vendors: typed events, checkpoints, overlap, backfill, back-off."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from platypus.adapter import Adapter
from platypus.exceptions import ConfigurationError, RetryableError
from platypus.ingress import Ingress
from platypus.records import EVENTS_TOPIC
from platypus.runtime.embedded.log import EventLog
from platypus.sources.pollers import Checkpoint, PollerSpec, build_poller
from platypus.sources.pollers.sources import Page, RecordSource
from tests.fakes.netsuite import FakeNetSuite, FaultReply
from tests.pollers.conftest import SoqlSalesforce

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LINES = json.dumps([{"product_code": "SKU-1", "quantity": 2, "unit_price": 50}])


def won(fake: SoqlSalesforce, n: int, at: datetime, stage: str = "Closed Won") -> str:
    record_id = f"006{n:012d}"
    fake.put(
        record_id,
        at,
        Name=f"Deal {n}",
        StageName=stage,
        AccountId=f"001{n:012d}",
        **{"Account.Name": "Acme Ltd", "Owner.Email": "rep@acme.example"},
        Amount=100.0,
        CurrencyIsoCode="EUR",
        CloseDate="2024-06-01",
        Line_Items_JSON__c=LINES,
    )
    return record_id


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def sf_poller(adapter: Adapter, ingress: Ingress, log: EventLog, **spec: Any) -> Any:
    config = PollerSpec.model_validate(
        {
            "kind": "salesforce",
            "connection": "crm",
            "start_from": "2024-06-01T00:00:00Z",
            "page_size": 5,
            **spec,
        }
    )
    return build_poller("won", config, adapter, ingress, log, clock=Clock(T0), sleep=Sleeps())


def events(log: EventLog) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in log.read(EVENTS_TOPIC)]


# -- a record becomes a typed event ----------------------------------------------------


async def test_a_closed_won_opportunity_becomes_a_typed_event_and_other_stages_are_ignored(
    salesforce: SoqlSalesforce, sf_adapter: Adapter, ingress: Ingress, log: EventLog
) -> None:
    opportunity = won(salesforce, 1, T0 - timedelta(hours=2))
    won(salesforce, 2, T0 - timedelta(hours=1), stage="Negotiation")
    poller = sf_poller(sf_adapter, ingress, log)

    result = await poller.poll_once()

    assert (result.records, result.accepted, result.ignored) == (2, 1, 1)
    [event] = events(log)
    assert event["type"] == "sales.opportunity.closed_won.v1"
    assert event["source"] == "/salesforce/poller/won"
    assert event["id"] == f"closed_won:{opportunity}:2024-06-01"
    assert event["subject"] == opportunity
    assert event["data"]["account_name"] == "Acme Ltd"
    assert event["data"]["owner_email"] == "rep@acme.example"
    assert event["data"]["line_items"] == [
        {"product_code": "SKU-1", "quantity": 2, "unit_price": 50, "currency": "EUR"}
    ]
    saved = poller.checkpoint()
    assert saved is not None
    assert saved.window is None
    # Salesforce's own clock: the latest SystemModstamp read.
    assert saved.watermark == T0 - timedelta(hours=1)
    soql = [r.query for r in salesforce.requests if "q=" in r.query]
    assert "ORDER+BY+SystemModstamp%2C+Id" in soql[0] or "ORDER BY" in soql[0].replace("+", " ")


async def test_an_invalid_record_is_recorded_as_rejected_and_the_rest_are_appended(
    salesforce: SoqlSalesforce, sf_adapter: Adapter, ingress: Ingress, log: EventLog
) -> None:
    won(salesforce, 1, T0 - timedelta(hours=3))
    bad = won(salesforce, 2, T0 - timedelta(hours=2))
    salesforce.put(bad, T0 - timedelta(hours=2), StageName="Closed Won", Amount=5.0)
    result = await sf_poller(sf_adapter, ingress, log).poll_once()

    assert (result.accepted, result.rejected) == (1, 1)
    [rejection] = log.rejected()
    assert rejection["reason"].startswith("poller won: ")


# -- checkpoints: a crash between pages -----------------------------------------------------


async def test_a_poller_killed_between_pages_resumes_with_no_gap_and_no_duplicate(
    salesforce: SoqlSalesforce,
    sf_adapter: Adapter,
    ingress: Ingress,
    log: EventLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [won(salesforce, n, T0 - timedelta(minutes=60 - n)) for n in range(12)]
    original = log.append_with_checkpoint
    calls = 0

    async def dies_on_page_two(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the process was killed")
        return await original(*args)

    monkeypatch.setattr(log, "append_with_checkpoint", dies_on_page_two)
    with pytest.raises(RuntimeError, match="killed"):
        await sf_poller(sf_adapter, ingress, log).poll_once()
    assert len(events(log)) == 5
    saved = Checkpoint.loads(log.load_checkpoint("poller:won"))
    assert saved is not None
    assert saved.window is not None
    assert saved.window.cursor == {
        "modstamp": "2024-06-01T11:04:00.000+0000",
        "id": ids[4],
    }

    monkeypatch.setattr(log, "append_with_checkpoint", original)
    restarted = sf_poller(sf_adapter, ingress, log)
    result = await restarted.poll_once()

    assert result.duplicates == 0  # resumed at the cursor: nothing read twice
    assert sorted(e["subject"] for e in events(log)) == ids
    assert restarted.checkpoint().window is None


# -- the overlap window ---------------------------------------------------------------------


async def test_the_overlap_catches_a_record_stamped_at_or_just_before_the_watermark(
    salesforce: SoqlSalesforce, sf_adapter: Adapter, ingress: Ingress, log: EventLog
) -> None:
    first = won(salesforce, 1, T0 - timedelta(minutes=30))
    poller = sf_poller(sf_adapter, ingress, log, overlap="5m")
    await poller.poll_once()
    watermark = poller.checkpoint().watermark
    assert watermark == T0 - timedelta(minutes=30)

    # Committed after the poll, by transactions that started earlier.
    same_stamp = won(salesforce, 2, watermark)
    late = won(salesforce, 3, watermark - timedelta(minutes=4))
    too_late = won(salesforce, 4, watermark - timedelta(minutes=10))
    result = await poller.poll_once()

    subjects = {e["subject"] for e in events(log)}
    assert {first, same_stamp, late} <= subjects
    assert too_late not in subjects  # older than the overlap: the documented limit
    assert result.duplicates == 1  # the first opportunity, read again and dropped
    assert len(events(log)) == 3


# -- back-off -----------------------------------------------------------------------------


async def test_a_rate_limited_page_backs_off_and_is_read_again(
    salesforce: SoqlSalesforce, sf_adapter: Adapter, ingress: Ingress, log: EventLog
) -> None:
    won(salesforce, 1, T0 - timedelta(hours=1))
    salesforce.fail_next("REQUEST_LIMIT_EXCEEDED", times=3)
    poller = sf_poller(sf_adapter, ingress, log)
    result = await poller.poll_once()

    assert poller.sleep.delays == [1.0, 2.0, 4.0]
    assert (result.retries, result.accepted) == (3, 1)


class _Limited(RecordSource):
    kind = "stub"

    def __init__(self) -> None:
        self.calls = 0

    async def page(
        self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None
    ) -> Page:
        self.calls += 1
        if self.calls == 1:
            raise RetryableError("slow down", retry_after=7.5, vendor_code="429")
        return Page([], None)


async def test_the_vendors_retry_after_is_honoured_up_to_max_backoff(
    ingress: Ingress, log: EventLog
) -> None:
    from platypus.sources.pollers.poller import Poller

    spec = PollerSpec(kind="salesforce", connection="crm", max_backoff=5)
    sleeps = Sleeps()
    poller = Poller("stub", spec, _Limited(), ingress, log, clock=Clock(T0), sleep=sleeps)
    await poller.poll_once()
    assert sleeps.delays == [5.0]  # 7.5 s asked, capped by max_backoff

    spec = PollerSpec(kind="salesforce", connection="crm")
    sleeps = Sleeps()
    poller = Poller("stub", spec, _Limited(), ingress, log, clock=Clock(T0), sleep=sleeps)
    await poller.poll_once()
    assert sleeps.delays == [7.5]


# -- backfill -----------------------------------------------------------------------------


async def test_a_backfill_interrupted_resumes_from_its_own_checkpoint(
    salesforce: SoqlSalesforce,
    sf_adapter: Adapter,
    ingress: Ingress,
    log: EventLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [won(salesforce, n, datetime(2023, 1, 1 + n, tzinfo=UTC)) for n in range(12)]
    won(salesforce, 99, datetime(2023, 3, 1, tzinfo=UTC))  # after the range
    poller = sf_poller(sf_adapter, ingress, log)
    since, until = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 31, tzinfo=UTC)
    original = poller.source.page
    calls = 0

    async def interrupted(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return await original(*args)

    monkeypatch.setattr(poller.source, "page", interrupted)
    with pytest.raises(KeyboardInterrupt):
        await poller.backfill(since, until)
    assert len(events(log)) == 5

    progress: list[float] = []
    result = await poller.backfill(
        since, until, progress=lambda page: progress.append(page.progress)
    )

    assert result.duplicates == 0
    assert sorted(e["subject"] for e in events(log)) == ids
    assert progress[-1] == 1.0
    saved = Checkpoint.loads(log.load_checkpoint("backfill:won"))
    assert saved is not None
    assert saved.done
    assert log.load_checkpoint("poller:won") is None  # the live poller's is its own
    again = await poller.backfill(since, until)
    assert again.pages == 0  # done: nothing to do
    restarted = await poller.backfill(since, until, restart=True)
    assert (restarted.accepted, restarted.duplicates) == (0, 12)


# -- Workday and NetSuite ------------------------------------------------------------------


async def test_workday_workers_updated_in_the_range_become_hire_events(
    wd_adapter: Adapter, ingress: Ingress, log: EventLog
) -> None:
    spec = PollerSpec.model_validate(
        {
            "kind": "workday",
            "connection": "hr",
            "start_from": "2024-02-15T00:00:00Z",
            "overlap": "0s",
            "page_size": 2,
            "query": {"department": "Engineering", "location": "London"},
        }
    )
    clock = Clock(datetime(2024, 4, 1, tzinfo=UTC))
    poller = build_poller("hires", spec, wd_adapter, ingress, log, clock=clock, sleep=Sleeps())
    result = await poller.poll_once()

    found = {e["subject"]: e for e in events(log)}
    assert set(found) == {"21001", "21002", "C-9001"}  # 21003: updated before the range
    ada = found["21001"]
    assert ada["type"] == "people.worker.hired.v1"
    assert ada["id"] == "hired:21001:2020-01-06"
    assert ada["data"]["position"] == {
        "title": "Software Engineer",
        "department": "Engineering",
        "location": "London",
    }
    assert found["C-9001"]["data"]["worker_type"] == "contingent"
    assert result.pages == 2
    assert poller.checkpoint().watermark == clock.now

    result = await poller.poll_once()  # nothing changed since
    assert (result.records, result.accepted) == (0, 0)


async def _invoice(adapter: Adapter, netsuite: FakeNetSuite, n: int, at: datetime) -> None:
    from platypus.adapter import Request

    await adapter.call(
        Request(
            action="upsert_invoice",
            payload={
                "externalId": f"INV-{n}",
                "entity": {"externalId": "CUST-1"},
                "tranDate": "2024-05-31",
                "dueDate": "2024-06-30",
                "currency": {"externalId": "USD"},
                "items": [{"item": {"internalId": "7"}, "description": "Seats", "amount": 120.0}],
            },
        )
    )
    netsuite.touch("invoice", f"INV-{n}", at)


async def test_netsuite_invoices_modified_in_the_range_become_posted_events(
    netsuite: FakeNetSuite, ns_adapter: Adapter, ingress: Ingress, log: EventLog
) -> None:
    from platypus.adapter import Request

    await ns_adapter.call(
        Request(action="upsert_customer", payload={"externalId": "CUST-1", "companyName": "Acme"})
    )
    for n in range(7):
        await _invoice(ns_adapter, netsuite, n, T0 - timedelta(minutes=50 - n))
    spec = PollerSpec.model_validate(
        {"kind": "netsuite", "connection": "erp", "start_from": T0 - timedelta(hours=1)}
        | {"page_size": 5}
    )
    poller = build_poller("invoices", spec, ns_adapter, ingress, log, clock=Clock(T0))
    netsuite.fail_next(FaultReply("ExceededRequestLimitFault"))
    poller.sleep = Sleeps()
    result = await poller.poll_once()

    assert (result.pages, result.accepted, result.retries) == (2, 7, 1)
    event = events(log)[0]
    assert event["type"] == "finance.invoice.posted.v1"
    assert event["subject"] == "CUST-1"
    assert event["data"]["currency"] == "USD"
    assert event["data"]["amount"] == 120.0
    assert event["data"]["lines"] == [{"charge_name": "Seats", "amount": 120.0, "tax_amount": 0}]
    assert [r.soap_action for r in netsuite.received][-2:] == ["search", "searchMoreWithId"]


async def test_an_interrupted_netsuite_window_is_read_again_and_repeats_are_dropped(
    netsuite: FakeNetSuite,
    ns_adapter: Adapter,
    ingress: Ingress,
    log: EventLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from platypus.adapter import Request

    await ns_adapter.call(
        Request(action="upsert_customer", payload={"externalId": "CUST-1", "companyName": "Acme"})
    )
    for n in range(7):
        await _invoice(ns_adapter, netsuite, n, T0 - timedelta(minutes=50 - n))
    spec = PollerSpec.model_validate(
        {"kind": "netsuite", "connection": "erp", "start_from": T0 - timedelta(hours=1)}
        | {"page_size": 5}
    )
    poller = build_poller("invoices", spec, ns_adapter, ingress, log, clock=Clock(T0))
    original = poller.source.page

    async def stops_before_page_two(since: Any, until: Any, cursor: Any) -> Any:
        if cursor is not None:
            raise RuntimeError("the process stopped")
        return await original(since, until, cursor)

    monkeypatch.setattr(poller.source, "page", stops_before_page_two)
    with pytest.raises(RuntimeError):
        await poller.poll_once()
    assert len(events(log)) == 5

    restarted = build_poller("invoices", spec, ns_adapter, ingress, log, clock=Clock(T0))
    result = await restarted.poll_once()

    # The searchId died with the process: the window is read again from page 1.
    assert (result.pages, result.accepted, result.duplicates) == (2, 2, 5)
    assert len(events(log)) == 7


# -- configuration --------------------------------------------------------------------------


def test_an_unknown_preset_or_query_setting_is_a_configuration_error(
    sf_adapter: Adapter, ingress: Ingress, log: EventLog
) -> None:
    with pytest.raises(ConfigurationError, match="no preset 'nope'"):
        sf_poller(sf_adapter, ingress, log, mapping="nope")
    with pytest.raises(ConfigurationError, match=r"pollers\.won\.query"):
        sf_poller(sf_adapter, ingress, log, query={"sobjekt": "Lead"})
