"""How NetSuite's answers become Platypus errors: SOAP faults and record statuses.

A call can fail three ways, each classified here as plain functions:

* a SOAP fault, named by the element in its ``<detail>`` (``exceededRequestLimitFault``
  and so on, from ``platform.faults.xsd``) — `classify_fault`;
* a ``writeResponse`` whose ``status isSuccess="false"``, with ``statusDetail`` codes
  from ``StatusDetailCodeType`` (``platform.faultTypes.xsd``) — `classify_status`.
  ``INVALID_KEY_OR_REF`` on a reference (an invoice's customer, its sales order)
  means the record it names does not exist yet: a `MissingDependencyError`,
  retried for the step's ``dependency_wait``;
* no SOAP answer at all: a timeout, a reset, an HTTP error without a fault — handled
  where the call is made.
"""

from __future__ import annotations

from collections.abc import Sequence

from platypus.exceptions import MissingDependencyError, PermanentError, RetryableError

__all__ = [
    "ALERT_FAULTS",
    "MISSING_RECORD_CODES",
    "RETRYABLE_FAULTS",
    "RETRYABLE_STATUS_CODES",
    "SESSION_FAULT",
    "CredentialsError",
    "classify_fault",
    "classify_status",
    "fault_type",
]


class CredentialsError(PermanentError):
    """NetSuite refused the token-based credentials or the account: someone must act.

    ``alert`` marks it for paging: retrying cannot help until the integration
    record, the access token, its role or the account id is fixed.
    """

    alert = True


RETRYABLE_FAULTS = frozenset(
    {
        # Too many requests in flight for the account (its concurrency limit).
        "ExceededConcurrentRequestLimitFault",
        # Too many requests over time: NetSuite's request-rate governance.
        "ExceededRequestLimitFault",
        # NetSuite's own "something went wrong"; it documents retrying it.
        "UnexpectedErrorFault",
    }
)
"""Faults a later attempt may get past."""

ALERT_FAULTS = frozenset({"InvalidCredentialsFault", "InvalidAccountFault"})
"""Faults that mean the credentials or account are wrong: permanent and alert-worthy."""

SESSION_FAULT = "InvalidSessionFault"
"""A session timed out. With TBA the adapter re-signs a new passport and retries once."""

RETRYABLE_STATUS_CODES = frozenset(
    {
        "RCRD_LOCKED_BY_WF",  # a workflow holds the record; it lets go
        "RCRD_HAS_BEEN_CHANGED",  # a concurrent edit won; the next write sees it
        "CANT_UPDATE_RECRD_HAS_CHANGED",  # same, other wording
        "TRANS_IN_USE",  # the transaction is being processed by another request
        "UNEXPECTED_ERROR",  # NetSuite's own transient failure
        "ACCT_TEMP_UNAVAILABLE",  # maintenance or an upgrade
        "CONCURRENCY_LIMIT_EXCEEDED",  # the account's concurrency limit, per record
        "EXCEEDED_MAX_CONCUR_RQST",  # same
        "WS_CONCUR_SESSION_DISALLWD",  # concurrent use of one session
    }
)
"""Record-level ``statusDetail`` codes a later attempt may get past. Every other
code (``INVALID_FLD_VALUE``, ``USER_ERROR``, ``DUP_ENTITY``, ``INSUFFICIENT_PERMISSION``...)
is permanent, but for `MISSING_RECORD_CODES`: the data or the setup must change."""

MISSING_RECORD_CODES = frozenset(
    {
        # "Invalid entity reference key C-1.": the record a reference names (the
        # customer of an invoice, the sales order it bills) is not in NetSuite, or
        # not yet: an event of another key, or another system, may create it.
        "INVALID_KEY_OR_REF",
    }
)
"""Record-level codes that mean a record this one refers to does not exist yet."""


def fault_type(detail_element: str) -> str:
    """``exceededRequestLimitFault`` (the detail element) → ``ExceededRequestLimitFault``."""
    return detail_element[:1].upper() + detail_element[1:]


def classify_fault(
    element: str, code: str | None, message: str, *, where: str
) -> RetryableError | PermanentError:
    """The error for a SOAP fault whose ``<detail>`` holds ``element`` (local name).

    ``element`` is empty for a fault without NetSuite detail (a request NetSuite
    could not parse, say): permanent, since sending it again gives the same answer.
    """
    name = fault_type(element) if element else "SOAP Fault"
    vendor_code = code or (name if element else None)
    text = f"{where}: NetSuite answered {name}" + (f" ({code})" if code else "")
    text = f"{text}: {message or 'no message'}"
    if name in RETRYABLE_FAULTS:
        return RetryableError(f"{text}; retryable", vendor_code=vendor_code)
    if name in ALERT_FAULTS:
        return CredentialsError(
            f"{text}; check the connection's account, consumer key and secret, token id "
            "and secret, and that the token's role may use web services",
            vendor_code=vendor_code,
        )
    if name == SESSION_FAULT:
        return RetryableError(
            f"{text}; a freshly signed passport was refused too, retryable",
            vendor_code=vendor_code,
        )
    if name == "InsufficientPermissionFault":
        hint = "give the token's role the permission for this record type"
    elif not element:
        hint = "the request was refused as sent; this is a bug in the adapter or the data"
    else:
        hint = "retrying cannot help"
    return PermanentError(f"{text}; {hint}", vendor_code=vendor_code)


def classify_status(
    details: Sequence[tuple[str, str]], *, where: str
) -> RetryableError | PermanentError:
    """The error for ``status isSuccess="false"`` with ``(code, message)`` details.

    Retryable only when every detail code is retryable: one permanent reason is
    enough for the same write to fail again. A missing referenced record, with
    nothing permanent beside it, is a `MissingDependencyError`.
    """
    codes = [code or "UNKNOWN" for code, _ in details] or ["UNKNOWN"]
    described = "; ".join(f"{code or 'UNKNOWN'}: {message}" for code, message in details)
    text = f"{where}: NetSuite refused the record: {described or 'no detail given'}"
    if all(code in RETRYABLE_STATUS_CODES for code in codes):
        return RetryableError(f"{text}; retryable", vendor_code=codes[0])
    waiting = RETRYABLE_STATUS_CODES | MISSING_RECORD_CODES
    if all(code in waiting for code in codes):
        missing = next(code for code in codes if code in MISSING_RECORD_CODES)
        return MissingDependencyError(
            f"{text}; a record it refers to does not exist yet: retried for the step's "
            "dependency_wait, then dead-lettered (replay it once the record exists)",
            vendor_code=missing,
        )
    permanent = next(code for code in codes if code not in waiting)
    return PermanentError(
        f"{text}; fix the event or the step's mapping (retrying cannot help)",
        vendor_code=permanent,
    )
