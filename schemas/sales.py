"""Sales events, as Salesforce emits them."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from platypus.schema import PersonalData, event_schema

from ._common import CurrencyCode, Money, NonEmpty


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


@event_schema("sales.opportunity.closed_won", version=1)
class OpportunityClosedWon(BaseModel):
    """A Salesforce opportunity moved to Closed Won, with its line items.

    ``subject`` is the opportunity id.
    """

    model_config = ConfigDict(extra="forbid")

    opportunity_id: Annotated[str, Field(pattern=r"^006[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]
    account_id: Annotated[str, Field(pattern=r"^001[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]
    account_name: NonEmpty
    amount: Money
    currency: CurrencyCode
    close_date: date
    owner_email: Annotated[str, PersonalData]
    billing_contact: Contact | None = None
    line_items: list[LineItem] = Field(min_length=1)
