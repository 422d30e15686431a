"""Kafka peer: a bare faust agent doing the work (validate, map, sink).

::

    python bench/_peer_faust.py worker --loglevel warn

Run by `bench/kafka_peers.py` with the environment `bench._peer_work` reads.
The settings are the Platypus worker's consumer settings, tuned as FACTS.md
says (raw serializers, a 3 s group join, commits every 0.5 s), and faust's
own automatic acknowledgement: this is what faust itself costs around the
same work, the yardstick the Kafka targets are set against.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faust

from bench._peer_work import Source, handle

source = Source.from_env()
app = faust.App(
    source.group,
    broker=f"kafka://{source.bootstrap}",
    value_serializer="raw",
    key_serializer="raw",
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=6,
    broker_rebalance_timeout=3,
    broker_heartbeat_interval=1,
    broker_commit_interval=0.5,
    topic_partitions=source.partitions,
    topic_allow_declare=False,
    topic_disable_leader=True,
    web_enabled=False,
)
topic = app.topic(source.topic, key_type=bytes, value_type=bytes, partitions=source.partitions)


@app.agent(topic)
async def consume(stream: Any) -> None:
    async for value in stream:
        handle(value)


if __name__ == "__main__":
    app.main()
