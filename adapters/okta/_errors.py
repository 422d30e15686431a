"""How Okta's answers become Platypus errors.

Okta answers a failed call with an HTTP status and an error object::

    {"errorCode": "E0000001", "errorSummary": "Api validation failed: login",
     "errorLink": "E0000001", "errorId": "oae...", "errorCauses": [{"errorSummary": "..."}]}

The status decides first, the code refines it:

    400 E0000001, E0000003...      permanent: the request is wrong (the causes say how)
    401 E0000011 invalid token     refresh an OAuth token once; an API token: alert
    403 E0000006 access denied     permanent and alert-worthy: a role or scope is missing
    403 E0000038, 400 on a state   the action decides (already deactivated, say)
    404 E0000007 not found         permanent
    429 E0000047 rate limit        retryable, after X-Rate-Limit-Reset
    500 E0000009, 502, 503, 504    retryable (503 E0000010: the org is read-only for a while)

The token endpoint (``/oauth2/v1/token``) answers OAuth errors instead
(``{"error": "invalid_client", "error_description": "..."}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from platypus.exceptions import DeliveryError, PermanentError, RetryableError

__all__ = [
    "ALREADY_ACTIVE",
    "NOT_ALLOWED_IN_STATUS",
    "CredentialsError",
    "OktaError",
    "classify",
    "parse_error",
]

ALREADY_ACTIVE = "E0000016"
"""Activation failed because the user is already active."""
NOT_ALLOWED_IN_STATUS = "E0000038"
"""This operation is not allowed in the user's current status."""
VALIDATION = "E0000001"
INVALID_TOKEN = "E0000011"  # noqa: S105 -- an error code, not a credential
ACCESS_DENIED = "E0000006"
RATE_LIMITED = "E0000047"

_HINTS = {
    "E0000001": "Okta refused the data; fix the event or the step's mapping",
    "E0000003": "the request body was not well-formed JSON; this is a bug in the adapter",
    "E0000007": "no such user or group in this org; check the mapping (id or login)",
    "E0000038": "the user's status does not allow this operation",
}


class CredentialsError(PermanentError):
    """Okta refused the connection's credentials, or they lack a role or scope: someone must act.

    ``alert`` marks it for paging: every call of the connection fails the same way
    until the API token, the app's keys, its scopes or its admin roles are fixed.
    """

    alert = True


@dataclass(frozen=True, slots=True)
class OktaError:
    """The parts of an Okta error object that matter: code, summary and causes."""

    code: str | None
    summary: str
    causes: tuple[str, ...] = ()

    def describe(self) -> str:
        """``E0000001: Api validation failed: login (login: An object with ...)``."""
        text = f"{self.code}: {self.summary}" if self.code else self.summary
        if self.causes:
            text += f" ({'; '.join(self.causes)})"
        return text


def parse_error(body: Any) -> OktaError:
    """The error in an Okta answer's body (an error object or an OAuth error), as far as known."""
    if not isinstance(body, Mapping):
        return OktaError(None, "")
    if "errorCode" in body or "errorSummary" in body:
        causes = tuple(
            str(cause.get("errorSummary", ""))
            for cause in body.get("errorCauses") or []
            if isinstance(cause, Mapping) and cause.get("errorSummary")
        )
        code = body.get("errorCode")
        return OktaError(str(code) if code else None, str(body.get("errorSummary", "")), causes)
    if "error" in body:
        return OktaError(str(body["error"]), str(body.get("error_description", "")))
    return OktaError(None, "")


def classify(
    where: str,
    status: int,
    body: Any,
    *,
    retry_after: float | None,
    scrub: Callable[[str], str],
    excerpt: str = "",
    www_authenticate: str = "",
) -> DeliveryError:
    """The `RetryableError`, `PermanentError` or `CredentialsError` for a failed Okta call.

    ``retry_after`` is what the rate-limit headers say to wait (429 only); ``scrub``
    removes credentials from text Okta sent back.
    """
    error = parse_error(body)
    detail = scrub(error.describe() or excerpt or "(empty body)")
    message = f"Okta {where} answered {status}: {detail}"
    if status == 429 or error.code == RATE_LIMITED:
        return RetryableError(
            f"{message} (rate limited; retryable once the limit resets)",
            status_code=status,
            retry_after=retry_after,
            vendor_code=error.code or RATE_LIMITED,
        )
    if status in {408, 500, 502, 503, 504}:
        return RetryableError(
            f"{message} (retryable: a later attempt may succeed)",
            status_code=status,
            vendor_code=error.code,
        )
    if status == 401:
        return CredentialsError(
            f"{message} (Okta refused the connection's credentials: check the API token, or "
            "the app's client id and keys)",
            status_code=status,
            vendor_code=error.code or INVALID_TOKEN,
        )
    if status == 403 and (error.code == ACCESS_DENIED or "insufficient_scope" in www_authenticate):
        scope = _scope_wanted(www_authenticate)
        hint = (
            f"grant the scope {scope} to the API service app"
            if scope
            else "give the API token's admin (or the app) the role this action needs"
        )
        return CredentialsError(
            f"{message} ({hint})", status_code=status, vendor_code=error.code or ACCESS_DENIED
        )
    hint = _HINTS.get(error.code or "", "Okta refused the request; retrying cannot help")
    return PermanentError(f"{message} ({hint})", status_code=status, vendor_code=error.code)


def _scope_wanted(header: str) -> str | None:
    """The scope named in a ``WWW-Authenticate: Bearer ..., scope="..."`` challenge."""
    marker = 'scope="'
    start = header.find(marker)
    if start < 0:
        return None
    end = header.find('"', start + len(marker))
    return header[start + len(marker) : end] or None if end > 0 else None
