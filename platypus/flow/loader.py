"""Reading flow files: YAML to a validated `FlowSpec`, every error with file:line:column.

`load_flow` reads one file and `load_flows` a folder of them. Both report every
problem of every file at once, in a `FlowLoadError` whose `FieldError`s carry
the position of the offending YAML node, so a typo reads like a compiler error::

    flows/billing.yaml:12:5: steps[0].payloda: unknown key 'payloda'; did you mean 'payload'?

`read_flow_file` is the same reading without raising, for ``platypus flows lint``:
it keeps the node positions and a stable code per problem.
"""

from __future__ import annotations

import difflib
import hashlib
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from platypus.exceptions import FieldError, FlowLoadError, MappingError
from platypus.expression import compile_expression
from platypus.flow._yaml import Locations, Problem, YamlPath, parse_yaml
from platypus.flow.model import FlowSpec
from platypus.validation import format_loc

__all__ = [
    "FlowFile",
    "Locations",
    "Problem",
    "duplicate_names",
    "flow_files",
    "load_flow",
    "load_flow_with_locations",
    "load_flows",
    "read_flow_file",
]

FLOW_SUFFIXES = (".yaml", ".yml")
# Test cases for flows live beside them (``billing.test.yaml``) and are not flows.
TEST_SUFFIXES = (".test.yaml", ".tests.yaml", ".test.yml", ".tests.yml")

_GOT_LIMIT = 80


@dataclass(frozen=True, slots=True)
class FlowFile:
    """One flow file as read: the flow (``None`` if it has errors), positions, problems."""

    path: Path
    spec: FlowSpec | None
    locations: Locations
    problems: list[Problem]

    @property
    def errors(self) -> list[FieldError]:
        """The problems as `FieldError`s, for `FlowLoadError`."""
        return [problem.error for problem in self.problems]


def read_flow_file(path: Path) -> FlowFile:
    """Read, parse and validate one flow file, collecting problems instead of raising.

    Problem codes: ``file-unreadable``, ``yaml-syntax``, ``yaml-unsupported``,
    ``duplicate-key``, ``flow-invalid`` and ``expression-syntax``.
    """
    file = str(path)
    empty = Locations(file, {(): (1, 1)})
    try:
        content = path.read_bytes()
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        return FlowFile(path, None, empty, [_problem("file-unreadable", (), message, empty)])
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text (byte {exc.start})"
        return FlowFile(path, None, empty, [_problem("yaml-syntax", (), message, empty)])

    parsed = parse_yaml(text, file)
    locations = parsed.locations
    spec, problems = _validate(parsed.value, list(parsed.problems), locations)
    if spec is None or problems:
        # Duplicate keys and the like: the flow is not what the file seems to say.
        problems.sort(key=lambda p: _position(p.error))
        return FlowFile(path, None, locations, problems)
    version = hashlib.sha256(content).hexdigest()[:12]
    spec = spec.model_copy(update={"source_file": file, "version": version})
    return FlowFile(path, spec, locations, problems)


def _validate(
    raw: Any, problems: list[Problem], locations: Locations
) -> tuple[FlowSpec | None, list[Problem]]:
    if any(p.code == "yaml-syntax" for p in problems):
        return None, problems
    if not isinstance(raw, dict):
        found = "the file is empty" if raw is None else f"found {_kind(raw)}"
        message = f"a flow file holds one mapping with name, consumes and steps; {found}"
        return None, [*problems, _problem("flow-invalid", (), message, locations)]
    try:
        return FlowSpec.model_validate(raw), problems
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            problems.extend(_explain(err, raw, locations))
        return None, problems


def _position(error: FieldError) -> tuple[int, int]:
    where = error.location
    return (where.line, where.column) if where is not None else (0, 0)


def load_flow_with_locations(path: Path) -> tuple[FlowSpec, Locations]:
    """`load_flow`, also returning where each YAML node of the file starts."""
    flow = read_flow_file(path)
    if flow.spec is None:
        raise FlowLoadError(str(path), flow.errors)
    return flow.spec, flow.locations


def load_flow(path: Path) -> FlowSpec:
    """Load one flow file; `FlowLoadError` lists all its errors with file:line:column.

    The flow's ``source_file`` is ``str(path)`` and its ``version`` the first 12
    hex digits of the SHA-256 of the file, so a changed flow is a new version.
    """
    return load_flow_with_locations(path)[0]


def flow_files(directory: Path) -> list[Path]:
    """Flow files under ``directory``, recursively, in a stable order.

    Skips folders whose name starts with ``.`` or ``_``, hidden files, and flow
    tests (``*.test.yaml``, ``*.tests.yaml``, ``*.test.yml``, ``*.tests.yml``).
    """
    found = []
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if any(part.startswith((".", "_")) for part in relative.parts[:-1]):
            continue
        name = path.name
        if name.startswith(".") or not name.endswith(FLOW_SUFFIXES):
            continue
        if name.endswith(TEST_SUFFIXES) or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())


def duplicate_names(files: Sequence[FlowFile]) -> list[Problem]:
    """A ``duplicate-flow-name`` problem for every flow reusing an earlier flow's name."""
    first: dict[str, FlowFile] = {}
    problems = []
    for flow in files:
        if flow.spec is None:
            continue
        earlier = first.setdefault(flow.spec.name, flow)
        if earlier is flow:
            continue
        where = earlier.locations.value(("name",))
        message = (
            f"flow name {flow.spec.name!r} is already used by {where}; "
            "flow names must be unique across the project"
        )
        problems.append(_problem("duplicate-flow-name", ("name",), message, flow.locations))
    return problems


def load_flows(directory: Path) -> list[FlowSpec]:
    """Load every flow file under ``directory`` (see `flow_files`).

    Errors of all files, and flows sharing a name, are raised together as one
    `FlowLoadError` for the folder. A missing folder is an error; an empty one
    holds no flows.
    """
    if not directory.is_dir():
        error = FieldError(path="", message=f"{directory} is not a folder of flow files")
        raise FlowLoadError(str(directory), [error])
    files = [read_flow_file(path) for path in flow_files(directory)]
    errors = [error for flow in files for error in flow.errors]
    errors += [problem.error for problem in duplicate_names(files)]
    if errors:
        raise FlowLoadError(str(directory), errors)
    return [flow.spec for flow in files if flow.spec is not None]


# -- pydantic errors, explained and located ---------------------------------------


def _problem(code: str, path: YamlPath, message: str, locations: Locations) -> Problem:
    error = FieldError(format_loc(path), message, location=locations.value(path))
    return Problem(code, error)


def _explain(err: ErrorDetails, raw: dict[str, Any], locations: Locations) -> list[Problem]:
    """One or more located problems for one pydantic error."""
    loc: YamlPath = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")

    if isinstance(cause, MappingError):
        found = list(_bad_expressions(_at(raw, loc), loc))
        if found:
            return [
                _problem("expression-syntax", path, message, locations) for path, message in found
            ]
        return [_problem("expression-syntax", loc, str(cause), locations)]

    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        meant = _SYNONYMS.get(key)
        close = [meant] if meant in allowed else []
        close = close or difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            hint = f"; did you mean {close[0]!r}?"
        elif allowed:
            hint = f" (allowed: {', '.join(allowed)})"
        else:
            hint = ""
        error = FieldError(
            format_loc(loc), f"unknown key {key!r}{hint}", location=locations.key(loc)
        )
        return [Problem("flow-invalid", error)]

    if kind == "missing":
        parent = format_loc(loc[:-1])
        where = f" in {parent}" if parent else ""
        message = f"missing required key {str(loc[-1])!r}{where}"
        return [_problem("flow-invalid", loc, message, locations)]

    if kind == "value_error" and loc == ("steps",) and isinstance(cause, ValueError):
        return [_problem("flow-invalid", path, str(cause), locations) for path in _dup_steps(raw)]

    if isinstance(cause, ValueError):
        message = str(cause)
    elif kind == "string_pattern_mismatch" and loc[-1] == "name":
        message = (
            f"invalid name {_show(err['input'])}: use lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit (at most 63 characters)"
        )
    elif kind == "too_short" and loc == ("steps",):
        message = "a flow needs at least one step"
    elif kind == "too_short" and loc == ("consumes",):
        message = "consumes must name at least one event type, e.g. sales.opportunity.closed_won.v1"
    else:
        message = err["msg"]
        if kind.endswith(("_type", "_parsing")) or kind in ("enum", "literal_error"):
            message += f", got {_show(err['input'])}"
    # A bad dict key: pydantic adds a "[key]" marker after the key itself.
    path = loc[:-1] if loc and loc[-1] == "[key]" else loc
    return [_problem("flow-invalid", path, message, locations)]


# Names other tools use for what a flow calls otherwise: closer in meaning than in spelling.
_SYNONYMS = {
    "max_retries": "max_attempts",
    "retries": "max_attempts",
    "attempts": "max_attempts",
    "retry_count": "max_attempts",
    "backoff": "multiplier",
    "backoff_multiplier": "multiplier",
    "delay": "initial_delay",
    "timeout": "max_elapsed",
    "max_time": "max_elapsed",
    "condition": "when",
    "if": "when",
    "filter": "when",
    "target": "to",
    "action": "to",
    "input": "payload",
    "body": "payload",
    "mapping": "payload",
    "events": "consumes",
    "event": "consumes",
    "on_failure": "on_error",
}


def _bad_expressions(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    """Each string in a payload template that is not a valid expression, with its path."""
    if isinstance(value, str):
        try:
            compile_expression(value)
        except MappingError as exc:
            yield path, str(exc)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _bad_expressions(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_expressions(item, (*path, index))


def _dup_steps(raw: dict[str, Any]) -> list[YamlPath]:
    """Where each step reuses the name of an earlier step."""
    steps = raw.get("steps")
    seen: set[Any] = set()
    found: list[YamlPath] = []
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        name = step.get("name") if isinstance(step, dict) else None
        if name in seen:
            found.append(("steps", index, "name"))
        seen.add(name)
    return found or [("steps",)]


def _at(value: Any, loc: YamlPath) -> Any:
    for part in loc:
        in_dict = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if not (in_dict or in_list):
            return None
        value = value[part]
    return value


def _allowed_keys(loc: YamlPath) -> list[str]:
    """The keys the model at ``loc`` (a path into a `FlowSpec`) accepts."""
    current: Any = FlowSpec
    for part in loc:
        current = _strip(current)
        if isinstance(part, int):
            args = get_args(current)
            current = args[0] if get_origin(current) is list and args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            found = current.model_fields.get(part)
            current = found.annotation if found is not None else None
        else:
            return []
    current = _strip(current)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return []
    # Fields the loader sets (source_file, version) are excluded from dumps and not for authors.
    return [name for name, info in current.model_fields.items() if not info.exclude]


def _strip(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` to ``X``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            real = [a for a in get_args(annotation) if a is not type(None)]
            if len(real) != 1:
                return annotation
            annotation = real[0]
        else:
            return annotation


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _GOT_LIMIT else text[: _GOT_LIMIT - 3] + "..."
