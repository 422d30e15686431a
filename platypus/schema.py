"""Declaring event schemas: versioned pydantic models with personal data marked.

A schema module (in ``schemas/`` or any package registered under the
``platypus.schemas`` entry-point group) declares models like this::

    from typing import Annotated
    from pydantic import BaseModel
    from platypus.schema import PersonalData, event_schema

    @event_schema("people.worker.hired", version=1)
    class WorkerHired(BaseModel):
        worker_id: str
        email: Annotated[str, PersonalData]

Fields marked `PersonalData` are masked in logs, error details and anything else
shown to people, and are listed in the exported JSON Schema as
``"x-personal-data": true``.

Data is validated as JSON means it (docs/events.md): ``"10"`` is not an integer,
``true`` is not a number, a date-time is not a date. A field that must take
what a sender gets wrong is marked `Lenient`; what it converts is what is stored
and what flows read::

    quantity: Annotated[int, Lenient]       # "10" and 10.0 become 10
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, Field, GetCoreSchemaHandler, TypeAdapter, ValidationError
from pydantic_core import CoreSchema, core_schema

__all__ = ["PERSONAL_DATA_KEY", "EventSchema", "Lenient", "PersonalData", "event_schema"]

PERSONAL_DATA_KEY = "x-personal-data"

PersonalData: Any = Field(json_schema_extra={PERSONAL_DATA_KEY: True})
"""Marks a field as personal data: ``Annotated[str, PersonalData]``."""


class _Lenient:
    """Marks a field whose value pydantic may convert (lax mode), stored as converted."""

    def __get_pydantic_core_schema__(
        self, source_type: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        strict = handler(source_type)
        lax: TypeAdapter[Any] = TypeAdapter(source_type)

        def convert(value: Any) -> Any:
            try:
                return lax.validate_python(value)
            except ValidationError:
                return value  # the strict check says what is wrong, in its own words

        return core_schema.no_info_before_validator_function(convert, strict)

    def __repr__(self) -> str:
        return "Lenient"


Lenient: Any = _Lenient()
"""Marks a field that takes pydantic's lax conversions: ``Annotated[int, Lenient]``.

``"10"``, ``" 10 "`` and ``10.0`` become ``10``; ``"2026-01-02T00:00:00"``
becomes the date ``2026-01-02``; the event is stored, and flows read it, with the
converted value (``platypus.strict``). Constraints (``gt=0``, patterns) still apply.
"""

_SCHEMA_ATTR = "__platypus_event_schema__"

ModelT = TypeVar("ModelT", bound=type[BaseModel])


@dataclass(frozen=True, slots=True)
class EventSchema:
    """One registered event type at one version."""

    name: str
    version: int
    model: type[BaseModel]
    description: str = ""

    @property
    def type(self) -> str:
        """The CloudEvents ``type`` that selects this schema, e.g. ``people.worker.hired.v1``."""
        return f"{self.name}.v{self.version}"


def event_schema(name: str, *, version: int = 1) -> Callable[[ModelT], ModelT]:
    """Declare a pydantic model as the schema of the event type ``name.v<version>``."""
    if version < 1:
        raise ValueError("schema versions start at 1")

    def mark(model: ModelT) -> ModelT:
        doc = (model.__doc__ or "").strip().split("\n\n")[0]
        setattr(model, _SCHEMA_ATTR, EventSchema(name, version, model, doc))
        return model

    return mark


def declared_schema(obj: object) -> EventSchema | None:
    """The `EventSchema` attached to a model by `event_schema`, if any."""
    found = getattr(obj, _SCHEMA_ATTR, None)
    if isinstance(found, EventSchema) and found.model is obj:
        return found
    return None
