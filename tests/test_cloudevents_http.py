"""The three modes of the CloudEvents HTTP binding, sent by the official Python SDK.

The ``cloudevents`` SDK (``cloudevents.core``) builds every request, as an
independent client: structured mode (``to_structured``, with ``data`` or
``data_base64``), binary mode (``to_binary``: ``ce-*`` headers, the data as the
body in its own content type) and batched mode (the SDK has no batch writer:
the batch is its JSON format's events in an array, as the JSON batch format
defines). Each is posted over real HTTP, and what is stored, and what a flow
reads, is one form whatever the mode.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from pydantic import RootModel
from starlette.responses import JSONResponse

from platypus.config import IngressSettings
from platypus.flow.loader import load_flows
from platypus.runtime.embedded import Platypus
from platypus.schema import event_schema
from platypus.schema_registry import SchemaRegistry
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, project_config, stored_events, write_project

FORMAT = JSONFormat()


@event_schema("test.soap.notification", version=1)
class SoapNotification(RootModel[str]):
    """A SOAP vendor's notification: the XML as it was sent."""


@event_schema("test.document.received", version=1)
class DocumentReceived(RootModel[bytes]):
    """A file, as bytes."""


XML_FLOW = """
name: soap-relay
consumes: test.soap.notification.v1
steps:
  - name: relay
    to: vendor.post
    params: {path: /soap}
    payload:
      xml: data
      content_type: datacontenttype
"""


@pytest.fixture
async def app(tmp_path: Path, fake_vendor: FakeVendor) -> AsyncIterator[Platypus]:
    registry = SchemaRegistry.default()
    registry.register_model(SoapNotification)
    registry.register_model(DocumentReceived)
    folder = write_project(tmp_path, {"orders": ORDER_FLOW, "soap": XML_FLOW})
    config = project_config(tmp_path, fake_vendor.url, ingress=IngressSettings(port=0))
    started = Platypus(config, load_flows(folder), schemas=registry)
    await started.start(http=True, port=0)
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def client(app: Platypus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url) as http:
        yield http


def sdk_event(event: dict[str, Any], data: Any = None, **attributes: Any) -> SdkEvent:
    """Our test event's attributes, in the SDK's own event type."""
    found = {k: v for k, v in event.items() if k != "data"}
    found["time"] = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)
    found.update(attributes)
    return SdkEvent(found, event.get("data") if data is None else data)


async def post(client: httpx.AsyncClient, message: HTTPMessage) -> httpx.Response:
    return await client.post("/events", content=message.body, headers=message.headers)


def stored(app: Platypus) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in stored_events(app)]


def without_id(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "id"}


# -- every mode is accepted, and stored in one form ------------------------------------


async def test_structured_binary_and_batched_modes_are_stored_in_one_form(
    app: Platypus, client: httpx.AsyncClient, fake_vendor: FakeVendor
) -> None:
    base = closed_won(amount=4200)
    structured = sdk_event({**base, "id": "evt-s"}, datacontenttype="application/json")
    binary = sdk_event({**base, "id": "evt-b"}, datacontenttype="application/json")
    batched = [
        sdk_event({**base, "id": f"evt-{i}"}, datacontenttype="application/json") for i in (1, 2)
    ]
    batch = b"[" + b",".join(FORMAT.write(e) for e in batched) + b"]"

    answers = [
        await post(client, to_structured(structured, FORMAT)),
        await post(client, to_binary(binary, FORMAT)),
        await client.post(
            "/events", content=batch, headers={"content-type": "application/cloudevents-batch+json"}
        ),
    ]

    assert [a.status_code for a in answers] == [202, 202, 202], [a.text for a in answers]
    forms = {json.dumps(without_id(e), sort_keys=True) for e in stored(app)}
    assert len(stored(app)) == 4
    assert len(forms) == 1  # the same event, whichever mode it came in
    [form] = [json.loads(f) for f in forms]
    assert form["data"] == base["data"]
    assert form["time"] == "2026-11-02T09:15:00Z"
    await fake_vendor.wait_for(4, path="/orders", within=15)


async def test_binary_mode_without_a_content_type_reads_the_body_as_json(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    message = to_binary(sdk_event(event), FORMAT)
    assert "content-type" not in {k.lower() for k in message.headers}  # as the SDK sends it

    response = await post(client, message)

    assert response.status_code == 202, response.text
    [form] = stored(app)
    assert form["data"] == event["data"]
    assert "datacontenttype" not in form


async def test_binary_mode_percent_decodes_attribute_headers(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    message = to_binary(sdk_event(event, note='Société "Générale" 100% € 😀'), FORMAT)
    assert "%" in message.headers["ce-note"]  # the SDK encoded it

    response = await post(client, message)

    assert response.status_code == 202, response.text
    assert stored(app)[0]["note"] == 'Société "Générale" 100% € 😀'


async def test_xml_in_binary_mode_is_carried_as_text_and_a_flow_passes_it_on(
    app: Platypus, client: httpx.AsyncClient, fake_vendor: FakeVendor
) -> None:
    xml = '<?xml version="1.0"?><notification><id>N-1</id><who>Zoë</who></notification>'
    event = sdk_event(
        {
            "id": "evt-xml",
            "source": "/soap/vendor",
            "type": "test.soap.notification.v1",
            "subject": "N-1",
        },
        xml,
        datacontenttype="text/xml; charset=utf-8",
    )

    response = await post(client, to_binary(event, FORMAT))

    assert response.status_code == 202, response.text
    [form] = stored(app)
    assert (form["data"], form["datacontenttype"]) == (xml, "text/xml; charset=utf-8")
    [relayed] = await fake_vendor.wait_for(1, path="/soap", within=15)
    assert relayed.json == {"xml": xml, "content_type": "text/xml; charset=utf-8"}


async def test_text_in_another_charset_is_stored_as_unicode_text(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "evt-latin1",
        "ce-source": "/soap/vendor",
        "ce-type": "test.soap.notification.v1",
        "ce-subject": "N-2",
        "content-type": "text/xml; charset=iso-8859-1",
    }
    response = await client.post(
        "/events", content="<who>Zoë</who>".encode("latin-1"), headers=headers
    )

    assert response.status_code == 202, response.text
    assert stored(app)[0]["data"] == "<who>Zoë</who>"


async def test_bytes_in_binary_mode_are_kept_as_data_base64(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    payload = bytes(range(256))
    event = sdk_event(
        {
            "id": "evt-pdf",
            "source": "/files",
            "type": "test.document.received.v1",
            "subject": "F-1",
        },
        payload,
        datacontenttype="application/pdf",
    )

    response = await post(client, to_binary(event, FORMAT))

    assert response.status_code == 202, response.text
    [form] = stored(app)
    assert "data" not in form
    assert base64.b64decode(form["data_base64"]) == payload
    assert form["datacontenttype"] == "application/pdf"


async def test_data_base64_in_structured_mode_is_stored_as_its_content_type_says(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    encoded = json.dumps(event["data"]).encode()
    as_json = sdk_event(event, encoded, datacontenttype="application/json")
    message = to_structured(as_json, FORMAT)
    assert b"data_base64" in message.body  # how the SDK sends bytes

    response = await post(client, message)

    assert response.status_code == 202, response.text
    [form] = stored(app)
    assert form["data"] == event["data"]  # JSON data, as in every other mode
    assert "data_base64" not in form


# -- errors name the mode ---------------------------------------------------------------


async def test_an_invalid_event_is_refused_naming_its_mode_and_recorded(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    bad = closed_won(amount="lots")
    binary = await post(client, to_binary(sdk_event(bad), FORMAT))
    structured = await post(client, to_structured(sdk_event(bad), FORMAT))
    batch = b"[" + FORMAT.write(sdk_event(bad)) + b"]"
    batched = await client.post(
        "/events", content=batch, headers={"content-type": "application/cloudevents-batch+json"}
    )

    for answer, mode in ((binary, "binary"), (structured, "structured"), (batched, "batched")):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"].endswith(f"({mode} mode)")
        assert [e["path"] for e in answer.json()["errors"]][-1].endswith("data.amount")
    assert len(app.log.rejected()) == 3
    assert stored(app) == []


async def test_binary_mode_attributes_are_checked_like_structured_ones(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won()
    message = to_binary(sdk_event(event), FORMAT)
    headers = {k: v for k, v in message.headers.items() if k != "ce-subject"}
    headers["ce-time"] = "2026"

    response = await client.post("/events", content=message.body, headers=headers)

    assert response.status_code == 422, response.text
    assert sorted(e["path"] for e in response.json()["errors"]) == ["subject", "time"]
    assert "(binary mode)" in response.json()["error"]


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"ce-datacontenttype": "application/json"}, 400, "send the data's content type"),
        ({"ce-data": "x"}, 400, "ce-data is not an attribute"),
        ({"ce-note": "%C0%A0"}, 400, "not UTF-8 once percent-decoded"),
        ({"content-type": "application/json"}, 400, "is not JSON"),
    ],
)
async def test_binary_mode_headers_that_cannot_be_read_get_400(
    app: Platypus, client: httpx.AsyncClient, change: dict[str, str], status: int, reason: str
) -> None:
    message = to_binary(sdk_event(closed_won()), FORMAT)
    headers = {**message.headers, **change}
    body = b"{not json" if "content-type" in change else message.body

    response = await client.post("/events", content=body, headers=headers)

    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    assert response.json()["error"].endswith("(binary mode)")


async def test_data_base64_that_is_not_base64_is_refused_in_structured_mode(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = {k: v for k, v in closed_won().items() if k != "data"}
    event["data_base64"] = "not base64!"
    response = await client.post(
        "/events", json=event, headers={"content-type": "application/cloudevents+json"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == "data_base64"
    assert response.json()["error"].endswith("(structured mode)")


async def test_a_content_type_that_is_no_mode_still_gets_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/events", content=b"<x/>", headers={"content-type": "text/xml"})
    assert response.status_code == 415
    assert "binary mode" in response.json()["error"]


async def test_the_202_body_is_what_starlette_writes_for_it(client: httpx.AsyncClient) -> None:
    # The answer is rendered with orjson (platypus.web): byte for byte what
    # Starlette's JSONResponse writes for the same content, non-ASCII ids too.
    events = [closed_won(amount=4200) for _ in range(3)]
    events[1]["id"] = "evt-ünïcödé-€"
    answer = await client.post(
        "/events",
        content=json.dumps(events).encode(),
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 3
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == JSONResponse(answer.json()).body
    assert "evt-ünïcödé-€".encode() in answer.content
