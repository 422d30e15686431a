"""A fake Coupa instance: HTTPS on loopback speaking the Core API's JSON wire format.

Written from Coupa's Core API documentation (Get Started, API Operators,
Querying Options, Differences between XML and JSON, OAuth 2.0 and OIDC, the
Invoices, Suppliers and Purchase Orders resources, and the guide to integrating
invoices with an ERP). What it does, as Coupa does:

* ``POST /oauth2/token``: client credentials (``client_id``, ``client_secret``,
  ``scope`` space-separated); a scope the client lacks is ``invalid_scope``. A
  token lives ``token_lifetime`` seconds (Coupa: 24 hours) and, with
  ``token_delay``, is refused for that long after it is issued.
* ``/api/...`` wants ``Authorization: Bearer`` (401 otherwise) and the scope of
  the resource and verb (``core.invoice.read``, ``core.supplier.write``..., 403
  otherwise). It answers JSON only to ``Accept: application/json`` (XML
  otherwise), reads bodies only as ``Content-Type: application/json``, and names
  fields with dashes.
* Queries: ``attr=value`` and ``attr[op]=value`` with Coupa's operators
  (contains, starts_with, ends_with, gt, lt, gt_or_eq, lt_or_eq, not_eq, in,
  not_in, blank), through associations (``supplier[number]``) and custom fields
  (``custom_fields[name]``), dashes or underscores alike; records by id, at most
  50 (``offset`` pages); no match is ``[]``. ``fields=[...]`` (JSON) limits the
  answer to those fields; an unknown query attribute is refused.
* ``PUT /api/invoices/<id>?exported=true`` marks an invoice exported;
  ``POST``/``PUT /api/suppliers`` create and update suppliers, a name or number
  already taken is refused with ``{"errors": {"name": ["has already been taken"]}}``.

Scripted answers (`fail_next`) come before authentication; `Slow` processes the
request and answers late.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.scripted import RESET, Answer, Reply, ScriptedFake, Slow

__all__ = ["RESET", "FakeCoupa", "Reply", "Slow"]

PACIFIC = timezone(timedelta(hours=-8))
_SCOPES = {
    ("invoices", "GET"): "core.invoice.read",
    ("invoices", "PUT"): "core.invoice.write",
    ("suppliers", "GET"): "core.supplier.read",
    ("suppliers", "POST"): "core.supplier.write",
    ("suppliers", "PUT"): "core.supplier.write",
    ("purchase_orders", "GET"): "core.purchase_order.read",
}
_OPERATORS = {
    "contains",
    "starts_with",
    "ends_with",
    "gt",
    "lt",
    "gt_or_eq",
    "lt_or_eq",
    "not_eq",
    "in",
    "not_in",
    "blank",
}
_PO_METHODS = {"cxml", "xml", "email", "prompt", "mark_as_sent", "buy_online"}
_MATCHING = {"2-way", "3-way", "3-way-direct", "none"}


def _errors(field_name: str, *messages: str) -> dict[str, Any]:
    return {"errors": {field_name: list(messages)}}


class FakeCoupa(ScriptedFake):
    """A Coupa instance on loopback over HTTPS; see the module docstring."""

    client_id = "fake-coupa-client-3e1b"
    client_secret = "fake-coupa-secret-9f27c4"

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        """Forget records, tokens, scripts and the request log."""
        with self._lock:
            self.client_scopes = {
                "core.common.read",
                "core.invoice.read",
                "core.invoice.write",
                "core.purchase_order.read",
                "core.supplier.read",
                "core.supplier.write",
            }
            self.token_lifetime = 86399
            self.token_delay = 0.0
            self.tokens: dict[str, tuple[float, float, frozenset[str]]] = {}
            self.tokens_issued = 0
            self.records: dict[str, dict[int, dict[str, Any]]] = {
                "invoices": {},
                "suppliers": {},
                "purchase_orders": {},
            }
            self._ids = itertools.count(101)
            self._forget_requests()

    # -- programming --------------------------------------------------------

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens = {t: (float("-inf"), u, s) for t, (_, u, s) in self.tokens.items()}

    def add_supplier(self, name: str, number: str | None = None, **fields: Any) -> int:
        with self._lock:
            record_id = next(self._ids)
            now = _stamp()
            self.records["suppliers"][record_id] = {
                "id": record_id,
                "created-at": now,
                "updated-at": now,
                "name": name,
                "display-name": name,
                "number": number,
                "status": "active",
                "po-method": "email",
                "invoice-matching-level": "2-way",
                "custom-fields": {},
                **fields,
            }
            return record_id

    def add_purchase_order(self, po_number: str, supplier_id: int, **fields: Any) -> int:
        with self._lock:
            record_id = next(self._ids)
            supplier = self.records["suppliers"][supplier_id]
            now = _stamp()
            self.records["purchase_orders"][record_id] = {
                "id": record_id,
                "created-at": now,
                "updated-at": now,
                "po-number": po_number,
                "status": "issued",
                "version": 1,
                "exported": False,
                "currency": {"id": 1, "code": "USD"},
                "supplier": _supplier_ref(supplier),
                "order-lines": [],
                **fields,
            }
            return record_id

    def add_invoice(
        self,
        invoice_number: str,
        supplier_id: int,
        *,
        status: str = "approved",
        updated_at: datetime | None = None,
        lines: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> int:
        """Store an invoice as Coupa has it after approval; return its id."""
        with self._lock:
            record_id = next(self._ids)
            supplier = self.records["suppliers"][supplier_id]
            lines = lines or [
                {"description": "Laptop stands", "quantity": "10.0", "price": "45.00",
                 "account": "6100-IT"},
                {"description": "Delivery", "quantity": "1.0", "price": "20.00",
                 "account": "6900-FREIGHT"},
            ]  # fmt: skip
            built = []
            for number, line in enumerate(lines, 1):
                total = Decimal(line["quantity"]) * Decimal(line["price"])
                built.append(
                    {
                        "id": record_id * 100 + number,
                        "line-num": number,
                        "description": line["description"],
                        "quantity": line["quantity"],
                        "price": line["price"],
                        "total": f"{total:.2f}",
                        "tax-amount": line.get("tax", "0.0"),
                        "type": "InvoiceQuantityLine",
                        "po-number": line.get("po_number"),
                        "order-line-id": line.get("order_line_id"),
                        "account": {"id": 7, "code": line["account"], "name": line["account"]},
                    }
                )
            net = sum(Decimal(line["total"]) for line in built)
            tax = sum(Decimal(line["tax-amount"]) for line in built)
            stamp = _stamp(updated_at)
            self.records["invoices"][record_id] = {
                "id": record_id,
                "created-at": stamp,
                "updated-at": stamp,
                "invoice-number": invoice_number,
                "status": status,
                "document-type": "Invoice",
                "invoice-date": "2026-11-03T00:00:00-08:00",
                "net-due-date": "2026-12-03T00:00:00-08:00",
                "currency": {"id": 1, "code": "USD"},
                "supplier": _supplier_ref(supplier),
                "payment-term": {"id": 3, "code": "Net 30"},
                "requested-by": {"id": 20, "login": "jo.buyer", "email": "jo.buyer@acme.example"},
                "gross-total": f"{net + tax:.2f}",
                "total-with-taxes": f"{net + tax:.2f}",
                "tax-amount": f"{tax:.2f}",
                "exported": False,
                "last-exported-at": None,
                "invoice-lines": built,
                "custom-fields": {},
                **fields,
            }
            return record_id

    # -- inspection ---------------------------------------------------------

    def invoice(self, record_id: int) -> dict[str, Any]:
        with self._lock:
            return dict(self.records["invoices"][record_id])

    def suppliers_numbered(self, number: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.records["suppliers"].values() if s.get("number") == number]

    # -- the vendor -----------------------------------------------------------

    def handle(
        self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        if path == "/oauth2/token" and method == "POST":
            return self._token(body)
        if not path.startswith("/api/"):
            return Answer(404, "<html><body>Not found</body></html>")
        parts = path.split("/")[2:]
        resource = parts[0]
        if resource not in self.records or len(parts) > 2:
            return Answer(404, {"errors": ["No route matches this path"]})
        token = headers.get("authorization", "").removeprefix("Bearer ")
        with self._lock:
            granted = self.tokens.get(token)
        now = time.time()
        if granted is None or granted[0] <= now or granted[1] > now:
            return Answer(401, None, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        needed = _SCOPES.get((resource, method))
        if needed is None:
            return Answer(405, {"errors": [f"{method} is not allowed on /api/{resource}"]})
        if needed not in granted[2]:
            return Answer(403, {"errors": [f"The access token lacks the scope {needed}"]})
        if "application/json" not in headers.get("accept", ""):
            # Coupa's default format is XML.
            return Answer(
                200,
                '<?xml version="1.0" encoding="UTF-8"?><errors><error>Ask for JSON with '
                "Accept: application/json</error></errors>",
                {"content-type": "application/xml"},
            )
        data: Any = None
        if body:
            if "application/json" not in headers.get("content-type", ""):
                return Answer(400, {"errors": ["The body is not JSON (Content-Type)"]})
            try:
                data = json.loads(body)
            except ValueError:
                return Answer(400, {"errors": ["The body is not valid JSON"]})
        query = parse_qsl(query_string, keep_blank_values=True)
        with self._lock:
            if len(parts) == 1:
                if method == "GET":
                    return self._list(resource, query)
                return self._create(resource, data, query)
            try:
                record_id = int(parts[1])
            except ValueError:
                return Answer(404, {"errors": [f"Couldn't find {resource} with id {parts[1]}"]})
            record = self.records[resource].get(record_id)
            if record is None:
                return Answer(404, {"errors": [f"Couldn't find {resource} with id {record_id}"]})
            if method == "GET":
                return Answer(200, _project(record, _fields_of(query)))
            return self._update(resource, record, data, query)

    # -- OAuth --------------------------------------------------------------

    def _token(self, body: bytes) -> Answer:
        form = dict(parse_qsl(body.decode()))
        if form.get("grant_type") != "client_credentials":
            return Answer(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return Answer(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
        requested = set(form.get("scope", "").split())
        with self._lock:
            denied = sorted(requested - self.client_scopes)
            if not requested or denied:
                return Answer(
                    400,
                    {
                        "error": "invalid_scope",
                        "error_description": "The requested scope is invalid, unknown, or "
                        f"malformed: {' '.join(denied)}",
                    },
                )
            token = secrets.token_urlsafe(48)
            now = time.time()
            self.tokens[token] = (
                now + self.token_lifetime,
                now + self.token_delay,
                frozenset(requested),
            )
            self.tokens_issued += 1
            lifetime = self.token_lifetime
        return Answer(
            200,
            {"access_token": token, "token_type": "bearer", "expires_in": lifetime,
             "scope": " ".join(sorted(requested))},
        )  # fmt: skip

    # -- records ------------------------------------------------------------

    def _list(self, resource: str, query: list[tuple[str, str]]) -> Answer:
        fields = _fields_of(query)
        offset = 0
        tests = []
        for key, value in query:
            if key in ("fields", "return_object"):
                continue
            if key == "offset":
                offset = int(value)
                continue
            try:
                tests.append(_condition(key, value))
            except ValueError as exc:
                return Answer(400, {"errors": [str(exc)]})
        found = [
            r for _, r in sorted(self.records[resource].items()) if all(test(r) for test in tests)
        ]
        page = found[offset : offset + 50]
        return Answer(200, [_project(r, fields) for r in page])

    def _create(self, resource: str, data: Any, query: list[tuple[str, str]]) -> Answer:
        if resource != "suppliers" or not isinstance(data, dict):
            return Answer(400, {"errors": ["Only suppliers are created here"]})
        problems = self._supplier_problems(data, None)
        if problems:
            return Answer(400, problems)
        record_id = next(self._ids)
        now = _stamp()
        self.records["suppliers"][record_id] = {
            "id": record_id,
            "created-at": now,
            "updated-at": now,
            "status": "active",
            "custom-fields": {},
            **data,
        }
        return Answer(201, _project(self.records["suppliers"][record_id], _fields_of(query)))

    def _update(
        self, resource: str, record: dict[str, Any], data: Any, query: list[tuple[str, str]]
    ) -> Answer:
        params = dict(query)
        if resource == "invoices":
            if params.get("exported") == "true" and data is None:
                record["exported"] = True
                record["last-exported-at"] = record["updated-at"] = _stamp()
                return Answer(200, _project(record, _fields_of(query)))
            return Answer(400, {"errors": ["The fake updates only the exported flag of invoices"]})
        if not isinstance(data, dict):
            return Answer(400, {"errors": ["A supplier update needs a JSON body"]})
        problems = self._supplier_problems(data, record["id"])
        if problems:
            return Answer(400, problems)
        record.update(data)
        record["updated-at"] = _stamp()
        return Answer(200, _project(record, _fields_of(query)))

    def _supplier_problems(self, data: dict[str, Any], own_id: int | None) -> dict[str, Any]:
        if own_id is None and not data.get("name"):
            return _errors("name", "can't be blank")
        others = [s for s in self.records["suppliers"].values() if s["id"] != own_id]
        if data.get("name") and any(s.get("name") == data["name"] for s in others):
            return _errors("name", "has already been taken")
        if data.get("number") and any(s.get("number") == data["number"] for s in others):
            return _errors("number", "has already been taken")
        if "po-method" in data and data["po-method"] not in _PO_METHODS:
            return _errors("po-method", "is not included in the list")
        if "invoice-matching-level" in data and data["invoice-matching-level"] not in _MATCHING:
            return _errors("invoice-matching-level", "is not included in the list")
        unknown = [k for k in data if "_" in k]
        if unknown:
            return _errors(
                unknown[0], "is not a field of supplier (Coupa names fields with dashes)"
            )
        return {}


# -- queries and fields ----------------------------------------------------------------------


_QUERYABLE = frozenset(
    {
        "id", "status", "exported", "updated-at", "created-at", "number", "name", "po-number",
        "invoice-number", "supplier", "custom-fields", "document-type", "currency", "version",
    }
)  # fmt: skip


def _condition(key: str, value: str) -> Any:
    """A test on a record for one ``attr[assoc][op]=value`` query parameter."""
    names = [part.rstrip("]") for part in key.split("[")]
    # Coupa takes dashes or underscores in query attributes alike.
    names = [n if n in _OPERATORS else n.replace("_", "-") for n in names]
    op = names.pop() if len(names) > 1 and names[-1] in _OPERATORS else "eq"
    if names[0] not in _QUERYABLE:
        raise ValueError(f"Invalid query parameter {key}: no attribute {names[0]}")

    def test(record: dict[str, Any]) -> bool:
        have: Any = record
        for name in names:
            if not isinstance(have, dict) or name not in have:
                return False
            have = have[name]
        return _compare(op, have, value)

    return test


def _compare(op: str, have: Any, value: str) -> bool:
    if op == "blank":
        return (have in (None, "")) == (value == "true")
    if have is None:
        return op in ("not_eq", "not_in")
    if isinstance(have, bool):
        have = "true" if have else "false"
    if op in ("in", "not_in"):
        inside = str(have) in value.split(",")
        return inside if op == "in" else not inside
    if isinstance(have, int):
        left: Any = have
        right: Any = int(value)
    elif isinstance(have, str) and _is_time(have):
        left, right = _instant(have), _instant(value)
    else:
        left, right = str(have), value
    return {
        "eq": left == right,
        "not_eq": left != right,
        "gt": left > right,
        "lt": left < right,
        "gt_or_eq": left >= right,
        "lt_or_eq": left <= right,
        "contains": str(right) in str(left),
        "starts_with": str(left).startswith(str(right)),
        "ends_with": str(left).endswith(str(right)),
    }[op]


def _is_time(text: str) -> bool:
    return len(text) >= 19 and text[4] == "-" and text[10] == "T"


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    # Coupa reads a date or time without a zone as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _fields_of(query: list[tuple[str, str]]) -> list[Any] | None:
    raw = dict(query).get("fields")
    return json.loads(raw) if raw else None


def _project(record: dict[str, Any], fields: list[Any] | None) -> Any:
    """``record`` with only ``fields`` (Coupa's ``fields=[...]``), or all of it."""
    if fields is None:
        return record
    out: dict[str, Any] = {}
    for item in fields:
        if isinstance(item, str):
            name = item.replace("_", "-")
            if name in record:
                out[name] = record[name]
        elif isinstance(item, dict):
            for association, inner in item.items():
                name = association.replace("_", "-")
                value = record.get(name)
                if isinstance(value, list):
                    out[name] = [_project(v, inner) for v in value if isinstance(v, dict)]
                elif isinstance(value, dict):
                    out[name] = _project(value, inner)
                elif name in record:
                    out[name] = value
    return out


def _supplier_ref(supplier: dict[str, Any]) -> dict[str, Any]:
    return {"id": supplier["id"], "name": supplier["name"], "number": supplier.get("number")}


def _stamp(moment: datetime | None = None) -> str:
    """A Coupa time stamp: ISO 8601 with the instance's offset."""
    return (moment or datetime.now(UTC)).astimezone(PACIFIC).isoformat(timespec="seconds")
