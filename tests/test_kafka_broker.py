"""The Kafka test plumbing, proved with real traffic against the broker fixture."""

from __future__ import annotations

import threading

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, TopicPartition

from platypus.partitioning import partition_for
from tests.kafka_broker import KafkaBroker, Record, start_tansu


def test_created_topic_has_the_partitions_asked_for(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("three")
    kafka_broker.create_topic(topic, partitions=3)
    assert kafka_broker.partitions(topic) == [0, 1, 2]


def test_creating_an_existing_topic_keeps_it(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("twice")
    kafka_broker.create_topic(topic, partitions=2)
    kafka_broker.create_topic(topic, partitions=2)
    assert kafka_broker.partitions(topic) == [0, 1]


def test_records_with_headers_read_back_identically(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("roundtrip")
    kafka_broker.create_topic(topic, partitions=3)
    kafka_broker.produce(
        topic,
        [
            (b"acct-1", b'{"n": 1}', [("event-id", b"e1"), ("trace", b"\x00\xff")]),
            (None, b'{"n": 2}', []),
        ],
        partition=2,
    )
    kafka_broker.produce(topic, [(b"acct-2", b'{"n": 3}', [("dup", b"a"), ("dup", b"b")])], 0)

    assert kafka_broker.read(topic, expected=3) == [
        Record(topic, 0, 0, b"acct-2", b'{"n": 3}', [("dup", b"a"), ("dup", b"b")]),
        Record(topic, 2, 0, b"acct-1", b'{"n": 1}', [("event-id", b"e1"), ("trace", b"\x00\xff")]),
        Record(topic, 2, 1, None, b'{"n": 2}', []),
    ]


def test_read_of_an_empty_topic_is_empty(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("empty")
    kafka_broker.create_topic(topic, partitions=2)
    assert kafka_broker.read(topic) == []


async def test_looking_at_an_unknown_topic_does_not_create_it(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("unknown")
    assert kafka_broker.read(topic) == []
    assert kafka_broker.end_offsets(topic) == {}
    assert kafka_broker.partitions(topic) == []


async def test_aiokafka_partitions_keys_as_partition_for(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("keys")
    kafka_broker.create_topic(topic, partitions=6)
    keys = [f"customer-{i}" for i in range(50)]

    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(topic, b"{}", key=key.encode())
    finally:
        await producer.stop()

    records = kafka_broker.read(topic, expected=len(keys))
    placed = {r.key.decode(): r.partition for r in records if r.key is not None}
    assert placed == {key: partition_for(key, 6) for key in keys}
    assert len(set(placed.values())) > 1  # the keys really spread out


def test_keyed_produce_partitions_as_partition_for(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("keys-confluent")
    kafka_broker.create_topic(topic, partitions=5)
    keys = [f"order-{i}" for i in range(50)]
    kafka_broker.produce(topic, [(key.encode(), b"{}", []) for key in keys])

    placed = {r.key.decode(): r.partition for r in kafka_broker.read(topic) if r.key}
    assert placed == {key: partition_for(key, 5) for key in keys}


def test_end_offsets_count_produced_records(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("ends")
    kafka_broker.create_topic(topic, partitions=3)
    assert kafka_broker.end_offsets(topic) == {0: 0, 1: 0, 2: 0}

    kafka_broker.produce(topic, [(None, b"x", [])] * 4, partition=0)
    kafka_broker.produce(topic, [(None, b"y", [])], partition=2)
    assert kafka_broker.end_offsets(topic) == {0: 4, 1: 0, 2: 1}


def test_group_commit_is_visible_through_committed(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("commits")
    group = kafka_broker.unique_name("group")
    kafka_broker.create_topic(topic, partitions=2)
    kafka_broker.produce(topic, [(None, b"x", [])] * 3, partition=0)
    assert kafka_broker.committed(group, topic) == {0: -1, 1: -1}

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    finally:
        consumer.close()

    assert kafka_broker.committed(group, topic) == {0: 2, 1: -1}
    assert kafka_broker.committed(group, topic, missing=0) == {0: 2, 1: 0}


def test_read_waits_for_expected_records_still_to_come(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("late")
    kafka_broker.create_topic(topic, partitions=2)
    kafka_broker.produce(topic, [(None, b"first", [])], partition=0)
    later = threading.Timer(0.3, kafka_broker.produce, (topic, [(None, b"second", [])], 1))
    later.start()
    try:
        records = kafka_broker.read(topic, expected=2)
    finally:
        later.join()
    assert [r.value for r in records] == [b"first", b"second"]


def test_read_times_out_saying_what_it_read(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.unique_name("short")
    kafka_broker.create_topic(topic, partitions=1)
    kafka_broker.produce(topic, [(None, b"only", [])])
    with pytest.raises(TimeoutError, match="read 1 of 2"):
        kafka_broker.read(topic, expected=2, timeout=0.5)


def test_own_tansu_restarts_on_its_port_empty() -> None:
    with start_tansu() as first:
        topic = first.unique_name("gone")
        first.create_topic(topic, partitions=1)
        first.produce(topic, [(None, b"x", [])])
        port = int(first.bootstrap.rsplit(":", 1)[1])
    with start_tansu(port) as again:
        assert again.bootstrap == first.bootstrap
        assert again.partitions(topic) == []
