"""HMAC-signed webhooks: Greenhouse (signature over the body) and BambooHR (body + timestamp)."""

from __future__ import annotations

import hashlib
import time

import httpx

from platypus.runtime.embedded import Platypus
from platypus.sources import SeenDeliveries
from tests.sources.payloads import (
    bamboo_employee,
    bamboo_signed,
    dumps,
    employees,
    events_in_log,
    generic_signed,
    greenhouse_signed,
    hire_candidate,
)


async def test_a_greenhouse_hire_becomes_a_worker_hired_event(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(hire_candidate())
    response = await client.post(
        "/webhooks/greenhouse", content=body, headers=greenhouse_signed(body)
    )

    assert response.status_code == 200, response.text
    [event] = events_in_log(app)
    assert event["type"] == "people.worker.hired.v1"
    assert event["source"] == "/greenhouse/webhook"
    assert event["id"] == "hire_candidate:46194062"
    assert event["subject"] == "greenhouse-40"
    assert event["data"]["work_email"] == "ada.quillfeather@example.com"
    assert event["data"]["personal_email"] == "ada@home.example.com"
    assert event["data"]["position"] == {
        "title": "Analyst",
        "department": "Finance",
        "location": "Sydney, NSW",
    }


async def test_offer_custom_fields_give_the_employee_id(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(hire_candidate(custom_fields={"employee_id": {"value": "W-77"}}))
    await client.post("/webhooks/greenhouse", content=body, headers=greenhouse_signed(body))

    assert events_in_log(app)[0]["subject"] == "W-77"


async def test_a_greenhouse_ping_is_acknowledged_without_an_event(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps({"action": "ping", "payload": {"web_hook_id": 1}})
    response = await client.post(
        "/webhooks/greenhouse", content=body, headers=greenhouse_signed(body)
    )

    assert response.status_code == 200
    assert response.json()["accepted"] == 0
    assert response.json()["ignored"]
    assert events_in_log(app) == []


async def test_a_bad_signature_gets_401_with_no_hint_and_is_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(hire_candidate())
    wrong_key = await client.post(
        "/webhooks/greenhouse", content=body, headers=greenhouse_signed(body, secret="guess")
    )
    tampered = await client.post(
        "/webhooks/greenhouse",
        content=body.replace(b"Ada", b"Eve"),
        headers=greenhouse_signed(body),
    )
    unsigned = await client.post(
        "/webhooks/greenhouse", content=body, headers={"content-type": "application/json"}
    )

    assert {r.status_code for r in (wrong_key, tampered, unsigned)} == {401}
    assert wrong_key.content == tampered.content == unsigned.content == b'{"error": "unauthorized"}'
    assert len(app.log.rejected()) == 3
    assert all("Signature missing or wrong" in r["reason"] for r in app.log.rejected())
    assert events_in_log(app) == []


async def test_a_bamboohr_created_employee_becomes_a_worker_hired_event(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(employees(bamboo_employee("123"), bamboo_employee("124", action="Updated")))
    response = await client.post("/webhooks/bamboohr", content=body, headers=bamboo_signed(body))

    assert response.status_code == 200, response.text
    [event] = events_in_log(app)
    assert event["id"] == "created:123"
    assert event["subject"] == "E-123"
    assert event["data"]["first_name"] == "Grace"
    assert response.json()["ignored"] == ["item 1: item.action == 'Created' is false"]


async def test_a_stale_bamboohr_timestamp_gets_401_even_with_a_good_signature(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(employees(bamboo_employee()))
    old = str(int(time.time()) - 600)
    response = await client.post(
        "/webhooks/bamboohr", content=body, headers=bamboo_signed(body, old)
    )

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert "stale" in app.log.rejected()[0]["reason"]
    assert events_in_log(app) == []


async def test_a_timestamp_changed_after_signing_gets_401(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(employees(bamboo_employee()))
    headers = bamboo_signed(body, str(int(time.time()) - 600))
    headers["X-BambooHR-Timestamp"] = str(int(time.time()))  # made fresh again by a replayer
    response = await client.post("/webhooks/bamboohr", content=body, headers=headers)

    assert response.status_code == 401
    assert events_in_log(app) == []


async def test_a_redelivered_delivery_id_is_acknowledged_and_not_appended_again(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(hire_candidate())
    first = await client.post("/webhooks/hooks", content=body, headers=generic_signed(body, "d-1"))
    again = await client.post("/webhooks/hooks", content=body, headers=generic_signed(body, "d-1"))

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["redelivery"] is True
    assert len(events_in_log(app)) == 1
    assert app.log.rejected() == []


async def test_a_replayed_delivery_id_with_another_body_gets_409_and_is_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    first = dumps(hire_candidate(1))
    other = dumps(hire_candidate(2))
    await client.post("/webhooks/hooks", content=first, headers=generic_signed(first, "d-1"))
    response = await client.post(
        "/webhooks/hooks", content=other, headers=generic_signed(other, "d-1")
    )

    assert response.status_code == 409
    assert "d-1" in response.json()["error"]
    [rejected] = app.log.rejected()
    assert rejected["body"] == other
    assert len(events_in_log(app)) == 1


async def test_seen_delivery_ids_are_kept_next_to_the_event_log(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = dumps(hire_candidate())
    await client.post("/webhooks/hooks", content=body, headers=generic_signed(body, "d-9"))

    reopened = SeenDeliveries(app.log.data_dir / "webhooks.db")
    try:
        assert await reopened.check("hooks", "d-9", hashlib.sha256(body).hexdigest()) == "same"
        assert await reopened.check("hooks", "d-9", "another body") == "different"
        assert await reopened.check("hooks", "d-10", "") == "new"
    finally:
        reopened.close()


async def test_a_payload_missing_what_the_event_needs_gets_422(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    payload = hire_candidate()
    del payload["payload"]["application"]["offer"]
    body = dumps(payload)
    response = await client.post(
        "/webhooks/greenhouse", content=body, headers=greenhouse_signed(body)
    )

    assert response.status_code == 422
    assert any(e["path"] == "data.hire_date" for e in response.json()["errors"])
    assert len(app.log.rejected()) == 1


async def test_a_signed_body_that_is_not_json_gets_400(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = b"employees=1"
    response = await client.post("/webhooks/bamboohr", content=body, headers=bamboo_signed(body))

    assert response.status_code == 400
    assert len(app.log.rejected()) == 1
