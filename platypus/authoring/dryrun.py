"""``platypus flows run --dry-run``: what each step would send for an event, sending nothing.

The event goes through the same decisions as in production (`platypus.core`):
schema validation, routing, the flow's and each step's ``when``, the mapping and
the check against the action's input model. No adapter is called, so a step that
reads an earlier step's result (``steps.create_order.id``) sees a placeholder:
the text ``<steps.create_order.id>``, and ``<result of create_order>`` for the
whole result. A condition on such a result is evaluated on the placeholder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from platypus import core
from platypus.adapter import AdapterRegistry
from platypus.config import ProjectConfig
from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError, EventValidationError
from platypus.flow.model import FlowSpec
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
    status: str  # send | skipped | fails
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
        results: dict[str, Any] = {}
        decision = core.decide_flow(flow, core.event_context(event, results))
        if isinstance(decision, core.Filtered):
            out.flows.append((flow, decision.reason, []))
            continue
        if isinstance(decision, core.Failed):
            out.flows.append((flow, "", [StepPlan("(when)", "", "fails", detail=decision.message)]))
            continue
        plans = []
        for step in flow.steps:
            planned = core.decide_step(flow, step, core.event_context(event, results))
            results[step.name] = _Placeholder(step.name)
            if isinstance(planned, core.Filtered):
                results[step.name] = None
                plans.append(StepPlan(step.name, step.to, "skipped", detail=planned.reason))
                continue
            if isinstance(planned, core.Deliver):
                failed = core.check_payload(
                    _input(config, adapters, step.to), planned.payload, step
                )
                if failed is None:
                    plans.append(StepPlan(step.name, step.to, "send", step.params, planned.payload))
                    continue
                planned = failed
            detail = planned.message + "".join(
                f"\n      {e.path}: {e.message}" for e in planned.errors
            )
            plans.append(StepPlan(step.name, step.to, "fails", detail=detail))
            break
        out.flows.append((flow, "", plans))
    return out


def _input(config: ProjectConfig, adapters: AdapterRegistry, to: str) -> Any:
    connection, _, action = to.partition(".")
    try:
        spec = adapters.get(config.connection(connection).adapter).actions.get(action)
    except ConfigurationError:
        return None
    return spec.input if spec is not None else None
