"""The Okta and Coupa catalog flows, end to end, on the embedded runtime against the fakes.

The real adapters, built from the repository's platypus.yaml, write to the
loopback fakes; the okta and coupa pollers run as `platypus run` would run them
(``pollers:`` in platypus.yaml), here one poll at a time with the clock set:

* a hire becomes a STAGED Okta user in the department's groups; on the start
  date the okta poller finds it and start-date-to-okta activates it;
* a termination deactivates the Okta user, revokes its sessions and freezes the
  Salesforce login;
* an approved Coupa invoice, found by the coupa poller, becomes one NetSuite
  vendor bill and is marked exported in Coupa.

Each is replayed, in the same runtime and in one that lost its state, to show
that no second record appears.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree

from platypus.flow.loader import load_flows
from platypus.records import EVENTS_TOPIC, NewRecord
from platypus.runtime.embedded import Platypus
from platypus.sources.pollers import PollerSpec, build_poller
from tests.catalog.conftest import REPO, Vendors, catalog_config
from tests.fakes.netsuite import StoredRecord

SAMPLES = REPO / "samples"


def sample(flow: str, **data: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAMPLES / f"{flow}.event.json").read_text())
    event["data"].update(data)
    return event


@asynccontextmanager
async def catalog(vendors: Vendors, data_dir: Path) -> AsyncIterator[Platypus]:
    app = Platypus(catalog_config(vendors, data_dir), load_flows(REPO / "flows"))
    await app.start(http=False)
    try:
        yield app
    finally:
        await app.stop()


async def run(app: Platypus, *events: dict[str, Any]) -> None:
    for event in events:
        result = await app.ingress.accept(
            json.dumps(event).encode(), "application/cloudevents+json"
        )
        assert result.status == 202, result.body
    await app.drain()


async def replay(app: Platypus, event: dict[str, Any]) -> None:
    raw = json.dumps(event).encode()
    await app.log.append(EVENTS_TOPIC, [NewRecord(key=event["subject"], value=raw)])
    await app.drain()


def outcomes(app: Platypus, flow: str) -> list[tuple[str, str]]:
    return sorted((r["event_id"], r["status"]) for r in app.log.outcomes() if r["flow"] == flow)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def poll(app: Platypus, kind: str, now: datetime, **spec: Any) -> Any:
    """One poll of the catalog's poller of ``kind``, through the app's own connection."""
    poller = build_poller(
        f"catalog_{kind}",
        PollerSpec.model_validate({"kind": kind, "connection": kind, **spec}),
        app.connections.get(kind),
        app.ingress,
        app.log,
        clock=Clock(now),
    )
    result = await poller.poll_once()
    await app.drain()
    return result


# -- joiners: staged before the first day, active on it --------------------------------------


async def test_a_hire_is_staged_in_okta_in_its_groups_and_activated_on_the_start_date(
    vendors: Vendors, tmp_path: Path
) -> None:
    okta = vendors.okta
    okta.add_group("Department - Finance")
    okta.add_group("All Employees")
    hire = sample("hire-to-okta")  # Ada Quill, Finance, starts 2026-12-01

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, hire)
        [user] = okta.users_with_login("ada.quill@example.com")
        staged_status = user["status"]
        await replay(app, hire)

        # The day before: the poller finds no one due.
        before = await poll(app, "okta", datetime(2026, 11, 30, 9, tzinfo=UTC))
        # On the start date it finds Ada, and start-date-to-okta activates her.
        on_the_day = await poll(app, "okta", datetime(2026, 12, 1, 8, tzinfo=UTC))
        # A later poll finds no one: Ada is no longer staged.
        after = await poll(app, "okta", datetime(2026, 12, 1, 9, tzinfo=UTC))
        activations = outcomes(app, "start-date-to-okta")

    assert staged_status == "STAGED"
    assert len(okta.users_with_login("ada.quill@example.com")) == 1
    assert user["profile"]["startDate"] == "2026-12-01"
    assert user["profile"]["employeeNumber"] == "W-10042"
    assert okta.groups_of(user["id"]) == {"Department - Finance", "All Employees"}
    assert (before.accepted, on_the_day.accepted, after.records) == (0, 1, 0)
    assert activations == [(f"started:{user['id']}:2026-12-01", "delivered")]
    assert okta.users[user["id"]]["status"] == "PROVISIONED"  # activated; no password yet
    assert okta.activation_emails == [user["id"]]


async def test_a_hire_replayed_by_a_runtime_that_lost_its_state_makes_no_second_okta_user(
    vendors: Vendors, tmp_path: Path
) -> None:
    vendors.okta.add_group("Department - Finance")
    vendors.okta.add_group("All Employees")
    hire = sample("hire-to-okta")

    async with catalog(vendors, tmp_path / "first") as app:
        await run(app, hire)
    async with catalog(vendors, tmp_path / "second") as app:
        await run(app, hire)
        results = outcomes(app, "hire-to-okta")

    assert results == [("evt-ppl-0011", "delivered")]
    assert len(vendors.okta.users_with_login("ada.quill@example.com")) == 1


async def test_a_hire_for_a_department_without_an_okta_group_is_dead_lettered(
    vendors: Vendors, tmp_path: Path
) -> None:
    vendors.okta.add_group("All Employees")
    hire = sample("hire-to-okta")

    async with catalog(vendors, tmp_path / "data") as app:
        await run(app, hire)
        results = outcomes(app, "hire-to-okta")

    assert results == [("evt-ppl-0011", "dead_lettered")]
    assert vendors.okta.users_with_login("ada.quill@example.com") == []


# -- leavers: no access after the last day ------------------------------------------------


async def test_a_termination_deactivates_okta_clears_its_sessions_and_freezes_salesforce(
    vendors: Vendors, tmp_path: Path
) -> None:
    okta, salesforce = vendors.okta, vendors.salesforce
    leaver = okta.add_user(
        login="cy.departed@example.com",
        email="cy.departed@example.com",
        firstName="Cy",
        lastName="Departed",
        employeeNumber="W-10013",
    )
    sf_user = salesforce.insert(
        "User", Username="cy.departed@acme.test", FederationIdentifier="cy.departed@example.com"
    )
    sf_login = salesforce.insert("UserLogin", UserId=sf_user, IsFrozen=False)
    termination = sample("termination-to-access-removal")

    async with catalog(vendors, tmp_path / "first") as app:
        await run(app, termination)
        await replay(app, termination)
        first = outcomes(app, "termination-to-access-removal")
    sessions_after_first_runtime = list(okta.sessions_revoked)
    # A runtime that lost its state sends every step again: each finds it done.
    async with catalog(vendors, tmp_path / "second") as app:
        await run(app, termination)
        second = outcomes(app, "termination-to-access-removal")

    assert first == [("evt-ppl-0012", "delivered")] * 2
    assert second == [("evt-ppl-0012", "delivered")]
    assert okta.users[leaver]["status"] == "DEPROVISIONED"
    assert sessions_after_first_runtime == [(leaver, True)]
    assert salesforce.count("UserLogin", Id=sf_login, IsFrozen=True) == 1
    freezes = [r for r in salesforce.requests if r.path.endswith(f"/UserLogin/{sf_login}")]
    assert len(freezes) == 1  # the lost-state replay found the login frozen already


# -- procure-to-pay --------------------------------------------------------------------------


def netsuite_vendor(vendors: Vendors, external_id: str) -> None:
    """A NetSuite vendor, as supplier master data the ERP already holds."""
    vendors.netsuite.records[("vendor", external_id)] = StoredRecord(
        "vendor", external_id, "4001", etree.Element("record")
    )


PURCHASES = "urn:purchases_2023_2.transactions.webservices.netsuite.com"


async def test_an_approved_coupa_invoice_becomes_one_netsuite_vendor_bill_and_is_marked_exported(
    vendors: Vendors, tmp_path: Path
) -> None:
    coupa, netsuite = vendors.coupa, vendors.netsuite
    now = datetime.now(UTC).replace(microsecond=0)
    supplier = coupa.add_supplier("Acme Office Supply", "V-100")
    netsuite_vendor(vendors, "V-100")
    invoice = coupa.add_invoice("INV-7781", supplier, updated_at=now - timedelta(minutes=3))
    window = {"start_from": (now - timedelta(hours=1)).isoformat()}

    async with catalog(vendors, tmp_path / "data") as app:
        first = await poll(app, "coupa", now, **window)
        again = await poll(app, "coupa", now + timedelta(minutes=5), **window)
        results = outcomes(app, "coupa-invoice-to-netsuite")
        [event] = [json.loads(r.value) for r in app.log.read(EVENTS_TOPIC)]
        await replay(app, event)
        replayed = outcomes(app, "coupa-invoice-to-netsuite")
    async with catalog(vendors, tmp_path / "second") as app:
        await run(app, event)  # a runtime that lost its state: NetSuite upserts by externalId

    assert (first.accepted, again.records) == (1, 0)  # exported: not read again
    assert results == [(event["id"], "delivered")]
    assert replayed == [(event["id"], "delivered")] * 2
    assert coupa.invoice(invoice)["exported"] is True
    bill = netsuite.record("vendorBill", f"coupa-invoice-{invoice}")
    assert bill is not None
    assert [r.type for r in netsuite.records.values()].count("vendorBill") == 1
    assert bill.upserts == 2  # once per runtime: the same runtime's replay sent nothing
    tran_id = bill.xml.find(f"{{{PURCHASES}}}tranId")
    tran_date = bill.xml.find(f"{{{PURCHASES}}}tranDate")
    assert tran_id is not None
    assert tran_id.text == "INV-7781"
    assert tran_date is not None
    assert (tran_date.text or "").startswith("2026-11-03")
    lines = bill.xml.findall(f"{{{PURCHASES}}}expenseList/{{{PURCHASES}}}expense")
    accounts = [line.find(f"{{{PURCHASES}}}account").get("externalId") for line in lines]  # type: ignore[union-attr]
    assert accounts == ["6100-IT", "6900-FREIGHT"]
    assert [line.findtext(f"{{{PURCHASES}}}amount") for line in lines] == ["450.0", "20.0"]


async def test_a_coupa_invoice_of_a_supplier_netsuite_lacks_is_dead_lettered_and_stays_unexported(
    vendors: Vendors, tmp_path: Path
) -> None:
    coupa = vendors.coupa
    now = datetime.now(UTC).replace(microsecond=0)
    supplier = coupa.add_supplier("New Supplier Ltd", "V-999")
    invoice = coupa.add_invoice("INV-1", supplier, updated_at=now - timedelta(minutes=1))

    async with catalog(vendors, tmp_path / "data") as app:
        await poll(app, "coupa", now, start_from=(now - timedelta(hours=1)).isoformat())
        results = outcomes(app, "coupa-invoice-to-netsuite")

    assert [status for _, status in results] == ["dead_lettered"]
    assert coupa.invoice(invoice)["exported"] is False
    assert vendors.netsuite.record("vendorBill", f"coupa-invoice-{invoice}") is None
