"""Settings of a ``netsuite`` connection."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from platypus.retry import Duration
from platypus.secrets import SecretRef

__all__ = ["DEFAULT_WSDL", "NetSuiteSettings", "endpoint_for"]

DEFAULT_WSDL = "https://webservices.netsuite.com/wsdl/v2023_2_0/netsuite.wsdl"
"""NetSuite's published 2023.2 WSDL. Give a local copy to start without the network."""

_ACCOUNT = re.compile(r"^[A-Za-z0-9_-]+$")


def endpoint_for(account: str) -> str:
    """The account's SuiteTalk 2023.2 URL: ``1234567_SB1`` → ``https://1234567-sb1.…``."""
    host = account.replace("_", "-").lower()
    return f"https://{host}.suitetalk.api.netsuite.com/services/NetSuitePort_2023_2"


class NetSuiteSettings(BaseModel):
    """Settings of a ``netsuite`` connection (SuiteTalk SOAP 2023.2, token-based auth)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(
        min_length=1,
        pattern=_ACCOUNT.pattern,
        description="NetSuite account id as shown in Setup > Company > Company Information, "
        "e.g. 1234567 or 1234567_SB1 for a sandbox.",
        examples=["1234567_SB1"],
    )
    consumer_key: str = Field(
        min_length=1, description="Consumer key of the integration record (TBA enabled)."
    )
    consumer_secret: SecretRef = Field(
        description="Consumer secret of the integration record: {env: NAME} or {file: PATH}."
    )
    token_id: str = Field(min_length=1, description="Token id of the access token.")
    token_secret: SecretRef = Field(
        description="Token secret of the access token: {env: NAME} or {file: PATH}."
    )
    wsdl: str = Field(
        default=DEFAULT_WSDL,
        description="Path or URL of the 2023.2 WSDL, loaded once at start.",
    )
    endpoint: str | None = Field(
        default=None,
        description="Service URL; default derived from account: "
        "https://<account-with-dashes>.suitetalk.api.netsuite.com/services/NetSuitePort_2023_2.",
    )
    timeout: Duration = Field(
        default=60.0,
        gt=0,
        description="Longest wait for one call's connection and answer (e.g. 60s).",
    )
    max_workers: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Threads running SOAP calls (zeep is synchronous); calls beyond "
        "this wait for a thread. Keep it at or below the connection's max_concurrency.",
    )
    timezone: str | None = Field(
        default=None,
        description="The integration user's Time Zone preference (Home > Set Preferences) "
        "as an IANA name, e.g. Pacific/Honolulu: dates are sent as noon there. Null: "
        "as 10:30 UTC, which is the same calendar day from UTC-10 to UTC+13.",
        examples=["America/Los_Angeles"],
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA certificates (PEM) that verify NetSuite's TLS certificate (and "
        "the WSDL's host) instead of the system's; REQUESTS_CA_BUNDLE is then ignored.",
    )
    proxy: str | None = Field(
        default=None,
        description="HTTP(S) proxy for the calls and the WSDL, e.g. http://proxy:3128; "
        "null: HTTPS_PROXY from the environment (unless ca_bundle is set).",
    )

    @field_validator("endpoint", "ca_bundle", "proxy", "timezone", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # platypus.yaml reads these from the environment: ${NAME:-} is "" when unset.
        return None if value == "" else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: give an IANA name such as America/New_York"
            ) from None
        return value

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// proxy URL, e.g. http://proxy:3128")
        return value

    @property
    def service_url(self) -> str:
        """Where calls go: ``endpoint``, or the URL derived from ``account``."""
        return self.endpoint or endpoint_for(self.account)
