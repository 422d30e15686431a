"""Event data checked as JSON means it, so that its published JSON Schema is exact.

pydantic's lax mode converts more than a JSON Schema says: ``"5"`` or ``true``
for an integer, ``1`` or ``"yes"`` for a boolean, a Unix timestamp for a date,
``" 1_000 "`` or ``"1e3"`` for a decimal. A client generated from the schema
never sends those, but a server that takes them accepts what its document calls
invalid, and the two drift apart. So event data is validated with
`json_validator`: the model's own validator (every pattern, length, bound and
enum as declared) with those conversions taken out. What it accepts is what
`EventJsonSchema` publishes:

======================  ===============================================================
type                    accepted from JSON, and published as
======================  ===============================================================
``int``                 an integer (``5`` or ``5.0``): ``{"type": "integer"}``
``float``               a number: ``{"type": "number"}``
``bool``                ``true`` or ``false``
``str``                 a string, with the declared pattern and lengths
``date``                ``"YYYY-MM-DD"``: ``{"type": "string", "format": "date"}``
``datetime``            an RFC 3339 date-time with its offset: ``"format": "date-time"``
``Decimal``             a number, or a decimal string without exponent, spaces or ``+``
                        (``"1234.50"``); both within the declared digits and bounds
======================  ===============================================================

Other types keep pydantic's own rules. The envelope's ``time`` takes the same
`Timestamp` rule (CloudEvents says RFC 3339).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, PydanticKnownError, SchemaValidator, core_schema

__all__ = [
    "EventJsonSchema",
    "Timestamp",
    "decimal_json_schema",
    "json_validator",
]

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")

# Keys of a core schema that hold no validation schema to tighten.
_OPAQUE = frozenset({"metadata", "serialization", "cls", "function", "config"})


def _integer(value: Any) -> Any:
    # bool is an int in Python, and "5" parses as one in lax mode: neither is a JSON integer.
    if isinstance(value, bool | str | bytes):
        raise PydanticKnownError("int_type")
    return value


def _date(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("date_type", "Input should be a date as text, YYYY-MM-DD")
    if not _DATE.fullmatch(value):
        raise PydanticCustomError("date_parsing", "Input should be a date as YYYY-MM-DD")
    return value


def _datetime(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time as text")
    if not _DATETIME.fullmatch(value):
        raise PydanticCustomError(
            "datetime_parsing",
            "Input should be an RFC 3339 date-time with its offset, e.g. 2026-01-15T09:00:00Z",
        )
    return value


def _decimal_below_one(value: Any) -> Any:
    # pydantic counts the 0 of ``0`` as a digit before the point, so a decimal with
    # no whole digits (max_digits == decimal_places) would refuse zero; ``0.0`` passes.
    checked = _decimal(value)
    if not isinstance(checked, bool) and isinstance(checked, int | float | str):
        if isinstance(checked, str):
            if checked.lstrip("-") == "0":
                return "0.0"
        elif checked == 0:
            return "0.0"
    return checked


def _decimal(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticKnownError("decimal_type")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise PydanticCustomError(
            "decimal_parsing",
            'Input should be a number, or a decimal as text like "1234.50" '
            "(no exponent, spaces, '+' or leading zeros)",
        )
    return value


Timestamp = Annotated[datetime, BeforeValidator(_datetime)]
"""A ``datetime`` that takes RFC 3339 text only, with its offset (CloudEvents ``time``)."""


def _before(function: Any, schema: dict[str, Any]) -> dict[str, Any]:
    wrapped: dict[str, Any] = dict(core_schema.no_info_before_validator_function(function, schema))
    if "ref" in schema:
        wrapped["ref"] = schema.pop("ref")
    return wrapped


def _model(node: dict[str, Any]) -> dict[str, Any]:
    """A model node that validates with this schema, not the model's own validator.

    pydantic-core swaps a model node whose class is complete for that class's
    prebuilt validator, which would put the lax conversions back. So the node
    builds an instance of a stand-in: a subclass of the model, named as it is,
    made with ``type.__new__`` so that pydantic never completes it. It compares
    equal to the model's own instances (its generic origin is the model), and
    costs nothing per instance, unlike giving each one its class back.
    """
    real: type[BaseModel] = node["cls"]
    stand_in = _STAND_INS.get(real)
    if stand_in is None:
        stand_in = _STAND_INS[real] = type.__new__(
            type(real),
            real.__name__,
            (real,),
            {
                "__slots__": (),
                "__module__": real.__module__,
                "__qualname__": real.__qualname__,
                "__pydantic_complete__": False,
                "__pydantic_generic_metadata__": {"origin": real, "args": (), "parameters": ()},
            },
        )
    return {**node, "cls": stand_in}


_STAND_INS: dict[type[BaseModel], type[BaseModel]] = {}


def _tighten(node: Any) -> Any:
    if isinstance(node, list):
        return [_tighten(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: value if key in _OPAQUE else _tighten(value) for key, value in node.items()}
    kind = out.get("type")
    if kind == "model" and isinstance(out.get("cls"), type) and issubclass(out["cls"], BaseModel):
        return _model(out)
    if kind == "int":
        return _before(_integer, out)
    if kind in ("bool", "float", "str"):
        out["strict"] = True  # strict float still takes an int, as JSON does
    elif kind == "date":
        return _before(_date, out)
    elif kind == "datetime":
        return _before(_datetime, out)
    elif kind == "decimal":
        digits = out.get("max_digits")
        below_one = digits is not None and digits <= out.get("decimal_places", 0)
        return _before(_decimal_below_one if below_one else _decimal, out)
    return out


def json_validator(model: type[BaseModel]) -> SchemaValidator:
    """A validator of ``model`` that takes what its `EventJsonSchema` says, nothing more.

    ``json_validator(Model).validate_python(data)`` returns a ``Model`` (an instance
    of a subclass made for this, equal to ``Model(**data)``) or raises pydantic's
    `ValidationError`, as ``Model.model_validate`` does.
    """
    return SchemaValidator(_tighten(model.__pydantic_core_schema__))


# -- the JSON Schema ------------------------------------------------------------------


class EventJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, with decimals said exactly (see `decimal_json_schema`)
    and integers within the range the ingress stores (`platypus.jsontext`)."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        return decimal_json_schema(schema)

    def int_schema(self, schema: core_schema.IntSchema) -> JsonSchemaValue:
        out = super().int_schema(schema)
        # I-JSON (RFC 7493, 2.2): a larger integer is refused, to be sent as text.
        low, high = INTEGER_RANGE
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = low
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = high
        return out


INTEGER_RANGE = (-(2**63), 2**64 - 1)
"""The integers the ingress stores as numbers (`platypus.jsontext`): what orjson writes."""


def decimal_json_schema(schema: core_schema.DecimalSchema) -> JsonSchemaValue:
    """A decimal as a number or as text, each within the declared digits and bounds.

    The string's pattern is exact for bounds that are whole numbers (``ge=0``,
    ``gt=0``, ``le=100``); other bounds are published on the number only and
    said in the string's ``description``.
    """
    places = schema.get("decimal_places")
    digits = schema.get("max_digits")
    whole = None if digits is None else max(digits - (places or 0), 0)
    bounds: dict[str, Decimal] = {
        key: Decimal(str(schema[key])) for key in ("ge", "gt", "le", "lt") if key in schema
    }
    number: dict[str, Any] = {"type": "number"}
    low = _tighter(bounds, ("ge", "gt"), None if whole is None else -(10**whole), max)
    high = _tighter(bounds, ("le", "lt"), None if whole is None else 10**whole, min)
    if low is not None:
        number["minimum" if low[0] == "ge" else "exclusiveMinimum"] = _json_number(low[1])
    if high is not None:
        number["maximum" if high[0] == "le" else "exclusiveMaximum"] = _json_number(high[1])
    step = schema.get("multiple_of")
    if step is not None:
        number["multipleOf"] = _json_number(Decimal(str(step)))
    elif places is not None:
        number["multipleOf"] = _json_number(Decimal(1).scaleb(-places))
    text: dict[str, Any] = {"type": "string"}
    pattern = _decimal_pattern(whole, places, bounds)
    if pattern is None:
        text["pattern"] = _decimal_pattern(whole, places, {})
        text["description"] = "A decimal with " + ", ".join(f"{k} {v}" for k, v in bounds.items())
    else:
        text["pattern"] = pattern
    return {"anyOf": [number, text]}


def _tighter(
    bounds: dict[str, Decimal], kinds: tuple[str, str], digits_limit: int | None, pick: Any
) -> tuple[str, Decimal] | None:
    """The binding bound of one side: the declared one, or the digits' (exclusive) limit."""
    found = [(kind, bounds[kind]) for kind in kinds if kind in bounds]
    if digits_limit is not None:
        found.append((kinds[1], Decimal(digits_limit)))
    if not found:
        return None
    best = pick(value for _, value in found)
    # At the same value the exclusive bound is the tighter one.
    return next((k, v) for k, v in sorted(found, key=lambda kv: kv[0] != kinds[1]) if v == best)


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _fraction(places: int | None) -> str:
    """An optional fractional part of at most ``places`` places (trailing zeros free)."""
    if places is None:
        return r"(?:\.[0-9]+)?"
    if places == 0:
        return r"(?:\.0+)?"
    return rf"(?:\.[0-9]{{1,{places}}}0*)?"


def _integers(first: int, top: int | None) -> str:
    """Canonical whole numbers from ``first`` (0 or 1) to ``top`` (None: no end)."""
    if top is None:
        return "0|[1-9][0-9]*" if first == 0 else "[1-9][0-9]*"
    ones = [_from_one_to(top)] if top >= 1 else []
    return "|".join(["0", *ones] if first == 0 else ones)


def _decimal_pattern(
    whole: int | None, places: int | None, bounds: dict[str, Decimal]
) -> str | None:
    """The exact pattern of canonical decimal text, or None for bounds it cannot say.

    Text is canonical: an optional ``-``, a whole part without leading zeros, an
    optional fraction; ``whole`` caps the whole part's digits, ``places`` the
    fraction's (trailing zeros do not count, as for pydantic).
    """
    cap = None if whole is None else 10**whole - 1  # the largest whole part
    if not bounds:
        return f"^-?(?:{_integers(0, cap)}){_fraction(places)}$"
    lower = [(k, v) for k, v in bounds.items() if k in ("ge", "gt")]
    upper = [(k, v) for k, v in bounds.items() if k in ("le", "lt")]
    if len(lower) > 1 or len(upper) > 1 or any(v != 0 for _, v in lower):
        return None
    if any(v < 0 or v != v.to_integral_value() for _, v in upper):
        return None
    positive_only = lower == [("gt", Decimal(0))]
    top, limit = cap, None
    if upper:
        kind, bound = upper[0]
        # Whole parts below the bound take any fraction; the bound itself only zeros.
        top = int(bound) - 1 if cap is None else min(int(bound) - 1, cap)
        if kind == "le" and (cap is None or bound <= cap):
            limit = int(bound)
    first = 1 if positive_only else 0
    alternatives = []
    if top is None or top >= first:
        alternatives.append(f"(?:{_integers(first, top)}){_fraction(places)}")
    if limit is not None and limit >= first:
        alternatives.append(rf"{limit}(?:\.0+)?")
    if positive_only and places != 0 and (top is None or top >= 0):
        nonzero = r"[0-9]*[1-9][0-9]*" if places is None else rf"[0-9]{{0,{places - 1}}}[1-9]0*"
        alternatives.append(rf"0\.{nonzero}")
    if not lower:
        alternatives.append(f"-(?:{_integers(0, cap)}){_fraction(places)}")
    elif not positive_only:
        alternatives.append(r"-0(?:\.0+)?")  # ge=0 takes -0, which equals 0
    if not alternatives:
        return None
    return "^(?:" + "|".join(alternatives) + ")$"


def _up_to(top: int) -> str:
    """Canonical integers from 0 to ``top`` (``top`` >= 0), as alternatives."""
    return "|".join(["0", *([_from_one_to(top)] if top >= 1 else [])])


def _from_one_to(top: int) -> str:
    """Canonical integers from 1 to ``top`` (``top`` >= 1), as alternatives."""
    text = str(top)
    size = len(text)
    if text == "9" * size:
        return f"[1-9][0-9]{{0,{size - 1}}}"
    alternatives = [f"[1-9][0-9]{{0,{size - 2}}}"] if size > 1 else []
    for i, char in enumerate(text):
        low = 1 if i == 0 else 0
        digit = int(char)
        if digit > low:
            rest = size - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            alternatives.append(f"{text[:i]}[{low}-{digit - 1}]{tail}")
    alternatives.append(text)
    return "|".join(alternatives)
