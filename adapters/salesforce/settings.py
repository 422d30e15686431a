"""Settings of a ``salesforce`` connection and the ``params`` of its actions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from platypus.retry import Duration
from platypus.secrets import SecretRef

__all__ = [
    "CreateParams",
    "JwtAuth",
    "PasswordAuth",
    "QueryParams",
    "SalesforceSettings",
    "SessionAuth",
    "UpdateParams",
    "UpsertParams",
    "login_base_url",
]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"^{_LABEL}(?:\.{_LABEL})*$"
_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_DOMAIN_DESCRIPTION = (
    "Login domain: 'login' for production, 'test' for a sandbox, or a My Domain prefix "
    "such as 'acme.my'; the login host is https://<domain>.salesforce.com."
)


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an absolute https:// URL (simple-salesforce speaks HTTPS only)")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError("give the scheme, host and port only, without a path or query")
    return value.rstrip("/")


class PasswordAuth(BaseModel):
    """Username, password and security token, exchanged for a session by SOAP ``login``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["password"] = Field(description="Username-password login (SOAP API).")
    username: str = Field(min_length=1, description="The integration user's username.")
    password: SecretRef = Field(description="The user's password: {env: NAME} or {file: PATH}.")
    security_token: SecretRef | None = Field(
        default=None,
        description="The user's security token; omit it when the org trusts the caller's IP.",
    )
    domain: str = Field(default="login", pattern=_DOMAIN, description=_DOMAIN_DESCRIPTION)


class JwtAuth(BaseModel):
    """OAuth 2.0 JWT bearer flow: a connected app's consumer key and the user's RSA key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["jwt"] = Field(description="OAuth 2.0 JWT bearer token flow.")
    consumer_key: str = Field(min_length=1, description="The connected app's consumer key.")
    username: str = Field(min_length=1, description="The user the token is issued for.")
    private_key: SecretRef = Field(
        description="PEM RSA private key whose certificate the connected app holds."
    )
    domain: str = Field(default="login", pattern=_DOMAIN, description=_DOMAIN_DESCRIPTION)


class SessionAuth(BaseModel):
    """A session id (access token) obtained elsewhere, with its instance URL; never refreshed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["session"] = Field(description="An existing session id and instance URL.")
    instance_url: str = Field(
        description="The org's instance URL, e.g. https://acme.my.salesforce.com.",
        examples=["https://acme.my.salesforce.com"],
    )
    session_id: SecretRef = Field(description="The session id or OAuth access token.")

    _check_instance_url = field_validator("instance_url")(_https_url)


Auth = Annotated[PasswordAuth | JwtAuth | SessionAuth, Field(discriminator="type")]


class SalesforceSettings(BaseModel):
    """Settings of a ``salesforce`` connection. Credentials are `SecretRef`s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth: Auth = Field(description="How to authenticate: password, jwt or session.")
    api_version: str = Field(
        default="59.0",
        pattern=r"^\d{2,3}\.0$",
        description="REST API version used in every URL (/services/data/v<version>/).",
    )
    timeout: Duration = Field(
        default=30.0, gt=0, description="Connect and read timeout of one HTTP call (e.g. 30s)."
    )
    max_workers: int = Field(
        default=8,
        ge=1,
        le=64,
        description=(
            "Worker threads running simple-salesforce's blocking calls: the most "
            "requests in flight to Salesforce from this connection."
        ),
    )
    max_api_usage_share: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description=(
            "Back off (retryable error, no call) once this share of the org's daily API "
            "allocation is used, as reported by the Sforce-Limit-Info header."
        ),
    )
    api_usage_recheck: Duration = Field(
        default=300.0,
        gt=0,
        description="While backing off for API usage, let one call through this often.",
    )
    login_url: str | None = Field(
        default=None,
        description=(
            "Overrides https://<domain>.salesforce.com as the host of the SOAP login and the "
            "OAuth token endpoint (a proxy, or a test fake); null: derived from auth.domain."
        ),
    )
    ca_bundle: Path | None = Field(
        default=None,
        description=(
            "CA certificates (PEM) that verify Salesforce's TLS certificate instead of the "
            "system's; environment variables such as REQUESTS_CA_BUNDLE are then ignored."
        ),
    )

    @field_validator("login_url")
    @classmethod
    def _check_login_url(cls, value: str | None) -> str | None:
        return None if value is None else _https_url(value)


def login_base_url(settings: SalesforceSettings) -> str:
    """Where password and JWT logins go: ``login_url``, else ``https://<domain>.salesforce.com``."""
    if settings.login_url is not None:
        return settings.login_url
    auth = settings.auth
    if isinstance(auth, SessionAuth):
        return auth.instance_url
    return f"https://{auth.domain}.salesforce.com"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateParams(_Params):
    """``params`` of ``create``: the object type; the payload holds the fields."""

    sobject: str = Field(pattern=_NAME, description="Object API name, e.g. Account or Order__c.")


class UpsertParams(_Params):
    """``params`` of ``upsert``: the object type and the external id field to match on."""

    sobject: str = Field(pattern=_NAME, description="Object API name, e.g. Account or Order__c.")
    external_id_field: str = Field(
        pattern=_NAME,
        description="External id field matched on; the payload must hold its value.",
    )


class UpdateParams(_Params):
    """``params`` of ``update``: the object type and the payload key holding the record id."""

    sobject: str = Field(pattern=_NAME, description="Object API name, e.g. Account or Order__c.")
    id_field: str = Field(
        default="Id", min_length=1, description="Payload key holding the Salesforce record id."
    )


class QueryParams(_Params):
    """``params`` of ``query``: a SOQL statement whose ``:name`` binds come from the payload."""

    soql: str = Field(
        min_length=1,
        description=(
            "SOQL with :name placeholders bound, escaped, from the payload's fields, "
            "e.g. SELECT Id FROM Account WHERE External_Id__c = :customer_id LIMIT 1."
        ),
    )

    @field_validator("soql")
    @classmethod
    def _select_only(cls, value: str) -> str:
        if not re.match(r"^\s*select\s", value, re.IGNORECASE):
            raise ValueError("must be a SELECT statement")
        return value


class FreezeUserParams(_Params):
    """``params`` of ``freeze_user``: the User field that finds the user.

    The payload holds that field's value, and ``IsFrozen`` (default true; false
    unfreezes). With single sign-on, ``FederationIdentifier`` is the identity
    provider's login, the natural key for a leaver.
    """

    match_field: str = Field(
        default="Username",
        pattern=_NAME,
        description="User field matched on: Username, FederationIdentifier, EmployeeNumber...",
    )


class FreezeUserResult(BaseModel):
    """What ``freeze_user`` returns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    found: bool = Field(description="False when no user has the value (nothing to freeze).")
    user_id: str | None = Field(default=None, description="The User's id.")
    user_login_id: str | None = Field(default=None, description="Its UserLogin's id.")
    frozen: bool | None = Field(default=None, description="UserLogin.IsFrozen after the call.")
    changed: bool = Field(default=False, description="False when it was so already.")
