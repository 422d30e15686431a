"""Checks shared by the decoders: basic auth, header tokens, signatures, timestamps.

Every comparison of a secret is constant-time (`hmac.compare_digest`), and every
check runs to the end even when an earlier part failed, so the time an answer
takes says nothing about which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from platypus.secrets import SecretRef
from platypus.sources.decoder import UnauthorizedError

__all__ = ["AuthMethod", "BasicAuth", "HeaderToken", "check_auth", "parse_timestamp", "same"]


class BasicAuth(BaseModel):
    """HTTP basic auth on the callout (RFC 7617)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["basic"] = Field(default="basic", description="HTTP basic authentication.")
    username: str = Field(min_length=1, description="User name the vendor sends.")
    password: SecretRef = Field(description="Password, e.g. {env: ZUORA_CALLOUT_PASSWORD}.")


class HeaderToken(BaseModel):
    """A shared token in a custom header configured on the vendor's side."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["header"] = Field(
        default="header", description="A shared token in a request header."
    )
    name: str = Field(min_length=1, description="Header name, e.g. X-Callout-Token.")
    value: SecretRef = Field(description="Expected header value, e.g. {env: CALLOUT_TOKEN}.")


AuthMethod = Annotated[BasicAuth | HeaderToken, Field(discriminator="type")]


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time equality of two strings (or byte strings)."""
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def check_auth(
    methods: list[AuthMethod], secrets: Mapping[int, SecretStr], headers: Mapping[str, str]
) -> None:
    """Raise `UnauthorizedError` unless every configured method passes.

    ``secrets`` holds each method's resolved secret by its index in ``methods``.
    """
    failed: list[str] = []
    for index, method in enumerate(methods):
        secret = secrets[index].get_secret_value()
        if isinstance(method, BasicAuth):
            user, password = _basic_credentials(headers.get("authorization", ""))
            # Both compared, always: no early exit on a wrong user name.
            ok_user = same(user, method.username)
            ok_password = same(password, secret)
            if not (ok_user and ok_password):
                failed.append("basic auth: missing or wrong credentials")
        elif not same(headers.get(method.name.lower(), ""), secret):
            failed.append(f"header {method.name}: missing or wrong token")
    if failed:
        raise UnauthorizedError("; ".join(failed))


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


def parse_timestamp(value: str) -> float | None:
    """Seconds since the epoch from Unix seconds (or milliseconds) or ISO-8601; None if neither."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number != number or number in (float("inf"), float("-inf")):
            return None
        # Milliseconds since the epoch are 13 digits today; seconds are 10.
        return number / 1000 if number > 1e11 else number
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a time without an offset cannot be compared safely
    return parsed.timestamp()
