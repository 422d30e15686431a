"""Which partition an event's key goes to: Kafka's default partitioner, exactly.

The embedded log and the Kafka runtime must agree, so one record's events land
in the same partition whichever runtime wrote them: ``murmur2(key) & 0x7fffffff
% partitions``, as in Kafka's ``BuiltInPartitioner.partitionForKey``.
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for"]

_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash (seed 0x9747b28c), as a signed Java int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK32
    full = length & ~3
    for i in range(0, full, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = (h * _M) & _MASK32
        h ^= k
    rest = length & 3
    if rest == 3:
        h ^= data[full + 2] << 16
    if rest >= 2:
        h ^= data[full + 1] << 8
    if rest >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
