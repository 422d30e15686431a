"""``platypus new flow``: a flow, its tests and a sample event, ready to edit.

The three files pass ``platypus flows lint`` and ``platypus flows test`` as
written, so an engineer starts from green and changes one thing at a time:

- ``flows/<name>.yaml``: consumes the type, a ``when`` on one of its fields, one
  step writing to the target, with a payload mapping the event's fields (or the
  action's input fields, when the action declares an input model);
- ``flows/<name>.test.yaml``: a happy path, a filtered event and a failure;
- ``samples/<name>.event.json``: a minimal valid event built from the schema,
  on one line so that ``platypus send`` takes the file as it is.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from platypus import core
from platypus.adapter import Action, AdapterRegistry
from platypus.authoring.editor import DEFAULT_DIR, FLOW_SCHEMA, TEST_SCHEMA, modeline
from platypus.config import ProjectConfig
from platypus.exceptions import ConfigurationError
from platypus.flow.loader import load_flow
from platypus.schema_registry import SchemaRegistry

try:  # Python 3.11+ keeps the regex parser here
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse

__all__ = ["Scaffold", "check_target", "sample_instance", "scaffold_flow"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# A ``:name`` bind in a query parameter (SOQL's, like Apex bind variables).
_BIND = re.compile(r"(?<![A-Za-z0-9_:]):([A-Za-z_][A-Za-z0-9_]*)")
SAMPLE_TIME = "2026-01-15T09:00:00Z"


@dataclass(frozen=True, slots=True)
class Scaffold:
    """The files `scaffold_flow` wrote."""

    flow: Path
    tests: Path
    sample: Path


def scaffold_flow(
    root: Path,
    name: str,
    *,
    consumes: str,
    to: str,
    schemas: SchemaRegistry,
    adapters: AdapterRegistry,
    config: ProjectConfig,
) -> Scaffold:
    """Write the flow (in the project's flows folder), its tests and a sample event.

    The sample goes to ``root/samples/``; ``root`` is the project folder.

    Refuses (`ConfigurationError`) a bad name, an unknown type, or files that exist.
    """
    if not _NAME.match(name):
        raise ConfigurationError(
            f"invalid flow name {name!r}: use lower-case letters, digits, '-' and '_'"
        )
    check_target(to, adapters, config)
    schema = schemas.get(consumes)
    flows_dir = config.resolve(config.flows)
    flow_path = flows_dir / f"{name}.yaml"
    test_path = flows_dir / f"{name}.test.yaml"
    sample_path = root / "samples" / f"{name}.event.json"
    existing = [str(p) for p in (flow_path, test_path, sample_path) if p.exists()]
    if existing:
        raise ConfigurationError(f"not overwriting {', '.join(existing)}")

    data_schema = schemas.json_schema(consumes)
    defs = data_schema.get("$defs", {})
    data = sample_instance(data_schema, defs)
    schema.model.model_validate(data)  # the sample must be valid; a bug here if not
    subject = next(
        (str(v) for k, v in data.items() if k.endswith("_id") and isinstance(v, str)),
        f"{name}-1",
    )
    event = {
        "specversion": "1.0",
        "id": f"evt-{name}-1",
        "source": f"/samples/{name}",
        "type": consumes,
        "subject": subject,
        "time": SAMPLE_TIME,
        "data": data,
    }
    when, filtered_patch = _condition(data_schema, defs, data)
    connection, _, action = to.partition(".")
    step = action.replace("-", "_") if action else "send"
    step_name = f"{step}_to_{connection}".replace("-", "_")
    params, payload = _mapping(to, data_schema, defs, data, adapters, config)

    flow_text = _flow_yaml(name, consumes, when, step_name, to, params, payload)
    flow_text = modeline(flow_path, root / DEFAULT_DIR / FLOW_SCHEMA) + flow_text
    flows_dir.mkdir(parents=True, exist_ok=True)
    sample_path.parent.mkdir(parents=True, exist_ok=True)
    flow_path.write_text(flow_text, encoding="utf-8")
    sample_path.write_text(json.dumps(event) + "\n", encoding="utf-8")

    flow = load_flow(flow_path)
    rendered = core.render(flow.steps[0].payload, core.event_context(event, {}))
    event_file = Path(os.path.relpath(sample_path, flows_dir)).as_posix()
    test_text = _tests_yaml(name, event_file, step_name, to, params, rendered, filtered_patch)
    test_text = modeline(test_path, root / DEFAULT_DIR / TEST_SCHEMA) + test_text
    test_path.write_text(test_text, encoding="utf-8")
    return Scaffold(flow_path, test_path, sample_path)


def _condition(
    schema: Mapping[str, Any], defs: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A ``when`` on a numeric field of the data, and a patch that makes it false.

    Falls back to the envelope's ``source`` when no numeric field can be zero.
    """
    required = set(schema.get("required", []))
    for key, prop in schema.get("properties", {}).items():
        if key not in required or not _PLAIN.match(key):
            continue
        options = _options(prop, defs)
        numeric = [o for o in options if o.get("type") in ("number", "integer")]
        if not numeric or any(
            ("minimum" in o and o["minimum"] > 0) or "exclusiveMinimum" in o for o in numeric
        ):
            continue
        return f"data.{key} > `0`", {"data": {key: 0}}
    return "source != '/ignored'", {"source": "/ignored"}


def _mapping(
    to: str,
    schema: Mapping[str, Any],
    defs: Mapping[str, Any],
    data: Mapping[str, Any],
    adapters: AdapterRegistry,
    config: ProjectConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Params for the action, and a payload: the action's input fields if it has a
    model (mapped from same-named event fields of a fitting type, else a sample
    constant), else every top-level field of the event's data.

    Inputs and params that need more than their required fields (Slack's text or
    blocks, a SCIM user named by one of three keys) are completed from their
    validation errors, so the scaffold delivers its sample event as written.
    """
    spec = _action(to, adapters, config)
    params: dict[str, Any] = {}
    if spec is not None and spec.params is not None:
        connection = to.partition(".")[0]
        if "path" in spec.params.model_fields:
            params["path"] = f"/{connection}"
        params_schema = spec.params.model_json_schema()
        params_defs = params_schema.get("$defs", {})
        for key in params_schema.get("required", []):
            prop = params_schema["properties"][key]
            params.setdefault(key, _sample(prop, params_defs, key))
        params = _complete(spec.params, params, params_schema, params_defs)
    data_props = schema.get("properties", {})
    if spec is None or spec.input is None:
        whole = {key: f"data.{key}" for key in data_props if _PLAIN.match(key)}
        params, whole = _bind_to_event(params, whole, schema, defs)
        return params, _map_named_keys(spec, params, whole, schema, defs)
    input_schema = spec.input.model_json_schema()
    input_defs = input_schema.get("$defs", {})
    input_props = input_schema.get("properties", {})
    required = set(schema.get("required", []))

    def mappable(key: str) -> bool:
        # Same name, always present in the event, and of a type the input takes.
        return (
            key in data_props
            and key in required
            and key in data
            and _PLAIN.match(key) is not None
            and _fits(data_props[key], defs, input_props[key], input_defs)
        )

    values: dict[str, Any] = {}
    mapped: set[str] = set()
    for key in input_schema.get("required", []):
        if mappable(key):
            values[key] = data[key]
            mapped.add(key)
        else:
            values[key] = _sample(input_props[key], input_defs, key)
    values = _complete(spec.input, values, input_schema, input_defs)
    payload: dict[str, Any] = {}
    for key, value in values.items():
        if (key in mapped or mappable(key)) and value == data.get(key):
            payload[key] = f"data.{key}"
        else:
            payload[key] = _constant(value)
    return params, payload


def _map_named_keys(
    spec: Action | None,
    params: dict[str, Any],
    payload: dict[str, Any],
    schema: Mapping[str, Any],
    defs: Mapping[str, Any],
) -> dict[str, Any]:
    """The payload with each key a param names (an upsert's external id field, the
    user field ``freeze_user`` matches on) mapped from an event field, an id
    preferably: the adapter reads that key, and lint's ``bind-missing`` wants it."""
    if spec is None or spec.binds is None or spec.params is None:
        return payload
    try:
        model = spec.params.model_validate(params)
    except ValidationError:
        return payload
    named = [
        key
        for param, key in spec.binds(model)
        if getattr(model, param, None) == key and key not in payload
    ]
    field = _id_field(payload, schema, defs)
    if not named or field is None:
        return payload
    return {**dict.fromkeys(named, f"data.{field}"), **payload}


def _id_field(
    payload: Mapping[str, Any], schema: Mapping[str, Any], defs: Mapping[str, Any]
) -> str | None:
    """The payload key most likely to be an id: a required string called ``id`` or
    ``*_id``, else a required string, else any."""
    required = set(schema.get("required", []))
    strings = [
        key
        for key in payload
        if key in required
        and any(o.get("type") == "string" for o in _options(schema["properties"][key], defs))
    ]
    ids = [key for key in strings if key == "id" or key.endswith("_id")]
    candidates = ids or strings or list(payload)
    return candidates[0] if candidates else None


def _bind_to_event(
    params: dict[str, Any],
    payload: dict[str, Any],
    schema: Mapping[str, Any],
    defs: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Params whose example binds ``:name`` values (a SOQL lookup) bound to an event field.

    The example names a field no event has; an example that binds a real field of
    this event (an id, preferably) is one a person keeps, and the payload is then
    just the bound values, since the action reads nothing else from it.
    """
    binds = {
        key: names
        for key, value in params.items()
        if isinstance(value, str) and (names := _BIND.findall(_outside_quotes(value)))
    }
    if not binds:
        return params, payload
    field = _id_field(payload, schema, defs)
    if field is None:
        return params, payload
    bound = dict(params)
    for key, names in binds.items():
        for name in set(names):
            bound[key] = re.sub(rf"(?<![A-Za-z0-9_:]):{name}\b", f":{field}", bound[key])
    return bound, {field: payload[field]}


def _outside_quotes(text: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)


def _action(to: str, adapters: AdapterRegistry, config: ProjectConfig) -> Action | None:
    connection, _, action = to.partition(".")
    with contextlib.suppress(ConfigurationError):
        return adapters.get(config.connection(connection).adapter).actions.get(action)
    return None


def check_target(to: str, adapters: AdapterRegistry, config: ProjectConfig) -> None:
    """Refuse a ``--to`` that names no configured connection or no action of its adapter.

    The message lists what exists and says "did you mean" for a near miss.
    """
    connection, dot, action = to.partition(".")
    if not dot or not action:
        raise ConfigurationError(
            f"--to {to!r}: write CONNECTION.ACTION, for example vendor.post or slack.post_message"
        )
    known = sorted(config.connections)
    if connection not in config.connections:
        if connection in adapters:
            adapter_type = adapters.get(connection)
            try:
                adapter_type.Settings.model_validate({})
            except ValidationError:
                raise ConfigurationError(
                    f"--to {to!r}: adapter {connection!r} needs settings: add a connection "
                    f"that uses it to platypus.yaml (connections: {', '.join(known) or 'none'})"
                ) from None
            actions: Mapping[str, Action] = adapter_type.actions
        else:
            raise ConfigurationError(
                f"--to {to!r}: no connection {connection!r} in platypus.yaml"
                f"{_hint(connection, [*known, *adapters])} "
                f"(connections: {', '.join(known) or 'none'})"
            )
    else:
        adapter = config.connections[connection].adapter
        actions = adapters.get(adapter).actions
    if action not in actions:
        raise ConfigurationError(
            f"--to {to!r}: connection {connection!r} has no action {action!r}"
            f"{_hint(action, list(actions))} (it has: {', '.join(sorted(actions))})"
        )


def _hint(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kinds(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> set[str]:
    kinds = set()
    for option in _options(schema, defs):
        kind = option.get("type")
        kinds.add(str(kind) if kind else ("object" if "properties" in option else "any"))
    return kinds


def _fits(
    source: Mapping[str, Any],
    source_defs: Mapping[str, Any],
    target: Mapping[str, Any],
    target_defs: Mapping[str, Any],
) -> bool:
    """Whether every value of ``source`` is of a JSON type ``target`` takes (scalars only)."""
    have = _kinds(source, source_defs) - {"null"}
    want = _kinds(target, target_defs)
    if "integer" in have and "number" in want:
        have = (have - {"integer"}) | {"number"}
    if not have or have & {"object", "array", "any"}:
        return False  # nested shapes are not matched by name: a constant instead
    return "any" in want or have <= want


def _complete(
    model: type[BaseModel], values: dict[str, Any], schema: Mapping[str, Any], defs: Any
) -> dict[str, Any]:
    """``values`` with optional fields added where the model's validators ask for them.

    Each error points at an object (``loc``); the first optional field missing
    there is added, until the model accepts the whole. Fields that turn out not
    to be needed are then removed again, so the scaffold stays minimal.
    """
    value = copy.deepcopy(values)
    added: list[tuple[str | int, ...]] = []
    for _ in range(40):
        errors = _errors(model, value)
        if not errors:
            break
        for loc in errors:
            path = _add_optional(value, schema, defs, loc)
            if path is not None:
                added.append(path)
                break
        else:
            return value  # nothing left to add: the author finishes it
    for path in reversed(added):
        trial = copy.deepcopy(value)
        _remove(trial, path)
        if not _errors(model, trial):
            value = trial
    return value


def _errors(model: type[BaseModel], value: Any) -> list[tuple[str | int, ...]]:
    try:
        model.model_validate(value)
    except ValidationError as exc:
        return [tuple(err["loc"]) for err in exc.errors()]
    return []


def _add_optional(
    value: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], loc: tuple[str | int, ...]
) -> tuple[str | int, ...] | None:
    """Add the first missing optional field of the object ``loc`` is in; its path."""
    objects: list[tuple[tuple[str | int, ...], Any, Mapping[str, Any]]] = []
    here: Any = value
    node: Mapping[str, Any] = schema
    path: tuple[str | int, ...] = ()
    for part in (*loc, None):
        node = _object_option(node, defs)
        if isinstance(here, dict):
            objects.append((path, here, node))
        if part is None:
            break
        if isinstance(here, dict) and isinstance(part, str) and part in here:
            here, node = here[part], node.get("properties", {}).get(part, {})
        elif isinstance(here, list) and isinstance(part, int) and part < len(here):
            here, node = here[part], _deref(node.get("items", {}), defs)
        else:
            break
        path = (*path, part)
    for where, obj, obj_schema in reversed(objects):
        for key, prop in obj_schema.get("properties", {}).items():
            if key not in obj:
                obj[key] = _sample(prop, defs, key, optional=True)
                return (*where, key)
    return None


def _object_option(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    options = _options(schema, defs)
    for option in options:
        if "properties" in option or option.get("type") == "array":
            return option
    return options[0] if options else schema


def _remove(value: Any, path: tuple[str | int, ...]) -> None:
    for part in path[:-1]:
        value = value[part]
    del value[path[-1]]


def _sample(
    schema: Mapping[str, Any], defs: Mapping[str, Any], name: str, *, optional: bool = False
) -> Any:
    """`sample_instance`, with a name-aware string (an e-mail for ``email``)."""
    real = [o for o in _options(schema, defs) if o.get("type") != "null"] or [schema]
    option = real[0]
    plain_string = option.get("type") == "string" and not (
        {"format", "pattern", "enum", "const"} & set(option)
    )
    if plain_string and "mail" in name.lower():
        return "someone@example.com"
    if optional:
        # The default of an optional field is what it means when absent: use a value.
        return sample_instance({k: v for k, v in option.items() if k != "default"}, defs)
    return sample_instance(schema, defs)


def _constant(value: Any) -> Any:
    """A sample value as a payload template: strings become quoted JMESPath literals."""
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, dict | list):
        return "`" + json.dumps(value) + "`"
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, str) and _PLAIN.match(value):
        return value
    return json.dumps(value)


def _flow_yaml(
    name: str,
    consumes: str,
    when: str,
    step: str,
    to: str,
    params: Mapping[str, Any],
    payload: Mapping[str, Any],
) -> str:
    lines = [
        f"name: {name}",
        "description: >",
        f"  TODO: say what {name} is for, in a sentence the business would recognise.",
        f"consumes: {consumes}",
        f"when: {json.dumps(when)}    # events for which this is false are filtered out",
        "steps:",
        f"  - name: {step}",
        f"    to: {to}",
    ]
    if params:
        lines.append(f"    params: {json.dumps(dict(params))}")
    if not payload:
        lines.append("    payload: {}")
    else:
        lines.append("    payload:                 # JMESPath over the event; 'text' is a constant")
        lines.extend(f"      {key}: {_scalar(value)}" for key, value in payload.items())
    return "\n".join(lines) + "\n"


def _tests_yaml(
    name: str,
    event_file: str,
    step: str,
    to: str,
    params: Mapping[str, Any],
    payload: Any,
    filtered_patch: Mapping[str, Any],
) -> str:
    call: dict[str, Any] = {"to": to}
    if params:
        call["params"] = dict(params)
    call["payload"] = payload
    lines = [
        f"# Tests of {name}.yaml; run them with `platypus flows test`.",
        "# Adapters are fakes here: `results:` says what a step's call returns,",
        "# `fail:` makes it raise. Nothing is sent anywhere.",
        "cases:",
        "  - name: the sample event is delivered",
        f"    event_file: {event_file}",
        "    calls:",
        _indent(yaml.safe_dump([call], sort_keys=False, allow_unicode=True, width=88), 6),
        "",
        "  - name: events the condition rejects are filtered out",
        f"    event_file: {event_file}",
        f"    patch: {_json(filtered_patch)}",
        "    filtered: true",
        "",
        "  - name: a refused call is dead-lettered",
        f"    event_file: {event_file}",
        "    fail:",
        f"      {step}: {{error: PermanentError, message: 400 Bad Request}}",
        "    dead_lettered:",
        f"      step: {step}",
        "      error: PermanentError",
        "      message_contains: 400 Bad Request",
    ]
    return "\n".join(lines) + "\n"


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.rstrip("\n").splitlines())


def _json(value: Any) -> str:
    """JSON is YAML: one line, exact, and no quoting surprises."""
    return json.dumps(value, default=str)


# -- a minimal valid instance from a JSON Schema -------------------------------------


def _options(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    schema = _deref(schema, defs)
    found = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(found, list):
        return [o for option in found for o in _options(option, defs)]
    return [schema]


def _deref(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(32):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            break
        schema = defs.get(ref.rsplit("/", 1)[-1], {})
    return schema


def sample_instance(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> Any:
    """A small value valid for ``schema`` (pydantic's JSON Schema): required fields only.

    Handles what event schemas use: objects, lists (one item), enums and consts,
    strings with a format, length or pattern, and bounded numbers.
    """
    defs = defs if defs is not None else schema.get("$defs", {})
    schema = _deref(schema, defs)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        real = [o for o in options if _deref(o, defs).get("type") != "null"]
        return sample_instance(real[0] if real else options[0], defs)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        out = {key: sample_instance(props[key], defs) for key in schema.get("required", [])}
        extra = schema.get("additionalProperties", True)
        for index in range(len(out), int(schema.get("minProperties", 0))):
            # A free-form mapping that may not be empty: a sample entry.
            out[f"sample{index + 1}"] = (
                sample_instance(extra, defs) if isinstance(extra, Mapping) else "sample"
            )
        return out
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        item = schema.get("items", {})
        return [sample_instance(item, defs) for _ in range(count)]
    if kind == "string":
        return _sample_string(schema)
    if kind in ("number", "integer"):
        return _sample_number(schema, kind)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "sample"


def _sample_string(schema: Mapping[str, Any]) -> str:
    formats = {
        "date": "2026-01-15",
        "date-time": SAMPLE_TIME,
        "email": "someone@example.com",
        "uri": "https://example.com/",
        "uuid": "00000000-0000-4000-8000-000000000001",
        "time": "09:00:00",
    }
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in formats:
        return formats[fmt]
    pattern = schema.get("pattern")
    text = _from_pattern(pattern) if isinstance(pattern, str) else "sample"
    least = int(schema.get("minLength", 0))
    if len(text) < least:
        text += "x" * (least - len(text))
    most = schema.get("maxLength")
    return text[: int(most)] if isinstance(most, int) else text


def _sample_number(schema: Mapping[str, Any], kind: str) -> int | float:
    value: float = 100
    if "minimum" in schema:
        value = max(value, float(schema["minimum"]))
    if "exclusiveMinimum" in schema:
        value = max(value, float(schema["exclusiveMinimum"]) + 1)
    if "maximum" in schema:
        value = min(value, float(schema["maximum"]))
    if "exclusiveMaximum" in schema:
        value = min(value, float(schema["exclusiveMaximum"]) - 1)
    return int(value) if kind == "integer" or value == int(value) else value


def _from_pattern(pattern: str) -> str:
    """The shortest simple string a regular expression matches (best effort)."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return "sample"
    return _walk(parsed)


def _walk(items: Any) -> str:
    out = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "IN":
            out.append(_first_in(arg))
        elif name == "ANY":
            out.append("a")
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            out.append(_walk(sub) * int(low))
        elif name == "SUBPATTERN":
            out.append(_walk(arg[-1]))
        elif name == "BRANCH":
            out.append(_walk(arg[1][0]))
        elif name == "CATEGORY":
            out.append(_category(str(arg)))
    return "".join(out)


def _first_in(options: Any) -> str:
    for op, arg in options:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return _category(str(arg))
    return "a"


def _category(name: str) -> str:
    if "DIGIT" in name and "NOT" not in name:
        return "0"
    if "SPACE" in name and "NOT" not in name:
        return " "
    return "a"
