"""The schema registry: which pydantic model validates each event type and version."""

from __future__ import annotations

import difflib
import importlib
import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator

from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError, EventValidationError, FieldError, SchemaError
from platypus.jsondata import EventJsonSchema, json_validator
from platypus.redaction import personal_paths
from platypus.schema import EventSchema, declared_schema
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
        self._validators: dict[str, SchemaValidator] = {}
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
        self._validators.pop(schema.type, None)

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

        Data is taken as JSON means it (`platypus.jsondata`): ``"5"`` is not an
        integer here, nor ``1`` a boolean, so what passes is exactly what
        `json_schema` publishes.
        """
        if event.type not in self._schemas:
            message = _unknown_type_message(event.type, self._schemas)
            raise EventValidationError(
                message,
                [FieldError(path="type", message=message, got=repr(event.type))],
                event_id=event.id,
            )
        validator = self._validators.get(event.type)
        if validator is None:
            validator = self._validators[event.type] = json_validator(
                self._schemas[event.type].model
            )
        try:
            model: BaseModel = validator.validate_python(event.data)
            return model
        except ValidationError as exc:
            errors = field_errors(exc, prefix="data", personal=self.personal_paths(event.type))
            raise EventValidationError(
                f"event {event.id!r} of type {event.type!r}: data does not match its schema "
                f"({len(errors)} error{'s' if len(errors) != 1 else ''})",
                errors,
                event_id=event.id,
            ) from None

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


def _unknown_type_message(event_type: str, known: Mapping[str, EventSchema]) -> str:
    close = difflib.get_close_matches(event_type, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; `platypus schemas list` shows them"
    return f"unknown event type {event_type!r}: no schema is registered for it{hint}"
