"""The ``coupa`` poller: approved invoices, read by ``updated-at`` and Coupa's export flag.

Coupa's own guide to integrating invoices with an ERP reads the invoices that
are approved and not exported yet (``status=approved&exported=false``), and
marks each exported once the ERP has it. Each poll reads, through the
connection's ``search_invoices`` action, the invoices in that state whose
``updated-at`` is within the poll's window (from the watermark, less the
overlap, to now), by id in pages of 50 (keyset: ``id[gt]``, so an invoice that
leaves the window while it is read moves no other out of a page).

Each invoice becomes one ``finance.coupa.invoice.approved.v1`` event (preset
``coupa_invoice_approved``). Its id names the invoice and its ``updated-at``: the
overlap and later polls that read the same invoice again add nothing, while an
invoice changed and sent back (Coupa clears the export flag) is a new event.

::

    pollers:
      coupa_invoices:
        kind: coupa
        connection: coupa
        interval: 5m
        query: {status: [approved], exported: false}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platypus.adapter import Adapter, Request
from platypus.exceptions import ConfigurationError
from platypus.sources.mapping import MappingSpec
from platypus.sources.pollers.config import PollerSpec
from platypus.sources.pollers.sources import Page, RecordSource, parse_instant

__all__ = ["APPROVED_INVOICE_PRESET", "CoupaInvoiceQuery", "CoupaInvoiceSource"]

APPROVED_INVOICE_PRESET = MappingSpec(
    type="finance.coupa.invoice.approved.v1",
    when="item.status == 'approved'",
    id="join(':', ['coupa.invoice.approved', item.id, item.updated_at || ''])",
    subject="item.id",
    time="item.updated_at",
    data={
        "invoice_id": "item.id",
        "invoice_number": "item.invoice_number",
        "document_type": "item.document_type",
        "supplier": {
            "id": "item.supplier.id",
            "number": "item.supplier.number",
            "name": "item.supplier.name",
        },
        "invoice_date": "item.invoice_date",
        "due_date": "item.net_due_date",
        "currency": "item.currency",
        "total": "item.total",
        "tax_amount": "item.tax_amount || '0'",
        "payment_term": "item.payment_term",
        "requester_email": "item.requester_email",
        "lines": (
            "item.lines[*].{line_num: line_num, description: description, amount: total, "
            "quantity: quantity, unit_price: price, account_code: account_code, "
            "po_number: po_number}"
        ),
    },
)


class CoupaInvoiceQuery(BaseModel):
    """``query`` of a ``coupa`` poller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: list[str] = Field(
        default_factory=lambda: ["approved"],
        min_length=1,
        description="Invoice statuses to read (approved, voided, ...).",
    )
    exported: bool | None = Field(
        default=False,
        description="Read only invoices not exported yet (false), exported ones (true), or "
        "both (null).",
    )


class CoupaInvoiceSource(RecordSource):
    """Invoices by status, export flag and ``updated-at`` window, paged by id."""

    kind = "coupa"
    presets: ClassVar = {"coupa_invoice_approved": APPROVED_INVOICE_PRESET}
    default_preset = "coupa_invoice_approved"

    def __init__(self, adapter: Adapter, spec: PollerSpec, name: str) -> None:
        super().__init__(adapter, spec, name)
        try:
            self.query = CoupaInvoiceQuery.model_validate(spec.query)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(query)'}: {err['msg']}"
                for err in exc.errors(include_input=False)
            )
            raise ConfigurationError(f"pollers.{name}.query: {problems}") from None

    async def page(
        self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None
    ) -> Page:
        if until is None:
            raise ValueError("a Coupa window needs an upper bound")
        result = await self.adapter.call(
            Request(
                action="search_invoices",
                payload={
                    "status": self.query.status,
                    "exported": self.query.exported,
                    "updated_from": since.isoformat(),
                    "updated_through": until.isoformat(),
                    "after_id": cursor.get("after_id") if cursor else None,
                },
            )
        )
        invoices: list[dict[str, Any]] = list(result.get("invoices") or [])
        stamps = [parse_instant(i["updated_at"]) for i in invoices if i.get("updated_at")]
        nxt = {"after_id": result["last_id"]} if result.get("more") else None
        return Page(invoices, nxt, 1.0 if nxt is None else 0.5, max(stamps, default=None))
