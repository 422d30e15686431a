"""The Kafka runtime: the same flows on faust-streaming, for more than one machine.

``platypus web`` (`run_web`) produces accepted events with ``acks=all``;
``platypus worker`` (`run_worker`, `KafkaRuntime`) consumes them, as many
workers as there are partitions to share; ``platypus indexer`` (`run_indexer`)
keeps the failed-event store and outcome history and serves ``/ops``.
docs/kafka.md has the whole picture.
"""

from platypus.runtime.kafka.indexer import KafkaIndexer, run_indexer
from platypus.runtime.kafka.ledger import SqliteLedger, SqlLedger
from platypus.runtime.kafka.pollers import backfill_on_kafka, run_pollers
from platypus.runtime.kafka.producer import KafkaEventSink
from platypus.runtime.kafka.settings import BROKER_ENV, settings_for
from platypus.runtime.kafka.topics import ensure_topics, wait_for_broker
from platypus.runtime.kafka.web import run_web
from platypus.runtime.kafka.worker import KafkaRuntime, run_worker

__all__ = [
    "BROKER_ENV",
    "KafkaEventSink",
    "KafkaIndexer",
    "KafkaRuntime",
    "SqlLedger",
    "SqliteLedger",
    "backfill_on_kafka",
    "ensure_topics",
    "run_indexer",
    "run_pollers",
    "run_web",
    "run_worker",
    "settings_for",
    "wait_for_broker",
]
