"""The ``Idempotency-Key`` a Zuora write carries, and when it must change.

Zuora stores the answer to a request with an idempotency key for 24 hours,
*whether the request succeeded or failed*, and answers every later request with
that key from the store. A key that got a failure can therefore never succeed
again: a retry after lock contention, or after "the account does not exist" once
the account does, would only read the stored failure back.

So each step's writes walk a chain of keys: ``<event id>:<flow>:<step>`` first,
then ``...#2``, ``...#3``. The chain moves on only after Zuora *answered* a
failure (``success: false``, or a 4xx with Zuora's reasons): such a request
changed nothing, so the next attempt is a new request. After a timeout, a reset or
a 5xx nobody knows whether the write was applied, so the key stays and the retry
reads Zuora's stored answer. The chain is the same in every process: one that
starts without the memory of earlier failures walks it again, each stored
failure answering at once, until the key that has not failed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["IdempotencyKeys", "answered_failure", "idempotency_key"]

_MAX_KEY = 255  # Zuora: "less than 255 characters"
# Not Zuora's answer to the request: a refused token (401), a request still in
# flight (409), a key reused with another body (422: the stored answer is for
# that other request), the gateway's limits (408, 429) and server errors (5xx).
_NOT_ANSWERED = frozenset({401, 408, 409, 422, 429})


def answered_failure(status: int, vendor_code: str | None) -> bool:
    """Whether Zuora processed the request and answered that it failed (nothing changed)."""
    return vendor_code is not None and status < 500 and status not in _NOT_ANSWERED


def idempotency_key(key: str) -> str:
    """The key as sent: as is when short enough, else a digest that is just as stable."""
    if len(key) < _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class IdempotencyKeys:
    """Where each step's key chain is (in memory; forgetting only costs a walk)."""

    def __init__(self, remember: int = 10_000) -> None:
        self._remember = remember
        self._links: OrderedDict[str, int] = OrderedDict()  # base key -> link in the chain

    def current(self, base: str) -> str:
        """The key the next write of ``base`` (``<event id>:<flow>:<step>``) carries."""
        link = self._links.get(base, 1)
        return idempotency_key(base if link == 1 else f"{base}#{link}")

    def failed(self, base: str, sent: str) -> None:
        """Zuora answered a failure to the write sent with ``sent``: move past that key."""
        if self.current(base) != sent:
            return  # another call moved the chain on already
        self._links[base] = self._links.get(base, 1) + 1
        self._links.move_to_end(base)
        while len(self._links) > self._remember:
            self._links.popitem(last=False)
