"""A small project for the authoring tests: typed adapters and connections, no network."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from platypus.adapter import Action, Adapter, AdapterRegistry, Request
from platypus.config import ConnectionSpec, ProjectConfig
from platypus_adapters.sink import SinkAdapter


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: str
    country: str


class OrderInput(BaseModel):
    """The typed input of ``orders.create``."""

    model_config = ConfigDict(extra="forbid")

    reference: str
    amount: Decimal
    ordered_on: date
    quantity: int = 1
    ship_to: Address | None = None


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    quantity: int = 1


class LinesInput(BaseModel):
    """The typed input of ``orders.lines``: a list of objects."""

    model_config = ConfigDict(extra="forbid")

    lines: list[Line]


class PostParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "/"


class UrlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str


class OrdersAdapter(Adapter):
    """An order system with a typed ``create`` and an untyped ``post``."""

    name = "orders"
    Settings = UrlSettings
    actions: ClassVar = {
        "create": Action(input=OrderInput),
        "lines": Action(input=LinesInput),
        "post": Action(params=PostParams),
    }

    async def call(self, request: Request) -> Any:  # pragma: no cover - always faked
        raise NotImplementedError


# The shipped adapters whose typed inputs and results the corpus exercises.
ADAPTERS = AdapterRegistry(
    {
        "orders": OrdersAdapter,
        "sink": SinkAdapter,
        "slack": "platypus_adapters.slack:SlackAdapter",
        "zuora": "platypus_adapters.zuora:ZuoraAdapter",
        "salesforce": "platypus_adapters.salesforce:SalesforceAdapter",
    }
)
CONFIG = ProjectConfig(
    connections={
        "orders": ConnectionSpec(adapter="orders", settings={"base_url": "http://127.0.0.1"}),
        "billing": ConnectionSpec(adapter="orders", settings={"base_url": "http://127.0.0.1"}),
        "legacy": ConnectionSpec(adapter="ordrs"),
        # Settings are checked when a connection starts, not by lint: none needed here.
        "slack": ConnectionSpec(adapter="slack"),
        "zuora": ConnectionSpec(adapter="zuora"),
        "salesforce": ConnectionSpec(adapter="salesforce"),
    }
)
