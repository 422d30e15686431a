"""Which broker and topics a Kafka process uses: ``kafka:`` in platypus.yaml, overridable."""

from __future__ import annotations

import os

from platypus.config import KafkaSettings, ProjectConfig

__all__ = ["BROKER_ENV", "settings_for"]

BROKER_ENV = "PLATYPUS_BROKER"
"""Overrides ``kafka.broker``: ``kafka://host:port`` or just ``host:port``."""


def settings_for(config: ProjectConfig, broker: str | None = None) -> KafkaSettings:
    """The Kafka settings, with ``broker`` (or ``PLATYPUS_BROKER``) overriding the file."""
    chosen = broker or os.environ.get(BROKER_ENV)
    if not chosen:
        return config.kafka
    if "://" not in chosen:
        chosen = f"kafka://{chosen}"
    return config.kafka.model_copy(update={"broker": chosen})
