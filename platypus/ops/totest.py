"""``platypus dlq to-test ID``: a failed event becomes a case in its flow's ``.test.yaml``.

The case holds what is needed to see the failure again without production:

- the event, with every personal-data field (``x-personal-data`` in its schema)
  replaced by the schema's example or a placeholder valid for the field, so the
  case can be committed;
- the vendor answers recorded at the failure: what the delivery ledger holds for
  the steps that ran before (``results:``), read through the runtime-neutral
  `DeliveryLedger` API, and, when the vendor refused the failing step, that
  refusal as the dead letter holds it (``fail:``: error class, message, status);
- the expected outcome. A step refused by the vendor (Connect stage
  ``TASK_PUT``) is expected to be dead-lettered as it was: the case passes and
  pins how the flow treats that answer. A failure of the flow itself (its
  condition, a mapping, the action's input check) is expected to be delivered:
  the case fails until the flow is fixed, which proves the fix before the replay.

Personal values the ledger's results carry are masked (`platypus.redaction`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from platypus.authoring.harness import case_problems, read_test_file
from platypus.authoring.scaffold import sample_instance
from platypus.deadletter import EXCEPTION_CLASS, STAGE, STAGE_TASK_PUT
from platypus.exceptions import PlatypusError
from platypus.flow.loader import FLOW_SUFFIXES, TEST_SUFFIXES, read_flow_file
from platypus.flow.model import FlowSpec
from platypus.ops.store import Failure
from platypus.redaction import personal_values, scrub_data
from platypus.runtime.base import DeliveryLedger
from platypus.schema_registry import SchemaRegistry

__all__ = ["AddedCase", "ToTestError", "add_case", "case_for_failure", "find_flow_file"]


class ToTestError(PlatypusError, ValueError):
    """A failed event that cannot become a flow test (no flow, or no such flow file)."""


@dataclass(frozen=True, slots=True)
class AddedCase:
    """Where `add_case` put the case: the test file and the case's line."""

    test_file: Path
    line: int
    name: str
    expects: str  # dead_lettered | delivered


async def case_for_failure(
    failure: Failure,
    flow: FlowSpec,
    *,
    schemas: SchemaRegistry,
    ledger: DeliveryLedger | None,
) -> dict[str, Any]:
    """The test case (its YAML form, as a dict) that replays ``failure`` through ``flow``."""
    try:
        event = json.loads(failure.payload)
    except ValueError:
        raise ToTestError(
            f"failed event {failure.id} is not JSON: it can be replayed, not turned into a test"
        ) from None
    if not isinstance(event, dict):
        raise ToTestError(f"failed event {failure.id} is not a JSON object (a CloudEvent)")
    event_type = str(event.get("type", failure.event_type))
    patterns = schemas.personal_paths(event_type)
    found = personal_values(event.get("data"), patterns)
    event = anonymized(event, schemas)

    steps = [step.name for step in flow.steps]
    before = steps[: steps.index(failure.step)] if failure.step in steps else []
    results: dict[str, Any] = {}
    if ledger is not None and before:
        delivered = await ledger.delivered([failure.event_id])
        for (_event_id, flow_name, step), result in delivered.items():
            if flow_name == flow.name and step in before:
                results[step] = scrub_data(result, found)
    stage = str(failure.headers.get(STAGE, ""))
    error = str(failure.headers.get(EXCEPTION_CLASS, failure.error_class)).rsplit(".", 1)[-1]
    vendor = stage == STAGE_TASK_PUT and failure.step in steps
    case: dict[str, Any] = {
        "name": (
            f"failed event {failure.id} ({failure.event_id}): {error} at step "
            f"{failure.step or '(flow)'}"
        ),
        "event": event,
    }
    if results:
        case["results"] = {step: results[step] for step in before if step in results}
    if vendor:
        fail: dict[str, Any] = {
            "error": "RetryableError" if failure.retryable else "PermanentError",
            "message": failure.error_message,
        }
        if failure.status_code is not None:
            fail["status_code"] = failure.status_code
        case["fail"] = {failure.step: fail}
        case["dead_lettered"] = {"step": failure.step, "error": fail["error"]}
    else:
        case["delivered"] = True
    return case


def anonymized(event: Mapping[str, Any], schemas: SchemaRegistry) -> dict[str, Any]:
    """``event`` with each personal-data value replaced by a valid stand-in.

    The stand-in is the field's example in the schema if it has one, else a value
    built from the field's schema (its format, pattern and bounds), so that the
    event still validates; a free-text field gets ``masked <field>`` (an e-mail
    field ``someone@example.com``).
    """
    out = copy.deepcopy(dict(event))
    try:
        schema = dict(schemas.json_schema(str(out.get("type", ""))))
    except PlatypusError:
        return out
    if isinstance(out.get("data"), dict):
        out["data"] = _replace(out["data"], schema, schema.get("$defs", {}), "data")
    return out


def _replace(value: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> Any:
    schema = _resolve(schema, defs)
    if value is None:
        return None
    if schema.get("x-personal-data"):
        return _stand_in(schema, defs, name)
    options = [_resolve(o, defs) for o in schema.get("anyOf", ())]
    if any(o.get("x-personal-data") for o in options):
        return _stand_in(schema, defs, name)
    if isinstance(value, dict):
        props: dict[str, Any] = {}
        for option in (schema, *options):
            props.update(option.get("properties", {}))
        return {
            k: _replace(v, props.get(k, {}), defs, k) if k in props else v for k, v in value.items()
        }
    if isinstance(value, list):
        items: Mapping[str, Any] = next(
            (o["items"] for o in (schema, *options) if isinstance(o.get("items"), Mapping)), {}
        )
        return [_replace(item, items, defs, name) for item in value]
    return value


def _stand_in(schema: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> Any:
    real = [o for o in schema.get("anyOf", [schema]) if _resolve(o, defs).get("type") != "null"]
    option = _resolve(real[0] if real else schema, defs)
    value = sample_instance({k: v for k, v in option.items() if k != "default"}, defs)
    if value == "sample":
        # Free text: an address stays one (a flow or action may check its shape).
        return "someone@example.com" if "mail" in name.lower() else f"masked {name}"
    return value


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        found = defs.get(ref.rsplit("/", 1)[-1])
        if isinstance(found, Mapping):
            merged = dict(found)
            merged.update({k: v for k, v in schema.items() if k != "$ref"})
            return merged
    return schema


def find_flow_file(flow_name: str, flow_dir: Path) -> Path:
    """The flow file in ``flow_dir`` (and below) whose ``name`` is ``flow_name``."""
    candidates = sorted(
        p
        for p in flow_dir.rglob("*")
        if p.name.endswith(FLOW_SUFFIXES) and not p.name.endswith(TEST_SUFFIXES)
    )
    for path in candidates:
        read = read_flow_file(path)
        if read.spec is not None and read.spec.name == flow_name:
            return path
    raise ToTestError(
        f"no flow named {flow_name!r} in {flow_dir}: give the folder holding it with --flow-dir"
    )


def add_case(flow_file: Path, case: Mapping[str, Any], *, schemas: SchemaRegistry) -> AddedCase:
    """Append ``case`` to the ``.test.yaml`` beside ``flow_file`` (created if missing).

    The text is appended, so the file's comments and layout stay as they are; the
    file is read back and the case checked against the flow before this returns.
    """
    stem = flow_file.name
    for suffix in FLOW_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    test_file = flow_file.with_name(stem + ".test.yaml")
    item = yaml.safe_dump([_plain(case)], sort_keys=False, allow_unicode=True, width=88)
    block = "\n".join("  " + line for line in item.rstrip("\n").splitlines()) + "\n"
    header = "# From `platypus dlq to-test`: a failed event, its personal data replaced.\n"
    if test_file.exists():
        before = test_file.read_text(encoding="utf-8")
        old = read_test_file(test_file)
        if old.spec is None or not _cases_last(before):
            raise ToTestError(
                f"{test_file}: cannot append a case (it must end with its cases: list); "
                f"add this case by hand:\n{block}"
            )
        count = len(old.cases)
        text = before if before.endswith("\n") else before + "\n"
        text += "\n" + "  " + header.strip() + "\n" + block
    else:
        count = 0
        text = "cases:\n  " + header.strip() + "\n" + block
    test_file.write_text(text, encoding="utf-8")
    read = read_test_file(test_file)
    if read.spec is None or len(read.cases) != count + 1:  # pragma: no cover - a bug here
        raise ToTestError(f"{test_file}: the appended case did not read back: {read.error}")
    entry = read.cases[-1]
    if entry.case is not None:
        flow = read_flow_file(flow_file).spec
        mistakes = (
            case_problems(entry.case, flow, read.locations, ("cases", entry.index), schemas)
            if flow is not None
            else []
        )
        if mistakes:  # pragma: no cover - the case is built from the flow itself
            raise ToTestError("\n".join(mistakes))
    expects = "dead_lettered" if "dead_lettered" in case else "delivered"
    return AddedCase(test_file, entry.line, entry.name, expects)


def _cases_last(text: str) -> bool:
    """Whether ``cases:`` is the file's last top-level key (so an item can follow)."""
    keys = [line for line in text.splitlines() if line[:1].isalpha()]
    return bool(keys) and keys[-1].startswith("cases:") and keys[-1].strip() == "cases:"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
