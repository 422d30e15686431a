"""What each vendor sends: payload builders and signers for the webhook tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from xml.sax.saxutils import escape

from platypus.records import EVENTS_TOPIC
from platypus.runtime.embedded import Platypus

ORG_ID = "00D000000000001AAA"
ZUORA_PASSWORD = "callout-password"
ZUORA_TOKEN = "callout-token"
GREENHOUSE_SECRET = "greenhouse-secret"
BAMBOO_SECRET = "bamboo-secret"
GENERIC_SECRET = "generic-secret"

SOURCES: dict[str, Any] = {
    "zuora": {
        "decoder": "zuora_callout",
        "auth": {
            "type": "basic",
            "username": "zuora",
            "password": {"env": "ZUORA_CALLOUT_PASSWORD"},
        },
    },
    "zuora-token": {
        "decoder": "zuora_callout",
        "event_source": "/zuora/callout-token",
        "auth": [{"type": "header", "name": "X-Callout-Token", "value": {"env": "ZUORA_TOKEN"}}],
        "missing_lines": "summary",
    },
    "salesforce": {"decoder": "salesforce_outbound", "organization_id": ORG_ID},
    "greenhouse": {
        "decoder": "hmac",
        "secret": {"env": "GREENHOUSE_SECRET"},
        "signature_header": "Signature",
        "algorithm": "sha256",
        "format": "sha256 {hex}",
    },
    "bamboohr": {
        "decoder": "hmac",
        "secret": {"env": "BAMBOO_SECRET"},
        "signature_header": "X-BambooHR-Signature",
        "timestamp_header": "X-BambooHR-Timestamp",
        "signed": "{body}{timestamp}",
        "max_age": "5m",
    },
    # Greenhouse's mapping, with a delivery-id header, for the replay rules.
    "hooks": {
        "decoder": "hmac",
        "secret": {"env": "GENERIC_SECRET"},
        "format": "{base64}",
        "delivery_id_header": "X-Delivery-Id",
        "mapping": "greenhouse",
    },
}

ENVIRONMENT = {
    "ZUORA_CALLOUT_PASSWORD": ZUORA_PASSWORD,
    "ZUORA_TOKEN": ZUORA_TOKEN,
    "GREENHOUSE_SECRET": GREENHOUSE_SECRET,
    "BAMBOO_SECRET": BAMBOO_SECRET,
    "GENERIC_SECRET": GENERIC_SECRET,
}


def basic(user: str = "zuora", password: str = ZUORA_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def invoice_posted(**overrides: Any) -> dict[str, Any]:
    """The parameters of an Invoice Posted callout, as configured in docs/sources.md."""
    params: dict[str, Any] = {
        "InvoiceId": "8a8aa0b27e2c4f7a017e2d1c2b3a0042",
        "InvoiceNumber": "INV00000123",
        "AccountNumber": "A00000042",
        "AccountCrmId": "001000000000000042",
        "InvoiceDate": "2026-11-02",
        "InvoiceDueDate": "2026-12-02",
        "Currency": "EUR",
        "InvoiceAmount": "1200.00",
        "InvoiceBalance": "1200.00",
        "TaxAmount": "200.00",
        "BillToEmail": "billing@example.com",
        "PostedDate": "2026-11-02T10:00:00+01:00",
        "InvoiceLines": json.dumps(
            [
                {
                    "ChargeName": "Platform subscription",
                    "ChargeAmount": "1000.00",
                    "TaxAmount": "200.00",
                }
            ]
        ),
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def outbound_message(*notifications: tuple[str, dict[str, str | None]], org: str = ORG_ID) -> bytes:
    """A Salesforce outbound message with (notification id, Opportunity fields) each."""
    parts = []
    for notification_id, fields in notifications:
        values = "".join(
            f'<sf:{name} xsi:nil="true"/>'
            if value is None
            else f"<sf:{name}>{escape(value)}</sf:{name}>"
            for name, value in fields.items()
        )
        parts.append(
            f"<Notification><Id>{notification_id}</Id>"
            '<sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{values}</sObject></Notification>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId>"
        "<ActionId>04k000000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/00D000000000001</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/00D000000000001</PartnerUrl>"
        + "".join(parts)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def opportunity(n: int = 1, **overrides: str | None) -> dict[str, str | None]:
    fields: dict[str, str | None] = {
        "Id": f"006{n:015d}",
        "AccountId": f"001{n:015d}",
        "Account_Name__c": "Acme Pty Ltd",
        "Amount": "5000.0",
        "CurrencyIsoCode": "EUR",
        "CloseDate": "2026-11-02",
        "StageName": "Closed Won",
        "Owner_Email__c": "owner.person@example.com",
        "Line_Items_JSON__c": json.dumps(
            [{"product_code": "PLAT-ENT", "quantity": 2, "unit_price": 2500}]
        ),
    }
    fields.update(overrides)
    return fields


def hire_candidate(application_id: int = 46194062, **offer: Any) -> dict[str, Any]:
    """Greenhouse's candidate-hired web hook (action hire_candidate), trimmed."""
    return {
        "action": "hire_candidate",
        "payload": {
            "application": {
                "id": application_id,
                "status": "hired",
                "candidate": {
                    "id": 40,
                    "first_name": "Ada",
                    "last_name": "Quillfeather",
                    "email_addresses": [
                        {"value": "ada@home.example.com", "type": "personal"},
                        {"value": "ada.quillfeather@example.com", "type": "work"},
                    ],
                },
                "jobs": [
                    {
                        "id": 9,
                        "name": "Analyst",
                        "departments": [{"id": 1, "name": "Finance"}],
                        "offices": [
                            {"id": 2, "name": "Sydney", "location": {"name": "Sydney, NSW"}}
                        ],
                    }
                ],
                "offer": {"id": 7, "starts_at": "2026-12-01", "custom_fields": {}, **offer},
            }
        },
    }


def employees(*items: dict[str, Any]) -> dict[str, Any]:
    """BambooHR's employee webhook body."""
    return {"employees": list(items)}


def bamboo_employee(employee_id: str = "123", action: str = "Created") -> dict[str, Any]:
    return {
        "id": employee_id,
        "action": action,
        "timestamp": "2026-11-02T09:00:00+00:00",
        "changedFields": ["First Name"],
        "fields": {
            "Employee #": f"E-{employee_id}",
            "First Name": "Grace",
            "Last Name": "Tallowby",
            "Work Email": "grace.tallowby@example.com",
            "Hire Date": "2026-12-01",
            "Job Title": "Engineer",
            "Department": "Platform",
            "Location": "Melbourne",
        },
    }


def greenhouse_signed(body: bytes, secret: str = GREENHOUSE_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Signature": f"sha256 {digest}", "content-type": "application/json"}


def bamboo_signed(
    body: bytes, timestamp: str | None = None, secret: str = BAMBOO_SECRET
) -> dict[str, str]:
    stamp = timestamp if timestamp is not None else str(int(time.time()))
    digest = hmac.new(secret.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return {
        "X-BambooHR-Signature": digest,
        "X-BambooHR-Timestamp": stamp,
        "content-type": "application/json",
    }


def generic_signed(body: bytes, delivery_id: str, secret: str = GENERIC_SECRET) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"Signature": digest, "X-Delivery-Id": delivery_id, "content-type": "application/json"}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def events_in_log(app: Platypus) -> list[dict[str, Any]]:
    """Every event appended to the log, parsed."""
    return [json.loads(record.value) for record in app.log.read(EVENTS_TOPIC)]
