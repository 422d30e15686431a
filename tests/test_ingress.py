"""``POST /events`` over real HTTP: what is accepted, what is refused and why."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from platypus.config import IngressSettings
from platypus.runtime.embedded import Platypus
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, running, stored_events

CE = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


@pytest.fixture
async def app(tmp_path: Path, fake_vendor: FakeVendor) -> AsyncIterator[Platypus]:
    settings = IngressSettings(port=0, max_body_bytes=4096, max_batch=5)
    async with running(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, http=True, ingress=settings
    ) as started:
        yield started


@pytest.fixture
async def client(app: Platypus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url) as http:
        yield http


async def test_healthz_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_a_valid_event_is_on_disk_when_202_is_answered(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    raw = json.dumps(event, indent=2).encode()
    response = await client.post("/events", content=raw, headers=CE)

    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    # In its stored form: the event as validated, compact UTF-8 JSON.
    assert stored_events(app) == [json.dumps(event, separators=(",", ":")).encode()]


async def test_plain_application_json_is_accepted_for_one_event_and_for_a_batch(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    one = await client.post("/events", json=closed_won())
    many = await client.post("/events", json=[closed_won(), closed_won()])

    assert (one.status_code, many.status_code) == (202, 202)
    assert many.json()["accepted"] == 2
    assert len(stored_events(app)) == 3


async def test_a_batch_is_accepted_whole(app: Platypus, client: httpx.AsyncClient) -> None:
    events = [closed_won() for _ in range(3)]
    response = await client.post("/events", content=json.dumps(events), headers=BATCH)

    assert response.status_code == 202
    assert [e["id"] for e in response.json()["events"]] == [e["id"] for e in events]
    assert len(stored_events(app)) == 3


async def test_a_batch_with_one_invalid_event_is_refused_whole_and_says_which(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    events = [closed_won(), closed_won(amount="lots"), closed_won()]
    response = await client.post("/events", content=json.dumps(events), headers=BATCH)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["index"], error["path"]) == (1, "[1].data.amount")
    assert stored_events(app) == []
    [rejected] = app.log.rejected()
    assert rejected["errors"][0]["path"] == "[1].data.amount"


async def test_malformed_json_gets_400_with_line_and_column_and_is_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = b'{"specversion": "1.0",\n  "id": oops}'
    response = await client.post("/events", content=body, headers=CE)

    assert response.status_code == 400
    assert "malformed JSON at line 2 column 9" in response.json()["error"]
    [rejected] = app.log.rejected()
    assert rejected["body"] == body
    assert rejected["id"] == response.json()["rejection_id"]


async def test_an_unknown_event_type_gets_422_with_a_suggestion(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    event["type"] = "sales.opportunity.closed_wom.v1"
    response = await client.post("/events", json=event)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["path"] == "type"
    assert "did you mean 'sales.opportunity.closed_won.v1'?" in error["message"]
    assert stored_events(app) == []
    assert len(app.log.rejected()) == 1


async def test_wrong_field_types_get_422_with_path_expected_and_got(
    client: httpx.AsyncClient,
) -> None:
    event = closed_won(amount="lots")
    event["data"]["line_items"][0]["quantity"] = "two"
    response = await client.post("/events", json=event)

    assert response.status_code == 422
    errors = {e["path"]: e for e in response.json()["errors"]}
    assert set(errors) == {"data.amount", "data.line_items[0].quantity"}
    assert errors["data.line_items[0].quantity"]["got"] == "'two'"
    assert errors["data.line_items[0].quantity"]["expected"] == "int"


async def test_personal_data_is_masked_in_validation_errors(client: httpx.AsyncClient) -> None:
    event = closed_won()
    event["data"]["owner_email"] = ["jane.doe@example.com"]
    response = await client.post("/events", json=event)

    assert response.status_code == 422
    assert "jane.doe@example.com" not in response.text
    [error] = response.json()["errors"]
    assert (error["path"], error["got"]) == ("data.owner_email", "***")


async def test_a_personal_value_sent_in_another_field_is_masked_in_errors_and_the_record(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won(owner_email="jane.doe@example.com")
    event["data"]["close_date"] = "Jane.Doe@Example.com"  # where a date belongs
    response = await client.post("/events", json=event)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["path"], error["got"]) == ("data.close_date", "'***'")
    [rejected] = app.log.rejected()
    assert "jane.doe" not in json.dumps(rejected["errors"]).lower()
    assert "jane.doe" not in rejected["reason"].lower()


async def test_a_missing_subject_gets_422_naming_it(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    del event["subject"]
    response = await client.post("/events", json=event)

    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["subject"]
    assert stored_events(app) == []


async def test_an_oversized_body_gets_413_and_is_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won(account_name="x" * 5000)
    response = await client.post("/events", json=event)

    assert response.status_code == 413
    assert "limit is 4096" in response.json()["error"]
    assert stored_events(app) == []
    assert "4096" in app.log.rejected()[0]["reason"]


async def test_an_oversized_streamed_body_without_length_gets_413(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post("/events", content=chunks(), headers=CE)
    assert response.status_code == 413


async def test_a_batch_over_the_batch_limit_gets_413(client: httpx.AsyncClient) -> None:
    events = [closed_won() for _ in range(6)]
    response = await client.post("/events", content=json.dumps(events), headers=BATCH)
    assert response.status_code == 413
    assert "at most 5" in response.json()["error"]


async def test_a_non_json_content_type_gets_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/events", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("body", "message"),
    [(b'"just a string"', "an event is a JSON object"), (b"[]", "the batch is empty")],
)
async def test_json_that_is_not_an_event_gets_400(
    client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    response = await client.post(
        "/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_the_same_event_sent_twice_is_stored_once(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    first = await client.post("/events", json=event)
    second = await client.post("/events", json=event)

    assert first.json()["accepted"] == 1
    assert (second.status_code, second.json()["duplicates"]) == (202, 1)
    assert len(stored_events(app)) == 1
