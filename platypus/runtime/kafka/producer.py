"""The ingress's `EventSink` on Kafka: produced with ``acks=all`` before the answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from platypus.config import KafkaSettings
from platypus.records import REJECTED, NewRecord, Placement

__all__ = ["KafkaEventSink"]


class KafkaEventSink:
    """Produces accepted events, and refused bodies to the rejected topic."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._client: Any = None

    async def start(self) -> None:
        """Connect the producer (inside the running event loop, as aiokafka requires)."""
        from aiokafka import AIOKafkaProducer

        self._client = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            enable_idempotence=self.settings.idempotent_producer,
        )
        await self._client.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._client is not None:
            await self._client.stop()
            self._client = None

    @property
    def _producer(self) -> Any:
        if self._client is None:
            raise RuntimeError("the Kafka sink is not started")
        return self._client

    async def append(self, topic: str, records: Sequence[NewRecord]) -> list[Placement | None]:
        """Produce every record and wait for the broker to acknowledge all of them."""
        futures = [
            await self._producer.send(
                topic, value=item.value, key=item.key.encode(), headers=list(item.headers)
            )
            for item in records
        ]
        placed = await asyncio.gather(*futures)
        return [Placement(meta.partition, meta.offset) for meta in placed]

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        """Produce the refused body and reasons to the rejected topic; its offset is the id."""
        record = {
            "reason": reason,
            "errors": list(errors),
            "body": body.decode("utf-8", "replace"),
            "received_at": time.time(),
        }
        meta = await self._producer.send_and_wait(
            self.settings.topic(REJECTED), value=json.dumps(record).encode()
        )
        return int(meta.offset)
