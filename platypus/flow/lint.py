"""``platypus flows lint``: every mistake in flow files, found before anything runs.

Beyond what the loader refuses (YAML, unknown keys, bad expressions), lint checks
each flow against the project: the event types it consumes are registered, every
expression reads only fields those events have and only steps that ran before
(an earlier step's answer against the model its action declares it returns),
each step writes to a connection that exists, with an action its adapter has,
valid ``params`` and a payload that maps what the action's input needs, all the
way down, with values of types that input can take (an event object of another
shape, an optional field into a required input), and no personal data in free
text the step does not allow. Conditions are checked too: a comparison that
cannot work (a string field against a number, an enum against a value it never
holds), an unknown JMESPath function or arguments it refuses, and a ``when``
that cannot change from event to event. docs/flows.md lists every code.

Each `Finding` names the file, line and column of the offending YAML node::

    flows/billing.yaml:14:20: error[expression-field]: 'data.opportunity_idd': data has
    no field 'opportunity_idd'; did you mean 'data.opportunity_id'?
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from jmespath import functions as jmes_functions
from pydantic import BaseModel, ValidationError

from platypus.adapter import FREE_TEXT_KEY, ONE_OF_REQUIRED_KEY, Action, Adapter, AdapterRegistry
from platypus.config import CONFIG_FILE, ProjectConfig, expand_env, unset_variables
from platypus.exceptions import ConfigurationError, SchemaError, SourceLocation
from platypus.expression import Expression, _Checker, check, truthy
from platypus.flow._yaml import Locations, Problem, YamlPath, parse_yaml
from platypus.flow.loader import FlowFile, duplicate_names, flow_files, read_flow_file
from platypus.flow.model import FlowSpec, StepSpec
from platypus.flow.personal import personal_reads
from platypus.schema_registry import SchemaRegistry
from platypus.validation import format_loc

__all__ = [
    "Finding",
    "format_findings",
    "lint_paths",
    "lint_targets",
    "read_env_file",
    "read_project_config",
]

_STRING: dict[str, Any] = {"type": "string"}
_NULLABLE_STRING: dict[str, Any] = {"anyOf": [_STRING, {"type": "null"}]}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a flow file, at the YAML node that causes it.

    ``code`` is stable, for tools and for searching the docs; ``severity`` is
    ``"error"`` (the flow cannot run as written) or ``"warning"``.
    """

    location: SourceLocation
    code: str
    message: str
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: file, line, column, severity, code and message."""
        return {
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}[{self.code}]: {self.message}"


def read_env_file(path: Path) -> dict[str, str]:
    """Variables of a ``.env`` file: ``NAME=value`` lines (``export``, quotes, # comments).

    Raises `ConfigurationError` naming the file and line of a line that is not one.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.removeprefix("export ").partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigurationError(f"{path}:{number}: expected NAME=value, got {text[:40]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        found[name] = value
    return found


def read_project_config(
    root: Path, environ: Mapping[str, str]
) -> tuple[ProjectConfig, Locations | None, list[Finding]]:
    """``platypus.yaml`` of ``root`` for lint: the config, where its nodes are, and problems.

    Unlike `platypus.config.load_config`, nothing is raised: an unset ``${VAR}``
    with no default is a finding at its line (``env-unset``, read as empty), and an
    invalid entry is one too (``config-invalid``), leaving the rest usable.
    """
    path = root / CONFIG_FILE
    if not path.exists():
        return ProjectConfig(root=root), None, []
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        finding = Finding(SourceLocation(file, 1, 1), "file-unreadable", f"cannot read: {exc}")
        return ProjectConfig(root=root), None, [finding]
    parsed = parse_yaml(text, file)
    findings = [_located(problem, file) for problem in parsed.problems]
    raw = parsed.value
    if not isinstance(raw, dict):
        if raw is not None:
            where = SourceLocation(file, 1, 1)
            findings.append(Finding(where, "config-invalid", "expected a mapping at the top level"))
        return ProjectConfig(root=root), parsed.locations, findings
    env = dict(environ)
    for node, name in _unset(raw, (), environ):
        findings.append(
            Finding(
                parsed.locations.value(node),
                "env-unset",
                f"${{{name}}} is not set and has no default: set {name}, give a default "
                f"(${{{name}:-value}}), or lint with --env-file FILE",
            )
        )
        env[name] = ""
    expanded = expand_env(raw, env)
    for _ in range(3):
        try:
            config = ProjectConfig.model_validate({**expanded, "root": root})
        except ValidationError as exc:
            for err in exc.errors(include_input=False):
                loc = tuple(err["loc"])
                label = format_loc(loc)
                findings.append(
                    Finding(parsed.locations.value(loc), "config-invalid", f"{label}: {err['msg']}")
                )
                _drop(expanded, loc)
            continue
        return config, parsed.locations, findings
    return ProjectConfig(root=root), parsed.locations, findings


def _located(problem: Problem, file: str) -> Finding:
    error = problem.error
    where = error.location or SourceLocation(file, 1, 1)
    return Finding(where, problem.code, error.message)


def _unset(
    value: Any, path: YamlPath, environ: Mapping[str, str]
) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(value, str):
        for name in unset_variables(value, environ):
            yield path, name
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unset(item, (*path, key), environ)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unset(item, (*path, index), environ)


def _drop(raw: dict[str, Any], loc: YamlPath) -> None:
    """Leave out the entry an error is about: a whole connection, or a top-level key."""
    keep = 2 if loc and loc[0] in ("connections", "sources", "pollers") and len(loc) > 1 else 1
    parent: Any = raw
    for part in loc[: keep - 1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent.pop(loc[keep - 1], None)


def lint_paths(
    paths: Sequence[Path],
    *,
    schemas: SchemaRegistry,
    adapters: AdapterRegistry,
    config: ProjectConfig,
    config_locations: Locations | None = None,
) -> list[Finding]:
    """Check flow files, and every flow file under folders, in ``paths``.

    Returns the findings in file order, then by line and column; an empty list
    means every flow can run. Flow names must be unique across all ``paths``.
    With ``config_locations`` (where the nodes of ``platypus.yaml`` are, from
    `read_project_config`), a mistake of a connection is reported there, once,
    rather than at every step that uses it.
    """
    findings: list[Finding] = []
    files: list[FlowFile] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            candidates = flow_files(path)
        elif path.exists():
            candidates = [path]
        else:
            where = SourceLocation(str(path), 1, 1)
            findings.append(Finding(where, "file-unreadable", "no such file or folder"))
            continue
        for candidate in candidates:
            if candidate.resolve() not in seen:
                seen.add(candidate.resolve())
                files.append(read_flow_file(candidate))

    order = {str(flow.path): index for index, flow in enumerate(files)}
    if config_locations is not None:
        order.setdefault(config_locations.file, -1)
    connections: dict[str, Finding] = {}
    for flow in files:
        findings.extend(_finding(flow, problem) for problem in flow.problems)
        if flow.spec is not None:
            checker = _FlowChecker(flow.spec, flow.locations, schemas, adapters, config)
            checker.config_locations = config_locations
            checker.connection_findings = connections
            findings.extend(checker.run())
    findings.extend(connections.values())
    findings.extend(_finding(files[0], problem) for problem in duplicate_names(files))

    def position(finding: Finding) -> tuple[int, int, int]:
        where = finding.location
        return (order.get(where.file, -1), where.line, where.column)

    return sorted(findings, key=position)


def lint_targets(
    flow: FlowSpec,
    locations: Locations,
    *,
    schemas: SchemaRegistry,
    adapters: AdapterRegistry,
    config: ProjectConfig,
) -> list[Finding]:
    """Only the checks of each step's target, as `lint_paths` makes them.

    Connection, adapter, action, ``params`` and payload against the action's
    input (types, required and one-of inputs, personal data to free text): what
    ``platypus flows test`` needs to refuse a flow the way lint does.
    """
    checker = _FlowChecker(flow, locations, schemas, adapters, config)
    wires = checker.wire_schemas()
    checker.findings.clear()  # unknown event types are not about targets
    checker.add_step_results(wires)
    for index, step in enumerate(flow.steps):
        checker.target(step, ("steps", index), wires)
    return checker.findings


def format_findings(findings: Sequence[Finding], fmt: Literal["text", "json"] = "text") -> str:
    """Findings as compiler-style text lines with a summary, or as a JSON list."""
    if fmt == "json":
        return json.dumps([finding.to_dict() for finding in findings], indent=2)
    if not findings:
        return "no problems found"
    errors = sum(1 for finding in findings if finding.severity == "error")
    warnings = len(findings) - errors
    files = len({finding.location.file for finding in findings})
    counts = [_plural(errors, "error")] if errors or not warnings else []
    if warnings:
        counts.append(_plural(warnings, "warning"))
    summary = f"{' and '.join(counts)} in {_plural(files, 'file')}"
    return "\n".join([*(str(finding) for finding in findings), summary])


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _finding(flow: FlowFile, problem: Problem) -> Finding:
    error = problem.error
    where = error.location or SourceLocation(str(flow.path), 1, 1)
    message = f"{error.path}: {error.message}" if error.path else error.message
    return Finding(where, problem.code, message)


_Wires = list[tuple[str, dict[str, Any], dict[str, Any]]]  # (type, wire schema, $defs)


@dataclass(frozen=True, slots=True)
class _Mapped:
    """One expression of a step's payload and the input it is mapped to.

    What the checks that judge it against the events (its shape, whether it may be
    null) need, in one place.
    """

    step: StepSpec
    expr: Expression
    target: Mapping[str, Any]  # the input's JSON Schema, $refs resolved by ``defs``
    defs: Mapping[str, Any]
    path: YamlPath  # where the expression is in the flow file
    label: str  # the input's name in messages, e.g. ``account.name``
    wires: _Wires


class _FlowChecker:
    """The checks of one valid flow against the project's schemas, adapters and config."""

    def __init__(
        self,
        flow: FlowSpec,
        locations: Locations,
        schemas: SchemaRegistry,
        adapters: AdapterRegistry,
        config: ProjectConfig,
    ) -> None:
        self.flow = flow
        self.locations = locations
        self.schemas = schemas
        self.adapters = adapters
        self.config = config
        self.findings: list[Finding] = []
        # Set by lint_paths: where platypus.yaml's nodes are, and its findings so far
        # (one per connection, however many steps use it).
        self.config_locations: Locations | None = None
        self.connection_findings: dict[str, Finding] = {}

    def report(self, code: str, path: YamlPath, message: str, *, key: bool = False) -> None:
        where = self.locations.key(path) if key else self.locations.value(path)
        self.findings.append(Finding(where, code, message))

    def run(self) -> list[Finding]:
        wires = self.wire_schemas()
        self.add_step_results(wires)
        step_names = [step.name for step in self.flow.steps]
        if self.flow.when is not None:
            self.expression(self.flow.when, ("when",), wires, None, step_names, [], condition=True)
        for index, step in enumerate(self.flow.steps):
            earlier = step_names[:index]
            base: YamlPath = ("steps", index)
            if step.when is not None:
                when = (*base, "when")
                self.expression(
                    step.when, when, wires, step.name, step_names, earlier, condition=True
                )
            for path, expr in _expressions(step.payload, (*base, "payload")):
                self.expression(expr, path, wires, step.name, step_names, earlier)
            self.target(step, base, wires)
        return self.findings

    # -- event types and expressions ---------------------------------------------

    def action_of(self, step: StepSpec) -> Action | None:
        """The step's action, if its connection, adapter and action all exist."""
        configured = self.config.connections.get(step.connection)
        adapter_name = configured.adapter if configured is not None else step.connection
        if adapter_name not in self.adapters:
            return None
        try:
            adapter = self.adapters.get(adapter_name)
        except ConfigurationError:
            return None
        return adapter.actions.get(step.action)

    def add_step_results(self, wires: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """What ``steps.<name>`` holds for each step whose action declares its result."""
        properties: dict[str, Any] = {}
        defs: dict[str, Any] = {}
        for step in self.flow.steps:
            action = self.action_of(step)
            if action is None or action.result is None:
                properties[step.name] = {}
                continue
            schema, own = _prefixed(action.result.model_json_schema(), f"step-{step.name}-")
            defs.update(own)
            # A step with a condition may not run: then it has no result.
            properties[step.name] = (
                {"anyOf": [schema, {"type": "null"}]} if step.when is not None else schema
            )
        for _, schema, wire_defs in wires:
            schema["properties"]["steps"] = {
                "type": "object",
                "properties": properties,
                "additionalProperties": True,  # unknown steps: reported as step-reference
            }
            wire_defs.update(defs)

    def wire_schemas(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(type, schema of the event on the wire, $defs) for each known consumed type."""
        wires = []
        for index, event_type in enumerate(self.flow.consumes):
            try:
                self.schemas.get(event_type)
            except SchemaError as exc:
                self.report("unknown-event-type", ("consumes", index), str(exc))
                continue
            data = dict(self.schemas.json_schema(event_type))
            defs = data.pop("$defs", {})
            # The registry's $defs are shared: step results are added to a copy.
            wires.append((event_type, _wire(data), dict(defs)))
        if not wires:
            # Nothing to check data against; the envelope and steps still are.
            wires.append(("", _wire({}), {}))
        return wires

    def expression(
        self,
        expr: Expression,
        path: YamlPath,
        wires: list[tuple[str, dict[str, Any], dict[str, Any]]],
        step: str | None,
        steps: list[str],
        earlier: list[str],
        *,
        condition: bool = False,
    ) -> None:
        reader = f"step {step!r}" if step is not None else "the flow's when"
        for name in _step_refs(expr.ast):
            if name in earlier:
                continue
            if name == step:
                why = "which is this step itself: a step can read only steps before it"
            elif name in steps:
                why = "which runs later: a step can read only steps before it"
                if step is None:
                    why = "but it is evaluated before any step runs"
            else:
                close = difflib.get_close_matches(name, earlier, n=1, cutoff=0.6)
                why = "which does not exist" + (f"; did you mean {close[0]!r}?" if close else "")
            self.report("step-reference", path, f"{reader} reads steps.{name}, {why}")

        by_message: dict[str, list[str]] = {}
        for event_type, schema, defs in wires:
            for message in check(expr, schema, defs):
                by_message.setdefault(message, []).append(event_type)
        for message, types in by_message.items():
            only = ""
            if len(wires) > 1 and len(types) < len(wires):
                only = f" (in event type {', '.join(types)})"
            self.report("expression-field", path, f"{expr.source!r}: {message}{only}")

        problems: dict[tuple[str, str], list[str]] = {}
        results: list[frozenset[str] | None] = []
        may_be_empty = False  # a list with no minItems: a test of "any?"
        for event_type, schema, defs in wires:
            checker = _ConditionChecker(defs)
            produced = checker.visit(expr.ast, schema, "")
            results.append(_json_types(produced, defs))
            listed = checker.resolve(produced)
            if listed is not None and checker.kind(listed) == "array":
                may_be_empty = may_be_empty or not listed.get("minItems")
            for problem in checker.problems:
                problems.setdefault(problem, []).append(event_type)
        for (code, message), types in problems.items():
            only = ""
            if len(wires) > 1 and len(types) < len(wires):
                only = f" (in event type {', '.join(types)})"
            self.report(code, path, f"{expr.source!r}: {message}{only}")
        if condition:
            self.condition_result(expr, path, _union(results), may_be_empty=may_be_empty)

    def condition_result(
        self,
        expr: Expression,
        path: YamlPath,
        produced: frozenset[str] | None,
        *,
        may_be_empty: bool = False,
    ) -> None:
        """A ``when`` that cannot change from event to event is a mistake: an error.

        A constant, a number (JMESPath counts 0 as true) or a field that is always
        there (text, an object, a list that is never empty) hold for every event. An
        optional field, or a list that may be empty (a lookup's records), is a test
        of presence, which may be meant: a warning.
        """
        node = expr.ast
        if node["type"] == "literal":
            holds = "true" if truthy(node["value"]) else "false"
            message = (
                f"{expr.source!r} is a constant: the condition is always {holds}; "
                "compare a field of the event, e.g. data.amount > `1000`"
            )
            self.report("condition-constant", path, message)
            return
        kinds = (produced or frozenset()) - {"null"}
        if not kinds or "boolean" in kinds:
            return
        if kinds <= {"number", "integer"}:
            message = (
                f"{expr.source!r} is a number, not true/false: JMESPath counts every number "
                "(0 too) as true, so this condition holds for every event that has the field; "
                f"compare it, e.g. {expr.source} > `0`"
            )
            self.report("condition-not-boolean", path, message)
            return
        if kinds == {"array"} and may_be_empty:
            message = (
                f"{expr.source!r} is a list, not true/false: it is true when the list is not "
                f"empty; write length({expr.source}) > `0` to say so"
            )
            where = self.locations.value(path)
            self.findings.append(Finding(where, "condition-not-boolean", message, "warning"))
            return
        if produced is not None and "null" in produced:
            message = (
                f"{expr.source!r} is {_kinds(kinds)} or null, not true/false: it is true when "
                f"present and not empty; write {expr.source} != `null` if that is what you mean"
            )
            where = self.locations.value(path)
            self.findings.append(Finding(where, "condition-not-boolean", message, "warning"))
            return
        example = (
            f"{expr.source} == 'some value'"
            if kinds == {"string"}
            else f"length({expr.source}) > `1`"
        )
        message = (
            f"{expr.source!r} is {_kinds(kinds)}, not true/false, and every event has it: "
            f"the condition is true for every event (unless it is empty); compare it, "
            f"e.g. {example}"
        )
        self.report("condition-not-boolean", path, message)

    # -- connections, adapters, actions ------------------------------------------

    def target(
        self,
        step: StepSpec,
        base: YamlPath,
        wires: list[tuple[str, dict[str, Any], dict[str, Any]]],
    ) -> None:
        to: YamlPath = (*base, "to")
        name = step.connection
        configured = self.config.connections.get(name)
        if configured is None and name not in self.adapters:
            known = sorted({*self.config.connections, *self.adapters})
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.report(
                "unknown-connection",
                to,
                f"connection {name!r} is not in platypus.yaml and is not an installed "
                f"adapter{hint}",
            )
            return
        adapter_name = configured.adapter if configured is not None else name
        if adapter_name not in self.adapters:
            close = difflib.get_close_matches(adapter_name, list(self.adapters), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = (
                f"connection {name!r} uses adapter {adapter_name!r}, which is not installed "
                f"(installed: {', '.join(self.adapters) or 'none'}){hint}"
            )
            if self.config_locations is None:
                self.report("unknown-adapter", to, message)
            elif name not in self.connection_findings:
                # The mistake is in platypus.yaml: said there, once.
                where = self.config_locations.value(("connections", name, "adapter"))
                used = self.locations.value(to)
                self.connection_findings[name] = Finding(
                    where, "unknown-adapter", f"{message} (used by {used})"
                )
            return
        try:
            adapter = self.adapters.get(adapter_name)
        except ConfigurationError as exc:
            self.report("adapter-unavailable", to, str(exc))
            return
        if configured is None:
            self.unconfigured(adapter, name, to)
        action = adapter.actions.get(step.action)
        if action is None:
            close = difflib.get_close_matches(step.action, list(adapter.actions), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            actions = ", ".join(sorted(adapter.actions)) or "none"
            self.report(
                "unknown-action",
                to,
                f"adapter {adapter_name!r} has no action {step.action!r} (it has: {actions}){hint}",
            )
            return
        params = self.params(step, action, base)
        if params is not None:
            self.binds(step, action, params, base)
        self.payload(step, action, base, wires)

    def unconfigured(self, adapter: type[Adapter], name: str, to: YamlPath) -> None:
        """A step naming an adapter directly: fine only if it needs no settings."""
        try:
            adapter.Settings.model_validate({})
        except ValidationError as exc:
            needed = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
            self.report(
                "connection-settings",
                to,
                f"adapter {name!r} needs settings ({', '.join(needed)}): add a connection "
                "that uses it to platypus.yaml and write to that connection",
            )

    def params(self, step: StepSpec, action: Action, base: YamlPath) -> BaseModel | None:
        """The step's params, validated; None (and findings) if they are not valid."""
        if action.params is None:
            return None
        try:
            return action.params.model_validate(dict(step.params))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])
                label = format_loc(loc, "params")
                if err["type"] == "extra_forbidden" and len(loc) == 1:
                    message = f"{label}: unknown param {loc[0]!r}" + _suggest(
                        str(loc[0]), _field_names(action.params)
                    )
                    self.report("invalid-params", (*base, "params", *loc), message, key=True)
                    continue
                message = f"{label}: {err['msg']}"
                if err["type"] != "missing":
                    message += f", got {err['input']!r}"
                self.report("invalid-params", (*base, "params", *loc), message)
        return None

    def binds(self, step: StepSpec, action: Action, params: BaseModel, base: YamlPath) -> None:
        """Payload keys the params refer to that the payload never maps: a SOQL
        ``:name``, or a param naming a payload key (an upsert's external id field).

        The adapter reads them from the payload at run time, and fails every event
        that lacks one: a misspelt bind or a forgotten payload key.
        """
        if action.binds is None:
            return
        mapped = [str(key) for key in step.payload]
        reported: set[str] = set()
        for param, key in action.binds(params):
            if key in step.payload or key in reported:
                continue
            reported.add(key)
            close = difflib.get_close_matches(key, mapped, n=1, cutoff=0.6)
            has = f"it maps: {', '.join(mapped)}" if mapped else "it maps nothing"
            consequence = f"the payload has no {key!r} ({has}), so {step.to!r} fails on every event"
            if getattr(params, param, None) == key:
                # The param is the key itself: the payload must hold it under that name.
                fix = f"rename {close[0]!r} to {key}" if close else f"map {key} in the payload"
                said = f"params.{param} is {key!r}, but {consequence}; {fix}"
            else:
                fix = f"did you mean :{close[0]}?" if close else f"map {key} in the payload"
                said = f"params.{param} binds :{key}, but {consequence}; {fix}"
            self.report("bind-missing", (*base, "params", param), said)

    def payload(
        self,
        step: StepSpec,
        action: Action,
        base: YamlPath,
        wires: list[tuple[str, dict[str, Any], dict[str, Any]]],
    ) -> None:
        model = action.input
        if model is None or not isinstance(step.payload, dict):
            # No fixed input, or a payload computed by one expression: nothing to compare.
            return
        path: YamlPath = (*base, "payload")
        fields = _field_names(model)
        required = [
            info.alias or name for name, info in model.model_fields.items() if info.is_required()
        ]
        for name in required:
            if name not in step.payload:
                self.report(
                    "input-missing",
                    path,
                    f"action {step.to!r} needs {name!r} in its input, but the payload "
                    "never maps it",
                )
        if model.model_config.get("extra") == "forbid":
            for key in step.payload:
                if key not in fields:
                    self.report(
                        "input-unknown-key",
                        (*path, key),
                        f"action {step.to!r} takes no {key!r} in its input{_suggest(key, fields)}",
                        key=True,
                    )
        schema = model.model_json_schema()
        defs = schema.get("$defs", {})
        properties = schema.get("properties", {})
        self.one_of(step, schema, step.payload, path, "")
        for key, value in step.payload.items():
            if key in properties:
                needed = key in required
                self.value(step, value, properties[key], defs, (*path, key), key, wires, needed)
                if properties[key].get(FREE_TEXT_KEY):
                    self.personal(step, value, (*path, key), key, wires)

    def one_of(
        self,
        step: StepSpec,
        target: Mapping[str, Any],
        value: Mapping[str, Any],
        path: YamlPath,
        label: str,
    ) -> None:
        """Groups of inputs of which the action needs one, none of them mapped."""
        for group in target.get(ONE_OF_REQUIRED_KEY, []):
            if not any(name in value and value[name] is not None for name in group):
                names = [f"{label}{name}" for name in group]
                self.report(
                    "input-missing",
                    path,
                    f"action {step.to!r} needs {' or '.join(repr(n) for n in names)} in its "
                    f"input, but the payload maps none of them: map {names[0]!r}",
                )

    def personal(
        self,
        step: StepSpec,
        value: Any,
        path: YamlPath,
        label: str,
        wires: list[tuple[str, dict[str, Any], dict[str, Any]]],
    ) -> None:
        """Personal data sent to free text that people keep and search (a chat message)."""
        found: list[str] = []
        for _, expr in _expressions(value, path):
            for _, schema, defs in wires:
                for field in personal_reads(expr, schema, defs):
                    if field not in found and not step.allows_personal(field):
                        found.append(field)
        if not found:
            return
        listed = ", ".join(found)
        allow = ", ".join([*step.allow_personal_data, *found])  # the whole list, to paste
        self.report(
            "personal-data",
            path,
            f"step {step.name!r} sends personal data ({listed}) to {label!r} of {step.to!r}, "
            "free text that is kept and searchable by everyone who can read it: leave it out, "
            f"or say the step may send it with allow_personal_data: [{allow}]",
        )

    def value(
        self,
        step: StepSpec,
        value: Any,
        target: Mapping[str, Any],
        defs: Mapping[str, Any],
        path: YamlPath,
        label: str,
        wires: list[tuple[str, dict[str, Any], dict[str, Any]]],
        required: bool = False,
    ) -> None:
        """Whether ``value`` (a template) can fit ``target``: only definite misfits count."""
        target = _deref(target, defs)
        objects = [o for o in _options(target, defs) if "properties" in o]
        if isinstance(value, dict) and len(objects) == 1:
            self.nested(step, value, objects[0], defs, path, label, wires)
        lists = [o for o in _options(target, defs) if isinstance(o.get("items"), Mapping)]
        if isinstance(value, list) and len(lists) == 1:
            # Each item written out in the flow is checked against the list's items.
            items = _deref(lists[0]["items"], defs)
            for index, item in enumerate(value):
                self.value(step, item, items, defs, (*path, index), f"{label}[{index}]", wires)
        problem = _misfit(value, target, defs, wires)
        if problem is not None:
            self.report("input-type", path, f"action {step.to!r} takes {label!r} as {problem}")
            return
        if isinstance(value, Expression):
            mapped = _Mapped(step, value, target, defs, path, label, wires)
            if len(objects) == 1 and self.shape(replace(mapped, target=objects[0])):
                return
            if required:
                self.nullable(mapped)

    def shape(self, mapped: _Mapped) -> bool:
        """An object of the event mapped whole to a target object of another shape."""
        expr, target, defs, label = mapped.expr, mapped.target, mapped.defs, mapped.label
        for _, wire, wire_defs in mapped.wires:
            checker = _Checker(wire_defs)
            produced = checker.resolve(checker.visit(expr.ast, wire, ""))
            if produced is None or not isinstance(produced.get("properties"), Mapping):
                continue
            problems = _shape_problems(produced, wire_defs, target, defs, label)
            if problems:
                has = ", ".join(produced["properties"]) or "no fields"
                self.report(
                    "input-shape",
                    mapped.path,
                    f"action {mapped.step.to!r} takes {label!r} as an object of another shape "
                    f"than {expr.source} (which has {has}): {'; '.join(problems)}. Map it field "
                    f"by field, e.g. {label}: {_example(target, defs)}",
                )
                return True
        return False

    def nullable(self, mapped: _Mapped) -> None:
        """An optional event field mapped to a required input, with no fallback."""
        step, expr = mapped.step, mapped.expr
        fields = expr.field_path
        if fields is None or fields[0] != "data":
            # Only a plain event field is known to be missing from some events; what
            # a vendor answered, or a computed value, is not judged.
            return
        accepted = _json_types(mapped.target, mapped.defs)
        if accepted is None or "null" in accepted:
            return
        if not any(_path_nullable(fields, w, d) for _, w, d in mapped.wires):
            return
        guards = [step.when, self.flow.when]
        if any(guard is not None and _mentions(guard, expr) for guard in guards):
            return  # the step (or flow) runs only when the field is there
        self.report(
            "input-nullable",
            mapped.path,
            f"action {step.to!r} needs {mapped.label!r}, but {expr.source} may be null (the "
            f"event need not have it), and then the call fails: give a fallback, e.g. "
            f"{expr.source} || 'unknown', or run the step only when it is there, "
            f"when: {expr.source} != `null`",
        )

    def nested(
        self,
        step: StepSpec,
        value: dict[str, Any],
        target: Mapping[str, Any],
        defs: Mapping[str, Any],
        path: YamlPath,
        label: str,
        wires: list[tuple[str, dict[str, Any], dict[str, Any]]],
    ) -> None:
        """Required, unknown and mistyped keys of a mapped object inside the input."""
        properties: Mapping[str, Any] = target.get("properties", {})
        required = target.get("required", [])
        for name in required:
            if name not in value:
                self.report(
                    "input-missing",
                    path,
                    f"action {step.to!r} needs {label}.{name} in its input, but the payload "
                    "never maps it",
                )
        self.one_of(step, target, value, path, f"{label}.")
        for key, item in value.items():
            if key in properties:
                inner = properties[key]
                self.value(
                    step,
                    item,
                    inner,
                    defs,
                    (*path, key),
                    f"{label}.{key}",
                    wires,
                    key in required,
                )
                if inner.get(FREE_TEXT_KEY):
                    self.personal(step, item, (*path, key), f"{label}.{key}", wires)
            elif target.get("additionalProperties") is False:
                self.report(
                    "input-unknown-key",
                    (*path, key),
                    f"action {step.to!r} takes no {label}.{key} in its input"
                    f"{_suggest(key, list(properties))}",
                    key=True,
                )


def _prefixed(schema: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``schema`` without its ``$defs``, and those renamed with ``prefix`` (refs too).

    Step results are read beside the event's own schema; their definitions must not
    take the place of the event's when two models share a name.
    """

    def rename(node: Any) -> Any:
        if isinstance(node, Mapping):
            out = {key: rename(value) for key, value in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                out["$ref"] = "#/$defs/" + prefix + ref.removeprefix("#/$defs/")
            return out
        if isinstance(node, list):
            return [rename(item) for item in node]
        return node

    renamed = rename(schema)
    defs = renamed.pop("$defs", {})
    return renamed, {prefix + name: value for name, value in defs.items()}


def _shape_problems(
    produced: Mapping[str, Any],
    produced_defs: Mapping[str, Any],
    target: Mapping[str, Any],
    defs: Mapping[str, Any],
    label: str,
) -> list[str]:
    """How an object of schema ``produced`` fails the object ``target``; [] if it may fit."""
    has: Mapping[str, Any] = produced.get("properties", {})
    takes: Mapping[str, Any] = target.get("properties", {})
    problems = []
    missing = [name for name in target.get("required", []) if name not in has]
    if missing:
        problems.append(f"{label} needs {', '.join(missing)}")
    if target.get("additionalProperties") is False:
        extra = [name for name in has if name not in takes]
        if extra:
            problems.append(f"{label} does not take {', '.join(extra)}")
    for name in has:
        if name not in takes:
            continue
        inner = _deref(takes[name], defs)
        mine = _deref(has[name], produced_defs)
        if "properties" in inner and "properties" in mine:
            problems += _shape_problems(mine, produced_defs, inner, defs, f"{label}.{name}")
            continue
        given = _json_types(mine, produced_defs)
        accepted = _json_types(inner, defs)
        if given is None or accepted is None:
            continue
        given -= {"null"}
        allowed = frozenset().union(*(_ACCEPTS.get(kind, frozenset()) for kind in accepted))
        if given and not given & allowed:
            problems.append(f"{label}.{name} is {_kinds(accepted)}, not {_kinds(given)}")
    return problems


def _example(target: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    names = list(target.get("required", [])) or list(target.get("properties", {}))[:2]
    return "{" + ", ".join(f"{name}: ..." for name in names) + "}"


def _path_nullable(path: Sequence[str], schema: Mapping[str, Any], defs: Mapping[str, Any]) -> bool:
    """Whether a field path may read null: the field, or an object on the way, may be absent."""
    current: Mapping[str, Any] = schema
    for name in path:
        options = _options(_deref(current, defs), defs)
        if any(_deref(o, defs).get("type") == "null" for o in options):
            return True
        objects = [_deref(o, defs) for o in options if "properties" in _deref(o, defs)]
        if len(objects) != 1:
            return False  # not an object of known fields: nothing definite
        found = objects[0]["properties"].get(name)
        if not isinstance(found, Mapping):
            return False
        current = found
    options = _options(_deref(current, defs), defs)
    return any(_deref(o, defs).get("type") == "null" for o in options)


def _mentions(guard: Expression, expr: Expression) -> bool:
    """Whether a condition reads the field an expression maps (so it is tested first)."""
    path = expr.field_path
    if path is None:
        return False
    # `when: data.billing_contact != `null`` guards data.billing_contact.email too.
    return any(".".join(path[:end]) in guard.source for end in range(2, len(path) + 1))


def _wire(data: dict[str, Any]) -> dict[str, Any]:
    """The schema of what expressions read: the CloudEvents envelope around ``data``.

    ``steps`` is left open here; which steps may be read is checked separately.
    """
    return {
        "type": "object",
        "properties": {
            "id": _STRING,
            "source": _STRING,
            "type": _STRING,
            "specversion": _STRING,
            "subject": _STRING,
            "time": _NULLABLE_STRING,
            "datacontenttype": _NULLABLE_STRING,
            "dataschema": _NULLABLE_STRING,
            "data": data,
            "steps": {"type": "object"},
        },
        "additionalProperties": False,
    }


def _expressions(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, Expression]]:
    """Every expression of a compiled payload template, with its path."""
    if isinstance(value, Expression):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _expressions(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _expressions(item, (*path, index))


# JMESPath nodes whose first child is read from the same value as the node itself;
# the other children read from what the first one produced.
_LEFT_SCOPED = {
    "subexpression",
    "index_expression",
    "projection",
    "filter_projection",
    "value_projection",
    "pipe",
}


def _step_refs(ast: Any) -> list[str]:
    """Names of steps an expression reads as ``steps.<name>`` from the event root."""
    found: list[str] = []

    def visit(node: Any, root: bool) -> None:
        if root:
            head = _head(node)
            if len(head) >= 2 and head[0] == "steps" and head[1] not in found:
                found.append(head[1])
        children = node.get("children", [])
        if node["type"] in _LEFT_SCOPED:
            if children:
                visit(children[0], root)
            for child in children[1:]:
                visit(child, False)
        elif node["type"] == "expref":
            for child in children:
                visit(child, False)
        else:
            for child in children:
                visit(child, root)

    visit(ast, True)
    return found


def _head(node: Any) -> list[str]:
    """The leading field names an expression reads, e.g. ``steps.a[0].b`` -> steps, a."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        return [str(node["value"])]
    if kind == "subexpression":
        names: list[str] = []
        for child in children:
            names += _head(child)
            if child["type"] != "field":
                break
        return names
    if (kind in _LEFT_SCOPED or kind == "flatten") and children:
        return _head(children[0])
    return []


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (it takes: {', '.join(options)})" if options else ""


# -- types: what an expression produces, what an input field takes -----------------------

_FUNCTIONS: Mapping[str, Any] = jmes_functions.Functions.FUNCTION_TABLE
_ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_EQUALITY = {"eq": "==", "ne": "!="}
_BOOLEAN: dict[str, Any] = {"type": "boolean"}

# Which JSON types pydantic (lax mode, as the runtime validates) turns into a field
# of each JSON Schema type: numbers take numeric strings, booleans take 0/1 and
# "true", but a ``str`` field refuses numbers and a date refuses anything but text.
_ACCEPTS: dict[str, frozenset[str]] = {
    "string": frozenset({"string"}),
    "number": frozenset({"number", "integer", "string", "boolean"}),
    "integer": frozenset({"number", "integer", "string", "boolean"}),
    "boolean": frozenset({"boolean", "number", "integer", "string"}),
    "object": frozenset({"object"}),
    "array": frozenset({"array"}),
    "null": frozenset({"null"}),
}


# `_Checker`'s walk returns the JSON Schema of what each node produces; lint
# extends it for conditions rather than walking expressions a second way.
class _ConditionChecker(_Checker):
    """The expression checker, also finding comparisons and calls that cannot work.

    ``problems`` holds (code, message) pairs: ``condition-type`` for a comparison
    of values that are never comparable, ``unknown-function`` and
    ``function-arguments`` for calls JMESPath refuses at run time.
    """

    def __init__(self, defs: Mapping[str, Any]) -> None:
        super().__init__(defs)
        self.problems: list[tuple[str, str]] = []

    def add(self, code: str, message: str) -> None:
        if (code, message) not in self.problems:
            self.problems.append((code, message))

    def _comparator(
        self, node: Mapping[str, Any], schema: Mapping[str, Any] | None, path: str
    ) -> Mapping[str, Any] | None:
        left, right = node["children"]
        sides = [
            (child, _json_types(self.visit(child, schema, path), self.defs))
            for child in (left, right)
        ]
        kinds = [_numbers(types - {"null"}) if types is not None else None for _, types in sides]
        op = str(node["value"])
        if op in _ORDERING:
            for (child, _), found in zip(sides, kinds, strict=True):
                if found and "number" not in found:
                    self.add(
                        "condition-type",
                        f"{_describe(child)} is {_kinds(found)}, but {_ORDERING[op]} compares "
                        "only numbers: the condition fails on every event",
                    )
        elif op in _EQUALITY and kinds[0] and kinds[1] and not kinds[0] & kinds[1]:
            always = "false" if op == "eq" else "true"
            self.add(
                "condition-type",
                f"{_describe(left)} is {_kinds(kinds[0])} and {_describe(right)} is "
                f"{_kinds(kinds[1])}: values of different types are never equal, so "
                f"{_EQUALITY[op]} is always {always}",
            )
        elif op in _EQUALITY:
            for field, other in ((left, right), (right, left)):
                self.enum(
                    field,
                    other,
                    schema,
                    path,
                    f"{_EQUALITY[op]} is always " + ("false" if op == "eq" else "true"),
                )
        return _BOOLEAN

    def enum(
        self,
        field: Mapping[str, Any],
        constant: Mapping[str, Any],
        schema: Mapping[str, Any] | None,
        path: str,
        consequence: str,
    ) -> None:
        """A constant compared with a field whose schema allows only other values."""
        if constant["type"] != "literal" or field["type"] == "literal":
            return
        allowed = _allowed_values(self.visit(field, schema, path), self.defs)
        value = constant["value"]
        if allowed is None or value in allowed or value is None:
            return
        text = [str(v) for v in allowed]
        close = [v for v in allowed if str(v).lower() == str(value).lower()]
        close = close or difflib.get_close_matches(str(value), text, n=1, cutoff=0.6)
        hint = f"; did you mean {_constant_text(close[0])}?" if close else ""
        listed = ", ".join(_constant_text(v) for v in allowed)
        self.add(
            "condition-enum",
            f"{_describe(field)} is one of {listed}, never {_describe(constant)}, "
            f"so {consequence}{hint}",
        )

    def enum_in(
        self,
        field: Mapping[str, Any],
        items: Mapping[str, Any],
        constant: Mapping[str, Any],
        consequence: str,
    ) -> None:
        """A constant looked for in a list whose items are an enum without it."""
        allowed = _allowed_values(items, self.defs)
        if constant["type"] != "literal" or allowed is None or constant["value"] in allowed:
            return
        value = constant["value"]
        close = difflib.get_close_matches(str(value), [str(v) for v in allowed], n=1, cutoff=0.6)
        hint = f"; did you mean {_constant_text(close[0])}?" if close else ""
        listed = ", ".join(_constant_text(v) for v in allowed)
        self.add(
            "condition-enum",
            f"the items of {_render(field)} are one of {listed}, never "
            f"{_describe(constant)}, so {consequence}{hint}",
        )

    def _or_expression(
        self, node: Mapping[str, Any], schema: Mapping[str, Any] | None, path: str
    ) -> Mapping[str, Any] | None:
        # a || b: a unless it is null (or empty), else b: a fallback makes a value non-null.
        left, right = (self.visit(child, schema, path) for child in node["children"])
        if left is None or right is None:
            return None
        return {"anyOf": [_without_null(left, self.defs), right]}

    def _function_expression(
        self, node: Mapping[str, Any], schema: Mapping[str, Any] | None, path: str
    ) -> Mapping[str, Any] | None:
        name = str(node["value"])
        entry = _FUNCTIONS.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(_FUNCTIONS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}()?" if close else ""
            self.add(
                "unknown-function",
                f"JMESPath has no function {name}(){hint} "
                "(https://jmespath.org/specification.html#built-in-functions)",
            )
        else:
            signature = entry["signature"]
            variadic = any(arg.get("variadic") for arg in signature)
            given = len(node["children"])
            if given < len(signature) or (given > len(signature) and not variadic):
                least = "at least " if variadic else ""
                self.add(
                    "function-arguments",
                    f"{name}() takes {least}{_plural(len(signature), 'argument')}, given {given}",
                )
            else:
                self.argument_types(node, signature, schema, path)
        result: Mapping[str, Any] | None = super()._function_expression(node, schema, path)
        return result

    def argument_types(
        self,
        node: Mapping[str, Any],
        signature: Sequence[Mapping[str, Any]],
        schema: Mapping[str, Any] | None,
        path: str,
    ) -> None:
        """Arguments of a type the function refuses (JMESPath fails on every event)."""
        name = str(node["value"])
        children = node["children"]
        found: list[tuple[int, str, str]] = []
        for index, child in enumerate(children):
            spec = signature[min(index, len(signature) - 1)]
            wanted = [str(kind) for kind in spec.get("types", [])]
            if not wanted or "any" in wanted or child["type"] == "expref":
                continue
            given = _jmes_types(self.visit(child, schema, path), self.defs)
            if given is not None and not _jmes_fits(given, wanted):
                found.append((index, _jmes_describe(wanted), _jmes_describe(sorted(given))))
        if name == "contains" and len(children) == 2 and not found:
            # contains(data.changes, 'jobs'): a value the list's enum never holds.
            listed = self.resolve(self.visit(children[0], schema, path))
            items = listed.get("items") if listed is not None else None
            if isinstance(items, Mapping):
                self.enum_in(children[0], items, children[1], "contains() is always false")
        if not found:
            return
        index, takes, has = found[0]
        message = (
            f"{name}() takes {_ORDINALS[min(index, 3)]} argument as {takes}, but "
            f"{_render(children[index])} is {has}"
        )
        if len(children) == 2 and len(signature) == 2:
            swapped = [
                _jmes_types(self.visit(child, schema, path), self.defs) for child in children[::-1]
            ]
            fits = all(
                kinds is not None and _jmes_fits(kinds, [str(k) for k in spec.get("types", [])])
                for kinds, spec in zip(swapped, signature, strict=True)
            )
            if fits:
                message += (
                    f": the arguments are the wrong way round, e.g. "
                    f"{name}({_render(children[1])}, {_render(children[0])})"
                )
        self.add("function-arguments", message)


_ORDINALS = ["its first", "its second", "its third", "a later"]


def _jmes_types(schema: Mapping[str, Any] | None, defs: Mapping[str, Any]) -> set[str] | None:
    """JMESPath's type names for what ``schema`` holds (null left out); None if unknown."""
    kinds = _json_types(schema, defs)
    if kinds is None:
        return None
    found: set[str] = set()
    for kind in kinds - {"null"}:
        if kind in ("integer", "number"):
            found.add("number")
        elif kind == "array":
            items = _deref(schema or {}, defs)
            options = _options(items, defs)
            inner = [o.get("items") for o in options if isinstance(o.get("items"), Mapping)]
            item_kinds = _union([_json_types(i, defs) for i in inner]) if inner else None
            if item_kinds is None:
                found.add("array")
            else:
                elements = _numbers(item_kinds - {"null"})
                found.add(f"array-{next(iter(elements))}" if len(elements) == 1 else "array")
        else:
            found.add(kind)
    return found or None


def _jmes_fits(given: set[str], wanted: Sequence[str]) -> bool:
    """Whether a value of one of ``given`` types may be an argument of ``wanted`` types."""
    for kind in given:
        if kind in wanted:
            return True
        if kind.startswith("array") and "array" in wanted:
            return True
        if kind == "array" and any(w.startswith("array-") for w in wanted):
            return True  # element types unknown
    return False


_JMES_NAMES = {
    "string": "a string",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "a list",
    "array-string": "a list of strings",
    "array-number": "a list of numbers",
    "array-boolean": "a list of booleans",
    "array-object": "a list of objects",
    "array-array": "a list of lists",
    "null": "null",
}


def _jmes_describe(kinds: Sequence[str]) -> str:
    return " or ".join(_JMES_NAMES.get(kind, kind) for kind in kinds)


def _constant_text(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else f"`{json.dumps(value)}`"


def _render(node: Mapping[str, Any]) -> str:
    """An expression's text, rebuilt from its tree (for the common shapes)."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        name = str(node["value"])
        return name if name.isidentifier() else json.dumps(name)
    if kind == "literal":
        value = node["value"]
        return f"'{value}'" if isinstance(value, str) else f"`{json.dumps(value)}`"
    if kind == "subexpression":
        return ".".join(_render(child) for child in children)
    if kind == "projection":
        left, right = children
        tail = "" if right["type"] == "identity" else "." + _render(right)
        base = _render(left)
        return (base if base.endswith("[]") else base + "[*]") + tail
    if kind == "flatten":
        return _render(children[0]) + "[]"
    if kind == "index_expression":
        return "".join(_render(child) for child in children)
    if kind == "index":
        return f"[{node['value']}]"
    if kind == "identity":
        return "@"
    if kind == "function_expression":
        return f"{node['value']}({', '.join(_render(child) for child in children)})"
    return "..."


def _allowed_values(schema: Mapping[str, Any] | None, defs: Mapping[str, Any]) -> list[Any] | None:
    """The values an enum (or const) field may have; None if any value of its type."""
    if schema is None:
        return None
    values: list[Any] = []
    for option in _options(_deref(schema, defs), defs):
        option = _deref(option, defs)
        if option.get("type") == "null":
            continue
        if "const" in option:
            values.append(option["const"])
        elif isinstance(option.get("enum"), list):
            values.extend(option["enum"])
        else:
            return None
    return values or None


def _without_null(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    options = [o for o in _options(schema, defs) if _deref(o, defs).get("type") != "null"]
    if len(options) == 1:
        return options[0]
    return {"anyOf": options} if options else {}


def _deref(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        found = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        if not isinstance(found, Mapping):
            return {}
        schema, seen = found, seen + 1
    return schema


def _json_types(schema: Mapping[str, Any] | None, defs: Mapping[str, Any]) -> frozenset[str] | None:
    """The JSON types a value of ``schema`` can have; None when that is not known."""
    if schema is None:
        return None
    schema = _deref(schema, defs)
    if "const" in schema:
        return _value_types(schema["const"])
    if isinstance(schema.get("enum"), list):
        return frozenset().union(*(_value_types(v) for v in schema["enum"]))
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        return _union([_json_types(option, defs) for option in options])
    every = schema.get("allOf")
    if isinstance(every, list) and len(every) == 1:
        return _json_types(every[0], defs)
    kind = schema.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list):
        return frozenset(str(k) for k in kind)
    if "properties" in schema:
        return frozenset({"object"})
    return None


def _union(found: Sequence[frozenset[str] | None]) -> frozenset[str] | None:
    if not found or any(types is None for types in found):
        return None
    return frozenset().union(*(types for types in found if types is not None))


def _numbers(types: frozenset[str]) -> frozenset[str]:
    """Integers are numbers, for comparisons."""
    return frozenset("number" if kind == "integer" else kind for kind in types)


def _value_types(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset({"null"})
    if isinstance(value, bool):
        return frozenset({"boolean"})
    if isinstance(value, int):
        return frozenset({"integer"})
    if isinstance(value, float):
        return frozenset({"number"})
    if isinstance(value, str):
        return frozenset({"string"})
    if isinstance(value, list):
        return frozenset({"array"})
    return frozenset({"object"})


_ARTICLES = {"integer": "an integer", "object": "an object", "array": "a list", "null": "null"}


def _kinds(types: frozenset[str]) -> str:
    names = [_ARTICLES.get(kind, f"a {kind}") for kind in sorted(types)]
    return " or ".join(names)


def _describe(node: Mapping[str, Any]) -> str:
    if node["type"] == "literal":
        value = node["value"]
        return f"'{value}'" if isinstance(value, str) else f"`{json.dumps(value)}`"
    if node["type"] in ("field", "subexpression"):
        parts = []
        for child in node.get("children") or [node]:
            if child["type"] != "field":
                return "the value"
            parts.append(str(child["value"]))
        return ".".join(parts)
    if node["type"] == "function_expression":
        return f"{node['value']}(...)"
    return "the value"


def _misfit(
    value: Any,
    target: Mapping[str, Any],
    defs: Mapping[str, Any],
    wires: list[tuple[str, dict[str, Any], dict[str, Any]]],
) -> str | None:
    """Why ``value`` (a payload template) can never fit ``target``; None if it may."""
    accepted = _json_types(target, defs)
    if accepted is None:
        return None
    constant = _constant(value)
    if constant is not _UNKNOWN:
        return _constant_misfit(constant, target, defs, accepted)
    if isinstance(value, Expression):
        produced = _union(
            [_json_types(_Checker(d).visit(value.ast, w, ""), d) for _, w, d in wires]
        )
    elif isinstance(value, dict):
        produced = frozenset({"object"})
    elif isinstance(value, list):
        produced = frozenset({"array"})
    else:  # pragma: no cover - templates hold only these
        return None
    if produced is None:
        return None
    produced -= {"null"}  # optional fields: nothing definite about a missing value
    takes = frozenset().union(*(_ACCEPTS.get(kind, frozenset()) for kind in accepted))
    if not produced or produced & takes:
        return None
    return f"{_wanted(target, defs, accepted)}, but it is mapped to {_kinds(produced)}"


_UNKNOWN = object()


def _constant(value: Any) -> Any:
    """The value of a constant template (a YAML scalar or a JMESPath literal)."""
    if isinstance(value, Expression):
        node = value.ast
        return node["value"] if node["type"] == "literal" else _UNKNOWN
    if value is None or isinstance(value, bool | int | float):
        return value
    return _UNKNOWN


def _constant_misfit(
    constant: Any, target: Mapping[str, Any], defs: Mapping[str, Any], accepted: frozenset[str]
) -> str | None:
    options = _options(target, defs)
    if any(_fits(constant, option, defs) for option in options):
        return None
    return f"{_wanted(target, defs, accepted)}, but it is mapped to the constant {constant!r}"


def _options(target: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    target = _deref(target, defs)
    found = target.get("anyOf") or target.get("oneOf")
    if isinstance(found, list):
        return [o for option in found for o in _options(option, defs)]
    return [target]


def _fits(value: Any, option: Mapping[str, Any], defs: Mapping[str, Any]) -> bool:
    """Whether a constant may be valid for one (non-union) schema; True when unsure."""
    if "const" in option:
        return bool(value == option["const"])
    if isinstance(option.get("enum"), list):
        return value in option["enum"]
    kinds = _json_types(option, defs)
    if kinds is None:
        return True
    takes = frozenset().union(*(_ACCEPTS.get(kind, frozenset()) for kind in kinds))
    if not _value_types(value) & takes:
        return False
    if isinstance(value, str) and kinds & {"number", "integer"} and "string" not in kinds:
        try:
            float(value)
        except ValueError:
            return False
    if isinstance(value, str) and kinds == {"string"}:
        return _string_fits(value, option)
    return True


def _string_fits(value: str, option: Mapping[str, Any]) -> bool:
    parsers = {"date": dt.date.fromisoformat, "date-time": dt.datetime.fromisoformat}
    parse = parsers.get(str(option.get("format")))
    if parse is not None:
        try:
            parse(value)
        except ValueError:
            return False
    return True


def _wanted(target: Mapping[str, Any], defs: Mapping[str, Any], accepted: frozenset[str]) -> str:
    target = _deref(target, defs)
    if isinstance(target.get("enum"), list):
        return "one of " + ", ".join(repr(v) for v in target["enum"])
    fmt = target.get("format")
    if isinstance(fmt, str) and accepted == {"string"}:
        return f"a {fmt} (text, e.g. {'2026-11-02' if fmt == 'date' else 'ISO 8601'})"
    return _kinds(accepted)
