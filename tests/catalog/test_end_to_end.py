"""Every catalog flow, run on the embedded runtime against the loopback vendor fakes.

The real adapters, built from the repository's platypus.yaml, write to the fakes
of tests/fakes/. Each test checks the records left at the vendors, and that a
replay of the same event leaves no second one: a replay in the same runtime (the
event appended to the log again, as `platypus dlq replay` does; the runtime's
delivery records skip what was delivered), and, for the quote-to-cash flows, a
replay after the runtime lost all of its state, where only the vendors'
idempotency stands between a replay and a duplicate.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from platypus.flow.loader import load_flows
from platypus.keys import ordering_key
from platypus.records import DEAD_LETTER_TOPIC, EVENTS_TOPIC, NewRecord
from platypus.runtime.embedded import Platypus
from tests.catalog.conftest import REPO, Vendors, catalog_config
from tests.fakes.netsuite import StatusReply
from tests.fakes.zuora import Slow

SAMPLES = REPO / "samples"


def sample(flow: str, **data: Any) -> dict[str, Any]:
    """The flow's sample event, with ``data`` fields replaced."""
    event: dict[str, Any] = json.loads((SAMPLES / f"{flow}.event.json").read_text())
    event["data"].update(data)
    return event


@asynccontextmanager
async def catalog(vendors: Vendors, data_dir: Path) -> AsyncIterator[Platypus]:
    """The catalog's flows on the embedded runtime, writing to the fakes."""
    app = Platypus(catalog_config(vendors, data_dir), load_flows(REPO / "flows"))
    await app.start(http=False)
    try:
        yield app
    finally:
        await app.stop()


async def run(app: Platypus, *events: dict[str, Any]) -> None:
    """Take each event in at the ingress, then wait for every outcome."""
    for event in events:
        result = await app.ingress.accept(
            json.dumps(event).encode(), "application/cloudevents+json"
        )
        assert result.status == 202, result.body
    await app.drain()


async def replay(app: Platypus, event: dict[str, Any]) -> None:
    """Append the same event to the log again, past the ingress's duplicate check."""
    raw = json.dumps(event).encode()
    key = ordering_key(event, app.config.ordering)  # the key a replay gets
    await app.log.append(EVENTS_TOPIC, [NewRecord(key=key, value=raw)])
    await app.drain()


def outcomes(app: Platypus) -> list[tuple[str, str, str]]:
    return sorted((r["event_id"], r["flow"], r["status"]) for r in app.log.outcomes())


def seed_account(vendors: Vendors) -> str:
    """The customer's account in Salesforce; its id is the CRM id everywhere else."""
    return vendors.salesforce.insert("Account", Name="Acme Pty Ltd")


def quote_to_cash_events(account_id: str) -> list[dict[str, Any]]:
    return [
        sample("opportunity-to-subscription", account_id=account_id),
        sample("invoice-to-netsuite", crm_account_id=account_id),
        sample("payment-to-salesforce", crm_account_id=account_id),
    ]


async def test_quote_to_cash_runs_from_closed_won_to_payment_across_three_vendors(
    vendors: Vendors, tmp_path: Path
) -> None:
    account_id = seed_account(vendors)
    closed_won, invoice, payment = quote_to_cash_events(account_id)

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, closed_won)
        [account] = vendors.zuora.accounts_with_crm_id(account_id)
        # The invoice and the payment come from Zuora, on the account the flow created.
        invoice["data"]["account_number"] = account["accountNumber"]
        payment["data"]["account_number"] = account["accountNumber"]
        await run(app, invoice, payment)
        results = outcomes(app)

    assert results == sorted(
        [
            ("evt-q2c-0001", "opportunity-to-subscription", "delivered"),
            ("evt-q2c-0002", "invoice-to-netsuite", "delivered"),
            ("evt-q2c-0003", "payment-to-salesforce", "delivered"),
        ]
    )
    assert account["name"] == "Acme Pty Ltd"
    assert account["billToContact"]["workEmail"] == "jo.billing@acme.example"
    [order] = vendors.zuora.orders.values()
    assert order["existingAccountNumber"] == account["accountNumber"]
    [subscription_number] = order["subscriptionNumbers"]
    customer = vendors.netsuite.record("customer", account_id)
    sales_order = vendors.netsuite.record("salesOrder", "006Kd00000A1b2cAAA")
    netsuite_invoice = vendors.netsuite.record("invoice", "INV-000981")
    assert customer is not None
    assert sales_order is not None
    assert netsuite_invoice is not None
    # Later steps carry the ids earlier steps got back.
    entity = sales_order.field("entity")
    assert entity is not None
    assert entity.get("internalId") == customer.internal_id
    other_ref = sales_order.field("otherRefNum")
    assert other_ref is not None
    assert other_ref.text == subscription_number
    [recorded] = vendors.salesforce.records("Zuora_Payment__c")
    assert recorded["Account__c"] == account_id
    assert recorded["Invoices__c"] == "INV-000981"
    assert vendors.salesforce.count(
        "Account", Id=account_id, Zuora_Account_Number__c=account["accountNumber"]
    )


def vendor_records(vendors: Vendors) -> dict[str, int]:
    """How many records of each kind the quote-to-cash flows leave."""
    return {
        "zuora accounts": len(vendors.zuora.accounts),
        "zuora orders": len(vendors.zuora.orders),
        "netsuite records": len(vendors.netsuite.records),
        "salesforce payments": len(vendors.salesforce.records("Zuora_Payment__c")),
    }


@pytest.mark.parametrize("lost_state", [False, True], ids=["same-runtime", "state-lost"])
async def test_quote_to_cash_replayed_leaves_one_record_of_each(
    vendors: Vendors, tmp_path: Path, lost_state: bool
) -> None:
    account_id = seed_account(vendors)
    closed_won, invoice, payment = quote_to_cash_events(account_id)
    async with catalog(vendors, tmp_path / "first") as app:
        # Events with different subjects run concurrently: the invoice must find
        # the NetSuite customer, so the deal goes first (as it does, days before).
        await run(app, closed_won)
        await run(app, invoice, payment)
        before = vendor_records(vendors)
        if not lost_state:
            for event in (closed_won, invoice, payment):
                await replay(app, event)
    if lost_state:
        # A new runtime with an empty log and ledger: only the vendors can tell.
        async with catalog(vendors, tmp_path / "second") as app:
            await run(app, closed_won)
            await run(app, invoice, payment)
            assert {status for *_, status in outcomes(app)} == {"delivered"}

    assert before == {
        "zuora accounts": 1,
        "zuora orders": 1,
        "netsuite records": 3,  # the customer, the sales order, the invoice
        "salesforce payments": 1,
    }
    assert vendor_records(vendors) == before
    # The same runtime knows which steps it delivered and sends none again; a
    # runtime that lost its state sends every write again, and the vendors keep one
    # record each: Zuora replays the answer stored for the Idempotency-Key, the
    # account is found by its CRM id, NetSuite upserts by externalId.
    upserts = {record.upserts for record in vendors.netsuite.records.values()}
    assert upserts == ({2} if lost_state else {1})
    subscription_writes = len(vendors.zuora.requests_to("/v1/orders"))
    assert subscription_writes == (2 if lost_state else 1)


async def test_a_second_deal_of_a_customer_reuses_their_zuora_account(
    vendors: Vendors, tmp_path: Path
) -> None:
    account_id = seed_account(vendors)
    first = sample("opportunity-to-subscription", account_id=account_id)
    second = sample("opportunity-to-subscription", account_id=account_id)
    second.update(id="evt-q2c-0099", subject="006Kd00000Q9r8sAAA")
    second["data"].update(opportunity_id="006Kd00000Q9r8sAAA", amount=4000, close_date="2027-01-15")

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, first)
        await run(app, second)

    assert len(vendors.zuora.accounts_with_crm_id(account_id)) == 1
    assert len(vendors.zuora.orders) == 2
    assert vendors.netsuite.count("salesOrder", "006Kd00000Q9r8sAAA") == 1
    assert vendors.netsuite.record("customer", account_id).upserts == 2  # type: ignore[union-attr]


async def test_an_invoice_posted_before_its_deal_is_delivered_once_the_customer_exists(
    vendors: Vendors, tmp_path: Path
) -> None:
    account_id = seed_account(vendors)
    closed_won, invoice, _payment = quote_to_cash_events(account_id)
    number = invoice["data"]["invoice_number"]
    tried = f'externalId="{number}"'.encode()

    async with catalog(vendors, tmp_path / "data") as app:
        accepted = await app.ingress.accept(
            json.dumps(invoice).encode(), "application/cloudevents+json"
        )
        assert accepted.status == 202
        # NetSuite has no customer yet: the invoice is refused, and refused again.
        deadline = time.monotonic() + 30
        while sum(tried in r.body for r in vendors.netsuite.received) < 3:
            assert time.monotonic() < deadline, "the invoice was not retried"
            await asyncio.sleep(0.05)
        assert vendors.netsuite.record("invoice", number) is None
        # The deal comes later and creates the customer; nobody replays anything.
        await run(app, closed_won)
        results = outcomes(app)
        letters = app.log.read(DEAD_LETTER_TOPIC)

    assert results == sorted(
        [
            ("evt-q2c-0001", "opportunity-to-subscription", "delivered"),
            ("evt-q2c-0002", "invoice-to-netsuite", "delivered"),
        ]
    )
    assert letters == []
    netsuite_invoice = vendors.netsuite.record("invoice", number)
    assert netsuite_invoice is not None
    entity = netsuite_invoice.field("entity")
    assert entity is not None
    assert entity.get("externalId") == account_id


async def test_two_deals_of_one_customer_at_once_make_one_zuora_account(
    vendors: Vendors, tmp_path: Path
) -> None:
    account_id = seed_account(vendors)
    first = sample("opportunity-to-subscription", account_id=account_id)
    second = sample("opportunity-to-subscription", account_id=account_id)
    second.update(id="evt-q2c-0098", subject="006Kd00000Q9r8tAAA")
    second["data"].update(opportunity_id="006Kd00000Q9r8tAAA", amount=4000)
    # Slow lookups: run side by side, both deals would find no account and create one.
    vendors.zuora.fail_next("/v1/action/query", Slow(0.3), Slow(0.3))

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, first, second)  # both accepted before either is done
        results = outcomes(app)

    assert {status for *_, status in results} == {"delivered"}
    assert len(vendors.zuora.accounts_with_crm_id(account_id)) == 1
    assert len(vendors.zuora.orders) == 2


async def test_a_hire_is_announced_once_and_becomes_one_contact_even_when_replayed(
    vendors: Vendors, tmp_path: Path
) -> None:
    hire = sample("hire-to-onboarding")
    contingent = sample("hire-to-onboarding", worker_id="W-10043", worker_type="contingent")
    contingent.update(id="evt-ppl-0003", subject="W-10043")

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, hire, contingent)
        await replay(app, hire)
        results = outcomes(app)

    assert ("evt-ppl-0003", "hire-to-onboarding", "filtered") in results
    [contact] = vendors.salesforce.records("Contact")
    assert contact["Workday_Worker_Id__c"] == "W-10042"
    assert contact["Email"] == "ada.quill@example.com"
    announcement, reply = vendors.slack.posted("#it-onboarding")
    assert "Ada Quill (W-10042)" in announcement["text"]
    assert reply["thread_ts"] == announcement["ts"]
    assert reply["text"] == f"Salesforce contact {contact['Id']} is set up."


async def test_a_termination_asks_it_to_offboard_and_an_involuntary_one_alerts_security(
    vendors: Vendors, tmp_path: Path
) -> None:
    voluntary = sample("termination-to-offboarding")
    involuntary = sample(
        "termination-to-offboarding",
        worker_id="W-10014",
        termination_type="involuntary",
        reason="Gross misconduct",
    )
    involuntary.update(id="evt-ppl-0004", subject="W-10014")

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, voluntary, involuntary)
        await replay(app, involuntary)

    offboarding = [m["text"] for m in vendors.slack.posted("#it-offboarding")]
    alerts = [m["text"] for m in vendors.slack.posted("#security-alerts")]
    assert len(offboarding) == 2
    assert len(alerts) == 1
    assert "W-10014" in alerts[0]
    assert not any("misconduct" in text.lower() for text in offboarding + alerts)
    contacts = vendors.salesforce.records("Contact")
    assert sorted(c["Workday_Worker_Id__c"] for c in contacts) == ["W-10013", "W-10014"]
    assert {c["Employment_Status__c"] for c in contacts} == {"Terminated"}


async def test_a_vendor_refusal_dead_letters_the_event_with_its_flow_and_step(
    vendors: Vendors, tmp_path: Path
) -> None:
    # NetSuite refuses the invoice's data: no retry can book it.
    account_id = seed_account(vendors)
    closed_won, invoice, _payment = quote_to_cash_events(account_id)

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, closed_won)
        vendors.netsuite.fail_next(
            StatusReply("INVALID_FLD_VALUE", "Invalid Field Value ZUORA-SUBSCRIPTION for item")
        )
        await run(app, invoice)
        [row] = [r for r in app.log.outcomes() if r["event_id"] == "evt-q2c-0002"]

    assert (row["flow"], row["status"]) == ("invoice-to-netsuite", "dead_lettered")
    assert vendors.netsuite.count("invoice", "INV-000981") == 0
