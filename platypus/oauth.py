"""OAuth 2.0 access tokens of an adapter's connection, cached until shortly before they expire.

Token endpoints are rate limited and slow compared with an API call, so one
token serves every call of a connection until ``margin`` seconds before it
expires. Concurrent calls share one fetch. When the vendor refuses a token
(401), `TokenCache.invalidate` drops that token, so the next `TokenCache.get`
fetches a new one, once, however many calls saw the 401.

The fetch itself (a client-credentials grant, a signed client assertion...) is
the adapter's: it returns the token and its lifetime in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import SecretStr

__all__ = ["AccessToken", "Fetch", "TokenCache"]


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and the monotonic time it expires at."""

    value: SecretStr
    expires_at: float

    def __repr__(self) -> str:
        return f"AccessToken(value=**********, expires_at={self.expires_at:.0f})"


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
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many tokens were fetched (for logs and tests)."""

    @property
    def current(self) -> AccessToken | None:
        """The token held now, valid or not."""
        return self._token

    def _fresh(self, token: AccessToken | None) -> bool:
        return token is not None and self.clock() < token.expires_at - self._margin

    async def get(self) -> AccessToken:
        """A token valid for at least ``margin`` more seconds, fetched if need be."""
        token = self._token
        if token is not None and self._fresh(token):
            return token
        async with self._lock:
            token = self._token  # another call may have fetched one while this one waited
            if token is not None and self._fresh(token):
                return token
            started = self.clock()
            value, lifetime = await self._fetch()
            self.fetches += 1
            self._token = AccessToken(value, started + lifetime)
            return self._token

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (the vendor refused it), unless a newer one already replaced it."""
        if self._token is token:
            self._token = None

    def clear(self) -> None:
        """Forget the token (the connection closes)."""
        self._token = None

    def __repr__(self) -> str:
        return f"TokenCache(margin={self._margin:g}, token={self._token!r})"
