"""``platypus schemas check``: breaking and non-breaking schema changes, named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from platypus.authoring.cli import schemas_check_command
from platypus.authoring.compat import compare_schemas
from platypus.schema_registry import SchemaRegistry

T = "sales.thing.v1"


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, bool]]:
    report = compare_schemas({T: old}, {T: new})
    return [(c.path, c.message, c.breaking) for c in report.changes]


def test_the_current_schemas_match_their_own_export(tmp_path: Path) -> None:
    SchemaRegistry.default().export(tmp_path)

    result = CliRunner().invoke(schemas_check_command, [str(tmp_path)])

    assert result.exit_code == 0
    assert result.output == "no changes: the schemas match the exported ones\n"


def test_each_kind_of_breaking_change_is_named() -> None:
    old = obj(
        ["a"],
        a={"type": "string"},
        b={"type": "integer"},
        c={"enum": ["x", "y"]},
        d={"type": "string"},
        gone={"type": "string"},
    )
    new = obj(
        ["a", "d", "e"],
        a={"type": "integer"},
        b={"type": "number"},
        c={"enum": ["x", "z"]},
        d={"type": "string"},
        e={"type": "string"},
        f={"type": "string"},
    )

    assert changes(old, new) == [
        ("data.a", "type changed from string to integer", True),
        ("data.c", "enum value 'y' removed", True),
        ("data.d", "field is now required", True),
        ("data.e", "new required field", True),
        ("data.gone", "field removed", True),
        ("data.b", "type changed from integer to number (widened)", False),
        ("data.c", "enum value 'z' added", False),
        ("data.f", "new optional field", False),
    ]


def test_nested_objects_behind_refs_and_list_items_are_compared() -> None:
    item = obj(["sku"], sku={"type": "string"}, qty={"type": "integer"})
    old = {**obj(["lines"], lines={"type": "array", "items": {"$ref": "#/$defs/Line"}})}
    old["$defs"] = {"Line": item}
    new = {**obj(["lines"], lines={"type": "array", "items": {"$ref": "#/$defs/Line"}})}
    new["$defs"] = {"Line": obj(["sku"], sku={"type": "string"})}

    assert changes(old, new) == [("data.lines[*].qty", "field removed", True)]


def test_removed_and_new_event_types(tmp_path: Path) -> None:
    report = compare_schemas({"a.v1": obj([])}, {"b.v1": obj([])})

    assert [str(c) for c in report.changes] == ["a.v1: event type removed", "b.v1: new event type"]


def test_cli_exits_1_on_breaking_changes_and_lists_both_kinds(tmp_path: Path) -> None:
    SchemaRegistry.default().export(tmp_path)
    path = tmp_path / "sales.opportunity.closed_won.v1.json"
    schema = json.loads(path.read_text())
    schema["required"].remove("account_name")  # now it is newly required again
    schema["properties"]["legacy_code"] = {"type": "string"}  # removed since
    path.write_text(json.dumps(schema))

    result = CliRunner().invoke(schemas_check_command, [str(tmp_path)])

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Breaking changes (2):",
        "  sales.opportunity.closed_won.v1: data.account_name: field is now required",
        "  sales.opportunity.closed_won.v1: data.legacy_code: field removed",
        "  (publish a breaking change as a new version of the type, e.g. .v2, and keep the old "
        "one until no producer sends it)",
    ]
