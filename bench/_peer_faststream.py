"""Kafka peer: a FastStream subscriber doing the work (validate, map, sink).

Run by `bench/kafka_peers.py` with the environment `bench._peer_work` reads.
One subscriber with FastStream's defaults (one message at a time, its default
acknowledgement), and the join timeouts of FACTS.md. The handler takes the raw
body and validates it itself, like every other peer, so what differs is the
framework around the same work.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage

from bench._peer_work import Source, handle

source = Source.from_env()
broker = KafkaBroker(source.bootstrap)
app = FastStream(broker)


# The decorator is untyped where FastStream is not installed (CI installs no `bench` extra).
@broker.subscriber(  # type: ignore[untyped-decorator,unused-ignore]
    source.topic,
    group_id=source.group,
    auto_offset_reset="earliest",
    session_timeout_ms=6000,
    rebalance_timeout_ms=3000,
    heartbeat_interval_ms=1000,
)
async def on_event(message: KafkaMessage) -> None:
    handle(message.body)


if __name__ == "__main__":
    asyncio.run(app.run())
