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


class RatePlan(BaseModel):
    """A product rate plan a subscription subscribes to."""

    model_config = ConfigDict(extra="forbid")

    product_rate_plan_id: NonEmpty
    name: NonEmpty
    product_sku: str | None = None


@event_schema("finance.subscription.created", version=1)
class SubscriptionCreated(BaseModel):
    """A Zuora subscription was created. ``subject`` is the Zuora account number."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: NonEmpty
    subscription_number: NonEmpty
    account_number: NonEmpty
    crm_account_id: str | None = Field(default=None, description="CrmId of the account.")
    opportunity_id: str | None = Field(default=None, description="The Salesforce opportunity.")
    status: Literal["Active", "Pending Activation", "Pending Acceptance"] = "Active"
    term_type: Literal["TERMED", "EVERGREEN"]
    contract_effective_date: date
    term_start_date: date
    term_end_date: date | None = None
    auto_renew: bool = False
    currency: CurrencyCode
    contracted_mrr: Money
    sold_to_email: Annotated[str | None, PersonalData] = None
    rate_plans: list[RatePlan] = Field(min_length=1)


class PaymentApplication(BaseModel):
    """How much of a payment went to one invoice."""

    model_config = ConfigDict(extra="forbid")

    invoice_number: NonEmpty
    applied_amount: Money


@event_schema("finance.payment.received", version=1)
class PaymentReceived(BaseModel):
    """A Zuora payment was processed. ``subject`` is the Zuora account number."""

    model_config = ConfigDict(extra="forbid")

    payment_id: NonEmpty
    payment_number: NonEmpty
    account_number: NonEmpty
    crm_account_id: str | None = Field(default=None, description="CrmId of the account.")
    effective_date: date
    currency: CurrencyCode
    amount: Money
    payment_method_type: Literal[
        "CreditCard", "ACH", "BankTransfer", "Check", "WireTransfer", "PayPal", "Other"
    ]
    gateway_reference: str | None = Field(default=None, description="The gateway's transaction id.")
    account_balance: Money | None = Field(
        default=None, description="The account's balance after this payment."
    )
    payer_email: Annotated[str | None, PersonalData] = None
    invoices: list[PaymentApplication] = Field(default_factory=list)


class NetSuiteRef(BaseModel):
    """A NetSuite record reference: its internal id and, when set, its external id."""

    model_config = ConfigDict(extra="forbid")

    internal_id: NonEmpty
    external_id: str | None = None


class NetSuiteLine(BaseModel):
    """One line of a NetSuite transaction."""

    model_config = ConfigDict(extra="forbid")

    item: NetSuiteRef
    quantity: Decimal = Field(gt=0)
    rate: Money
    amount: Money


@event_schema("finance.netsuite.customer.synced", version=1)
class NetSuiteCustomerSynced(BaseModel):
    """A NetSuite customer was created or updated from a CRM account.

    The record the quote-to-cash flows upsert by ``externalId`` (the Salesforce
    account id). ``subject`` is the external id.
    """

    model_config = ConfigDict(extra="forbid")

    customer: NetSuiteRef
    company_name: NonEmpty
    email: Annotated[str | None, PersonalData] = None
    subsidiary: NetSuiteRef | None = None
    currency: CurrencyCode | None = None


@event_schema("finance.netsuite.sales_order.created", version=1)
class NetSuiteSalesOrderCreated(BaseModel):
    """A NetSuite sales order was created from a closed-won opportunity.

    Upserted by ``externalId`` (the opportunity id). ``subject`` is the external id.
    """

    model_config = ConfigDict(extra="forbid")

    sales_order: NetSuiteRef
    customer: NetSuiteRef
    tran_date: date
    currency: CurrencyCode
    total: Money
    lines: list[NetSuiteLine] = Field(min_length=1)


@event_schema("finance.netsuite.invoice.created", version=1)
class NetSuiteInvoiceCreated(BaseModel):
    """A NetSuite invoice was created from a Zuora invoice.

    Upserted by ``externalId`` (the Zuora invoice number). ``subject`` is the
    external id.
    """

    model_config = ConfigDict(extra="forbid")

    invoice: NetSuiteRef
    customer: NetSuiteRef
    created_from: NetSuiteRef | None = None
    tran_date: date
    due_date: date | None = None
    currency: CurrencyCode
    total: Money
    lines: list[NetSuiteLine] = Field(min_length=1)


class CoupaSupplier(BaseModel):
    """The supplier of a Coupa invoice."""

    model_config = ConfigDict(extra="forbid")

    id: NonEmpty = Field(description="Coupa's id of the supplier.")
    number: str | None = Field(
        default=None, description="The supplier number (often the ERP's vendor id)."
    )
    name: NonEmpty


class CoupaInvoiceLine(BaseModel):
    """One line of a Coupa invoice."""

    model_config = ConfigDict(extra="forbid")

    line_num: int | None = None
    description: NonEmpty
    amount: Money = Field(description="The line's total, without tax.")
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    account_code: str | None = Field(default=None, description="The billing account's code.")
    po_number: str | None = Field(default=None, description="The purchase order it bills.")


@event_schema("finance.coupa.invoice.approved", version=1)
class CoupaInvoiceApproved(BaseModel):
    """A supplier invoice was approved in Coupa. ``subject`` is the Coupa invoice id.

    ``invoice_number`` is the supplier's, unique only per supplier; ``invoice_id``
    is Coupa's and is what makes delivering it again idempotent.
    """

    model_config = ConfigDict(extra="forbid")

    invoice_id: NonEmpty
    invoice_number: NonEmpty
    document_type: Literal["Invoice", "Credit Note"] = "Invoice"
    supplier: CoupaSupplier
    invoice_date: date
    due_date: date | None = None
    currency: CurrencyCode
    total: Money = Field(description="The total with taxes.")
    tax_amount: Money = Field(default=Decimal(0))
    payment_term: str | None = None
    requester_email: Annotated[str | None, PersonalData] = None
    lines: list[CoupaInvoiceLine] = Field(min_length=1)
