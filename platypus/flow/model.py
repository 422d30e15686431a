"""What a flow file says, as pydantic models.

A flow (``flows/*.yaml``)::

    name: closed-won-to-billing
    description: Tell billing about every closed-won opportunity over 1,000.
    consumes: [sales.opportunity.closed_won.v1]
    when: "data.amount > `1000`"
    retry: {max_attempts: 8, max_elapsed: 10m}
    on_error: dead_letter
    steps:
      - name: notify-billing
        to: billing.post              # connection.action
        params: {path: /orders}       # static options of the action
        payload:                      # JMESPath expressions over the event
          opportunity: data.opportunity_id
          amount: data.amount
          currency: "'EUR'"
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from platypus.expression import Expression, compile_expression
from platypus.retry import RetryPolicyOverride

__all__ = ["FlowSpec", "Mapping", "OnError", "StepSpec"]

_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_TARGET = re.compile(r"^([a-z][a-z0-9_-]*)\.([a-z][a-z0-9_]*)$")


class OnError(enum.StrEnum):
    """What happens to an event when a step fails for good."""

    DEAD_LETTER = "dead_letter"
    """Write a dead-letter record (the default): the event can be inspected and replayed."""

    DISCARD = "discard"
    """Record the event as discarded, with the error, and move on. Use only for
    events whose loss the business has explicitly accepted."""


def _to_expression(value: Any) -> Any:
    if isinstance(value, Expression):
        return value
    if not isinstance(value, str):
        raise ValueError("an expression is a string, e.g. data.amount")
    return compile_expression(value)


_EXPRESSION_SCHEMA = {
    "type": "string",
    "description": "A JMESPath expression over the event, e.g. data.amount > `1000`.",
}

ExpressionField = Annotated[
    Expression, BeforeValidator(_to_expression), WithJsonSchema(_EXPRESSION_SCHEMA)
]


def _compile_mapping(value: Any) -> Any:
    """Strings become expressions; dicts and lists recurse; other scalars are constants."""
    if isinstance(value, str):
        return compile_expression(value)
    if isinstance(value, dict):
        return {str(k): _compile_mapping(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_mapping(v) for v in value]
    return value


Mapping = Annotated[
    Any,
    BeforeValidator(_compile_mapping),
    WithJsonSchema(
        {
            "description": "A payload template: each string is a JMESPath expression "
            "('text' in quotes is a constant), other scalars are constants, "
            "objects and lists nest."
        }
    ),
]
"""A payload template: strings are expressions, other scalars constants, dicts/lists nest."""


def _one_or_many(schema: dict[str, Any]) -> None:
    # ``consumes: sales.opportunity.closed_won.v1`` is read as a list of one.
    items = schema.pop("items")
    minimum = schema.pop("minItems", 1)
    schema.pop("type", None)
    schema["anyOf"] = [items, {"type": "array", "items": items, "minItems": minimum}]


class StepSpec(BaseModel):
    """One delivery: a mapped payload sent to ``connection.action``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(pattern=_NAME, description="Unique within the flow; names its result.")
    to: str = Field(
        description="Target as connection.action, e.g. billing.post.",
        json_schema_extra={"pattern": _TARGET.pattern},
    )
    when: ExpressionField | None = Field(
        default=None, description="Run the step only when this expression is truthy."
    )
    payload: Mapping = Field(default_factory=dict, description="The action's input, mapped.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Static options of the action (not expressions)."
    )
    retry: RetryPolicyOverride | None = Field(
        default=None, description="Retry fields this step changes (over the flow's)."
    )
    on_error: OnError | None = Field(default=None, description="Overrides the flow's on_error.")
    allow_personal_data: list[str] = Field(
        default_factory=list,
        description=(
            "Personal-data fields of the event this step may send to free text (a Slack "
            "message), e.g. [data.first_name, data.work_email]; any other is refused."
        ),
    )

    @field_validator("to")
    @classmethod
    def _check_target(cls, value: str) -> str:
        if not _TARGET.match(value):
            raise ValueError(f"{value!r} is not connection.action (lower-case, e.g. billing.post)")
        return value

    def allows_personal(self, path: str) -> bool:
        """Whether ``allow_personal_data`` names ``path`` (``data.`` may be left out)."""
        wanted = path.removeprefix("data.")
        return any(entry.removeprefix("data.") == wanted for entry in self.allow_personal_data)

    @property
    def connection(self) -> str:
        """The connection (an adapter instance with its settings) the step writes to."""
        return self.to.split(".", 1)[0]

    @property
    def action(self) -> str:
        """The adapter action the step calls."""
        return self.to.split(".", 1)[1]


class FlowSpec(BaseModel):
    """A flow: which events it takes, when, and the steps that deliver them."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(pattern=_NAME, description="Unique across the project.")
    description: str = Field(default="", description="What the flow is for, for people.")
    consumes: list[str] = Field(
        min_length=1,
        description="Event types, with version suffix: one, or a list.",
        json_schema_extra=_one_or_many,
    )
    when: ExpressionField | None = Field(
        default=None, description="Events for which this is falsy are filtered out."
    )
    retry: RetryPolicyOverride | None = Field(
        default=None, description="Retry fields the flow changes (over platypus.yaml's retry)."
    )
    on_error: OnError = Field(
        default=OnError.DEAD_LETTER, description="What happens to an event when a step fails."
    )
    steps: list[StepSpec] = Field(min_length=1, description="The deliveries, run in order.")

    # Set by the loader: where the flow came from and the hash of its content.
    source_file: str = Field(default="<memory>", exclude=True)
    version: str = Field(default="", exclude=True)

    @field_validator("consumes", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[StepSpec]) -> list[StepSpec]:
        seen: set[str] = set()
        for step in steps:
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice; names must be unique")
            seen.add(step.name)
        return steps

    def step(self, name: str) -> StepSpec:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
