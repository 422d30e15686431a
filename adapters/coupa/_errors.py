"""How Coupa's answers become Platypus errors.

Coupa answers a failed JSON call with an HTTP status and its errors by field::

    {"errors": {"invoice-number": ["has already been taken"]}}

(or a list, ``{"errors": ["..."]}``). The token endpoint answers OAuth errors
(``{"error": "invalid_scope", "error_description": "..."}``).

    400, 422 validation        permanent: the record is refused as sent
    401 after a new token      permanent, alert: the OAuth client was refused
    403                        permanent, alert: the client lacks the scope for this
    404                        permanent (an unknown id; lookups answer found: false)
    429, 5xx, 408              retryable (Coupa allows 25 calls a second, bursts of 20)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from platypus.exceptions import DeliveryError, PermanentError, RetryableError

__all__ = ["CredentialsError", "classify", "error_messages", "oauth_error"]


class CredentialsError(PermanentError):
    """Coupa refused the OAuth client, or its scopes do not cover a call: someone must act.

    ``alert`` marks it for paging: every call of the connection fails the same way
    until the client, its secret or its scopes are fixed in Coupa
    (Setup > Oauth2/OpenID Connect Clients).
    """

    alert = True


def error_messages(body: Any) -> list[str]:
    """``field: message`` lines from a Coupa error body, in order."""
    if not isinstance(body, Mapping):
        return []
    errors = body.get("errors")
    found: list[str] = []
    if isinstance(errors, Mapping):
        for field, messages in errors.items():
            items = messages if isinstance(messages, list) else [messages]
            found += [f"{field}: {message}" for message in items]
    elif isinstance(errors, list):
        found += [str(message) for message in errors]
    elif isinstance(errors, str):
        found.append(errors)
    if not found and isinstance(body.get("error"), str):
        found.append(str(body["error"]))
    return found


def oauth_error(body: Any) -> tuple[str | None, str]:
    """(error code, description) of an OAuth error answer."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return str(body["error"]), str(body.get("error_description", ""))
    return None, ""


def classify(
    where: str,
    status: int,
    body: Any,
    *,
    retry_after: float | None,
    scrub: Callable[[str], str],
    excerpt: str = "",
    scopes: list[str] | None = None,
) -> DeliveryError:
    """The `RetryableError`, `PermanentError` or `CredentialsError` for a failed Coupa call."""
    messages = error_messages(body)
    detail = scrub("; ".join(messages) or excerpt or "(empty body)")
    message = f"Coupa {where} answered {status}: {detail}"
    if status in {408, 429} or status >= 500:
        return RetryableError(
            f"{message} (retryable: a later attempt may succeed)",
            status_code=status,
            retry_after=retry_after,
            vendor_code=str(status),
        )
    if status == 401:
        return CredentialsError(
            f"{message} (Coupa refused the OAuth client's token, even a new one; check that "
            "the client is active and its id and secret are the connection's)",
            status_code=status,
            vendor_code="unauthorized",
        )
    if status == 403:
        asked = ", ".join(scopes or [])
        return CredentialsError(
            f"{message} (the OAuth client's scopes do not allow this call; add the scope it "
            f"needs to the client in Coupa and to the connection's scopes (now: {asked}))",
            status_code=status,
            vendor_code="forbidden",
        )
    hint = (
        "no such record in Coupa; check the id in the step's mapping"
        if status == 404
        else "Coupa refused the record; fix the event or the step's mapping"
    )
    return PermanentError(f"{message} ({hint})", status_code=status, vendor_code=str(status))
