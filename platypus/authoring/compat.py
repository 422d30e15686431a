"""``platypus schemas check OLD_DIR``: what changed since the schemas were exported.

Compares each event type's JSON Schema now with the one written earlier by
``platypus schemas export OLD_DIR`` and names every change. A change is
*breaking* when events that were valid are now refused, or when something flows
read has gone:

- an event type removed;
- a field removed;
- a field that is newly required (new, or optional before);
- a field whose type changed, other than by widening (``integer`` to ``number``,
  a type that also admits ``null``...);
- an enum value removed.

Everything else (new types, new optional fields, widened types, new enum values,
fields no longer required) is listed as non-breaking. A breaking change to a
published type belongs in a new version: ``sales.opportunity.closed_won.v2``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platypus.exceptions import ConfigurationError
from platypus.schema_registry import SchemaRegistry

__all__ = ["Change", "Report", "check_directory", "compare_schemas"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: the event type, the field path, what changed, and whether it breaks."""

    event_type: str
    path: str
    message: str
    breaking: bool

    def __str__(self) -> str:
        where = f"{self.event_type}: {self.path}" if self.path else self.event_type
        return f"{where}: {self.message}"


@dataclass(slots=True)
class Report:
    """Every change found, breaking first."""

    changes: list[Change] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    @property
    def compatible(self) -> list[Change]:
        return [c for c in self.changes if not c.breaking]

    def to_dict(self) -> dict[str, Any]:
        """The report as ``platypus schemas check --json`` prints it (docs/cli.md)."""
        return {
            "breaking": bool(self.breaking),
            "changes": [
                {
                    "event_type": c.event_type,
                    "path": c.path,
                    "message": c.message,
                    "breaking": c.breaking,
                }
                for c in self.changes
            ],
        }

    def render(self) -> str:
        """Text for the terminal."""
        if not self.changes:
            return "no changes: the schemas match the exported ones"
        lines = []
        if self.breaking:
            lines.append(f"Breaking changes ({len(self.breaking)}):")
            lines.extend(f"  {change}" for change in self.breaking)
            lines.append(
                "  (publish a breaking change as a new version of the type, e.g. .v2, and "
                "keep the old one until no producer sends it)"
            )
        if self.compatible:
            if lines:
                lines.append("")
            lines.append(f"Non-breaking changes ({len(self.compatible)}):")
            lines.extend(f"  {change}" for change in self.compatible)
        return "\n".join(lines)


def check_directory(old: Path, registry: SchemaRegistry) -> Report:
    """Compare ``registry``'s schemas with the ``<type>.json`` files in ``old``."""
    if not old.is_dir():
        raise ConfigurationError(f"{old} is not a folder of exported schemas")
    before: dict[str, dict[str, Any]] = {}
    for path in sorted(old.glob("*.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{path}: not a JSON Schema file: {exc}") from None
        event_type = str(schema.get("x-event-type") or path.name.removesuffix(".json"))
        before[event_type] = schema
    after = {schema.type: registry.json_schema(schema.type) for schema in registry}
    return compare_schemas(before, after)


def compare_schemas(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> Report:
    """The changes from ``before`` to ``after`` (JSON Schemas by event type)."""
    report = Report()
    for event_type in sorted(set(before) | set(after)):
        if event_type not in after:
            report.changes.append(Change(event_type, "", "event type removed", True))
        elif event_type not in before:
            report.changes.append(Change(event_type, "", "new event type", False))
        else:
            old, new = before[event_type], after[event_type]
            _Compare(event_type, old.get("$defs", {}), new.get("$defs", {}), report).node(
                old, new, "data"
            )
    report.changes.sort(key=lambda c: (not c.breaking, c.event_type, c.path))
    return report


@dataclass(slots=True)
class _Compare:
    event_type: str
    old_defs: Mapping[str, Any]
    new_defs: Mapping[str, Any]
    report: Report
    depth: int = 0

    def add(self, path: str, message: str, breaking: bool) -> None:
        self.report.changes.append(Change(self.event_type, path, message, breaking))

    def node(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        if self.depth > 32:
            return
        self.depth += 1
        try:
            self._node(_deref(old, self.old_defs), _deref(new, self.new_defs), path)
        finally:
            self.depth -= 1

    def _node(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        old_types, new_types = _types(old, self.old_defs), _types(new, self.new_defs)
        if old_types and new_types and old_types != new_types:
            widened = old_types <= new_types or (
                old_types - {"integer"} <= new_types and "number" in new_types
            )
            message = f"type changed from {_show(old_types)} to {_show(new_types)}"
            self.add(path, message + (" (widened)" if widened else ""), not widened)
        old_enum, new_enum = _enum(old, self.old_defs), _enum(new, self.new_defs)
        if old_enum is not None and new_enum is not None:
            for value in old_enum:
                if value not in new_enum:
                    self.add(path, f"enum value {value!r} removed", True)
            for value in new_enum:
                if value not in old_enum:
                    self.add(path, f"enum value {value!r} added", False)
        elif old_enum is None and new_enum is not None and old_types:
            self.add(path, f"now limited to {', '.join(map(repr, new_enum))}", True)
        old_obj, new_obj = _object(old, self.old_defs), _object(new, self.new_defs)
        if old_obj is not None and new_obj is not None:
            self.properties(old_obj, new_obj, path)
        old_items, new_items = _items(old, self.old_defs), _items(new, self.new_defs)
        if old_items is not None and new_items is not None:
            self.node(old_items, new_items, path + "[*]")

    def properties(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        old_props: Mapping[str, Any] = old.get("properties", {})
        new_props: Mapping[str, Any] = new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name in old_props:
            here = f"{path}.{name}"
            if name not in new_props:
                self.add(here, "field removed", True)
                continue
            if name in new_required and name not in old_required:
                self.add(here, "field is now required", True)
            elif name in old_required and name not in new_required:
                self.add(here, "field is no longer required", False)
            self.node(old_props[name], new_props[name], here)
        for name in new_props:
            if name in old_props:
                continue
            if name in new_required:
                self.add(f"{path}.{name}", "new required field", True)
            else:
                self.add(f"{path}.{name}", "new optional field", False)


def _deref(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(32):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            break
        schema = defs.get(ref.rsplit("/", 1)[-1], {})
    return schema


def _options(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    schema = _deref(schema, defs)
    found = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(found, list):
        return [o for option in found for o in _options(option, defs)]
    return [schema]


def _types(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for option in _options(schema, defs):
        kind = option.get("type")
        if isinstance(kind, str):
            found.add(kind)
        elif isinstance(kind, list):
            found.update(str(k) for k in kind)
        elif "properties" in option:
            found.add("object")
        elif "enum" in option or "const" in option:
            values = option.get("enum", [option.get("const")])
            found.update(_json_type(v) for v in values)
    return frozenset(found)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _enum(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Any] | None:
    values: list[Any] = []
    limited = False
    for option in _options(schema, defs):
        if isinstance(option.get("enum"), list):
            values.extend(option["enum"])
            limited = True
        elif "const" in option:
            values.append(option["const"])
            limited = True
        elif option.get("type") != "null":
            return None  # some option takes any value of its type
    return values if limited else None


def _object(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    found = [o for o in _options(schema, defs) if "properties" in o]
    return found[0] if len(found) == 1 else None


def _items(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    found = [o for o in _options(schema, defs) if o.get("type") == "array"]
    if len(found) != 1 or not isinstance(found[0].get("items"), Mapping):
        return None
    items: Mapping[str, Any] = found[0]["items"]
    return items


def _show(types: frozenset[str]) -> str:
    return " or ".join(sorted(types))
