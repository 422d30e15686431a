"""How a SCIM service provider's answers become Platypus errors (RFC 7644 section 3.12).

A failed request is answered with an HTTP status and an error resource::

    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
     "status": "409", "scimType": "uniqueness", "detail": "userName is taken"}

    400 invalidFilter, invalidSyntax, invalidPath,   permanent: the request is wrong
        invalidValue, noTarget, mutability,
        invalidVers, tooMany
    401                                              permanent, alert: credentials refused
    403 (sensitive: permanent; else alert)           the credentials lack a permission
    404                                              permanent (an action may accept it)
    409 uniqueness                                   permanent (upsert_user looks again first)
    412 Precondition Failed                          retryable: changed since read; read again
    413, 501                                         permanent
    429, 500, 502, 503, 504                          retryable (Retry-After honoured)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from platypus.exceptions import DeliveryError, PermanentError, RetryableError

__all__ = ["CredentialsError", "ScimError", "classify", "parse_error"]

_HINTS = {
    "invalidFilter": "the filter was refused; check the attribute the step matches on",
    "tooMany": "the filter selects more resources than the provider returns",
    "uniqueness": "another resource holds this unique value (userName, say)",
    "mutability": "the step changes an attribute the provider does not let change",
    "invalidSyntax": "the provider could not read the request as a SCIM resource",
    "invalidPath": "a PATCH path names an attribute the provider does not have",
    "noTarget": "a PATCH path matched nothing",
    "invalidValue": "a value is missing, of the wrong type, or not allowed",
    "invalidVers": "the provider does not support this SCIM version",
    "sensitive": "the provider refuses to process this request as sent (sensitive data)",
}


class CredentialsError(PermanentError):
    """The provider refused the connection's credentials or their permissions: someone must act.

    ``alert`` marks it for paging: every call of the connection fails the same way
    until the token (or password) or its rights are fixed.
    """

    alert = True


@dataclass(frozen=True, slots=True)
class ScimError:
    """The parts of a SCIM error resource: ``scimType`` and ``detail``."""

    scim_type: str | None
    detail: str

    def describe(self) -> str:
        if self.scim_type:
            return f"{self.scim_type}: {self.detail}" if self.detail else self.scim_type
        return self.detail


def parse_error(body: Any) -> ScimError:
    """The error in an answer's body, as far as it is a SCIM error (or anything with a detail)."""
    if not isinstance(body, Mapping):
        return ScimError(None, "")
    scim_type = body.get("scimType")
    detail = body.get("detail") or body.get("message") or ""
    return ScimError(str(scim_type) if scim_type else None, str(detail))


def classify(
    where: str,
    status: int,
    body: Any,
    *,
    retry_after: float | None,
    scrub: Callable[[str], str],
    excerpt: str = "",
) -> DeliveryError:
    """The `RetryableError`, `PermanentError` or `CredentialsError` for a failed SCIM request."""
    error = parse_error(body)
    detail = scrub(error.describe() or excerpt or "(empty body)")
    message = f"SCIM {where} answered {status}: {detail}"
    if status in {408, 429, 500, 502, 503, 504}:
        return RetryableError(
            f"{message} (retryable: a later attempt may succeed)",
            status_code=status,
            retry_after=retry_after,
            vendor_code=error.scim_type or str(status),
        )
    if status == 412:
        return RetryableError(
            f"{message} (the resource changed since it was read; the next attempt reads it again)",
            status_code=status,
            vendor_code="preconditionFailed",
        )
    if status == 401 or (status == 403 and error.scim_type != "sensitive"):
        hint = (
            "the provider refused the connection's credentials; check the token"
            if status == 401
            else "the credentials lack the permission this action needs"
        )
        return CredentialsError(
            f"{message} ({hint})", status_code=status, vendor_code=error.scim_type or str(status)
        )
    if status == 404:
        hint = "no such resource at the provider (deleted, or a wrong id)"
    elif status == 501:
        hint = "the provider does not implement this operation"
    else:
        hint = _HINTS.get(error.scim_type or "", "the provider refused the request")
    return PermanentError(
        f"{message} ({hint}; retrying cannot help)",
        status_code=status,
        vendor_code=error.scim_type or str(status),
    )
