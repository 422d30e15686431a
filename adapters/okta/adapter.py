"""`OktaAdapter`: user lifecycle and group membership in an Okta org, over the management API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, SecretStr

from platypus.adapter import Action
from platypus.apiadapter import ApiAdapter
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus.logging import get_logger
from platypus.oauth import AccessToken, TokenCache
from platypus.vendorhttp import (
    async_client,
    json_or_none,
    mask_secrets_in,
    transport_failure,
)

from ._errors import ALREADY_ACTIVE, CredentialsError, classify, parse_error
from ._ratelimit import RateLimits, bucket_of
from .models import (
    GROUP_ID,
    USER_ID,
    ActivateUserInput,
    ActivateUserResult,
    AddUserToGroupsResult,
    ApiTokenAuth,
    ClearUserSessionsInput,
    ClearUserSessionsResult,
    CreateUserInput,
    CreateUserResult,
    DeactivateUserResult,
    FindUserResult,
    GroupMembership,
    GroupMembershipInput,
    ListUsersInput,
    ListUsersResult,
    OktaSettings,
    OktaUser,
    PrivateKeyJwtAuth,
    RemoveUserFromGroupsResult,
    SuspendUserResult,
    UnsuspendUserResult,
    UpdateProfileInput,
    UpdateProfileResult,
    UserInput,
)

__all__ = ["RESULTS", "OktaAdapter"]

_log = get_logger("platypus.adapters.okta")
_BODY_EXCERPT = 300
_TOKEN_PATH = "/oauth2/v1/token"  # noqa: S105 -- a path, not a credential
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

RESULTS: dict[str, type[BaseModel]] = {
    "create_user": CreateUserResult,
    "activate_user": ActivateUserResult,
    "deactivate_user": DeactivateUserResult,
    "suspend_user": SuspendUserResult,
    "unsuspend_user": UnsuspendUserResult,
    "update_profile": UpdateProfileResult,
    "add_user_to_groups": AddUserToGroupsResult,
    "remove_user_from_groups": RemoveUserFromGroupsResult,
    "clear_user_sessions": ClearUserSessionsResult,
    "find_user": FindUserResult,
    "list_users": ListUsersResult,
}
"""The model of what each action returns, by action."""


class OktaAdapter(ApiAdapter):
    """Creates, activates, suspends and deactivates Okta users, and manages group membership.

    Authenticates with an API token (``SSWS``) or as an API service app (OAuth 2.0
    client credentials with a private-key JWT; the access token is cached and
    fetched again before it expires, or once when Okta answers 401). Every
    action is safe to repeat: a user is created only when no user has its login,
    and a lifecycle change already made is reported, not refused.
    """

    name = "okta"
    Settings = OktaSettings
    actions: ClassVar = {
        "create_user": Action(
            result=RESULTS["create_user"],
            input=CreateUserInput,
            description="Create a user (STAGED unless activate) unless one has its login.",
            idempotent=True,
        ),
        "activate_user": Action(
            result=RESULTS["activate_user"],
            input=ActivateUserInput,
            description="Activate a STAGED or DEPROVISIONED user; an active one is left as is.",
            idempotent=True,
        ),
        "deactivate_user": Action(
            result=RESULTS["deactivate_user"],
            input=UserInput,
            description="Deactivate a user (DEPROVISIONED): no more sign-in or app access.",
            idempotent=True,
        ),
        "suspend_user": Action(
            result=RESULTS["suspend_user"],
            input=UserInput,
            description="Suspend an ACTIVE user (no sign-in; memberships and apps kept).",
            idempotent=True,
        ),
        "unsuspend_user": Action(
            result=RESULTS["unsuspend_user"],
            input=UserInput,
            description="Return a SUSPENDED user to ACTIVE.",
            idempotent=True,
        ),
        "update_profile": Action(
            result=RESULTS["update_profile"],
            input=UpdateProfileInput,
            description="Set profile attributes of a user; the others are kept.",
            idempotent=True,
        ),
        "add_user_to_groups": Action(
            result=RESULTS["add_user_to_groups"],
            input=GroupMembershipInput,
            description="Add a user to groups (by id or exact name).",
            idempotent=True,
        ),
        "remove_user_from_groups": Action(
            result=RESULTS["remove_user_from_groups"],
            input=GroupMembershipInput,
            description="Remove a user from groups (by id or exact name).",
            idempotent=True,
        ),
        "clear_user_sessions": Action(
            result=RESULTS["clear_user_sessions"],
            input=ClearUserSessionsInput,
            description="End every Okta session of a user, and revoke their OAuth tokens.",
            idempotent=True,
        ),
        "find_user": Action(
            result=RESULTS["find_user"],
            input=UserInput,
            description="Look a user up by id or login; returns {found, id, login, status}.",
            writes=False,
            idempotent=True,
        ),
        "list_users": Action(
            result=RESULTS["list_users"],
            input=ListUsersInput,
            description="One page of the users an Okta search expression selects.",
            writes=False,
            idempotent=True,
        ),
    }

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        if not isinstance(settings, OktaSettings):
            raise TypeError(f"OktaAdapter needs OktaSettings, got {type(settings).__name__}")
        super().__init__(settings, connection=connection)
        self._config = settings
        self._api_token = SecretStr("")
        self._private_key: Any = None
        self._secrets: list[SecretStr] = []  # the latest tokens and assertions, scrubbed
        self.tokens = TokenCache(self._fetch_token, margin=settings.token_refresh_margin)
        self.rate_limits = RateLimits()
        self._groups: dict[str, GroupMembership] = {}  # id or name -> group

    # -- life -----------------------------------------------------------------

    def open_client(self) -> httpx.AsyncClient:
        """Read the credentials and build the connection pool.

        An access token is fetched by the first call, so an Okta outage at start-up
        is a retryable delivery failure, not a crash.
        """
        config = self._config
        auth = config.auth
        if isinstance(auth, ApiTokenAuth):
            self._api_token = auth.token.resolve()
        else:
            self._private_key = _load_private_key(auth)
        return async_client(
            base_url=config.org_url,
            headers={"Accept": "application/json"},
            timeout=config.timeout,
            max_connections=config.max_connections,
            ca_bundle=config.ca_bundle,
            proxy=config.proxy,
        )

    def forget(self) -> None:
        """Forget the access token (on close)."""
        self.tokens.clear()

    def metrics(self) -> dict[str, float | int | None]:
        """Gauges for monitoring: the tightest rate-limit bucket, and tokens fetched."""
        buckets = self.rate_limits.snapshot().values()
        remaining = [b.remaining for b in buckets if b.remaining >= 0]
        return {
            "rate_limit_remaining_min": min(remaining) if remaining else None,
            "token_fetches": self.tokens.fetches,
        }

    # -- actions (run by ApiAdapter.call: one method per action) ---------------

    async def _create_user(self, data: CreateUserInput) -> CreateUserResult:
        profile = data.profile
        personal = (profile.login, profile.email, profile.firstName, profile.lastName)
        where = "create_user"
        existing = await self._get_user(profile.login, where, personal, missing_ok=True)
        if existing is None:
            group_ids = [(await self._group(name, where)).id for name in data.groups]
            body: dict[str, Any] = {"profile": profile.wire()}
            if group_ids:
                body["groupIds"] = group_ids
            params = {"activate": "true" if data.activate else "false"}
            response = await self._send(
                "POST", "/api/v1/users", where, params=params, json=body, personal=personal
            )
            if response.status_code == 200:
                user = _object(response)
                return CreateUserResult(
                    id=str(user["id"]), login=profile.login, status=_status(user), created=True
                )
            if not _login_taken(response):
                raise self._failure(where, response, personal)
            # Created by another delivery between the lookup and the create.
            existing = await self._get_user(profile.login, where, personal)
            assert existing is not None
        self._check_same_person(existing, data)
        if data.groups:
            await self._add_user_to_groups(
                GroupMembershipInput(user=str(existing["id"]), groups=data.groups)
            )
        return CreateUserResult(
            id=str(existing["id"]), login=profile.login, status=_status(existing), created=False
        )

    def _check_same_person(self, existing: Mapping[str, Any], data: CreateUserInput) -> None:
        wanted = data.profile.employeeNumber
        have = (existing.get("profile") or {}).get("employeeNumber")
        if wanted and have and str(have) != wanted:
            raise PermanentError(
                f"Okta create_user: the login is taken by user {existing['id']}, whose "
                "employeeNumber is another one; two people cannot share a login. Give the new "
                "worker another login (or fix the HR record), then replay the event",
                vendor_code="LOGIN_OF_ANOTHER_EMPLOYEE",
            )

    async def _activate_user(self, data: ActivateUserInput) -> ActivateUserResult:
        where = "activate_user"
        user_id = await self._user_id(data.user, where)
        params = {"sendEmail": "true" if data.send_email else "false"}
        path = f"/api/v1/users/{user_id}/lifecycle/activate"
        # The answer may hold an activation token: a credential, never passed on.
        response = await self._send("POST", path, where, params=params)
        activated = response.status_code == 200
        if not activated and parse_error(json_or_none(response)).code != ALREADY_ACTIVE:
            raise self._failure(where, response)
        user = await self._get_user(user_id, where)
        assert user is not None
        return ActivateUserResult(id=user_id, status=_status(user), activated=activated)

    async def _deactivate_user(self, data: UserInput) -> DeactivateUserResult:
        user_id, changed, status = await self._transition(
            data.user, "deactivate", "DEPROVISIONED", params={"sendEmail": "false"}
        )
        return DeactivateUserResult(id=user_id, status=status, deactivated=changed)

    async def _suspend_user(self, data: UserInput) -> SuspendUserResult:
        user_id, changed, status = await self._transition(data.user, "suspend", "SUSPENDED")
        return SuspendUserResult(id=user_id, status=status, suspended=changed)

    async def _unsuspend_user(self, data: UserInput) -> UnsuspendUserResult:
        user_id, changed, status = await self._transition(data.user, "unsuspend", "ACTIVE")
        return UnsuspendUserResult(id=user_id, status=status, unsuspended=changed)

    async def _transition(
        self, ref: str, operation: str, target: str, params: Mapping[str, str] | None = None
    ) -> tuple[str, bool, str]:
        """(user id, changed, status): a lifecycle operation, or the state it leads to already."""
        where = f"{operation}_user"
        user_id = await self._user_id(ref, where)
        path = f"/api/v1/users/{user_id}/lifecycle/{operation}"
        response = await self._send("POST", path, where, params=params)
        if response.status_code == 200:
            return user_id, True, target
        if response.status_code in (400, 403):
            # Okta refuses an operation the user's status does not allow, which includes
            # the one that already happened: a replay finds the user there already.
            user = await self._get_user(user_id, where)
            if user is not None and _status(user) == target:
                return user_id, False, target
        raise self._failure(where, response)

    async def _update_profile(self, data: UpdateProfileInput) -> UpdateProfileResult:
        where = "update_profile"
        user_id = await self._user_id(data.user, where)
        personal = tuple(str(v) for v in data.profile.values() if isinstance(v, str))
        response = await self._send(
            "POST",
            f"/api/v1/users/{user_id}",
            where,
            json={"profile": data.profile},
            personal=personal,
        )
        if response.status_code != 200:
            raise self._failure(where, response, personal)
        user = _object(response)
        login = str((user.get("profile") or {}).get("login", ""))
        return UpdateProfileResult(id=user_id, login=login, status=_status(user))

    async def _add_user_to_groups(self, data: GroupMembershipInput) -> AddUserToGroupsResult:
        user_id, groups = await self._membership(data, "PUT", "add_user_to_groups")
        return AddUserToGroupsResult(id=user_id, groups=groups)

    async def _remove_user_from_groups(
        self, data: GroupMembershipInput
    ) -> RemoveUserFromGroupsResult:
        user_id, groups = await self._membership(data, "DELETE", "remove_user_from_groups")
        return RemoveUserFromGroupsResult(id=user_id, groups=groups)

    async def _membership(
        self, data: GroupMembershipInput, method: str, where: str
    ) -> tuple[str, list[GroupMembership]]:
        user_id = await self._user_id(data.user, where)
        done: list[GroupMembership] = []
        for ref in data.groups:
            group = await self._group(ref, where)
            path = f"/api/v1/groups/{group.id}/users/{user_id}"
            response = await self._send(method, path, where)
            if response.status_code not in (200, 204):
                if response.status_code == 404:
                    self._groups.pop(ref, None)  # a renamed or deleted group: look it up again
                raise self._failure(where, response)
            done.append(group)
        return user_id, done

    async def _clear_user_sessions(self, data: ClearUserSessionsInput) -> ClearUserSessionsResult:
        where = "clear_user_sessions"
        user_id = await self._user_id(data.user, where)
        params = {"oauthTokens": "true" if data.revoke_oauth_tokens else "false"}
        response = await self._send(
            "DELETE", f"/api/v1/users/{user_id}/sessions", where, params=params
        )
        if response.status_code not in (200, 204):
            raise self._failure(where, response)
        return ClearUserSessionsResult(id=user_id, oauth_tokens_revoked=data.revoke_oauth_tokens)

    async def _find_user(self, data: UserInput) -> FindUserResult:
        user = await self._get_user(data.user, "find_user", (data.user,), missing_ok=True)
        if user is None:
            return FindUserResult(found=False)
        profile = user.get("profile") or {}
        return FindUserResult(
            found=True, id=str(user["id"]), login=profile.get("login"), status=_status(user)
        )

    async def _list_users(self, data: ListUsersInput) -> ListUsersResult:
        where = "list_users"
        params = {"search": data.search, "limit": str(data.limit)}
        if data.after:
            params["after"] = data.after
        response = await self._send("GET", "/api/v1/users", where, params=params)
        body = json_or_none(response)
        if response.status_code != 200 or not isinstance(body, list):
            raise self._failure(where, response)
        users = [
            OktaUser(
                id=str(user["id"]),
                status=_status(user),
                created=user.get("created"),
                lastUpdated=user.get("lastUpdated"),
                profile=dict(user.get("profile") or {}),
            )
            for user in body
            if isinstance(user, Mapping) and "id" in user
        ]
        return ListUsersResult(users=users, after=_next_cursor(response))

    # -- lookups --------------------------------------------------------------

    async def _user_id(self, ref: str, where: str) -> str:
        """The id of the user ``ref`` names: as is when it is an id, else looked up by login."""
        if USER_ID.match(ref):
            return ref
        user = await self._get_user(ref, where, (ref,))
        assert user is not None
        return str(user["id"])

    async def _get_user(
        self,
        ref: str,
        where: str,
        personal: tuple[str, ...] = (),
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """The user with id or login ``ref``; None when there is none and ``missing_ok``."""
        response = await self._send(
            "GET", f"/api/v1/users/{quote(ref, safe='@')}", where, personal=personal
        )
        if response.status_code == 200:
            return _object(response)
        if response.status_code == 404 and missing_ok:
            return None
        raise self._failure(where, response, personal)

    async def _group(self, ref: str, where: str) -> GroupMembership:
        """The group ``ref`` names (an id or an exact name); looked up once per connection."""
        known = self._groups.get(ref)
        if known is not None:
            return known
        if GROUP_ID.match(ref):
            response = await self._send("GET", f"/api/v1/groups/{ref}", where)
            if response.status_code != 200:
                raise self._failure(where, response)
            body = _object(response)
            found = [body]
        else:
            expression = f'profile.name eq "{_search_string(ref)}"'
            response = await self._send(
                "GET", "/api/v1/groups", where, params={"search": expression}
            )
            body_list = json_or_none(response)
            if response.status_code != 200 or not isinstance(body_list, list):
                raise self._failure(where, response)
            found = [
                g
                for g in body_list
                if isinstance(g, dict) and (g.get("profile") or {}).get("name") == ref
            ]
        if len(found) != 1:
            problem = "no group" if not found else f"{len(found)} groups"
            raise PermanentError(
                f"Okta {where}: {problem} named {ref!r} in this org; a membership needs exactly "
                "one. Create the group (or fix its name in the step's mapping), then replay",
                vendor_code="GROUP_NOT_FOUND" if not found else "GROUP_AMBIGUOUS",
            )
        group = GroupMembership(
            id=str(found[0]["id"]), name=str((found[0].get("profile") or {}).get("name", ref))
        )
        self._groups[ref] = group
        return group

    # -- HTTP -----------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        where: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        personal: tuple[str, ...] = (),
    ) -> httpx.Response:
        """One authenticated call; a refused OAuth token is replaced once and the call resent."""
        bucket = bucket_of(method, path)
        wait = self.rate_limits.wait_before(bucket)
        if wait > 0:
            raise RetryableError(
                f"Okta {where}: the rate limit of {bucket} is used up until it resets in "
                f"{wait:.0f}s; the call was not sent (retryable)",
                status_code=429,
                retry_after=wait,
                vendor_code="E0000047",
            )
        token = await self._token()
        response = await self._http(method, path, where, params, json, token, personal)
        if response.status_code == 401 and token is not None:
            _log.info("okta access token refused; fetching a new one", connection=self.connection)
            self.tokens.invalidate(token)
            token = await self._token()
            response = await self._http(method, path, where, params, json, token, personal)
        if response.status_code == 401 or (
            response.status_code == 429 or response.status_code >= 500
        ):
            raise self._failure(where, response, personal)
        if response.status_code == 403 and parse_error(json_or_none(response)).code == "E0000006":
            raise self._failure(where, response, personal)
        return response

    async def _token(self) -> AccessToken | None:
        if isinstance(self._config.auth, ApiTokenAuth):
            return None
        return await self.tokens.get()

    async def _http(
        self,
        method: str,
        path: str,
        where: str,
        params: Mapping[str, str] | None,
        json: Any,
        token: AccessToken | None,
        personal: tuple[str, ...],
    ) -> httpx.Response:
        client = self.client
        if token is None:
            authorization = f"SSWS {self._api_token.get_secret_value()}"
        else:
            authorization = f"Bearer {token.value.get_secret_value()}"
        try:
            response = await client.request(
                method,
                path,
                params=params,
                json=json,
                headers={"Authorization": authorization},
            )
        except httpx.TransportError as exc:
            raise transport_failure(
                "Okta",
                where,
                exc,
                timeout=self._config.timeout,
                url=self._config.org_url,
                scrub=lambda text: self._scrub(text, personal),
                repeat="every action is safe to repeat",
            ) from None
        self.rate_limits.update(bucket_of(method, path), response.headers)
        return response

    def _failure(
        self, where: str, response: httpx.Response, personal: tuple[str, ...] = ()
    ) -> PermanentError | RetryableError:
        state = self.rate_limits.snapshot().get(
            bucket_of(response.request.method, response.request.url.path)
        )
        retry_after = None
        if response.status_code == 429 and state is not None and state.limit != 0:
            retry_after = state.wait(self.rate_limits.clock())
        error = classify(
            where,
            response.status_code,
            json_or_none(response),
            retry_after=retry_after,
            scrub=lambda text: self._scrub(text, personal),
            excerpt=response.text[:_BODY_EXCERPT].strip(),
            www_authenticate=response.headers.get("WWW-Authenticate", ""),
        )
        if isinstance(error, CredentialsError):
            _log.error(
                "okta credentials refused",
                connection=self.connection,
                status=response.status_code,
                vendor_code=error.vendor_code,
                alert=True,
            )
        assert isinstance(error, PermanentError | RetryableError)
        return error

    # -- OAuth 2.0 ------------------------------------------------------------

    async def _fetch_token(self) -> tuple[SecretStr, float]:
        """Client credentials with a signed client assertion: (access token, expires_in)."""
        client = self.client
        auth = self._config.auth
        assert isinstance(auth, PrivateKeyJwtAuth)
        where = f"POST {_TOKEN_PATH}"
        now = int(time.time())
        claims = {
            "iss": auth.client_id,
            "sub": auth.client_id,
            "aud": self._config.org_url + _TOKEN_PATH,
            "iat": now,
            "exp": now + int(auth.assertion_lifetime),
            "jti": uuid.uuid4().hex,  # Okta refuses an assertion used twice
        }
        headers = {"kid": auth.key_id} if auth.key_id else None
        assertion = SecretStr(
            jwt.encode(claims, self._private_key, algorithm=auth.algorithm, headers=headers)
        )
        self._remember(assertion)
        form = {
            "grant_type": "client_credentials",
            "scope": " ".join(auth.scopes),
            "client_assertion_type": _ASSERTION_TYPE,
            "client_assertion": assertion.get_secret_value(),
        }
        try:
            response = await client.post(_TOKEN_PATH, data=form)
        except httpx.TransportError as exc:
            raise transport_failure(
                "Okta",
                where,
                exc,
                timeout=self._config.timeout,
                url=self._config.org_url,
                scrub=self._scrub,
            ) from None
        self.rate_limits.update(bucket_of("POST", _TOKEN_PATH), response.headers)
        body = json_or_none(response)
        status = response.status_code
        if status == 200 and isinstance(body, Mapping) and body.get("access_token"):
            if str(body.get("token_type", "Bearer")).lower() != "bearer":
                raise CredentialsError(
                    f"Okta {where} issued a {body.get('token_type')!r} token; the adapter sends "
                    "Bearer tokens only. Turn off 'Require Demonstrating Proof of Possession "
                    "(DPoP) header in token requests' for the API service app"
                )
            token = self._remember(SecretStr(str(body["access_token"])))
            lifetime = body.get("expires_in")
            seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
            _log.debug("okta token fetched", connection=self.connection, expires_in=seconds)
            return token, seconds
        error = parse_error(body)
        detail = self._scrub(error.describe() or response.text[:_BODY_EXCERPT].strip())
        message = f"Okta {where} answered {status}: {detail or '(empty body)'}"
        if status == 429 or status >= 500:
            raise self._failure(where, response)
        code = error.code or ""
        if code == "invalid_scope":
            hint = (
                f"grant the scopes {', '.join(auth.scopes)} to the API service app "
                "(Okta API Scopes tab), or request fewer"
            )
        elif "dpop" in code:
            hint = (
                "the app requires DPoP; turn off 'Require Demonstrating Proof of Possession "
                "(DPoP) header in token requests' for it"
            )
        else:
            hint = (
                "check the connection's client_id, that the app's client authentication is "
                "public key / private key, and that the key (and its kid) is registered"
            )
        _log.error("okta token refused", connection=self.connection, vendor_code=code, alert=True)
        raise CredentialsError(f"{message} ({hint})", status_code=status, vendor_code=code or None)

    # -- secrecy --------------------------------------------------------------

    def _remember(self, secret: SecretStr) -> SecretStr:
        self._secrets = [*self._secrets[-5:], secret]
        return secret

    def _scrub(self, text: str, personal: tuple[str, ...] = ()) -> str:
        # Okta may echo a login (personal data) in a summary, and a library a credential.
        return mask_secrets_in(text, [self._api_token, *self._secrets], personal)

    def __repr__(self) -> str:
        return f"OktaAdapter(connection={self.connection!r}, org_url={self._config.org_url!r})"


def _load_private_key(auth: PrivateKeyJwtAuth) -> Any:
    pem = auth.private_key.resolve().get_secret_value().encode()
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"the private_key of the Okta app {auth.client_id!r} ({auth.private_key}) is not "
            f"an unencrypted PEM private key: {type(exc).__name__}; export the key Okta "
            "generated (or yours) as PEM without a passphrase"
        ) from None


def _object(response: httpx.Response) -> dict[str, Any]:
    body = json_or_none(response)
    if not isinstance(body, dict) or "id" not in body:
        raise PermanentError(
            f"Okta {response.request.method} {response.request.url.path} answered "
            f"{response.status_code} without a JSON object with an id; check the org_url"
        )
    return body


def _status(user: Mapping[str, Any]) -> str:
    return str(user.get("transitioningToStatus") or user.get("status") or "")


def _login_taken(response: httpx.Response) -> bool:
    error = parse_error(json_or_none(response))
    return response.status_code == 400 and any(
        "login" in cause and "already exists" in cause for cause in error.causes
    )


def _search_string(value: str) -> str:
    """A value for a double-quoted string in an Okta search expression."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _next_cursor(response: httpx.Response) -> str | None:
    """The ``after`` cursor of the ``Link: <...>; rel="next"`` header, if there is a next page."""
    next_link = response.links.get("next")
    if not next_link:
        return None
    after = httpx.URL(next_link["url"]).params.get("after")
    return str(after) if after else None
