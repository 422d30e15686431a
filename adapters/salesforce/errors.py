"""Which Salesforce failures a retry can fix.

Salesforce answers a failed REST call with an HTTP status and an error array,
``[{"message": ..., "errorCode": ..., "fields": [...]}]``. The error code decides
first; a code not listed here falls back on the status: 5xx and 429 are retryable,
anything else is permanent.

A record the write refers to that does not exist yet is a `MissingDependencyError`,
retried for the step's ``dependency_wait``: ``INVALID_CROSS_REFERENCE_KEY`` (a
lookup or parent id Salesforce does not have), ``INVALID_FIELD`` saying "Foreign
key external ID: ... not found" (a parent named by its external id), and
``NOT_FOUND`` answering an ``update`` (the record to update is not there yet).

``INVALID_SESSION_ID`` (401) is neither: the adapter logs in again once and
retries; see `SalesforceAdapter`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from platypus.exceptions import (
    DeliveryError,
    MissingDependencyError,
    PermanentError,
    RetryableError,
)

__all__ = [
    "INVALID_SESSION_ID",
    "MISSING_RECORD_CODES",
    "PERMANENT_CODES",
    "RETRYABLE_CODES",
    "classify",
    "error_code",
    "error_text",
]

INVALID_SESSION_ID = "INVALID_SESSION_ID"

RETRYABLE_CODES: dict[str, str] = {
    "REQUEST_LIMIT_EXCEEDED": "Salesforce's concurrent or daily API limit is reached",
    "UNABLE_TO_LOCK_ROW": "another transaction holds a lock on the record",
    "SERVER_UNAVAILABLE": "Salesforce is temporarily unavailable",
}
"""Error codes a later attempt may get past, with why."""

PERMANENT_CODES: dict[str, str] = {
    "INVALID_FIELD": "a field in the payload or query does not exist or is not writable",
    "REQUIRED_FIELD_MISSING": "the payload lacks a required field",
    "DUPLICATE_VALUE": "a unique field already holds this value on another record",
    "MALFORMED_ID": "a record id is not a valid Salesforce id",
    "ENTITY_IS_DELETED": "the record was deleted",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "a validation rule of the org refused the record",
}
"""Error codes no retry can fix, with why."""

MISSING_RECORD_CODES: dict[str, str] = {
    "INVALID_CROSS_REFERENCE_KEY": "a record it refers to (a parent or lookup) does not exist yet",
}
"""Error codes that mean a record the write refers to does not exist yet, with why."""

# Salesforce's words when a relationship names its parent by external id: "Foreign
# key external ID: A-1 not found for field External_Id__c in entity Account".
_FOREIGN_KEY = re.compile(r"foreign key external id: .* not found", re.IGNORECASE)

_BODY_EXCERPT = 300


def error_code(content: Any) -> str | None:
    """The first ``errorCode`` of a Salesforce error body (an error array or one error)."""
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, dict):
        code = first.get("errorCode") or first.get("error")
        return str(code) if code else None
    return None


def error_text(content: Any) -> str:
    """A one-line summary of a Salesforce error body: ``CODE: message (fields: a, b)``."""
    items = content if isinstance(content, list) else [content]
    parts: list[str] = []
    for item in items:
        if isinstance(item, dict):
            code = item.get("errorCode") or item.get("error") or "?"
            message = item.get("message") or item.get("error_description") or ""
            fields = item.get("fields") or []
            where = f" (fields: {', '.join(map(str, fields))})" if fields else ""
            parts.append(f"{code}: {message}{where}")
        elif item not in (None, ""):
            parts.append(str(item))
    text = "; ".join(parts) or "(empty body)"
    return text if len(text) <= _BODY_EXCERPT else text[:_BODY_EXCERPT] + "..."


def missing_record(code: str | None, content: Any, action: str = "") -> str | None:
    """Why the answer means a record the write refers to does not exist yet, or None."""
    if code in MISSING_RECORD_CODES:
        return MISSING_RECORD_CODES[code]
    if code == "NOT_FOUND" and action == "update":
        # Elsewhere NOT_FOUND means a wrong URL (an unknown object or field).
        return "the record to update does not exist yet"
    if code == "INVALID_FIELD" and _FOREIGN_KEY.search(error_text(content)):
        return "the parent it names by external id does not exist yet"
    return None


def classify(
    where: str,
    status: int,
    content: Any,
    scrub: Callable[[str], str] = str,
    *,
    action: str = "",
) -> DeliveryError:
    """The `RetryableError`, `MissingDependencyError` or `PermanentError` for an error answer.

    ``where`` says what was attempted (``upsert Account``); ``scrub`` removes
    credentials from text the vendor sent back; ``action`` is the adapter's action
    (``update``), which tells a missing record from a wrong URL.
    """
    code = error_code(content)
    detail = scrub(error_text(content))
    missing = missing_record(code, content, action)
    if missing is not None:
        return MissingDependencyError(
            f"Salesforce {where} failed with {status}: {detail} ({missing}; retried for "
            "the step's dependency_wait, then dead-lettered: replay it once the record exists)",
            status_code=status,
            vendor_code=code,
        )
    if code in RETRYABLE_CODES:
        retryable, why = True, RETRYABLE_CODES[code]
    elif code in PERMANENT_CODES:
        retryable, why = False, PERMANENT_CODES[code]
    elif status >= 500 or status == 429:
        retryable, why = True, "a server-side failure"
    else:
        retryable, why = False, "Salesforce refused the request"
    if retryable:
        hint = "retryable: a later attempt may succeed"
    elif status in (401, 403):
        hint = "check the integration user's permissions and the connection's auth"
    else:
        hint = "fix the event or the step's mapping and params; retrying cannot help"
    message = f"Salesforce {where} failed with {status}: {detail} ({why}; {hint})"
    error = RetryableError if retryable else PermanentError
    return error(message, status_code=status, vendor_code=code)
