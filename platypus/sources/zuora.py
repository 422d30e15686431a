"""Zuora callout notifications: an "Invoice Posted" callout -> ``finance.invoice.posted.v1``.

A callout carries the parameters configured on the notification, each bound to a
merge field, as a JSON object or as form parameters. The names Platypus reads are
set by ``parameters`` (defaults below); names match case-insensitively.

Authentication is what the callout is configured with, every listed method must
pass: HTTP basic auth (answered with ``WWW-Authenticate`` on a 401, since Zuora
sends credentials only after a challenge unless preemptive authentication is on)
and/or a custom header whose value is a shared token.

Line items: a callout has no list of invoice items. Send them as ``InvoiceLines``
(a JSON array, from a callout template body) or set ``missing_lines: summary`` to
get one line for the invoice total, marked with the extension attribute
``platypusenrich: lines`` so a flow can fetch the real lines.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from platypus.safejson import loads as load_json
from platypus.sources.auth import AuthMethod, check_auth
from platypus.sources.decoder import (
    Decoder,
    Delivery,
    MalformedPayloadError,
    SourceSettings,
    WebhookRequest,
    as_number,
)

__all__ = ["MissingLines", "ZuoraCalloutDecoder", "ZuoraCalloutSettings", "ZuoraParameters"]


class MissingLines(StrEnum):
    """What to do with an invoice or opportunity whose lines the notification cannot carry."""

    REFUSE = "refuse"
    """Refuse it (422): the notification must send the lines."""
    SUMMARY = "summary"
    """Send one line for the total and mark the event ``platypusenrich: lines``."""


class ZuoraParameters(BaseModel):
    """Callout parameter names, per event field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_id: str = Field(default="InvoiceId", description="<Invoice.Id>; the event id.")
    invoice_number: str = Field(default="InvoiceNumber", description="<Invoice.InvoiceNumber>.")
    account_number: str = Field(
        default="AccountNumber", description="<Account.AccountNumber>; the subject."
    )
    crm_account_id: str = Field(default="AccountCrmId", description="<Account.CrmId>.")
    invoice_date: str = Field(default="InvoiceDate", description="<Invoice.InvoiceDate>.")
    due_date: str = Field(default="InvoiceDueDate", description="<Invoice.DueDate>.")
    currency: str = Field(default="Currency", description="<Account.Currency>.")
    amount: str = Field(default="InvoiceAmount", description="<Invoice.Amount>.")
    balance: str = Field(default="InvoiceBalance", description="<Invoice.Balance>.")
    tax_amount: str = Field(default="TaxAmount", description="<Invoice.TaxAmount> (summary line).")
    bill_to_email: str = Field(default="BillToEmail", description="<BillToContact.WorkEmail>.")
    lines: str = Field(default="InvoiceLines", description="JSON array of invoice lines.")
    posted_date: str = Field(
        default="PostedDate",
        description="<Invoice.PostedDate>: part of the event id, so a re-post is a new event.",
    )


class ZuoraCalloutSettings(SourceSettings):
    """A Zuora callout notification."""

    auth: list[AuthMethod] = Field(
        min_length=1,
        description=(
            "How the callout authenticates; every method listed must pass: "
            "{type: basic, username, password} and/or {type: header, name, value}."
        ),
    )
    parameters: ZuoraParameters = Field(
        default_factory=ZuoraParameters,
        description="The callout parameter each event field is read from.",
    )
    missing_lines: MissingLines = Field(
        default=MissingLines.REFUSE,
        description="Without InvoiceLines: refuse the event, or send one summary line.",
    )

    @field_validator("auth", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class ZuoraCalloutDecoder(Decoder):
    """Authenticates a Zuora callout and maps its parameters to an invoice-posted event."""

    settings_model = ZuoraCalloutSettings
    default_source = "/zuora/callout"
    media_types = ("application/json", "application/x-www-form-urlencoded")
    settings: ZuoraCalloutSettings

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        assert isinstance(settings, ZuoraCalloutSettings)
        # Resolved now, so a missing secret stops start-up rather than the first callout.
        self._secrets: dict[int, SecretStr] = {
            i: (m.password if m.type == "basic" else m.value).resolve()
            for i, m in enumerate(settings.auth)
        }

    def challenge(self) -> dict[str, str]:
        if any(m.type == "basic" for m in self.settings.auth):
            return {"WWW-Authenticate": 'Basic realm="platypus", charset="UTF-8"'}
        return {}

    def authenticate(self, request: WebhookRequest) -> None:
        check_auth(self.settings.auth, self._secrets, request.headers)

    def decode(self, request: WebhookRequest) -> Delivery:
        params = _parameters(request)
        names = self.settings.parameters

        def get(field: str) -> Any:
            value = params.get(getattr(names, field).lower())
            return None if value == "" else value

        invoice_id = get("invoice_id")
        posted = get("posted_date")
        data: dict[str, Any] = {
            "invoice_id": invoice_id,
            "invoice_number": get("invoice_number"),
            "account_number": get("account_number"),
            "crm_account_id": get("crm_account_id"),
            "invoice_date": _date(get("invoice_date")),
            "due_date": _date(get("due_date")),
            "currency": get("currency"),
            "amount": as_number(get("amount")),
            "balance": as_number(get("balance")),
            "bill_to_email": get("bill_to_email"),
        }
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": None
            if invoice_id is None
            else f"invoice.posted:{invoice_id}" + (f":{posted}" if posted else ""),
            "source": self.event_source,
            "type": "finance.invoice.posted.v1",
            "subject": data["account_number"],
        }
        lines = get("lines")
        if isinstance(lines, str):
            try:
                lines = load_json(lines)
            except json.JSONDecodeError as exc:
                raise MalformedPayloadError(f"{names.lines} is not a JSON array: {exc}") from None
        if lines is None and self.settings.missing_lines is MissingLines.SUMMARY:
            lines = [
                {
                    "charge_name": "Invoice total",
                    "amount": data["amount"],
                    "tax_amount": as_number(get("tax_amount") or 0),
                }
            ]
            event["platypusenrich"] = "lines"
        data["lines"] = [_line(line) for line in lines] if isinstance(lines, list) else lines
        event["data"] = data
        return Delivery(events=[event])


# Zuora's names for invoice item fields, accepted beside the schema's own.
_LINE_ALIASES = {"chargename": "charge_name", "chargeamount": "amount", "taxamount": "tax_amount"}


def _line(line: Any) -> Any:
    if not isinstance(line, dict):
        return line
    out: dict[str, Any] = {}
    for key, value in line.items():
        name = _LINE_ALIASES.get(str(key).lower(), str(key))
        out[name] = value if name == "charge_name" else as_number(value)
    return out


def _date(value: Any) -> Any:
    # Merge fields render dates as 2026-11-02 or as 2026-11-02T00:00:00; keep the date.
    if isinstance(value, str) and len(value) > 10 and value[10] in "T ":
        return value[:10]
    return value


def _parameters(request: WebhookRequest) -> dict[str, Any]:
    media = request.media_type
    if media in ("application/json", "text/json") or media.endswith("+json"):
        try:
            parsed = load_json(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedPayloadError(f"the body is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise MalformedPayloadError("the callout body is not a JSON object of parameters")
        return {str(key).lower(): value for key, value in parsed.items()}
    if media == "application/x-www-form-urlencoded":
        try:
            text = request.body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedPayloadError(f"the body is not form parameters: {exc}") from None
        return {key.lower(): value for key, value in pairs}
    raise MalformedPayloadError(
        f"unsupported content type {media or '(none)'!r}: a callout sends its parameters "
        "as application/json or application/x-www-form-urlencoded"
    )
