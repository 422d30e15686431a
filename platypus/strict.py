"""Event data as JSON means it: what pydantic's strict JSON mode leaves to take out.

Event data is validated from its JSON bytes in pydantic's strict mode
(`platypus.schema_registry`), which takes nothing a JSON Schema would not:
``"10"``, ``" 10 "``, ``10.0`` or ``true`` are not integers, ``1`` is not a
boolean, ``"2026-01-02T00:00:00"`` or ``0`` is not a date, a number is not a
string. Two conversions remain in strict mode, and are refused here, after
validation, by looking at the text the sender wrote:

* a ``Decimal`` from text that is not plain decimal notation: ``" 10.5 "``,
  ``"1e3"``, ``"+5"``, ``"1_000"``, ``"007"`` (a number, or text like
  ``"-1234.50"``, is what is taken);
* a ``datetime`` from text that is not an RFC 3339 date-time with seconds and
  an offset: ``"2026"`` (read as a Unix timestamp), ``"2026-01-02T10:00"``.

A field marked `platypus.schema.Lenient` takes pydantic's lax conversions, and
its value is stored as converted, so flows read what was validated.

Only the fields whose type holds a decimal, a date-time, a lenient field or a
model that does are looked at (a plan per model class, made once), so an
event costs a dict lookup per such field.
"""

from __future__ import annotations

import re
import types
import typing
from collections import abc
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, RootModel
from pydantic_core import InitErrorDetails, PydanticCustomError, to_jsonable_python

from platypus.schema import Lenient

__all__ = ["RFC3339_DATE_TIME", "DataCheck"]

RFC3339_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
"""RFC 3339 section 5.6 ``date-time``: seconds and an offset are required."""

_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?", re.ASCII)
_LENIENT = type(Lenient)
_MISSING = object()

# What a field can hold, for this check: a decimal or a date-time (checked from
# the JSON alone), a model, a list or dict of something checked, a lenient field
# (stored as validated), or a union of several, looked at by the validated value.
_DECIMAL, _DATETIME, _MODEL, _LIST, _DICT, _CONVERTED, _BY_VALUE = range(7)

_DECIMAL_MESSAGE = (
    'Input should be a number, or decimal text like "-1234.50" (no spaces, exponent, '
    "'+', '_' or leading zeros)"
)
_DATETIME_MESSAGE = (
    "Input should be an RFC 3339 date-time with seconds and an offset, e.g. 2026-01-15T09:00:00Z"
)


@dataclass(frozen=True, slots=True)
class _Kind:
    tag: int
    sub: Any = None  # the model of _MODEL, the item _Kind of _LIST and _DICT


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    keys: tuple[str, ...]  # where the value is in the JSON object: alias, then name
    kind: _Kind
    # Copied out of `keys` and `kind` for the walk, which reads them for every
    # field of every model of every event: the only key when there is one
    # (no alias), and the kind's tag.
    key: str | None
    tag: int


_plans: dict[type[BaseModel], tuple[_Field, ...] | None] = {}
_planning: set[type[BaseModel]] = set()
# The planned models that are root models, so that the walk asks a set rather
# than ``isinstance`` (an ABC check through pydantic's metaclass, ~0.3 us a model).
_root_models: set[type[BaseModel]] = set()


def _plan(model: type[BaseModel]) -> tuple[_Field, ...] | None:
    """The fields of ``model`` worth a look, or None when none is (made once per model)."""
    if model in _plans:
        return _plans[model]
    if model in _planning:
        return ()  # a model that holds itself: looked at when met
    _planning.add(model)
    try:
        fields = []
        for name, info in model.model_fields.items():
            if any(isinstance(m, _LENIENT) for m in info.metadata):
                kind: _Kind | None = _Kind(_CONVERTED)
            else:
                kind = _kind(info.annotation)
            if kind is None:
                continue
            keys = tuple(k for k in (info.validation_alias, info.alias, name) if isinstance(k, str))
            unique = tuple(dict.fromkeys(keys))
            only = unique[0] if len(unique) == 1 else None
            fields.append(_Field(name, unique, kind, only, kind.tag))
    finally:
        _planning.discard(model)
    if issubclass(model, RootModel):
        _root_models.add(model)
    _plans[model] = found = tuple(fields) or None
    return found


def _kind(annotation: Any) -> _Kind | None:
    """What checking a field of this type takes, or None when nothing does."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        if any(isinstance(m, _LENIENT) for m in args[1:]):
            return _Kind(_CONVERTED)
        return _kind(args[0])
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        kinds = [_kind(arg) for arg in args if arg is not type(None)]
        found = [k for k in kinds if k is not None]
        if not found:
            return None
        if len(kinds) == 1:
            return found[0]
        if any(k.tag == _CONVERTED for k in found):
            return _Kind(_CONVERTED)
        return _Kind(_BY_VALUE)
    if origin in (list, tuple, set, frozenset, abc.Sequence, abc.Set, abc.Collection):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return _Kind(_BY_VALUE) if any(_kind(a) for a in args) else None
        item = _kind(args[0]) if args else None
        if item is None:
            return None
        if item.tag == _CONVERTED:
            return item
        if origin not in (list, tuple, abc.Sequence):
            return _Kind(_BY_VALUE)  # unordered: items are found by value
        return _Kind(_LIST, item)
    if origin in (dict, abc.Mapping, abc.MutableMapping):
        item = _kind(args[1]) if len(args) == 2 else None
        if item is None:
            return None
        return item if item.tag == _CONVERTED else _Kind(_DICT, item)
    if origin is not None:
        return _Kind(_BY_VALUE) if any(_kind(a) for a in args if a is not Ellipsis) else None
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            plan = _plan(annotation)
            return None if plan is None else _Kind(_MODEL, annotation)
        if issubclass(annotation, Decimal):
            return _Kind(_DECIMAL)
        if issubclass(annotation, datetime):
            return _Kind(_DATETIME)
    return None


class DataCheck:
    """What strict validation of one schema's data leaves to check, and to convert."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.needed = _plan(model) is not None

    def apply(self, validated: BaseModel, data: Any) -> tuple[list[InitErrorDetails], Any, bool]:
        """Errors (``loc`` within data), the data to store, and whether it changed.

        ``validated`` is ``data`` validated; ``data`` is the parsed JSON it came
        from, changed in place where a lenient field converted a value.
        """
        walk = _Walk()
        out = walk.model(data, validated, None)
        return walk.errors, out, walk.changed


# A place in the data, kept as (parent, key) links while walking and made into
# a pydantic ``loc`` only for an error: most events have none.
_Path = tuple[Any, int | str] | None


def _loc(path: _Path) -> tuple[int | str, ...]:
    parts: list[int | str] = []
    while path is not None:
        path, key = path
        parts.append(key)
    return tuple(reversed(parts))


class _Walk:
    __slots__ = ("changed", "errors")

    def __init__(self) -> None:
        self.errors: list[InitErrorDetails] = []
        self.changed = False

    def check(self, kind: _Kind, raw: Any, value: Any, path: _Path) -> Any:
        """``raw`` (at ``path``) checked as ``kind`` says; returns it, or its converted value."""
        tag = kind.tag
        if tag == _DECIMAL:
            if raw.__class__ is str and not _DECIMAL_TEXT.fullmatch(raw):
                self.refuse("decimal_parsing", _DECIMAL_MESSAGE, raw, path)
        elif tag == _DATETIME:
            if raw.__class__ is str and not RFC3339_DATE_TIME.fullmatch(raw):
                self.refuse("datetime_parsing", _DATETIME_MESSAGE, raw, path)
        elif tag == _MODEL:
            return self.model(raw, value, path)
        elif tag == _LIST:
            if raw.__class__ is list:
                items: list[Any] | tuple[Any, ...] = (
                    value if value.__class__ is list or value.__class__ is tuple else ()
                )
                item = kind.sub
                count = len(items)
                if item.tag == _MODEL and count == len(raw):
                    # A list of models, the usual shape (line items): no dispatch per item.
                    for index, raw_item in enumerate(raw):
                        self.model(raw_item, items[index], (path, index))
                    return raw
                for index, raw_item in enumerate(raw):
                    got = items[index] if index < count else None
                    out = self.check(item, raw_item, got, (path, index))
                    if out is not raw_item:
                        raw[index] = out
        elif tag == _DICT:
            if raw.__class__ is dict:
                by_key: dict[Any, Any] = value if isinstance(value, dict) else {}
                item = kind.sub
                for key, raw_item in raw.items():
                    out = self.check(item, raw_item, by_key.get(key), (path, key))
                    if out is not raw_item:
                        raw[key] = out
        elif tag == _CONVERTED:
            return self.converted(value, raw)
        else:
            return self.by_value(value, raw, path)
        return raw

    def model(self, raw: Any, value: Any, path: _Path) -> Any:
        cls = value.__class__
        plan = _plans.get(cls)
        if plan is None:
            if cls in _plans or not isinstance(value, BaseModel):
                return raw  # a model with nothing to look at, or no model at all
            plan = _plan(cls)
            if plan is None:
                return raw
        if cls in _root_models:
            return self.check(plan[0].kind, raw, value.root, path)
        if raw.__class__ is not dict:
            return raw
        values = value.__dict__
        for field in plan:
            only = field.key
            if only is not None:
                key = only
                found = raw.get(key, _MISSING)
            else:
                found = _MISSING
                for key in field.keys:
                    found = raw.get(key, _MISSING)
                    if found is not _MISSING:
                        break
            if found is _MISSING:
                continue  # not sent: its default was used
            tag = field.tag
            # The common cases inline: a decimal or date-time sent as a number or text.
            if tag == _DECIMAL:
                if found.__class__ is str and not _DECIMAL_TEXT.fullmatch(found):
                    self.refuse("decimal_parsing", _DECIMAL_MESSAGE, found, (path, key))
                continue
            if tag == _DATETIME:
                if found.__class__ is str and not RFC3339_DATE_TIME.fullmatch(found):
                    self.refuse("datetime_parsing", _DATETIME_MESSAGE, found, (path, key))
                continue
            out = self.check(field.kind, found, values.get(field.name), (path, key))
            if out is not found:
                raw[key] = out
        return raw

    def by_value(self, value: Any, raw: Any, path: _Path) -> Any:
        """A union: what to check is what the value turned out to be."""
        if isinstance(value, BaseModel):
            return self.model(raw, value, path)
        if isinstance(value, Decimal):
            return self.check(_Kind(_DECIMAL), raw, value, path)
        if isinstance(value, datetime):
            return self.check(_Kind(_DATETIME), raw, value, path)
        if isinstance(value, list | tuple) and raw.__class__ is list:
            for index, (item, raw_item) in enumerate(zip(value, raw, strict=False)):
                out = self.by_value(item, raw_item, (path, index))
                if out is not raw_item:
                    raw[index] = out
        elif isinstance(value, dict) and raw.__class__ is dict:
            for key, item in value.items():
                if isinstance(key, str) and key in raw:
                    out = self.by_value(item, raw[key], (path, key))
                    if out is not raw[key]:
                        raw[key] = out
        return raw

    def converted(self, value: Any, raw: Any) -> Any:
        out = to_jsonable_python(value)
        if out != raw or type(out) is not type(raw):
            self.changed = True
            return out
        return raw

    def refuse(self, kind: str, message: str, raw: Any, path: _Path) -> None:
        self.errors.append(
            {"type": PydanticCustomError(kind, message), "loc": _loc(path), "input": raw}
        )
