"""Kafka peer: a raw aiokafka ``getmany`` loop (validate, map, sink; commit per fetch).

Run by `bench/kafka_peers.py` with the environment `bench._peer_work` reads.
The fewest layers between the broker and the work: what Platypus's worker
would cost with nothing of its own around the work. Commits after each fetch
is handled (at least once), in a consumer group with the join timeouts of
FACTS.md (3 s to join Tansu instead of 30).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer

from bench._peer_work import Source, handle


async def consume(source: Source) -> None:
    consumer = AIOKafkaConsumer(
        source.topic,
        bootstrap_servers=source.bootstrap,
        group_id=source.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        rebalance_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                for record in records:
                    handle(record.value)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(consume(Source.from_env()))
