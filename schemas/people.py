"""People events, as Workday, BambooHR and Greenhouse emit them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict

from platypus.schema import PersonalData, event_schema

from ._common import NonEmpty


class Position(BaseModel):
    """The job a worker holds."""

    model_config = ConfigDict(extra="forbid")

    title: NonEmpty
    department: NonEmpty
    location: NonEmpty
    manager_id: str | None = None


@event_schema("people.worker.hired", version=1)
class WorkerHired(BaseModel):
    """A worker was hired. ``subject`` is the Workday employee id."""

    model_config = ConfigDict(extra="forbid")

    worker_id: NonEmpty
    first_name: Annotated[str, PersonalData]
    last_name: Annotated[str, PersonalData]
    work_email: Annotated[str, PersonalData]
    personal_email: Annotated[str | None, PersonalData] = None
    date_of_birth: Annotated[date | None, PersonalData] = None
    hire_date: date
    worker_type: Literal["employee", "contingent"] = "employee"
    position: Position
