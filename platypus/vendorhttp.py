"""Small helpers for adapters that speak HTTP to a vendor, so each need not copy them.

An adapter stays one folder under ``adapters/``; what every HTTP adapter needs the
same way (a ``User-Agent``, reading ``Retry-After``, a lenient JSON body, keeping
credentials out of text it passes on, a CA bundle and a proxy) lives here once.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from platypus.exceptions import ConfigurationError

__all__ = [
    "USER_AGENT",
    "json_or_none",
    "mask_secrets_in",
    "parse_retry_after",
    "untrusted_certificate",
    "verify_with",
]


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


def verify_with(ca_bundle: Path | None, *, connection: str = "") -> ssl.SSLContext | bool:
    """httpx's ``verify``: a context trusting ``ca_bundle`` (PEM), or the system's CAs.

    A bundle that cannot be read is a `ConfigurationError` naming the setting.
    """
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigurationError(
            f"connection {connection!r}: ca_bundle {ca_bundle} cannot be used: {reason}; "
            "give a readable PEM file of CA certificates"
        ) from None


def untrusted_certificate(exc: BaseException) -> bool:
    """Whether a transport error is a TLS certificate the client does not trust."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
