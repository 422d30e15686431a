"""The OAuth 2.0 client-credentials token of a Zuora connection, cached until near expiry.

Zuora tokens live about an hour and the token endpoint is rate limited per IP
address, so one token serves every call until ``margin`` seconds before it
expires. Concurrent calls share one fetch. A 401 drops the token it was sent
with (`invalidate`), so the next `get` fetches a new one, once, however many
calls saw the 401.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import SecretStr

__all__ = ["Token", "TokenCache"]


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and the monotonic time it expires at."""

    value: SecretStr
    expires_at: float

    def __repr__(self) -> str:
        return f"Token(value=**********, expires_at={self.expires_at:.0f})"


Fetch = Callable[[], Awaitable[tuple[SecretStr, float]]]
"""Fetches a new token: its value and its lifetime in seconds (``expires_in``)."""


class TokenCache:
    """Holds the current token; `get` fetches one when none is valid for ``margin`` more."""

    def __init__(
        self, fetch: Fetch, *, margin: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._margin = margin
        self.clock = clock
        """Monotonic seconds; replaceable, so tests can move time on."""
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many tokens were fetched (for logs and tests)."""

    @property
    def current(self) -> Token | None:
        return self._token

    def _fresh(self, token: Token | None) -> bool:
        return token is not None and self.clock() < token.expires_at - self._margin

    async def get(self) -> Token:
        """A token valid for at least ``margin`` more seconds, fetched if need be."""
        token = self._token
        if self._fresh(token):
            assert token is not None
            return token
        async with self._lock:
            token = self._token  # another call may have fetched one while we waited
            if self._fresh(token):
                assert token is not None
                return token
            started = self.clock()
            value, lifetime = await self._fetch()
            self.fetches += 1
            self._token = Token(value, started + lifetime)
            return self._token

    def invalidate(self, token: Token) -> None:
        """Forget ``token`` (the vendor refused it), unless a newer one already replaced it."""
        if self._token is token:
            self._token = None

    def clear(self) -> None:
        self._token = None

    def __repr__(self) -> str:
        return f"TokenCache(margin={self._margin:g}, token={self._token!r})"
