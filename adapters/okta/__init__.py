"""The ``okta`` adapter: user lifecycle and group membership in an Okta org.

::

    connections:
      okta:
        adapter: okta
        settings:
          org_url: https://acme.okta.com
          auth:
            type: private_key_jwt            # or api_token (SSWS)
            client_id: 0oa1b2c3d4e5f6g7h8i9
            private_key: {file: /run/secrets/okta-app.pem}
            scopes: [okta.users.manage, okta.groups.manage, okta.users.read, okta.groups.read]

Actions: ``create_user`` (STAGED by default; none made when the login exists),
``activate_user``, ``deactivate_user``, ``suspend_user``, ``unsuspend_user``,
``update_profile``, ``add_user_to_groups`` and ``remove_user_from_groups`` (groups
by id or exact name), ``clear_user_sessions``, and the lookups ``find_user`` and
``list_users``. Each returns the model named in `RESULTS`. ``X-Rate-Limit-*``
headers are honoured: a used-up bucket is not called before its reset, and a 429
is retried after it. The ``okta`` poller (`poller`) finds staged users whose
start date has come. See ``docs/adapters/okta.md``.
"""

from ._errors import CredentialsError
from .adapter import RESULTS, OktaAdapter
from .models import (
    ActivateUserInput,
    ApiTokenAuth,
    ClearUserSessionsInput,
    CreateUserInput,
    GroupMembershipInput,
    ListUsersInput,
    OktaSettings,
    PrivateKeyJwtAuth,
    UpdateProfileInput,
    UserInput,
    UserProfile,
)

__all__ = [
    "RESULTS",
    "ActivateUserInput",
    "ApiTokenAuth",
    "ClearUserSessionsInput",
    "CreateUserInput",
    "CredentialsError",
    "GroupMembershipInput",
    "ListUsersInput",
    "OktaAdapter",
    "OktaSettings",
    "PrivateKeyJwtAuth",
    "UpdateProfileInput",
    "UserInput",
    "UserProfile",
]
