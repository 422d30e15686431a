"""The ``netsuite`` adapter: upserts over SuiteTalk SOAP (2023.2) with token-based auth.

::

    connections:
      erp:
        adapter: netsuite
        max_concurrency: 5          # the account's concurrency limit
        settings:
          account: "1234567_SB1"
          consumer_key: 3f1c...
          consumer_secret: {env: NETSUITE_CONSUMER_SECRET}
          token_id: 9ab2...
          token_secret: {env: NETSUITE_TOKEN_SECRET}

Actions ``upsert_customer``, ``upsert_sales_order`` and ``upsert_invoice`` upsert
by ``externalId``, so a retried or replayed delivery updates the same record;
each returns ``{"internalId", "externalId", "type"}``. ``search_transactions`` (a
lookup, what the NetSuite poller runs) reads transactions whose
``lastModifiedDate`` is within a range, page by page (`search`). Faults and record
statuses are classified in `platypus_adapters.netsuite.errors`; see
``docs/adapters/netsuite.md``. ``upsert_vendor_bill`` upserts a vendor bill
(accounts payable) the same way.
"""

from __future__ import annotations

from .adapter import BINDING, NetSuiteAdapter
from .errors import CredentialsError
from .passport import Passport, new_passport, signature
from .records import (
    CustomerInput,
    InvoiceInput,
    InvoiceLine,
    RecordRef,
    SalesOrderInput,
    SalesOrderLine,
    VendorBillExpense,
    VendorBillInput,
    VendorBillItem,
)
from .search import SearchParams, SearchTransactionsInput
from .settings import DEFAULT_WSDL, NetSuiteSettings, endpoint_for

__all__ = [
    "BINDING",
    "DEFAULT_WSDL",
    "CredentialsError",
    "CustomerInput",
    "InvoiceInput",
    "InvoiceLine",
    "NetSuiteAdapter",
    "NetSuiteSettings",
    "Passport",
    "RecordRef",
    "SalesOrderInput",
    "SalesOrderLine",
    "SearchParams",
    "SearchTransactionsInput",
    "VendorBillExpense",
    "VendorBillInput",
    "VendorBillItem",
    "endpoint_for",
    "new_passport",
    "signature",
]
