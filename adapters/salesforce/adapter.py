"""`SalesforceAdapter`: simple-salesforce's blocking calls, run in a bounded thread pool."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar, NamedTuple, TypeVar
from urllib.parse import quote, urlsplit

import jwt
import requests
import structlog
from pydantic import BaseModel, SecretStr, ValidationError
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
)
from simple_salesforce.login import SalesforceLogin

from platypus.adapter import Action, Adapter, Request
from platypus.exceptions import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    RetryableError,
)
from platypus.secrets import SecretRef
from platypus.vendorhttp import mask_secrets_in

from .errors import (
    INVALID_SESSION_ID,
    RETRYABLE_CODES,
    classify,
    error_code,
)
from .oauth import LoginRefusedError, TokenGrant, jwt_claims, read_token_answer, token_form
from .settings import (
    ClientCredentialsAuth,
    CreateParams,
    FreezeUserParams,
    FreezeUserResult,
    JwtAuth,
    PasswordAuth,
    QueryParams,
    QueryResult,
    RefreshTokenAuth,
    SalesforceSettings,
    SessionAuth,
    UpdateParams,
    UpsertParams,
    WriteResult,
    login_base_url,
)
from .soql import bind, bind_names

__all__ = ["ApiUsage", "SalesforceAdapter", "parse_limit_info"]

_log = structlog.get_logger("platypus.adapters")

_LIMIT_INFO = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")
_T = TypeVar("_T")


class ApiUsage(NamedTuple):
    """The org's API requests used in the last 24 hours, and its daily allocation."""

    used: int
    limit: int

    @property
    def share(self) -> float:
        """``used / limit`` (1.0 when the limit is 0)."""
        return self.used / self.limit if self.limit > 0 else 1.0


def _query_binds(params: BaseModel) -> list[tuple[str, str]]:
    """The payload keys a query's SOQL binds, for lint (`Action.binds`)."""
    assert isinstance(params, QueryParams)
    return [("soql", name) for name in bind_names(params.soql)]


def _upsert_binds(params: BaseModel) -> list[tuple[str, str]]:
    """The payload key holding the external id value, for lint (`Action.binds`)."""
    assert isinstance(params, UpsertParams)
    return [("external_id_field", params.external_id_field)]


def _update_binds(params: BaseModel) -> list[tuple[str, str]]:
    """The payload key holding the record id, for lint (`Action.binds`)."""
    assert isinstance(params, UpdateParams)
    return [("id_field", params.id_field)]


def _freeze_user_binds(params: BaseModel) -> list[tuple[str, str]]:
    """The payload key holding the user's matching value, for lint (`Action.binds`)."""
    assert isinstance(params, FreezeUserParams)
    return [("match_field", params.match_field)]


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """`ApiUsage` from a ``Sforce-Limit-Info`` header such as ``api-usage=18/15000``."""
    match = _LIMIT_INFO.search(header or "")
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request the connection's timeout: simple-salesforce passes none."""

    def __init__(self, timeout: float, pool_size: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_size)
        self._timeout = timeout

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class _SessionExpiredError(Exception):
    """INVALID_SESSION_ID on a call: log in again (once) and retry."""

    def __init__(self, error: DeliveryError) -> None:
        super().__init__(error.message)
        self.error = error


class SalesforceAdapter(Adapter):
    """Writes records to Salesforce and looks them up, through simple-salesforce.

    simple-salesforce is synchronous; its calls run in a pool of ``max_workers``
    threads so they never block the event loop, and that pool bounds the
    requests in flight. Sessions are obtained by this adapter (an OAuth 2.0 grant:
    client credentials, JWT bearer or refresh token; or SOAP login) and renewed
    once when Salesforce answers INVALID_SESSION_ID.
    """

    name = "salesforce"
    Settings = SalesforceSettings
    actions: ClassVar = {
        "upsert": Action(
            result=WriteResult,
            params=UpsertParams,
            description=(
                "Create or update the record whose external id field holds the payload's "
                "value; returns {id, created}."
            ),
            binds=_upsert_binds,
            idempotent=True,
        ),
        "create": Action(
            result=WriteResult,
            params=CreateParams,
            description="Create a record from the payload's fields; returns {id, created}.",
        ),
        "update": Action(
            result=WriteResult,
            params=UpdateParams,
            description="Set the payload's fields on the record with the payload's id.",
            binds=_update_binds,
            idempotent=True,
        ),
        "query": Action(
            result=QueryResult,
            params=QueryParams,
            binds=_query_binds,
            description="Run a SOQL lookup bound to the payload; returns {total_size, records}.",
            writes=False,
            idempotent=True,
        ),
        "freeze_user": Action(
            result=FreezeUserResult,
            params=FreezeUserParams,
            description=(
                "Freeze (or unfreeze) the login of the user a User field names "
                "(UserLogin.IsFrozen); returns {found, user_id, user_login_id, frozen, changed}."
            ),
            binds=_freeze_user_binds,
            idempotent=True,
        ),
    }

    def __init__(self, settings: Any, *, connection: str = "") -> None:
        if not isinstance(settings, SalesforceSettings):
            raise TypeError(
                f"SalesforceAdapter needs SalesforceSettings, got {type(settings).__name__}"
            )
        super().__init__(settings, connection=connection)
        self._config = settings
        self._secrets: dict[str, SecretStr] = {}
        self._session: requests.Session | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sf: Salesforce | None = None
        self._login_lock = threading.Lock()
        self._usage_lock = threading.Lock()
        self._usage: ApiUsage | None = None
        self._next_usage_check = 0.0
        self.logins = 0
        """How many times this connection logged in (or took its session id)."""

    # -- metrics ---------------------------------------------------------------

    @property
    def api_usage(self) -> ApiUsage | None:
        """The latest ``Sforce-Limit-Info`` reading, or None before the first answer."""
        with self._usage_lock:
            return self._usage

    def metrics(self) -> dict[str, float | int | None]:
        """Gauges for monitoring: API usage and its share of the daily allocation."""
        usage = self.api_usage
        return {
            "api_usage_used": usage.used if usage else None,
            "api_usage_limit": usage.limit if usage else None,
            "api_usage_share": usage.share if usage else None,
            "logins": self.logins,
        }

    # -- life ------------------------------------------------------------------

    async def start(self) -> None:
        """Read the credentials, open the worker pool and log in.

        Refused credentials are a `ConfigurationError`; if Salesforce cannot be
        reached, the first call logs in instead.
        """
        if self._pool is not None:
            return
        if isinstance(self._config.auth, PasswordAuth):
            _log.warning(
                "salesforce.password_auth_retiring",
                connection=self.connection,
                detail=(
                    "SOAP login() is off by default in new orgs, absent from API 65.0 and "
                    "retired for API 31.0-64.0 with Summer '27; move to auth type "
                    "client_credentials or jwt (docs/adapters/salesforce.md)"
                ),
            )
        self._secrets = self._read_secrets()
        self._session = self._new_session()
        self._pool = ThreadPoolExecutor(
            max_workers=self._config.max_workers,
            thread_name_prefix=f"salesforce-{self.connection}",
        )
        try:
            await self._in_pool(self._client)
        except PermanentError as exc:
            await self.close()
            raise ConfigurationError(
                f"connection {self.connection!r} (adapter 'salesforce'): {exc.message}"
            ) from None
        except RetryableError as exc:
            _log.warning("salesforce.login_deferred", connection=self.connection, error=exc.message)

    async def close(self) -> None:
        """Wait for calls in flight, then close the pool and the HTTP session."""
        pool, self._pool = self._pool, None
        session, self._session = self._session, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        if session is not None:
            session.close()
        self._sf = None

    def _read_secrets(self) -> dict[str, SecretStr]:
        auth = self._config.auth
        refs: dict[str, SecretRef | None] = {}
        if isinstance(auth, PasswordAuth):
            refs = {"password": auth.password, "security_token": auth.security_token}
        elif isinstance(auth, JwtAuth):
            refs = {"private_key": auth.private_key}
        elif isinstance(auth, ClientCredentialsAuth):
            refs = {"consumer_secret": auth.consumer_secret}
        elif isinstance(auth, RefreshTokenAuth):
            refs = {"consumer_secret": auth.consumer_secret, "refresh_token": auth.refresh_token}
        elif isinstance(auth, SessionAuth):
            refs = {"session_id": auth.session_id}
        secrets: dict[str, SecretStr] = {}
        for field, ref in refs.items():
            if ref is None:
                continue
            try:
                secrets[field] = ref.resolve()
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"connection {self.connection!r} (adapter 'salesforce'): auth.{field}: "
                    f"{exc}; set it before starting"
                ) from None
        return secrets

    def _new_session(self) -> requests.Session:
        config = self._config
        session = requests.Session()
        transport = _TimeoutAdapter(config.timeout, config.max_workers)
        session.mount("https://", transport)
        session.mount("http://", transport)
        if config.ca_bundle is not None:
            session.verify = str(config.ca_bundle)
            # Otherwise REQUESTS_CA_BUNDLE and friends override `verify`.
            session.trust_env = False
        if config.proxy is not None:
            session.proxies = {"https": config.proxy, "http": config.proxy}
        session.hooks["response"].append(self._on_response)
        return session

    # -- API usage -------------------------------------------------------------

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is None:
            return
        with self._usage_lock:
            self._usage = usage
            now = time.monotonic()
            if usage.share >= self._config.max_api_usage_share and self._next_usage_check <= now:
                self._next_usage_check = now + self._config.api_usage_recheck
        _log.debug(
            "salesforce.api_usage",
            connection=self.connection,
            used=usage.used,
            limit=usage.limit,
        )

    def _check_usage(self) -> None:
        """Back off, without calling, while the API usage share is reached."""
        share = self._config.max_api_usage_share
        with self._usage_lock:
            usage = self._usage
            if usage is None or usage.share < share:
                return
            now = time.monotonic()
            if now < self._next_usage_check:
                wait = self._next_usage_check - now
                raise RetryableError(
                    f"Salesforce API usage is {usage.used}/{usage.limit} "
                    f"({usage.share:.0%}), at or above max_api_usage_share {share:g}; "
                    f"not calling for {wait:.0f}s. Raise max_api_usage_share or the org's "
                    "API allocation if this is expected",
                    retry_after=wait,
                    vendor_code="API_USAGE_SHARE",
                )
            # Let this call through as the probe; the rest wait for the next check.
            self._next_usage_check = now + self._config.api_usage_recheck

    # -- calls -----------------------------------------------------------------

    async def call(self, request: Request) -> Any:
        """Perform ``request.action``; return ``{id, created}``, or for query ``{records, ...}``."""
        self.check_request(request)
        if self._pool is None:
            raise RuntimeError(f"connection {self.connection!r} is not started; call start()")
        spec = self.actions[request.action]
        assert spec.params is not None
        try:
            params = spec.params.model_validate(dict(request.params))
        except ValidationError as exc:
            error = exc.errors(include_input=False)[0]
            where = ".".join(str(p) for p in error["loc"])
            raise PermanentError(
                f"connection {self.connection!r}: invalid params for {request.action!r}: "
                f"{where}: {error['msg']}; fix the step's params"
            ) from None
        payload = request.payload if request.payload is not None else {}
        if not isinstance(payload, Mapping):
            raise PermanentError(
                f"connection {self.connection!r}: {request.action!r} needs a JSON object of "
                f"fields as payload, got {type(payload).__name__}; fix the step's mapping"
            )
        self._check_usage()
        return await self._in_pool(self._perform, request.action, params, dict(payload))

    async def _in_pool(self, func: Callable[..., _T], *args: Any) -> _T:
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"connection {self.connection!r} is not started; call start()")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, partial(func, *args))

    def _perform(self, action: str, params: BaseModel, fields: dict[str, Any]) -> Any:
        """Run in a worker thread: one call, and one retry after a new login."""
        sf = self._client()
        try:
            return self._attempt(sf, action, params, dict(fields))
        except _SessionExpiredError as expired:
            if isinstance(self._config.auth, SessionAuth):
                raise PermanentError(
                    f"{expired.error.message}. The connection authenticates with a fixed "
                    "session id, which cannot be renewed: give it a fresh one, or use "
                    "client_credentials, jwt or refresh_token auth",
                    status_code=401,
                    vendor_code=INVALID_SESSION_ID,
                ) from None
        _log.info("salesforce.session_expired", connection=self.connection, action=action)
        sf = self._relogin(sf)
        try:
            return self._attempt(sf, action, params, dict(fields))
        except _SessionExpiredError as again:
            raise PermanentError(
                f"{again.error.message}, again right after a new login; check the "
                "integration user's session settings (IP restrictions, session timeout)",
                status_code=401,
                vendor_code=INVALID_SESSION_ID,
            ) from None

    def _attempt(
        self, sf: Salesforce, action: str, params: BaseModel, fields: dict[str, Any]
    ) -> Any:
        where = f"{action} {getattr(params, 'sobject', '')}".strip()
        try:
            if isinstance(params, UpsertParams):
                return self._upsert(sf, params, fields)
            if isinstance(params, CreateParams):
                return self._create(sf, params, fields)
            if isinstance(params, UpdateParams):
                return self._update(sf, params, fields)
            if isinstance(params, QueryParams):
                return self._query(sf, params, fields)
            if isinstance(params, FreezeUserParams):
                return self._freeze_user(sf, params, fields)
            raise AssertionError(f"no handler for {type(params).__name__}")
        except SalesforceError as exc:
            error = classify(where, exc.status, exc.content, self._scrub, action=action)
            if isinstance(exc, SalesforceExpiredSession) and (
                error_code(exc.content) in (INVALID_SESSION_ID, None)
            ):
                raise _SessionExpiredError(error) from None
            raise error from None
        except requests.RequestException as exc:
            raise self._transport_error(where, exc, action) from None
        except (TypeError, ValueError) as exc:  # payload not JSON-able, bad bind, bad JSON
            raise PermanentError(
                f"Salesforce {where}: {self._scrub(str(exc))}; fix the step's mapping"
            ) from None

    def _sftype(self, sf: Salesforce, sobject: str) -> Any:
        # Not `getattr(sf, sobject)`: an object named like a method (Query__c is fine,
        # but "query" is not) would be shadowed; and no `salesforce=`, so that
        # simple-salesforce never logs in by itself (this adapter does, once).
        return SFType(
            sobject,
            sf.session_id,
            sf.sf_instance,
            sf_version=self._config.api_version,
            session=self._session,
            object_pairs_hook=dict,
        )

    def _upsert(self, sf: Salesforce, params: UpsertParams, fields: dict[str, Any]) -> Any:
        value = fields.pop(params.external_id_field, None)
        if value is None or value == "" or isinstance(value, dict | list | bool):
            raise PermanentError(
                f"Salesforce upsert {params.sobject}: the payload has no usable value for "
                f"the external id field {params.external_id_field!r}; fix the step's mapping"
            )
        record = f"{params.external_id_field}/{quote(str(value), safe='')}"
        response = self._sftype(sf, params.sobject).upsert(record, fields, raw_response=True)
        body = _json_or_none(response)
        # 201: created; 200 (API 46.0+) or 204 (older): updated.
        return {
            "id": body.get("id") if isinstance(body, dict) else None,
            "created": response.status_code == 201,
        }

    def _create(self, sf: Salesforce, params: CreateParams, fields: dict[str, Any]) -> Any:
        body = self._sftype(sf, params.sobject).create(fields)
        return {"id": body.get("id") if isinstance(body, dict) else None, "created": True}

    def _update(self, sf: Salesforce, params: UpdateParams, fields: dict[str, Any]) -> Any:
        record_id = fields.pop(params.id_field, None)
        if not isinstance(record_id, str) or not record_id:
            raise PermanentError(
                f"Salesforce update {params.sobject}: the payload has no record id in "
                f"{params.id_field!r}; fix the step's mapping"
            )
        self._sftype(sf, params.sobject).update(quote(record_id, safe=""), fields)
        return {"id": record_id, "created": False}

    def _query(self, sf: Salesforce, params: QueryParams, fields: dict[str, Any]) -> Any:
        result = sf.query(bind(params.soql, fields))
        records = [
            {k: v for k, v in record.items() if k != "attributes"}
            for record in result.get("records", [])
        ]
        return {
            "total_size": result.get("totalSize", len(records)),
            "done": result.get("done", True),
            "records": records,
        }

    def _freeze_user(self, sf: Salesforce, params: FreezeUserParams, fields: dict[str, Any]) -> Any:
        """Set UserLogin.IsFrozen for the one user whose ``match_field`` holds the value."""
        value = fields.pop(params.match_field, None)
        frozen = fields.pop("IsFrozen", True)
        if not isinstance(value, str) or not value or not isinstance(frozen, bool) or fields:
            raise PermanentError(
                f"Salesforce freeze_user: the payload must hold {params.match_field} (a "
                "non-empty string) and optionally IsFrozen (true or false), nothing else; "
                "fix the step's mapping"
            )
        # match_field is a field name (checked by FreezeUserParams); the value is bound.
        soql = f"SELECT Id FROM User WHERE {params.match_field} = :value LIMIT 2"  # noqa: S608
        try:
            users = self._query(sf, QueryParams(soql=soql), {"value": value})["records"]
        except SalesforceError as exc:
            if isinstance(exc, SalesforceExpiredSession):
                raise  # _attempt logs in again
            # The value (a login, an e-mail) is personal data: Salesforce may echo the query.
            scrub = lambda text: self._scrub(text).replace(value, "***")  # noqa: E731
            raise classify("freeze_user", exc.status, exc.content, scrub) from None
        if not users:
            return FreezeUserResult(found=False).model_dump()
        if len(users) > 1:
            raise PermanentError(
                f"Salesforce freeze_user: more than one User has this {params.match_field}; "
                "freezing needs one. Use a unique field as match_field, then replay the event",
                vendor_code="DUPLICATE_VALUE",
            )
        user_id = str(users[0]["Id"])
        soql = "SELECT Id, IsFrozen FROM UserLogin WHERE UserId = :user_id LIMIT 1"
        logins = self._query(sf, QueryParams(soql=soql), {"user_id": user_id})["records"]
        if not logins:
            raise PermanentError(
                f"Salesforce freeze_user: user {user_id} has no UserLogin record to freeze; "
                "check the integration user's access to UserLogin (Manage Users)",
                vendor_code="NOT_FOUND",
            )
        login_id = str(logins[0]["Id"])
        changed = logins[0].get("IsFrozen") is not frozen
        if changed:
            self._sftype(sf, "UserLogin").update(login_id, {"IsFrozen": frozen})
        return FreezeUserResult(
            found=True, user_id=user_id, user_login_id=login_id, frozen=frozen, changed=changed
        ).model_dump()

    # -- sessions --------------------------------------------------------------

    def _client(self) -> Salesforce:
        """The logged-in client, logging in first if there is none yet."""
        with self._login_lock:
            if self._sf is None:
                self._sf = self._login()
            return self._sf

    def _relogin(self, stale: Salesforce) -> Salesforce:
        """A client with a new session, unless another thread already renewed ``stale``."""
        with self._login_lock:
            if self._sf is stale or self._sf is None:
                self._sf = self._login()
            return self._sf

    def _login(self) -> Salesforce:
        auth = self._config.auth
        version = self._config.api_version
        base = login_base_url(self._config)
        started = time.monotonic()
        if isinstance(auth, SessionAuth):
            session_id = self._secret("session_id")
            instance = urlsplit(auth.instance_url).netloc
        elif isinstance(auth, PasswordAuth):
            session_id, instance = self._soap_login(auth, base)
        else:
            grant = self._token_grant(auth, base)
            session_id = grant.access_token.get_secret_value()
            instance = urlsplit(grant.instance_url).netloc
        self._secrets["_session"] = SecretStr(session_id)
        self.logins += 1
        _log.info(
            "salesforce.login",
            connection=self.connection,
            auth=auth.type,
            instance=instance,
            seconds=round(time.monotonic() - started, 3),
        )
        return Salesforce(
            instance_url=f"https://{instance}",
            session_id=session_id,
            version=version,
            session=self._session,
            object_pairs_hook=dict,
        )

    def _soap_login(self, auth: PasswordAuth, base: str) -> tuple[str, str]:
        token = self._secrets.get("security_token")
        try:
            session_id, instance = SalesforceLogin(
                username=auth.username,
                password=self._secret("password"),
                security_token=token.get_secret_value() if token else None,
                sf_version=self._config.api_version,
                session=self._session,
                domain=auth.domain,
                # The SOAP endpoint under `base`: simple-salesforce would only
                # build https://<domain>.salesforce.com itself.
                scratch_url=base,
            )
        except SalesforceAuthenticationFailed as exc:
            code = exc.code
            retryable = (isinstance(code, int) and code >= 500) or code in RETRYABLE_CODES
            message = (
                f"Salesforce login (password) at {base} failed: {code}: "
                f"{self._scrub(exc.auth_message)[:300]}"
            )
            if retryable:
                raise RetryableError(f"{message}; retryable", vendor_code=str(code)) from None
            raise LoginRefusedError(
                f"{message}; check the connection's auth settings and secrets",
                status_code=401,
                vendor_code=str(code) if code is not None else None,
            ) from None
        except requests.RequestException as exc:
            raise self._transport_error(f"login (password) at {base}", exc, "") from None
        return str(session_id), str(instance)

    def _token_grant(
        self, auth: ClientCredentialsAuth | JwtAuth | RefreshTokenAuth, base: str
    ) -> TokenGrant:
        """One OAuth 2.0 grant at ``base``'s token endpoint (see `oauth`)."""
        secret = self._secrets.get("consumer_secret")
        refresh = self._secrets.get("refresh_token")
        form = token_form(
            auth,
            assertion=self._assertion(auth) if isinstance(auth, JwtAuth) else None,
            consumer_secret=secret.get_secret_value() if secret else None,
            refresh_token=refresh.get_secret_value() if refresh else None,
        )
        where = f"login ({auth.type}) at {base}"
        session = self._session
        if session is None:
            raise RuntimeError(f"connection {self.connection!r} is not started; call start()")
        try:
            response = session.post(
                f"{base}/services/oauth2/token", data=form, headers={"Accept": "application/json"}
            )
        except requests.RequestException as exc:
            raise self._transport_error(where, exc, "") from None
        answer = read_token_answer(
            where, response.status_code, _json_or_none(response), self._scrub
        )
        if isinstance(answer, DeliveryError):
            raise answer
        if answer.refresh_token is not None and isinstance(auth, RefreshTokenAuth):
            self._rotated(auth, answer.refresh_token)
        return answer

    def _rotated(self, auth: RefreshTokenAuth, token: SecretStr) -> None:
        """Keep a rotated refresh token: Salesforce revoked the one just used."""
        if token.get_secret_value() == self._secret("refresh_token"):
            return
        self._secrets["_previous_refresh_token"] = self._secrets["refresh_token"]
        self._secrets["refresh_token"] = token
        ref = auth.refresh_token
        if ref.file is None:
            _log.warning(
                "salesforce.refresh_token_rotated",
                connection=self.connection,
                detail=(
                    "the refresh token in the environment variable is now revoked, so a "
                    "restart needs a new one (use refresh_token: {file: PATH})"
                ),
                variable=ref.env,
            )
            return
        temporary = ref.file.with_name(f".{ref.file.name}.new")
        try:
            temporary.write_text(token.get_secret_value() + "\n", encoding="utf-8")
            temporary.chmod(0o600)
            os.replace(temporary, ref.file)
        except OSError as exc:
            _log.warning(
                "salesforce.refresh_token_not_saved",
                connection=self.connection,
                file=str(ref.file),
                reason=exc.strerror,
            )
        else:
            _log.info("salesforce.refresh_token_rotated", connection=self.connection)

    def _assertion(self, auth: JwtAuth) -> str:
        claims = jwt_claims(auth, time.time())
        try:
            return jwt.encode(claims, self._secret("private_key"), algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise PermanentError(
                f"auth.private_key cannot sign the JWT ({type(exc).__name__}); "
                "give a PEM RSA private key"
            ) from None

    def _secret(self, name: str) -> str:
        return self._secrets[name].get_secret_value()

    # -- errors ----------------------------------------------------------------

    def _transport_error(
        self, where: str, exc: requests.RequestException, action: str
    ) -> DeliveryError:
        detail = self._scrub(str(exc))[:300] or "no detail"
        if isinstance(exc, requests.Timeout):
            applied = (
                " The create may have been applied; the runtime's ledger does not know."
                if action == "create"
                else ""
            )
            return RetryableError(
                f"Salesforce {where} timed out ({type(exc).__name__}) after "
                f"{self._config.timeout:g}s; retryable.{applied} Raise the connection's "
                "timeout if Salesforce is just slow"
            )
        if isinstance(exc, requests.exceptions.SSLError) and "certificate" in detail.lower():
            return PermanentError(
                f"Salesforce {where}: the TLS certificate was not trusted: {detail}; "
                "check ca_bundle"
            )
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return PermanentError(f"Salesforce {where}: invalid URL: {detail}")
        return RetryableError(
            f"Salesforce {where} failed: {type(exc).__name__}: {detail}; retryable. "
            "Check that Salesforce is reachable"
        )

    def _scrub(self, text: str) -> str:
        # Salesforce or a library may echo a credential back; never pass it on.
        return mask_secrets_in(text, self._secrets.values())

    def __repr__(self) -> str:
        auth = self._config.auth
        return (
            f"SalesforceAdapter(connection={self.connection!r}, auth={auth.type!r}, "
            f"api_version={self._config.api_version!r})"
        )


def _json_or_none(response: Any) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
