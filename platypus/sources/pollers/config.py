"""The ``pollers:`` section of ``platypus.yaml``: what to poll, how often, and into which events.

::

    pollers:
      won_deals:
        kind: salesforce              # salesforce | workday | netsuite | okta | coupa
        connection: crm               # a connection under `connections:`
        interval: 1m                  # time between polls
        overlap: 5m                   # each poll re-reads this far behind the watermark
        page_size: 200
        start_from: 2024-06-01T00:00:00Z   # first poll only; default: the moment it starts
        query: {sobject: Opportunity, where: "StageName = 'Closed Won'"}
        mapping: salesforce_opportunity_closed_won   # a preset, or a mapping of your own

``query`` depends on the kind (`SalesforceQuery`, `WorkdayQuery`, `NetSuiteQuery`);
``mapping`` is a preset name or a `MappingSpec` (the JMESPath mappings of webhook
sources), evaluated with ``item`` bound to one record. docs/sources.md describes
each kind.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from platypus.retry import Duration

__all__ = ["NetSuiteQuery", "PollerKind", "PollerSpec", "SalesforceQuery", "WorkdayQuery"]

_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")


class PollerKind(StrEnum):
    """Which vendor API a poller reads."""

    SALESFORCE = "salesforce"
    """SOQL through a ``salesforce`` connection, by ``SystemModstamp``."""
    WORKDAY = "workday"
    """``Get_Workers`` through a ``workday`` connection, by transaction-log updated range."""
    NETSUITE = "netsuite"
    """``search_transactions`` through a ``netsuite`` connection, by ``lastModifiedDate``."""
    OKTA = "okta"
    """Staged users whose start date has come, through an ``okta`` connection."""
    COUPA = "coupa"
    """Approved invoices by ``updated-at``, through a ``coupa`` connection."""


class PollerSpec(BaseModel):
    """One poller: a connection to read, a schedule, a query and a mapping to events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PollerKind = Field(
        description="The vendor API: salesforce, workday, netsuite, okta or coupa."
    )
    connection: str = Field(min_length=1, description="Connection (under connections:) to read.")
    interval: Duration = Field(default=60.0, gt=0, description="Time between polls (e.g. 1m).")
    overlap: Duration = Field(
        default=300.0,
        ge=0,
        description=(
            "How far behind the watermark each poll starts again, to catch records committed "
            "late with an earlier modification time; repeats are de-duplicated."
        ),
    )
    page_size: int = Field(
        default=200, ge=1, le=2000, description="Records per request (NetSuite: at least 5)."
    )
    start_from: AwareDatetime | None = Field(
        default=None,
        description="Where the first poll starts (no checkpoint yet); default: when it starts.",
    )
    event_source: str | None = Field(
        default=None,
        min_length=1,
        description="CloudEvents source of the events; default /<kind>/poller/<name>.",
    )
    query: dict[str, Any] = Field(
        default_factory=dict, description="What to read; the settings depend on the kind."
    )
    mapping: str | dict[str, Any] | None = Field(
        default=None,
        description="A preset name or a mapping (type, when, id, subject, data); "
        "default: the kind's preset.",
    )
    max_backoff: Duration = Field(
        default=300.0, gt=0, description="Longest wait after a retryable error (rate limits)."
    )


class SalesforceQuery(BaseModel):
    """``query`` of a ``salesforce`` poller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sobject: str = Field(
        default="Opportunity",
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="The Salesforce object to read, e.g. Opportunity or Account.",
    )
    fields: list[str] = Field(
        default_factory=lambda: [
            "Name",
            "StageName",
            "AccountId",
            "Account.Name",
            "Amount",
            "CurrencyIsoCode",
            "CloseDate",
            "Owner.Email",
            "Line_Items_JSON__c",
        ],
        description="Fields to select (Id and SystemModstamp always are); dotted for parents.",
    )
    where: str | None = Field(
        default=None,
        description="An extra SOQL condition, e.g. StageName = 'Closed Won' (it is ANDed).",
    )
    json_fields: list[str] = Field(
        default_factory=lambda: ["Line_Items_JSON__c"],
        description="Text fields holding JSON (parsed before mapping).",
    )

    @field_validator("fields")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _FIELD.match(name):
                raise ValueError(f"{name!r} is not a field name")
        return value


class WorkdayQuery(BaseModel):
    """``query`` of a ``workday`` poller.

    The adapter's compact worker has no supervisory organization or business site
    yet, so the department and location a hire event needs are given here (or by a
    mapping of your own); a worker without them is refused and recorded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    department: str | None = Field(
        default=None, min_length=1, description="position.department of every worker."
    )
    location: str | None = Field(
        default=None, min_length=1, description="position.location of every worker."
    )


class NetSuiteQuery(BaseModel):
    """``query`` of a ``netsuite`` poller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_type: str = Field(
        default="invoice",
        description="Transaction type: invoice, salesOrder, creditMemo, cashSale, customerPayment.",
    )
