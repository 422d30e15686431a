"""Finding and masking personal data and secrets.

Personal-data fields are found once per schema from its JSON Schema (fields marked
`platypus.schema.PersonalData`), as path patterns such as ``contact.email`` or
``line_items[*].owner_email``. Those patterns mask structured data; the concrete
values found in one event are also scrubbed from free text (vendor error messages,
log lines), since a vendor may echo a value back anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from platypus.schema import PERSONAL_DATA_KEY

__all__ = ["MASK", "mask_data", "personal_paths", "personal_values", "scrub_text"]

MASK = "***"

_INDEX = re.compile(r"\[\d+\]")


def personal_paths(model: type[BaseModel]) -> frozenset[str]:
    """Path patterns of every personal-data field in ``model`` (lists as ``[*]``)."""
    schema = model.model_json_schema()
    defs: Mapping[str, Any] = schema.get("$defs", {})
    found: set[str] = set()
    _walk_schema(schema, "", defs, found, depth=0)
    return frozenset(found)


def _walk_schema(
    node: Mapping[str, Any], path: str, defs: Mapping[str, Any], out: set[str], depth: int
) -> None:
    if depth > 32:  # recursive models: deep enough for any real payload
        return
    if "$ref" in node:
        target = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        _walk_schema(merged, path, defs, out, depth + 1)
        return
    if node.get(PERSONAL_DATA_KEY):
        out.add(path)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for option in node.get(key, []):
            _walk_schema(option, path, defs, out, depth + 1)
    for name, sub in node.get("properties", {}).items():
        _walk_schema(sub, f"{path}.{name}" if path else name, defs, out, depth + 1)
    items = node.get("items")
    if isinstance(items, Mapping):
        _walk_schema(items, f"{path}[*]", defs, out, depth + 1)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        _walk_schema(extra, f"{path}.*" if path else "*", defs, out, depth + 1)


def normalize_path(path: str) -> str:
    """``line_items[3].email`` -> ``line_items[*].email``, to compare with patterns."""
    return _INDEX.sub("[*]", path)


def is_personal(path: str, patterns: Iterable[str]) -> bool:
    """Whether a concrete path is, or is inside, a personal-data field."""
    norm = normalize_path(path)
    for pattern in patterns:
        if norm == pattern or norm.startswith(pattern + ".") or norm.startswith(pattern + "["):
            return True
        # ``emails.*`` (values of a dict) matches any key: ``emails.work``.
        if "*" in pattern.replace("[*]", "") and _wildcard(pattern).match(norm):
            return True
    return False


def _wildcard(pattern: str) -> re.Pattern[str]:
    """A regex for a pattern whose ``*`` segments stand for any one dict key."""
    parts = [
        r"[^.\[]+" + re.escape(part[1:]) if part.startswith("*") else re.escape(part)
        for part in pattern.split(".")
    ]
    return re.compile(r"\.".join(parts) + r"(?:$|[.\[])")


def mask_data(data: Any, patterns: Iterable[str]) -> Any:
    """A copy of ``data`` with every personal-data value replaced by `MASK`."""
    pats = frozenset(patterns)
    if not pats:
        return data
    return _mask(data, "", pats)


def _mask(value: Any, path: str, patterns: frozenset[str]) -> Any:
    if path and is_personal(path, patterns):
        return None if value is None else MASK
    if isinstance(value, Mapping):
        return {k: _mask(v, f"{path}.{k}" if path else str(k), patterns) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, f"{path}[{i}]", patterns) for i, v in enumerate(value)]
    return value


def personal_values(data: Any, patterns: Iterable[str]) -> set[str]:
    """The concrete personal-data values in ``data``, as strings, for scrubbing text."""
    pats = frozenset(patterns)
    found: set[str] = set()
    if pats:
        _collect(data, "", pats, found, inside=False)
    return found


def _collect(value: Any, path: str, patterns: frozenset[str], out: set[str], inside: bool) -> None:
    inside = inside or bool(path and is_personal(path, patterns))
    if isinstance(value, Mapping):
        for k, v in value.items():
            _collect(v, f"{path}.{k}" if path else str(k), patterns, out, inside)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _collect(v, f"{path}[{i}]", patterns, out, inside)
    elif inside and value is not None and not isinstance(value, bool):
        text = str(value)
        # One- or two-character values would scrub half of every message; they
        # cannot identify a person on their own either.
        if len(text) >= 3:
            out.add(text)


def scrub_text(text: str, values: Iterable[str]) -> str:
    """Replace every occurrence of any of ``values`` in ``text`` by `MASK`."""
    for value in sorted(values, key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, MASK)
    return text
