"""Settings of an ``okta`` connection, the typed inputs of its actions and what each returns.

Inputs use Okta's own names where Okta has one (``profile.firstName``,
``profile.employeeNumber``), as in Okta's Users API reference, so a flow's
mapping reads like the request it becomes. A user is named by its Okta id
(``00u...``) or its login; a group by its id (``00g...``) or its exact name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platypus.retry import Duration
from platypus.secrets import SecretRef
from platypus.vendorhttp import blank_is_unset, https_root

__all__ = [
    "ActivateUserInput",
    "ActivateUserResult",
    "AddUserToGroupsResult",
    "ApiTokenAuth",
    "ClearUserSessionsInput",
    "ClearUserSessionsResult",
    "CreateUserInput",
    "CreateUserResult",
    "DeactivateUserResult",
    "FindUserResult",
    "GroupMembership",
    "GroupMembershipInput",
    "ListUsersInput",
    "ListUsersResult",
    "OktaSettings",
    "OktaUser",
    "PrivateKeyJwtAuth",
    "RemoveUserFromGroupsResult",
    "SuspendUserResult",
    "UnsuspendUserResult",
    "UpdateProfileInput",
    "UpdateProfileResult",
    "UserInput",
    "UserProfile",
]

USER_ID = re.compile(r"^00u[A-Za-z0-9]{17}$")
"""An Okta user id; anything else naming a user is taken as its login."""
GROUP_ID = re.compile(r"^00g[A-Za-z0-9]{17}$")
"""An Okta group id; anything else naming a group is taken as its name."""
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

DEFAULT_SCOPES = ("okta.users.read", "okta.users.manage", "okta.groups.read", "okta.groups.manage")


class ApiTokenAuth(BaseModel):
    """An Okta API token, sent as ``Authorization: SSWS <token>``.

    The token acts with the admin roles of the user who created it and expires
    after 30 days without use; it cannot be renewed by the adapter.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["api_token"] = Field(default="api_token", description="api_token.")
    token: SecretRef = Field(description="The API token, as {env: NAME} or {file: PATH}.")


class PrivateKeyJwtAuth(BaseModel):
    """OAuth 2.0 for an API service app: client credentials with a signed client assertion.

    The adapter signs a short-lived JWT (``iss`` and ``sub`` the client id, ``aud``
    the org's token endpoint) with the app's private key and exchanges it at
    ``/oauth2/v1/token`` for an access token with ``scopes``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["private_key_jwt"] = Field(
        default="private_key_jwt", description="private_key_jwt."
    )
    client_id: str = Field(min_length=1, description="Client ID of the Okta API service app.")
    private_key: SecretRef = Field(
        description="The app's private key (PEM, RSA or EC), as {file: PATH} or {env: NAME}."
    )
    key_id: str | None = Field(
        default=None,
        min_length=1,
        description="The key's kid in the app's public keys; needed when the app has several.",
    )
    algorithm: Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"] = Field(
        default="RS256", description="Signing algorithm of the client assertion."
    )
    scopes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        min_length=1,
        description="Okta management scopes to request; each must be granted to the app.",
    )
    assertion_lifetime: Duration = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="How long a client assertion is valid (Okta refuses more than an hour).",
    )

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: list[str]) -> list[str]:
        wrong = [scope for scope in value if not scope or " " in scope]
        if wrong:
            raise ValueError(f"a scope is one word, such as okta.users.manage: {wrong!r}")
        return value


OktaAuth = Annotated[ApiTokenAuth | PrivateKeyJwtAuth, Field(discriminator="type")]


class OktaSettings(BaseModel):
    """Settings of an ``okta`` connection: one Okta org and how to authenticate to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    org_url: str = Field(
        description="The org's URL, such as https://acme.okta.com (no path, HTTPS only)."
    )
    auth: OktaAuth = Field(description="api_token (SSWS) or private_key_jwt (OAuth 2.0).")
    timeout: Duration = Field(default=30.0, gt=0, description="Timeout of one HTTP request.")
    token_refresh_margin: Duration = Field(
        default=60.0,
        description="private_key_jwt: fetch a new access token this long before it expires.",
    )
    max_connections: int = Field(
        default=10, ge=1, description="Most connections open to Okta at once."
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA certificates (PEM) that verify Okta's TLS certificate instead of the "
        "system's.",
    )
    proxy: str | None = Field(default=None, description="HTTP(S) proxy URL for every request.")

    _blank_is_unset = field_validator("ca_bundle", "proxy", mode="before")(blank_is_unset)

    @field_validator("org_url")
    @classmethod
    def _check_org_url(cls, value: str) -> str:
        return https_root(value, "https://acme.okta.com")


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserProfile(BaseModel):
    """An Okta user profile: the base attributes by Okta's names, and custom ones.

    Custom attributes (``startDate``, say) must exist in the org's user profile
    (Directory > Profile Editor); Okta refuses a profile with an unknown one.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    login: str = Field(min_length=1, max_length=100, description="Unique login (e-mail form).")
    email: str = Field(min_length=5, max_length=100, description="Primary e-mail address.")
    firstName: str = Field(min_length=1, max_length=50, description="Given name.")  # noqa: N815
    lastName: str = Field(min_length=1, max_length=50, description="Family name.")  # noqa: N815
    secondEmail: str | None = Field(default=None, description="Secondary e-mail.")  # noqa: N815
    displayName: str | None = Field(default=None, description="Name shown to others.")  # noqa: N815
    title: str | None = Field(default=None, description="Job title.")
    department: str | None = Field(default=None, description="Department.")
    division: str | None = Field(default=None, description="Division.")
    organization: str | None = Field(default=None, description="Organization.")
    employeeNumber: str | None = Field(default=None, description="HR employee id.")  # noqa: N815
    manager: str | None = Field(default=None, description="Manager's name.")
    managerId: str | None = Field(default=None, description="Manager's id.")  # noqa: N815
    costCenter: str | None = Field(default=None, description="Cost center.")  # noqa: N815
    userType: str | None = Field(default=None, description="E.g. Employee, Contractor.")  # noqa: N815
    city: str | None = Field(default=None, max_length=128)
    state: str | None = Field(default=None, max_length=128)
    countryCode: str | None = Field(default=None, max_length=2)  # noqa: N815
    mobilePhone: str | None = Field(default=None, max_length=100)  # noqa: N815
    primaryPhone: str | None = Field(default=None, max_length=100)  # noqa: N815
    locale: str | None = Field(default=None, description="E.g. en_US.")
    timezone: str | None = Field(default=None, description="E.g. Australia/Sydney.")

    @model_validator(mode="after")
    def _check_custom(self) -> UserProfile:
        wrong = sorted(name for name in self.model_extra or {} if not _ATTRIBUTE.match(name))
        if wrong:
            raise ValueError(f"profile attribute names are identifiers: {', '.join(wrong)}")
        return self

    def wire(self) -> dict[str, Any]:
        """The profile as Okta takes it: unset attributes left out."""
        return self.model_dump(mode="json", exclude_none=True)


class CreateUserInput(_Input):
    """Input of ``create_user``: the user to create if no user has its login yet."""

    profile: UserProfile = Field(description="The user's profile; profile.login is the key.")
    activate: bool = Field(
        default=False,
        description="Activate at once (false: the user is STAGED until activate_user).",
    )
    groups: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Groups (ids or exact names) to create the user in; more with "
        "add_user_to_groups.",
    )


class UserInput(_Input):
    """Names one user: its Okta id (``00u...``) or its login."""

    user: str = Field(min_length=1, description="Okta user id (00u...) or login.")


class ActivateUserInput(UserInput):
    """Input of ``activate_user``."""

    send_email: bool = Field(
        default=True, description="Okta e-mails the user an activation link (sendEmail)."
    )


class ClearUserSessionsInput(UserInput):
    """Input of ``clear_user_sessions``."""

    revoke_oauth_tokens: bool = Field(
        default=True,
        description="Also revoke the OpenID Connect and OAuth tokens issued to the user.",
    )


class UpdateProfileInput(UserInput):
    """Input of ``update_profile``: the attributes to change; the others are kept."""

    profile: dict[str, Any] = Field(
        min_length=1,
        description="Profile attributes to set, by Okta's names.",
        examples=[{"title": "Account Executive"}],
    )

    @field_validator("profile")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        wrong = sorted(name for name in value if not _ATTRIBUTE.match(name))
        if wrong:
            raise ValueError(f"profile attribute names are identifiers: {', '.join(wrong)}")
        return value


class GroupMembershipInput(UserInput):
    """Input of ``add_user_to_groups`` and ``remove_user_from_groups``."""

    groups: list[str] = Field(
        min_length=1, max_length=100, description="Groups, by id (00g...) or exact name."
    )


class ListUsersInput(_Input):
    """Input of ``list_users``: an Okta search expression and the page to read."""

    search: str = Field(
        min_length=1,
        description='Okta search expression, e.g. status eq "STAGED" and profile.department '
        'eq "Finance".',
    )
    limit: int = Field(default=200, ge=1, le=200, description="Users per page.")
    after: str | None = Field(default=None, description="Cursor of the page (from a previous one).")


# -- results -----------------------------------------------------------------


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateUserResult(_Result):
    """What ``create_user`` returns."""

    id: str = Field(description="The Okta user id.")
    login: str = Field(description="The user's login.")
    status: str = Field(description="STAGED, PROVISIONED, ACTIVE, ...")
    created: bool = Field(description="False when a user with this login existed already.")


class ActivateUserResult(_Result):
    """What ``activate_user`` returns (never the activation token: it is a credential)."""

    id: str
    status: str = Field(description="PROVISIONED (until the user sets up credentials) or ACTIVE.")
    activated: bool = Field(description="False when the user was active already.")


class DeactivateUserResult(_Result):
    """What ``deactivate_user`` returns."""

    id: str
    status: str = Field(description="DEPROVISIONED.")
    deactivated: bool = Field(description="False when the user was deactivated already.")


class SuspendUserResult(_Result):
    """What ``suspend_user`` returns."""

    id: str
    status: str = Field(description="SUSPENDED.")
    suspended: bool = Field(description="False when the user was suspended already.")


class UnsuspendUserResult(_Result):
    """What ``unsuspend_user`` returns."""

    id: str
    status: str = Field(description="ACTIVE.")
    unsuspended: bool = Field(description="False when the user was not suspended.")


class UpdateProfileResult(_Result):
    """What ``update_profile`` returns."""

    id: str
    login: str
    status: str


class GroupMembership(_Result):
    """One group a membership change was applied to."""

    id: str = Field(description="The group id.")
    name: str = Field(description="The group's name.")


class AddUserToGroupsResult(_Result):
    """What ``add_user_to_groups`` returns."""

    id: str = Field(description="The user id.")
    groups: list[GroupMembership]


class RemoveUserFromGroupsResult(_Result):
    """What ``remove_user_from_groups`` returns."""

    id: str = Field(description="The user id.")
    groups: list[GroupMembership]


class ClearUserSessionsResult(_Result):
    """What ``clear_user_sessions`` returns."""

    id: str
    oauth_tokens_revoked: bool = Field(description="Whether OAuth tokens were revoked too.")


class FindUserResult(_Result):
    """What ``find_user`` returns."""

    found: bool
    id: str | None = None
    login: str | None = None
    status: str | None = None


class OktaUser(_Result):
    """A user as ``list_users`` returns it: ids, status and profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    status: str
    created: str | None = None
    lastUpdated: str | None = None  # noqa: N815
    profile: dict[str, Any] = Field(default_factory=dict)


class ListUsersResult(_Result):
    """What ``list_users`` returns: one page of users and the cursor of the next."""

    users: list[OktaUser]
    after: str | None = Field(description="Cursor of the next page; null on the last.")
