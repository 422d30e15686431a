"""How a Zuora answer is classified: success, retryable, permanent, or "refresh the token".

Zuora reports many failures as HTTP 200 with ``{"success": false, "reasons":
[{"code": 53100320, "message": "..."}]}``. A v1 error code is eight digits: six
name the resource and field, the last two the category::

    10 permission denied      permanent      50 locking contention      retryable
    11 authentication failed  refresh token  60 internal error          retryable
    20-23 invalid or missing  permanent      61 temporary error         retryable
    30 business rule          permanent      70 request exceeded limit  retryable
    40 not found              permanent      90 malformed request       permanent
    45 unsupported request    permanent      99 integration error       permanent

A failure is retryable only if every reason is; one permanent reason makes it
permanent, since a retry would meet it again. "Not found" (40) for the *account*
a write refers to (a subscription's ``accountNumber``, an account's parent) is a
missing dependency instead: the account may be created any moment by an event
of another key, so the step waits for it (``dependency_wait``). The Actions endpoints
(``/v1/action/query``) answer with SOAP-style faults instead
(``{"FaultCode": "MALFORMED_QUERY", "FaultMessage": "..."}``), classified by name.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from platypus.vendorhttp import parse_retry_after

__all__ = ["Outcome", "Verdict", "classify", "retry_after"]

RETRYABLE_CATEGORIES = frozenset({"50", "60", "61", "70"})
AUTH_CATEGORY = "11"
NOT_FOUND_CATEGORY = "40"
ACCOUNT_WRITES = frozenset({"create_subscription"})
"""Actions whose only reference by key is the customer account: a 40 there is the account."""
RETRYABLE_FAULTS = frozenset(
    {
        "LOCK_COMPETITION",
        "REQUEST_EXCEEDED_LIMIT",
        "REQUEST_EXCEEDED_MAX_CONCURRENT_LIMIT",
        "SERVER_UNAVAILABLE",
    }
)
AUTH_FAULTS = frozenset({"INVALID_SESSION"})


class Verdict(enum.Enum):
    """What to do with an answer."""

    OK = "ok"
    """The call succeeded; use the body."""
    RETRYABLE = "retryable"
    """A later attempt may succeed."""
    PERMANENT = "permanent"
    """Retrying cannot help."""
    REFRESH = "refresh"
    """The token was refused: fetch a new one and try once more."""
    MISSING = "missing"
    """A record the request refers to (the account) does not exist yet: wait for it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A classified answer: the verdict, Zuora's first error code and its messages."""

    verdict: Verdict
    vendor_code: str | None = None
    detail: str = ""


def category(code: str) -> str | None:
    """The two-digit category of an eight-digit Zuora error code, if it is one."""
    return code[-2:] if len(code) == 8 and code.isdigit() else None


def _reasons(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(code, message) pairs from a v1 error body or an Actions fault."""
    found: list[tuple[str, str]] = []
    reasons = body.get("reasons")
    if isinstance(reasons, list):
        for reason in reasons:
            if isinstance(reason, Mapping):
                found.append((str(reason.get("code", "")), str(reason.get("message", ""))))
    if "FaultCode" in body:
        found.append((str(body["FaultCode"]), str(body.get("FaultMessage", ""))))
    errors = body.get("Errors")  # Actions create/update: {"Success": false, "Errors": [...]}
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, Mapping):
                found.append((str(error.get("Code", "")), str(error.get("Message", ""))))
    if not found and isinstance(body.get("message"), str):
        found.append(("", body["message"]))
    return found


def _account_missing(code: str, message: str, action: str) -> bool:
    """Whether a reason says the account the request refers to is not found."""
    if category(code) != NOT_FOUND_CATEGORY:
        return False
    return action in ACCOUNT_WRITES or "account" in message.lower()


def _by_reasons(reasons: list[tuple[str, str]], default: Verdict, action: str = "") -> Verdict:
    codes = [code for code, _ in reasons]
    if any(category(c) == AUTH_CATEGORY or c in AUTH_FAULTS for c in codes):
        return Verdict.REFRESH
    known = [(c, m) for c, m in reasons if c]
    if not known:
        return default

    def retryable(code: str) -> bool:
        return category(code) in RETRYABLE_CATEGORIES or code in RETRYABLE_FAULTS

    if all(retryable(c) for c, _ in known):
        return Verdict.RETRYABLE
    if all(retryable(c) or _account_missing(c, m, action) for c, m in known):
        return Verdict.MISSING
    return Verdict.PERMANENT


def _failed(body: Any) -> bool:
    return isinstance(body, Mapping) and (
        body.get("success") is False or body.get("Success") is False or "FaultCode" in body
    )


def classify(status: int, body: Any, action: str = "") -> Outcome:
    """Classify an answer by HTTP status and, for Zuora's error bodies, by error code.

    ``action`` (``create_subscription``) tells which record a "not found" is about.
    """
    reasons = _reasons(body) if isinstance(body, Mapping) else []
    code = next((c for c, _ in reasons if c), None)
    detail = "; ".join(f"{c}: {m}" if c else m for c, m in reasons if c or m)
    if 200 <= status < 300:
        if not _failed(body):
            return Outcome(Verdict.OK)
        return Outcome(_by_reasons(reasons, Verdict.PERMANENT, action), code, detail)
    if status == 401:
        return Outcome(Verdict.REFRESH, code, detail)
    if status in {408, 409, 429} or 500 <= status < 600:
        # 409: a request with the same Idempotency-Key is still in progress; once it
        # ends, a retry gets its stored answer.
        return Outcome(Verdict.RETRYABLE, code, detail)
    # 400, 403, 404, 405, 422 (Idempotency-Key reused with another body)...: a
    # retryable reason code can still say otherwise (e.g. a lock competition as 400).
    return Outcome(_by_reasons(reasons, Verdict.PERMANENT, action), code, detail)


def retry_after(headers: Mapping[str, str], *, rate_limited: bool) -> float | None:
    """Seconds to wait: ``Retry-After``; else, when rate limited, ``RateLimit-Reset``.

    ``RateLimit-Reset`` (seconds until the quota closest to exhaustion resets) comes
    with every answer; it says when to retry only when the quota is the reason.
    """
    seconds = parse_retry_after(headers.get("Retry-After"))
    if seconds is not None or not rate_limited:
        return seconds
    reset = headers.get("RateLimit-Reset")
    if reset is None:
        return None
    try:
        value = float(reset.strip())
    except ValueError:
        return None
    return max(value, 0.0) if math.isfinite(value) else None
