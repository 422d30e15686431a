"""De-duplication at ingest shared by every ``platypus web`` replica, in the store.

On one machine the embedded log drops a second copy of an event with the same
(source, id) in the transaction that would append it. Replicas of ``platypus
web`` on Kafka have no such log, so they share this: a table of the store
(PostgreSQL when they run on several machines).

Events. Before producing, a replica **claims** each (source, id) (one insert:
the first replica wins); it produces what it claimed with ``acks=all``, then
marks the claims done. A copy whose claim is done is a duplicate: answered as
one (``duplicates`` in the 202) and not produced. A copy whose claim is still
pending (another replica is producing it right now) waits for it to be done;
a claim pending longer than ``stale_after`` seconds belongs to a replica that
died between claim and produce, and is taken over, so that event is produced
by the retry instead of being lost. The one window left is a replica killed
after the broker acknowledged and before it marked the claim done: the retry
produces the event again, and the delivery ledger keeps its steps from
reaching a vendor twice.

Webhook delivery ids. The same table keeps (source, delivery id) with the
body's digest, so a re-delivery to any replica is acknowledged without being
appended, and a reused id with another body is refused
(`platypus.sources.replay`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from platypus.ops.store import FailureStore

__all__ = ["SharedDedupe", "shared_dedupe"]

EVENT = "event"
WEBHOOK = "webhook"


class SharedDedupe:
    """(source, id) of events and webhook delivery ids, shared through a `FailureStore`."""

    def __init__(
        self,
        store: FailureStore,
        *,
        stale_after: float = 15.0,
        poll: float = 0.05,
        retention: float = 30 * 86400,
    ) -> None:
        self.store = store
        self.stale_after = stale_after
        self.poll = poll
        self.retention = retention

    # -- events (the Kafka sink's `IngestDedupe`) ---------------------------------------

    async def claim(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Claim each (source, id); the ones now this caller's to produce.

        Returns once every key is either claimed or known done; waits while
        another replica's claim is pending (at most ``stale_after`` seconds).
        """
        wanted = list(dict.fromkeys(keys))
        ours: set[tuple[str, str]] = set()
        deadline = time.monotonic() + self.stale_after * 2
        while wanted:
            found = await asyncio.to_thread(
                self.store.claim_ingest, EVENT, wanted, stale_after=self.stale_after
            )
            ours.update(k for k, state in found.items() if state == "new")
            wanted = [k for k, state in found.items() if state == "pending"]
            if wanted:
                if time.monotonic() > deadline:  # pragma: no cover -- a stuck database
                    raise TimeoutError(f"de-duplication claims still pending: {wanted[:3]}")
                await asyncio.sleep(self.poll)
        return ours

    async def finish(self, keys: Sequence[tuple[str, str]]) -> None:
        """The claimed events are on the broker: copies are duplicates from now on."""
        if keys:
            await asyncio.to_thread(self.store.finish_ingest, EVENT, list(keys))

    async def release(self, keys: Sequence[tuple[str, str]]) -> None:
        """Producing failed: the claims go, so the client's retry can produce them."""
        if keys:
            await asyncio.to_thread(self.store.release_ingest, EVENT, list(keys))

    # -- webhook delivery ids (`platypus.sources.replay.SeenDeliveries`' interface) -----

    async def check(self, source: str, delivery_id: str, digest: str) -> str:
        """``new``, ``same`` (a re-delivery) or ``different`` (a reused id)."""
        found = await asyncio.to_thread(self.store.ingest_digest, WEBHOOK, source, delivery_id)
        if found is None:
            return "new"
        return "same" if found == digest else "different"

    async def remember(self, source: str, delivery_id: str, digest: str) -> None:
        """Record ``delivery_id`` as accepted with a body of ``digest``."""
        await asyncio.to_thread(self.store.remember_ingest, WEBHOOK, source, delivery_id, digest)

    def close(self) -> None:
        """Nothing to release: the store belongs to the process that made it."""

    def forget_old(self) -> int:
        """Drop rows older than ``retention``."""
        return self.store.forget_ingest(datetime.now(UTC) - timedelta(seconds=self.retention))


def shared_dedupe(store_url: str | None) -> SharedDedupe | None:
    """The de-duplication every producer of the events topic shares, or None.

    ``platypus web`` replicas, pollers and ``platypus backfill`` all produce
    events, so all of them claim (source, id) in the same table; without a
    ``failures_store`` there is nothing shared to claim in.
    """
    if not store_url:
        return None
    store = FailureStore(store_url)
    store.create()
    return SharedDedupe(store)
