"""The ``http`` adapter: sends each delivery as a JSON webhook to a vendor's HTTP API.

::

    connections:
      billing:
        adapter: http
        settings:
          base_url: https://billing.example.com/api
          timeout: 5s
          auth: {type: bearer, token_env: BILLING_TOKEN}

A step writes with ``billing.post`` or ``billing.put`` and ``params: {path: /orders}``.
Every write carries ``Idempotency-Key: <event id>:<flow>:<step>``, stable across
retries, so a vendor that honours it applies a retried write once.

Outcomes: 2xx returns the JSON body (or ``{"status": code}``); 408, 425, 429,
5xx, timeouts and connection failures raise `RetryableError`; other answers raise
`PermanentError`. Both carry ``status_code``, ``retry_after`` (from the
``Retry-After`` header, in seconds) and ``vendor_code`` (from a JSON error body).
"""

from __future__ import annotations

import base64
import os
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticSerializationError, to_json

from platypus.adapter import Action, Adapter, Request
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus.retry import Duration
from platypus.vendorhttp import (
    USER_AGENT,
    SecretHeaders,
    async_client,
    mask_secrets_in,
    mask_secrets_in_code,
    parse_retry_after,
    send_content,
)

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "HeaderAuth",
    "HttpAdapter",
    "HttpParams",
    "HttpSettings",
    "parse_retry_after",
]

_RETRYABLE_STATUS = frozenset({408, 425, 429})
_BODY_EXCERPT = 300
_URLS_KEPT = 1024  # paths whose joined URL is kept (one per step, usually)


_USER_AGENT = USER_AGENT


class BearerAuth(BaseModel):
    """``Authorization: Bearer <token>``, the token read from an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bearer"] = Field(description="Bearer token authentication.")
    token_env: str = Field(min_length=1, description="Environment variable holding the token.")


class BasicAuth(BaseModel):
    """HTTP Basic authentication, both parts read from environment variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["basic"] = Field(description="HTTP Basic authentication.")
    username_env: str = Field(min_length=1, description="Environment variable holding the user.")
    password_env: str = Field(
        min_length=1, description="Environment variable holding the password."
    )


class HeaderAuth(BaseModel):
    """An API key sent in a header of its own, read from an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["header"] = Field(description="API key in a request header.")
    name: str = Field(default="X-Api-Key", min_length=1, description="Header that carries the key.")
    value_env: str = Field(min_length=1, description="Environment variable holding the key.")


Auth = Annotated[BearerAuth | BasicAuth | HeaderAuth, Field(discriminator="type")]


class HttpSettings(BaseModel):
    """Settings of an ``http`` connection. Secrets are named by environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        description="Root URL of the vendor API; a step's path is appended to it.",
        examples=["https://billing.example.com/api"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent with every request of this connection."
    )
    timeout: Duration = Field(
        default=10.0, description="Connect, read and write timeout of one attempt (e.g. 10s)."
    )
    auth: Auth | None = Field(
        default=None,
        description="How to authenticate: bearer, basic or header; secrets come from env vars.",
    )
    verify_tls: bool = Field(default=True, description="Verify the vendor's TLS certificate.")
    max_connections: int = Field(
        default=100, ge=1, description="Most connections open to the vendor at once."
    )
    idempotency_header: str | None = Field(
        default="Idempotency-Key",
        description="Header carrying the delivery's idempotency key on every write; null: none.",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value


class HttpParams(BaseModel):
    """A step's ``params`` for ``post`` and ``put``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(default="/", description="Path below base_url, e.g. /orders.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers for this step; they override the connection's.",
    )


class HttpAdapter(Adapter):
    """Sends payloads as JSON to an HTTP API and classifies the answer."""

    name = "http"
    Settings = HttpSettings
    actions: ClassVar = {
        "post": Action(params=HttpParams, description="POST the payload as JSON to path."),
        "put": Action(params=HttpParams, description="PUT the payload as JSON to path."),
    }

    def __init__(self, settings: Any, *, connection: str = "") -> None:
        if not isinstance(settings, HttpSettings):
            raise TypeError(f"HttpAdapter needs HttpSettings, got {type(settings).__name__}")
        super().__init__(settings, connection=connection)
        self._config = settings
        self._secrets: dict[str, SecretStr] = {}
        self._raw_secrets: list[SecretStr] = []
        self._client: httpx.AsyncClient | None = None
        self._urls: dict[str, httpx.URL] = {}  # by a step's path

    async def start(self) -> None:
        """Read the auth secrets from the environment and open the connection pool."""
        if self._client is not None:
            return
        self._raw_secrets = []
        self._secrets = self._read_secrets()
        config = self._config
        self._client = async_client(
            base_url=config.base_url,
            headers={"User-Agent": _USER_AGENT, **config.headers},
            timeout=config.timeout,
            max_connections=config.max_connections,
            verify=config.verify_tls,
            auth=SecretHeaders(self._secrets) if self._secrets else None,
        )

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _read_secrets(self) -> dict[str, SecretStr]:
        """Secret headers by name; every raw secret is also kept to scrub messages."""
        auth = self._config.auth
        if isinstance(auth, BearerAuth):
            token = self._env(auth.token_env, "token_env")
            return {"Authorization": SecretStr(f"Bearer {token.get_secret_value()}")}
        if isinstance(auth, BasicAuth):
            username = self._env(auth.username_env, "username_env", scrub=False)
            password = self._env(auth.password_env, "password_env")
            userpass = f"{username.get_secret_value()}:{password.get_secret_value()}"
            encoded = base64.b64encode(userpass.encode()).decode("ascii")
            return {"Authorization": SecretStr(f"Basic {encoded}")}
        if isinstance(auth, HeaderAuth):
            return {auth.name: self._env(auth.value_env, "value_env")}
        return {}

    def _env(self, variable: str, field: str, *, scrub: bool = True) -> SecretStr:
        value = os.environ.get(variable)
        if not value:
            state = "is empty" if value is not None else "is not set"
            raise ConfigurationError(
                f"connection {self.connection!r} (adapter 'http'): environment variable "
                f"{variable} (auth.{field}) {state}; set it before starting"
            )
        secret = SecretStr(value)
        if scrub:  # a user name is no secret, and masking it would mangle messages
            self._raw_secrets.append(secret)
        return secret

    async def call(self, request: Request) -> Any:
        """Send ``request.payload`` as JSON; return the JSON answer or ``{"status": code}``."""
        self.check_request(request)
        client = self._client
        if client is None:
            raise RuntimeError(f"connection {self.connection!r} is not started; call start()")
        try:
            params = HttpParams.model_validate(dict(request.params))
        except ValidationError as exc:
            raise PermanentError(
                f"connection {self.connection!r}: invalid params for {request.action!r}: "
                f"{exc.errors(include_input=False)[0]['msg']}; fix the step's params"
            ) from None
        try:
            content = to_json(request.payload)
        except PydanticSerializationError as exc:
            raise PermanentError(
                f"connection {self.connection!r}: the payload cannot be sent as JSON: {exc}; "
                "fix the step's mapping"
            ) from None

        headers = {**params.headers, "Content-Type": "application/json"}
        varying: tuple[str, ...] = ()
        if self._config.idempotency_header and self.actions[request.action].writes:
            headers[self._config.idempotency_header] = request.idempotency_key
            varying = (self._config.idempotency_header,)
        method = request.action.upper()
        url = self._url(client, params.path)
        try:
            response = await send_content(
                client, method, url, content=content, headers=headers, varying=varying
            )
        except httpx.TimeoutException as exc:
            where = _where(method, url)
            raise RetryableError(
                f"{where} timed out ({type(exc).__name__}) after {self._config.timeout:g}s; "
                "retryable (the idempotency key makes a repeated write safe). "
                "Raise the connection's timeout if the vendor is just slow"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            where = _where(method, url)
            raise PermanentError(
                f"{where} could not be sent: {self._scrub(str(exc))}; "
                "check the connection's base_url and the step's path and headers"
            ) from None
        except httpx.TransportError as exc:
            where = _where(method, url)
            raise RetryableError(
                f"{where} failed: {type(exc).__name__}: {self._scrub(str(exc)) or 'no detail'}; "
                "retryable. Check that the vendor is reachable at base_url"
            ) from None
        return self._outcome(response)

    def _url(self, client: httpx.AsyncClient, path: str) -> httpx.URL:
        """``path`` below base_url, as the client joins them, parsed once per path.

        Joining and parsing the URL again for every request cost ~15% of a call's CPU.
        """
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            url = self._urls[path] = client.build_request("GET", path).url
        return url

    def _outcome(self, response: httpx.Response) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            return _json_body(response) if _is_json(response) else {"status": status}

        where = _where(response.request.method, response.request.url)

        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        code = _vendor_code(response)
        vendor_code = (
            None
            if code is None
            else mask_secrets_in_code(code, [*self._secrets.values(), *self._raw_secrets])
        )
        body = self._scrub(response.text[:_BODY_EXCERPT].strip()) or "(empty body)"
        message = f"{where} answered {status} {response.reason_phrase}: {body}"
        retryable = status in _RETRYABLE_STATUS or 500 <= status < 600
        hint = _hint(status, response, retryable)
        if hint:
            message = f"{message} ({hint})"
        error = RetryableError if retryable else PermanentError
        raise error(message, status_code=status, retry_after=retry_after, vendor_code=vendor_code)

    def _scrub(self, text: str) -> str:
        # A vendor or a library may echo a credential back; never pass it on.
        return mask_secrets_in(text, [*self._secrets.values(), *self._raw_secrets])

    def __repr__(self) -> str:
        return (
            f"HttpAdapter(connection={self.connection!r}, "
            f"base_url={_safe_url(httpx.URL(self._config.base_url))!r})"
        )


def _where(method: str, url: httpx.URL) -> str:
    """``METHOD url`` for a message, made only when one is (a safe URL costs ~20 us)."""
    return f"{method} {_safe_url(url)}"


def _safe_url(url: httpx.URL) -> str:
    """The URL without query, fragment or user info, for messages and logs."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def _is_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    is_json_type = content_type == "application/json" or content_type.endswith("+json")
    return is_json_type and bool(response.content)


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"status": response.status_code}


def _vendor_code(response: httpx.Response) -> str | None:
    """The vendor's own error code from a JSON error body, if it gives one."""
    if not _is_json(response):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # e.g. Salesforce: [{"errorCode": "INVALID_FIELD", ...}]
    if not isinstance(body, dict):
        return None
    nested = body.get("error")
    if isinstance(nested, dict):  # e.g. Stripe: {"error": {"code": ..., "type": ...}}
        body = nested
    for key in ("code", "error_code", "errorCode", "error", "type"):
        found = body.get(key)
        if isinstance(found, str | int) and not isinstance(found, bool):
            return str(found)
    return None


def _hint(status: int, response: httpx.Response, retryable: bool) -> str:
    if retryable:
        return "retryable: a later attempt may succeed"
    if status in {401, 403}:
        return "check the connection's auth settings and the secret's environment variable"
    if status in {404, 405}:
        return "check the connection's base_url and the step's path and action"
    if 300 <= status < 400:
        location = response.headers.get("Location")
        moved = f" to {_safe_url(response.url.join(location))}" if location else ""
        return f"redirects are not followed; point base_url{moved}"
    if 400 <= status < 500:
        return "the vendor refused the data; fix the event or the step's mapping"
    return "unexpected answer; retrying cannot help"
