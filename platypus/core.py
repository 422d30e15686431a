"""What happens to an event, decided without I/O.

Every runtime (embedded, Kafka) asks the same questions here, in this order::

    route(flows, event_type)            -> the flows that consume it
    decide_flow(flow, ctx)              -> Filtered, or None to run its steps
    decide_step(flow, step, ctx)        -> Filtered | Deliver | Failed
                                           (`renderer` makes its payload one function)
    classify(error)                     -> Failed(retryable=...)
    retry_policy(default, flow, step) -> the RetryPolicy (tenacity) of the step

``ctx`` is the event as it is on the wire plus ``steps``: the results of the
earlier steps of the same flow (`event_context`). Nothing here reads a clock,
a socket or a file, so it is tested exhaustively and shared by the runtimes.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from platypus.exceptions import DeliveryError, EventValidationError, FieldError, MappingError
from platypus.expression import Expression, truthy
from platypus.flow.model import FlowSpec, OnError, StepSpec
from platypus.retry import RetryPolicy
from platypus.validation import field_errors

__all__ = [
    "Deliver",
    "Failed",
    "Filtered",
    "StepDecision",
    "check_payload",
    "classify",
    "decide_flow",
    "decide_step",
    "event_context",
    "on_error",
    "render",
    "renderer",
    "retry_policy",
    "route",
]


@dataclass(frozen=True, slots=True)
class Filtered:
    """The flow (or one step) does not apply to this event: a rule said so."""

    reason: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send ``payload`` to ``step.to``."""

    payload: Any


@dataclass(frozen=True, slots=True)
class Failed:
    """The step failed; ``retryable`` says whether trying again may help."""

    error_class: str
    message: str
    retryable: bool
    status_code: int | None = None
    retry_after: float | None = None
    vendor_code: str | None = None
    errors: tuple[FieldError, ...] = ()
    alert: bool = False  # the adapter says a person must act (credentials refused, say)
    # Where it came from: the whole traceback of an unclassified exception, the few
    # frames that raised a classified one (adapter code, not the runtime's).
    stacktrace: str = ""
    # Kafka Connect's stage of the failure; empty: the dead letter decides
    # (TASK_PUT for a step, TRANSFORMATION for a flow's condition).
    stage: str = ""


StepDecision = Filtered | Deliver | Failed


def route(flows: Iterable[FlowSpec], event_type: str) -> list[FlowSpec]:
    """The flows that consume ``event_type``, in a stable order (by name)."""
    return sorted((f for f in flows if event_type in f.consumes), key=lambda f: f.name)


def event_context(event: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions read: the wire-format event plus ``steps`` (earlier results)."""
    return {**event, "steps": dict(results)}


def decide_flow(flow: FlowSpec, ctx: Mapping[str, Any]) -> Filtered | Failed | None:
    """`Filtered` when the flow's ``when`` is falsy, `Failed` if it cannot be evaluated."""
    if flow.when is None:
        return None
    try:
        ok = truthy(flow.when.evaluate(ctx))
    except MappingError as exc:
        return _mapping_failure(exc)
    return None if ok else Filtered(f"flow condition is false: {flow.when.source}")


def decide_step(
    flow: FlowSpec, step: StepSpec, ctx: Mapping[str, Any], payload: Renderer | None = None
) -> StepDecision:
    """Whether to run ``step`` for this event, and with which payload.

    ``payload`` is ``renderer(step.payload)``, for a caller that renders the step
    for every event; by default the template is walked (`render`).
    """
    if step.when is not None:
        try:
            if not truthy(step.when.evaluate(ctx)):
                return Filtered(f"step condition is false: {step.when.source}")
        except MappingError as exc:
            return _mapping_failure(exc)
    try:
        return Deliver(payload(ctx) if payload is not None else render(step.payload, ctx))
    except MappingError as exc:
        return _mapping_failure(exc)


def render(template: Any, ctx: Mapping[str, Any]) -> Any:
    """Fill a payload template: expressions evaluated, constants kept, structure kept."""
    if isinstance(template, Expression):
        return template.evaluate(ctx)
    if isinstance(template, Mapping):
        return {key: render(value, ctx) for key, value in template.items()}
    if isinstance(template, Sequence) and not isinstance(template, str | bytes):
        return [render(value, ctx) for value in template]
    return template


Renderer = Callable[[Mapping[str, Any]], Any]
"""A payload template as one function of ``ctx`` (`renderer`)."""


def renderer(template: Any) -> Renderer:
    """``template`` made into a function doing what ``render(template, ctx)`` does.

    The template's shape is looked at once, not for every event: each object
    and list is a comprehension over its parts, each plain path (the usual
    mapping) reads its fields directly, constants are returned as they are.
    The template must not change afterwards (flow templates are frozen).
    """
    if isinstance(template, Expression):
        path = template.field_path
        if path is not None and len(path) <= 3:
            return _path_reader(path)
        return template.evaluate
    if isinstance(template, Mapping):
        items = [(key, renderer(value)) for key, value in template.items()]
        return lambda ctx: {key: part(ctx) for key, part in items}
    if isinstance(template, Sequence) and not isinstance(template, str | bytes):
        parts = [renderer(value) for value in template]
        return lambda ctx: [part(ctx) for part in parts]
    return lambda _ctx: template


def _path_reader(path: tuple[str, ...]) -> Renderer:
    """`Expression.evaluate` of a plain path of one to three fields, unrolled."""
    if len(path) == 1:
        (first,) = path
        return lambda ctx: ctx.get(first) if isinstance(ctx, dict) else None
    if len(path) == 2:
        first, second = path

        def two(ctx: Any) -> Any:
            if not isinstance(ctx, dict):
                return None
            value = ctx.get(first)
            return value.get(second) if isinstance(value, dict) else None

        return two
    first, second, third = path

    def three(ctx: Any) -> Any:
        if not isinstance(ctx, dict):
            return None
        value = ctx.get(first)
        if not isinstance(value, dict):
            return None
        value = value.get(second)
        return value.get(third) if isinstance(value, dict) else None

    return three


def _mapping_failure(exc: MappingError) -> Failed:
    # A mapping that fails on a real event fails the same way on every retry.
    return Failed(
        error_class=_qualname(exc), message=str(exc), retryable=False, stage="TRANSFORMATION"
    )


def classify(error: BaseException) -> Failed:
    """An exception from an adapter as a `Failed` decision.

    Only `DeliveryError`s say whether they are retryable; anything else is an
    unclassified bug or surprise, treated as permanent so it is looked at.
    """
    if isinstance(error, EventValidationError):
        return Failed(
            error_class=_qualname(error),
            message=str(error),
            retryable=False,
            errors=tuple(error.errors),
        )
    if isinstance(error, DeliveryError):
        return Failed(
            error_class=_qualname(error),
            message=error.message,
            retryable=error.retryable,
            status_code=error.status_code,
            retry_after=error.retry_after,
            vendor_code=error.vendor_code,
            alert=bool(getattr(error, "alert", False)),
            stacktrace=_origin(error),
        )
    # Nobody classified it: a bug or a surprise. Its traceback tells ops where.
    trace = "".join(traceback.format_exception(error))
    return Failed(
        error_class=_qualname(error),
        message=str(error) or error.__class__.__name__,
        retryable=False,
        stacktrace=trace[-_STACKTRACE_LIMIT:],
    )


_STACKTRACE_LIMIT = 4000
_ORIGIN_FRAMES = 3


def _origin(error: BaseException) -> str:
    """The innermost frames that raised a classified ``error``: where in the adapter.

    Only module, function and line: a classified error's message already says what
    the vendor answered, and the runtime's own frames say nothing about it.
    """
    frames = [
        (frame.f_globals.get("__name__", "?"), frame.f_code.co_qualname, line)
        for frame, line in traceback.walk_tb(error.__traceback__)
    ]
    inner = frames[-_ORIGIN_FRAMES:]
    lines = [
        f"  {'raised at' if i == 0 else 'called from'} {module}:{function} line {line}"
        for i, (module, function, line) in enumerate(reversed(inner))
    ]
    return "\n".join(lines)


def check_payload(model: type[BaseModel] | None, payload: Any, step: StepSpec) -> Failed | None:
    """`Failed` with field errors when ``payload`` does not fit the action's input model."""
    if model is None:
        return None
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        errors = tuple(field_errors(exc, prefix="payload"))
        return Failed(
            error_class="platypus.exceptions.EventValidationError",
            message=(
                f"step {step.name!r}: the mapped payload does not fit the input of {step.to} "
                f"({len(errors)} error{'s' if len(errors) != 1 else ''})"
            ),
            retryable=False,
            errors=errors,
            stage="TRANSFORMATION",
        )
    return None


def retry_policy(default: RetryPolicy, flow: FlowSpec, step: StepSpec) -> RetryPolicy:
    """The policy a step runs with: project default, then flow, then step overrides."""
    return default.merged(flow.retry).merged(step.retry)


def on_error(flow: FlowSpec, step: StepSpec) -> OnError:
    """What happens to the event when ``step`` fails for good."""
    return step.on_error or flow.on_error


def _qualname(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
