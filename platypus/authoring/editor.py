"""JSON Schemas of the files people edit, so editors complete and check them.

`platypus schemas flows [DIR]` writes three schemas, generated from the pydantic
models that read the files, with their descriptions:

* ``flow.schema.json`` for ``flows/*.yaml`` (`FlowSpec`);
* ``flow-test.schema.json`` for ``flows/*.test.yaml`` (`FlowTestFile`);
* ``platypus.schema.json`` for ``platypus.yaml`` (`ProjectConfig`), where each
  connection's ``settings`` are those of its adapter, each source's those of its
  decoder, each poller's ``query`` that of its kind, and ``${VAR}`` may stand for
  any value (it is replaced from the environment when the file is read).

A file names its schema on its first line, as the YAML language server (VS Code's
YAML extension, Neovim, JetBrains, Helix...) reads it; `modeline` writes that line::

    # yaml-language-server: $schema=../json-schemas/flow.schema.json
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from platypus.adapter import AdapterRegistry
from platypus.authoring.harness import FlowTestFile
from platypus.config import ProjectConfig, SourceSpec
from platypus.exceptions import ConfigurationError
from platypus.flow.model import FlowSpec

if TYPE_CHECKING:
    from platypus.sources.registry import DecoderRegistry

__all__ = [
    "CONFIG_SCHEMA",
    "DEFAULT_DIR",
    "FLOW_SCHEMA",
    "TEST_SCHEMA",
    "config_schema",
    "flow_schema",
    "flow_test_schema",
    "modeline",
    "write_schemas",
]

FLOW_SCHEMA = "flow.schema.json"
TEST_SCHEMA = "flow-test.schema.json"
CONFIG_SCHEMA = "platypus.schema.json"
DEFAULT_DIR = Path("json-schemas")
"""Where `platypus schemas flows` writes them, relative to the project."""

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF = "#/$defs/{model}"

ENV_VALUE: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "${VAR} or ${VAR:-default}: replaced from the environment when read.",
}
"""A value written as ``${VAR}``, which platypus.yaml allows wherever a value goes."""


class _EditorJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema of what a file may say, nothing the loader sets itself."""

    def field_is_present(self, field: core_schema.ModelField) -> bool:  # type: ignore[override]
        # ``exclude=True`` marks what the loader fills in (source_file, version, root).
        if field.get("serialization_exclude"):
            return False
        return super().field_is_present(field)

    def is_instance_schema(self, schema: core_schema.IsInstanceSchema) -> JsonSchemaValue:
        return {}  # a type JSON cannot say; its field's description says what it takes


def _schemas(
    models: Iterable[type[BaseModel]],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    keyed, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template=_REF,
        schema_generator=_EditorJsonSchema,
    )
    refs: dict[type[BaseModel], dict[str, Any]] = {}
    for (model, _), ref in keyed.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            refs[model] = dict(ref)
    return refs, dict(top.get("$defs", {}))


def _document(title: str, root: type[BaseModel], defs: dict[str, Any], uri: str) -> dict[str, Any]:
    name = root.__name__
    body = dict(defs.pop(name, {}))
    return {
        "$schema": _DIALECT,
        "$id": f"urn:platypus:editor:{uri}",
        "title": title,
        **body,
        "$defs": defs,
    }


def flow_schema() -> dict[str, Any]:
    """The JSON Schema of a flow file (``flows/*.yaml``)."""
    _, defs = _schemas([FlowSpec])
    return _document("Platypus flow (flows/*.yaml)", FlowSpec, defs, FLOW_SCHEMA)


def flow_test_schema() -> dict[str, Any]:
    """The JSON Schema of a flow's test file (``flows/*.test.yaml``)."""
    _, defs = _schemas([FlowTestFile])
    return _document("Platypus flow tests (flows/*.test.yaml)", FlowTestFile, defs, TEST_SCHEMA)


def config_schema(
    adapters: AdapterRegistry | None = None, decoders: DecoderRegistry | None = None
) -> dict[str, Any]:
    """The JSON Schema of ``platypus.yaml``, with each installed adapter's and decoder's keys."""
    from platypus.sources.pollers.config import (
        NetSuiteQuery,
        PollerKind,
        PollerSpec,
        SalesforceQuery,
        WorkdayQuery,
    )
    from platypus.sources.registry import DecoderRegistry

    adapters = adapters or AdapterRegistry.default()
    decoders = decoders or DecoderRegistry.default()
    settings = {name: adapters.get(name).Settings for name in sorted(adapters)}
    decoder_settings = {name: decoders.get(name).settings_model for name in sorted(decoders)}
    queries: dict[str, type[BaseModel]] = {
        PollerKind.SALESFORCE.value: SalesforceQuery,
        PollerKind.WORKDAY.value: WorkdayQuery,
        PollerKind.NETSUITE.value: NetSuiteQuery,
    }
    models: list[type[BaseModel]] = [
        ProjectConfig,
        PollerSpec,
        *settings.values(),
        *decoder_settings.values(),
        *queries.values(),
    ]
    refs, defs = _schemas(dict.fromkeys(models))  # one entry per model, in order
    document = _document("Platypus project (platypus.yaml)", ProjectConfig, defs, CONFIG_SCHEMA)
    properties = document["properties"]

    connection = defs["ConnectionSpec"]
    connection["properties"]["adapter"]["examples"] = sorted(settings)
    connection["allOf"] = [
        _when("adapter", name, {"properties": {"settings": refs[model]}})
        for name, model in settings.items()
    ]

    source = defs[SourceSpec.__name__]
    source["properties"]["decoder"]["examples"] = sorted(decoder_settings)
    source["allOf"] = [
        _when("decoder", name, _decoder_keys(defs, refs[model]))
        for name, model in decoder_settings.items()
    ]

    poller = defs[PollerSpec.__name__]
    poller["allOf"] = [
        _when("kind", kind, {"properties": {"query": refs[model]}})
        for kind, model in queries.items()
    ]
    # platypus.yaml keeps pollers as plain mappings (PollerSpec checks them at start).
    names = properties["pollers"]["patternProperties"]
    for pattern in names:
        names[pattern] = refs[PollerSpec]

    return _allow_env(document)  # type: ignore[no-any-return]


def _when(key: str, value: str, then: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"properties": {key: {"const": value}}, "required": [key]},
        "then": then,
    }


def _decoder_keys(defs: Mapping[str, Any], ref: Mapping[str, str]) -> dict[str, Any]:
    # A source's settings sit beside ``decoder``: the settings model's keys, and it.
    model = defs[ref["$ref"].rsplit("/", 1)[1]]
    return {
        "properties": {**model.get("properties", {}), "decoder": {"type": "string"}},
        "required": model.get("required", []),
        "additionalProperties": False,
    }


_SCALARS = frozenset({"integer", "number", "boolean"})
_ANNOTATIONS = ("title", "description", "default", "examples")


def _allow_env(schema: Any) -> Any:
    """``schema`` where every value a ``${VAR}`` string would not fit may also be one."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("properties", "patternProperties", "$defs"):
        if key in out:
            out[key] = {name: _allow_env(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "then", "else", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _allow_env(out[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in out:
            out[key] = [_allow_env(sub) for sub in out[key]]
    kind = out.get("type")
    constrained = kind == "string" and ("pattern" in out or "format" in out)
    if kind in _SCALARS or constrained or "enum" in out or "const" in out:
        # What describes the value stays on it, where editors look for it.
        outer = {key: out.pop(key) for key in _ANNOTATIONS if key in out}
        return {"anyOf": [out, ENV_VALUE], **outer}
    return out


def write_schemas(
    directory: Path,
    *,
    adapters: AdapterRegistry | None = None,
    decoders: DecoderRegistry | None = None,
) -> list[Path]:
    """Write the three schemas into ``directory``; returns the files written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {directory}: {exc.strerror}") from None
    written = []
    for name, document in (
        (FLOW_SCHEMA, flow_schema()),
        (TEST_SCHEMA, flow_test_schema()),
        (CONFIG_SCHEMA, config_schema(adapters, decoders)),
    ):
        path = directory / name
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def modeline(file: Path, schema: Path) -> str:
    """The first line that points editors at ``schema`` from ``file`` (a relative path)."""
    target = Path(os.path.relpath(schema, file.parent)).as_posix()
    return f"# yaml-language-server: $schema={target}\n"
