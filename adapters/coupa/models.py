"""Settings of a ``coupa`` connection, the typed inputs of its actions and what each returns.

Inputs use Coupa's own JSON names (``invoice-number``, ``po-method``,
``payment-term``), as in Coupa's Core API reference, so a flow's mapping reads
like the request it becomes; snake_case spellings are accepted too. Results are
compact records in snake_case, the same for every Coupa instance.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from platypus.retry import Duration
from platypus.secrets import SecretRef
from platypus.vendorhttp import blank_is_unset, https_root

__all__ = [
    "DEFAULT_SCOPES",
    "CoupaSettings",
    "FindInvoiceInput",
    "FindInvoiceResult",
    "FindPurchaseOrderInput",
    "FindPurchaseOrderResult",
    "FindSupplierInput",
    "FindSupplierResult",
    "GetInvoiceInput",
    "GetInvoiceResult",
    "Invoice",
    "InvoiceLine",
    "MarkInvoiceExportedInput",
    "MarkInvoiceExportedResult",
    "SearchInvoicesInput",
    "SearchInvoicesResult",
    "SupplierRef",
    "UpsertSupplierInput",
    "UpsertSupplierResult",
]

DEFAULT_SCOPES = (
    "core.common.read",
    "core.invoice.read",
    "core.invoice.write",
    "core.purchase_order.read",
    "core.supplier.read",
    "core.supplier.write",
)
PAGE_SIZE = 50
"""Coupa answers a query with at most 50 records."""


class CoupaSettings(BaseModel):
    """Settings of a ``coupa`` connection: an OAuth 2.0 / OIDC client of one Coupa instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        description="The instance, such as https://acme.coupahost.com (HTTPS, no path)."
    )
    client_id: SecretRef = Field(
        description="Identifier of the OAuth2/OpenID Connect client (client credentials)."
    )
    client_secret: SecretRef = Field(description="Secret of that client.")
    scopes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        min_length=1,
        description="Scopes to request (service.object.right); each must be on the client.",
    )
    timeout: Duration = Field(default=60.0, gt=0, description="Timeout of one HTTP request.")
    token_refresh_margin: Duration = Field(
        default=4 * 3600.0,
        description="Fetch a new token this long before it expires (Coupa's last 24 hours; "
        "Coupa advises renewing after 20).",
    )
    token_warmup: Duration = Field(
        default=5.0,
        description="Wait this long after fetching a token before using it, as Coupa advises.",
    )
    max_connections: int = Field(
        default=10, ge=1, description="Most connections open to Coupa at once."
    )
    ca_bundle: Path | None = Field(
        default=None, description="CA certificates (PEM) that verify Coupa's TLS certificate."
    )
    proxy: str | None = Field(default=None, description="HTTP(S) proxy URL for every request.")

    _blank_is_unset = field_validator("ca_bundle", "proxy", mode="before")(blank_is_unset)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        # Coupa serves its API over HTTPS only, under /api of the instance's root.
        return https_root(value, "https://acme.coupahost.com")

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: list[str]) -> list[str]:
        wrong = [scope for scope in value if not scope or " " in scope or "," in scope]
        if wrong:
            raise ValueError(f"a scope is one word, such as core.invoice.read: {wrong!r}")
        return value


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _Input(BaseModel):
    """Coupa's hyphenated names on the wire; snake_case accepted; unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=_kebab, populate_by_name=True
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Lookup(_Input):
    """A lookup by exactly one of the fields given."""

    @model_validator(mode="after")
    def _exactly_one(self) -> _Lookup:
        given = [name for name, value in self if value is not None]
        if len(given) != 1:
            names = ", ".join(_kebab(n) for n in type(self).model_fields)
            raise ValueError(f"look up by exactly one of {names}")
        return self


class CustomField(_Input):
    """A custom field of the record and the value it holds (an external reference, say)."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_-]*$", description="The custom field's API name (cf-...)."
    )
    value: str = Field(min_length=1, description="The value to match exactly.")


class FindSupplierInput(_Lookup):
    """Input of ``find_supplier``: by Coupa id, supplier number, exact name or custom field."""

    id: str | None = Field(default=None, min_length=1, description="Coupa's id.")
    number: str | None = Field(default=None, min_length=1, description="Supplier number.")
    name: str | None = Field(default=None, min_length=1, description="Exact supplier name.")
    custom_field: CustomField | None = Field(
        default=None, description="A custom field holding an external reference."
    )


class Contact(_Input):
    """The primary contact of a supplier."""

    email: str | None = None
    name_given: str | None = None
    name_family: str | None = None


class Address(_Input):
    """The primary address of a supplier."""

    street1: str | None = None
    street2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: dict[str, str] | None = Field(default=None, description='E.g. {"code": "US"}.')


class UpsertSupplierInput(_Input):
    """Input of ``upsert_supplier``: a supplier found by its number, created or updated."""

    number: str = Field(min_length=1, description="Supplier number: the upsert key.")
    name: str = Field(min_length=1, max_length=100, description="Supplier name (unique).")
    display_name: str | None = None
    status: Literal["active", "inactive", "draft"] | None = None
    po_method: Literal["cxml", "xml", "email", "prompt", "mark_as_sent", "buy_online"] | None = None
    po_email: str | None = None
    invoice_matching_level: Literal["2-way", "3-way", "3-way-direct", "none"] | None = None
    payment_method: (
        Literal["invoice", "pcard", "invoice_only", "pcard_only", "virtual_card"] | None
    ) = None
    payment_term: dict[str, str] | None = Field(
        default=None, description='E.g. {"code": "Net 30"}.'
    )
    tax_id: str | None = None
    account_number: str | None = None
    primary_contact: Contact | None = None
    primary_address: Address | None = None
    custom_fields: dict[str, Any] | None = Field(
        default=None, description="Custom fields by API name."
    )


class FindPurchaseOrderInput(_Lookup):
    """Input of ``find_purchase_order``: by Coupa id or PO number."""

    id: str | None = Field(default=None, min_length=1, description="Coupa's id.")
    po_number: str | None = Field(default=None, min_length=1, description="The PO number.")


class FindInvoiceInput(_Input):
    """Input of ``find_invoice``: by Coupa id, or by invoice number and supplier, or custom field.

    An invoice number is the supplier's, so it is unique only per supplier.
    """

    id: str | None = Field(default=None, min_length=1, description="Coupa's id.")
    invoice_number: str | None = Field(default=None, min_length=1)
    supplier_number: str | None = Field(
        default=None, min_length=1, description="With invoice-number: the supplier's number."
    )
    custom_field: CustomField | None = None

    @model_validator(mode="after")
    def _one_way(self) -> FindInvoiceInput:
        ways = [
            self.id is not None,
            self.invoice_number is not None,
            self.custom_field is not None,
        ]
        if sum(ways) != 1:
            raise ValueError(
                "look up by id, by invoice-number (and supplier-number), or custom-field"
            )
        if self.supplier_number is not None and self.invoice_number is None:
            raise ValueError("supplier-number goes with invoice-number")
        return self


class GetInvoiceInput(_Input):
    """Input of ``get_invoice``."""

    id: str = Field(min_length=1, description="Coupa's id of the invoice.")


class MarkInvoiceExportedInput(GetInvoiceInput):
    """Input of ``mark_invoice_exported``."""


class SearchInvoicesInput(_Input):
    """Input of ``search_invoices``: one page of invoices, oldest id first."""

    status: list[str] = Field(default_factory=lambda: ["approved"], min_length=1)
    exported: bool | None = Field(
        default=None, description="Only invoices (not) exported yet; null: both."
    )
    updated_from: AwareDatetime | None = Field(default=None, description="updated-at >= this.")
    updated_through: AwareDatetime | None = Field(default=None, description="updated-at <= this.")
    after_id: int | None = Field(default=None, ge=0, description="Only ids above this (paging).")


# -- results -----------------------------------------------------------------


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SupplierRef(_Result):
    """The supplier of a document."""

    id: str
    number: str | None = None
    name: str | None = None


class InvoiceLine(_Result):
    """One line of an invoice."""

    line_num: int | None = None
    description: str | None = None
    total: str | None = Field(default=None, description="The line's amount (a decimal string).")
    quantity: str | None = None
    price: str | None = None
    tax_amount: str | None = None
    account_code: str | None = Field(default=None, description="The billing account's code.")
    po_number: str | None = None
    order_line_id: str | None = None


class Invoice(_Result):
    """An invoice, compact: what integrations to an ERP read from it."""

    id: str
    invoice_number: str
    status: str
    document_type: str = "Invoice"
    invoice_date: str | None = Field(default=None, description="YYYY-MM-DD, as Coupa dated it.")
    net_due_date: str | None = None
    currency: str | None = None
    total: str | None = Field(default=None, description="Total with taxes (a decimal string).")
    tax_amount: str | None = None
    payment_term: str | None = None
    exported: bool = False
    updated_at: str | None = None
    requester_email: str | None = None
    supplier: SupplierRef | None = None
    lines: list[InvoiceLine] = Field(default_factory=list)


class FindSupplierResult(_Result):
    """What ``find_supplier`` returns."""

    found: bool
    id: str | None = None
    number: str | None = None
    name: str | None = None
    status: str | None = None


class UpsertSupplierResult(_Result):
    """What ``upsert_supplier`` returns."""

    id: str
    number: str
    name: str
    created: bool


class FindPurchaseOrderResult(_Result):
    """What ``find_purchase_order`` returns."""

    found: bool
    id: str | None = None
    po_number: str | None = None
    status: str | None = None
    version: int | None = None
    currency: str | None = None
    supplier: SupplierRef | None = None


class FindInvoiceResult(_Result):
    """What ``find_invoice`` returns."""

    found: bool
    invoice: Invoice | None = None


class GetInvoiceResult(Invoice):
    """What ``get_invoice`` returns: the invoice."""


class SearchInvoicesResult(_Result):
    """What ``search_invoices`` returns: one page, and where the next one starts."""

    invoices: list[Invoice]
    last_id: int | None = Field(description="The highest id on the page (after_id of the next).")
    more: bool = Field(description="Whether a full page came back, so there may be more.")


class MarkInvoiceExportedResult(_Result):
    """What ``mark_invoice_exported`` returns."""

    id: str
    exported: bool


def coupa_time(moment: datetime) -> str:
    """A Coupa query time: ISO 8601 with the offset (Coupa reads dates without one as UTC)."""
    return moment.isoformat(timespec="seconds")
