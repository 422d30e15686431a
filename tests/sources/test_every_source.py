"""What every webhook source does the same way, run against each of them."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from platypus.envelope import CloudEvent
from platypus.runtime.embedded import Platypus
from platypus.schema_registry import SchemaRegistry
from tests.sources.payloads import (
    bamboo_employee,
    bamboo_signed,
    basic,
    dumps,
    employees,
    events_in_log,
    greenhouse_signed,
    hire_candidate,
    invoice_posted,
    opportunity,
    outbound_message,
)

# source -> (builds signed headers for a body, a valid body, the event type it yields)
Signer = Callable[[bytes], dict[str, str]]
VALID: dict[str, tuple[Signer, bytes, str]] = {
    "zuora": (
        lambda _: {"content-type": "application/json", **basic()},
        dumps(invoice_posted()),
        "finance.invoice.posted.v1",
    ),
    "salesforce": (
        lambda _: {"content-type": "text/xml"},
        outbound_message(("04l000000000001AAA", opportunity(1))),
        "sales.opportunity.closed_won.v1",
    ),
    "greenhouse": (greenhouse_signed, dumps(hire_candidate()), "people.worker.hired.v1"),
    "bamboohr": (bamboo_signed, dumps(employees(bamboo_employee())), "people.worker.hired.v1"),
}
# Salesforce answers every refusal with a SOAP fault, which SOAP 1.1 sends as 500.
FAULT = {"salesforce": 500}

parametrize = pytest.mark.parametrize("source", sorted(VALID))


@parametrize
async def test_a_valid_delivery_becomes_a_typed_valid_event(
    source: str, app: Platypus, client: httpx.AsyncClient
) -> None:
    sign, body, event_type = VALID[source]
    response = await client.post(f"/webhooks/{source}", content=body, headers=sign(body))

    assert response.status_code == 200, response.text
    [event] = events_in_log(app)
    assert event["type"] == event_type
    SchemaRegistry.default().validate(CloudEvent.model_validate(event))


@parametrize
async def test_an_oversized_body_gets_413_and_is_recorded(
    source: str, app: Platypus, client: httpx.AsyncClient
) -> None:
    sign, _, _ = VALID[source]
    body = b"x" * 5000  # the limit in these tests is 4096
    response = await client.post(f"/webhooks/{source}", content=body, headers=sign(body))

    assert response.status_code == FAULT.get(source, 413)
    [rejected] = app.log.rejected()
    assert "4096" in rejected["reason"]
    assert events_in_log(app) == []


@parametrize
async def test_a_malformed_body_gets_400_and_is_recorded(
    source: str, app: Platypus, client: httpx.AsyncClient
) -> None:
    sign, _, _ = VALID[source]
    body = b'{"unterminated'
    response = await client.post(f"/webhooks/{source}", content=body, headers=sign(body))

    assert response.status_code == FAULT.get(source, 400)
    assert len(app.log.rejected()) == 1
    assert events_in_log(app) == []


@parametrize
async def test_redelivery_of_the_same_body_appends_once(
    source: str, app: Platypus, client: httpx.AsyncClient
) -> None:
    sign, body, _ = VALID[source]
    for _ in range(3):
        response = await client.post(f"/webhooks/{source}", content=body, headers=sign(body))
        assert response.status_code == 200
    assert len(events_in_log(app)) == 1


@parametrize
async def test_the_openapi_document_describes_each_source(
    source: str, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()

    operation = document["paths"][f"/webhooks/{source}"]["post"]
    assert "200" in operation["responses"]
    assert json.dumps(operation)  # plain JSON
