"""Data-driven mappings from a vendor's JSON payload to events, in JMESPath.

A mapping says which event type a payload becomes and where each field comes
from. Expressions read ``{"body": <the whole payload>, "item": <one item>,
"headers": {<lower-case name>: value}}``; ``items`` picks the list of items when
one payload carries several (BambooHR sends ``employees``), otherwise the item is
the body::

    mapping:
      type: people.worker.hired.v1
      items: body.employees
      when: "item.action == 'Created'"
      id: "join(':', ['created', to_string(item.id)])"
      subject: to_string(item.id)
      data:
        worker_id: to_string(item.id)
        first_name: item.fields."First Name"
        position: {title: item.fields."Job Title", ...}

Built-in presets (`PRESETS`) cover Greenhouse's candidate-hired web hook and
BambooHR's employee webhook; a source uses the preset named like itself unless
it says ``mapping: <preset>`` or gives a mapping of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from platypus.exceptions import MappingError
from platypus.expression import Expression, compile_expression, truthy
from platypus.sources.decoder import Delivery

__all__ = ["PRESETS", "MappingSpec", "PayloadMapping"]


class MappingSpec(BaseModel):
    """Where an event's envelope and data come from, as JMESPath expressions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Event type the payload becomes, e.g. people.worker.hired.v1.")
    items: str | None = Field(
        default=None, description="Expression for the list of items; unset: the body is one item."
    )
    when: str | None = Field(
        default=None, description="Condition per item; an item where it is false is ignored."
    )
    id: str = Field(description="Expression for the event id: the vendor's own id of the event.")
    subject: str = Field(description="Expression for the subject: the business key.")
    time: str | None = Field(default=None, description="Expression for the event time.")
    data: dict[str, Any] = Field(
        description="The event's data: each leaf is an expression, nested objects nest."
    )

    @field_validator("items", "when", "id", "subject", "time")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_expression(value)  # MappingError (a ValueError) names the column
        return value


def _tree(spec: Any) -> Any:
    if isinstance(spec, str):
        return compile_expression(spec)
    if isinstance(spec, dict):
        return {key: _tree(value) for key, value in spec.items()}
    if spec is None:
        return None
    raise MappingError(f"a mapping leaf is an expression (a string), not {spec!r}")


def _evaluate(tree: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(tree, Expression):
        return tree.evaluate(context)
    if isinstance(tree, dict):
        return {key: _evaluate(value, context) for key, value in tree.items()}
    return None


class PayloadMapping:
    """A compiled `MappingSpec`."""

    def __init__(self, spec: MappingSpec) -> None:
        self.spec = spec
        self._items = compile_expression(spec.items) if spec.items else None
        self._when = compile_expression(spec.when) if spec.when else None
        self._id = compile_expression(spec.id)
        self._subject = compile_expression(spec.subject)
        self._time = compile_expression(spec.time) if spec.time else None
        self._data = _tree(spec.data)

    def apply(
        self, body: Any, headers: Mapping[str, str], source: str, *, where: str = ""
    ) -> Delivery:
        """The events ``body`` maps to; a failing expression is a `MappingError`."""
        items = [body] if self._items is None else self._items.evaluate({"body": body})
        if not isinstance(items, list):
            raise MappingError(f"{where}items {self.spec.items!r} is not a list in this payload")
        delivery = Delivery()
        for index, item in enumerate(items):
            context = {"body": body, "item": item, "headers": dict(headers)}
            if self._when is not None and not truthy(self._when.evaluate(context)):
                delivery.ignored.append(f"item {index}: {self.spec.when} is false")
                continue
            event: dict[str, Any] = {
                "specversion": "1.0",
                "id": _text(self._id.evaluate(context)),
                "source": source,
                "type": self.spec.type,
                "subject": _text(self._subject.evaluate(context)),
                "data": _evaluate(self._data, context),
            }
            if self._time is not None and (time := self._time.evaluate(context)) is not None:
                event["time"] = time
            delivery.events.append(event)
        return delivery


def _text(value: Any) -> Any:
    # Vendors send numeric ids (Greenhouse's application id); the envelope wants text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


_GH = "item.payload.application"

PRESETS: dict[str, MappingSpec] = {
    # Greenhouse Recruiting, web hook "Candidate has been hired" (action hire_candidate).
    # A candidate has no employee id or work e-mail yet: both come from offer custom
    # fields (employee_id, work_email) when the recruiting team fills them in, else
    # the worker id is "greenhouse-<candidate id>" and a work-type address is used.
    "greenhouse": MappingSpec(
        type="people.worker.hired.v1",
        when="item.action == 'hire_candidate'",
        id=f"join(':', ['hire_candidate', to_string({_GH}.id)])",
        subject=(
            f"{_GH}.offer.custom_fields.employee_id.value "
            f"|| join('', ['greenhouse-', to_string({_GH}.candidate.id)])"
        ),
        data={
            "worker_id": (
                f"{_GH}.offer.custom_fields.employee_id.value "
                f"|| join('', ['greenhouse-', to_string({_GH}.candidate.id)])"
            ),
            "first_name": f"{_GH}.candidate.first_name",
            "last_name": f"{_GH}.candidate.last_name",
            "work_email": (
                f"{_GH}.offer.custom_fields.work_email.value "
                f"|| ({_GH}.candidate.email_addresses[?type=='work'].value | [0])"
            ),
            "personal_email": f"{_GH}.candidate.email_addresses[?type=='personal'].value | [0]",
            "hire_date": f"{_GH}.offer.starts_at",
            "position": {
                "title": f"{_GH}.jobs[0].name",
                "department": f"{_GH}.jobs[0].departments[0].name",
                "location": (
                    f"{_GH}.jobs[0].offices[0].location.name || {_GH}.jobs[0].offices[0].name"
                ),
            },
        },
    ),
    # BambooHR employee webhook: {"employees": [{"id", "action", "timestamp", "fields"}]}.
    # A hire is an employee Created; fields are posted under their English names
    # unless the webhook renames them (then override this mapping).
    "bamboohr": MappingSpec(
        type="people.worker.hired.v1",
        items="body.employees",
        when="item.action == 'Created'",
        id="join(':', ['created', to_string(item.id)])",
        subject='item.fields."Employee #" || to_string(item.id)',
        data={
            "worker_id": 'item.fields."Employee #" || to_string(item.id)',
            "first_name": 'item.fields."First Name"',
            "last_name": 'item.fields."Last Name"',
            "work_email": 'item.fields."Work Email"',
            "personal_email": 'item.fields."Home Email"',
            "hire_date": 'item.fields."Hire Date"',
            "position": {
                "title": 'item.fields."Job Title"',
                "department": 'item.fields."Department"',
                "location": 'item.fields."Location"',
            },
        },
    ),
}
