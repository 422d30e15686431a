"""The ``okta`` poller: Okta users still STAGED once the start date in their profile has come.

A joiner's account is created ahead of the first day, STAGED (no sign-in), with
the start date in a profile attribute (``startDate`` by default; a custom
attribute of the org's user profile). Each poll searches, through the
connection's ``list_users`` action::

    status eq "STAGED" and profile.startDate le "<today>"

"today" being the date in ``query.timezone`` at the poll. Each user found becomes
one ``people.worker.started.v1`` event (preset ``okta_user_start_date``), whose
id names the user and the start date, so later polls that find the same user
again add nothing. Activating the user (a flow's ``okta.activate_user``) takes it
out of the search. The state lives in Okta, so a restart loses nothing and a
hire rescinded before the first day (the user deactivated) is never activated.

::

    pollers:
      okta_start_dates:
        kind: okta
        connection: okta
        interval: 15m
        query: {start_date_attribute: startDate, timezone: Australia/Sydney}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from platypus.adapter import Adapter, Request
from platypus.exceptions import ConfigurationError
from platypus.sources.mapping import MappingSpec
from platypus.sources.pollers.config import PollerSpec
from platypus.sources.pollers.sources import Page, RecordSource

__all__ = ["OktaStartDateQuery", "OktaStartDateSource"]

START_DATE_PRESET = MappingSpec(
    type="people.worker.started.v1",
    id="join(':', ['started', item.id, item.start_date])",
    subject="item.profile.employeeNumber",
    data={
        "worker_id": "item.profile.employeeNumber",
        "start_date": "item.start_date",
        "work_email": "item.profile.email",
        "first_name": "item.profile.firstName",
        "last_name": "item.profile.lastName",
        "okta_user_id": "item.id",
    },
)


class OktaStartDateQuery(BaseModel):
    """``query`` of an ``okta`` poller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_date_attribute: str = Field(
        default="startDate",
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="Profile attribute holding the start date as YYYY-MM-DD.",
    )
    timezone: str = Field(
        default="UTC", description="Time zone whose date is 'today' (e.g. Australia/Sydney)."
    )
    search: str | None = Field(
        default=None,
        min_length=1,
        description='An extra Okta search condition, ANDed (e.g. profile.userType eq "Employee").',
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from None
        return value


class OktaStartDateSource(RecordSource):
    """Staged users whose start date is today or past, one ``list_users`` page at a time."""

    kind = "okta"
    presets: ClassVar = {"okta_user_start_date": START_DATE_PRESET}
    default_preset = "okta_user_start_date"

    def __init__(self, adapter: Adapter, spec: PollerSpec, name: str) -> None:
        super().__init__(adapter, spec, name)
        try:
            self.query = OktaStartDateQuery.model_validate(spec.query)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(query)'}: {err['msg']}"
                for err in exc.errors(include_input=False)
            )
            raise ConfigurationError(f"pollers.{name}.query: {problems}") from None
        self._zone = ZoneInfo(self.query.timezone)

    def search(self, moment: datetime) -> str:
        """The Okta search expression of a poll at ``moment``."""
        today = moment.astimezone(self._zone).date().isoformat()
        expression = (
            f'status eq "STAGED" and profile.{self.query.start_date_attribute} le "{today}"'
        )
        if self.query.search:
            expression += f" and ({self.query.search})"
        return expression

    async def page(
        self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None
    ) -> Page:
        # The window does not matter: the search is of what is due now, and the
        # event ids make a user found again a duplicate.
        moment = until or datetime.now(UTC)
        result = await self.adapter.call(
            Request(
                action="list_users",
                payload={
                    "search": self.search(moment),
                    "limit": min(self.spec.page_size, 200),
                    "after": cursor.get("after") if cursor else None,
                },
            )
        )
        after = result.get("after")
        return Page(list(result.get("users") or []), {"after": after} if after else None)

    def normalise(self, record: dict[str, Any]) -> dict[str, Any]:
        profile = record.get("profile") or {}
        return {**record, "start_date": profile.get(self.query.start_date_attribute)}
