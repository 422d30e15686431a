"""What only the Kafka runtime does: the CloudEvents Kafka bindings, ``platypus web``.

Records are produced and read with confluent-kafka, an independent Kafka client,
against a real Kafka-protocol broker over TCP.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from platypus.deadletter import CONNECT_HEADERS, describe_headers
from platypus.partitioning import partition_for
from platypus.records import EVENT_ID_HEADER, VALIDATED_HEADER
from platypus.runtime.codec import decode_record
from tests.fakes.vendor import FakeVendor
from tests.kafka_broker import KafkaBroker
from tests.runtimes import (
    KafkaDriver,
    kafka_ingress,
    start_web,
    start_worker,
    stop_worker,
    wait_worker_healthy,
    write_kafka_project,
)
from tests.support import ORDER_FLOW, closed_won, free_port, wait_healthy

# -- decoding, pure ----------------------------------------------------------------


def test_a_structured_mode_record_is_the_event_itself() -> None:
    event = closed_won()
    decoded, problem = decode_record(
        json.dumps(event).encode(), [("content-type", b"application/cloudevents+json")]
    )
    assert (decoded, problem) == (event, None)


def test_a_binary_mode_record_takes_its_attributes_from_ce_headers() -> None:
    event = closed_won()
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event["id"].encode()),
        ("ce_source", b"/salesforce/test"),
        ("ce_type", b"sales.opportunity.closed_won.v1"),
        ("ce_subject", event["subject"].encode()),
        ("content-type", b"application/json"),
    ]
    decoded, problem = decode_record(json.dumps(event["data"]).encode(), headers)

    assert problem is None
    assert decoded == {
        "specversion": "1.0",
        "id": event["id"],
        "source": "/salesforce/test",
        "type": "sales.opportunity.closed_won.v1",
        "subject": event["subject"],
        "datacontenttype": "application/json",
        "data": event["data"],
    }


def test_a_binary_mode_record_of_text_or_bytes_is_read_into_the_stored_form() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"evt-x"),
        ("ce_source", b"/soap"),
        ("ce_type", b"test.soap.notification.v1"),
        ("ce_subject", b"N-1"),
    ]
    xml, problem = decode_record(b"<a>\xc3\xa9</a>", [*headers, ("content-type", b"text/xml")])
    raw, _ = decode_record(b"\x00\xff", [*headers, ("content-type", b"application/pdf")])

    assert problem is None
    assert xml is not None
    assert (xml["data"], xml["datacontenttype"]) == ("<a>é</a>", "text/xml")
    assert raw is not None
    assert (raw["data_base64"], "data" in raw) == ("AP8=", False)


@pytest.mark.parametrize(
    ("value", "headers", "problem"),
    [
        (b"{nope", [], "not a JSON event"),
        (b"[1, 2]", [], "a CloudEvent is a JSON object"),
        (b'{"id": "a", "id": "b"}', [], 'duplicate name "id"'),
        (b'{"id": NaN}', [], "NaN and Infinity are not JSON numbers"),
        (b"{nope", [("ce_specversion", b"1.0")], "data is not JSON"),
    ],
)
def test_a_record_that_cannot_be_read_says_why(
    value: bytes, headers: list[tuple[str, bytes]], problem: str
) -> None:
    decoded, why = decode_record(value, headers)
    assert decoded is None
    assert why is not None
    assert problem in why


# -- against the broker -------------------------------------------------------------


@pytest.fixture
async def worker(
    tmp_path: Path, fake_vendor: FakeVendor, kafka_broker: KafkaBroker
) -> AsyncIterator[KafkaDriver]:
    settings = write_kafka_project(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, kafka_broker, name="interop"
    )
    process = start_worker(tmp_path)
    try:
        await wait_worker_healthy(process, settings.web_port)
        async with kafka_ingress(settings) as ingress:
            yield KafkaDriver(kafka_broker, settings, ingress)
    finally:
        stop_worker(process)


def _binary(event: dict[str, object]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    attributes = ("specversion", "id", "source", "type", "subject", "time")
    headers = [(f"ce_{name}", str(event[name]).encode()) for name in attributes if name in event]
    headers.append(("content-type", b"application/json"))
    return str(event["subject"]).encode(), json.dumps(event["data"]).encode(), headers


async def test_events_from_a_plain_kafka_client_in_both_bindings_are_delivered(
    worker: KafkaDriver, kafka_broker: KafkaBroker, fake_vendor: FakeVendor
) -> None:
    binary = closed_won(amount=1111)
    structured = closed_won(amount=2222)
    records = [
        _binary(binary),
        (
            structured["subject"].encode(),
            json.dumps(structured).encode(),
            [("content-type", b"application/cloudevents+json")],
        ),
    ]
    await asyncio.to_thread(kafka_broker.produce, worker.events_topic, records)
    await fake_vendor.wait_for(2, path="/orders", within=30)
    await worker.drain()

    received = {r.json["amount"]: r for r in fake_vendor.requests_to("/orders")}
    assert set(received) == {1111, 2222}
    assert received[1111].json["external_id"] == binary["subject"]
    assert received[1111].headers["idempotency-key"] == f"{binary['id']}:orders:create_order"


def _sdk_event(event: dict[str, Any]) -> Any:
    """``event`` as the official CloudEvents SDK's own event object."""
    from cloudevents.core.v1.event import CloudEvent as SdkEvent

    attributes = {k: v for k, v in event.items() if k != "data"}
    if "time" in attributes:
        attributes["time"] = datetime.fromisoformat(str(attributes["time"]))
    attributes["datacontenttype"] = "application/json"
    return SdkEvent(attributes=attributes, data=event["data"])


def _by_subject(event: Any) -> bytes:
    return str(event.get_subject()).encode()


async def test_the_cloudevents_sdk_kafka_bindings_in_both_modes_are_delivered(
    worker: KafkaDriver, kafka_broker: KafkaBroker, fake_vendor: FakeVendor
) -> None:
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.formats.json import JSONFormat

    binary = ce_kafka.to_binary(
        _sdk_event(closed_won(amount=3333)), JSONFormat(), key_mapper=_by_subject
    )
    structured = ce_kafka.to_structured(
        _sdk_event(closed_won(amount=4444)), JSONFormat(), key_mapper=_by_subject
    )
    assert "ce_specversion" in binary.headers  # the SDK really wrote binary mode
    assert structured.headers == {"content-type": b"application/cloudevents+json"}
    records = [
        (message.key, message.value, list(message.headers.items()))
        for message in (binary, structured)
    ]
    await asyncio.to_thread(kafka_broker.produce, worker.events_topic, records)
    await fake_vendor.wait_for(2, path="/orders", within=30)
    await worker.drain()

    amounts = sorted(r.json["amount"] for r in fake_vendor.requests_to("/orders"))
    assert amounts == [3333, 4444]
    assert worker.dead_letters() == []


# Kafka Connect's Stage enum (org.apache.kafka.connect.runtime.errors.Stage).
_CONNECT_STAGES = {
    "TASK_POLL",
    "TASK_PUT",
    "TRANSFORMATION",
    "KEY_CONVERTER",
    "VALUE_CONVERTER",
    "HEADER_CONVERTER",
    "KAFKA_PRODUCE",
    "KAFKA_CONSUME",
}


async def test_dead_letters_read_with_confluent_kafka_carry_the_ten_connect_headers(
    worker: KafkaDriver, kafka_broker: KafkaBroker, fake_vendor: FakeVendor
) -> None:
    fake_vendor.script(
        "/orders", [(400, {"error": "INVALID_FIELD", "message": "currency not enabled"})]
    )
    refused = closed_won(amount=5555)
    await worker.ingest(refused)
    await fake_vendor.wait_for(1, path="/orders", within=30)
    await worker.produce_raw("not-an-event", b"{nope")
    await worker.drain()

    # confluent-kafka (librdkafka) reads the topic: Platypus's own code is not involved.
    letters = await asyncio.to_thread(
        kafka_broker.read, worker.settings.topic("dead-letter"), expected=2
    )
    by_stage = {}
    for letter in letters:
        names = [name for name, _ in letter.headers if name.startswith("__connect.errors.")]
        assert sorted(names) == sorted(CONNECT_HEADERS)  # all ten, each once
        text = {name: value.decode("utf-8") for name, value in letter.headers}
        for name in ("partition", "offset", "task.id"):
            int(text[f"__connect.errors.{name}"])  # Connect writes them as decimal text
        assert text["__connect.errors.topic"] == worker.events_topic
        assert text["__connect.errors.stage"] in _CONNECT_STAGES
        for name in CONNECT_HEADERS:
            assert text[name], f"{name} is empty"
        by_stage[text["__connect.errors.stage"]] = text

    put, unreadable = by_stage["TASK_PUT"], by_stage["VALUE_CONVERTER"]
    assert put["__connect.errors.connector.name"] == "orders"
    assert put["__connect.errors.class.name"] == "platypus_adapters.http.HttpAdapter"
    assert put["__connect.errors.exception.class.name"] == "platypus.exceptions.PermanentError"
    trace = put["__connect.errors.exception.stacktrace"]
    assert "step 'create_order'" in trace
    assert "calling vendor.post (platypus_adapters.http.HttpAdapter), 1 attempt" in trace
    assert "the vendor answered status 400, code INVALID_FIELD" in trace
    assert "raised at platypus_adapters.http:" in trace
    assert "not a JSON event" in unreadable["__connect.errors.exception.stacktrace"]


async def test_a_binary_mode_dead_letter_keeps_the_original_value_and_ce_headers(
    worker: KafkaDriver, kafka_broker: KafkaBroker, fake_vendor: FakeVendor
) -> None:
    event = closed_won(amount="lots")  # invalid: never validated by an ingress
    key, value, headers = _binary(event)
    await asyncio.to_thread(kafka_broker.produce, worker.events_topic, [(key, value, headers)])
    await worker.drain()

    # Read back with a plain Kafka client, not through Platypus.
    [letter] = await asyncio.to_thread(
        kafka_broker.read, worker.settings.topic("dead-letter"), expected=1
    )
    assert letter.value == value
    assert letter.key == key
    assert [h for h in letter.headers if h[0].startswith("ce_")] == headers[:-1]
    described = describe_headers(letter.headers)
    assert described["platypus.event.id"] == event["id"]
    assert [e["path"] for e in described["platypus.errors"]] == ["data.amount"]
    assert fake_vendor.requests == []


@pytest.mark.parametrize(
    "claim",
    [b"sales.opportunity.closed_won.v1", b"sales.opportunity.closed_won.v1;AAAAAAAAAAAAAAAAAAAAAA"],
    ids=["type-only", "forged-proof"],
)
async def test_a_record_claiming_to_be_validated_is_validated_and_dead_lettered(
    worker: KafkaDriver, kafka_broker: KafkaBroker, fake_vendor: FakeVendor, claim: bytes
) -> None:
    event = closed_won(currency="euro")  # invalid, but the flow's condition still holds
    value = json.dumps(event).encode()
    headers = [
        ("content-type", b"application/cloudevents+json"),
        (EVENT_ID_HEADER, event["id"].encode()),
        (VALIDATED_HEADER, claim),
    ]
    key = event["subject"].encode()
    await asyncio.to_thread(kafka_broker.produce, worker.events_topic, [(key, value, headers)])
    await worker.drain()

    [letter] = await asyncio.to_thread(
        kafka_broker.read, worker.settings.topic("dead-letter"), expected=1
    )
    assert letter.value == value
    described = describe_headers(letter.headers)
    assert [e["path"] for e in described["platypus.errors"]] == ["data.currency"]
    assert fake_vendor.requests == []  # the header did not let it through


async def test_platypus_web_answers_202_once_the_broker_has_the_event(
    tmp_path: Path, kafka_broker: KafkaBroker, fake_vendor: FakeVendor
) -> None:
    settings = write_kafka_project(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, kafka_broker, name="web"
    )
    port = free_port()
    process = start_web(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        event = closed_won()
        async with httpx.AsyncClient(base_url=url) as client:
            accepted = await client.post("/events", json=event)
            refused = await client.post("/events", json=closed_won(amount="lots"))
        # Read at once, with another client: the 202 came after the broker's ack.
        [record] = await asyncio.to_thread(
            kafka_broker.read, settings.topic("events"), expected=1, timeout=2
        )
        [rejected] = await asyncio.to_thread(
            kafka_broker.read, settings.topic("rejected"), expected=1, timeout=2
        )
    finally:
        stop_worker(process)

    assert accepted.status_code == 202
    assert accepted.json()["events"][0]["partition"] == record.partition
    assert record.partition == partition_for(event["subject"], settings.partitions)
    assert json.loads(record.value or b"") == event
    assert record.key == event["subject"].encode()
    assert refused.status_code == 422
    assert json.loads(rejected.value or b"")["errors"][0]["path"] == "data.amount"


async def test_records_platypus_web_writes_read_back_as_cloudevents_with_the_sdk(
    tmp_path: Path, kafka_broker: KafkaBroker, fake_vendor: FakeVendor
) -> None:
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.formats.json import JSONFormat

    settings = write_kafka_project(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, kafka_broker, name="web-ce"
    )
    port = free_port()
    process = start_web(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    event = closed_won()
    try:
        await wait_healthy(url, process)
        async with httpx.AsyncClient(base_url=url) as client:
            accepted = await client.post("/events", json=event)
        [record] = await asyncio.to_thread(kafka_broker.read, settings.topic("events"), expected=1)
    finally:
        stop_worker(process)

    assert accepted.status_code == 202
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    message = ce_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value or b"")
    read = ce_kafka.from_kafka(message, JSONFormat())  # picks the mode by content-type
    assert read.get_id() == event["id"]
    assert read.get_type() == event["type"]
    assert read.get_subject() == event["subject"]
    assert read.get_data() == event["data"]


def _worker_with_one_output(root: Path, *args: str) -> subprocess.Popen[bytes]:
    """``platypus worker`` with stdout and stderr in one pipe, as a container runtime has them."""
    command = Path(sys.executable).parent / "platypus"
    return subprocess.Popen(
        [str(command), "worker", "--project", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
    )


async def test_worker_log_json_is_json_lines_only_with_no_escape_codes(
    tmp_path: Path, kafka_broker: KafkaBroker, fake_vendor: FakeVendor
) -> None:
    settings = write_kafka_project(
        tmp_path, fake_vendor.url, {"orders": ORDER_FLOW}, kafka_broker, name="logjson"
    )
    process = _worker_with_one_output(tmp_path, "--log-json", "--log-level", "info")
    try:
        await wait_worker_healthy(process, settings.web_port)
        # Something to log: a record that is not an event is dead-lettered, with a warning.
        records = [(b"k", b"{nope", [])]
        await asyncio.to_thread(kafka_broker.produce, settings.topic("events"), records)
        await asyncio.to_thread(kafka_broker.read, settings.topic("dead-letter"), expected=1)
    finally:
        stop_worker(process)
    output = process.stdout.read() if process.stdout else b""

    assert b"\x1b" not in output
    assert b"\b" not in output
    lines = [line for line in output.decode().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
