"""The ``salesforce`` adapter: upsert, create, update and look up records via simple-salesforce.

::

    connections:
      crm:
        adapter: salesforce
        max_concurrency: 20          # under Salesforce's 25 long-running requests
        settings:
          auth:
            type: password           # or jwt, or session
            username: integration@acme.com
            password: {env: SF_PASSWORD}
            security_token: {env: SF_TOKEN}
            domain: login            # test: a sandbox
          api_version: "59.0"
          timeout: 30s

Actions and their results (so later steps can use them):

* ``upsert`` (``sobject``, ``external_id_field``): ``{"id", "created"}``;
  idempotent at Salesforce.
* ``create`` (``sobject``): ``{"id", "created": true}``; not idempotent, so the
  runtime's delivery ledger guards it.
* ``update`` (``sobject``, ``id_field``): ``{"id", "created": false}``; idempotent.
* ``query`` (``soql`` with ``:name`` binds from the payload):
  ``{"total_size", "done", "records"}``; a lookup, not a write.

Errors in Salesforce's error array are classified by code (`errors`);
INVALID_SESSION_ID logs in again once and retries. The ``Sforce-Limit-Info``
header is exposed as `SalesforceAdapter.api_usage` and backs off before
``max_api_usage_share`` of the daily allocation is used.
"""

from __future__ import annotations

from .adapter import ApiUsage, SalesforceAdapter, parse_limit_info
from .errors import MISSING_RECORD_CODES, PERMANENT_CODES, RETRYABLE_CODES, classify
from .settings import (
    CreateParams,
    JwtAuth,
    PasswordAuth,
    QueryParams,
    SalesforceSettings,
    SessionAuth,
    UpdateParams,
    UpsertParams,
    login_base_url,
)
from .soql import bind

__all__ = [
    "MISSING_RECORD_CODES",
    "PERMANENT_CODES",
    "RETRYABLE_CODES",
    "ApiUsage",
    "CreateParams",
    "JwtAuth",
    "PasswordAuth",
    "QueryParams",
    "SalesforceAdapter",
    "SalesforceSettings",
    "SessionAuth",
    "UpdateParams",
    "UpsertParams",
    "bind",
    "classify",
    "login_base_url",
    "parse_limit_info",
]
