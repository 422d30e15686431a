"""Settings of a ``scim`` connection, the typed inputs of its actions and what each returns.

Inputs use the attribute names of RFC 7643 (``userName``, ``name.givenName``,
``emails``, the enterprise extension's ``employeeNumber``), so a flow's mapping
reads like the SCIM resource it becomes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platypus.retry import Duration
from platypus.secrets import SecretRef
from platypus.vendorhttp import blank_is_unset

__all__ = [
    "ActivateUserResult",
    "AddGroupMembersResult",
    "BasicAuth",
    "BearerAuth",
    "DeactivateUserResult",
    "DeleteUserResult",
    "Email",
    "EnterpriseUser",
    "FindGroupResult",
    "FindUserResult",
    "GroupLookupInput",
    "GroupMembersInput",
    "Name",
    "PatchOperation",
    "PatchUserInput",
    "PatchUserResult",
    "RemoveGroupMembersResult",
    "ScimSettings",
    "UpsertGroupInput",
    "UpsertGroupResult",
    "UpsertUserInput",
    "UpsertUserParams",
    "UpsertUserResult",
    "UserLookupInput",
    "UserRef",
]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class BearerAuth(BaseModel):
    """A bearer token (``Authorization: Bearer <token>``), as most service providers issue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bearer"] = Field(default="bearer", description="bearer.")
    token: SecretRef = Field(description="The token, as {env: NAME} or {file: PATH}.")


class BasicAuth(BaseModel):
    """HTTP basic authentication."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["basic"] = Field(default="basic", description="basic.")
    username: str = Field(min_length=1, description="User name.")
    password: SecretRef = Field(description="Password, as {env: NAME} or {file: PATH}.")


ScimAuth = Annotated[BearerAuth | BasicAuth, Field(discriminator="type")]


class ScimSettings(BaseModel):
    """Settings of a ``scim`` connection: one SCIM 2.0 service provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        description="The service provider's SCIM root, such as https://api.example.com/scim/v2."
    )
    auth: ScimAuth = Field(description="bearer (a token) or basic.")
    etag: Literal["auto", "always", "never"] = Field(
        default="auto",
        description=(
            "Send If-Match with the version read before a change: auto when the provider "
            "offers versions (an ETag or meta.version), always, or never."
        ),
    )
    patch: Literal["auto", "always", "never"] = Field(
        default="auto",
        description=(
            "Change resources with PATCH (auto: unless /ServiceProviderConfig says it is not "
            "supported), or always replace them with PUT (never)."
        ),
    )
    timeout: Duration = Field(default=30.0, gt=0, description="Timeout of one HTTP request.")
    max_connections: int = Field(
        default=10, ge=1, description="Most connections open to the provider at once."
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA certificates (PEM) that verify the provider's TLS certificate.",
    )
    proxy: str | None = Field(default=None, description="HTTP(S) proxy URL for every request.")

    _blank_is_unset = field_validator("ca_bundle", "proxy", mode="before")(blank_is_unset)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme != "https" or not url.host:
            # RFC 7644 section 7.1: SCIM requests carry credentials and personal data.
            raise ValueError("must be an https:// URL (SCIM requires TLS, RFC 7644 7.1)")
        return value.rstrip("/")


class _Wire(BaseModel):
    """A part of a SCIM resource: RFC 7643 names, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class Name(_Wire):
    """The ``name`` of a user."""

    givenName: str | None = Field(default=None, description="First name.")  # noqa: N815
    familyName: str | None = Field(default=None, description="Last name.")  # noqa: N815
    middleName: str | None = None  # noqa: N815
    formatted: str | None = Field(default=None, description="The full name, formatted.")
    honorificPrefix: str | None = None  # noqa: N815
    honorificSuffix: str | None = None  # noqa: N815


class Email(_Wire):
    """One e-mail address of a user."""

    value: str = Field(min_length=3, description="The address.")
    type: str | None = Field(default="work", description="work, home, other.")
    primary: bool | None = Field(default=None, description="The primary address.")


class EnterpriseUser(_Wire):
    """The enterprise user extension (RFC 7643 section 4.3)."""

    employeeNumber: str | None = None  # noqa: N815
    costCenter: str | None = None  # noqa: N815
    organization: str | None = None
    division: str | None = None
    department: str | None = None
    manager: str | None = Field(default=None, description="The manager's SCIM id.")

    def wire(self) -> dict[str, Any]:
        body = super().wire()
        if "manager" in body:
            body["manager"] = {"value": body["manager"]}
        return body


class UpsertUserInput(_Wire):
    """Input of ``upsert_user``: the user as it should be."""

    userName: str = Field(min_length=1, description="Unique login at the provider.")  # noqa: N815
    externalId: str | None = Field(  # noqa: N815
        default=None, min_length=1, description="Your id of the user (the HR id, say)."
    )
    name: Name | None = None
    displayName: str | None = None  # noqa: N815
    title: str | None = None
    userType: str | None = None  # noqa: N815
    preferredLanguage: str | None = None  # noqa: N815
    locale: str | None = None
    timezone: str | None = None
    active: bool | None = Field(default=None, description="Whether the user may sign in.")
    emails: list[Email] | None = None
    enterprise: EnterpriseUser | None = Field(
        default=None, description="Attributes of the enterprise user extension."
    )

    def resource(self) -> dict[str, Any]:
        """The SCIM User resource: core attributes, the extension under its URN."""
        body = self.model_dump(mode="json", exclude_none=True, exclude={"enterprise"})
        schemas = [USER_SCHEMA]
        if self.enterprise is not None:
            schemas.append(ENTERPRISE_SCHEMA)
            body[ENTERPRISE_SCHEMA] = self.enterprise.wire()
        return {"schemas": schemas, **body}


class UpsertUserParams(BaseModel):
    """Static options of ``upsert_user``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match_on: Literal["externalId", "userName"] = Field(
        default="externalId",
        description="The attribute that finds the existing user (filter ... eq ...).",
    )


class UserRef(_Wire):
    """Names one user: by SCIM ``id``, ``userName`` or ``externalId`` (exactly one)."""

    id: str | None = Field(default=None, min_length=1, description="The provider's id.")
    userName: str | None = Field(default=None, min_length=1)  # noqa: N815
    externalId: str | None = Field(default=None, min_length=1)  # noqa: N815

    @model_validator(mode="after")
    def _exactly_one(self) -> UserRef:
        given = [n for n in ("id", "userName", "externalId") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("name the user by exactly one of id, userName, externalId")
        return self


class UserLookupInput(UserRef):
    """Input of ``find_user``, ``activate_user``, ``deactivate_user`` and ``delete_user``."""


class PatchOperation(_Wire):
    """One operation of a PATCH request (RFC 7644 section 3.5.2)."""

    op: Literal["add", "remove", "replace"]
    path: str | None = Field(default=None, min_length=1, description="Attribute path.")
    value: Any = None

    @model_validator(mode="after")
    def _check(self) -> PatchOperation:
        if self.op == "remove" and self.path is None:
            raise ValueError("a remove operation needs a path (RFC 7644 3.5.2.2)")
        if self.op != "remove" and self.value is None:
            raise ValueError(f"an {self.op} operation needs a value")
        return self

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"op": self.op}
        if self.path is not None:
            body["path"] = self.path
        if self.op != "remove":
            body["value"] = self.value
        return body


class PatchUserInput(UserRef):
    """Input of ``patch_user``: the user and the operations to apply, in order."""

    operations: list[PatchOperation] = Field(min_length=1, description="PATCH operations.")


class GroupLookupInput(_Wire):
    """Names one group: by SCIM ``id``, ``displayName`` or ``externalId`` (exactly one)."""

    id: str | None = Field(default=None, min_length=1)
    displayName: str | None = Field(default=None, min_length=1)  # noqa: N815
    externalId: str | None = Field(default=None, min_length=1)  # noqa: N815

    @model_validator(mode="after")
    def _exactly_one(self) -> GroupLookupInput:
        given = [n for n in ("id", "displayName", "externalId") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("name the group by exactly one of id, displayName, externalId")
        return self


class UpsertGroupInput(_Wire):
    """Input of ``upsert_group``: a group found by externalId (else displayName), or created."""

    displayName: str = Field(min_length=1, description="The group's name.")  # noqa: N815
    externalId: str | None = Field(default=None, min_length=1)  # noqa: N815


class GroupMembersInput(_Wire):
    """Input of ``add_group_members`` and ``remove_group_members``."""

    group: GroupLookupInput = Field(description="The group.")
    members: list[UserRef] = Field(min_length=1, max_length=100, description="The users.")


# -- results -----------------------------------------------------------------


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpsertUserResult(_Result):
    """What ``upsert_user`` returns."""

    id: str = Field(description="The provider's id of the user.")
    userName: str  # noqa: N815
    externalId: str | None = None  # noqa: N815
    active: bool | None = None
    created: bool = Field(description="False when the user existed and was updated.")
    version: str | None = Field(default=None, description="The user's version (ETag) after.")


class FindUserResult(_Result):
    """What ``find_user`` returns."""

    found: bool
    id: str | None = None
    userName: str | None = None  # noqa: N815
    externalId: str | None = None  # noqa: N815
    active: bool | None = None
    version: str | None = None


class ActivateUserResult(_Result):
    """What ``activate_user`` returns."""

    id: str
    active: bool
    changed: bool = Field(description="False when the user was active already.")


class DeactivateUserResult(_Result):
    """What ``deactivate_user`` returns."""

    id: str
    active: bool
    changed: bool = Field(description="False when the user was inactive already.")


class PatchUserResult(_Result):
    """What ``patch_user`` returns."""

    id: str
    version: str | None = None


class DeleteUserResult(_Result):
    """What ``delete_user`` returns."""

    id: str | None = None
    deleted: bool = Field(description="False when there was no such user (any more).")


class UpsertGroupResult(_Result):
    """What ``upsert_group`` returns."""

    id: str
    displayName: str  # noqa: N815
    created: bool


class FindGroupResult(_Result):
    """What ``find_group`` returns."""

    found: bool
    id: str | None = None
    displayName: str | None = None  # noqa: N815


class AddGroupMembersResult(_Result):
    """What ``add_group_members`` returns."""

    id: str = Field(description="The group's id.")
    members: list[str] = Field(description="The ids of the users added.")


class RemoveGroupMembersResult(_Result):
    """What ``remove_group_members`` returns."""

    id: str = Field(description="The group's id.")
    members: list[str] = Field(description="The ids of the users removed.")
