"""`ScimAdapter`: users and groups at any SCIM 2.0 service provider (RFC 7643, RFC 7644)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from platypus.adapter import Action, Request
from platypus.apiadapter import ApiAdapter
from platypus.exceptions import PermanentError, RetryableError
from platypus.logging import get_logger
from platypus.vendorhttp import (
    async_client,
    json_or_none,
    mask_secrets_in,
    parse_input,
    parse_retry_after,
    transport_failure,
)

from ._errors import CredentialsError, classify, parse_error
from .models import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    ActivateUserResult,
    AddGroupMembersResult,
    BearerAuth,
    DeactivateUserResult,
    DeleteUserResult,
    FindGroupResult,
    FindUserResult,
    GroupLookupInput,
    GroupMembersInput,
    PatchUserInput,
    PatchUserResult,
    RemoveGroupMembersResult,
    ScimSettings,
    UpsertGroupInput,
    UpsertGroupResult,
    UpsertUserInput,
    UpsertUserParams,
    UpsertUserResult,
    UserLookupInput,
    UserRef,
)

__all__ = ["RESULTS", "ScimAdapter"]

_log = get_logger("platypus.adapters.scim")
_MEDIA_TYPE = "application/scim+json"
_BODY_EXCERPT = 300

RESULTS: dict[str, type[BaseModel]] = {
    "upsert_user": UpsertUserResult,
    "find_user": FindUserResult,
    "activate_user": ActivateUserResult,
    "deactivate_user": DeactivateUserResult,
    "patch_user": PatchUserResult,
    "delete_user": DeleteUserResult,
    "upsert_group": UpsertGroupResult,
    "find_group": FindGroupResult,
    "add_group_members": AddGroupMembersResult,
    "remove_group_members": RemoveGroupMembersResult,
}
"""The model of what each action returns, by action."""


@dataclass(frozen=True, slots=True)
class _Found:
    """A resource read from the provider and the version it was read at."""

    resource: dict[str, Any]
    version: str | None

    @property
    def id(self) -> str:
        return str(self.resource["id"])


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the provider's ``/ServiceProviderConfig`` says it supports (None: unknown)."""

    patch: bool | None = None
    etag: bool | None = None
    filter: bool | None = None


class ScimAdapter(ApiAdapter):
    """Provisions users and groups at a SCIM 2.0 service provider, idempotently.

    A user is found by ``externalId`` (or ``userName``) with a filter before it is
    created, and only the attributes that differ are changed, with PATCH (or PUT
    where the provider has no PATCH). When the provider versions its resources,
    every change carries ``If-Match`` with the version read, so a concurrent edit
    is never overwritten: the provider answers 412 and the next attempt reads
    again.
    """

    name = "scim"
    Settings = ScimSettings
    actions: ClassVar = {
        "upsert_user": Action(
            result=RESULTS["upsert_user"],
            params=UpsertUserParams,
            input=UpsertUserInput,
            description="Create the user, or change what differs, found by externalId/userName.",
            idempotent=True,
        ),
        "find_user": Action(
            result=RESULTS["find_user"],
            input=UserLookupInput,
            description="Look a user up by id, userName or externalId.",
            writes=False,
            idempotent=True,
        ),
        "activate_user": Action(
            result=RESULTS["activate_user"],
            input=UserLookupInput,
            description="Set active: true.",
            idempotent=True,
        ),
        "deactivate_user": Action(
            result=RESULTS["deactivate_user"],
            input=UserLookupInput,
            description="Set active: false (deprovisioning, as identity providers do).",
            idempotent=True,
        ),
        "patch_user": Action(
            result=RESULTS["patch_user"],
            input=PatchUserInput,
            description="Apply PATCH operations (add, remove, replace) to a user.",
        ),
        "delete_user": Action(
            result=RESULTS["delete_user"],
            input=UserLookupInput,
            description="Delete a user; one already gone is reported, not refused.",
            idempotent=True,
        ),
        "upsert_group": Action(
            result=RESULTS["upsert_group"],
            input=UpsertGroupInput,
            description="Create the group, or rename it, found by externalId or displayName.",
            idempotent=True,
        ),
        "find_group": Action(
            result=RESULTS["find_group"],
            input=GroupLookupInput,
            description="Look a group up by id, displayName or externalId.",
            writes=False,
            idempotent=True,
        ),
        "add_group_members": Action(
            result=RESULTS["add_group_members"],
            input=GroupMembersInput,
            description="Add users to a group (PATCH add members).",
            idempotent=True,
        ),
        "remove_group_members": Action(
            result=RESULTS["remove_group_members"],
            input=GroupMembersInput,
            description="Remove users from a group (PATCH remove members[value eq ...]).",
            idempotent=True,
        ),
    }

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        if not isinstance(settings, ScimSettings):
            raise TypeError(f"ScimAdapter needs ScimSettings, got {type(settings).__name__}")
        super().__init__(settings, connection=connection)
        self._config = settings
        self._secret = SecretStr("")
        self._authorization = SecretStr("")
        self.capabilities: Capabilities | None = None
        """What /ServiceProviderConfig said, once read (the first call reads it)."""

    # -- life -----------------------------------------------------------------

    def open_client(self) -> httpx.AsyncClient:
        """Read the credential and build the connection pool."""
        config = self._config
        auth = config.auth
        if isinstance(auth, BearerAuth):
            self._secret = auth.token.resolve()
            self._authorization = SecretStr(f"Bearer {self._secret.get_secret_value()}")
        else:
            self._secret = auth.password.resolve()
            pair = f"{auth.username}:{self._secret.get_secret_value()}".encode()
            self._authorization = SecretStr(f"Basic {base64.b64encode(pair).decode('ascii')}")
        return async_client(
            base_url=config.base_url + "/",
            headers={"Accept": _MEDIA_TYPE},
            timeout=config.timeout,
            max_connections=config.max_connections,
            ca_bundle=config.ca_bundle,
            proxy=config.proxy,
        )

    # -- actions --------------------------------------------------------------

    async def call(self, request: Request) -> Any:
        """Perform one action; return what its model in `RESULTS` describes."""
        self.check_request(request)
        spec = self.actions[request.action]
        assert spec.input is not None
        payload = parse_input(
            spec.input, request.payload, connection=self.connection, action=request.action
        )
        params = None
        if spec.params is not None:
            try:
                params = spec.params.model_validate(dict(request.params))
            except ValidationError as exc:
                raise PermanentError(
                    f"connection {self.connection!r}: invalid params for {request.action!r}: "
                    f"{exc.errors(include_input=False)[0]['msg']}; fix the step's params"
                ) from None
        await self._read_capabilities()
        handler: Callable[..., Any] = getattr(self, f"_{request.action}")
        result: BaseModel = (
            await handler(payload, params) if params is not None else await handler(payload)
        )
        return result.model_dump(mode="json")

    async def _upsert_user(self, data: UpsertUserInput, params: UpsertUserParams) -> Any:
        where = "upsert_user"
        personal = _personal_of(data)
        key = params.match_on
        value = data.externalId if key == "externalId" else data.userName
        if value is None:
            raise PermanentError(
                f"SCIM {where}: match_on is externalId but the payload has none; map "
                "externalId, or set params.match_on to userName"
            )
        found = await self._lookup("Users", key, value, where, personal)
        desired = data.resource()
        if found is None:
            response = await self._send("POST", "Users", where, body=desired, personal=personal)
            if response.status_code in (200, 201):
                created = self._resource_of(response, where)
                return _user_result(created.resource, created.version, created=True)
            if response.status_code != 409:
                raise self._failure(where, response, personal)
            # Created meanwhile by another delivery (or the key is held by another user).
            found = await self._lookup("Users", key, value, where, personal)
            if found is None:
                raise self._failure(where, response, personal)
        updated = await self._change(
            "Users", found, _differences(found.resource, desired), desired, where, personal
        )
        return _user_result(updated.resource, updated.version, created=False)

    async def _find_user(self, data: UserLookupInput) -> FindUserResult:
        found = await self._user(data, "find_user", required=False)
        if found is None:
            return FindUserResult(found=False)
        result = _user_result(found.resource, found.version, created=False)
        return FindUserResult(found=True, **result.model_dump(exclude={"created"}))

    async def _activate_user(self, data: UserLookupInput) -> ActivateUserResult:
        changed, found = await self._set_active(data, True, "activate_user")
        return ActivateUserResult(id=found.id, active=True, changed=changed)

    async def _deactivate_user(self, data: UserLookupInput) -> DeactivateUserResult:
        changed, found = await self._set_active(data, False, "deactivate_user")
        return DeactivateUserResult(id=found.id, active=False, changed=changed)

    async def _set_active(self, data: UserRef, active: bool, where: str) -> tuple[bool, _Found]:
        found = await self._user(data, where)
        assert found is not None
        if found.resource.get("active") is active:
            return False, found
        operations = [{"op": "replace", "path": "active", "value": active}]
        await self._change("Users", found, operations, None, where, _personal_of(data))
        return True, found

    async def _patch_user(self, data: PatchUserInput) -> PatchUserResult:
        where = "patch_user"
        found = await self._user(data, where)
        assert found is not None
        operations = [operation.wire() for operation in data.operations]
        if self._patch_unsupported():
            raise PermanentError(
                f"SCIM {where}: the provider does not support PATCH (its "
                "/ServiceProviderConfig says so); use upsert_user, which replaces with PUT"
            )
        updated = await self._change("Users", found, operations, None, where, _personal_of(data))
        return PatchUserResult(id=found.id, version=updated.version)

    async def _delete_user(self, data: UserLookupInput) -> DeleteUserResult:
        where = "delete_user"
        found = await self._user(data, where, required=False)
        if found is None:
            return DeleteUserResult(id=data.id, deleted=False)
        response = await self._send(
            "DELETE", f"Users/{quote(found.id, safe='')}", where, if_match=self._if_match(found)
        )
        if response.status_code == 404:
            return DeleteUserResult(id=found.id, deleted=False)
        if response.status_code not in (200, 204):
            raise self._failure(where, response)
        return DeleteUserResult(id=found.id, deleted=True)

    async def _upsert_group(self, data: UpsertGroupInput) -> UpsertGroupResult:
        where = "upsert_group"
        key, value = (
            ("externalId", data.externalId)
            if data.externalId
            else ("displayName", data.displayName)
        )
        assert value is not None
        found = await self._lookup("Groups", key, value, where)
        if found is None:
            body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": data.displayName}
            if data.externalId:
                body["externalId"] = data.externalId
            response = await self._send("POST", "Groups", where, body=body)
            if response.status_code in (200, 201):
                created = self._resource_of(response, where)
                return UpsertGroupResult(id=created.id, displayName=data.displayName, created=True)
            if response.status_code != 409:
                raise self._failure(where, response)
            found = await self._lookup("Groups", key, value, where)
            if found is None:
                raise self._failure(where, response)
        if found.resource.get("displayName") != data.displayName:
            operations = [{"op": "replace", "path": "displayName", "value": data.displayName}]
            desired = {"schemas": [GROUP_SCHEMA], **found.resource, "displayName": data.displayName}
            await self._change("Groups", found, operations, desired, where)
        return UpsertGroupResult(id=found.id, displayName=data.displayName, created=False)

    async def _find_group(self, data: GroupLookupInput) -> FindGroupResult:
        found = await self._group(data, "find_group", required=False)
        if found is None:
            return FindGroupResult(found=False)
        return FindGroupResult(
            found=True, id=found.id, displayName=found.resource.get("displayName")
        )

    async def _add_group_members(self, data: GroupMembersInput) -> AddGroupMembersResult:
        group, ids, present = await self._members(data, "add_group_members")
        new = [member for member in ids if member not in present]
        if new:
            value = [{"value": member} for member in new]
            operations = [{"op": "add", "path": "members", "value": value}]
            await self._membership_change(group, operations, "add_group_members")
        return AddGroupMembersResult(id=group.id, members=ids)

    async def _remove_group_members(self, data: GroupMembersInput) -> RemoveGroupMembersResult:
        group, ids, present = await self._members(data, "remove_group_members")
        # Without the member list (some providers leave it out), remove every one named.
        gone = [member for member in ids if member in present or group_lacks_members(group)]
        if gone:
            operations = [
                {"op": "remove", "path": f"members[value eq {json.dumps(member)}]"}
                for member in gone
            ]
            await self._membership_change(group, operations, "remove_group_members")
        return RemoveGroupMembersResult(id=group.id, members=ids)

    async def _members(
        self, data: GroupMembersInput, where: str
    ) -> tuple[_Found, list[str], set[str]]:
        group = await self._group(data.group, where)
        assert group is not None
        ids: list[str] = []
        for member in data.members:
            if member.id is not None:
                ids.append(member.id)
                continue
            user = await self._user(member, where)
            assert user is not None
            ids.append(user.id)
        present = {
            str(m.get("value")) for m in group.resource.get("members") or [] if isinstance(m, dict)
        }
        return group, ids, present

    async def _membership_change(
        self, group: _Found, operations: list[dict[str, Any]], where: str
    ) -> None:
        if self._patch_unsupported():
            raise PermanentError(
                f"SCIM {where}: the provider does not support PATCH, which changes group "
                "members without replacing the whole group"
            )
        await self._change("Groups", group, operations, None, where)

    # -- reading --------------------------------------------------------------

    async def _user(self, ref: UserRef, where: str, *, required: bool = True) -> _Found | None:
        personal = _personal_of(ref)
        if ref.id is not None:
            found = await self._get("Users", ref.id, where, personal)
        elif ref.userName is not None:
            found = await self._lookup("Users", "userName", ref.userName, where, personal)
        else:
            assert ref.externalId is not None
            found = await self._lookup("Users", "externalId", ref.externalId, where, personal)
        if found is None and required:
            raise PermanentError(
                f"SCIM {where}: no user at the provider matches the payload's "
                f"{_named_by(ref)}; create it first (upsert_user), or fix the step's mapping",
                status_code=404,
                vendor_code="noUser",
            )
        return found

    async def _group(
        self, ref: GroupLookupInput, where: str, *, required: bool = True
    ) -> _Found | None:
        if ref.id is not None:
            found = await self._get("Groups", ref.id, where)
        elif ref.displayName is not None:
            found = await self._lookup("Groups", "displayName", ref.displayName, where)
        else:
            assert ref.externalId is not None
            found = await self._lookup("Groups", "externalId", ref.externalId, where)
        if found is None and required:
            named = ref.displayName if ref.displayName is not None else "the payload's"
            raise PermanentError(
                f"SCIM {where}: no group {named!r} at the provider; create it first "
                "(upsert_group), or fix the step's mapping",
                status_code=404,
                vendor_code="noGroup",
            )
        return found

    async def _get(
        self, kind: str, resource_id: str, where: str, personal: tuple[str, ...] = ()
    ) -> _Found | None:
        response = await self._send("GET", f"{kind}/{quote(resource_id, safe='')}", where)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(where, response, personal)
        return self._resource_of(response, where)

    async def _lookup(
        self, kind: str, attribute: str, value: str, where: str, personal: tuple[str, ...] = ()
    ) -> _Found | None:
        """The one resource whose ``attribute`` equals ``value`` (a filter), or None."""
        if self.capabilities is not None and self.capabilities.filter is False:
            raise PermanentError(
                f"SCIM {where}: the provider does not support filters (its "
                "/ServiceProviderConfig says so), so a resource cannot be found before it "
                "is changed; this adapter needs filter support"
            )
        # A filter's value is a JSON string (RFC 7644 3.4.2.2): quoted and escaped.
        params = {"filter": f"{attribute} eq {json.dumps(value)}", "count": "2"}
        response = await self._send("GET", kind, where, params=params, personal=personal)
        body = json_or_none(response)
        if response.status_code != 200 or not isinstance(body, Mapping):
            raise self._failure(where, response, personal)
        resources = [r for r in body.get("Resources") or [] if isinstance(r, dict) and "id" in r]
        total = body.get("totalResults", len(resources))
        if (isinstance(total, int) and total > 1) or len(resources) > 1:
            raise PermanentError(
                f"SCIM {where}: {total} {kind.lower()} at the provider have the {attribute} "
                "the payload names; a lookup needs one. Remove the duplicates at the provider, "
                "then replay the event",
                vendor_code="ambiguous",
            )
        if not resources:
            return None
        resource = resources[0]
        return _Found(resource, (resource.get("meta") or {}).get("version"))

    def _resource_of(self, response: httpx.Response, where: str) -> _Found:
        body = json_or_none(response)
        if not isinstance(body, dict) or "id" not in body:
            raise PermanentError(
                f"SCIM {where}: the provider answered {response.status_code} without a "
                "resource; check the connection's base_url"
            )
        version = response.headers.get("ETag") or (body.get("meta") or {}).get("version")
        return _Found(body, version)

    # -- changing -------------------------------------------------------------

    async def _change(
        self,
        kind: str,
        found: _Found,
        operations: list[dict[str, Any]],
        desired: dict[str, Any] | None,
        where: str,
        personal: tuple[str, ...] = (),
    ) -> _Found:
        """Apply ``operations`` (PATCH) or, without PATCH, PUT ``desired`` over the resource."""
        if not operations:
            return found  # nothing differs: a replay writes nothing
        path = f"{kind}/{quote(found.id, safe='')}"
        if_match = self._if_match(found)
        if self._patch_unsupported() and desired is not None:
            body = {**_writable(found.resource), **desired, "id": found.id}
            response = await self._send(
                "PUT", path, where, body=body, if_match=if_match, personal=personal
            )
        else:
            patch = {"schemas": [PATCH_SCHEMA], "Operations": operations}
            response = await self._send(
                "PATCH", path, where, body=patch, if_match=if_match, personal=personal
            )
        if response.status_code == 204:
            # No body: read the resource again for its new state and version.
            again = await self._get(kind, found.id, where, personal)
            return again or found
        if response.status_code != 200:
            raise self._failure(where, response, personal)
        return self._resource_of(response, where)

    def _if_match(self, found: _Found) -> str | None:
        mode = self._config.etag
        if mode == "never":
            return None
        if mode == "auto" and self.capabilities is not None and self.capabilities.etag is False:
            return None
        return found.version

    def _patch_unsupported(self) -> bool:
        mode = self._config.patch
        if mode == "never":
            return True
        return mode == "auto" and self.capabilities is not None and self.capabilities.patch is False

    async def _read_capabilities(self) -> None:
        if self.capabilities is not None:
            return
        response = await self._send("GET", "ServiceProviderConfig", "read ServiceProviderConfig")
        body = json_or_none(response)
        if response.status_code != 200 or not isinstance(body, Mapping):
            # Not every provider serves it; assume the RFC's defaults and learn by doing.
            self.capabilities = Capabilities()
            return

        def supported(name: str) -> bool | None:
            section = body.get(name)
            flag = section.get("supported") if isinstance(section, Mapping) else None
            return flag if isinstance(flag, bool) else None

        self.capabilities = Capabilities(
            patch=supported("patch"), etag=supported("etag"), filter=supported("filter")
        )
        _log.debug("scim capabilities", connection=self.connection, **vars_of(self.capabilities))

    # -- HTTP -----------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        where: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        if_match: str | None = None,
        personal: tuple[str, ...] = (),
    ) -> httpx.Response:
        """One request; failures no action can answer (credentials, outages) raised here."""
        client = self.client
        headers = {"Authorization": self._authorization.get_secret_value()}
        content = None
        if body is not None:
            headers["Content-Type"] = _MEDIA_TYPE
            content = json.dumps(body).encode()
        if if_match is not None:
            headers["If-Match"] = if_match
        try:
            response = await client.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise transport_failure(
                "SCIM",
                where,
                exc,
                timeout=self._config.timeout,
                url=self._config.base_url,
                scrub=lambda text: self._scrub(text, personal),
                repeat="the next attempt looks the resource up before it writes",
            ) from None
        status = response.status_code
        if status in (401, 403, 408, 429) or status >= 500:
            if status == 403 and parse_error(json_or_none(response)).scim_type == "sensitive":
                return response
            raise self._failure(where, response, personal)
        return response

    def _failure(
        self, where: str, response: httpx.Response, personal: tuple[str, ...] = ()
    ) -> PermanentError | RetryableError:
        error = classify(
            where,
            response.status_code,
            json_or_none(response),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            scrub=lambda text: self._scrub(text, personal),
            excerpt=response.text[:_BODY_EXCERPT].strip(),
        )
        if isinstance(error, CredentialsError):
            _log.error(
                "scim credentials refused",
                connection=self.connection,
                status=response.status_code,
                alert=True,
            )
        assert isinstance(error, PermanentError | RetryableError)
        return error

    def _scrub(self, text: str, personal: tuple[str, ...] = ()) -> str:
        # A provider may echo a userName or an address (personal data), or a credential.
        return mask_secrets_in(text, [self._secret, self._authorization], personal)

    def __repr__(self) -> str:
        return f"ScimAdapter(connection={self.connection!r}, base_url={self._config.base_url!r})"


def vars_of(capabilities: Capabilities) -> dict[str, bool | None]:
    return {
        "patch": capabilities.patch,
        "etag": capabilities.etag,
        "filter": capabilities.filter,
    }


def group_lacks_members(group: _Found) -> bool:
    return "members" not in group.resource


_NOT_PERSONAL = frozenset({"id", "op", "path", "type", "primary", "active", "schemas"})


def _personal_of(data: BaseModel) -> tuple[str, ...]:
    """The values a payload carries (user names, addresses...), to keep out of messages."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if key not in _NOT_PERSONAL:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data.model_dump())
    return tuple(found)


def _named_by(ref: UserRef) -> str:
    return "id" if ref.id is not None else "userName" if ref.userName is not None else "externalId"


def _user_result(resource: Mapping[str, Any], version: str | None, *, created: bool) -> Any:
    return UpsertUserResult(
        id=str(resource["id"]),
        userName=str(resource.get("userName", "")),
        externalId=resource.get("externalId"),
        active=resource.get("active"),
        created=created,
        version=version,
    )


_READ_ONLY = {"id", "meta", "groups", "schemas"}


def _writable(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in _READ_ONLY}


def _differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``replace`` operations for every attribute ``desired`` sets to another value."""
    operations: list[dict[str, Any]] = []
    for name, value in desired.items():
        if name == "schemas":
            continue
        if name == ENTERPRISE_SCHEMA:
            have = current.get(name) or {}
            for attribute, wanted in value.items():
                if have.get(attribute) != wanted:
                    operations.append(
                        {"op": "replace", "path": f"{name}:{attribute}", "value": wanted}
                    )
        elif name == "name" and isinstance(value, Mapping):
            have = current.get("name") or {}
            for attribute, wanted in value.items():
                if have.get(attribute) != wanted:
                    operations.append(
                        {"op": "replace", "path": f"name.{attribute}", "value": wanted}
                    )
        elif current.get(name) != value:
            operations.append({"op": "replace", "path": name, "value": value})
    return operations
