"""``netsuite.upsert_vendor_bill``: a SuiteTalk 2023.2 VendorBill, checked against the WSDL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from lxml import etree

from platypus.adapter import Request
from platypus.exceptions import MissingDependencyError, PermanentError
from platypus_adapters.netsuite import NetSuiteAdapter
from platypus_adapters.netsuite.records import UpsertVendorBillResult
from tests.fakes.netsuite import Credentials, FakeNetSuite, StoredRecord, wsdl_path

CREDENTIALS = Credentials(
    account="1234567_SB1",
    consumer_key="ck-bills-1f2e",
    consumer_secret="netsuite-consumer-secret-bills",
    token_id="tok-bills-77",
    token_secret="netsuite-token-secret-bills",
)
PURCHASES = "urn:purchases_2023_2.transactions.webservices.netsuite.com"
CORE = "urn:core_2023_2.platform.webservices.netsuite.com"

pytestmark = pytest.mark.skipif(
    not wsdl_path().exists(), reason=f"the NetSuite WSDL is not at {wsdl_path()}"
)


@pytest.fixture(scope="module")
def _netsuite_server() -> Iterator[FakeNetSuite]:
    with FakeNetSuite(CREDENTIALS) as fake:
        yield fake


@pytest.fixture
def netsuite(_netsuite_server: FakeNetSuite, monkeypatch: pytest.MonkeyPatch) -> FakeNetSuite:
    monkeypatch.setenv("NS_BILLS_CONSUMER_SECRET", CREDENTIALS.consumer_secret)
    monkeypatch.setenv("NS_BILLS_TOKEN_SECRET", CREDENTIALS.token_secret)
    _netsuite_server.reset()
    return _netsuite_server


@pytest.fixture
async def adapter(netsuite: FakeNetSuite) -> AsyncIterator[NetSuiteAdapter]:
    started = NetSuiteAdapter.from_config(
        {
            "account": CREDENTIALS.account,
            "consumer_key": CREDENTIALS.consumer_key,
            "consumer_secret": {"env": "NS_BILLS_CONSUMER_SECRET"},
            "token_id": CREDENTIALS.token_id,
            "token_secret": {"env": "NS_BILLS_TOKEN_SECRET"},
            "wsdl": str(wsdl_path()),
            "endpoint": netsuite.endpoint,
            "timeout": 5,
        },
        connection="erp",
    )
    assert isinstance(started, NetSuiteAdapter)
    await started.start()
    yield started
    await started.close()


def vendor(fake: FakeNetSuite, external_id: str = "V-100") -> None:
    """A vendor NetSuite already has (vendors come from the ERP's master data)."""
    fake.records[("vendor", external_id)] = StoredRecord(
        "vendor", external_id, "4001", etree.Element(f"{{{CORE}}}record")
    )


def bill(**extra: Any) -> Request:
    return Request(
        action="upsert_vendor_bill",
        payload={
            "externalId": "coupa-invoice-301",
            "entity": {"externalId": "V-100"},
            "tranId": "INV-7781",
            "tranDate": "2026-11-03",
            "dueDate": "2026-12-03",
            "memo": "Coupa invoice 301",
            "terms": {"externalId": "Net 30"},
            "expenses": [
                {"account": {"externalId": "6100-IT"}, "amount": 450.0, "memo": "Laptop stands"},
                {
                    "account": {"externalId": "6900-FREIGHT"},
                    "amount": 20.0,
                    "memo": "Delivery",
                    "class": {"internalId": "3"},
                },
            ],
            **extra,
        },
        event_id="evt-bill-1",
    )


def child(record: etree._Element, name: str) -> etree._Element | None:
    return record.find(f"{{{PURCHASES}}}{name}")


async def test_a_vendor_bill_is_upserted_by_external_id_and_passes_the_wsdl(
    netsuite: FakeNetSuite, adapter: NetSuiteAdapter
) -> None:
    vendor(netsuite)

    first = await adapter.call(bill())
    second = await adapter.call(bill(memo="Coupa invoice 301, corrected"))

    assert first == {"internalId": second["internalId"], "externalId": "coupa-invoice-301",
                     "type": "vendorBill"}  # fmt: skip
    UpsertVendorBillResult.model_validate(first)
    stored = netsuite.record("vendorBill", "coupa-invoice-301")
    assert stored is not None
    assert stored.upserts == 2
    assert [r.status for r in netsuite.received] == [200, 200]  # both envelopes schema-valid
    record = stored.xml
    entity = child(record, "entity")
    assert entity is not None
    assert entity.get("externalId") == "V-100"
    assert child(record, "tranId").text == "INV-7781"  # type: ignore[union-attr]
    assert child(record, "memo").text == "Coupa invoice 301, corrected"  # type: ignore[union-attr]
    expenses = record.findall(f"{{{PURCHASES}}}expenseList/{{{PURCHASES}}}expense")
    assert [e.findtext(f"{{{PURCHASES}}}amount") for e in expenses] == ["450.0", "20.0"]
    assert expenses[1].find(f"{{{PURCHASES}}}class").get("internalId") == "3"  # type: ignore[union-attr]


async def test_a_bill_of_a_vendor_netsuite_does_not_have_waits_for_the_vendor(
    netsuite: FakeNetSuite, adapter: NetSuiteAdapter
) -> None:
    # INVALID_KEY_OR_REF on the entity: the vendor may be created any minute, so the
    # step is retried for its dependency_wait before it is dead-lettered.
    with pytest.raises(MissingDependencyError) as caught:
        await adapter.call(bill())

    assert caught.value.vendor_code == "INVALID_KEY_OR_REF"
    assert netsuite.record("vendorBill", "coupa-invoice-301") is None


async def test_a_bill_needs_lines(netsuite: FakeNetSuite, adapter: NetSuiteAdapter) -> None:
    with pytest.raises(PermanentError, match="expense lines or item lines"):
        await adapter.call(bill(expenses=[]))


async def test_item_lines_are_sent_as_the_itemlist(
    netsuite: FakeNetSuite, adapter: NetSuiteAdapter
) -> None:
    vendor(netsuite)

    await adapter.call(
        bill(
            expenses=[],
            items=[{"item": {"externalId": "STAND-1"}, "quantity": 10, "rate": "45.00"}],
        )
    )

    stored = netsuite.record("vendorBill", "coupa-invoice-301")
    assert stored is not None
    [item] = stored.xml.findall(f"{{{PURCHASES}}}itemList/{{{PURCHASES}}}item")
    assert item.findtext(f"{{{PURCHASES}}}rate") == "45.00"
    assert item.find(f"{{{PURCHASES}}}item").get("externalId") == "STAND-1"  # type: ignore[union-attr]
