"""JSON Schemas of flows, flow tests and platypus.yaml, for editors; checked by check-jsonschema.

check-jsonschema (PyPI, independent of Platypus) checks every shipped flow, test
and config file against the schemas published in json-schemas/, and shows that
those schemas catch the mistakes an editor should underline.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from platypus.authoring.cli import new_group
from platypus.authoring.editor import CONFIG_SCHEMA, DEFAULT_DIR, FLOW_SCHEMA, TEST_SCHEMA
from platypus.cli import main

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / DEFAULT_DIR
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)\n")


def _shipped() -> dict[str, list[Path]]:
    flows = sorted(
        [*(REPO / "flows").glob("*.yaml"), *(REPO / "samples/demo/flows").glob("*.yaml")]
    )
    return {
        FLOW_SCHEMA: [f for f in flows if not f.name.endswith(".test.yaml")],
        TEST_SCHEMA: [f for f in flows if f.name.endswith(".test.yaml")],
        CONFIG_SCHEMA: [REPO / "platypus.yaml", REPO / "samples/demo/platypus.yaml"],
    }


def check_jsonschema(
    schema: Path, files: list[Path], *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            *options,
            "--schemafile",
            str(schema),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_published_schemas_are_what_platypus_schemas_flows_writes(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "flows", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([FLOW_SCHEMA, TEST_SCHEMA, CONFIG_SCHEMA])
    for name in written:
        assert (tmp_path / name).read_text() == (PUBLISHED / name).read_text(), (
            f"{DEFAULT_DIR}/{name} is stale: run `platypus schemas flows` and commit it"
        )


@pytest.mark.parametrize("schema", [FLOW_SCHEMA, TEST_SCHEMA, CONFIG_SCHEMA])
def test_every_shipped_file_passes_check_jsonschema(schema: str) -> None:
    files = _shipped()[schema]
    assert files
    result = check_jsonschema(PUBLISHED / schema, files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("schema", [FLOW_SCHEMA, TEST_SCHEMA, CONFIG_SCHEMA])
def test_every_shipped_file_names_its_schema_on_its_first_line(schema: str) -> None:
    for file in _shipped()[schema]:
        found = MODELINE.match(file.read_text(encoding="utf-8"))
        assert found, f"{file} does not start with # yaml-language-server: $schema=..."
        assert (file.parent / found.group(1)).resolve() == (PUBLISHED / schema).resolve()


STEP = {"name": "s", "to": "b.post", "payload": {"x": "data.x", "n": 1}}
CASE = {"name": "c", "event_file": "e.json", "calls": []}
HTTP = {"adapter": "http", "settings": {"base_url": "${B:-http://x}", "timeout": "30s"}}
ZUORA = {"adapter": "zuora", "settings": {"client_id": {"env": "I"}, "client_secret": {"env": "S"}}}
HMAC = {"decoder": "hmac", "secret": {"env": "S"}, "signature_header": "Sig"}
CRM = {"kind": "salesforce", "connection": "sf", "interval": "5m", "query": {"sobject": "A"}}

# A valid file of each kind (as YAML), and mistakes: each the valid file with one change.
GOOD: dict[str, dict[str, Any]] = {
    FLOW_SCHEMA: {
        "name": "a",
        "consumes": ["t.v1", "u.v2"],
        "retry": {"max_delay": "250ms"},
        "steps": [STEP],
    },
    TEST_SCHEMA: {"cases": [{**CASE, "fail": {"s": {"error": "RetryableError", "times": 2}}}]},
    CONFIG_SCHEMA: {
        "partitions": "${PARTITIONS:-8}",
        "retry": {"initial_delay": "200ms", "max_attempts": 3},
        "connections": {"b": {**HTTP, "max_concurrency": 4}, "z": ZUORA},
        "sources": {"gh": HMAC},
        "pollers": {"crm": CRM},
    },
}
MISTAKES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    FLOW_SCHEMA: [
        ("typo-key", {"setps": [STEP]}),
        ("bad-target", {"steps": [{**STEP, "to": "Billing"}]}),
        ("bad-duration", {"retry": {"max_delay": "soon"}}),
        ("bad-on-error", {"on_error": "retry"}),
        ("no-steps", {"steps": []}),
        ("no-type", {"consumes": []}),
    ],
    TEST_SCHEMA: [
        ("typo-key", {"cases": [{**CASE, "filterd": True}]}),
        ("bad-error", {"cases": [{**CASE, "fail": {"s": {"error": "Boom"}}}]}),
    ],
    CONFIG_SCHEMA: [
        ("typo-key", {"partitons": 8}),
        ("bad-number", {"partitions": "many"}),
        ("adapter-setting", {"connections": {"b": {**HTTP, "settings": {"base_urll": "x"}}}}),
        (
            "adapter-timeout",
            {"connections": {"b": {**HTTP, "settings": {"base_url": "x", "timeout": "later"}}}},
        ),
        (
            "secret-form",
            {"connections": {"z": {**ZUORA, "settings": {"client_id": {"vault": "x"}}}}},
        ),
        ("decoder-setting", {"sources": {"gh": {**HMAC, "signature": "x"}}}),
        ("poller-query", {"pollers": {"crm": {**CRM, "query": {"sobjct": "A"}}}}),
    ],
}


@pytest.mark.parametrize("schema", [FLOW_SCHEMA, TEST_SCHEMA, CONFIG_SCHEMA])
def test_the_schemas_catch_the_mistakes_an_editor_should_underline(
    schema: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD[schema]))
    files = {good: "good"}
    for name, change in MISTAKES[schema]:
        bad = tmp_path / f"{name}.yaml"
        bad.write_text(yaml.safe_dump({**GOOD[schema], **change}))
        files[bad] = name
    result = check_jsonschema(PUBLISHED / schema, list(files), "--output-format", "json")
    report = json.loads(result.stdout)
    assert report["parse_errors"] == []
    refused = {files[Path(error["filename"])] for error in report["errors"]}
    assert refused == {name for name, _ in MISTAKES[schema]}  # every mistake, not the good one


def _properties(schema: Any, where: str = "") -> list[tuple[str, Any]]:
    found = []
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            found.append((f"{where}.{name}", sub))
            found += _properties(sub, f"{where}.{name}")
        for name, sub in schema.get("$defs", {}).items():
            found += _properties(sub, name)
    return found


@pytest.mark.parametrize("schema", [FLOW_SCHEMA, TEST_SCHEMA, CONFIG_SCHEMA])
def test_every_property_has_a_description_for_the_editor_to_show(schema: str) -> None:
    document = json.loads((PUBLISHED / schema).read_text())
    bare = [where for where, sub in _properties(document) if not sub.get("description")]
    assert bare == []


def test_a_new_flow_names_its_schemas_and_they_are_written_with_it(tmp_path: Path) -> None:
    shutil.copy(REPO / "samples/demo/platypus.yaml", tmp_path / "platypus.yaml")
    result = CliRunner().invoke(
        new_group, ["flow", "fresh", "--to", "sink.send", "--project", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    flow, tests = tmp_path / "flows/fresh.yaml", tmp_path / "flows/fresh.test.yaml"
    for file, schema in ((flow, FLOW_SCHEMA), (tests, TEST_SCHEMA)):
        found = MODELINE.match(file.read_text())
        assert found
        target = (file.parent / found.group(1)).resolve()
        assert target == (tmp_path / DEFAULT_DIR / schema).resolve()
        assert target.exists()
        assert check_jsonschema(target, [file]).returncode == 0
