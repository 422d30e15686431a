"""Salesforce Outbound Messages: SOAP in, Closed Won opportunities out, SOAP Ack back."""

from __future__ import annotations

import httpx
from lxml import etree

from platypus.runtime.embedded import Platypus
from tests.sources.payloads import events_in_log, opportunity, outbound_message

XML = {"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"


def ack(response: httpx.Response) -> bool:
    root = etree.fromstring(response.content)
    found = root.find(
        f"{SOAP}Body/{{http://soap.sforce.com/2005/09/outbound}}notificationsResponse/"
        "{http://soap.sforce.com/2005/09/outbound}Ack"
    )
    return found is not None and found.text == "true"


def fault(response: httpx.Response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    element = root.find(f"{SOAP}Body/{SOAP}Fault")
    assert element is not None, response.text
    return element.findtext("faultcode") or "", element.findtext("faultstring") or ""


async def test_a_closed_won_opportunity_becomes_a_typed_event_and_gets_the_soap_ack(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = outbound_message(("04l000000000001AAA", opportunity(1)))
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert ack(response)
    [event] = events_in_log(app)
    assert event["type"] == "sales.opportunity.closed_won.v1"
    assert event["source"] == "/salesforce/outbound"
    assert event["id"] == "04l000000000001AAA"
    assert event["subject"] == "006000000000000001"
    assert event["data"]["amount"] == 5000
    assert event["data"]["line_items"] == [
        {"currency": "EUR", "product_code": "PLAT-ENT", "quantity": 2, "unit_price": 2500}
    ]


async def test_other_stages_are_acknowledged_and_ignored(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = outbound_message(
        ("04l000000000001AAA", opportunity(1, StageName="Negotiation")),
        ("04l000000000002AAA", opportunity(2)),
    )
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert ack(response)
    assert [e["subject"] for e in events_in_log(app)] == ["006000000000000002"]


async def test_a_resent_message_is_acknowledged_and_appended_once(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = outbound_message(("04l000000000001AAA", opportunity(1)))
    first = await client.post("/webhooks/salesforce", content=body, headers=XML)
    again = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert ack(first)
    assert ack(again)
    assert len(events_in_log(app)) == 1


async def test_a_wrong_org_id_gets_a_fault_and_is_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = outbound_message(("04l000000000001AAA", opportunity(1)), org="00D000000000999AAA")
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert response.status_code == 500  # SOAP 1.1, section 6.2
    assert fault(response) == ("soapenv:Client", "unauthorized")
    assert "OrganizationId" in app.log.rejected()[0]["reason"]
    assert events_in_log(app) == []


async def test_a_15_character_org_id_matches_the_18_character_one(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = outbound_message(("04l000000000001AAA", opportunity(1)), org="00D000000000001")
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert ack(response)


async def test_an_opportunity_without_line_items_faults_with_the_reason(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = outbound_message(("04l000000000001AAA", opportunity(1, Line_Items_JSON__c=None)))
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    code, message = fault(response)
    assert code == "soapenv:Client"
    assert "data.line_items" in message
    assert b'status="422"' in response.content
    assert len(app.log.rejected()) == 1
    assert events_in_log(app) == []


async def test_a_missing_stage_name_is_refused_not_guessed(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    fields = opportunity(1)
    del fields["StageName"]
    body = outbound_message(("04l000000000001AAA", fields))
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert "StageName is missing" in fault(response)[1]
    assert events_in_log(app) == []


async def test_one_invalid_notification_faults_the_whole_message(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = outbound_message(
        ("04l000000000001AAA", opportunity(1)),
        ("04l000000000002AAA", opportunity(2, AccountId="not-an-account")),
    )
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert response.status_code == 500
    assert "[1].data.account_id" in fault(response)[1]
    assert events_in_log(app) == []  # Salesforce resends it whole


async def test_a_body_that_is_not_soap_gets_a_fault(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    for body in (b"<notifications/>", b"not xml at all", b"<?xml version='1.0'?><a><b></a>"):
        response = await client.post("/webhooks/salesforce", content=body, headers=XML)
        assert response.status_code == 500
        assert fault(response)[0] == "soapenv:Client"
    assert len(app.log.rejected()) == 3


async def test_entities_are_not_expanded(app: Platypus, client: httpx.AsyncClient) -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        + outbound_message(("04l000000000001AAA", opportunity(1, Account_Name__c="&b;")))
        .split(b"?>", 1)[1]
        .replace(b"&amp;b;", b"&b;")
    )
    response = await client.post("/webhooks/salesforce", content=body, headers=XML)

    assert response.status_code == 500
    assert "document type" in fault(response)[1]
    assert events_in_log(app) == []
