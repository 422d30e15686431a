"""Settings of a ``salesforce`` connection and the ``params`` of its actions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platypus.retry import Duration
from platypus.secrets import SecretRef

__all__ = [
    "SOAP_LOGIN_LAST_VERSION",
    "ClientCredentialsAuth",
    "CreateParams",
    "FreezeUserResult",
    "JwtAuth",
    "PasswordAuth",
    "QueryParams",
    "QueryResult",
    "RefreshTokenAuth",
    "SalesforceSettings",
    "SessionAuth",
    "UpdateParams",
    "UpsertParams",
    "WriteResult",
    "login_base_url",
]

SOAP_LOGIN_LAST_VERSION = 64.0
"""The last API version with the SOAP ``login()`` call password auth goes through."""

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"^{_LABEL}(?:\.{_LABEL})*$"
_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_DOMAIN_DESCRIPTION = (
    "Login domain: 'login' for production, 'test' for a sandbox, or a My Domain prefix "
    "such as 'acme.my' or 'acme--uat.sandbox.my'; the login host is "
    "https://<domain>.salesforce.com."
)
_STANDARD_DOMAINS = ("login", "test")


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an absolute https:// URL (simple-salesforce speaks HTTPS only)")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError("give the scheme, host and port only, without a path or query")
    return value.rstrip("/")


def _audience_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            "must be https://login.salesforce.com, https://test.salesforce.com or the "
            "https:// URL of an Experience Cloud site"
        )
    return value.rstrip("/")


def _unset_if_empty(value: object) -> object:
    # platypus.yaml reads these from the environment: ${NAME:-} is "" when unset.
    return None if value == "" else value


class PasswordAuth(BaseModel):
    """Username, password and security token, exchanged for a session by SOAP ``login``.

    Salesforce does not offer SOAP ``login()`` from API 65.0, disables it by default in
    new orgs, and retires it for API 31.0-64.0 with the Summer '27 release (help
    article 005132110): use `ClientCredentialsAuth`, `JwtAuth` or `RefreshTokenAuth`.
    """

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
    """OAuth 2.0 JWT bearer flow: an app's consumer key and the user's RSA key.

    The token request goes to ``domain`` (the My Domain, if you give it); the
    assertion's audience is Salesforce's login server, https://login.salesforce.com
    or, for a sandbox, https://test.salesforce.com, never the My Domain.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["jwt"] = Field(description="OAuth 2.0 JWT bearer token flow.")
    consumer_key: str = Field(
        min_length=1, description="The External Client App's (or connected app's) consumer key."
    )
    username: str = Field(min_length=1, description="The user the token is issued for.")
    private_key: SecretRef = Field(
        description="PEM RSA private key whose certificate the app holds."
    )
    domain: str = Field(default="login", pattern=_DOMAIN, description=_DOMAIN_DESCRIPTION)
    audience: str | None = Field(
        default=None,
        description=(
            "The assertion's aud: https://login.salesforce.com (production), "
            "https://test.salesforce.com (sandbox) or an Experience Cloud site URL; "
            "null: test.salesforce.com for domain 'test' or a sandbox My Domain "
            "('acme--uat.sandbox.my'), else login.salesforce.com."
        ),
    )

    @field_validator("audience")
    @classmethod
    def _check_audience(cls, value: str | None) -> str | None:
        return None if value is None else _audience_url(value)


class ClientCredentialsAuth(BaseModel):
    """OAuth 2.0 client credentials flow: an app's consumer key and secret, no user.

    Salesforce's server-to-server flow: the External Client App (or connected app)
    has the flow enabled and names a Run As user, whose permissions the token has.
    The token request must go to the org's My Domain.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["client_credentials"] = Field(description="OAuth 2.0 client credentials flow.")
    consumer_key: str = Field(min_length=1, description="The app's consumer key (client id).")
    consumer_secret: SecretRef = Field(
        description="The app's consumer secret (client secret): {env: NAME} or {file: PATH}."
    )
    domain: str = Field(
        pattern=_DOMAIN,
        description=(
            "Your My Domain prefix, e.g. 'acme.my' or 'acme--uat.sandbox.my': Salesforce "
            "refuses this flow on login.salesforce.com and test.salesforce.com."
        ),
    )

    @field_validator("domain", mode="before")
    @classmethod
    def _given(cls, value: object) -> object:
        if value == "":
            raise ValueError(
                "the client credentials flow needs your My Domain prefix, e.g. acme.my "
                "(the host of Setup > My Domain without .salesforce.com)"
            )
        return value

    @field_validator("domain")
    @classmethod
    def _my_domain(cls, value: str) -> str:
        if value.lower() in _STANDARD_DOMAINS:
            raise ValueError(
                f"{value!r} is not a My Domain: Salesforce answers the client credentials "
                "flow only on the org's My Domain; give its prefix, e.g. acme.my (the host "
                "of Setup > My Domain without .salesforce.com)"
            )
        return value


class RefreshTokenAuth(BaseModel):
    """OAuth 2.0 refresh token flow: a refresh token obtained once, by a user, for an app.

    Each session is a new access token for the refresh token. If the app rotates
    refresh tokens, the new one replaces the old, and with ``{file: PATH}`` it is
    written back to the file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["refresh_token"] = Field(description="OAuth 2.0 refresh token flow.")
    consumer_key: str = Field(min_length=1, description="The app's consumer key (client id).")
    consumer_secret: SecretRef | None = Field(
        default=None,
        description=(
            "The app's consumer secret; needed when the app requires the secret for the "
            "refresh token flow (the default for new apps)."
        ),
    )
    refresh_token: SecretRef = Field(
        description="The refresh token: {file: PATH} keeps a rotated one across restarts."
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


Auth = Annotated[
    ClientCredentialsAuth | JwtAuth | RefreshTokenAuth | PasswordAuth | SessionAuth,
    Field(discriminator="type"),
]


class SalesforceSettings(BaseModel):
    """Settings of a ``salesforce`` connection. Credentials are `SecretRef`s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth: Auth = Field(
        description=(
            "How to authenticate: client_credentials, jwt, refresh_token, session, or "
            "password (SOAP login, not available from API 65.0)."
        )
    )
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

    proxy: str | None = Field(
        default=None,
        description=(
            "HTTP(S) proxy for every call, e.g. http://proxy.internal:3128; null: the "
            "HTTPS_PROXY environment variable (unless ca_bundle is set, which ignores it)."
        ),
    )

    _empty_is_unset = field_validator("login_url", "ca_bundle", "proxy", mode="before")(
        _unset_if_empty
    )

    @field_validator("login_url")
    @classmethod
    def _check_login_url(cls, value: str | None) -> str | None:
        return None if value is None else _https_url(value)

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// proxy URL, e.g. http://proxy:3128")
        return value

    @model_validator(mode="after")
    def _soap_login_exists(self) -> SalesforceSettings:
        if isinstance(self.auth, PasswordAuth) and float(self.api_version) > (
            SOAP_LOGIN_LAST_VERSION
        ):
            raise ValueError(
                f"auth type 'password' logs in with the SOAP login() call, which Salesforce "
                f"does not offer from API 65.0 (api_version is {self.api_version}; it is also "
                "off by default in new orgs and retired for API 31.0-64.0 with Summer '27, "
                "help article 005132110). Use an External Client App instead: auth "
                "{type: client_credentials, consumer_key, consumer_secret, domain: <My Domain>} "
                "(server to server, with a Run As user), or {type: jwt, consumer_key, "
                "username, private_key} (a certificate and a pre-authorized user), or "
                "{type: refresh_token, ...}"
            )
        return self


def login_base_url(settings: SalesforceSettings) -> str:
    """Where logins and token requests go: ``login_url``, else ``https://<domain>.salesforce.com``."""
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
        examples=["SELECT Id, Name FROM Account WHERE External_Id__c = :customer_id LIMIT 1"],
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


class WriteResult(BaseModel):
    """What ``upsert``, ``create`` and ``update`` return: the record's id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(description="The record's 18-character id.")
    created: bool = Field(description="True when the record was created, False when updated.")


class QueryResult(BaseModel):
    """What ``query`` returns: the records the SOQL selected (without ``attributes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total_size: int = Field(description="How many records matched (Salesforce's totalSize).")
    done: bool = Field(default=True, description="False when more pages remain.")
    records: list[dict[str, Any]] = Field(description="The records, by field API name.")
