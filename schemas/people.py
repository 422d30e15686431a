"""People events, as Workday, BambooHR and Greenhouse emit them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from platypus.schema import PersonalData, event_schema

from ._common import NonEmpty

WorkerType = Literal["employee", "contingent"]


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
    worker_type: WorkerType = "employee"
    position: Position


@event_schema("people.worker.terminated", version=1)
class WorkerTerminated(BaseModel):
    """A worker's termination was completed in Workday. ``subject`` is the employee id.

    ``last_day_of_work`` is when access must end; ``termination_date`` is when
    employment ends (they differ for garden leave, for instance).
    """

    model_config = ConfigDict(extra="forbid")

    worker_id: NonEmpty
    first_name: Annotated[str, PersonalData]
    last_name: Annotated[str, PersonalData]
    work_email: Annotated[str, PersonalData]
    worker_type: WorkerType = "employee"
    termination_date: date
    last_day_of_work: date
    termination_type: Literal["voluntary", "involuntary"]
    # Why someone left is sensitive personal data.
    reason: Annotated[str | None, PersonalData] = None
    eligible_for_rehire: bool | None = None
    position: Position


@event_schema("people.worker.changed", version=1)
class WorkerChanged(BaseModel):
    """A worker changed job, manager or location. ``subject`` is the employee id.

    ``changes`` names what changed; ``previous`` and ``position`` are the job
    before and after, as of ``effective_date``.
    """

    model_config = ConfigDict(extra="forbid")

    worker_id: NonEmpty
    first_name: Annotated[str, PersonalData]
    last_name: Annotated[str, PersonalData]
    work_email: Annotated[str, PersonalData]
    worker_type: WorkerType = "employee"
    effective_date: date
    changes: list[Literal["job", "manager", "location"]] = Field(min_length=1)
    previous: Position
    position: Position


@event_schema("people.candidate.hired", version=1)
class CandidateHired(BaseModel):
    """A Greenhouse candidate accepted an offer and was marked hired.

    ``subject`` is the Greenhouse application id. The worker does not exist in
    Workday yet: the Workday hire (``people.worker.hired``) follows.
    """

    model_config = ConfigDict(extra="forbid")

    candidate_id: NonEmpty
    application_id: NonEmpty
    first_name: Annotated[str, PersonalData]
    last_name: Annotated[str, PersonalData]
    personal_email: Annotated[str, PersonalData]
    phone: Annotated[str | None, PersonalData] = None
    job_id: NonEmpty
    job_title: NonEmpty
    department: NonEmpty
    office: NonEmpty
    employment_type: Literal["full_time", "part_time", "contract", "intern"] = "full_time"
    start_date: date
    recruiter_email: Annotated[str | None, PersonalData] = None
    hiring_manager_email: Annotated[str | None, PersonalData] = None


@event_schema("people.worker.started", version=1)
class WorkerStarted(BaseModel):
    """A worker's first day of work has come. ``subject`` is the employee id.

    The ``okta`` poller emits it for each Okta user still STAGED on (or after)
    the start date their profile holds, so the account can be activated that day.
    """

    model_config = ConfigDict(extra="forbid")

    worker_id: NonEmpty
    start_date: date
    work_email: Annotated[str, PersonalData]
    first_name: Annotated[str | None, PersonalData] = None
    last_name: Annotated[str | None, PersonalData] = None
    okta_user_id: str | None = Field(default=None, description="The Okta user, when known.")
