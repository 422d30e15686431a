"""Webhooks signed with an HMAC of the body (Greenhouse, BambooHR and the like).

The signature is read from ``signature_header`` in the shape ``format`` gives
(``"sha256 {hex}"`` for Greenhouse, ``"{hex}"`` or ``"{base64}"`` elsewhere) and
computed over ``signed``: the raw body, optionally with the timestamp header's
value (``"{body}{timestamp}"`` for BambooHR). With a timestamp, a request older
than ``max_age`` (or as far in the future) is refused as stale, which is what
makes a captured request useless to replay later.

The payload becomes events through a JMESPath mapping (`platypus.sources.mapping`):
the preset named like the source unless ``mapping`` names another or gives one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator

from platypus.exceptions import ConfigurationError, MappingError
from platypus.retry import Duration
from platypus.safejson import loads as load_json
from platypus.secrets import SecretRef
from platypus.sources.auth import parse_timestamp, same
from platypus.sources.decoder import (
    Decoder,
    Delivery,
    MalformedPayloadError,
    SourceSettings,
    UnauthorizedError,
    WebhookRequest,
)
from platypus.sources.mapping import PRESETS, MappingSpec, PayloadMapping

__all__ = ["SignedSettings", "SignedWebhookDecoder"]

_PLACEHOLDER = re.compile(r"\{(body|timestamp)\}")


class SignedSettings(SourceSettings):
    """An HMAC-signed JSON webhook."""

    secret: SecretRef = Field(description="The shared signing key, e.g. {env: GREENHOUSE_SECRET}.")
    signature_header: str = Field(default="Signature", description="Header with the signature.")
    algorithm: Literal["sha1", "sha256", "sha512"] = Field(
        default="sha256", description="HMAC hash function."
    )
    format: str = Field(
        default="{hex}",
        description=(
            "Shape of the header value: '{hex}' or '{base64}' stands for the digest, e.g. "
            "'sha256 {hex}' (Greenhouse) or 'sha256={hex}'."
        ),
    )
    signed: str = Field(
        default="{body}",
        description=(
            "What is signed: '{body}' is the raw body, '{timestamp}' the timestamp "
            "header's value, e.g. '{body}{timestamp}' (BambooHR) or '{timestamp}.{body}'."
        ),
    )
    timestamp_header: str | None = Field(
        default=None, description="Header with the time of sending (Unix seconds or ISO-8601)."
    )
    max_age: Duration = Field(
        default=300.0, gt=0, description="Oldest timestamp accepted (also the most skew ahead)."
    )
    mapping: str | MappingSpec | None = Field(
        default=None,
        description=(
            "A preset name (greenhouse, bamboohr) or a mapping; unset: the preset named "
            "like the source."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.format.count("{hex}") + self.format.count("{base64}") != 1:
            raise ValueError("format must contain exactly one of {hex} or {base64}")
        if "{body}" not in self.signed:
            raise ValueError("signed must contain {body}")
        if "{timestamp}" in self.signed and self.timestamp_header is None:
            raise ValueError("signed uses {timestamp}: set timestamp_header")
        return self


class SignedWebhookDecoder(Decoder):
    """Verifies an HMAC signature (and timestamp), then maps the JSON payload."""

    settings_model = SignedSettings
    settings: SignedSettings

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        assert isinstance(settings, SignedSettings)
        self._key: SecretStr = settings.secret.resolve()
        chosen = settings.mapping if settings.mapping is not None else name
        if isinstance(chosen, str):
            preset = PRESETS.get(chosen)
            if preset is None:
                raise ConfigurationError(
                    f"sources.{name}: no mapping preset called {chosen!r} (presets: "
                    f"{', '.join(sorted(PRESETS))}); give `mapping:` a preset or a mapping"
                )
            chosen = preset
        self.mapping = PayloadMapping(chosen)

    @property
    def event_source(self) -> str:
        return self.settings.event_source or f"/{self.name}/webhook"

    def authenticate(self, request: WebhookRequest) -> None:
        settings = self.settings
        timestamp = ""
        problems: list[str] = []
        if settings.timestamp_header is not None:
            timestamp = request.headers.get(settings.timestamp_header.lower(), "")
            sent_at = parse_timestamp(timestamp) if timestamp else None
            if sent_at is None:
                problems.append(f"{settings.timestamp_header} missing or not a time")
            elif abs(request.received_at - sent_at) > settings.max_age:
                problems.append(
                    f"stale: {settings.timestamp_header} is {request.received_at - sent_at:.0f}s "
                    f"old, more than max_age {settings.max_age:.0f}s"
                )
        message = _signed_message(settings.signed, request.body, timestamp.encode())
        digest = hmac.new(
            self._key.get_secret_value().encode(), message, getattr(hashlib, settings.algorithm)
        ).digest()
        expected = settings.format.replace("{hex}", digest.hex()).replace(
            "{base64}", base64.b64encode(digest).decode()
        )
        given = request.headers.get(settings.signature_header.lower(), "").strip()
        if "{hex}" in settings.format:
            given, expected = given.lower(), expected.lower()
        if not same(given, expected):
            problems.append(f"{settings.signature_header} missing or wrong")
        if problems:
            raise UnauthorizedError("; ".join(problems))

    def decode(self, request: WebhookRequest) -> Delivery:
        try:
            body: Any = load_json(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedPayloadError(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise MalformedPayloadError("the body is not a JSON object")
        try:
            return self.mapping.apply(body, request.headers, self.event_source)
        except MappingError as exc:
            raise MalformedPayloadError(
                f"the payload does not have the expected shape: {exc}"
            ) from None


def _signed_message(template: str, body: bytes, timestamp: bytes) -> bytes:
    """``template`` with ``{body}`` and ``{timestamp}`` replaced by their raw bytes."""
    out = bytearray()
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        out += template[position : match.start()].encode()
        out += body if match.group(1) == "body" else timestamp
        position = match.end()
    out += template[position:].encode()
    return bytes(out)
