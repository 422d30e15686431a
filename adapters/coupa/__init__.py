"""The ``coupa`` adapter: suppliers, purchase orders and invoices in Coupa (Core API, JSON).

::

    connections:
      coupa:
        adapter: coupa
        settings:
          base_url: https://acme.coupahost.com
          client_id: {env: COUPA_CLIENT_ID}
          client_secret: {env: COUPA_CLIENT_SECRET}
          scopes: [core.invoice.read, core.invoice.write, core.supplier.read]

Actions: ``find_supplier`` (by id, number, name or a custom field),
``upsert_supplier`` (by number), ``find_purchase_order`` (by id or PO number),
``find_invoice`` (by id, invoice number and supplier, or a custom field),
``get_invoice``, ``search_invoices`` and ``mark_invoice_exported``. Each returns
the model named in `RESULTS`. Authentication is OAuth 2.0 client credentials with
scopes, as Coupa requires (API keys are retired). The ``coupa`` poller
(`poller`) reads approved invoices not exported yet. See ``docs/adapters/coupa.md``.
"""

from ._errors import CredentialsError
from .adapter import INVOICE_FIELDS, RESULTS, CoupaAdapter, compact_invoice
from .models import (
    CoupaSettings,
    FindInvoiceInput,
    FindPurchaseOrderInput,
    FindSupplierInput,
    GetInvoiceInput,
    Invoice,
    InvoiceLine,
    MarkInvoiceExportedInput,
    SearchInvoicesInput,
    UpsertSupplierInput,
)

__all__ = [
    "INVOICE_FIELDS",
    "RESULTS",
    "CoupaAdapter",
    "CoupaSettings",
    "CredentialsError",
    "FindInvoiceInput",
    "FindPurchaseOrderInput",
    "FindSupplierInput",
    "GetInvoiceInput",
    "Invoice",
    "InvoiceLine",
    "MarkInvoiceExportedInput",
    "SearchInvoicesInput",
    "UpsertSupplierInput",
    "compact_invoice",
]
