"""`CoupaAdapter`: suppliers, purchase orders and invoices over Coupa's Core API (JSON)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr

from platypus.adapter import Action
from platypus.apiadapter import ApiAdapter
from platypus.exceptions import PermanentError, RetryableError
from platypus.logging import get_logger
from platypus.oauth import AccessToken, TokenCache
from platypus.vendorhttp import (
    async_client,
    json_or_none,
    mask_secrets_in,
    parse_retry_after,
    transport_failure,
)

from ._errors import CredentialsError, classify, oauth_error
from .models import (
    PAGE_SIZE,
    CoupaSettings,
    CustomField,
    FindInvoiceInput,
    FindInvoiceResult,
    FindPurchaseOrderInput,
    FindPurchaseOrderResult,
    FindSupplierInput,
    FindSupplierResult,
    GetInvoiceInput,
    GetInvoiceResult,
    Invoice,
    InvoiceLine,
    MarkInvoiceExportedInput,
    MarkInvoiceExportedResult,
    SearchInvoicesInput,
    SearchInvoicesResult,
    SupplierRef,
    UpsertSupplierInput,
    UpsertSupplierResult,
    coupa_time,
)

__all__ = ["INVOICE_FIELDS", "RESULTS", "CoupaAdapter", "compact_invoice"]

_log = get_logger("platypus.adapters.coupa")
_BODY_EXCERPT = 300
_TOKEN_PATH = "/oauth2/token"  # noqa: S105 -- a path, not a credential
_JSON = "application/json"

RESULTS: dict[str, type[BaseModel]] = {
    "find_supplier": FindSupplierResult,
    "upsert_supplier": UpsertSupplierResult,
    "find_purchase_order": FindPurchaseOrderResult,
    "find_invoice": FindInvoiceResult,
    "get_invoice": GetInvoiceResult,
    "search_invoices": SearchInvoicesResult,
    "mark_invoice_exported": MarkInvoiceExportedResult,
}
"""The model of what each action returns, by action."""

INVOICE_FIELDS: list[Any] = [
    "id",
    "invoice_number",
    "status",
    "document_type",
    "invoice_date",
    "net_due_date",
    "total_with_taxes",
    "gross_total",
    "tax_amount",
    "exported",
    "updated_at",
    {"currency": ["code"]},
    {"supplier": ["id", "name", "number"]},
    {"payment_term": ["code"]},
    {"requested_by": ["email"]},
    {
        "invoice_lines": [
            "line_num",
            "description",
            "total",
            "quantity",
            "price",
            "tax_amount",
            "po_number",
            "order_line_id",
            {"account": ["code"]},
        ]
    },
]
"""What the adapter asks Coupa for (``fields``), instead of every association in full."""
_SUPPLIER_FIELDS: list[Any] = ["id", "number", "name", "status"]
_ORDER_FIELDS: list[Any] = [
    "id",
    "po_number",
    "status",
    "version",
    {"currency": ["code"]},
    {"supplier": ["id", "name", "number"]},
]


class CoupaAdapter(ApiAdapter):
    """Reads and writes Coupa records with an OAuth 2.0 client (client credentials, scopes).

    The access token (Coupa's last 24 hours) is cached and fetched again
    ``token_refresh_margin`` before it expires, or once when Coupa answers 401; a new
    token is used only ``token_warmup`` after it was issued, as Coupa advises.
    Lookups ask for the fields they read (``fields=``) and answer ``found: false``
    rather than an error; writes are upserts by a natural key, safe to repeat.
    """

    name = "coupa"
    Settings = CoupaSettings
    actions: ClassVar = {
        "find_supplier": Action(
            result=RESULTS["find_supplier"],
            input=FindSupplierInput,
            description="Look a supplier up by id, number, exact name or a custom field.",
            writes=False,
            idempotent=True,
        ),
        "upsert_supplier": Action(
            result=RESULTS["upsert_supplier"],
            input=UpsertSupplierInput,
            description="Create the supplier, or update the one with its number.",
            idempotent=True,
        ),
        "find_purchase_order": Action(
            result=RESULTS["find_purchase_order"],
            input=FindPurchaseOrderInput,
            description="Look a purchase order up by id or PO number.",
            writes=False,
            idempotent=True,
        ),
        "find_invoice": Action(
            result=RESULTS["find_invoice"],
            input=FindInvoiceInput,
            description="Look an invoice up by id, invoice number (and supplier) or custom field.",
            writes=False,
            idempotent=True,
        ),
        "get_invoice": Action(
            result=RESULTS["get_invoice"],
            input=GetInvoiceInput,
            description="Read an invoice by id, compact, with its lines.",
            writes=False,
            idempotent=True,
        ),
        "search_invoices": Action(
            result=RESULTS["search_invoices"],
            input=SearchInvoicesInput,
            description="One page (50) of invoices by status, export flag and updated-at.",
            writes=False,
            idempotent=True,
        ),
        "mark_invoice_exported": Action(
            result=RESULTS["mark_invoice_exported"],
            input=MarkInvoiceExportedInput,
            description="Set an invoice's exported flag, so ERP integrations skip it.",
            idempotent=True,
        ),
    }

    def __init__(self, settings: BaseModel, *, connection: str = "") -> None:
        if not isinstance(settings, CoupaSettings):
            raise TypeError(f"CoupaAdapter needs CoupaSettings, got {type(settings).__name__}")
        super().__init__(settings, connection=connection)
        self._config = settings
        self._client_id = SecretStr("")
        self._client_secret = SecretStr("")
        self._issued: list[SecretStr] = []  # the latest tokens, scrubbed from messages
        self.tokens = TokenCache(self._fetch_token, margin=settings.token_refresh_margin)

    # -- life -----------------------------------------------------------------

    def open_client(self) -> httpx.AsyncClient:
        """Read the OAuth client's secrets and build the connection pool.

        The first token is fetched by the first call, so a Coupa outage at start-up
        is a retryable delivery failure, not a crash.
        """
        config = self._config
        self._client_id = config.client_id.resolve()
        self._client_secret = config.client_secret.resolve()
        return async_client(
            base_url=config.base_url,
            # Coupa answers in the format of Accept (XML by default) and reads bodies
            # in the format of Content-Type: both must be JSON.
            headers={"Accept": _JSON},
            timeout=config.timeout,
            max_connections=config.max_connections,
            ca_bundle=config.ca_bundle,
            proxy=config.proxy,
        )

    def forget(self) -> None:
        """Forget the token (on close)."""
        self.tokens.clear()

    # -- actions (run by ApiAdapter.call: one method per action) ---------------

    async def _find_supplier(self, data: FindSupplierInput) -> FindSupplierResult:
        where = "find_supplier"
        if data.id is not None:
            record = await self._get_one(
                f"/api/suppliers/{quote(data.id)}", _SUPPLIER_FIELDS, where
            )
        else:
            query: dict[str, str] = {}
            if data.number is not None:
                query["number"] = data.number
            elif data.name is not None:
                query["name"] = data.name
            else:
                assert data.custom_field is not None
                query.update(_custom_field_query(data.custom_field))
            record = await self._find_one("/api/suppliers", query, _SUPPLIER_FIELDS, where)
        if record is None:
            return FindSupplierResult(found=False)
        return FindSupplierResult(
            found=True,
            id=str(record["id"]),
            number=_text(record.get("number")),
            name=_text(record.get("name")),
            status=_text(record.get("status")),
        )

    async def _upsert_supplier(self, data: UpsertSupplierInput) -> UpsertSupplierResult:
        where = "upsert_supplier"
        personal = _personal_of(data)
        found = await self._find_one(
            "/api/suppliers", {"number": data.number}, _SUPPLIER_FIELDS, where
        )
        params = {"fields": _fields(_SUPPLIER_FIELDS)}
        body = data.wire()
        if found is None:
            response = await self._send(
                "POST", "/api/suppliers", where, params=params, body=body, personal=personal
            )
            created = True
        else:
            response = await self._send(
                "PUT",
                f"/api/suppliers/{found['id']}",
                where,
                params=params,
                body=body,
                personal=personal,
            )
            created = False
        if response.status_code not in (200, 201):
            raise self._failure(where, response, personal)
        record = _record(response, where)
        return UpsertSupplierResult(
            id=str(record["id"]),
            number=_text(record.get("number")) or data.number,
            name=_text(record.get("name")) or data.name,
            created=created,
        )

    async def _find_purchase_order(self, data: FindPurchaseOrderInput) -> FindPurchaseOrderResult:
        where = "find_purchase_order"
        if data.id is not None:
            record = await self._get_one(
                f"/api/purchase_orders/{quote(data.id)}", _ORDER_FIELDS, where
            )
        else:
            assert data.po_number is not None
            record = await self._find_one(
                "/api/purchase_orders", {"po_number": data.po_number}, _ORDER_FIELDS, where
            )
        if record is None:
            return FindPurchaseOrderResult(found=False)
        version = record.get("version")
        return FindPurchaseOrderResult(
            found=True,
            id=str(record["id"]),
            po_number=_text(record.get("po-number")),
            status=_text(record.get("status")),
            version=int(version)
            if isinstance(version, int | str) and str(version).isdigit()
            else None,
            currency=_text((record.get("currency") or {}).get("code")),
            supplier=_supplier(record.get("supplier")),
        )

    async def _find_invoice(self, data: FindInvoiceInput) -> FindInvoiceResult:
        where = "find_invoice"
        if data.id is not None:
            record = await self._get_one(f"/api/invoices/{quote(data.id)}", INVOICE_FIELDS, where)
        else:
            query: dict[str, str] = {}
            if data.invoice_number is not None:
                query["invoice_number"] = data.invoice_number
                if data.supplier_number is not None:
                    query["supplier[number]"] = data.supplier_number
            else:
                assert data.custom_field is not None
                query.update(_custom_field_query(data.custom_field))
            record = await self._find_one("/api/invoices", query, INVOICE_FIELDS, where)
        if record is None:
            return FindInvoiceResult(found=False)
        return FindInvoiceResult(found=True, invoice=compact_invoice(record))

    async def _get_invoice(self, data: GetInvoiceInput) -> GetInvoiceResult:
        where = "get_invoice"
        record = await self._get_one(f"/api/invoices/{quote(data.id)}", INVOICE_FIELDS, where)
        if record is None:
            raise PermanentError(
                f"Coupa {where}: no invoice {data.id} in this instance; check the id",
                status_code=404,
                vendor_code="404",
            )
        return GetInvoiceResult(**compact_invoice(record).model_dump())

    async def _search_invoices(self, data: SearchInvoicesInput) -> SearchInvoicesResult:
        where = "search_invoices"
        query: dict[str, str] = {}
        if len(data.status) == 1:
            query["status"] = data.status[0]
        else:
            query["status[in]"] = ",".join(data.status)
        if data.exported is not None:
            query["exported"] = "true" if data.exported else "false"
        if data.updated_from is not None:
            query["updated_at[gt_or_eq]"] = coupa_time(data.updated_from)
        if data.updated_through is not None:
            query["updated_at[lt_or_eq]"] = coupa_time(data.updated_through)
        if data.after_id is not None:
            # Keyset paging: an offset would skip a record when another leaves the window.
            query["id[gt]"] = str(data.after_id)
        records = await self._list("/api/invoices", query, INVOICE_FIELDS, where)
        records.sort(key=lambda r: int(r["id"]))
        invoices = [compact_invoice(record) for record in records]
        last = int(records[-1]["id"]) if records else data.after_id
        return SearchInvoicesResult(invoices=invoices, last_id=last, more=len(records) >= PAGE_SIZE)

    async def _mark_invoice_exported(
        self, data: MarkInvoiceExportedInput
    ) -> MarkInvoiceExportedResult:
        where = "mark_invoice_exported"
        # Coupa takes the flag as a parameter of its own PUT, with no other change.
        params = {"exported": "true", "fields": _fields(["id", "exported"])}
        response = await self._send("PUT", f"/api/invoices/{quote(data.id)}", where, params=params)
        if response.status_code != 200:
            raise self._failure(where, response)
        record = _record(response, where)
        return MarkInvoiceExportedResult(
            id=str(record["id"]), exported=bool(record.get("exported", True))
        )

    # -- reading --------------------------------------------------------------

    async def _get_one(self, path: str, fields: list[Any], where: str) -> dict[str, Any] | None:
        response = await self._send("GET", path, where, params={"fields": _fields(fields)})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(where, response)
        return _record(response, where)

    async def _list(
        self, path: str, query: Mapping[str, str], fields: list[Any], where: str
    ) -> list[dict[str, Any]]:
        params = {**query, "fields": _fields(fields)}
        response = await self._send("GET", path, where, params=params)
        body = json_or_none(response)
        if response.status_code != 200 or not isinstance(body, list):
            raise self._failure(where, response)
        return [r for r in body if isinstance(r, dict) and "id" in r]

    async def _find_one(
        self, path: str, query: Mapping[str, str], fields: list[Any], where: str
    ) -> dict[str, Any] | None:
        # A JSON query that matches nothing answers [] (XML would answer 404).
        records = await self._list(path, query, fields, where)
        if len(records) > 1:
            raise PermanentError(
                f"Coupa {where}: {len(records)} records match "
                f"{', '.join(sorted(query))}; a lookup needs one. Look up by id, or make the "
                "key unique in Coupa, then replay the event",
                vendor_code="ambiguous",
            )
        return records[0] if records else None

    # -- HTTP -----------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        where: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        personal: tuple[str, ...] = (),
    ) -> httpx.Response:
        """One call with a bearer token; on a refused token fetch one more and resend."""
        token = await self.tokens.get()
        response = await self._http(method, path, where, params, body, token, personal)
        if response.status_code == 401:
            _log.info("coupa token refused; fetching a new one", connection=self.connection)
            self.tokens.invalidate(token)
            token = await self.tokens.get()
            response = await self._http(method, path, where, params, body, token, personal)
        status = response.status_code
        if status in (401, 403, 408, 429) or status >= 500:
            raise self._failure(where, response, personal)
        return response

    async def _http(
        self,
        method: str,
        path: str,
        where: str,
        params: Mapping[str, str] | None,
        body: Any,
        token: AccessToken,
        personal: tuple[str, ...],
    ) -> httpx.Response:
        client = self.client
        headers = {"Authorization": f"Bearer {token.value.get_secret_value()}"}
        content = None
        if body is not None:
            headers["Content-Type"] = _JSON
            content = json.dumps(body).encode()
        try:
            return await client.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise transport_failure(
                "Coupa",
                where,
                exc,
                timeout=self._config.timeout,
                url=self._config.base_url,
                scrub=lambda text: self._scrub(text, personal),
                repeat="writes are upserts by a natural key",
            ) from None

    def _failure(
        self, where: str, response: httpx.Response, personal: tuple[str, ...] = ()
    ) -> PermanentError | RetryableError:
        error = classify(
            where,
            response.status_code,
            json_or_none(response),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            scrub=lambda text: self._scrub(text, personal),
            excerpt=response.text[:_BODY_EXCERPT].strip(),
            scopes=self._config.scopes,
        )
        if isinstance(error, CredentialsError):
            _log.error(
                "coupa credentials refused",
                connection=self.connection,
                status=response.status_code,
                alert=True,
            )
        assert isinstance(error, PermanentError | RetryableError)
        return error

    # -- OAuth 2.0 ------------------------------------------------------------

    async def _fetch_token(self) -> tuple[SecretStr, float]:
        """Client credentials at /oauth2/token: (access token, expires_in)."""
        client = self.client
        where = f"POST {_TOKEN_PATH}"
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id.get_secret_value(),
            "client_secret": self._client_secret.get_secret_value(),
            "scope": " ".join(self._config.scopes),
        }
        try:
            response = await client.post(_TOKEN_PATH, data=form)
        except httpx.TransportError as exc:
            raise transport_failure(
                "Coupa",
                where,
                exc,
                timeout=self._config.timeout,
                url=self._config.base_url,
                scrub=self._scrub,
            ) from None
        body = json_or_none(response)
        status = response.status_code
        if status == 200 and isinstance(body, Mapping) and body.get("access_token"):
            token = SecretStr(str(body["access_token"]))
            self._issued = [*self._issued[-3:], token]
            lifetime = body.get("expires_in")
            seconds = float(lifetime) if isinstance(lifetime, int | float) else 86400.0
            _log.debug("coupa token fetched", connection=self.connection, expires_in=seconds)
            # Coupa: allow a few seconds between generating a token and using it, or the
            # first calls may be refused. Callers wait here, behind the cache's lock.
            if self._config.token_warmup > 0:
                await asyncio.sleep(self._config.token_warmup)
            return token, seconds
        if status in (408, 429) or status >= 500:
            raise self._failure(where, response)
        code, description = oauth_error(body)
        detail = self._scrub(
            f"{code}: {description}" if code else response.text[:_BODY_EXCERPT].strip()
        )
        if code == "invalid_scope":
            hint = (
                f"the client lacks one of the scopes {', '.join(self._config.scopes)}; add "
                "them to it in Coupa (Setup > Oauth2/OpenID Connect Clients) or request fewer"
            )
        else:
            hint = (
                "check the connection's client_id and client_secret, and that the client's "
                "grant type is client credentials and it is active"
            )
        _log.error("coupa token refused", connection=self.connection, vendor_code=code, alert=True)
        raise CredentialsError(
            f"Coupa {where} answered {status}: {detail or '(empty body)'} ({hint})",
            status_code=status,
            vendor_code=code,
        )

    # -- secrecy --------------------------------------------------------------

    def _scrub(self, text: str, personal: tuple[str, ...] = ()) -> str:
        # Coupa or a library may echo a credential, or a contact's address (personal data).
        return mask_secrets_in(text, [self._client_secret, *self._issued], personal)

    def __repr__(self) -> str:
        return f"CoupaAdapter(connection={self.connection!r}, base_url={self._config.base_url!r})"


def compact_invoice(record: Mapping[str, Any]) -> Invoice:
    """A Coupa invoice (JSON, hyphenated) as the compact `Invoice` flows and pollers read."""
    currency = record.get("currency") or {}
    term = record.get("payment-term") or {}
    requester = record.get("requested-by") or {}
    lines = [
        InvoiceLine(
            line_num=_int(line.get("line-num")),
            description=_text(line.get("description")),
            total=_text(line.get("total")),
            quantity=_text(line.get("quantity")),
            price=_text(line.get("price")),
            tax_amount=_text(line.get("tax-amount")),
            account_code=_text((line.get("account") or {}).get("code")),
            po_number=_text(line.get("po-number")),
            order_line_id=_text(line.get("order-line-id")),
        )
        for line in record.get("invoice-lines") or []
        if isinstance(line, Mapping)
    ]
    return Invoice(
        id=str(record["id"]),
        invoice_number=_text(record.get("invoice-number")) or "",
        status=_text(record.get("status")) or "",
        document_type=_text(record.get("document-type")) or "Invoice",
        invoice_date=_date(record.get("invoice-date")),
        net_due_date=_date(record.get("net-due-date")),
        currency=_text(currency.get("code")) if isinstance(currency, Mapping) else None,
        total=_text(record.get("total-with-taxes") or record.get("gross-total")),
        tax_amount=_text(record.get("tax-amount")),
        payment_term=_text(term.get("code")) if isinstance(term, Mapping) else None,
        exported=bool(record.get("exported")),
        updated_at=_text(record.get("updated-at")),
        requester_email=_text(requester.get("email")) if isinstance(requester, Mapping) else None,
        supplier=_supplier(record.get("supplier")),
        lines=lines,
    )


def _supplier(value: Any) -> SupplierRef | None:
    if not isinstance(value, Mapping) or value.get("id") is None:
        return None
    return SupplierRef(
        id=str(value["id"]), number=_text(value.get("number")), name=_text(value.get("name"))
    )


def _date(value: Any) -> str | None:
    """The calendar date of a Coupa date-time, in the offset Coupa wrote it with.

    Coupa keeps a date entered in its UI as midnight in the company's time zone
    (``2024-05-01T00:00:00-07:00``); converting to UTC first could move it a day.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return value[:10]


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fields(fields: list[Any]) -> str:
    """The ``fields`` parameter: a JSON list of names (and {association: [names]})."""
    return json.dumps(fields, separators=(",", ":"))


def _custom_field_query(field: CustomField) -> dict[str, str]:
    return {f"custom_fields[{field.name.replace('-', '_')}]": field.value}


def _record(response: httpx.Response, where: str) -> dict[str, Any]:
    body = json_or_none(response)
    if not isinstance(body, dict) or "id" not in body:
        raise PermanentError(
            f"Coupa {where} answered {response.status_code} without a JSON record; check the "
            "connection's base_url (Coupa answers XML to a request that does not ask for JSON)"
        )
    return body


def _personal_of(data: UpsertSupplierInput) -> tuple[str, ...]:
    contact = data.primary_contact
    if contact is None:
        return ()
    return tuple(v for v in (contact.email, contact.name_given, contact.name_family) if v)
