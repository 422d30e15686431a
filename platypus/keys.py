"""The ordering key of an event: which events are processed one after another.

Events with the same key are processed in the order they were accepted, one at
a time; events of different keys run concurrently. A key's events also share a
partition (Kafka's murmur2 partitioner, on both runtimes: `platypus.partitioning`).
By default the key is the event's ``subject``. ``ordering:`` in ``platypus.yaml``
gives an event type another key, an expression over the event as it is on the
wire, so that related records of different subjects go in one order::

    ordering:
      # every deal of one customer, one after another
      sales.opportunity.closed_won.v1: data.account_id

The key is computed once, when the event is appended to the events topic, by
`ordering_key`: the ingress, webhook sources and pollers (through the ingress)
and replays all call it. Nothing downstream recomputes it, so the key is a
property of the event type, not of a flow: two flows consuming one type could
not ask for two partitions. An expression that yields nothing usable (null, an
empty string, a list) falls back to the subject, so an event is never refused
for its key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ConfigDict, Field, RootModel, field_validator, model_serializer

from platypus.envelope import CloudEvent
from platypus.exceptions import MappingError
from platypus.expression import Expression, check, compile_expression

__all__ = ["OrderingKeys", "ordering_key"]


class OrderingKeys(RootModel[dict[str, Any]]):
    """``ordering:`` of ``platypus.yaml``: event type -> expression of its ordering key.

    Types not listed are ordered by ``subject``. Expressions are compiled when
    the configuration is read, so a syntax error stops start-up.
    """

    model_config = ConfigDict(frozen=True)

    root: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Event type (with version) -> JMESPath expression over the event whose value "
            "is the ordering key, e.g. data.account_id; default: the subject."
        ),
    )

    @field_validator("root", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("ordering: is a mapping of event type to expression")
        compiled: dict[str, Expression] = {}
        for event_type, source in value.items():
            if isinstance(source, Expression):
                compiled[str(event_type)] = source
                continue
            if not isinstance(source, str) or not source.strip():
                raise ValueError(
                    f"{event_type}: the key is an expression string, e.g. data.account_id"
                )
            try:
                compiled[str(event_type)] = compile_expression(source)
            except MappingError as exc:
                raise ValueError(f"{event_type}: {exc}") from None
        return compiled

    @model_serializer(mode="plain")
    def _sources(self) -> dict[str, str]:
        return {name: expr.source for name, expr in self.root.items()}

    def expression(self, event_type: str) -> Expression | None:
        """The key expression of ``event_type``, or None when it is ordered by subject."""
        found = self.root.get(event_type)
        return found if isinstance(found, Expression) else None

    def problems(self, known_types: Iterable[str], data_schema: Any = None) -> list[str]:
        """What is wrong with the declarations: unknown event types, unknown fields.

        ``data_schema(event_type)`` returns the JSON Schema of the type's ``data``
        (`SchemaRegistry.json_schema`); without it only the types are checked.
        """
        known = set(known_types)
        found: list[str] = []
        for event_type, expr in sorted(self.root.items()):
            if event_type not in known:
                found.append(f"ordering: {event_type}: no such event type")
                continue
            if data_schema is None:
                continue
            data = dict(data_schema(event_type))
            defs = data.pop("$defs", {})
            found.extend(
                f"ordering: {event_type}: {expr.source!r}: {message}"
                for message in check(expr, _wire(data), defs)
            )
        return found


def ordering_key(event: CloudEvent | Mapping[str, Any], keys: OrderingKeys | None = None) -> str:
    """The key that orders ``event`` and picks its partition.

    ``event`` is a validated `CloudEvent` or one as on the wire (a JSON object).
    The key is its type's expression in ``keys`` when one is declared and yields
    a string or a number; otherwise the ``subject``.
    """
    if isinstance(event, CloudEvent):
        subject: Any = event.subject
        event_type: Any = event.type
    else:
        subject, event_type = event.get("subject"), event.get("type")
    fallback = subject if isinstance(subject, str) else ""
    expr = keys.expression(str(event_type)) if keys is not None and keys.root else None
    if expr is None:
        return fallback
    # Only now the event as expressions read it: most types are keyed by subject.
    context = event.model_dump(mode="json") if isinstance(event, CloudEvent) else event
    try:
        value = expr.evaluate(context)
    except MappingError:
        return fallback
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return fallback
    text = value if isinstance(value, str) else _number(value)
    return text or fallback


def _number(value: int | float) -> str:
    # 42.0 and 42 are one key, as JSON does not tell them apart.
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


_STRING = {"type": "string"}
_NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _wire(data: dict[str, Any]) -> dict[str, Any]:
    """The schema of what a key expression reads: the envelope around ``data``."""
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
        },
        "additionalProperties": False,
    }
