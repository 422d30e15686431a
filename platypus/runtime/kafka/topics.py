"""The topics a Kafka deployment needs, created when missing, and waiting for the broker."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from platypus.config import KafkaSettings
from platypus.exceptions import ConfigurationError
from platypus.records import DEAD_LETTER, EVENTS, OUTCOMES, REJECTED
from platypus.runtime.kafka.settings import BROKER_ENV

__all__ = ["ensure_topics", "wait_for_broker"]

_log = structlog.get_logger("platypus.runtime")


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the events, dead-letter, outcomes and rejected topics if they do not exist."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.topic(name), count, settings.replication_factor)
            for name, count in (
                (EVENTS, settings.partitions),
                (DEAD_LETTER, settings.partitions),
                (OUTCOMES, settings.partitions),
                (REJECTED, 1),
            )
            if settings.topic(name) not in existing
        ]
        if wanted:
            # Another worker may have created them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def wait_for_broker(settings: KafkaSettings, patience: float = 60.0) -> None:
    """Block until the broker answers and the topics exist; `ConfigurationError` after
    ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while True:
        try:
            asyncio.run(ensure_topics(settings))
            return
        except Exception as exc:  # noqa: BLE001 -- retried, then reported
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"cannot reach the Kafka broker at {settings.broker}: {exc}. "
                    f"Check kafka.broker in platypus.yaml or {BROKER_ENV}."
                ) from None
            _log.warning("broker not reachable yet, retrying", broker=settings.broker)
            time.sleep(1.0)
