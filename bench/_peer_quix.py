"""Kafka peer: a quixstreams application doing the work (validate, map, sink).

Runs in its own virtual environment (``bench/.venvs/quixstreams``, made by
`bench/kafka_peers.py` from PyPI), since quixstreams pins its own pydantic and
confluent-kafka; the schema is loaded from the same source files
(`bench._opportunity.load_typed_model`). One streaming dataframe over the
topic, bytes in, the work in ``update``; quixstreams's defaults otherwise
(commits every 5 s), with the join timeouts of FACTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quixstreams import Application

from bench._peer_work import Source, handle


def main() -> None:
    source = Source.from_env()
    app = Application(
        broker_address=source.bootstrap,
        consumer_group=source.group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        consumer_extra_config={
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "broker.address.family": "v4",
        },
        producer_extra_config={"broker.address.family": "v4"},
    )
    topic = app.topic(source.topic, value_deserializer="bytes", key_deserializer="bytes")
    frame = app.dataframe(topic)
    frame.update(handle)
    app.run()


if __name__ == "__main__":
    main()
