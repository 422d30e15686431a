"""What the dashboard pages show, computed from the failed-event store (no HTTP here)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from platypus.ops.store import (
    AuditEntry,
    Failure,
    FailureFilter,
    FailureStatus,
    FailureStore,
    OutcomeRow,
)
from platypus.ops.store import audit as audit_table
from platypus.ops.store import failures as failures_table
from platypus.redaction import MASK

__all__ = [
    "FILTER_FIELDS",
    "Bar",
    "Overview",
    "describe_outcome",
    "filter_from",
    "filter_query",
    "overview",
    "timeline",
    "unmask",
]

FILTER_FIELDS = ("flow", "step", "type", "error_class", "fingerprint", "key", "q")
"""Query parameters of the list's filters (besides ``status``, ``since``, ``until``)."""

RANGES: Mapping[str, tuple[timedelta, timedelta]] = {
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
    "30d": (timedelta(days=30), timedelta(days=1)),
}
"""Chart ranges: how far back, and the width of one bar."""


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found


def filter_from(params: Mapping[str, str], statuses: Sequence[str] = ()) -> FailureFilter:
    """The `FailureFilter` of a list's query or form parameters (unknown values ignored)."""

    def get(name: str) -> str | None:
        value = (params.get(name) or "").strip()
        return value or None

    status = tuple(FailureStatus(s) for s in statuses if s in FailureStatus._value2member_map_)
    return FailureFilter(
        flow=get("flow"),
        step=get("step"),
        event_type=get("type"),
        error_class=get("error_class"),
        fingerprint=get("fingerprint"),
        business_key=get("key"),
        text=get("q"),
        status=status,
        since=_time(get("since")),
        until=_time(get("until")),
    )


def filter_query(where: FailureFilter, **extra: Any) -> str:
    """The query string selecting ``where`` on the list page (plus ``extra``)."""
    pairs: list[tuple[str, str]] = []
    for name, value in (
        ("flow", where.flow),
        ("step", where.step),
        ("type", where.event_type),
        ("error_class", where.error_class),
        ("fingerprint", where.fingerprint),
        ("key", where.business_key),
        ("q", where.text),
        ("since", where.since.isoformat() if where.since else None),
        ("until", where.until.isoformat() if where.until else None),
    ):
        if value:
            pairs.append((name, value))
    pairs.extend(("status", s.value) for s in where.status)
    pairs.extend((k, str(v)) for k, v in extra.items() if v is not None)
    return urlencode(pairs)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of the failures-over-time chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


@dataclass(slots=True)
class Overview:
    """The overview page: statuses, the chart, and the top groups."""

    statuses: dict[str, int]
    bars: list[Bar]
    peak: int
    range: str
    start: str
    end: str
    by_flow: list[tuple[str, int]] = field(default_factory=list)
    by_connection: list[tuple[str, int]] = field(default_factory=list)
    by_fingerprint: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for the API)."""
        return {
            "statuses": self.statuses,
            "range": self.range,
            "series": [{"start": b.label, "count": b.count} for b in self.bars],
            "by_flow": dict(self.by_flow),
            "by_connection": dict(self.by_connection),
            "by_fingerprint": self.by_fingerprint,
        }


CHART_WIDTH = 720
CHART_HEIGHT = 160


def overview(
    store: FailureStore, range_name: str = "24h", *, now: datetime | None = None
) -> Overview:
    """Counts by status, failures over time, and open entries by flow/connection/fingerprint."""
    span, step = RANGES.get(range_name, RANGES["24h"])
    range_name = range_name if range_name in RANGES else "24h"
    end = now or datetime.now(UTC)
    buckets = math.ceil(span / step)
    start = end - step * buckets
    c = failures_table.c
    opened = c.status == FailureStatus.OPEN.value
    with store.engine.connect() as conn:
        times = conn.execute(sa.select(c.last_failure).where(c.last_failure >= start)).scalars()
        counts = [0] * buckets
        for at in times:
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
            index = int((at - start) / step)
            if 0 <= index < buckets:
                counts[index] += 1
        by_flow = conn.execute(
            sa.select(c.flow, sa.func.count().label("n"))
            .where(opened)
            .group_by(c.flow)
            .order_by(sa.desc("n"), c.flow)
            .limit(20)
        ).all()
        by_connection = conn.execute(
            sa.select(c.connection, sa.func.count().label("n"))
            .where(opened)
            .group_by(c.connection)
            .order_by(sa.desc("n"), c.connection)
            .limit(20)
        ).all()
        by_fingerprint = conn.execute(
            sa.select(
                c.fingerprint,
                c.flow,
                c.step,
                c.error_class,
                sa.func.min(c.error_message).label("example"),
                sa.func.count().label("n"),
            )
            .where(opened)
            .group_by(c.fingerprint, c.flow, c.step, c.error_class)
            .order_by(sa.desc("n"), c.fingerprint)
            .limit(20)
        ).all()
    peak = max(counts) if counts else 0
    width = CHART_WIDTH / buckets
    bars = []
    for i, count in enumerate(counts):
        height = 0.0 if peak == 0 else (CHART_HEIGHT - 4) * count / peak
        at = start + step * i
        bars.append(
            Bar(
                x=round(i * width + 1, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(max(width - 2, 1), 2),
                height=round(height, 2),
                count=count,
                label=at.strftime("%Y-%m-%d %H:%M"),
            )
        )
    return Overview(
        statuses={s.value: n for s, n in store.counts_by_status().items()},
        bars=bars,
        peak=peak,
        range=range_name,
        start=start.strftime("%Y-%m-%d %H:%M"),
        end=end.strftime("%Y-%m-%d %H:%M"),
        by_flow=[(str(f) or "(unreadable)", int(n)) for f, n in by_flow],
        by_connection=[(str(k) or "(none)", int(n)) for k, n in by_connection],
        by_fingerprint=[
            {
                "fingerprint": fp,
                "flow": flow,
                "step": step_name,
                "error_class": error_class,
                "example": example,
                "count": int(n),
            }
            for fp, flow, step_name, error_class, example, n in by_fingerprint
        ],
    )


@dataclass(frozen=True, slots=True)
class Moment:
    """One line of an entry's timeline."""

    at: datetime
    what: str
    who: str = ""


def timeline(store: FailureStore, entry: Failure, *, audit_rows: int = 2000) -> list[Moment]:
    """What happened to ``entry``: failures, attempts, replays, discards, resolution.

    The audit trail's recent rows naming the entry are included (actions by filter
    list the ids they touched).
    """
    moments = [
        Moment(entry.first_failure, f"first failed at step {entry.step or '-'}"),
    ]
    if entry.failure_count > 1 or entry.last_failure != entry.first_failure:
        moments.append(
            Moment(
                entry.last_failure,
                f"last failed ({entry.failure_count} failures, {entry.attempts} attempts in all)",
            )
        )
    query = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(audit_rows)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    for row in rows:
        ids = (row.detail or {}).get("ids") or []
        if entry.id in ids:
            item = AuditEntry(
                row.id, row.at, row.actor, row.action, dict(row.detail), row._mapping["count"]
            )
            reason = item.detail.get("reason")
            what = item.action + (f": {reason}" if reason else "")
            moments.append(Moment(item.at, what, item.actor))
    if entry.replay_requested_at is not None and not any(
        m.what.startswith("replay") for m in moments
    ):
        moments.append(Moment(entry.replay_requested_at, "replay requested"))
    # Every outcome of the event the store's history holds (Kafka's outcomes topic):
    # successes too, of this flow and of the others that consume the event.
    if entry.event_id:
        for outcome in store.outcome_history(event_id=entry.event_id):
            moments.append(Moment(outcome.settled_at, describe_outcome(outcome)))
    # The audit row of the action that ended the entry says it; the entry's own
    # fields stand in when that row is older than the rows read. A discarded entry
    # was never resolved, whatever ``resolved_at`` (the time it was closed) says.
    if entry.resolved_at is not None:
        if entry.status is FailureStatus.RESOLVED and not any(m.what == "resolve" for m in moments):
            moments.append(Moment(entry.resolved_at, "resolved"))
        if entry.status is FailureStatus.DISCARDED and not any(
            m.what.startswith(("discard", "settle")) for m in moments
        ):
            reason = f": {entry.status_reason}" if entry.status_reason else ""
            moments.append(Moment(entry.resolved_at, f"discarded{reason}"))
    return sorted(moments, key=lambda m: m.at)


def describe_outcome(outcome: OutcomeRow) -> str:
    """One outcome as a line of a timeline: status, flow, step, attempts, time taken."""
    where = outcome.flow or "no flow"
    if outcome.step:
        where += f"/{outcome.step}"
    what = f"{outcome.status.replace('_', '-')} in {where}"
    if outcome.flow_version:
        what += f" (version {outcome.flow_version})"
    if outcome.attempts:
        what += f", {outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
    took = outcome.to_dict()["duration"]
    if took is not None:
        what += f", {took:.3f} s after it was appended"
    read_at = f" [{outcome.topic} {outcome.partition}:{outcome.offset}]"
    if outcome.replay_of is not None:
        read_at += f", a replay of entry #{outcome.replay_of}"
    return what + read_at


def unmask(edited: Any, original: Any) -> Any:
    """``edited`` with every value still ``***`` (masked) put back from ``original``.

    The editor shows the event with its personal data masked; fields the operator
    did not touch keep their real values instead of becoming ``***``.
    """
    if isinstance(edited, str) and edited == MASK:
        return original
    if isinstance(edited, dict) and isinstance(original, dict):
        return {k: unmask(v, original.get(k)) if k in original else v for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, list):
        return [unmask(v, original[i]) if i < len(original) else v for i, v in enumerate(edited)]
    return edited
