"""Small helpers for adapters that speak HTTP to a vendor, so each need not copy them.

An adapter stays one folder under ``adapters/``; what every HTTP adapter needs the
same way (a ``User-Agent``, reading ``Retry-After``, a lenient JSON body, keeping
credentials out of text it passes on) lives here once.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from platypus.exceptions import ConfigurationError

__all__ = ["USER_AGENT", "async_client", "json_or_none", "mask_secrets_in", "parse_retry_after"]


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


def async_client(
    *,
    base_url: str,
    timeout: float,
    max_connections: int,
    headers: Mapping[str, str] | None = None,
    ca_bundle: Path | None = None,
    proxy: str | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` set up the way vendor adapters need it.

    Connections are pooled up to ``max_connections``; redirects are not followed
    (a vendor that redirects an API call is misconfigured, and following it could
    send a credential elsewhere). ``ca_bundle`` verifies the vendor's certificate
    with those CAs instead of the system's; ``proxy`` sends every request through
    that proxy. When either is given, the environment (``HTTPS_PROXY``,
    ``SSL_CERT_FILE``) no longer overrides it.
    """
    verify: ssl.SSLContext | bool = True
    if ca_bundle is not None:
        try:
            verify = ssl.create_default_context(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot use ca_bundle {ca_bundle}: {exc}; give a readable PEM file of CA "
                "certificates, or leave ca_bundle out to use the system's"
            ) from None
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=min(max_connections, 20),
        ),
        follow_redirects=False,
        verify=verify,
        proxy=proxy,
        trust_env=ca_bundle is None and proxy is None,
    )
