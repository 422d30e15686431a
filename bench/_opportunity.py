"""The events every peer benchmark sends, the schema they validate with, the mapping they do.

One event shape for every peer: a ``sales.opportunity.closed_won.v1`` CloudEvent
with 5 line items, about 750 bytes of compact JSON, validated against the real
schema (``schemas/sales.py``). Events are made on the fly from one template per
key, so half a million of them cost no memory: event ``i`` has the id
``evt-<run>-<i:09d>`` and the ``time`` its sender puts in (the moment it was
meant to be sent, so latency can be read from it at the sink).

The key (``subject``, the opportunity id) of event ``i`` is drawn from a seeded
generator: the same seed gives the same keys in the same order, byte for byte.

This module imports only pydantic and the schema modules, and can load them
without the rest of Platypus (`load_typed_model`), so that a peer living in a
virtual environment of its own (quixstreams pins its own pydantic) validates
with the same schema source.
"""

from __future__ import annotations

import importlib
import json
import random
import string
import sys
import types
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, create_model

EVENT_TYPE = "sales.opportunity.closed_won.v1"
SINGLE_TYPE = "application/cloudevents+json"
BATCH_TYPE = "application/cloudevents-batch+json"
LINE_ITEMS = 5
ROOT = Path(__file__).resolve().parent.parent

_ALNUM = string.ascii_letters + string.digits
_PRODUCTS = [
    ("ENT", 2000.0),
    ("PRO", 900.0),
    ("STARTER", 450.0),
    ("SUP", 5000.0),
    ("TRAIN", 1200.0),
    ("SSO", 300.0),
    ("AUDIT", 750.0),
    ("API", 1500.0),
]
_COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Hooli"]
_SUFFIXES = ["Pty Ltd", "GmbH", "Inc.", "SAS", "BV", "Ltd", "AB", "KK"]
_FIRST = ["Dana", "Jo", "Sam", "Alex", "Kim", "Lee", "Robin", "Max", "Noa", "Ari"]
_LAST = ["Owner", "Billing", "Nguyen", "Schmidt", "Garcia", "Okafor", "Tanaka", "Rossi"]
_CURRENCIES = ["EUR", "USD", "GBP", "AUD"]
_CATALOGUE = [
    ("PLAT-ENT", "Platform, enterprise seat", 2000.0),
    ("PLAT-PRO", "Platform, professional seat", 900.0),
    ("PLAT-STARTER", "Platform, starter", 450.0),
    ("PLAT-SUP", "Premium support", 5000.0),
    ("PLAT-TRAIN", "Training day", 1200.0),
    ("PLAT-SSO", "Single sign-on add-on", 300.0),
    ("PLAT-AUDIT", "Audit log retention, 1 year", 750.0),
    ("PLAT-API", "API call pack, 10M", 1500.0),
]
"""Products with a description, for `generate`."""
_ID_MARK = "@@id@@"
_TIME_MARK = "@@time@@"

# What a flow maps (the flow of bench/throughput.py, plus the send time for latency).
FLOW: dict[str, Any] = {
    "name": "bench-closed-won",
    "consumes": [EVENT_TYPE],
    "steps": [
        {
            "name": "deliver",
            "to": "sink.send",
            "payload": {
                "external_id": "data.opportunity_id",
                "account": {"crm_id": "data.account_id", "name": "data.account_name"},
                "amount": "data.amount",
                "currency": "data.currency",
                "lines": "data.line_items[*].{sku: product_code, quantity: quantity, "
                "unit_price: unit_price}",
                "sent_at": "time",
            },
        }
    ],
}


def event_id(run: str, index: int) -> str:
    """The id of event ``index`` of a run; `event_index` reads the index back."""
    return f"evt-{run}-{index:09d}"


def event_index(event_id: str) -> int:
    """The index in an id made by `event_id` (-1 when it is not one of ours)."""
    tail = event_id.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1


def timestamp(at: float) -> str:
    """An RFC 3339 ``time`` with microseconds, as the senders write it."""
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def _sf_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choices(_ALNUM, k=12))  # the 15-character form


def _long_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choices(_ALNUM, k=15))  # the 18-character form


def generate(count: int, keys: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` closed-won events over ``keys`` opportunities, as (id, JSON bytes), seeded.

    Made up front (``bench/throughput.py``, ``bench/kafka.py``,
    ``bench/ingress_codec.py``): 1 to 5 line items, some with a description, and a
    billing contact on 6 events in 10, so the events vary the way real ones do.
    """
    rng = random.Random(seed)
    accounts = [
        (
            _long_id(rng, "001"),
            f"{rng.choice(_COMPANIES)} {rng.choice(_COMPANIES)} {rng.choice(_SUFFIXES)}",
        )
        for _ in range(max(1, keys // 3))
    ]
    opportunities = [(_long_id(rng, "006"), rng.choice(accounts)) for _ in range(keys)]
    start = date(2026, 1, 1)
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        opportunity, (account_id, account_name) = rng.choice(opportunities)
        currency = rng.choice(_CURRENCIES)
        lines: list[dict[str, Any]] = []
        for code, description, price in rng.sample(_CATALOGUE, rng.randint(1, 5)):
            line: dict[str, Any] = {
                "product_code": code,
                "quantity": rng.randint(1, 50),
                "unit_price": round(price * rng.uniform(0.8, 1.0), 2),
                "currency": currency,
            }
            if rng.random() < 0.5:
                line["description"] = description
            lines.append(line)
        closed = start + timedelta(days=rng.randrange(365))
        owner = f"{rng.choice(_FIRST).lower()}.{rng.choice(_LAST).lower()}@example.com"
        data: dict[str, Any] = {
            "opportunity_id": opportunity,
            "account_id": account_id,
            "account_name": account_name,
            "amount": round(sum(li["quantity"] * li["unit_price"] for li in lines), 2),
            "currency": currency,
            "close_date": closed.isoformat(),
            "owner_email": owner,
            "line_items": lines,
        }
        if rng.random() < 0.6:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            domain = account_name.split()[0].lower()
            data["billing_contact"] = {
                "name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}@{domain}.example",
            }
        event_id = f"evt-{seed}-{i:08d}"
        event = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/salesforce/prod",
            "type": EVENT_TYPE,
            "subject": opportunity,
            "time": f"{closed.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
            "data": data,
        }
        out.append((event_id, json.dumps(event, separators=(",", ":")).encode()))
    return out


class Events:
    """``count`` events over ``keys`` opportunities, made on demand."""

    def __init__(self, count: int, keys: int, *, seed: int = 7, run: str = "r0") -> None:
        self.count = count
        self.run = run
        rng = random.Random(seed)
        self._templates = [self._template(rng) for _ in range(keys)]
        self.subjects = [t[3] for t in self._templates]
        self.key_of: list[int] = rng.choices(range(keys), k=count)

    @staticmethod
    def _template(rng: random.Random) -> tuple[bytes, bytes, bytes, str]:
        account_name = f"{rng.choice(_COMPANIES)} {rng.choice(_SUFFIXES)}"
        currency = rng.choice(_CURRENCIES)
        lines: list[dict[str, Any]] = [
            {
                "product_code": code,
                "quantity": rng.randint(1, 50),
                "unit_price": round(price * rng.uniform(0.8, 1.0), 2),
                "currency": currency,
            }
            for code, price in rng.sample(_PRODUCTS, LINE_ITEMS)
        ]
        opportunity = _sf_id(rng, "006")
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        data = {
            "opportunity_id": opportunity,
            "account_id": _sf_id(rng, "001"),
            "account_name": account_name,
            "amount": round(sum(li["quantity"] * li["unit_price"] for li in lines), 2),
            "currency": currency,
            "close_date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "owner_email": f"{first.lower()}.{last.lower()}@example.com",
            "line_items": lines,
        }
        event = {
            "specversion": "1.0",
            "id": _ID_MARK,
            "source": "/salesforce",
            "type": EVENT_TYPE,
            "subject": opportunity,
            "time": _TIME_MARK,
            "data": data,
        }
        text = json.dumps(event, separators=(",", ":"))
        head, _, rest = text.partition(_ID_MARK)
        mid, _, tail = rest.partition(_TIME_MARK)
        return head.encode(), mid.encode(), tail.encode(), opportunity

    def subject(self, index: int) -> str:
        """The ordering key of event ``index``."""
        return self.subjects[self.key_of[index]]

    def raw(self, index: int, time: str = "2026-01-01T00:00:00Z") -> bytes:
        """Event ``index`` as compact JSON bytes, its ``time`` set to ``time``."""
        head, mid, tail, _ = self._templates[self.key_of[index]]
        return b"".join((head, event_id(self.run, index).encode(), mid, time.encode(), tail))


def batch_body(raws: list[bytes]) -> bytes:
    """A ``application/cloudevents-batch+json`` body of these events."""
    return b"[" + b",".join(raws) + b"]"


def map_event(event: dict[str, Any]) -> dict[str, Any]:
    """By hand, what the flow's mapping makes of a parsed event (the peers do this)."""
    data = event["data"]
    return {
        "external_id": data["opportunity_id"],
        "account": {"crm_id": data["account_id"], "name": data["account_name"]},
        "amount": data["amount"],
        "currency": data["currency"],
        "lines": [
            {"sku": li["product_code"], "quantity": li["quantity"], "unit_price": li["unit_price"]}
            for li in data["line_items"]
        ],
        "sent_at": event["time"],
    }


def map_model(event: Any) -> dict[str, Any]:
    """The same mapping from a validated model (what a peer that validates does)."""
    data = event.data
    return {
        "external_id": data.opportunity_id,
        "account": {"crm_id": data.account_id, "name": data.account_name},
        "amount": float(data.amount),
        "currency": data.currency,
        "lines": [
            {"sku": li.product_code, "quantity": li.quantity, "unit_price": float(li.unit_price)}
            for li in data.line_items
        ],
        "sent_at": event.time,
    }


def _shim(name: str, folder: Path) -> None:
    """A bare package ``name`` for ``folder``, so its submodules import without its
    ``__init__`` (Platypus's pulls in the whole engine, and its dependencies)."""
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    sys.modules[name] = module


def load_typed_model() -> type[BaseModel]:
    """The whole event with typed ``data``: `CloudEvent` with ``OpportunityClosedWon``.

    The model every peer validates with. Where Platypus is installed it comes
    from the installed packages; elsewhere (a peer's own virtual environment)
    from the same source files, with only pydantic needed.
    """
    try:
        import platypus  # noqa: F401 -- is the whole engine importable here?
    except ImportError:
        _shim("platypus", ROOT / "platypus")
        _shim("platypus_schemas", ROOT / "schemas")
    envelope = importlib.import_module("platypus.envelope")
    sales = importlib.import_module("platypus_schemas.sales")
    typed: type[BaseModel] = create_model(
        "OpportunityClosedWonEvent",
        __base__=envelope.CloudEvent,
        data=(sales.OpportunityClosedWon, ...),
    )
    return typed
