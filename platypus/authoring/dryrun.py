"""``platypus flows run --dry-run``: what each step would send for an event, sending nothing.

The event goes through the same decisions as in production (`platypus.core`):
schema validation, routing, the flow's and each step's ``when``, the mapping and
the check against the action's input model. No adapter is called, so a step that
reads an earlier step's result (``steps.create_order.id``) sees a placeholder:
the text ``<steps.create_order.id>``, and ``<result of create_order>`` for the
whole result. A value read deeper into a result (``steps.find.records[0].Id``,
``steps.create_order.id.x``), which a placeholder text cannot hold, is shown as
the expression that reads it, ``<steps.find.records[0].Id>``, not as null. A
condition on such a result is not guessed from the placeholder: the step is
shown as depending on that step's answer, with what it would send if it runs.
The same holds for a payload whose mapping or input check can only be judged
with the answer.

A dry run never ends in a traceback: an expression that raises is a step that
would fail, as it would at run time, and `DryRun.failed` says whether any did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from platypus import core
from platypus.adapter import AdapterRegistry
from platypus.config import ProjectConfig
from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError, EventValidationError
from platypus.expression import Expression
from platypus.flow.model import FlowSpec, StepSpec
from platypus.schema_registry import SchemaRegistry
from platypus.validation import field_errors

__all__ = ["DryRun", "StepPlan", "dry_run"]


class _Placeholder(dict[str, Any]):
    """Stands for a step's result: any field read from it is a placeholder text."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step

    def get(self, key: str, default: Any = None) -> Any:
        return f"<steps.{self.step}.{key}>"

    def __repr__(self) -> str:
        return f"<result of {self.step}>"


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What one step would do: send ``payload``, be skipped, or fail."""

    step: str
    to: str
    status: str  # send | skipped | fails | depends
    params: Mapping[str, Any] = field(default_factory=dict)
    payload: Any = None
    detail: str = ""


@dataclass(slots=True)
class DryRun:
    """The plan for one event: per flow, filtered out or the steps it would run."""

    event_id: str
    event_type: str
    refused: str = ""
    flows: list[tuple[FlowSpec, str, list[StepPlan]]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the event would be refused or a step would fail."""
        return bool(self.refused) or any(
            plan.status == "fails" for _, _, steps in self.flows for plan in steps
        )

    def to_dict(self) -> dict[str, Any]:
        """The plan as ``platypus flows run --dry-run --json`` prints it (docs/cli.md)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "refused": self.refused,
            "flows": [
                {
                    "flow": flow.name,
                    "file": flow.source_file,
                    "filtered": filtered,
                    "steps": [
                        {
                            "step": plan.step,
                            "to": plan.to,
                            "status": plan.status,
                            "params": dict(plan.params),
                            "payload": _shown(plan.payload),
                            "detail": plan.detail,
                        }
                        for plan in steps
                    ],
                }
                for flow, filtered, steps in self.flows
            ],
        }

    def render(self) -> str:
        """The plan as the terminal shows it."""
        if self.refused:
            return f"event {self.event_id!r} would be refused: {self.refused}"
        lines = [f"event {self.event_id!r} ({self.event_type}): nothing is sent (dry run)"]
        if not self.flows:
            lines.append(f"  no flow consumes {self.event_type}: the event is filtered out")
        for flow, filtered, steps in self.flows:
            lines.append(f"\nflow {flow.name} ({flow.source_file})")
            if filtered:
                lines.append(f"  filtered out: {filtered}")
                continue
            for plan in steps:
                if plan.status == "skipped":
                    lines.append(f"  step {plan.step} -> {plan.to}: skipped ({plan.detail})")
                    continue
                if plan.status == "fails":
                    lines.append(f"  step {plan.step} -> {plan.to}: would FAIL: {plan.detail}")
                    break
                if plan.status == "depends":
                    lines.append(f"  step {plan.step} -> {plan.to}: {plan.detail}")
                    if plan.payload is None:
                        continue
                else:
                    lines.append(f"  step {plan.step} -> {plan.to}")
                lines.append(f"    params: {json.dumps(dict(plan.params), default=str)}")
                payload = json.dumps(_shown(plan.payload), indent=2, default=str)
                lines.append("    payload: " + payload.replace("\n", "\n    "))
        return "\n".join(lines)


def _shown(value: Any) -> Any:
    if isinstance(value, _Placeholder):
        return repr(value)
    if isinstance(value, dict):
        return {key: _shown(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown(item) for item in value]
    return value


def dry_run(
    event: Mapping[str, Any],
    flows: Sequence[FlowSpec],
    *,
    schemas: SchemaRegistry,
    adapters: AdapterRegistry,
    config: ProjectConfig,
) -> DryRun:
    """Plan what ``flows`` would do with ``event``, calling no adapter."""
    event_id, event_type = str(event.get("id", "")), str(event.get("type", ""))
    out = DryRun(event_id, event_type)
    try:
        schemas.validate(CloudEvent.model_validate(dict(event)))
    except ValidationError as exc:
        problems = "; ".join(f"{e.path}: {e.message}" for e in field_errors(exc))
        out.refused = f"not a valid CloudEvent: {problems}"
        return out
    except EventValidationError as exc:
        problems = "; ".join(f"{e.path}: {e.message}" for e in exc.errors)
        out.refused = f"{exc}: {problems}"
        return out
    for flow in core.route(flows, event_type):
        out.flows.append(_plan_flow(flow, event, config, adapters))
    return out


def _plan_flow(
    flow: FlowSpec, event: Mapping[str, Any], config: ProjectConfig, adapters: AdapterRegistry
) -> tuple[FlowSpec, str, list[StepPlan]]:
    results: dict[str, Any] = {}
    try:
        decision = core.decide_flow(flow, core.event_context(event, results))
    except Exception as exc:  # noqa: BLE001 - any error of an expression is a failure to show
        return flow, "", [StepPlan("(when)", "", "fails", detail=_raised(exc))]
    if isinstance(decision, core.Filtered):
        return flow, decision.reason, []
    if isinstance(decision, core.Failed):
        return flow, "", [StepPlan("(when)", "", "fails", detail=decision.message)]
    plans = []
    for step in flow.steps:
        plan = _plan_step(flow, step, event, results, _input(config, adapters, step.to))
        results[step.name] = None if plan.status == "skipped" else _Placeholder(step.name)
        plans.append(plan)
        if plan.status == "fails":
            break
    return flow, "", plans


def _plan_step(
    flow: FlowSpec,
    step: StepSpec,
    event: Mapping[str, Any],
    results: Mapping[str, Any],
    model: type[BaseModel] | None,
) -> StepPlan:
    unknown = [name for name, value in results.items() if isinstance(value, _Placeholder)]
    waits_on = _reads(step.when, unknown) if step.when is not None else []
    payload_reads = sorted(_template_reads(step.payload, unknown), key=unknown.index)
    condition = ""
    if step.when is not None and waits_on:
        # Evaluating the condition on placeholders would be a guess: say what it waits for.
        condition = f"runs only if its condition holds (when: {step.when.source})"
        step = step.model_copy(update={"when": None})
    ctx = core.event_context(event, results)
    try:
        planned = core.decide_step(flow, step, ctx)
    except Exception as exc:  # noqa: BLE001 - any error of an expression is a failure to show
        planned = core.Failed(type(exc).__name__, _raised(exc), retryable=False)
    if isinstance(planned, core.Filtered):
        return StepPlan(step.name, step.to, "skipped", detail=planned.reason)
    if isinstance(planned, core.Deliver):
        planned = core.Deliver(_unknown_shown(step.payload, planned.payload, unknown))
        failed = core.check_payload(model, planned.payload, step)
        if failed is None:
            if not condition:
                return StepPlan(step.name, step.to, "send", step.params, planned.payload)
            detail = f"depends on {_answers(waits_on)}: {condition}; then it sends"
            return StepPlan(step.name, step.to, "depends", step.params, planned.payload, detail)
        if payload_reads and model is not None and _only_placeholders(model, planned.payload):
            why = "its input can be checked only with the answer; it would send"
            detail = _depends(waits_on, payload_reads, condition, why)
            return StepPlan(step.name, step.to, "depends", step.params, planned.payload, detail)
        planned = failed
    if payload_reads:
        # The mapping failed on a placeholder: only the real answer can tell.
        why = f"its payload cannot be mapped without the answer ({planned.message})"
        return StepPlan(
            step.name, step.to, "depends", detail=_depends(waits_on, payload_reads, condition, why)
        )
    detail = planned.message + "".join(f"\n      {e.path}: {e.message}" for e in planned.errors)
    if condition:
        detail = f"{detail} (it {condition}, which depends on {_answers(waits_on)})"
    return StepPlan(step.name, step.to, "fails", detail=detail)


def _unknown_shown(template: Any, payload: Any, unknown: Sequence[str]) -> Any:
    """``payload`` with each null an expression read from a step's answer as its placeholder.

    A placeholder text has no fields or items, so ``steps.find.records[0].Id``
    evaluates to null on it; the real answer may well hold a value. Shown as
    ``<steps.find.records[0].Id>``, the payload says what the value stands for.
    """
    if isinstance(template, Expression):
        if payload is None and _reads(template, unknown):
            return f"<{template.source}>"
        return payload
    if isinstance(template, Mapping) and isinstance(payload, dict):
        return {
            key: _unknown_shown(template.get(key), value, unknown) for key, value in payload.items()
        }
    if isinstance(template, list) and isinstance(payload, list) and len(template) == len(payload):
        return [
            _unknown_shown(inner, value, unknown)
            for inner, value in zip(template, payload, strict=True)
        ]
    return payload


def _depends(waits_on: Sequence[str], reads: Sequence[str], condition: str, why: str) -> str:
    names = [*waits_on, *(name for name in reads if name not in waits_on)]
    parts = [condition, why] if condition else [why]
    return f"depends on {_answers(names)}: {'; '.join(parts)}"


def _answers(steps: Sequence[str]) -> str:
    names = " and ".join(f"step {name}'s" for name in steps)
    return f"{names} answer{'s' if len(steps) > 1 else ''}"


def _raised(exc: BaseException) -> str:
    return f"evaluating it raised {type(exc).__name__}: {exc}"


def _only_placeholders(model: type[BaseModel], payload: Any) -> bool:
    """Whether every input error is about a value that stands for a step's answer."""
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        return all(_is_placeholder(err["input"]) for err in exc.errors())
    return True


def _is_placeholder(value: Any) -> bool:
    # "<steps.a.id>" and text around it; "<data.x || steps.a.id>" from `_unknown_shown`.
    return isinstance(value, _Placeholder) or (
        isinstance(value, str) and "<" in value and "steps." in value and ">" in value
    )


def _reads(expr: Expression, steps: Sequence[str]) -> list[str]:
    """Which of ``steps`` the expression reads (``steps.NAME...``), in order."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if not isinstance(node, Mapping):
            return
        children = node.get("children", [])
        if node.get("type") == "subexpression" and len(children) >= 2:
            head, name = children[0], children[1]
            if (
                isinstance(head, Mapping)
                and head.get("type") == "field"
                and head.get("value") == "steps"
                and isinstance(name, Mapping)
                and name.get("type") == "field"
            ):
                found.add(str(name.get("value")))
        for child in children:
            visit(child)

    visit(expr.ast)
    # A bare `steps` reads every result.
    if _reads_all_steps(expr.ast):
        found.update(steps)
    return [name for name in steps if name in found]


def _reads_all_steps(node: Any) -> bool:
    if not isinstance(node, Mapping):
        return False
    if node.get("type") == "field" and node.get("value") == "steps":
        return True
    children = node.get("children", [])
    if node.get("type") == "subexpression" and children:
        return False if _is_steps_field(children[0]) else any(map(_reads_all_steps, children))
    return any(_reads_all_steps(child) for child in children)


def _is_steps_field(node: Any) -> bool:
    return (
        isinstance(node, Mapping) and node.get("type") == "field" and node.get("value") == "steps"
    )


def _template_reads(template: Any, steps: Sequence[str]) -> set[str]:
    if isinstance(template, Expression):
        return set(_reads(template, steps))
    if isinstance(template, Mapping):
        return {name for value in template.values() for name in _template_reads(value, steps)}
    if isinstance(template, list):
        return {name for value in template for name in _template_reads(value, steps)}
    return set()


def _input(config: ProjectConfig, adapters: AdapterRegistry, to: str) -> Any:
    connection, _, action = to.partition(".")
    try:
        spec = adapters.get(config.connection(connection).adapter).actions.get(action)
    except ConfigurationError:
        return None
    return spec.input if spec is not None else None
