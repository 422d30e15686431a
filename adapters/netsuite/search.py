"""``search_transactions``: transactions modified in a range, page by page (what a poller runs).

A SuiteTalk ``search`` with a ``TransactionSearchBasic``: the transaction ``type``
(``_invoice``, ``_salesOrder``, ...) and ``lastModifiedDate`` *within* the range,
both ends included. NetSuite answers the first page with a ``searchId``; later pages
are read with ``searchMoreWithId(searchId, pageIndex)``. The page size travels in
the ``searchPreferences`` header (NetSuite accepts 5 to 1000).

Each record comes back compact and JSON-able: ids, ``tranId``, dates as ISO text,
references as ``{internalId, externalId, name}``, amounts as numbers and the item
lines.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "TRANSACTION_TYPES",
    "SearchParams",
    "SearchTransactionsInput",
    "compact_record",
    "search_page",
    "search_record",
]

COMMON_NS = "urn:common_2023_2.platform.webservices.netsuite.com"

TRANSACTION_TYPES: dict[str, str] = {
    "invoice": "_invoice",
    "salesOrder": "_salesOrder",
    "creditMemo": "_creditMemo",
    "cashSale": "_cashSale",
    "customerPayment": "_customerPayment",
}
"""Record type names (as the upsert actions return them) to the search's type values."""


class SearchParams(BaseModel):
    """A step's (or poller's) ``params`` for ``search_transactions``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: int = Field(
        default=200, ge=5, le=1000, description="Records per page (searchPreferences/pageSize)."
    )


class SearchTransactionsInput(BaseModel):
    """Payload of ``search_transactions``: a type, a modified range, and the page to read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_type: Literal["invoice", "salesOrder", "creditMemo", "cashSale", "customerPayment"] = (
        Field(default="invoice", description="Transaction type to search.")
    )
    modified_from: AwareDatetime = Field(description="lastModifiedDate at or after this.")
    modified_through: AwareDatetime = Field(description="... and at or before this.")
    page_index: int = Field(default=1, ge=1, description="Page to read (1-based).")
    search_id: str | None = Field(
        default=None,
        min_length=1,
        description="The searchId of page 1's answer; pages after the first need it.",
    )

    @model_validator(mode="after")
    def _check(self) -> SearchTransactionsInput:
        if self.modified_from > self.modified_through:
            raise ValueError("modified_from is after modified_through")
        if self.page_index > 1 and self.search_id is None:
            raise ValueError("pages after the first need the search_id of page 1")
        return self


def search_record(get_type: Any, data: SearchTransactionsInput) -> Any:
    """The ``TransactionSearchBasic`` for ``data`` (zeep object)."""
    core = "urn:core_2023_2.platform.webservices.netsuite.com"
    return get_type(f"{{{COMMON_NS}}}TransactionSearchBasic")(
        type=get_type(f"{{{core}}}SearchEnumMultiSelectField")(
            searchValue=[TRANSACTION_TYPES[data.record_type]], operator="anyOf"
        ),
        lastModifiedDate=get_type(f"{{{core}}}SearchDateField")(
            searchValue=data.modified_from,
            searchValue2=data.modified_through,
            operator="within",
        ),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _ref(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "internalId": getattr(value, "internalId", None),
        "externalId": getattr(value, "externalId", None),
        "name": getattr(value, "name", None),
    }


def _day(value: Any) -> str | None:
    # NetSuite's date fields are xsd:dateTime at midnight: the calendar day is the value.
    if isinstance(value, datetime):
        return value.date().isoformat()
    return None if value is None else str(value)


_AMOUNTS = ("total", "subTotal", "taxTotal", "amountPaid", "amountRemaining", "balance")


def compact_record(record: Any) -> dict[str, Any]:
    """One transaction of a search answer as a small JSON-able dict."""
    items = getattr(getattr(record, "itemList", None), "item", None) or []
    out: dict[str, Any] = {
        "type": type(record).__name__[:1].lower() + type(record).__name__[1:],
        "internalId": getattr(record, "internalId", None),
        "externalId": getattr(record, "externalId", None),
        "tranId": getattr(record, "tranId", None),
        "lastModifiedDate": _plain(getattr(record, "lastModifiedDate", None)),
        "tranDate": _day(getattr(record, "tranDate", None)),
        "dueDate": _day(getattr(record, "dueDate", None)),
        "entity": _ref(getattr(record, "entity", None)),
        "currency": _ref(getattr(record, "currency", None)),
        "createdFrom": _ref(getattr(record, "createdFrom", None)),
        "memo": getattr(record, "memo", None),
        "otherRefNum": getattr(record, "otherRefNum", None),
        "status": getattr(record, "status", None),
        "items": [
            {
                "item": _ref(getattr(line, "item", None)),
                "description": getattr(line, "description", None),
                "quantity": _plain(getattr(line, "quantity", None)),
                "rate": getattr(line, "rate", None),
                "amount": _plain(getattr(line, "amount", None)),
                "tax1Amt": _plain(getattr(line, "tax1Amt", None)),
            }
            for line in items
        ],
    }
    for name in _AMOUNTS:
        out[name] = _plain(getattr(record, name, None))
    return out


def search_page(result: Any) -> dict[str, Any]:
    """The compact answer: records, the page read, the page count and the searchId."""
    records = getattr(getattr(result, "recordList", None), "record", None) or []
    return {
        "records": [compact_record(r) for r in records],
        "page_index": int(result.pageIndex or 1),
        "total_pages": int(result.totalPages or 0),
        "total_records": int(result.totalRecords or 0),
        "search_id": result.searchId,
    }
