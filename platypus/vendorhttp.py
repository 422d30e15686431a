"""Small helpers for adapters that speak HTTP to a vendor, so each need not copy them.

An adapter stays one folder under ``adapters/``; what every HTTP adapter needs the
same way (a ``User-Agent``, reading ``Retry-After``, a lenient JSON body, keeping
credentials out of text it passes on) lives here once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
from pydantic import SecretStr

__all__ = ["USER_AGENT", "json_or_none", "mask_secrets_in", "parse_retry_after"]


def _user_agent() -> str:
    try:
        return f"platypus/{version('platypus-integrations')}"
    except PackageNotFoundError:  # running from a source tree
        return "platypus"


USER_AGENT = _user_agent()
"""``platypus/<version>``: what adapters send as ``User-Agent``."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    A time in the past or a negative number gives 0; anything unreadable gives None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may omit the zone
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def json_or_none(response: httpx.Response) -> Any:
    """The response body as JSON, or None when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def mask_secrets_in(text: str, secrets: Iterable[SecretStr]) -> str:
    """``text`` with every non-empty secret value replaced by ``***``.

    Vendors and libraries sometimes echo a credential back in an error body.
    """
    for secret in secrets:
        value = secret.get_secret_value()
        if value:
            text = text.replace(value, "***")
    return text
