"""How Workday's answers and zeep's exceptions become `RetryableError` or `PermanentError`.

Workday Web Services answer a failed call with a SOAP 1.1 fault (HTTP 500) whose
``detail`` holds one of the two faults the WSDL declares for every operation:

* ``wd:Validation_Fault``: the request broke a rule (unknown ID, bad value, schema
  violation). Sending it again cannot help: permanent.
* ``wd:Processing_Fault``: the tenant could not process it now (locks, a business
  process in flight, an internal error). Retryable.

A rejected WS-Security token has no detail: ``faultcode`` is
``SOAP-ENV:Client.authenticationError`` and ``faultstring`` "invalid username or
password". The adapter re-reads the password once before calling that permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError, ValidationError

from platypus.exceptions import DeliveryError, PermanentError, RetryableError

__all__ = ["AuthenticationFaultError", "FaultInfo", "classify", "fault_info"]

WD = "urn:com.workday/bsvc"
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_EXCERPT = 300


class AuthenticationFaultError(Exception):
    """Workday rejected the WS-Security UsernameToken (no detail; handled by the adapter)."""

    def __init__(self, fault_code: str) -> None:
        super().__init__(fault_code)
        self.fault_code = fault_code


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """The parts of a Workday SOAP fault that matter for classification and messages."""

    kind: str  # "Validation_Fault", "Processing_Fault", "authentication" or "other"
    code: str  # faultcode, e.g. "SOAP-ENV:Client.validationError"
    message: str  # the Workday messages, joined
    xpath: str = ""  # where a Validation_Error points, when it says


def fault_info(fault: Fault) -> FaultInfo:
    """Read a zeep `Fault`: its faultcode, faultstring and Workday detail element."""
    code = str(fault.code or "")
    text = str(fault.message or "").strip()
    detail = fault.detail
    if getattr(detail, "tag", None) is not None:  # zeep puts a non-Fault reply here as text
        validation = detail.find(f"{{{WD}}}Validation_Fault")
        if validation is not None:
            messages, xpaths = [], []
            for error in validation.iterfind(f"{{{WD}}}Validation_Error"):
                messages.append(error.findtext(f"{{{WD}}}Message", default="").strip())
                xpaths.append(error.findtext(f"{{{WD}}}Xpath", default="").strip())
            joined = "; ".join(m for m in messages if m) or text
            return FaultInfo("Validation_Fault", code, joined, next((x for x in xpaths if x), ""))
        processing = detail.find(f"{{{WD}}}Processing_Fault")
        if processing is not None:
            message = processing.findtext(f"{{{WD}}}Detail_Message", default="").strip()
            return FaultInfo("Processing_Fault", code, message or text)
    lowered = f"{code} {text}".lower()
    if "authentication" in lowered or "invalid username or password" in lowered:
        return FaultInfo("authentication", code, text)
    if "validationerror" in lowered:
        return FaultInfo("Validation_Fault", code, text)
    if "processingerror" in lowered:
        return FaultInfo("Processing_Fault", code, text)
    return FaultInfo("other", code, text)


def classify(exc: BaseException, *, where: str, timeout: float) -> DeliveryError:
    """The delivery error for what zeep or requests raised while calling ``where``.

    An authentication fault is not classified here: it raises `AuthenticationFaultError`,
    since only the adapter knows whether the password was already re-read.
    """
    if isinstance(exc, Fault):
        info = fault_info(exc)
        if info.kind == "authentication":
            raise AuthenticationFaultError(info.code) from None
        message = _excerpt(info.message) or "(no message)"
        if info.kind == "Validation_Fault":
            at = f" at {info.xpath}" if info.xpath else ""
            return PermanentError(
                f"{where}: Workday refused the request (Validation_Fault{at}): {message}; "
                "fix the event or the step's mapping",
                status_code=500,
                vendor_code="Validation_Fault",
            )
        if info.kind == "Processing_Fault":
            return RetryableError(
                f"{where}: Workday could not process the request now (Processing_Fault): "
                f"{message}; retryable",
                status_code=500,
                vendor_code="Processing_Fault",
            )
        # A fault without Workday detail: the SOAP convention says Client faults are
        # the caller's to fix and Server faults may pass. An error answer that is no
        # SOAP fault at all (no faultcode) came from something in between: retryable.
        retryable = not info.code or info.code.split(":")[-1].lower().startswith("server")
        error = RetryableError if retryable else PermanentError
        return error(
            f"{where}: SOAP fault {info.code or '(no faultcode)'}: {message}",
            status_code=500,
            vendor_code=info.code or None,
        )
    if isinstance(exc, TransportError):
        status = int(exc.status_code or 0)
        body = _excerpt(_text(exc.content)) or "(empty body)"
        retryable = status in _RETRYABLE_STATUS or 500 <= status < 600
        hint = (
            "retryable: a later attempt may succeed"
            if retryable
            else "check the connection's endpoint and tenant"
        )
        error = RetryableError if retryable else PermanentError
        return error(f"{where} answered HTTP {status}: {body} ({hint})", status_code=status)
    if isinstance(exc, requests.Timeout):
        return RetryableError(
            f"{where} timed out after {timeout:g}s ({type(exc).__name__}); retryable. "
            "Raise the connection's timeout if the tenant is just slow"
        )
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return PermanentError(f"{where}: invalid endpoint URL: {exc}; fix the connection")
    if isinstance(exc, requests.RequestException):
        # Connection refused or reset, a body cut off mid-way: the network, not the data.
        return RetryableError(
            f"{where} failed: {type(exc).__name__}; retryable. "
            "Check that the tenant is reachable at the endpoint"
        )
    if isinstance(exc, ValidationError):
        return PermanentError(
            f"{where}: the request does not fit the WSDL: {exc}; fix the step's input"
        )
    if isinstance(exc, ZeepError):
        return PermanentError(f"{where}: unexpected answer: {type(exc).__name__}: {exc}")
    return PermanentError(f"{where} failed: {type(exc).__name__}: {exc}")


def _text(content: Any) -> str:
    if isinstance(content, bytes):
        return content.decode("utf-8", errors="replace")
    return "" if content is None else str(content)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"
