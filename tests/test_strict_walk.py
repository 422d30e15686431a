"""`platypus.strict.DataCheck` on the shapes the walk reads its own way: aliases, root models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, Field, RootModel

from platypus.strict import DataCheck


class Price(RootModel[Decimal]):
    """A root model holding a decimal."""


class Line(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    unit_price: Decimal = Field(alias="unitPrice")
    price: Price | None = None


class Order(BaseModel):
    total: Decimal
    lines: list[Line] = []
    fee: Price | None = None


def _errors(data: dict[str, Any]) -> list[tuple[tuple[int | str, ...], Any]]:
    validated = Order.model_validate_json(orjson.dumps(data), strict=True)
    errors, _, _ = DataCheck(Order).apply(validated, data)
    return [(tuple(e["loc"]), e["input"]) for e in errors]


@pytest.mark.parametrize(
    ("data", "found"),
    [
        ({"total": 1}, []),
        ({"total": "1.50", "lines": [{"unitPrice": "2"}], "fee": "0.5"}, []),
        ({"total": "1e3"}, [(("total",), "1e3")]),
        (
            {"total": 1, "lines": [{"unitPrice": 1}, {"unitPrice": " 2"}]},
            [(("lines", 1, "unitPrice"), " 2")],
        ),
        ({"total": 1, "lines": [{"unit_price": "+2"}]}, [(("lines", 0, "unit_price"), "+2")]),
        ({"total": 1, "fee": "007"}, [(("fee",), "007")]),
        (
            {"total": 1, "lines": [{"unitPrice": 1, "price": "1_0"}]},
            [(("lines", 0, "price"), "1_0")],
        ),
    ],
)
def test_decimal_text_is_refused_where_it_was_sent_by_alias_name_or_root_model(
    data: dict[str, Any], found: list[tuple[tuple[int | str, ...], Any]]
) -> None:
    assert _errors(data) == found
