"""`ZuoraAdapter`: accounts and subscriptions in Zuora Billing over the v1 REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn

import httpx
from pydantic import BaseModel, SecretStr

from platypus.adapter import Action, Request
from platypus.apiadapter import ApiAdapter
from platypus.exceptions import MissingDependencyError, PermanentError, RetryableError
from platypus.logging import get_logger
from platypus.oauth import AccessToken, TokenCache
from platypus.vendorhttp import (
    USER_AGENT,
    async_client,
    json_or_none,
    mask_secrets_in,
    parse_input,
    untrusted_certificate,
    verify_with,
)

from ._errors import Outcome, Verdict, classify, retry_after
from ._idempotency import IdempotencyKeys, answered_failure
from .models import (
    CreateAccountInput,
    CreateAccountResult,
    CreateSubscriptionInput,
    CreateSubscriptionResult,
    FindAccountInput,
    FindAccountResult,
    ZuoraSettings,
)

__all__ = ["ZuoraAdapter"]

_log = get_logger("platypus.adapters.zuora")
_BODY_EXCERPT = 300


class ZuoraAdapter(ApiAdapter):
    """Creates accounts and subscriptions (Orders API) and finds accounts by CRM id.

    Authenticates with an OAuth client (client credentials); the token is cached
    and fetched again ``token_refresh_margin`` before it expires, or once when
    Zuora answers 401. Writes carry ``Idempotency-Key``, which Zuora honours for
    24 hours, so a retried or replayed write creates one record.
    """

    name = "zuora"
    Settings = ZuoraSettings
    actions: ClassVar = {
        "create_account": Action(
            result=CreateAccountResult,
            input=CreateAccountInput,
            description="Create a customer account (POST /v1/accounts).",
            idempotent=True,
        ),
        "create_subscription": Action(
            result=CreateSubscriptionResult,
            input=CreateSubscriptionInput,
            description="Create a subscription with a CreateSubscription order (POST /v1/orders).",
            idempotent=True,
        ),
        "find_account": Action(
            result=FindAccountResult,
            input=FindAccountInput,
            description="Find an account by its CRM id (ZOQL through POST /v1/action/query).",
            writes=False,
        ),
    }

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        if not isinstance(settings, ZuoraSettings):
            raise TypeError(f"ZuoraAdapter needs ZuoraSettings, got {type(settings).__name__}")
        super().__init__(settings, connection=connection)
        self._config = settings
        self._client_id = SecretStr("")
        self._client_secret = SecretStr("")
        self._issued: list[SecretStr] = []  # the latest tokens, scrubbed from messages
        self.tokens = TokenCache(self._fetch_token, margin=settings.token_refresh_margin)
        self.keys = IdempotencyKeys()
        """Each step's Idempotency-Key chain: a key Zuora answered a failure to is spent."""

    # -- life ---------------------------------------------------------------

    def open_client(self) -> httpx.AsyncClient:
        """Read the OAuth client's secrets and build the connection pool.

        The first token is fetched by the first call, so a Zuora outage at start-up
        is a retryable delivery failure, not a crash.
        """
        config = self._config
        self._client_id = config.client_id.resolve()
        self._client_secret = config.client_secret.resolve()
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if config.zuora_version:
            headers["Zuora-Version"] = config.zuora_version
        if config.entity_ids:
            headers["Zuora-Entity-Ids"] = config.entity_ids
        return async_client(
            base_url=config.base_url,
            headers=headers,
            timeout=config.timeout,
            max_connections=config.max_connections,
            verify=verify_with(config.ca_bundle, connection=self.connection),
            proxy=config.proxy,
        )

    def forget(self) -> None:
        """Forget the token (on close)."""
        self.tokens.clear()

    # -- calls --------------------------------------------------------------

    async def call(self, request: Request) -> Any:
        """Perform one action; return the ids Zuora assigned (or found)."""
        self.check_request(request)
        spec = self.actions[request.action]
        assert spec.input is not None
        payload = parse_input(
            spec.input, request.payload, connection=self.connection, action=request.action
        )

        if isinstance(payload, CreateAccountInput):
            body = await self._send("/v1/accounts", payload.wire(), request)
            return _pick(body, "accountId", "accountNumber", "billToContactId", "soldToContactId")
        if isinstance(payload, CreateSubscriptionInput):
            body = await self._send("/v1/orders", payload.wire(), request)
            return _order_result(body)
        assert isinstance(payload, FindAccountInput)
        # The value is quoted and escaped by _zoql, so it cannot change the query.
        where = f"CrmId = {_zoql(payload.crm_id)}"
        query = f"select Id, AccountNumber from Account where {where}"  # noqa: S608
        body = await self._send("/v1/action/query", {"queryString": query}, request)
        return self._found(body, payload.crm_id)

    async def _send(self, path: str, body: Mapping[str, Any], request: Request) -> Any:
        """POST ``body`` with a bearer token; on a refused token fetch one more and resend."""
        headers = {}
        writes = self.actions[request.action].writes
        if writes:
            headers["Idempotency-Key"] = self.keys.current(request.idempotency_key)
        where = f"POST {path}"
        token = await self.tokens.get()
        response = await self._post(where, path, body, headers, token)
        outcome = classify(response.status_code, json_or_none(response), request.action)
        if outcome.verdict is Verdict.REFRESH:
            _log.info(
                "zuora token refused; fetching a new one",
                connection=self.connection,
                status=response.status_code,
                vendor_code=outcome.vendor_code,
            )
            self.tokens.invalidate(token)
            token = await self.tokens.get()
            response = await self._post(where, path, body, headers, token)
            outcome = classify(response.status_code, json_or_none(response), request.action)
            if outcome.verdict is Verdict.REFRESH:
                outcome = Outcome(Verdict.PERMANENT, outcome.vendor_code, outcome.detail)
                self._raise(where, response, outcome, "a freshly fetched token")
        if outcome.verdict is Verdict.OK:
            return json_or_none(response)
        if writes and answered_failure(response.status_code, outcome.vendor_code):
            # Zuora stored this failure under the key: a retry needs the next one.
            self.keys.failed(request.idempotency_key, headers["Idempotency-Key"])
        self._raise(where, response, outcome)

    async def _post(
        self,
        where: str,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        token: AccessToken,
    ) -> httpx.Response:
        client = self.client
        auth = {"Authorization": f"Bearer {token.value.get_secret_value()}"}
        try:
            return await client.post(path, json=body, headers={**headers, **auth})
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Zuora {where} timed out ({type(exc).__name__}) after "
                f"{self._config.timeout:g}s; retryable (writes carry an Idempotency-Key, "
                "so a repeated write is applied once). Raise the connection's timeout "
                "if Zuora is just slow"
            ) from None
        except httpx.TransportError as exc:
            self._untrusted(exc)
            raise RetryableError(
                f"Zuora {where} failed: {type(exc).__name__}: "
                f"{self._scrub(str(exc)) or 'no detail'}; retryable. "
                f"Check that Zuora is reachable at {self._config.base_url}"
            ) from None

    def _raise(
        self, where: str, response: httpx.Response, outcome: Outcome, sent_with: str = ""
    ) -> NoReturn:
        status = response.status_code
        detail = outcome.detail or response.text[:_BODY_EXCERPT].strip() or "(empty body)"
        message = f"Zuora {where} answered {status}: {self._scrub(detail[:_BODY_EXCERPT])}"
        if outcome.verdict is Verdict.RETRYABLE:
            rate_limited = status == 429 or (outcome.vendor_code or "").endswith("70")
            wait = retry_after(response.headers, rate_limited=rate_limited)
            raise RetryableError(
                f"{message} (retryable: a later attempt may succeed)",
                status_code=status,
                retry_after=wait,
                vendor_code=outcome.vendor_code,
            )
        if outcome.verdict is Verdict.MISSING:
            raise MissingDependencyError(
                f"{message} (the account it refers to does not exist yet: retried for the "
                "step's dependency_wait, then dead-lettered; replay it once the account exists)",
                status_code=status,
                vendor_code=outcome.vendor_code,
            )
        if sent_with:
            hint = (
                f"refused even with {sent_with}; check that the OAuth client's user "
                "has API access and the permissions this action needs"
            )
        elif status in {404, 405}:
            hint = "check the connection's base_url (production, sandbox or data centre)"
        elif status == 422 and "idempotency" in detail.lower():
            hint = "the same Idempotency-Key was sent earlier with another body"
        else:
            hint = "Zuora refused the data; fix the event or the step's mapping"
        raise PermanentError(
            f"{message} ({hint})",
            status_code=status,
            vendor_code=outcome.vendor_code,
        )

    def _found(self, body: Any, crm_id: str) -> dict[str, Any]:
        records = body.get("records") if isinstance(body, Mapping) else None
        records = records if isinstance(records, list) else []
        if len(records) > 1:
            raise PermanentError(
                f"Zuora has {len(records)} accounts with crmId {crm_id!r}; "
                "a lookup needs one. Merge the duplicates in Zuora, then replay the event",
                vendor_code="DUPLICATE_CRM_ID",
            )
        if not records:
            return {"found": False, "accountId": None, "accountNumber": None}
        record = records[0]
        return {
            "found": True,
            "accountId": record.get("Id"),
            "accountNumber": record.get("AccountNumber"),
        }

    # -- OAuth --------------------------------------------------------------

    async def _fetch_token(self) -> tuple[SecretStr, float]:
        """POST /oauth/token with the client credentials: (access token, expires_in)."""
        client = self.client
        where = "POST /oauth/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id.get_secret_value(),
            "client_secret": self._client_secret.get_secret_value(),
        }
        try:
            response = await client.post("/oauth/token", data=form)
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Zuora {where} timed out ({type(exc).__name__}); retryable"
            ) from None
        except httpx.TransportError as exc:
            self._untrusted(exc)
            raise RetryableError(
                f"Zuora {where} failed: {type(exc).__name__}: "
                f"{self._scrub(str(exc)) or 'no detail'}; retryable"
            ) from None
        status = response.status_code
        body = json_or_none(response)
        if status == 200 and isinstance(body, Mapping) and body.get("access_token"):
            token = SecretStr(str(body["access_token"]))
            lifetime = body.get("expires_in")
            seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
            self._issued = [*self._issued[-3:], token]
            _log.debug("zuora token fetched", connection=self.connection, expires_in=seconds)
            return token, seconds
        excerpt = self._scrub(response.text[:_BODY_EXCERPT].strip()) or "(empty body)"
        message = f"Zuora {where} answered {status}: {excerpt}"
        if status == 429 or status >= 500:
            raise RetryableError(
                f"{message} (retryable)",
                status_code=status,
                retry_after=retry_after(response.headers, rate_limited=status == 429),
            )
        raise PermanentError(
            f"{message} (check the connection's client_id and client_secret, and that "
            "the OAuth client is active in this tenant)",
            status_code=status,
        )

    # -- secrecy --------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        # Zuora or a library may echo a credential back; never pass it on.
        return mask_secrets_in(text, [self._client_secret, *self._issued])

    def _untrusted(self, exc: httpx.TransportError) -> None:
        """A certificate this connection does not trust is no transient failure."""
        if untrusted_certificate(exc):
            raise PermanentError(
                f"Zuora at {self._config.base_url}: the TLS certificate was not trusted "
                f"({self._scrub(str(exc))[:200] or type(exc).__name__}); set the "
                "connection's ca_bundle to the CA that signed it"
            ) from None

    def __repr__(self) -> str:
        return f"ZuoraAdapter(connection={self.connection!r}, base_url={self._config.base_url!r})"


def _pick(body: Any, *names: str) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        return {}
    return {name: body[name] for name in names if name in body}


def _order_result(body: Any) -> dict[str, Any]:
    result = _pick(body, "orderNumber", "accountNumber", "status")
    numbers = body.get("subscriptionNumbers") if isinstance(body, Mapping) else None
    if not isinstance(numbers, list):
        # Newer Zuora-Version answers list {"subscriptionNumber", "status"} objects.
        subscriptions = body.get("subscriptions") if isinstance(body, Mapping) else None
        numbers = [
            s["subscriptionNumber"]
            for s in subscriptions or []
            if isinstance(s, Mapping) and "subscriptionNumber" in s
        ]
    result["subscriptionNumbers"] = numbers
    return result


def _zoql(value: str) -> str:
    """A ZOQL string literal: single-quoted, with backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
