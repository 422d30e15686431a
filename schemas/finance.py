"""Finance events, as Zuora and NetSuite emit them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from platypus.schema import PersonalData, event_schema

from ._common import CurrencyCode, Money, NonEmpty


class InvoiceLine(BaseModel):
    """One charge on an invoice."""

    model_config = ConfigDict(extra="forbid")

    charge_name: NonEmpty
    amount: Money
    tax_amount: Money = Field(default=Decimal(0))


@event_schema("finance.invoice.posted", version=1)
class InvoicePosted(BaseModel):
    """A Zuora invoice was posted. ``subject`` is the Zuora account number."""

    model_config = ConfigDict(extra="forbid")

    invoice_id: NonEmpty
    invoice_number: NonEmpty
    account_number: NonEmpty
    crm_account_id: str | None = None
    invoice_date: date
    due_date: date
    currency: CurrencyCode
    amount: Money
    balance: Money
    status: Literal["Posted"] = "Posted"
    bill_to_email: Annotated[str | None, PersonalData] = None
    lines: list[InvoiceLine] = Field(min_length=1)
