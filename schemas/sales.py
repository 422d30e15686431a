"""Sales events, as Salesforce emits them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from platypus.schema import PersonalData, event_schema

from ._common import CurrencyCode, Money, NonEmpty

# Salesforce record ids: a three-character key prefix, then 12 characters (15 in
# all), optionally followed by the 3-character case-safe suffix (18 in all).
AccountId = Annotated[str, Field(pattern=r"^001[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]
OpportunityId = Annotated[str, Field(pattern=r"^006[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]
QuoteId = Annotated[str, Field(pattern=r"^0Q0[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]


class Contact(BaseModel):
    """A person at the customer."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, PersonalData]
    email: Annotated[str, PersonalData]
    phone: Annotated[str | None, PersonalData] = None


class LineItem(BaseModel):
    """One product line of an opportunity."""

    model_config = ConfigDict(extra="forbid")

    product_code: NonEmpty
    description: str = ""
    quantity: int = Field(gt=0)
    unit_price: Money
    currency: CurrencyCode


class Address(BaseModel):
    """A postal address of a company (not of a person: not personal data)."""

    model_config = ConfigDict(extra="forbid")

    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")]


@event_schema("sales.opportunity.closed_won", version=1)
class OpportunityClosedWon(BaseModel):
    """A Salesforce opportunity moved to Closed Won, with its line items.

    ``subject`` is the opportunity id.
    """

    model_config = ConfigDict(extra="forbid")

    opportunity_id: OpportunityId
    account_id: AccountId
    account_name: NonEmpty
    amount: Money
    currency: CurrencyCode
    close_date: date
    owner_email: Annotated[str, PersonalData]
    billing_contact: Contact | None = None
    line_items: list[LineItem] = Field(min_length=1)


@event_schema("sales.account.upserted", version=1)
class AccountUpserted(BaseModel):
    """A Salesforce account was created or changed. ``subject`` is the account id."""

    model_config = ConfigDict(extra="forbid")

    account_id: AccountId
    account_name: NonEmpty
    account_number: str | None = Field(default=None, description="AccountNumber, if used.")
    type: Literal["Prospect", "Customer", "Partner", "Other"] = "Customer"
    industry: str | None = None
    website: str | None = None
    annual_revenue: Money | None = None
    number_of_employees: int | None = Field(default=None, ge=0)
    billing_address: Address | None = None
    owner_email: Annotated[str, PersonalData]
    primary_contact: Contact | None = None
    last_modified_date: date


class QuoteLine(BaseModel):
    """One line of an accepted quote."""

    model_config = ConfigDict(extra="forbid")

    product_code: NonEmpty
    description: str = ""
    quantity: int = Field(gt=0)
    unit_price: Money
    discount_percent: Decimal = Field(default=Decimal(0), ge=0, le=100)
    total_price: Money


@event_schema("sales.quote.accepted", version=1)
class QuoteAccepted(BaseModel):
    """A customer accepted (signed) a Salesforce quote. ``subject`` is the quote id."""

    model_config = ConfigDict(extra="forbid")

    quote_id: QuoteId
    quote_number: NonEmpty
    opportunity_id: OpportunityId
    account_id: AccountId
    accepted_date: date
    expiration_date: date | None = None
    currency: CurrencyCode
    subtotal: Money
    discount: Money = Field(default=Decimal(0))
    total: Money
    term_months: int = Field(default=12, ge=1, le=120, description="Subscription term.")
    accepted_by: Contact
    line_items: list[QuoteLine] = Field(min_length=1)
