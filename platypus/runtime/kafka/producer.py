"""The ingress's `EventSink` on Kafka: produced with ``acks=all`` before the answer.

With an `IngestDedupe` (``platypus web`` with ``failures_store``: the shared
`platypus.ops.dedupe.SharedDedupe`), a second copy of an event with the same
(source, id), posted to any replica, is answered as a duplicate and not produced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from platypus.config import KafkaSettings
from platypus.records import REJECTED, NewRecord, Placement

__all__ = ["IngestDedupe", "KafkaEventSink"]


class IngestDedupe(Protocol):
    """The (source, id) of events produced, shared by every producing replica."""

    async def claim(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Claim ``keys``; those now the caller's to produce (the others: duplicates)."""
        ...

    async def finish(self, keys: Sequence[tuple[str, str]]) -> None:
        """The claimed keys are on the broker."""
        ...

    async def release(self, keys: Sequence[tuple[str, str]]) -> None:
        """Producing the claimed keys failed: let them be claimed again."""
        ...


class KafkaEventSink:
    """Produces accepted events, and refused bodies to the rejected topic."""

    def __init__(self, settings: KafkaSettings, *, dedupe: IngestDedupe | None = None) -> None:
        self.settings = settings
        self.dedupe = dedupe
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
        """Produce every record and wait for the broker to acknowledge all of them.

        With de-duplication, a record whose (source, id) was produced before (by
        any replica, or earlier in ``records``) is not produced: None in its place.
        """
        keys = [item.dedupe for item in records]
        if self.dedupe is None or not any(keys):
            return list(await self._produce(topic, records))
        ours = await self.dedupe.claim([k for k in keys if k is not None])
        chosen: list[int] = []
        taken: set[tuple[str, str]] = set()
        for index, key in enumerate(keys):
            if key is None:
                chosen.append(index)
            elif key in ours and key not in taken:
                taken.add(key)
                chosen.append(index)
        try:
            placed = await self._produce(topic, [records[i] for i in chosen])
        except BaseException:
            await self.dedupe.release(sorted(ours))
            raise
        await self.dedupe.finish(sorted(ours))
        out: list[Placement | None] = [None] * len(records)
        for index, where in zip(chosen, placed, strict=True):
            out[index] = where
        return out

    async def _produce(self, topic: str, records: Sequence[NewRecord]) -> list[Placement]:
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
