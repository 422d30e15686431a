"""Okta's rate limits, read from the ``X-Rate-Limit-*`` headers of every answer.

Okta limits each endpoint bucket separately (``/api/v1/users``, one user,
``/api/v1/groups``...) per minute, and says where a bucket stands on every
answer::

    X-Rate-Limit-Limit: 600          requests allowed in the window
    X-Rate-Limit-Remaining: 598      requests left
    X-Rate-Limit-Reset: 1733011260   when the window resets, in UTC epoch seconds

`RateLimits` remembers the latest state of each bucket. Once one is used up, a
call to it is not sent before the reset (the same call would only be refused
with a 429); a 429 is retried after the reset. The wait is measured against the
answer's ``Date`` header, Okta's clock, as Okta's SDKs do, so a skewed local
clock does not shorten or stretch it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from threading import Lock

import httpx

__all__ = ["RateLimit", "RateLimits", "bucket_of", "parse_rate_limit"]

_ID_SEGMENT = re.compile(r"^(00[A-Za-z0-9]{18}|[^/]*@[^/]*)$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Where one bucket stands, as of one answer."""

    limit: int
    remaining: int
    reset: float
    """UTC epoch seconds when the window resets."""
    skew: float = 0.0
    """Okta's clock minus ours, from the answer's Date header."""

    def wait(self, now: float) -> float:
        """Seconds until the reset, by Okta's clock, plus one for the second it is in."""
        return max(self.reset - (now + self.skew) + 1.0, 0.0)


def bucket_of(method: str, path: str) -> str:
    """The bucket a request counts against: its method and path with ids as ``{id}``."""
    segments = ["{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


def _numbers(headers: httpx.Headers, name: str) -> list[float]:
    values: list[float] = []
    for raw in headers.get_list(name, split_commas=True):
        try:
            values.append(float(raw.strip()))
        except ValueError:
            continue
    return values


def parse_rate_limit(headers: httpx.Headers, *, now: float) -> RateLimit | None:
    """The bucket state an answer's headers give, or None when they give none.

    An answer can carry the headers more than once (an org-wide and an endpoint
    limit): the tightest counts.
    """
    limits = _numbers(headers, "X-Rate-Limit-Limit")
    remaining = _numbers(headers, "X-Rate-Limit-Remaining")
    resets = _numbers(headers, "X-Rate-Limit-Reset")
    if not resets:
        return None
    skew = 0.0
    date = headers.get("Date")
    if date:
        try:
            skew = parsedate_to_datetime(date).timestamp() - now
        except (TypeError, ValueError, IndexError):
            skew = 0.0
    return RateLimit(
        limit=int(min(limits)) if limits else -1,
        remaining=int(min(remaining)) if remaining else -1,
        reset=max(resets),
        skew=skew,
    )


class RateLimits:
    """The latest state of every bucket a connection used."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        """Wall-clock seconds (epoch); replaceable, so tests can move time on."""
        self._buckets: dict[str, RateLimit] = {}
        self._lock = Lock()

    def update(self, bucket: str, headers: httpx.Headers) -> RateLimit | None:
        """Record what an answer says about ``bucket``; return it."""
        state = parse_rate_limit(headers, now=self.clock())
        if state is not None:
            with self._lock:
                self._buckets[bucket] = state
        return state

    def wait_before(self, bucket: str) -> float:
        """Seconds to hold a call to ``bucket`` back: 0 unless it is used up until a reset."""
        with self._lock:
            state = self._buckets.get(bucket)
        # Limit 0 and remaining 0 is the concurrency limit, not a window: nothing to wait out.
        if state is None or state.remaining != 0 or state.limit == 0:
            return 0.0
        return state.wait(self.clock())

    def snapshot(self) -> Mapping[str, RateLimit]:
        """Every bucket's latest state (for metrics and tests)."""
        with self._lock:
            return dict(self._buckets)
