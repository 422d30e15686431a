"""The records the adapter upserts: typed inputs, and the zeep objects built from them.

Inputs use NetSuite's own field names (``externalId``, ``companyName``,
``tranDate``), so a flow's mapping reads like the SuiteTalk schema. Only the
fields a quote-to-cash flow needs are modelled; anything else is refused
(``extra="forbid"``) rather than silently dropped.

Dates. NetSuite's date fields (``tranDate``, ``dueDate``) are ``xsd:dateTime`` in
the 2023.2 schema, and NetSuite keeps the calendar day that instant falls on in
the *integration user's* time zone preference; an instant without an offset is
read as America/Los_Angeles. Midnight without an offset, as most clients send,
is the evening before for a user in Alaska or Hawaii. So a date is sent with an
explicit offset, at noon in the user's time zone when the connection names it
(``timezone``), else at 10:30 UTC, the one time of day that is the same calendar
day everywhere from UTC-10 (Hawaii) to UTC+13 (New Zealand's summer, Tonga).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "RECORDS",
    "UNIVERSAL_TIME_OF_DAY",
    "CustomerInput",
    "InvoiceInput",
    "InvoiceLine",
    "RecordRef",
    "RecordSpec",
    "SalesOrderInput",
    "SalesOrderLine",
    "UpsertResult",
    "UpsertVendorBillResult",
    "VendorBillExpense",
    "VendorBillInput",
    "VendorBillItem",
    "netsuite_datetime",
]

CORE_NS = "urn:core_2023_2.platform.webservices.netsuite.com"
RELATIONSHIPS_NS = "urn:relationships_2023_2.lists.webservices.netsuite.com"
SALES_NS = "urn:sales_2023_2.transactions.webservices.netsuite.com"
PURCHASES_NS = "urn:purchases_2023_2.transactions.webservices.netsuite.com"


class _Input(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class RecordRef(_Input):
    """A reference to another NetSuite record by ``internalId`` or ``externalId``."""

    internal_id: str | None = Field(
        default=None, min_length=1, description="NetSuite's internal id of the record."
    )
    external_id: str | None = Field(
        default=None, min_length=1, description="Your external id of the record."
    )

    @model_validator(mode="after")
    def _one_id(self) -> RecordRef:
        if self.internal_id is None and self.external_id is None:
            raise ValueError("a record reference needs internalId or externalId")
        return self


class CustomerInput(_Input):
    """A customer, upserted by ``externalId``."""

    external_id: str = Field(min_length=1, description="Your id of the customer; the upsert key.")
    company_name: str | None = Field(default=None, description="Company name (companies).")
    is_person: bool | None = Field(default=None, description="True for an individual.")
    first_name: str | None = Field(default=None, description="First name (individuals).")
    last_name: str | None = Field(default=None, description="Last name (individuals).")
    email: str | None = Field(default=None, description="E-mail address.")
    phone: str | None = Field(default=None, description="Phone number.")
    subsidiary: RecordRef | None = Field(
        default=None, description="Subsidiary (required in OneWorld accounts)."
    )
    currency: RecordRef | None = Field(default=None, description="Primary currency.")
    comments: str | None = Field(default=None, description="Free-text comments.")


class SalesOrderLine(_Input):
    """One item line of a sales order."""

    item: RecordRef = Field(description="The item sold.")
    quantity: float | None = Field(default=None, gt=0, description="Quantity.")
    rate: Decimal | None = Field(default=None, description="Unit price.")
    amount: float | None = Field(default=None, description="Line amount, if not quantity * rate.")
    description: str | None = Field(default=None, description="Line description.")


class InvoiceLine(SalesOrderLine):
    """One item line of an invoice; ``orderLine`` ties it to its sales order's line."""

    order_line: int | None = Field(
        default=None, ge=1, description="Line number on the sales order this bills."
    )


class _Transaction(_Input):
    external_id: str = Field(min_length=1, description="Your id of the transaction; upsert key.")
    entity: RecordRef = Field(description="The customer.")
    tran_date: date | None = Field(default=None, description="Transaction date.")
    memo: str | None = Field(default=None, description="Memo.")
    other_ref_num: str | None = Field(default=None, description="PO or other reference number.")
    subsidiary: RecordRef | None = Field(default=None, description="Subsidiary (OneWorld).")
    currency: RecordRef | None = Field(default=None, description="Currency.")


class SalesOrderInput(_Transaction):
    """A sales order, upserted by ``externalId``."""

    items: list[SalesOrderLine] = Field(min_length=1, description="Item lines.")


class InvoiceInput(_Transaction):
    """An invoice, upserted by ``externalId``; ``createdFrom`` is its sales order."""

    created_from: RecordRef | None = Field(
        default=None, description="The sales order this invoice bills."
    )
    due_date: date | None = Field(default=None, description="Due date.")
    items: list[InvoiceLine] = Field(min_length=1, description="Item lines.")


class VendorBillExpense(_Input):
    """One expense line of a vendor bill: an amount booked to an account."""

    account: RecordRef = Field(description="The expense account.")
    amount: float = Field(description="The line's amount.")
    memo: str | None = Field(default=None, description="Line memo.")
    department: RecordRef | None = Field(default=None, description="Department.")
    class_: RecordRef | None = Field(default=None, alias="class", description="Class.")
    location: RecordRef | None = Field(default=None, description="Location.")
    tax_code: RecordRef | None = Field(default=None, description="Tax code.")
    customer: RecordRef | None = Field(default=None, description="Customer to bill it to.")
    is_billable: bool | None = Field(default=None, description="Billable to the customer.")


class VendorBillItem(_Input):
    """One item line of a vendor bill."""

    item: RecordRef = Field(description="The item bought.")
    quantity: float | None = Field(default=None, gt=0, description="Quantity.")
    rate: Decimal | None = Field(default=None, description="Unit price.")
    amount: float | None = Field(default=None, description="Line amount, if not quantity * rate.")
    description: str | None = Field(default=None, description="Line description.")
    department: RecordRef | None = Field(default=None, description="Department.")
    class_: RecordRef | None = Field(default=None, alias="class", description="Class.")
    location: RecordRef | None = Field(default=None, description="Location.")


class VendorBillInput(_Input):
    """A vendor bill (accounts payable), upserted by ``externalId``.

    ``entity`` is the vendor; ``tranId`` is the vendor's invoice number. Lines are
    expenses (by account) or items, at least one of either.
    """

    external_id: str = Field(min_length=1, description="Your id of the bill; the upsert key.")
    entity: RecordRef = Field(description="The vendor.")
    tran_id: str | None = Field(default=None, description="The vendor's invoice number.")
    tran_date: date | None = Field(default=None, description="Bill date.")
    due_date: date | None = Field(default=None, description="Due date.")
    memo: str | None = Field(default=None, description="Memo.")
    currency: RecordRef | None = Field(default=None, description="Currency.")
    subsidiary: RecordRef | None = Field(default=None, description="Subsidiary (OneWorld).")
    terms: RecordRef | None = Field(default=None, description="Payment terms.")
    account: RecordRef | None = Field(default=None, description="The payables account.")
    approval_status: RecordRef | None = Field(
        default=None, description="Approval status (1 pending, 2 approved), if bills need one."
    )
    expenses: list[VendorBillExpense] = Field(
        default_factory=list, description="Expense lines (expenseList)."
    )
    items: list[VendorBillItem] = Field(default_factory=list, description="Item lines (itemList).")

    @model_validator(mode="after")
    def _has_lines(self) -> VendorBillInput:
        if not self.expenses and not self.items:
            raise ValueError("a vendor bill needs expense lines or item lines")
        return self


class UpsertResult(BaseModel):
    """What every ``upsert_*`` action returns: the record NetSuite created or updated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    internalId: str = Field(description="NetSuite's internal id of the record.")  # noqa: N815
    externalId: str = Field(description="The upsert key.")  # noqa: N815
    type: str = Field(description="The record type, e.g. customer or salesOrder.")


class UpsertVendorBillResult(BaseModel):
    """What ``upsert_vendor_bill`` returns: the bill NetSuite created or updated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    internalId: str = Field(description="NetSuite's internal id of the bill.")  # noqa: N815
    externalId: str = Field(description="The upsert key.")  # noqa: N815
    type: str = Field(default="vendorBill", description="The record type, vendorBill.")


TypeLookup = Callable[[str], Any]
"""``zeep.Client.get_type``: a type's qualified name to its factory."""

UNIVERSAL_TIME_OF_DAY = time(10, 30, tzinfo=UTC)
"""When a date is sent if the user's time zone is not known: the same calendar day
from UTC-10 to UTC+13 (10:30 UTC is 00:30 in Hawaii and 23:30 in Auckland's summer)."""


def netsuite_datetime(value: date | None, zone: str | None = None) -> datetime | None:
    """The ``xsd:dateTime`` that NetSuite stores as ``value``'s calendar day.

    Noon in ``zone`` (the integration user's time zone preference) when given,
    else `UNIVERSAL_TIME_OF_DAY`; always with its offset.
    """
    if value is None:
        return None
    if zone is None:
        return datetime.combine(value, UNIVERSAL_TIME_OF_DAY)
    where: tzinfo = ZoneInfo(zone)
    return datetime.combine(value, time(12), tzinfo=where)


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """How one action's input becomes a NetSuite record.

    ``build(types, data, zone)``: ``zone`` is the integration user's time zone
    (`netsuite_datetime`), or None.
    """

    record_type: str  # NetSuite's RecordType enum value, as in RecordRef/@type
    xsd_type: str  # the record's complex type, qualified
    input: type[_Input]
    build: Callable[[TypeLookup, Any, str | None], Any]


def _ref(types: TypeLookup, ref: RecordRef | None) -> Any:
    if ref is None:
        return None
    return types(f"{{{CORE_NS}}}RecordRef")(internalId=ref.internal_id, externalId=ref.external_id)


def _fields(model: BaseModel, *skip: str) -> dict[str, Any]:
    """Plain fields by their NetSuite name, unset ones left out."""
    return {
        name: value
        for name, value in model.model_dump(by_alias=True, exclude_none=True).items()
        if name not in skip and not isinstance(value, dict | list)
    }


def _build_customer(types: TypeLookup, data: CustomerInput, zone: str | None) -> Any:
    return types(f"{{{RELATIONSHIPS_NS}}}Customer")(
        **_fields(data),
        subsidiary=_ref(types, data.subsidiary),
        currency=_ref(types, data.currency),
    )


def _line(types: TypeLookup, type_name: str, line: SalesOrderLine) -> Any:
    values = _fields(line, "rate")
    if line.rate is not None:
        values["rate"] = str(line.rate)  # xsd:string in NetSuite's schema
    return types(f"{{{SALES_NS}}}{type_name}")(**values, item=_ref(types, line.item))


def _transaction(types: TypeLookup, data: _Transaction, zone: str | None) -> dict[str, Any]:
    return {
        **_fields(data, "tranDate", "dueDate"),
        "tranDate": netsuite_datetime(data.tran_date, zone),
        "entity": _ref(types, data.entity),
        "subsidiary": _ref(types, data.subsidiary),
        "currency": _ref(types, data.currency),
    }


def _build_sales_order(types: TypeLookup, data: SalesOrderInput, zone: str | None) -> Any:
    lines = [_line(types, "SalesOrderItem", line) for line in data.items]
    return types(f"{{{SALES_NS}}}SalesOrder")(
        **_transaction(types, data, zone),
        itemList=types(f"{{{SALES_NS}}}SalesOrderItemList")(item=lines),
    )


def _build_invoice(types: TypeLookup, data: InvoiceInput, zone: str | None) -> Any:
    lines = [_line(types, "InvoiceItem", line) for line in data.items]
    return types(f"{{{SALES_NS}}}Invoice")(
        **_transaction(types, data, zone),
        createdFrom=_ref(types, data.created_from),
        dueDate=netsuite_datetime(data.due_date, zone),
        itemList=types(f"{{{SALES_NS}}}InvoiceItemList")(item=lines),
    )


def _refs(types: TypeLookup, line: BaseModel, *names: str) -> dict[str, Any]:
    """The RecordRef fields ``names`` of ``line``, by their NetSuite names."""
    out: dict[str, Any] = {}
    for name in names:
        info = type(line).model_fields[name]
        out[info.alias or to_camel(name)] = _ref(types, getattr(line, name))
    return out


def _build_vendor_bill(types: TypeLookup, data: VendorBillInput, zone: str | None) -> Any:
    values: dict[str, Any] = {
        **_fields(data, "tranDate", "dueDate"),
        "tranDate": netsuite_datetime(data.tran_date, zone),
        "dueDate": netsuite_datetime(data.due_date, zone),
        **_refs(types, data, "entity", "currency", "subsidiary", "terms", "account"),
        **_refs(types, data, "approval_status"),
    }
    if data.expenses:
        expense_refs = ("account", "department", "class_", "location", "tax_code", "customer")
        expenses = [
            types(f"{{{PURCHASES_NS}}}VendorBillExpense")(
                **_fields(line), **_refs(types, line, *expense_refs)
            )
            for line in data.expenses
        ]
        values["expenseList"] = types(f"{{{PURCHASES_NS}}}VendorBillExpenseList")(expense=expenses)
    if data.items:
        items = []
        for line in data.items:
            fields = _fields(line, "rate")
            if line.rate is not None:
                fields["rate"] = str(line.rate)  # xsd:string in NetSuite's schema
            refs = _refs(types, line, "item", "department", "class_", "location")
            items.append(types(f"{{{PURCHASES_NS}}}VendorBillItem")(**fields, **refs))
        values["itemList"] = types(f"{{{PURCHASES_NS}}}VendorBillItemList")(item=items)
    return types(f"{{{PURCHASES_NS}}}VendorBill")(**values)


RECORDS: dict[str, RecordSpec] = {
    "upsert_customer": RecordSpec(
        "customer", f"{{{RELATIONSHIPS_NS}}}Customer", CustomerInput, _build_customer
    ),
    "upsert_sales_order": RecordSpec(
        "salesOrder", f"{{{SALES_NS}}}SalesOrder", SalesOrderInput, _build_sales_order
    ),
    "upsert_invoice": RecordSpec("invoice", f"{{{SALES_NS}}}Invoice", InvoiceInput, _build_invoice),
    "upsert_vendor_bill": RecordSpec(
        "vendorBill", f"{{{PURCHASES_NS}}}VendorBill", VendorBillInput, _build_vendor_bill
    ),
}
"""Every action, by name, and the record it upserts."""
