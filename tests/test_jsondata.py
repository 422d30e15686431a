"""Event data is taken as JSON means it, and its JSON Schema says exactly that."""

from __future__ import annotations

import functools
import json
import re
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field, ValidationError

from platypus.envelope import CloudEvent
from platypus.jsondata import EventJsonSchema, json_validator
from platypus.schema_registry import SchemaRegistry
from tests.support import closed_won


class Inner(BaseModel):
    count: int


class Sample(BaseModel):
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    day: date = date(2026, 1, 1)
    moment: datetime | None = None
    price: Annotated[Decimal, Field(max_digits=18, decimal_places=4)] = Decimal(0)
    inner: Inner | None = None


VALIDATOR = json_validator(Sample)


def accepts(data: dict[str, Any]) -> bool:
    try:
        VALIDATOR.validate_python(data)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "data",
    [
        {"count": "5"},
        {"count": True},
        {"ratio": "1.5"},
        {"ratio": True},
        {"flag": 1},
        {"flag": "true"},
        {"day": 0},
        {"day": "2026-01-15T00:00:00"},
        {"moment": 1_700_000_000},
        {"moment": "2026-01-15T09:00:00"},  # no offset: not RFC 3339
        {"moment": "2026-01-15 09:00:00Z"},
        {"price": " 1.5"},
        {"price": "1e3"},
        {"price": "1_000"},
        {"price": "+1"},
        {"price": "01.5"},
        {"price": ".5"},
        {"inner": {"count": "5"}},  # nested models are held to it too
    ],
)
def test_what_lax_pydantic_converts_but_json_schema_refuses_is_refused(
    data: dict[str, Any],
) -> None:
    Sample.model_validate(data)  # the model's own lax validation takes it...
    assert not accepts(data)  # ...this does not


@pytest.mark.parametrize(
    "data",
    [
        {"count": 5},
        {"count": 5.0},  # JSON Schema: a number with no fraction is an integer
        {"ratio": 1},
        {"flag": False},
        {"day": "2026-01-15"},
        {"moment": "2026-01-15T09:00:00Z"},
        {"moment": "2026-01-15t09:00:00.123456+02:00"},
        {"price": 12.5},
        {"price": 12},
        {"price": "12.50"},
        {"price": "-0.0001"},
        {"price": "1.50000"},  # trailing zeros: still four places
        {"inner": {"count": 1}},
    ],
)
def test_what_json_schema_allows_is_accepted(data: dict[str, Any]) -> None:
    assert accepts(data)


def test_the_result_is_the_model_and_equals_what_the_model_itself_validates() -> None:
    model = VALIDATOR.validate_python({"inner": {"count": 2}, "price": "1.25"})
    assert isinstance(model, Sample)
    assert isinstance(model.inner, Inner)
    assert type(model).__name__ == "Sample"
    assert model.price == Decimal("1.25")
    assert model.model_fields_set == {"inner", "price"}
    assert model == Sample.model_validate({"inner": {"count": 2}, "price": "1.25"})


def test_the_registry_validates_event_data_this_way() -> None:
    registry = SchemaRegistry.default()
    good = closed_won()
    registry.validate(CloudEvent.model_validate(good))
    bad = closed_won()
    bad["data"]["line_items"][0]["quantity"] = "2"
    with pytest.raises(Exception, match="data does not match its schema") as caught:
        registry.validate(CloudEvent.model_validate(bad))
    assert [e.path for e in caught.value.errors] == ["data.line_items[0].quantity"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("time", ["2026-01-15T09:00:00", 1_700_000_000, "2026-01-15"])
def test_the_envelope_time_is_rfc_3339_with_its_offset(time: Any) -> None:
    event = closed_won()
    CloudEvent.model_validate({**event, "time": "2026-01-15T09:00:00Z"})
    with pytest.raises(ValidationError, match="time"):
        CloudEvent.model_validate({**event, "time": time})


# -- the published decimal is exact ------------------------------------------------------

CONSTRAINTS = [
    {"max_digits": 18, "decimal_places": 4},
    {"max_digits": 5, "decimal_places": 2},
    {"max_digits": 3, "decimal_places": 0},
    {"decimal_places": 2},
    {"gt": 0},
    {"ge": 0},
    {"ge": 0, "le": 100},
    {"gt": 0, "lt": 10},
    {"le": 250},
    {"max_digits": 4, "decimal_places": 1, "ge": 0, "le": 100},
    {"max_digits": 2, "decimal_places": 2},
    {"gt": 0, "decimal_places": 0},
    {"gt": 0, "lt": 1, "decimal_places": 3},
    {"max_digits": 3, "decimal_places": 1, "le": 1000},
]


@functools.cache
def _published(frozen: tuple[tuple[str, Any], ...]) -> tuple[dict[str, Any], Any]:
    constraints = dict(frozen)

    class Priced(BaseModel):
        value: Annotated[Decimal, Field(**constraints)]

    schema = Priced.model_json_schema(schema_generator=EventJsonSchema)
    number, text = schema["properties"]["value"]["anyOf"]
    return {"number": number, "text": text}, json_validator(Priced)


def _taken(validator: Any, value: Any) -> bool:
    try:
        validator.validate_python({"value": value})
    except ValidationError:
        return False
    return True


_digits = st.text("0123456789", min_size=1, max_size=7)
decimal_text = st.one_of(
    st.builds(
        lambda sign, whole, frac: sign + whole + frac,
        st.sampled_from(["", "-", "+", " "]),
        _digits,
        st.one_of(st.just(""), _digits.map(lambda d: "." + d), st.just("."), st.just("e3")),
    ),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.text("0123456789.-e ", max_size=8),
)


@pytest.mark.parametrize("constraints", CONSTRAINTS, ids=str)
@settings(max_examples=200, deadline=None)
@given(text=decimal_text)
def test_decimal_text_matches_the_published_pattern_exactly_when_it_is_accepted(
    constraints: dict[str, Any], text: str
) -> None:
    published, validator = _published(tuple(sorted(constraints.items())))
    pattern = published["text"]["pattern"]
    assert (re.fullmatch(pattern, text) is not None) == _taken(validator, text), pattern


def _within(schema: dict[str, Any], value: int | float) -> bool:
    # JSON Schema's reading of a JSON number: the decimal it is written as.
    exact = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
    checks = {
        "minimum": lambda b: exact >= b,
        "maximum": lambda b: exact <= b,
        "exclusiveMinimum": lambda b: exact > b,
        "exclusiveMaximum": lambda b: exact < b,
        "multipleOf": lambda b: exact % b == 0,
    }
    return all(checks[k](Fraction(str(v))) for k, v in schema.items() if k in checks)


@pytest.mark.parametrize("constraints", CONSTRAINTS, ids=str)
@settings(max_examples=200, deadline=None)
@given(
    number=st.one_of(
        st.integers(-(10**16), 10**16),
        st.decimals(allow_nan=False, allow_infinity=False, places=5).map(float),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
    )
)
def test_a_decimal_number_is_within_the_published_bounds_exactly_when_it_is_accepted(
    constraints: dict[str, Any], number: int | float
) -> None:
    published, validator = _published(tuple(sorted(constraints.items())))
    assert _within(published["number"], number) == _taken(validator, number), published


def test_the_exported_schema_of_a_type_refuses_lots_for_an_amount(tmp_path: Path) -> None:
    registry = SchemaRegistry.default()
    [path] = [
        p for p in registry.export(tmp_path) if p.name == "sales.opportunity.closed_won.v1.json"
    ]
    validator = Draft202012Validator(json.loads(path.read_text()))
    good = closed_won()["data"]
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({**good, "amount": "lots"}))  # was valid by the document
    assert not list(validator.iter_errors({**good, "amount": "2500.50"}))
