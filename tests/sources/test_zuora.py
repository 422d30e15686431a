"""Zuora callout notifications: an Invoice Posted callout becomes finance.invoice.posted.v1."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx

from platypus.runtime.embedded import Platypus
from tests.sources.payloads import ZUORA_TOKEN, basic, events_in_log, invoice_posted

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_an_invoice_posted_callout_becomes_a_typed_event(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    response = await client.post("/webhooks/zuora", json=invoice_posted(), headers=basic())

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    [event] = events_in_log(app)
    assert event["type"] == "finance.invoice.posted.v1"
    assert event["source"] == "/zuora/callout"
    assert event["subject"] == "A00000042"
    assert (
        event["id"] == "invoice.posted:8a8aa0b27e2c4f7a017e2d1c2b3a0042:2026-11-02T10:00:00+01:00"
    )
    assert event["data"]["amount"] == 1200  # a number, so flows compare it as one
    assert event["data"]["lines"] == [
        {"charge_name": "Platform subscription", "amount": 1000, "tax_amount": 200}
    ]


async def test_form_parameters_are_read_like_json(app: Platypus, client: httpx.AsyncClient) -> None:
    body = urlencode(invoice_posted())
    response = await client.post("/webhooks/zuora", content=body, headers={**FORM, **basic()})

    assert response.status_code == 200, response.text
    assert events_in_log(app)[0]["data"]["invoice_number"] == "INV00000123"


async def test_a_redelivered_callout_is_acknowledged_but_appended_once(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    first = await client.post("/webhooks/zuora", json=invoice_posted(), headers=basic())
    again = await client.post("/webhooks/zuora", json=invoice_posted(), headers=basic())

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == 1
    assert len(events_in_log(app)) == 1


async def test_without_credentials_zuora_is_challenged_for_basic_auth(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    response = await client.post("/webhooks/zuora", json=invoice_posted())

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="platypus"')
    assert response.json() == {"error": "unauthorized"}
    [rejected] = app.log.rejected()
    assert "basic auth" in rejected["reason"]
    assert events_in_log(app) == []


async def test_a_wrong_user_and_a_wrong_password_get_the_same_answer(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    wrong_user = await client.post(
        "/webhooks/zuora", json=invoice_posted(), headers=basic(user="mallory")
    )
    wrong_password = await client.post(
        "/webhooks/zuora", json=invoice_posted(), headers=basic(password="guess")
    )

    assert wrong_user.status_code == wrong_password.status_code == 401
    assert wrong_user.content == wrong_password.content
    assert len(app.log.rejected()) == 2


async def test_a_header_token_authenticates_and_a_summary_line_is_marked_for_enrichment(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    params = invoice_posted(InvoiceLines=None)
    bad = await client.post(
        "/webhooks/zuora-token", json=params, headers={"X-Callout-Token": "nope"}
    )
    good = await client.post(
        "/webhooks/zuora-token", json=params, headers={"X-Callout-Token": ZUORA_TOKEN}
    )

    assert (bad.status_code, good.status_code) == (401, 200)
    [event] = events_in_log(app)
    assert event["platypusenrich"] == "lines"
    assert event["data"]["lines"] == [
        {"charge_name": "Invoice total", "amount": 1200, "tax_amount": 200}
    ]


async def test_a_callout_without_lines_is_refused_with_422_by_default(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/webhooks/zuora", json=invoice_posted(InvoiceLines=None), headers=basic()
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "data.lines"
    [rejected] = app.log.rejected()
    assert rejected["reason"].startswith("webhook zuora: the event was refused")
    assert json.loads(rejected["body"]) == invoice_posted(InvoiceLines=None)  # as Zuora sent it


async def test_a_callout_with_a_bad_amount_is_refused_with_422(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/webhooks/zuora", json=invoice_posted(InvoiceAmount="lots"), headers=basic()
    )

    assert response.status_code == 422
    assert any(e["path"] == "data.amount" for e in response.json()["errors"])
    assert events_in_log(app) == []


async def test_malformed_json_gets_400_and_is_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/webhooks/zuora",
        content=b"{InvoiceId: 1",
        headers={"content-type": "application/json", **basic()},
    )

    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]
    assert app.log.rejected()[0]["body"] == b"{InvoiceId: 1"


async def test_an_unknown_source_gets_404_and_is_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    response = await client.post("/webhooks/stripe", json={})

    assert response.status_code == 404
    assert len(app.log.rejected()) == 1
