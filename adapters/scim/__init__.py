"""The ``scim`` adapter: users and groups at any SCIM 2.0 service provider (RFC 7643/7644).

::

    connections:
      wiki:
        adapter: scim
        settings:
          base_url: https://wiki.example.com/scim/v2
          auth: {type: bearer, token: {env: WIKI_SCIM_TOKEN}}

Actions: ``upsert_user`` (found by ``externalId`` or ``userName`` with a filter,
created if missing, else only what differs is changed), ``find_user``,
``activate_user``, ``deactivate_user``, ``patch_user``, ``delete_user``,
``upsert_group``, ``find_group``, ``add_group_members`` and
``remove_group_members``. Each returns the model named in `RESULTS`. Changes
carry ``If-Match`` when the provider versions its resources; SCIM error
responses are classified by ``scimType``. See ``docs/adapters/scim.md``.
"""

from ._errors import CredentialsError
from .adapter import RESULTS, Capabilities, ScimAdapter
from .models import (
    BasicAuth,
    BearerAuth,
    Email,
    EnterpriseUser,
    GroupLookupInput,
    GroupMembersInput,
    Name,
    PatchOperation,
    PatchUserInput,
    ScimSettings,
    UpsertGroupInput,
    UpsertUserInput,
    UpsertUserParams,
    UserLookupInput,
    UserRef,
)

__all__ = [
    "RESULTS",
    "BasicAuth",
    "BearerAuth",
    "Capabilities",
    "CredentialsError",
    "Email",
    "EnterpriseUser",
    "GroupLookupInput",
    "GroupMembersInput",
    "Name",
    "PatchOperation",
    "PatchUserInput",
    "ScimAdapter",
    "ScimSettings",
    "UpsertGroupInput",
    "UpsertUserInput",
    "UpsertUserParams",
    "UserLookupInput",
    "UserRef",
]
