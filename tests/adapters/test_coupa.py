"""The ``coupa`` adapter: the adapter contract and Coupa's own behaviour, on a loopback fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from platypus.adapter import Adapter, Request
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus_adapters.coupa import RESULTS, CoupaAdapter, CredentialsError
from platypus_adapters.coupa.models import CoupaSettings
from tests.adapters import echoes
from tests.adapters.contract import AdapterContract, Failure
from tests.fakes.coupa import RESET, FakeCoupa, Reply, Slow
from tests.fakes.proxy import TunnelProxy


@pytest.fixture(scope="module")
def _coupa_server() -> Iterator[FakeCoupa]:
    fake = FakeCoupa()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def coupa(_coupa_server: FakeCoupa, monkeypatch: pytest.MonkeyPatch) -> FakeCoupa:
    _coupa_server.reset()
    monkeypatch.setenv("COUPA_CLIENT_ID", FakeCoupa.client_id)
    monkeypatch.setenv("COUPA_CLIENT_SECRET", FakeCoupa.client_secret)
    return _coupa_server


def make_adapter(fake: FakeCoupa, **extra: Any) -> CoupaAdapter:
    adapter = CoupaAdapter.from_config(
        {
            "base_url": fake.url,
            "client_id": {"env": "COUPA_CLIENT_ID"},
            "client_secret": {"env": "COUPA_CLIENT_SECRET"},
            "ca_bundle": str(fake.ca_path),
            # Generous: a loopback call takes ~5 ms, but a busy CI machine can stall the
            # fake for longer than a tight timeout. Timeout cases set their own (1 s).
            "timeout": 5.0,
            "token_warmup": 0,
            **extra,
        },
        connection="coupa",
    )
    assert isinstance(adapter, CoupaAdapter)
    return adapter


@pytest.fixture
async def adapter(coupa: FakeCoupa) -> AsyncIterator[CoupaAdapter]:
    started = make_adapter(coupa)
    await started.start()
    yield started
    await started.close()


async def call(adapter: Adapter, action: str, **payload: Any) -> Any:
    result = await adapter.call(Request(action=action, payload=payload, event_id="evt-x"))
    RESULTS[action].model_validate(result)
    return result


def query_of(request: Any) -> dict[str, list[str]]:
    return parse_qs(request.query)


# -- the contract ----------------------------------------------------------------------------


class TestContract(AdapterContract):
    secret: ClassVar[str] = FakeCoupa.client_secret

    @pytest.fixture
    def vendor(self, coupa: FakeCoupa) -> FakeCoupa:
        return coupa

    def make_adapter(self, vendor: FakeCoupa) -> Adapter:
        return make_adapter(vendor, timeout=1.0)  # the "timeout" failure answers after 2 s

    def write(self, event_id: str) -> Request:
        return Request(
            action="upsert_supplier",
            payload={"number": event_id, "name": f"Supplier {event_id}", "po-method": "email"},
            event_id=event_id,
            flow="suppliers",
            step="upsert",
        )

    def record_count(self, vendor: FakeCoupa, request: Request) -> int:
        return len(vendor.suppliers_numbered(request.payload["number"]))

    def fail_next(self, vendor: FakeCoupa, failure: Failure) -> None:
        path = "/api/suppliers"
        if failure == "permanent":
            refused = Reply(400, {"errors": {"po-method": ["is not included in the list"]}})
            vendor.fail_next(path, refused, method="POST")
        elif failure == "retryable":
            vendor.fail_next(path, Reply(503, "<html>Service Unavailable</html>"), method="POST")
        elif failure == "timeout":
            vendor.fail_next(path, Slow(2.0), method="POST")
        elif failure == "reset":
            vendor.fail_next(path, RESET, method="POST")
        else:
            vendor.expire_tokens()


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://acme.coupahost.com", "https://"),
        ("https://acme.coupahost.com/api", "without a path"),
    ],
)
def test_the_base_url_is_the_instances_https_root(coupa: FakeCoupa, url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        make_adapter(coupa, base_url=url)


# -- OAuth 2.0 --------------------------------------------------------------------------------


async def test_one_token_with_the_connections_scopes_serves_every_call_and_json_is_asked_for(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    for _ in range(3):
        await call(adapter, "find_supplier", number="S-1")

    [token_request] = coupa.requests_to("/oauth2/token")
    form = parse_qs(token_request.body.decode())
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == [FakeCoupa.client_id]
    assert form["scope"][0].split() == [
        "core.common.read",
        "core.invoice.read",
        "core.invoice.write",
        "core.purchase_order.read",
        "core.supplier.read",
        "core.supplier.write",
    ]
    lookups = coupa.requests_to("/api/suppliers")
    assert {r.headers["accept"] for r in lookups} == {"application/json"}


async def test_a_new_token_is_used_only_after_the_warm_up_coupa_advises(coupa: FakeCoupa) -> None:
    coupa.token_delay = 0.3  # the instance refuses a token this young
    coupa.add_supplier("Acme Supplies", "S-1")
    warm = make_adapter(coupa, token_warmup=0.4)
    await warm.start()
    try:
        assert (await call(warm, "find_supplier", number="S-1"))["found"] is True
    finally:
        await warm.close()
    assert [r.status for r in coupa.requests_to("/api/suppliers")] == [200]


async def test_a_scope_the_client_lacks_is_an_alert_naming_the_scopes(coupa: FakeCoupa) -> None:
    coupa.client_scopes.discard("core.supplier.write")
    adapter = make_adapter(coupa)
    await adapter.start()
    try:
        with pytest.raises(CredentialsError, match="lacks one of the scopes") as caught:
            await call(adapter, "find_supplier", number="S-1")
    finally:
        await adapter.close()
    assert caught.value.alert is True
    assert caught.value.vendor_code == "invalid_scope"


async def test_a_wrong_client_secret_is_an_alert_without_the_secret(
    coupa: FakeCoupa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUPA_CLIENT_SECRET", "wrong-secret-1234")
    adapter = make_adapter(coupa)
    await adapter.start()
    try:
        with pytest.raises(CredentialsError, match="invalid_client") as caught:
            await call(adapter, "find_supplier", number="S-1")
    finally:
        await adapter.close()
    assert "wrong-secret-1234" not in str(caught.value)


async def test_a_call_outside_the_tokens_scopes_is_an_alert_naming_the_connections_scopes(
    coupa: FakeCoupa,
) -> None:
    supplier = coupa.add_supplier("Acme Supplies", "S-1")
    invoice = coupa.add_invoice("INV-1", supplier)
    adapter = make_adapter(coupa, scopes=["core.invoice.read"])
    await adapter.start()
    try:
        with pytest.raises(CredentialsError, match=r"scopes do not allow.*core\.invoice\.read"):
            await call(adapter, "mark_invoice_exported", id=str(invoice))
    finally:
        await adapter.close()
    assert coupa.invoice(invoice)["exported"] is False


# -- suppliers --------------------------------------------------------------------------------


async def test_suppliers_are_found_by_number_name_id_or_a_custom_field(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    supplier = coupa.add_supplier(
        "Acme Supplies", "S-1", **{"custom-fields": {"erp-vendor-id": "V-100"}}
    )
    expected = {
        "found": True,
        "id": str(supplier),
        "number": "S-1",
        "name": "Acme Supplies",
        "status": "active",
    }

    assert await call(adapter, "find_supplier", number="S-1") == expected
    assert await call(adapter, "find_supplier", name="Acme Supplies") == expected
    assert await call(adapter, "find_supplier", id=str(supplier)) == expected
    by_reference = await call(
        adapter, "find_supplier", custom_field={"name": "erp-vendor-id", "value": "V-100"}
    )
    assert by_reference == expected
    assert await call(adapter, "find_supplier", number="S-404") == {"found": False} | {
        "id": None,
        "number": None,
        "name": None,
        "status": None,
    }
    assert (await call(adapter, "find_supplier", id="999999"))["found"] is False


async def test_a_supplier_is_created_once_then_updated_by_its_number(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    first = await call(
        adapter,
        "upsert_supplier",
        number="S-7",
        name="Bolt & Nut Ltd",
        **{"po-method": "email", "po-email": "orders@bolt.example"},
    )
    second = await call(
        adapter, "upsert_supplier", number="S-7", name="Bolt & Nut Ltd", status="inactive"
    )

    [stored] = coupa.suppliers_numbered("S-7")
    assert first == {
        "id": str(stored["id"]),
        "number": "S-7",
        "name": "Bolt & Nut Ltd",
        "created": True,
    }
    assert second["created"] is False
    assert stored["status"] == "inactive"
    assert stored["po-email"] == "orders@bolt.example"
    [post] = [r for r in coupa.requests_to("/api/suppliers") if r.method == "POST"]
    assert post.headers["content-type"] == "application/json"
    assert post.json == {
        "number": "S-7",
        "name": "Bolt & Nut Ltd",
        "po-method": "email",
        "po-email": "orders@bolt.example",
    }


async def test_a_supplier_name_coupa_already_has_is_a_permanent_error_with_coupas_reason(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    coupa.add_supplier("Bolt & Nut Ltd", "S-1")

    with pytest.raises(PermanentError, match="name: has already been taken"):
        await call(adapter, "upsert_supplier", number="S-2", name="Bolt & Nut Ltd")


# -- purchase orders and invoices ----------------------------------------------------------------


async def test_a_purchase_order_is_found_by_po_number(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    supplier = coupa.add_supplier("Acme Supplies", "S-1")
    order = coupa.add_purchase_order("PO-4411", supplier)

    result = await call(adapter, "find_purchase_order", po_number="PO-4411")

    assert result == {
        "found": True,
        "id": str(order),
        "po_number": "PO-4411",
        "status": "issued",
        "version": 1,
        "currency": "USD",
        "supplier": {"id": str(supplier), "number": "S-1", "name": "Acme Supplies"},
    }


async def test_an_invoice_reads_compact_with_its_dates_as_coupa_dated_them(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    supplier = coupa.add_supplier("Acme Supplies", "S-1")
    invoice = coupa.add_invoice("INV-1", supplier)

    found = await call(adapter, "find_invoice", invoice_number="INV-1", supplier_number="S-1")
    got = await call(adapter, "get_invoice", id=str(invoice))

    assert found["invoice"] == got
    # 2026-11-03T00:00:00-08:00 is the 3rd where Coupa's company is, the 3rd it stays.
    assert (got["invoice_date"], got["net_due_date"]) == ("2026-11-03", "2026-12-03")
    assert got["total"] == "470.00"
    assert got["currency"] == "USD"
    assert got["supplier"] == {"id": str(supplier), "number": "S-1", "name": "Acme Supplies"}
    assert got["lines"][0] == {
        "line_num": 1,
        "description": "Laptop stands",
        "total": "450.00",
        "quantity": "10.0",
        "price": "45.00",
        "tax_amount": "0.0",
        "account_code": "6100-IT",
        "po_number": None,
        "order_line_id": None,
    }
    [lookup] = coupa.requests_to("/api/invoices")
    asked = query_of(lookup)
    assert asked["invoice_number"] == ["INV-1"]
    assert asked["supplier[number]"] == ["S-1"]
    assert "invoice_lines" in json.dumps(json.loads(asked["fields"][0]))


async def test_approved_invoices_not_yet_exported_are_searched_by_window_and_paged_by_id(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    supplier = coupa.add_supplier("Acme Supplies", "S-1")
    now = datetime.now(UTC)
    wanted = [coupa.add_invoice(f"INV-{n}", supplier, updated_at=now) for n in range(60)]
    coupa.add_invoice("INV-old", supplier, updated_at=now - timedelta(days=3))
    coupa.add_invoice("INV-pending", supplier, status="pending_approval", updated_at=now)
    done = coupa.add_invoice("INV-done", supplier, updated_at=now)
    await call(adapter, "mark_invoice_exported", id=str(done))

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await call(
            adapter,
            "search_invoices",
            status=["approved"],
            exported=False,
            updated_from=(now - timedelta(hours=1)).isoformat(),
            updated_through=(now + timedelta(hours=1)).isoformat(),
            after_id=after,
        )
        pages += 1
        seen += [invoice["id"] for invoice in page["invoices"]]
        if not page["more"]:
            break
        after = page["last_id"]

    assert pages == 2
    assert seen == [str(i) for i in wanted]
    last = coupa.requests_to("/api/invoices")[-1]
    asked = query_of(last)
    assert asked["status"] == ["approved"]
    assert asked["exported"] == ["false"]
    assert asked["id[gt]"] == [str(wanted[49])]
    assert "updated_at[gt_or_eq]" in asked


async def test_marking_an_invoice_exported_is_a_put_with_the_flag_only(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    supplier = coupa.add_supplier("Acme Supplies", "S-1")
    invoice = coupa.add_invoice("INV-1", supplier)

    first = await call(adapter, "mark_invoice_exported", id=str(invoice))
    second = await call(adapter, "mark_invoice_exported", id=str(invoice))

    assert first == second == {"id": str(invoice), "exported": True}
    assert coupa.invoice(invoice)["exported"] is True
    put = next(r for r in coupa.requests if r.method == "PUT")
    assert query_of(put)["exported"] == ["true"]
    assert put.body == b""


# -- errors -----------------------------------------------------------------------------------


async def test_an_answer_in_xml_is_a_permanent_error_that_says_why(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    xml = Reply(200, "<?xml version='1.0'?><supplier/>", {"content-type": "application/xml"})
    coupa.fail_next("/api/suppliers/5", xml)

    with pytest.raises(PermanentError, match="answers XML"):
        await call(adapter, "find_supplier", id="5")


async def test_rate_limiting_is_retryable_after_coupas_retry_after(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    coupa.fail_next(
        "/api/suppliers", Reply(429, {"errors": ["Too many requests"]}, {"Retry-After": "2"})
    )

    with pytest.raises(RetryableError) as caught:
        await call(adapter, "find_supplier", number="S-1")

    assert caught.value.retry_after == 2.0
    assert caught.value.status_code == 429


async def test_two_suppliers_with_one_name_make_a_lookup_fail_rather_than_guess(
    coupa: FakeCoupa, adapter: CoupaAdapter
) -> None:
    coupa.add_supplier("Acme", "S-1", **{"custom-fields": {"erp-vendor-id": "V-1"}})
    coupa.add_supplier("Acme 2", "S-2", **{"custom-fields": {"erp-vendor-id": "V-1"}})

    with pytest.raises(PermanentError, match="2 records match") as caught:
        await call(adapter, "find_supplier", custom_field={"name": "erp-vendor-id", "value": "V-1"})

    assert caught.value.vendor_code == "ambiguous"


def test_an_empty_ca_bundle_from_the_environment_means_unset(coupa: FakeCoupa) -> None:
    adapter = make_adapter(coupa, ca_bundle="", proxy="")
    assert adapter.settings.ca_bundle is None  # type: ignore[attr-defined]
    assert adapter.settings.proxy is None  # type: ignore[attr-defined]


def test_every_setting_is_described_and_unknown_ones_are_refused() -> None:
    for model in (CoupaSettings,):
        assert all(f.description for f in model.model_fields.values()), model.__name__
        assert model.model_config.get("extra") == "forbid"


async def test_the_proxy_tunnels_every_call_to_the_instance_and_its_token_endpoint(
    coupa: FakeCoupa, tunnel_proxy: TunnelProxy
) -> None:
    adapter = make_adapter(coupa, proxy=tunnel_proxy.url)
    await adapter.start()
    try:
        supplier = coupa.add_supplier("Acme Supplies", "S-1")
        coupa.add_purchase_order("PO-4411", supplier)
        assert (await call(adapter, "find_purchase_order", po_number="PO-4411"))["found"]
    finally:
        await adapter.close()
    assert set(tunnel_proxy.tunnels) == {urlsplit(coupa.url).netloc}


@pytest.mark.parametrize("how", sorted(echoes.ECHOES))
@pytest.mark.parametrize("status", [400, 422, 503])
async def test_personal_data_coupa_echoes_changed_is_masked_everywhere(
    coupa: FakeCoupa, adapter: CoupaAdapter, how: str, status: int
) -> None:
    # Coupa's errors name the field and quote the value; a 503 page may quote the request.
    text = echoes.ECHOES[how]
    body: Any = text if status == 503 else {"errors": {"po-email": [text]}}
    coupa.fail_next("/api/suppliers", Reply(status, body), method="POST")
    payload = {"number": "S-echo", "name": echoes.NAME, "po-email": echoes.EMAIL}

    await echoes.assert_masked(
        lambda: adapter.call(Request(action="upsert_supplier", payload=payload, event_id="e"))
    )
