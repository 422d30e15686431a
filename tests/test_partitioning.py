"""Partitioning: Kafka's murmur2 and default partitioner, bit for bit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platypus.partitioning import murmur2, partition_for

# Kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
KAFKA_VECTORS = [
    ("21", -973932308),
    ("foobar", -790332482),
    ("a-little-bit-long-string", -985981536),
    ("a-little-bit-longer-string", -1486304829),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    ("abc", 479470107),
]


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafka_test_vectors(key: str, expected: int) -> None:
    assert murmur2(key.encode()) == expected


def _int(value: int) -> int:
    """Wrap to a signed 32-bit Java int."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _ushr(value: int, bits: int) -> int:
    """Java's >>> on an int."""
    return (value & 0xFFFFFFFF) >> bits


def java_murmur2(data: bytes) -> int:
    """A line-by-line transcription of Kafka's Utils.murmur2, with Java int arithmetic."""
    length = len(data)
    seed = _int(0x9747B28C)
    m = 0x5BD1E995
    r = 24
    h = _int(seed ^ length)
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = _int(
            (data[i4] & 0xFF)
            + ((data[i4 + 1] & 0xFF) << 8)
            + ((data[i4 + 2] & 0xFF) << 16)
            + ((data[i4 + 3] & 0xFF) << 24)
        )
        k = _int(k * m)
        k ^= _ushr(k, r)
        k = _int(k * m)
        h = _int(h * m)
        h = _int(h ^ k)
    rest = length % 4
    if rest == 3:
        h = _int(h ^ ((data[(length & ~3) + 2] & 0xFF) << 16))
    if rest >= 2:
        h = _int(h ^ ((data[(length & ~3) + 1] & 0xFF) << 8))
    if rest >= 1:
        h = _int(h ^ (data[length & ~3] & 0xFF))
        h = _int(h * m)
    h = _int(h ^ _ushr(h, 13))
    h = _int(h * m)
    h = _int(h ^ _ushr(h, 15))
    return h


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS)
def test_reference_transcription_matches_kafka_vectors(key: str, expected: int) -> None:
    assert java_murmur2(key.encode()) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_murmur2_equals_the_java_transcription_for_any_bytes(data: bytes) -> None:
    assert murmur2(data) == java_murmur2(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_murmur2_is_a_signed_32_bit_int(data: bytes) -> None:
    assert -(2**31) <= murmur2(data) < 2**31


def test_murmur2_of_empty_input() -> None:
    assert murmur2(b"") == java_murmur2(b"")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.integers(min_value=1, max_value=1024))
def test_partition_for_is_in_range_and_stable(key: str, partitions: int) -> None:
    partition = partition_for(key, partitions)
    assert 0 <= partition < partitions
    assert partition_for(key, partitions) == partition


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.integers(min_value=1, max_value=1024))
def test_partition_for_is_kafkas_to_positive_modulo(key: str, partitions: int) -> None:
    assert partition_for(key, partitions) == (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def test_partition_for_encodes_keys_as_utf8() -> None:
    assert partition_for("Zürich", 97) == (java_murmur2("Zürich".encode()) & 0x7FFFFFFF) % 97


def test_one_partition_takes_every_key() -> None:
    assert {partition_for(f"k{n}", 1) for n in range(100)} == {0}


def test_keys_spread_over_partitions() -> None:
    counts = [0] * 8
    for n in range(4000):
        counts[partition_for(f"0065g{n:010d}", 8)] += 1
    assert min(counts) > 350


@pytest.mark.parametrize("partitions", [0, -1])
def test_partition_count_below_one_is_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_for("k", partitions)
