"""Salesforce Outbound Messages: SOAP ``notifications`` -> ``sales.opportunity.closed_won.v1``.

An outbound message is a SOAP 1.1 envelope with the org id, the action id, and up
to 100 ``Notification`` elements, each with its own ``Id`` and an ``sObject``
carrying the fields chosen on the outbound message. Salesforce resends the whole
message until it is answered with ``<Ack>true</Ack>``; anything else (a SOAP
fault, a timeout) makes it retry for up to 24 hours.

Every notification with ``StageName`` = ``stage`` becomes one event whose id is
the notification ``Id`` (stable across Salesforce's resends, so a resend is
de-duplicated by the log); other stages are ignored and acknowledged. The batch is
all or nothing: one invalid notification faults the message and nothing of it is
appended, so it is retried whole once fixed.

An outbound message carries only fields of the Opportunity itself, so the account
name and owner e-mail must be formula fields on the Opportunity, and line items a
long text field holding a JSON array (kept by a Salesforce Flow); ``fields``
names them. Without line items, ``missing_lines`` refuses the event (default) or
sends one summary line and marks the event ``platypusenrich: lines``.

Faults are answered as SOAP 1.1 requires (section 6.2): HTTP 500 with a
``soapenv:Fault`` whose ``faultcode`` is ``soapenv:Client``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from platypus.safejson import UnsafeJsonError
from platypus.safejson import loads as load_json
from platypus.sources.auth import same
from platypus.sources.decoder import (
    Decoder,
    Delivery,
    MalformedPayloadError,
    Outcome,
    Reply,
    SourceSettings,
    UnauthorizedError,
    UnmappableError,
    WebhookRequest,
    as_number,
)
from platypus.sources.zuora import MissingLines

__all__ = ["OpportunityFields", "SalesforceOutboundDecoder", "SalesforceOutboundSettings"]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
).encode()

# No DTDs, no entities, no network: an outbound message never needs them.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


class OpportunityFields(BaseModel):
    """Opportunity field API names, per event field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_name: str = Field(default="Account_Name__c", description="Formula field: Account.Name.")
    owner_email: str = Field(default="Owner_Email__c", description="Formula field: Owner.Email.")
    currency: str = Field(
        default="CurrencyIsoCode", description="Currency (multi-currency orgs only)."
    )
    line_items: str = Field(
        default="Line_Items_JSON__c",
        description="Long text field: a JSON array of {product_code, quantity, unit_price, ...}.",
    )


class SalesforceOutboundSettings(SourceSettings):
    """A workflow or flow outbound message on Opportunity."""

    organization_id: str = Field(
        min_length=15, max_length=18, description="The org's id (00D...); others are refused."
    )
    stage: str = Field(default="Closed Won", description="StageName that makes an event.")
    default_currency: str | None = Field(
        default=None, description="Currency when the message has none (single-currency orgs)."
    )
    fields: OpportunityFields = Field(
        default_factory=OpportunityFields,
        description="The Opportunity field (formula or JSON field) each event field comes from.",
    )
    missing_lines: MissingLines = Field(
        default=MissingLines.REFUSE,
        description="Without line items: refuse the event, or send one summary line.",
    )
    summary_product_code: str = Field(
        default="OPPORTUNITY", description="product_code of the summary line."
    )


class SalesforceOutboundDecoder(Decoder):
    """Checks the org id, maps Closed Won opportunities, answers in SOAP."""

    settings_model = SalesforceOutboundSettings
    default_source = "/salesforce/outbound"
    media_types = ("text/xml",)
    settings: SalesforceOutboundSettings

    def authenticate(self, request: WebhookRequest) -> None:
        # Outbound messages carry no credentials; the org id is the check, so it is
        # read here, before anything else of the body is used.
        notifications = _notifications(request.body)
        org = notifications.findtext(f"{{{OUTBOUND}}}OrganizationId") or ""
        # 15- and 18-character ids name the same org; the first 15 are case-sensitive.
        if not same(org.strip()[:15], self.settings.organization_id[:15]):
            raise UnauthorizedError("OrganizationId missing or not the configured org")

    def decode(self, request: WebhookRequest) -> Delivery:
        notifications = _notifications(request.body)
        delivery = Delivery()
        found = notifications.findall(f"{{{OUTBOUND}}}Notification")
        if not found:
            raise MalformedPayloadError("the notifications element has no Notification")
        for index, notification in enumerate(found):
            notification_id = (notification.findtext(f"{{{OUTBOUND}}}Id") or "").strip()
            sobject = notification.find(f"{{{OUTBOUND}}}sObject")
            if sobject is None:
                raise MalformedPayloadError(f"Notification {index} has no sObject")
            kind = sobject.get(f"{{{XSI}}}type", "")
            if kind.rpartition(":")[2] != "Opportunity":
                delivery.ignored.append(
                    f"notification {notification_id}: a {kind}, not an Opportunity"
                )
                continue
            fields = {etree.QName(child).localname: _value(child) for child in sobject}
            stage = fields.get("StageName")
            if stage is None:
                # Without the stage a notification cannot be told apart from any other change.
                raise UnmappableError(
                    f"notification {notification_id}: StageName is missing; "
                    "add it to the outbound message's fields"
                )
            if stage != self.settings.stage:
                delivery.ignored.append(f"notification {notification_id}: stage {stage!r}")
                continue
            delivery.events.append(self._event(notification_id or None, fields))
        return delivery

    def _event(self, notification_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        names = self.settings.fields
        currency = fields.get(names.currency) or self.settings.default_currency
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": notification_id,
            "source": self.event_source,
            "type": "sales.opportunity.closed_won.v1",
            "subject": fields.get("Id"),
        }
        lines: Any = fields.get(names.line_items)
        if isinstance(lines, str):
            try:
                lines = load_json(lines)
            except UnsafeJsonError as exc:
                raise MalformedPayloadError(f"{names.line_items}: {exc.msg}") from None
            except json.JSONDecodeError:
                lines = [lines]  # kept as is: validation says it is not a line item
        if isinstance(lines, list):
            lines = [
                {"currency": currency, **line} if isinstance(line, dict) else line for line in lines
            ]
        elif lines is None and self.settings.missing_lines is MissingLines.SUMMARY:
            lines = [
                {
                    "product_code": self.settings.summary_product_code,
                    "description": fields.get("Name") or "",
                    "quantity": 1,
                    "unit_price": as_number(fields.get("Amount")),
                    "currency": currency,
                }
            ]
            event["platypusenrich"] = "lines"
        event["data"] = {
            "opportunity_id": fields.get("Id"),
            "account_id": fields.get("AccountId"),
            "account_name": fields.get(names.account_name),
            "amount": as_number(fields.get("Amount")),
            "currency": currency,
            "close_date": fields.get("CloseDate"),
            "owner_email": fields.get(names.owner_email),
            "line_items": lines,
        }
        return event

    def openapi_operation(self, error: Mapping[str, Any]) -> dict[str, Any]:
        operation = super().openapi_operation(error)
        xml = {"text/xml": {"schema": {"type": "string"}}}
        operation["responses"] = {
            "200": {"description": "SOAP acknowledgement: <Ack>true</Ack>.", "content": xml},
            "500": {
                "description": (
                    "SOAP fault (SOAP 1.1 section 6.2): wrong org id, unreadable message, "
                    "invalid event, replayed delivery or oversized body; Salesforce retries."
                ),
                "content": xml,
            },
        }
        return operation

    def reply(self, outcome: Outcome, status: int, body: Any) -> Reply:
        if outcome == "accepted":
            return Reply(200, _ACK, media_type="text/xml; charset=utf-8")
        message = "unauthorized" if outcome == "unauthorized" else str(body.get("error", ""))
        detail = ""
        if outcome == "refused":
            detail = (
                f'<detail><platypus status="{status}" rejection_id="'
                f'{escape(str(body.get("rejection_id", "")))}"/></detail>'
            )
        fault = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
            f"<faultcode>soapenv:Client</faultcode><faultstring>{escape(message)}</faultstring>"
            f"{detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        )
        # SOAP 1.1, section 6.2: a fault goes with HTTP 500.
        return Reply(500, fault.encode(), media_type="text/xml; charset=utf-8")


def _value(element: Any) -> str | None:
    if element.get(f"{{{XSI}}}nil") == "true":
        return None
    text: str | None = element.text
    return None if text is None else text.strip()


def _notifications(body: bytes) -> Any:
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedPayloadError(f"the body is not XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedPayloadError("a document type declaration is not accepted")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise MalformedPayloadError("the body is not a SOAP 1.1 Envelope")
    notifications = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notifications")
    if notifications is None:
        raise MalformedPayloadError("the SOAP Body has no outbound-message notifications element")
    return notifications
