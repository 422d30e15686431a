"""Leases in the failed-event store: one process at a time does a job over the store.

The **indexer lease** is held by whichever indexer indexes dead letters, appends
replays and settles them for a store. Two indexers on one store (the app's own
and one started beside it, the CLI's and the app's, two apps sharing a
PostgreSQL store) would otherwise both append the same replays; with the lease,
one works and the other stands by until the lease is free.

A lease expires ``ttl`` seconds after it was last renewed; every write made
under it (`FailureStore.mark_replayed`, `record_failures`, `settle`) renews it in
its own transaction, or fails with `LeaseLostError` when the lease has moved on.
A holder killed with SIGKILL frees its lease at once for processes on the same
host (its pid is gone), and for everyone else when the lease expires.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from typing import Any

from platypus.ops.store import FailureStore, Lease

__all__ = ["DEFAULT_TTL", "INDEXER_LEASE", "StoreLease", "process_gone", "this_host"]

INDEXER_LEASE = "platypus.indexer"
"""The lease of the indexer: dead letters in, replays out, replays settled."""

DEFAULT_TTL = 30.0
"""Seconds a lease stays held without being renewed."""


@functools.cache
def this_host() -> str:
    """This machine's name and pid namespace: where a pid means the same process."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}" if namespace else socket.gethostname()


def process_gone(host: str, pid: int) -> bool:
    """Whether the holder ``pid`` on ``host`` is known to be gone (only said for this host)."""
    if host != this_host() or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    try:  # killed but not yet reaped by its parent: as good as gone
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] in {"Z", "X"}
    except (OSError, IndexError):
        return False


class StoreLease:
    """One holder's view of a lease in a `FailureStore`.

    ``acquire`` takes the lease or renews it, and says whether it is held;
    ``current`` is the held `Lease` (pass it to the store's writes as the fence).
    """

    def __init__(
        self,
        store: FailureStore,
        name: str = INDEXER_LEASE,
        *,
        ttl: float = DEFAULT_TTL,
        detail: str = "",
    ) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.detail = detail
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.current: Lease | None = None

    def acquire(self) -> Lease | None:
        """Take or renew the lease; the held `Lease`, or None while another has it."""
        self.current = self.store.acquire_lease(
            self.name,
            self.holder,
            host=this_host(),
            pid=os.getpid(),
            ttl=self.ttl,
            detail=self.detail,
            gone=process_gone,
        )
        return self.current

    def release(self) -> None:
        """Give the lease up (a no-op when not held)."""
        held, self.current = self.current, None
        if held is not None:
            self.store.release_lease(held)

    def holder_now(self) -> dict[str, Any] | None:
        """Who holds the lease in the store now (for messages), or None."""
        return self.store.lease_holder(self.name)
