"""The ``salesforce`` adapter: upsert, create, update and look up records via simple-salesforce.

::

    connections:
      crm:
        adapter: salesforce
        max_concurrency: 20          # under Salesforce's 25 long-running requests
        settings:
          auth:
            type: client_credentials # or jwt, refresh_token, session, password
            consumer_key: 3MVG9...   # the External Client App's
            consumer_secret: {env: SF_CONSUMER_SECRET}
            domain: acme.my          # the My Domain: acme--uat.sandbox.my for a sandbox
          api_version: "65.0"
          timeout: 30s

Actions and their results (so later steps can use them):

* ``upsert`` (``sobject``, ``external_id_field``): ``{"id", "created"}``;
  idempotent at Salesforce.
* ``create`` (``sobject``): ``{"id", "created": true}``; not idempotent, so the
  runtime's delivery ledger guards it.
* ``update`` (``sobject``, ``id_field``): ``{"id", "created": false}``; idempotent.
* ``query`` (``soql`` with ``:name`` binds from the payload):
  ``{"total_size", "done", "records"}``; a lookup, not a write.
* ``freeze_user`` (``match_field``; the payload holds its value and ``IsFrozen``):
  freezes the user's login (``UserLogin.IsFrozen``); ``FreezeUserResult``. Idempotent.

Errors in Salesforce's error array are classified by code (`errors`);
INVALID_SESSION_ID logs in again once, with any auth but a fixed session, and
retries. The OAuth 2.0 grants are in `oauth`; password auth (SOAP ``login()``) is
refused from API 65.0, where Salesforce no longer offers it. The ``Sforce-Limit-Info``
header is exposed as `SalesforceAdapter.api_usage` and backs off before
``max_api_usage_share`` of the daily allocation is used.
"""

from __future__ import annotations

from .adapter import ApiUsage, SalesforceAdapter, parse_limit_info
from .errors import MISSING_RECORD_CODES, PERMANENT_CODES, RETRYABLE_CODES, classify
from .oauth import LoginRefusedError, jwt_audience
from .settings import (
    ClientCredentialsAuth,
    CreateParams,
    FreezeUserParams,
    FreezeUserResult,
    JwtAuth,
    PasswordAuth,
    QueryParams,
    RefreshTokenAuth,
    SalesforceSettings,
    SessionAuth,
    UpdateParams,
    UpsertParams,
    login_base_url,
)
from .soql import bind, bind_names

__all__ = [
    "MISSING_RECORD_CODES",
    "PERMANENT_CODES",
    "RETRYABLE_CODES",
    "ApiUsage",
    "ClientCredentialsAuth",
    "CreateParams",
    "FreezeUserParams",
    "FreezeUserResult",
    "JwtAuth",
    "LoginRefusedError",
    "PasswordAuth",
    "QueryParams",
    "RefreshTokenAuth",
    "SalesforceAdapter",
    "SalesforceSettings",
    "SessionAuth",
    "UpdateParams",
    "UpsertParams",
    "bind",
    "bind_names",
    "classify",
    "jwt_audience",
    "login_base_url",
    "parse_limit_info",
]
