"""How each vendor is read one page at a time: a window of modification times and a cursor.

A `RecordSource` answers `RecordSource.page` for a window ``[since, until]`` and a
cursor (None for the first page). The `Page` carries compact records, the cursor
of the next page (None once the window is read to its end) and how far through
the window it got, for progress bars.

* Salesforce pages by keyset: ``ORDER BY SystemModstamp, Id`` with ``LIMIT``, the
  next page starting after the last (SystemModstamp, Id). The cursor survives a
  restart, and the watermark is Salesforce's own clock (the highest
  ``SystemModstamp`` read), so the live poller needs no upper bound.
* Workday pages ``Get_Workers`` with ``As_Of_Entry_DateTime`` fixed to the end of
  the window, so pages stay stable across calls and restarts.
* NetSuite pages a search by ``searchId``, which does not survive a restart: an
  interrupted window is read again from page 1, and the repeats de-duplicated.

A vendor whose poller lives in its adapter's folder (``adapters/okta/poller.py``)
is named in `SOURCES` by ``"module:Class"`` and imported on first use, the way
adapters are; its class brings its own mapping presets (`RecordSource.presets`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from platypus.adapter import Adapter, Request
from platypus.exceptions import ConfigurationError
from platypus.plugins import PluginRegistry
from platypus.safejson import loads as load_json
from platypus.sources.mapping import MappingSpec

from .config import NetSuiteQuery, PollerSpec, SalesforceQuery, WorkdayQuery

__all__ = [
    "NetSuiteSource",
    "Page",
    "RecordSource",
    "SalesforceSource",
    "WorkdaySource",
    "parse_instant",
    "soql_datetime",
    "source_class",
]


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant (Salesforce's ``+0000`` included); naive means UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def soql_datetime(moment: datetime) -> str:
    """A SOQL dateTime literal (unquoted, UTC, milliseconds)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records, the next page's cursor, and the progress through the window."""

    records: list[dict[str, Any]]
    cursor: dict[str, Any] | None
    progress: float = 1.0
    newest: datetime | None = None  # the latest modification time on the page, if known
    extra: dict[str, Any] = field(default_factory=dict)


class RecordSource(ABC):
    """One vendor's records, read through its adapter."""

    kind: ClassVar[str]
    needs_until: ClassVar[bool] = True
    """Whether a live poll gives an upper bound (our clock); False: the vendor's clock."""
    presets: ClassVar[Mapping[str, MappingSpec]] = {}
    """Mappings of this vendor's records to events, by name, beside the built-in presets."""
    default_preset: ClassVar[str | None] = None
    """The preset a poller of this kind uses when it names no mapping (if not built in)."""

    def __init__(self, adapter: Adapter, spec: PollerSpec, name: str) -> None:
        self.adapter = adapter
        self.spec = spec
        self.name = name

    @abstractmethod
    async def page(
        self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None
    ) -> Page:
        """The page at ``cursor`` of records modified in ``[since, until]``."""

    def resume(self, cursor: dict[str, Any] | None) -> dict[str, Any] | None:
        """The cursor to continue an interrupted window with after a restart."""
        return cursor

    def normalise(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as mappings read it."""
        return record


class SalesforceSource(RecordSource):
    """SOQL by ``SystemModstamp``, keyset-paged, through the adapter's ``query`` action."""

    kind = "salesforce"
    needs_until = False

    def __init__(self, adapter: Adapter, spec: PollerSpec, name: str) -> None:
        super().__init__(adapter, spec, name)
        self.query = _settings(SalesforceQuery, spec, name)

    def soql(self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None) -> str:
        """The SOQL of one page."""
        q = self.query
        fields = [
            "Id",
            "SystemModstamp",
            *[f for f in q.fields if f not in ("Id", "SystemModstamp")],
        ]
        conditions = [f"({q.where})"] if q.where else []
        if cursor is None:
            conditions.append(f"SystemModstamp >= {soql_datetime(since)}")
        else:
            at = soql_datetime(parse_instant(cursor["modstamp"]))
            record_id = str(cursor["id"]).replace("\\", "\\\\").replace("'", "\\'")
            conditions.append(
                f"(SystemModstamp > {at} OR (SystemModstamp = {at} AND Id > '{record_id}'))"
            )
        if until is not None:
            conditions.append(f"SystemModstamp <= {soql_datetime(until)}")
        # Names are checked by SalesforceQuery, instants are formatted here and the
        # id is escaped; `where` is the operator's own SOQL from platypus.yaml.
        return (
            f"SELECT {', '.join(fields)} FROM {q.sobject} WHERE {' AND '.join(conditions)} "  # noqa: S608
            f"ORDER BY SystemModstamp, Id LIMIT {self.spec.page_size}"
        )

    async def page(
        self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None
    ) -> Page:
        result = await self.adapter.call(
            Request(action="query", payload={}, params={"soql": self.soql(since, until, cursor)})
        )
        records: list[dict[str, Any]] = list(result.get("records") or [])
        if not records:
            return Page([], None)
        last = records[-1]
        newest = parse_instant(str(last["SystemModstamp"]))
        full = len(records) >= self.spec.page_size
        nxt = {"modstamp": str(last["SystemModstamp"]), "id": str(last["Id"])} if full else None
        progress = 1.0
        if full and until is not None and until > since:
            progress = min(1.0, (newest - since) / (until - since))
        return Page(records, nxt, progress, newest)

    def normalise(self, record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for name in self.query.json_fields:
            value = out.get(name)
            if isinstance(value, str):
                try:
                    value = load_json(value)
                except json.JSONDecodeError:
                    continue  # kept as text: validation says what is wrong
            if isinstance(value, list):
                # Lines without a currency are in the record's (as for outbound messages).
                currency = out.get("CurrencyIsoCode")
                value = [
                    {"currency": currency, **line} if isinstance(line, dict) else line
                    for line in value
                ]
            out[name] = value
        return out


class WorkdaySource(RecordSource):
    """``get_workers`` by transaction-log updated range, paged with a fixed As_Of_Entry."""

    kind = "workday"

    def __init__(self, adapter: Adapter, spec: PollerSpec, name: str) -> None:
        super().__init__(adapter, spec, name)
        self.query = _settings(WorkdayQuery, spec, name)

    async def page(
        self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None
    ) -> Page:
        if until is None:
            raise ValueError("a Workday window needs an upper bound")
        number = int(cursor["page"]) if cursor else 1
        as_of = cursor["as_of"] if cursor else until.isoformat()
        result = await self.adapter.call(
            Request(
                action="get_workers",
                payload={
                    "updated_from": since.isoformat(),
                    "updated_through": until.isoformat(),
                    "page": number,
                    "as_of_entry": as_of,
                },
                params={"page_size": min(self.spec.page_size, 999)},
            )
        )
        total = int(result.get("total_pages") or 0)
        nxt = {"page": number + 1, "as_of": as_of} if number < total else None
        return Page(list(result.get("workers") or []), nxt, number / total if total else 1.0)

    def normalise(self, record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        out.setdefault("department", self.query.department)
        out.setdefault("location", self.query.location)
        return out


class NetSuiteSource(RecordSource):
    """``search_transactions`` by ``lastModifiedDate`` within the window, paged by searchId."""

    kind = "netsuite"

    def __init__(self, adapter: Adapter, spec: PollerSpec, name: str) -> None:
        super().__init__(adapter, spec, name)
        self.query = _settings(NetSuiteQuery, spec, name)

    async def page(
        self, since: datetime, until: datetime | None, cursor: dict[str, Any] | None
    ) -> Page:
        if until is None:
            raise ValueError("a NetSuite window needs an upper bound")
        number = int(cursor["page"]) if cursor else 1
        result = await self.adapter.call(
            Request(
                action="search_transactions",
                payload={
                    "record_type": self.query.record_type,
                    "modified_from": since.isoformat(),
                    "modified_through": until.isoformat(),
                    "page_index": number,
                    "search_id": cursor["search_id"] if cursor else None,
                },
                params={"page_size": min(max(self.spec.page_size, 5), 1000)},
            )
        )
        total = int(result.get("total_pages") or 0)
        nxt = {"page": number + 1, "search_id": result["search_id"]} if number < total else None
        return Page(list(result.get("records") or []), nxt, number / total if total else 1.0)

    def resume(self, cursor: dict[str, Any] | None) -> dict[str, Any] | None:
        # A searchId does not outlive the process that got it: read the window again.
        return None


SOURCES: dict[str, type[RecordSource] | str] = {
    "salesforce": SalesforceSource,
    "workday": WorkdaySource,
    "netsuite": NetSuiteSource,
    # Pollers that live in their vendor's adapter folder, imported on first use.
    "okta": "platypus_adapters.okta.poller:OktaStartDateSource",
    "coupa": "platypus_adapters.coupa.poller:CoupaInvoiceSource",
}
"""The record source of each poller kind: a class, or ``"module:Class"``."""

_REGISTRY: PluginRegistry[RecordSource] = PluginRegistry(
    RecordSource,  # type: ignore[type-abstract]
    "poller kind",
    SOURCES,
)


def source_class(kind: str) -> type[RecordSource]:
    """The `RecordSource` subclass that reads pollers of ``kind``."""
    return _REGISTRY.get(kind)


def _settings(model: Any, spec: PollerSpec, name: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(spec.query)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(query)'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigurationError(f"pollers.{name}.query: {problems}") from None
