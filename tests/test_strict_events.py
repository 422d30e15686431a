"""What a flow reads is exactly what was validated: nothing coerced, nothing ambiguous.

Over real HTTP to ``POST /events``: every value JSON (RFC 8259), I-JSON (RFC 7493)
or CloudEvents 1.0 rules out, and every conversion a schema did not ask for, is
refused with a 4xx naming the field, recorded as rejected, and never stored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, cast

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from platypus.config import IngressSettings
from platypus.exceptions import EventValidationError, JsonTextError
from platypus.ingress import Ingress
from platypus.jsontext import NOT_CANONICAL
from platypus.records import EVENTS_TOPIC, Record
from platypus.retry import RetryPolicy
from platypus.runtime import codec
from platypus.runtime import processor as processor_module
from platypus.runtime.codec import read_record
from platypus.runtime.connections import Connections
from platypus.runtime.embedded import Platypus
from platypus.runtime.memory import MemoryLedger, MemoryLog
from platypus.runtime.processor import Processor
from platypus.schema import Lenient, event_schema
from platypus.schema_registry import SchemaRegistry
from tests.fakes.vendor import FakeVendor
from tests.support import ORDER_FLOW, closed_won, running, stored_events

CE = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


@pytest.fixture
async def app(tmp_path: Path, fake_vendor: FakeVendor) -> AsyncIterator[Platypus]:
    settings = IngressSettings(port=0, max_batch=20)
    async with running(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, http=True, ingress=settings
    ) as started:
        yield started


@pytest.fixture
async def client(app: Platypus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url) as http:
        yield http


def with_line(**line: Any) -> dict[str, Any]:
    event = closed_won()
    event["data"]["line_items"][0].update(line)
    return event


async def refused_at(
    app: Platypus, client: httpx.AsyncClient, body: bytes, status: int, path: str
) -> dict[str, Any]:
    response = await client.post("/events", content=body, headers=CE)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    assert path in [e["path"] for e in answer["errors"]] or path in answer["error"], answer
    assert stored_events(app) == []
    assert app.log.rejected()[-1]["id"] == answer["rejection_id"]
    return answer


# -- data: no silent coercion ----------------------------------------------------------


@pytest.mark.parametrize("quantity", [True, "10", " 10 ", 10.5, "1e1"])
async def test_an_integer_field_takes_a_json_integer_only(
    app: Platypus, client: httpx.AsyncClient, quantity: Any
) -> None:
    body = json.dumps(with_line(quantity=quantity)).encode()
    answer = await refused_at(app, client, body, 422, "data.line_items[0].quantity")
    assert "(structured mode)" in answer["error"]


@pytest.mark.parametrize("sent", ["10.0", "1e1", "1.0E1"])
async def test_a_whole_json_number_is_an_integer_and_stored_as_one(
    app: Platypus, client: httpx.AsyncClient, sent: str
) -> None:
    # JSON has one kind of number and JSON Schema calls 10.0 an integer, so a client
    # generated from /openapi.json may send it: it is taken, and stored as the 10
    # that was validated, so a flow never reads a float where the schema says int.
    body = json.dumps(with_line(quantity="HERE")).replace('"HERE"', sent).encode()
    response = await client.post("/events", content=body, headers=CE)
    assert response.status_code == 202, response.text
    [value] = stored_events(app)
    assert b'"quantity":10' in value.replace(b" ", b"")
    assert json.loads(value)["data"]["line_items"][0]["quantity"] == 10


@pytest.mark.parametrize("close_date", ["2026-11-02T00:00:00", "2026-11-02T00:00:00Z", 0])
async def test_a_date_field_takes_a_date_not_a_datetime_or_a_number(
    app: Platypus, client: httpx.AsyncClient, close_date: Any
) -> None:
    body = json.dumps(closed_won(close_date=close_date)).encode()
    await refused_at(app, client, body, 422, "data.close_date")


@pytest.mark.parametrize("amount", [" 5000 ", "5e3", "+5000", "5_000", "05000", True])
async def test_a_decimal_field_takes_a_number_or_plain_decimal_text(
    app: Platypus, client: httpx.AsyncClient, amount: Any
) -> None:
    body = json.dumps(closed_won(amount=amount)).encode()
    await refused_at(app, client, body, 422, "data.amount")


async def test_plain_decimal_text_is_taken_and_stored_as_sent(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won(amount="5000.50")
    response = await client.post("/events", json=event)
    assert response.status_code == 202, response.text
    [value] = stored_events(app)
    assert json.loads(value)["data"]["amount"] == "5000.50"


# -- the envelope: CloudEvents 1.0 types ---------------------------------------------


@pytest.mark.parametrize(
    "time", [0, 1700000000, 1.5, "2026", "1700000000", "2026-11-02", "2026-11-02T09:15Z"]
)
async def test_time_is_an_rfc_3339_timestamp(
    app: Platypus, client: httpx.AsyncClient, time: Any
) -> None:
    event = closed_won()
    event["time"] = time
    await refused_at(app, client, json.dumps(event).encode(), 422, "time")


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, list(range(10_000)), 1.5, 2**31, -(2**31) - 1, "line\nbreak"],
    ids=["object", "10000-array", "fraction", "int32-overflow", "int32-underflow", "control"],
)
async def test_an_extension_holds_a_cloudevents_attribute_type(
    app: Platypus, client: httpx.AsyncClient, value: Any
) -> None:
    event = {**closed_won(), "platypusx": value}
    answer = await refused_at(app, client, json.dumps(event).encode(), 422, "platypusx")
    assert [e["path"] for e in answer["errors"]] == ["platypusx"]


@pytest.mark.parametrize("literal", ["NaN", "-Infinity", "Infinity"])
async def test_nan_and_infinity_in_an_extension_are_not_json(
    app: Platypus, client: httpx.AsyncClient, literal: str
) -> None:
    body = json.dumps({**closed_won(), "platypusx": "HERE"}).replace('"HERE"', literal)
    answer = await refused_at(app, client, body.encode(), 400, "NaN and Infinity")
    assert "line 1 column" in answer["error"]


async def test_extensions_of_every_cloudevents_type_are_stored_as_sent(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = {**closed_won(), "sequence": 2**31 - 1, "sampled": True, "traceparent": "00-ab"}
    response = await client.post("/events", json=event)
    assert response.status_code == 202, response.text
    assert json.loads(stored_events(app)[0]) == event


# -- the text ------------------------------------------------------------------------


async def test_duplicate_names_are_refused(app: Platypus, client: httpx.AsyncClient) -> None:
    text = json.dumps(closed_won())
    body = text.replace('"id": ', '"id": "evt-other", "id": ', 1).encode()
    answer = await refused_at(app, client, body, 400, "duplicate name")
    assert 'duplicate name "id"' in answer["error"]


async def test_duplicate_names_deep_in_data_are_refused(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    text = json.dumps(closed_won())
    body = text.replace('"quantity": 2', '"quantity": 2, "quantity": 200', 1).encode()
    await refused_at(app, client, body, 400, 'duplicate name "quantity"')


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
async def test_a_utf16_or_utf32_body_is_refused(
    app: Platypus, client: httpx.AsyncClient, encoding: str
) -> None:
    body = json.dumps(closed_won()).encode(encoding)
    await refused_at(app, client, body, 400, "RFC 8259 section 8.1")


async def test_a_utf8_byte_order_mark_is_ignored_and_not_stored(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    event = closed_won(account_name="Société Générale")
    body = b"\xef\xbb\xbf" + json.dumps(event, ensure_ascii=False).encode()
    response = await client.post("/events", content=body, headers=CE)

    assert response.status_code == 202, response.text
    [value] = stored_events(app)
    assert not value.startswith(b"\xef\xbb\xbf")
    assert json.loads(value.decode("utf-8")) == event


async def test_a_batch_is_stored_as_its_events_were_validated(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    events = [closed_won(amount=1234.5), closed_won(amount=1e3)]
    body = json.dumps(events, indent=4).replace("1234.5", "1234.50").encode()
    response = await client.post("/events", content=body, headers=BATCH)

    assert response.status_code == 202, response.text
    # One compact JSON event each: numbers as every reader reads them.
    assert [json.loads(v) for v in stored_events(app)] == events
    assert all(b"\n" not in v and b"1234.50" not in v for v in stored_events(app))


async def test_an_integer_beyond_64_bits_is_refused_naming_the_field(
    app: Platypus, client: httpx.AsyncClient
) -> None:
    body = json.dumps(closed_won()).replace('"quantity": 2', '"quantity": 1' + "0" * 20)
    answer = await refused_at(app, client, body.encode(), 400, "data.line_items[0].quantity")
    assert "64-bit" in answer["error"]


# -- the same for events a webhook or poller built --------------------------------------


async def test_events_a_webhook_built_get_the_same_strictness() -> None:
    log = MemoryLog()
    ingress = Ingress(log, SchemaRegistry.default(), IngressSettings(), EVENTS_TOPIC)

    answer = await ingress.accept_events(
        [with_line(quantity="2")], b"<the vendor's body>", context="webhook test: "
    )

    assert answer.status == 422
    assert answer.body["error"].startswith("webhook test: ")
    assert [e["path"] for e in answer.body["errors"]] == ["data.line_items[0].quantity"]
    assert log.read(EVENTS_TOPIC) == []


async def test_a_nan_a_webhook_built_is_refused_not_stored_as_null() -> None:
    log = MemoryLog()
    ingress = Ingress(log, SchemaRegistry.default(), IngressSettings(), EVENTS_TOPIC)
    event = closed_won()
    event["data"]["billing_contact"] = None
    event["data"]["amount"] = float("nan")

    answer = await ingress.accept_events([event], b"<the vendor's body>")

    assert answer.status == 422
    assert [e["path"] for e in answer.body["errors"]] == ["data.amount"]
    assert log.read(EVENTS_TOPIC) == []


# -- a schema that asks for leniency ----------------------------------------------------


@event_schema("test.order.placed", version=1)
class _Placed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str
    quantity: Annotated[int, Lenient, Field(gt=0)]
    lines: list[Annotated[int, Lenient]] = []
    strict_count: int = 0


def _placed(**data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-lenient",
        "source": "/test",
        "type": "test.order.placed.v1",
        "subject": "O-1",
        "data": {"order_id": "O-1", **data},
    }


async def test_a_lenient_field_is_stored_as_converted_so_flows_read_what_was_validated() -> None:
    log = MemoryLog()
    registry = SchemaRegistry([])
    registry.register_model(_Placed)
    ingress = Ingress(log, registry, IngressSettings(), EVENTS_TOPIC)

    answer = await ingress.accept(
        json.dumps(_placed(quantity=" 10 ", lines=["1", 2.0])).encode(), CE["content-type"]
    )

    assert answer.status == 202, answer.body
    [record] = log.read(EVENTS_TOPIC)
    assert json.loads(record.value)["data"] == {"order_id": "O-1", "quantity": 10, "lines": [1, 2]}


async def test_a_lenient_field_keeps_its_constraints_and_others_stay_strict() -> None:
    registry = SchemaRegistry([])
    registry.register_model(_Placed)
    ingress = Ingress(MemoryLog(), registry, IngressSettings(), EVENTS_TOPIC)

    answer = await ingress.accept(
        json.dumps(_placed(quantity="0", strict_count="3")).encode(), CE["content-type"]
    )

    assert answer.status == 422
    assert sorted(e["path"] for e in answer.body["errors"]) == [
        "data.quantity",
        "data.strict_count",
    ]


def _processor(registry: SchemaRegistry) -> Processor:
    return Processor(
        [],
        registry,
        cast(Connections, None),  # no flow consumes the events: no connection is used
        retry=RetryPolicy(),
        concurrency=1,
        params={},
        ledger=MemoryLedger(),
    )


async def test_a_record_from_another_producer_is_read_strictly_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The batch's prepare needs the id, process needs it again, then the event is
    # validated: one strict read serves all three.
    registry = SchemaRegistry([])
    registry.register_model(_Placed)
    processor = _processor(registry)
    reads: list[bytes] = []

    def counted(value: bytes | None, headers: Any) -> Any:
        reads.append(value or b"")
        return read_record(value, headers)

    monkeypatch.setattr(processor_module, "read_record", counted)
    monkeypatch.setattr(codec, "read_record", counted)  # what decode_record calls
    value = json.dumps(_placed(quantity=3)).encode()
    record = Record(EVENTS_TOPIC, 0, 0, "O-1", value)

    await processor.prepare([record])
    result = await processor.process(record)

    assert reads == [value]
    assert (result.event_id, [o.status for o in result.outcomes]) == ("evt-lenient", ["filtered"])


async def test_a_prepared_record_with_duplicate_names_is_still_dead_lettered() -> None:
    registry = SchemaRegistry([])
    registry.register_model(_Placed)
    processor = _processor(registry)
    value = b'{"specversion":"1.0","id":"e-1","id":"e-2","source":"/t","type":"x"}'
    record = Record(EVENTS_TOPIC, 0, 0, "k", value)

    await processor.prepare([record])
    result = await processor.process(record)

    [outcome] = result.outcomes
    assert outcome.status == "dead_lettered"
    assert "duplicate" in outcome.detail.lower()


# -- records already in the stored form are read fast, and exactly as strictly -----------


def _read_both(value: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """`read_record` of ``value`` as it is, and with the fast read of the stored form off."""

    def outcome() -> Any:
        try:
            return read_record(value, ())
        except (JsonTextError, EventValidationError) as exc:
            return type(exc), str(exc)

    fast = outcome()
    with monkeypatch.context() as patched:
        patched.setattr(codec, "canonical", lambda _data: NOT_CANONICAL)
        strict = outcome()
    return fast, strict


def _stored(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


@pytest.mark.parametrize(
    "value",
    [
        _stored(closed_won()),
        _stored(closed_won() | {"dataschema": None, "extra1": 7}),  # a null attribute
        _stored(closed_won() | {"datacontenttype": "application/json"}),
        _stored({k: v for k, v in closed_won().items() if k != "data"} | {"data": None}),
        _stored(
            {k: v for k, v in closed_won().items() if k != "data"}
            | {"datacontenttype": "text/plain", "data_base64": "aGk="}
        ),
        _stored(
            {k: v for k, v in closed_won().items() if k != "data"}
            | {"datacontenttype": "application/json", "data_base64": "e30x"}  # not JSON
        ),
        _stored(closed_won() | {"data": "x", "datacontenttype": "application/xml"}),
        _stored(closed_won() | {"data": {"n": 1}, "datacontenttype": "text/plain"}),
        json.dumps(closed_won()).encode(),
        b"\xef\xbb\xbf" + _stored(closed_won()),
        _stored(closed_won())[:-1] + b',"id":"again"}',
        _stored(closed_won(amount=1e20)),
        _stored(closed_won(amount=18446744073709551615)),
        _stored(closed_won())[:-2] + b',"big":18446744073709551616}}',
        _stored(closed_won())[:-2] + b',"e":"\\u00e9\\/"}}',
        _stored(closed_won())[:-2] + b',"n":1E5}}',
        b'{"specversion":"1.0"}',
        b'{"a":[1,2]}',
    ],
)
def test_a_record_in_the_stored_form_is_read_as_the_strict_reader_reads_it(
    value: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, strict = _read_both(value, monkeypatch)
    assert fast == strict
    if isinstance(fast, tuple) and isinstance(fast[0], dict):
        assert [type(v) for v in fast[0].values()] == [type(v) for v in strict[0].values()]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(
    data=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=6), children, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_any_data_in_the_stored_form_is_read_as_the_strict_reader_reads_it(
    data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = closed_won() | {"data": data}
    for value in (
        json.dumps(event).encode(),
        json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode(),
    ):
        fast, strict = _read_both(value, monkeypatch)
        assert fast == strict
        if isinstance(fast, tuple) and isinstance(fast[0], dict):
            # the same bytes, so the same values of the same types
            assert fast[1] == strict[1]
