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
    "netsuite_datetime",
]

CORE_NS = "urn:core_2023_2.platform.webservices.netsuite.com"
RELATIONSHIPS_NS = "urn:relationships_2023_2.lists.webservices.netsuite.com"
SALES_NS = "urn:sales_2023_2.transactions.webservices.netsuite.com"


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


RECORDS: dict[str, RecordSpec] = {
    "upsert_customer": RecordSpec(
        "customer", f"{{{RELATIONSHIPS_NS}}}Customer", CustomerInput, _build_customer
    ),
    "upsert_sales_order": RecordSpec(
        "salesOrder", f"{{{SALES_NS}}}SalesOrder", SalesOrderInput, _build_sales_order
    ),
    "upsert_invoice": RecordSpec("invoice", f"{{{SALES_NS}}}Invoice", InvoiceInput, _build_invoice),
}
"""Every action, by name, and the record it upserts."""
