"""Built-in mappings from polled records to event types, by name.

Each reads one record as ``item`` (the compact record the adapter returns). Event
ids name the business fact, so a later edit of the same record is not the same
fact again: an opportunity is won once per close date, a worker hired once per
hire date, an invoice posted once. A mapping of your own may instead use the
record id and its modification time (``join(':', [item.Id, item.SystemModstamp])``)
to get one event per change.
"""

from __future__ import annotations

from platypus.sources.mapping import MappingSpec

__all__ = ["DEFAULT_PRESET", "POLLER_PRESETS"]

POLLER_PRESETS: dict[str, MappingSpec] = {
    # SOQL records: parents come nested (Account.Name -> item.Account.Name).
    "salesforce_opportunity_closed_won": MappingSpec(
        type="sales.opportunity.closed_won.v1",
        when="item.StageName == 'Closed Won'",
        id="join(':', ['closed_won', item.Id, item.CloseDate || ''])",
        subject="item.Id",
        data={
            "opportunity_id": "item.Id",
            "account_id": "item.AccountId",
            "account_name": "item.Account.Name",
            "amount": "item.Amount",
            "currency": "item.CurrencyIsoCode",
            "close_date": "item.CloseDate",
            "owner_email": "item.Owner.Email",
            # Parsed from JSON text by the poller, each line's currency defaulting
            # to the opportunity's (as for outbound messages).
            "line_items": "item.Line_Items_JSON__c",
        },
    ),
    # Compact workers of the workday adapter (get_workers).
    "workday_worker_hired": MappingSpec(
        type="people.worker.hired.v1",
        when="item.active && item.hire_date && item.work_email",
        id="join(':', ['hired', item.worker_id, item.hire_date])",
        subject="item.worker_id",
        data={
            "worker_id": "item.worker_id",
            "first_name": "item.first_name",
            "last_name": "item.last_name",
            "work_email": "item.work_email",
            "hire_date": "item.hire_date",
            "worker_type": "item.worker_type",
            "position": {
                "title": "item.business_title || item.position_title",
                "department": "item.department",
                "location": "item.location",
            },
        },
    ),
    # Compact transactions of the netsuite adapter (search_transactions).
    "netsuite_invoice_posted": MappingSpec(
        type="finance.invoice.posted.v1",
        id="join(':', ['invoice.posted', item.internalId])",
        subject="item.entity.externalId || item.entity.internalId",
        data={
            "invoice_id": "item.internalId",
            "invoice_number": "item.tranId || item.externalId",
            "account_number": "item.entity.externalId || item.entity.internalId",
            "invoice_date": "item.tranDate",
            "due_date": "item.dueDate",
            "currency": "item.currency.externalId || item.currency.name",
            "amount": "item.total || sum(item.items[*].amount)",
            "balance": "item.amountRemaining || item.total || sum(item.items[*].amount)",
            "lines": (
                "item.items[*].{charge_name: description || item.name, amount: amount, "
                "tax_amount: tax1Amt || `0`}"
            ),
        },
    ),
}
"""Mappings by name."""

DEFAULT_PRESET: dict[str, str] = {
    "salesforce": "salesforce_opportunity_closed_won",
    "workday": "workday_worker_hired",
    "netsuite": "netsuite_invoice_posted",
}
"""The preset each kind uses when a poller names no mapping."""
