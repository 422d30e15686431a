"""The pollers that live in their vendors' adapter folders (okta, coupa), against loopback fakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from platypus.exceptions import ConfigurationError
from platypus.ingress import Ingress
from platypus.records import EVENTS_TOPIC
from platypus.runtime.embedded import EventLog
from platypus.sources.pollers import PollerSpec, build_poller
from platypus.sources.pollers.sources import source_class
from platypus_adapters.coupa import CoupaAdapter
from platypus_adapters.coupa.poller import CoupaInvoiceSource
from platypus_adapters.okta import OktaAdapter
from platypus_adapters.okta.poller import OktaStartDateSource
from tests.fakes.coupa import FakeCoupa, Reply
from tests.fakes.okta import FakeOkta


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


def events(log: EventLog) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in log.read(EVENTS_TOPIC)]


def test_the_vendor_poller_kinds_are_found_in_their_adapter_folders() -> None:
    assert source_class("okta") is OktaStartDateSource
    assert source_class("coupa") is CoupaInvoiceSource


# -- okta: staged users whose start date has come ------------------------------------------


@pytest.fixture(scope="module")
def _okta_server() -> Iterator[FakeOkta]:
    fake = FakeOkta()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def okta(
    _okta_server: FakeOkta, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeOkta, OktaAdapter]]:
    _okta_server.reset()
    monkeypatch.setenv("POLL_OKTA_TOKEN", FakeOkta.api_token)
    adapter = OktaAdapter.from_config(
        {
            "org_url": _okta_server.url,
            "auth": {"type": "api_token", "token": {"env": "POLL_OKTA_TOKEN"}},
            "ca_bundle": str(_okta_server.ca_path),
            "timeout": 2,
        },
        connection="okta",
    )
    await adapter.start()
    yield _okta_server, adapter  # type: ignore[misc]
    await adapter.close()


def okta_poller(adapter: Any, ingress: Ingress, log: EventLog, now: datetime, **query: Any) -> Any:
    spec = PollerSpec.model_validate(
        {"kind": "okta", "connection": "okta", "page_size": 2, "query": query}
    )
    return build_poller("start_dates", spec, adapter, ingress, log, clock=Clock(now))


def joiner(fake: FakeOkta, n: int, start: str, status: str = "STAGED") -> str:
    return fake.add_user(
        status=status,
        login=f"joiner{n}@example.com",
        email=f"joiner{n}@example.com",
        firstName="Joiner",
        lastName=str(n),
        employeeNumber=f"W-{n}",
        startDate=start,
    )


async def test_staged_users_whose_start_date_has_come_become_started_events_once(
    okta: tuple[FakeOkta, OktaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = okta
    due = [joiner(fake, n, "2026-12-01") for n in range(3)]
    late = joiner(fake, 3, "2026-11-20")  # the hire came after the start date
    joiner(fake, 4, "2026-12-02")  # tomorrow
    joiner(fake, 5, "2026-12-01", status="ACTIVE")  # activated already
    poller = okta_poller(adapter, ingress, log, datetime(2026, 12, 1, 9, 0, tzinfo=UTC))

    first = await poller.poll_once()
    second = await poller.poll_once()

    started = events(log)
    assert sorted(e["data"]["okta_user_id"] for e in started) == sorted([*due, late])
    assert (first.accepted, second.accepted, second.duplicates) == (4, 0, 4)
    event = next(e for e in started if e["data"]["okta_user_id"] == due[0])
    assert event["type"] == "people.worker.started.v1"
    assert event["id"] == f"started:{due[0]}:2026-12-01"
    assert event["subject"] == "W-0"
    assert event["data"] == {
        "worker_id": "W-0",
        "start_date": "2026-12-01",
        "work_email": "joiner0@example.com",
        "first_name": "Joiner",
        "last_name": "0",
        "okta_user_id": due[0],
    }
    searches = [r.query for r in fake.requests_to("/api/v1/users")]
    assert len(searches) >= 3  # five due users, two a page


async def test_today_is_the_date_in_the_pollers_time_zone(
    okta: tuple[FakeOkta, OktaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = okta
    sydney = joiner(fake, 1, "2026-12-01")
    at = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # already 1 December in Sydney

    await okta_poller(adapter, ingress, log, at).poll_once()
    assert events(log) == []
    await okta_poller(adapter, ingress, log, at, timezone="Australia/Sydney").poll_once()
    assert [e["data"]["okta_user_id"] for e in events(log)] == [sydney]


async def test_a_staged_user_without_an_employee_number_is_refused_and_recorded(
    okta: tuple[FakeOkta, OktaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = okta
    fake.add_user(
        status="STAGED",
        login="nobody@example.com",
        email="nobody@example.com",
        firstName="No",
        lastName="Number",
        startDate="2026-12-01",
    )
    joiner(fake, 1, "2026-12-01")

    result = await okta_poller(adapter, ingress, log, datetime(2026, 12, 1, tzinfo=UTC)).poll_once()

    assert (result.accepted, result.rejected) == (1, 1)
    [rejection] = log.rejected()
    assert rejection["reason"].startswith("poller start_dates: ")


def test_an_unknown_time_zone_is_refused_naming_the_poller(
    okta: tuple[FakeOkta, OktaAdapter], ingress: Ingress, log: EventLog
) -> None:
    _, adapter = okta
    with pytest.raises(ConfigurationError, match=r"pollers\.start_dates\.query.*time zone"):
        okta_poller(adapter, ingress, log, datetime.now(UTC), timezone="Mars/Olympus")


# -- coupa: approved invoices not exported yet --------------------------------------------------


@pytest.fixture(scope="module")
def _coupa_server() -> Iterator[FakeCoupa]:
    fake = FakeCoupa()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def coupa(
    _coupa_server: FakeCoupa, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeCoupa, CoupaAdapter]]:
    _coupa_server.reset()
    monkeypatch.setenv("POLL_COUPA_ID", FakeCoupa.client_id)
    monkeypatch.setenv("POLL_COUPA_SECRET", FakeCoupa.client_secret)
    adapter = CoupaAdapter.from_config(
        {
            "base_url": _coupa_server.url,
            "client_id": {"env": "POLL_COUPA_ID"},
            "client_secret": {"env": "POLL_COUPA_SECRET"},
            "ca_bundle": str(_coupa_server.ca_path),
            "token_warmup": 0,
            "timeout": 2,
        },
        connection="coupa",
    )
    await adapter.start()
    yield _coupa_server, adapter  # type: ignore[misc]
    await adapter.close()


T0 = datetime.now(UTC).replace(microsecond=0)


def coupa_poller(adapter: Any, ingress: Ingress, log: EventLog, clock: Clock, **extra: Any) -> Any:
    spec = PollerSpec.model_validate(
        {
            "kind": "coupa",
            "connection": "coupa",
            "start_from": (T0 - timedelta(hours=1)).isoformat(),
            **extra,
        }
    )
    return build_poller(
        "supplier_invoices", spec, adapter, ingress, log, clock=clock, sleep=Sleeps()
    )


async def test_an_approved_invoice_becomes_a_typed_event_with_its_lines_dates_and_amounts(
    coupa: tuple[FakeCoupa, CoupaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = coupa
    supplier = fake.add_supplier("Acme Supplies", "V-100")
    invoice = fake.add_invoice("INV-7781", supplier, updated_at=T0 - timedelta(minutes=5))
    fake.add_invoice("INV-7782", supplier, status="pending_approval", updated_at=T0)
    poller = coupa_poller(adapter, ingress, log, Clock(T0))

    result = await poller.poll_once()

    [event] = events(log)
    assert result.accepted == 1
    stamp = fake.invoice(invoice)["updated-at"]
    assert event["type"] == "finance.coupa.invoice.approved.v1"
    assert event["source"] == "/coupa/poller/supplier_invoices"
    assert event["id"] == f"coupa.invoice.approved:{invoice}:{stamp}"
    assert event["subject"] == str(invoice)
    data = event["data"]
    assert data["invoice_number"] == "INV-7781"
    assert data["supplier"] == {"id": str(supplier), "number": "V-100", "name": "Acme Supplies"}
    assert (data["invoice_date"], data["due_date"]) == ("2026-11-03", "2026-12-03")
    assert (data["currency"], data["total"], data["payment_term"]) == ("USD", "470.00", "Net 30")
    assert data["lines"][1] == {
        "line_num": 2,
        "description": "Delivery",
        "amount": "20.00",
        "quantity": "1.0",
        "unit_price": "20.00",
        "account_code": "6900-FREIGHT",
        "po_number": None,
    }
    saved = poller.checkpoint()
    assert saved is not None
    assert saved.watermark == T0


async def test_overlap_reads_add_nothing_and_exported_invoices_are_not_read_again(
    coupa: tuple[FakeCoupa, CoupaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = coupa
    supplier = fake.add_supplier("Acme Supplies", "V-100")
    first = fake.add_invoice("INV-1", supplier, updated_at=T0 - timedelta(minutes=2))
    second = fake.add_invoice("INV-2", supplier, updated_at=T0 - timedelta(minutes=1))
    clock = Clock(T0)
    poller = coupa_poller(adapter, ingress, log, clock)
    await poller.poll_once()
    # The ERP took the first invoice: it is marked exported, as the catalog's flow does.
    await adapter.call(_request("mark_invoice_exported", id=str(first)))

    clock.now = T0 + timedelta(minutes=1)  # the overlap reaches back over both again
    again = await poller.poll_once()

    assert sorted(e["data"]["invoice_id"] for e in events(log)) == [str(first), str(second)]
    assert (again.records, again.accepted, again.duplicates) == (1, 0, 1)


async def test_an_invoice_sent_back_by_ap_after_an_edit_is_a_new_event(
    coupa: tuple[FakeCoupa, CoupaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = coupa
    supplier = fake.add_supplier("Acme Supplies", "V-100")
    invoice = fake.add_invoice("INV-1", supplier, updated_at=T0 - timedelta(minutes=10))
    clock = Clock(T0)
    poller = coupa_poller(adapter, ingress, log, clock)
    await poller.poll_once()
    await adapter.call(_request("mark_invoice_exported", id=str(invoice)))
    # AP corrects the invoice in Coupa's UI, which clears its export flag.
    edited = T0 + timedelta(minutes=20)
    fake.records["invoices"][invoice].update(
        {"exported": False, "updated-at": edited.isoformat(timespec="seconds")}
    )

    clock.now = T0 + timedelta(minutes=30)
    result = await poller.poll_once()

    assert result.accepted == 1
    both = events(log)
    assert [e["subject"] for e in both] == [str(invoice)] * 2
    assert len({e["id"] for e in both}) == 2
    assert edited.isoformat(timespec="seconds") in {e["id"].split(":", 2)[2] for e in both}


async def test_sixty_invoices_are_read_in_pages_of_fifty_by_id(
    coupa: tuple[FakeCoupa, CoupaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = coupa
    supplier = fake.add_supplier("Acme Supplies", "V-100")
    ids = [
        fake.add_invoice(f"INV-{n}", supplier, updated_at=T0 - timedelta(seconds=n))
        for n in range(60)
    ]

    result = await coupa_poller(adapter, ingress, log, Clock(T0)).poll_once()

    assert (result.pages, result.accepted) == (2, 60)
    assert sorted(int(e["subject"]) for e in events(log)) == ids
    pages = fake.requests_to("/api/invoices")
    assert "id%5Bgt%5D" not in pages[0].query
    assert f"id%5Bgt%5D={ids[49]}" in pages[1].query


async def test_coupa_rate_limiting_makes_the_poller_wait_and_read_the_page_again(
    coupa: tuple[FakeCoupa, CoupaAdapter], ingress: Ingress, log: EventLog
) -> None:
    fake, adapter = coupa
    supplier = fake.add_supplier("Acme Supplies", "V-100")
    fake.add_invoice("INV-1", supplier, updated_at=T0 - timedelta(minutes=1))
    fake.fail_next(
        "/api/invoices", Reply(429, {"errors": ["Too many requests"]}, {"Retry-After": "3"})
    )
    poller = coupa_poller(adapter, ingress, log, Clock(T0))

    result = await poller.poll_once()

    assert (result.retries, result.accepted) == (1, 1)
    assert poller.sleep.delays == [3.0]


def _request(action: str, **payload: Any) -> Any:
    from platypus.adapter import Request

    return Request(action=action, payload=payload, event_id="evt-poller-test")
