"""The schema registry: which pydantic model validates each event type and version.

Events are validated from their stored JSON bytes in one call per event: the
envelope and the data together, in pydantic's strict mode, then what strict
mode still converts is taken out (`platypus.strict`). What a schema allows is
docs/events.md.
"""

from __future__ import annotations

import base64
import difflib
import importlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError, EventValidationError, FieldError, SchemaError
from platypus.jsondata import EventJsonSchema
from platypus.jsontext import dumps, loads
from platypus.redaction import personal_paths
from platypus.schema import EventSchema, declared_schema
from platypus.strict import DataCheck
from platypus.validation import field_errors

__all__ = ["SchemaRegistry"]

ENTRY_POINT_GROUP = "platypus.schemas"

# Used when Platypus runs from a checkout that was not installed with its entry points.
_BUILTIN_MODULES = {
    "finance": "platypus_schemas.finance",
    "people": "platypus_schemas.people",
    "sales": "platypus_schemas.sales",
}


class SchemaRegistry:
    """Event schemas by CloudEvents ``type`` (``name.v<version>``)."""

    def __init__(self, schemas: Iterable[EventSchema] = ()) -> None:
        self._schemas: dict[str, EventSchema] = {}
        self._personal: dict[str, frozenset[str]] = {}
        self._checks: dict[str, _TypeCheck] = {}
        for schema in schemas:
            self.register(schema)

    @classmethod
    def default(cls) -> SchemaRegistry:
        """Every schema from the ``platypus.schemas`` entry-point group and the built-ins."""
        modules = dict(_BUILTIN_MODULES)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            modules[ep.name] = ep.value
        registry = cls()
        for module in modules.values():
            registry.register_module(module)
        return registry

    def register(self, schema: EventSchema) -> None:
        """Add one schema; registering the same type twice with another model is an error."""
        existing = self._schemas.get(schema.type)
        if existing is not None and existing.model is not schema.model:
            raise ConfigurationError(
                f"event type {schema.type!r} is declared twice: by "
                f"{existing.model.__module__}.{existing.model.__qualname__} and "
                f"{schema.model.__module__}.{schema.model.__qualname__}"
            )
        self._schemas[schema.type] = schema
        self._checks.pop(schema.type, None)

    def register_model(self, model: type[BaseModel]) -> EventSchema:
        """Add a model decorated with `platypus.schema.event_schema`."""
        schema = declared_schema(model)
        if schema is None:
            raise ConfigurationError(
                f"{model.__qualname__} is not an event schema: decorate it with @event_schema"
            )
        self.register(schema)
        return schema

    def register_module(self, module_name: str) -> list[EventSchema]:
        """Import a module and register every event schema it declares."""
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import schema module {module_name!r}: {exc}. "
                "Is the package that provides it installed?"
            ) from exc
        found = []
        for value in vars(module).values():
            schema = declared_schema(value)
            if schema is not None:
                self.register(schema)
                found.append(schema)
        return found

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._schemas

    def __iter__(self) -> Iterator[EventSchema]:
        return iter(sorted(self._schemas.values(), key=lambda s: s.type))

    def __len__(self) -> int:
        return len(self._schemas)

    @cached_property
    def _types(self) -> list[str]:
        return sorted(self._schemas)

    def get(self, event_type: str) -> EventSchema:
        """The schema for ``event_type``; `SchemaError` with a suggestion if unknown."""
        try:
            return self._schemas[event_type]
        except KeyError:
            raise SchemaError(_unknown_type_message(event_type, self._schemas)) from None

    def personal_paths(self, event_type: str) -> frozenset[str]:
        """Personal-data path patterns within ``data`` of ``event_type`` (empty if unknown)."""
        found = self._personal.get(event_type)
        if found is None:
            schema = self._schemas.get(event_type)
            found = personal_paths(schema.model) if schema else frozenset()
            self._personal[event_type] = found
        return found

    def validate(self, event: CloudEvent) -> BaseModel:
        """Validate ``event.data`` against its schema; raise `EventValidationError` if invalid.

        As strictly as `check_event`: the data is taken as the JSON it is written as.
        """
        if event.type not in self._schemas:
            message = _unknown_type_message(event.type, self._schemas)
            raise EventValidationError(
                message,
                [FieldError(path="type", message=message, got=repr(event.type))],
                event_id=event.id,
            )
        check = self._check(event.type)
        data = loads(dumps(event.data))
        try:
            model = check.data.model.model_validate_json(dumps(data), strict=True)
        except ValidationError as exc:
            raise self._invalid(event.id, event.type, exc, prefix="data") from None
        if check.data.needed:
            problems, _, _ = check.data.apply(model, data)
            if problems:
                found = ValidationError.from_exception_data("data", problems)
                raise self._invalid(event.id, event.type, found, prefix="data")
        return model

    def check_event(self, event: dict[str, Any], value: bytes) -> bytes:
        """Validate a stored-form event, given as parsed and as its canonical bytes.

        The envelope and ``data`` are validated together, from ``value``, as
        strictly as JSON reads. Returns the bytes to store: ``value``, or
        ``event`` written again when a lenient field converted a value (``event``
        then holds the converted data). Raises `EventValidationError` with every
        error found (``got`` masked in personal fields).
        """
        event_type = event.get("type")
        if not isinstance(event_type, str) or event_type not in self._schemas:
            raise self._envelope_errors(event, value)
        check = self._check(event_type)
        if "data_base64" in event:
            self._check_binary(check, event, value)
            return value
        try:
            validated = check.event.model_validate_json(value, strict=True)
        except ValidationError as exc:
            raise self._invalid(_text(event.get("id")), event_type, exc) from None
        if not check.data.needed:
            return value
        problems, data, changed = check.data.apply(validated.data, event.get("data"))
        if problems:
            found = ValidationError.from_exception_data("data", problems)
            raise self._invalid(_text(event.get("id")), event_type, found, prefix="data")
        if not changed:
            return value
        event["data"] = data
        return dumps(event)

    def _check(self, event_type: str) -> _TypeCheck:
        found = self._checks.get(event_type)
        if found is None:
            model = self._schemas[event_type].model
            tag: Any = Literal[event_type]
            typed = create_model(
                f"{model.__name__}Event",
                __base__=CloudEvent,
                type=(tag, ...),
                data=(model, ...),
            )
            found = self._checks[event_type] = _TypeCheck(typed, DataCheck(model))
        return found

    def _check_binary(self, check: _TypeCheck, event: dict[str, Any], value: bytes) -> None:
        # Data that is neither JSON nor text: the envelope from the JSON, the data
        # as the bytes it is (a schema of such a type is a RootModel[bytes], say).
        event_id, event_type = _text(event.get("id")), str(event.get("type"))
        try:
            CloudEvent.model_validate_json(value, strict=True)
        except ValidationError as exc:
            raise self._invalid(event_id, event_type, exc) from None
        raw = base64.b64decode(str(event["data_base64"]))
        try:
            check.data.model.model_validate(raw, strict=True)
        except ValidationError as exc:
            raise self._invalid(event_id, event_type, exc, prefix="data_base64") from None

    def _envelope_errors(self, event: Mapping[str, Any], value: bytes) -> EventValidationError:
        errors: list[FieldError] = []
        try:
            CloudEvent.model_validate_json(value, strict=True)
        except ValidationError as exc:
            errors = field_errors(exc)
        event_type = event.get("type")
        if isinstance(event_type, str) and not any(e.path == "type" for e in errors):
            message = _unknown_type_message(event_type, self._schemas)
            errors.append(FieldError(path="type", message=message, got=repr(event_type)))
        event_id = _text(event.get("id"))
        return EventValidationError(
            f"event {event_id!r} is not a valid CloudEvent ({_count(errors)})", errors, event_id
        )

    def _invalid(
        self, event_id: str, event_type: str, exc: ValidationError, *, prefix: str = ""
    ) -> EventValidationError:
        errors = field_errors(
            exc, prefix=prefix, personal=self.personal_paths(event_type), personal_prefix="data"
        )
        in_data = all(
            e.path.startswith(("data.", "data[", "data_base64")) or e.path == "data" for e in errors
        )
        what = "data does not match its schema" if in_data else "not a valid CloudEvent"
        return EventValidationError(
            f"event {event_id!r} of type {event_type!r}: {what} ({_count(errors)})",
            errors,
            event_id=event_id,
        )

    def json_schema(self, event_type: str) -> dict[str, Any]:
        """The JSON Schema of ``data`` for ``event_type``, with Platypus metadata.

        It says exactly what `validate` accepts: decimals as numbers or canonical
        decimal text within their digits, patterns, formats, enums and lengths.
        """
        schema = self.get(event_type)
        out = schema.model.model_json_schema(schema_generator=EventJsonSchema)
        out["$id"] = f"urn:platypus:schema:{schema.type}"
        out["x-event-type"] = schema.type
        out["x-version"] = schema.version
        return out

    def export(self, directory: Path) -> list[Path]:
        """Write one ``<type>.json`` JSON Schema file per event type into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for schema in self:
            path = directory / f"{schema.type}.json"
            path.write_text(json.dumps(self.json_schema(schema.type), indent=2) + "\n")
            written.append(path)
        return written


@dataclass(frozen=True, slots=True)
class _TypeCheck:
    """How events of one type are validated: compiled once, on first use."""

    event: type[CloudEvent]  # the whole event: the envelope, with data typed
    data: DataCheck  # the data's model, and what strict mode leaves to check in it


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(errors: list[FieldError]) -> str:
    return f"{len(errors)} error{'s' if len(errors) != 1 else ''}"


def _unknown_type_message(event_type: str, known: Mapping[str, EventSchema]) -> str:
    close = difflib.get_close_matches(event_type, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; `platypus schemas list` shows them"
    return f"unknown event type {event_type!r}: no schema is registered for it{hint}"
