"""The failed-event store: one row per failed (event, flow), an audit trail, positions.

SQLAlchemy Core, one code path for both back ends:

* SQLite by default, ``<data_dir>/failures.db`` beside the event log;
* PostgreSQL through a URL such as ``postgresql+psycopg://user@host/db``.

Tables::

    failures           one row per (event id, flow) that was dead-lettered; a replay
                       that fails again updates its row (attempts, last failure, status)
    audit              who did what, when, to how many entries
    indexer_position   the next dead-letter offset to index, per partition
    store_meta         this store's identity (a random id made when it is created)
    leases             who holds a role over the store (the indexer), until when
    replay_jobs        bulk replays: who asked, with which selection, how many entries
    replay_job_entries the entries each job marked, with the replay attempt it made
    sessions           dashboard logins, by a hash of the cookie's token: revoked on
                       logout, expired, or outdated by a role or password change
    login_failures     failed dashboard logins in the throttling window, per user
                       (a hash of the name given) and per client address
    ops_keys           keys the dashboard's processes share (the cookie signing key
                       when ``ops.session_secret`` is not set)
    outcomes           how events ended in each flow (delivered, filtered,
                       dead-lettered, ...), the newest ``OUTCOMES_KEPT`` of them:
                       "what happened to event X?" (filled from the Kafka outcomes
                       topic by the indexer)
    ingest_dedupe      the (source, id) of events accepted through any ingress
                       replica, and webhook delivery ids seen, shared by replicas

Sessions live here, not in the process, so that a login survives a restart and
holds on every replica serving the dashboard from the same store.

Text search is ``ILIKE '%text%'`` over the error messages (SQLite: case-insensitive
for ASCII). It scans; it is quick enough for the hundred thousands of rows a
dead-letter store holds. A PostgreSQL ``pg_trgm`` GIN index on ``error_message``
makes it indexed without a code change.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import attrgetter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from platypus.exceptions import PlatypusError
from platypus.sqlddl import create_tables

__all__ = [
    "AuditEntry",
    "Failure",
    "FailureFilter",
    "FailureStatus",
    "FailureStore",
    "Lease",
    "LeaseLostError",
    "NewFailure",
    "OutcomeRow",
    "ReplayJob",
    "StoredSession",
    "default_store_url",
    "fingerprint",
]

STORE_FILE = "failures.db"


class FailureStatus(StrEnum):
    """Where a failed event stands."""

    OPEN = "open"
    """Dead-lettered and waiting for someone: replay it or discard it."""
    REPLAYING = "replaying"
    """A replay was asked for; resolved when the replayed event is delivered."""
    RESOLVED = "resolved"
    """A replay of the event was delivered (or the flow now filters it out)."""
    DISCARDED = "discarded"
    """Someone decided it is not to be delivered, and said why."""


class _UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

failures = sa.Table(
    "failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # (event id, flow), or the dead-letter position for events without an id.
    sa.Column("entry_key", sa.String(600), nullable=False, unique=True),
    sa.Column("event_id", sa.String(256), nullable=False),
    sa.Column("event_type", sa.String(256), nullable=False),
    sa.Column("flow", sa.String(256), nullable=False),
    sa.Column("flow_version", sa.String(128), nullable=False),
    sa.Column("step", sa.String(256), nullable=False),
    sa.Column("connection", sa.String(256), nullable=False),
    sa.Column("business_key", sa.String(256), nullable=False),
    sa.Column("error_class", sa.String(256), nullable=False),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("retryable", sa.Boolean, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("vendor_code", sa.String(256), nullable=True),
    sa.Column("errors", sa.JSON, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("failure_count", sa.Integer, nullable=False),
    sa.Column("first_failure", _UtcDateTime, nullable=False),
    sa.Column("last_failure", _UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text, nullable=False, default=""),
    sa.Column("source_topic", sa.String(256), nullable=False),
    sa.Column("source_partition", sa.Integer, nullable=False),
    sa.Column("source_offset", sa.BigInteger, nullable=False),
    sa.Column("dlq_partition", sa.Integer, nullable=False),
    sa.Column("dlq_offset", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("replay_of", sa.Integer, nullable=True),
    sa.Column("replays", sa.Integer, nullable=False, default=0),
    sa.Column("replay_payload", sa.LargeBinary, nullable=True),
    sa.Column("replay_requested_at", _UtcDateTime, nullable=True),
    sa.Column("replay_partition", sa.Integer, nullable=True),
    sa.Column("replay_offset", sa.BigInteger, nullable=True),
    sa.Column("created_at", _UtcDateTime, nullable=False),
    sa.Column("updated_at", _UtcDateTime, nullable=False),
    sa.Column("resolved_at", _UtcDateTime, nullable=True),
    sa.CheckConstraint(
        "status IN ('open', 'replaying', 'resolved', 'discarded')", name="failures_status"
    ),
    sa.Index("failures_by_flow", "flow", "step"),
    sa.Index("failures_by_step", "step"),
    sa.Index("failures_by_event_type", "event_type"),
    sa.Index("failures_by_business_key", "business_key"),
    sa.Index("failures_by_error_class", "error_class"),
    sa.Index("failures_by_fingerprint", "fingerprint"),
    sa.Index("failures_by_first_failure", "first_failure"),
    sa.Index("failures_by_last_failure", "last_failure"),
    sa.Index("failures_by_status", "status", "source_partition", "source_offset"),
    sa.Index("failures_by_event_id", "event_id"),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", _UtcDateTime, nullable=False, index=True),
    sa.Column("actor", sa.String(256), nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

indexer_position = sa.Table(
    "indexer_position",
    metadata,
    sa.Column("topic", sa.String(256), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)

store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False),
    # Where the holder runs: a process of the same host (and pid namespace) that is
    # gone frees its lease at once, without waiting for it to expire.
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    # Bumped on every change of holder: a fencing token for the holder's writes.
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.String(512), nullable=False, default=""),
    sa.Column("acquired_at", _UtcDateTime, nullable=False),
    sa.Column("expires_at", _UtcDateTime, nullable=False),
)

replay_jobs = sa.Table(
    "replay_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("selection", sa.JSON, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("skipped", sa.Integer, nullable=False),
    sa.Column("created_at", _UtcDateTime, nullable=False, index=True),
)

replay_job_entries = sa.Table(
    "replay_job_entries",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("failure_id", sa.Integer, primary_key=True, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
)

alert_cooldowns = sa.Table(
    "alert_cooldowns",
    metadata,
    # When the last alert of a flow was posted: the cooldown holds across a restart
    # and across the process that takes the alerts lease over.
    sa.Column("flow", sa.String(256), primary_key=True),
    sa.Column("sent_at", _UtcDateTime, nullable=False),
)

JOBS_KEPT = 500
"""Bulk-replay jobs kept in the store; older ones are forgotten as new ones start."""
sessions = sa.Table(
    "sessions",
    metadata,
    # sha256 of the token in the cookie: a copy of the table gives no usable cookie.
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(256), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    # What the login was granted on (role, reveal, credential): see platypus.ops.auth.
    sa.Column("granted", sa.String(64), nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("created_at", _UtcDateTime, nullable=False),
    sa.Column("expires_at", _UtcDateTime, nullable=False, index=True),
    sa.Column("revoked_at", _UtcDateTime, nullable=True),
    sa.Column("revoked_why", sa.String(128), nullable=True),
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(8), nullable=False),  # user | address
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("at", _UtcDateTime, nullable=False),
    sa.Index("login_failures_by_subject", "scope", "subject", "at"),
)

ops_keys = sa.Table(
    "ops_keys",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Column("created_at", _UtcDateTime, nullable=False),
)


outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(256), nullable=False, index=True),
    sa.Column("event_type", sa.String(256), nullable=False),
    sa.Column("flow", sa.String(256), nullable=False),
    sa.Column("flow_version", sa.String(128), nullable=False),
    sa.Column("step", sa.String(256), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("business_key", sa.String(256), nullable=False, index=True),
    # Where the event was read: a replay is another record of the same event.
    sa.Column("topic", sa.String(256), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("replay_of", sa.Integer, nullable=True),
    sa.Column("appended_at", _UtcDateTime, nullable=True),
    sa.Column("settled_at", _UtcDateTime, nullable=False, index=True),
    # Indexing an outcome record twice (a crash before the position moved) is a no-op.
    sa.UniqueConstraint("topic", "partition", "offset", "flow", name="outcomes_by_position"),
)

OUTCOMES_KEPT = 1_000_000
"""Outcomes kept in the store by default; older ones are pruned as new ones come."""

ingest_dedupe = sa.Table(
    "ingest_dedupe",
    metadata,
    # "event" (source, id) or "webhook" (source, delivery id): one namespace each.
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("source", sa.String(512), primary_key=True),
    sa.Column("ident", sa.String(512), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    # False while the event is being produced: a claim, not yet a fact.
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("seen_at", _UtcDateTime, nullable=False, index=True),
)


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """How an event ended in one flow, as the store keeps it (`FailureStore.event_history`)."""

    event_id: str
    event_type: str
    flow: str
    flow_version: str
    step: str
    status: str
    detail: str
    attempts: int
    business_key: str
    topic: str
    partition: int
    offset: int
    settled_at: datetime
    appended_at: datetime | None = None
    replay_of: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, times in ISO 8601; ``duration`` seconds from append to outcome."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["settled_at"] = self.settled_at.isoformat()
        out["appended_at"] = self.appended_at.isoformat() if self.appended_at else None
        out["duration"] = (
            round((self.settled_at - self.appended_at).total_seconds(), 3)
            if self.appended_at
            else None
        )
        return out


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A dashboard login as the store holds it."""

    user: str
    csrf: str
    grant: str
    address: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_why: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed (event, flow) as the store holds it."""

    id: int
    entry_key: str
    event_id: str
    event_type: str
    flow: str
    flow_version: str
    step: str
    connection: str
    business_key: str
    error_class: str
    error_message: str
    fingerprint: str
    retryable: bool
    status_code: int | None
    vendor_code: str | None
    errors: list[dict[str, Any]]
    headers: dict[str, Any]
    attempts: int
    failure_count: int
    first_failure: datetime
    last_failure: datetime
    status: FailureStatus
    status_reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    dlq_partition: int
    dlq_offset: int
    payload: bytes
    replay_of: int | None
    replays: int
    replay_payload: bytes | None
    replay_requested_at: datetime | None
    replay_partition: int | None
    replay_offset: int | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None

    def summary(self) -> dict[str, Any]:
        """The fields a listing shows (no payload), JSON-ready."""
        return {
            "id": self.id,
            "status": self.status.value,
            "flow": self.flow,
            "step": self.step,
            "connection": self.connection,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "business_key": self.business_key,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "fingerprint": self.fingerprint,
            "status_code": self.status_code,
            "vendor_code": self.vendor_code,
            "attempts": self.attempts,
            "failure_count": self.failure_count,
            "replays": self.replays,
            "first_failure": self.first_failure.isoformat(),
            "last_failure": self.last_failure.isoformat(),
            "status_reason": self.status_reason,
            "replay_of": self.replay_of,
        }


_FAILURE_FIELDS = [f.name for f in fields(Failure)]


@dataclass(frozen=True, slots=True)
class NewFailure:
    """What one dead-letter record says, ready to be stored (see `platypus.ops.indexer`)."""

    event_id: str
    event_type: str
    flow: str
    flow_version: str
    step: str
    connection: str
    business_key: str
    error_class: str
    error_message: str
    retryable: bool
    status_code: int | None
    vendor_code: str | None
    errors: list[dict[str, Any]]
    headers: dict[str, Any]
    attempts: int
    first_failure: datetime
    last_failure: datetime
    source_topic: str
    source_partition: int
    source_offset: int
    dlq_partition: int
    dlq_offset: int
    payload: bytes

    @property
    def entry_key(self) -> str:
        """One entry per (event id, flow); an event without an id by its dead letter."""
        if self.event_id:
            return f"{self.event_id}\x1f{self.flow}"
        return f"dlq\x1f{self.dlq_partition}\x1f{self.dlq_offset}"

    @property
    def fingerprint(self) -> str:
        """The group this failure belongs to: see `fingerprint`."""
        return fingerprint(
            self.error_class,
            self.flow,
            self.step,
            self.error_message,
            status_code=self.status_code,
            vendor_code=self.vendor_code,
        )


@dataclass(frozen=True, slots=True)
class FailureFilter:
    """A selection of entries; every given criterion must hold.

    ``text`` is a case-insensitive substring of the error message; ``since`` and
    ``until`` bound ``last_failure`` (``since`` inclusive, ``until`` exclusive).
    """

    flow: str | None = None
    step: str | None = None
    event_type: str | None = None
    error_class: str | None = None
    fingerprint: str | None = None
    status: Sequence[FailureStatus] = ()
    business_key: str | None = None
    text: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: Sequence[int] | None = None

    def describe(self) -> dict[str, Any]:
        """The criteria that are set, JSON-ready (for the audit trail)."""
        out: dict[str, Any] = {}
        for name in (
            "flow",
            "step",
            "event_type",
            "error_class",
            "fingerprint",
            "business_key",
            "text",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.status:
            out["status"] = [s.value for s in self.status]
        if self.since is not None:
            out["since"] = self.since.isoformat()
        if self.until is not None:
            out["until"] = self.until.isoformat()
        if self.ids is not None:
            out["ids"] = list(self.ids)
        return out

    def clause(self) -> sa.ColumnElement[bool]:
        """The SQL condition selecting the entries."""
        c = failures.c
        parts: list[sa.ColumnElement[bool]] = []
        for column, value in (
            (c.flow, self.flow),
            (c.step, self.step),
            (c.event_type, self.event_type),
            (c.error_class, self.error_class),
            (c.fingerprint, self.fingerprint),
            (c.business_key, self.business_key),
        ):
            if value is not None:
                parts.append(column == value)
        if self.status:
            parts.append(c.status.in_([s.value for s in self.status]))
        if self.text:
            parts.append(c.error_message.ilike(f"%{_escape_like(self.text)}%", escape="\\"))
        if self.since is not None:
            parts.append(c.last_failure >= self.since)
        if self.until is not None:
            parts.append(c.last_failure < self.until)
        if self.ids is not None:
            parts.append(c.id.in_(list(self.ids)))
        return sa.and_(sa.true(), *parts)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action on the store: who, when, what, on how many entries."""

    id: int
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "detail": self.detail,
            "count": self.count,
        }


class LeaseLostError(PlatypusError):
    """A write needed a lease that its holder no longer has (it expired, another took it).

    The write is rolled back. The holder stops what it was doing and tries to take
    the lease again on its next pass.
    """


@dataclass(frozen=True, slots=True)
class Lease:
    """A role over the store held by one process until ``expires_at``.

    ``token`` changes whenever the lease changes hands; writes made under the
    lease check it in their own transaction (see `FailureStore.mark_replayed`).
    """

    name: str
    holder: str
    token: int
    ttl: float
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """A bulk replay as the store keeps it, with how far its entries got.

    ``statuses`` counts the job's entries by their status now; ``dispatched``
    those whose replay is on the events topic (or already settled).
    """

    id: str
    actor: str
    selection: dict[str, Any]
    total: int
    skipped: int
    created_at: datetime
    statuses: dict[FailureStatus, int]
    dispatched: int

    @property
    def done(self) -> bool:
        """Every entry of the job has an outcome (none is still replaying)."""
        return self.statuses.get(FailureStatus.REPLAYING, 0) == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as the dashboard's API answers it."""
        return {
            "id": self.id,
            "actor": self.actor,
            "selection": self.selection,
            "total": self.total,
            "skipped": self.skipped,
            "created_at": self.created_at.isoformat(),
            "dispatched": self.dispatched,
            "statuses": {s.value: self.statuses.get(s, 0) for s in FailureStatus},
            "done": self.done,
        }


_NUMBERS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # UUIDs
    r"|\b[\w.:-]*\d[\w.:-]*\b",  # any token holding a digit: ids, counts, ports, times
    re.IGNORECASE,
)


def normalize_message(message: str) -> str:
    """``message`` with ids, numbers and quoted values replaced, to group alike failures."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "<v>", message)
    text = _NUMBERS.sub("<n>", text)
    return re.sub(r"\s+", " ", text).strip()


def fingerprint(
    error_class: str,
    flow: str,
    step: str,
    message: str,
    *,
    status_code: int | None = None,
    vendor_code: str | None = None,
) -> str:
    """A stable hash of the failure's kind: the same error at the same place.

    Inputs: error class, flow, step, the vendor's status and error code, and the
    message with every token holding a digit (ids, amounts, ports, times) and every
    quoted value replaced. Two events rejected for the same reason share it.
    """
    parts = [
        error_class,
        flow,
        step,
        "" if status_code is None else str(status_code),
        vendor_code or "",
        normalize_message(message),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def default_store_url(data_dir: Path) -> str:
    """The SQLite store beside the event log: ``sqlite:///<data_dir>/failures.db``."""
    return f"sqlite:///{(data_dir / STORE_FILE).resolve()}"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _now() -> datetime:
    return datetime.now(UTC)


class FailureStore:
    """The store's tables behind a small API; safe to share within a process."""

    def __init__(self, url: str | Engine) -> None:
        if isinstance(url, Engine):
            self.engine = url
        else:
            self.engine = _engine(url)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self._store_id: str | None = None

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> FailureStore:
        """The default SQLite store of a project's data directory (created if missing)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        store = cls(default_store_url(data_dir))
        store.create()
        return store

    def create(self) -> None:
        """Create the tables and indexes that do not exist yet, and the store's id.

        Safe when several processes start at once (replicas of ``platypus web``,
        an indexer): on PostgreSQL they take turns under an advisory lock.
        """
        create_tables(self.engine, metadata)
        self._store_id = self._load_store_id()

    @property
    def store_id(self) -> str:
        """A random id made when the store was created: it tells stores apart.

        Replays carry it in their idempotency key, so a log that outlives its
        store (a store re-created, or moved to PostgreSQL) never mistakes a new
        entry's replay for an old one's.
        """
        if self._store_id is None:
            self._store_id = self._load_store_id()
        return self._store_id

    def _load_store_id(self) -> str:
        query = sa.select(store_meta.c.value).where(store_meta.c.name == "store_id")
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        if found is not None:
            return str(found)
        try:
            with self.engine.begin() as conn:
                conn.execute(store_meta.insert().values(name="store_id", value=uuid.uuid4().hex))
        except sa.exc.IntegrityError:
            pass  # another process created it first: use theirs
        with self.engine.connect() as conn:
            return str(conn.execute(query).scalar_one())

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction, committed on success."""
        with self.engine.begin() as conn:
            yield conn

    # -- reads ------------------------------------------------------------------

    def get(self, failure_id: int) -> Failure | None:
        """The entry ``failure_id``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(failures).where(failures.c.id == failure_id)).first()
        return _failure(row._mapping) if row is not None else None

    def search(
        self,
        where: FailureFilter = FailureFilter(),
        *,
        limit: int | None = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[Failure]:
        """Entries matching ``where``, newest last failure first by default."""
        order = (
            (failures.c.last_failure.desc(), failures.c.id.desc())
            if newest_first
            else (failures.c.last_failure, failures.c.id)
        )
        query = sa.select(failures).where(where.clause()).order_by(*order).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_failure(row._mapping) for row in conn.execute(query)]

    def failures_of_event(self, event_id: str, limit: int = 50) -> list[Failure]:
        """The entries of event ``event_id`` (one per flow that failed), by id."""
        query = (
            sa.select(failures)
            .where(failures.c.event_id == event_id)
            .order_by(failures.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_failure(row._mapping) for row in conn.execute(query)]

    def count(self, where: FailureFilter = FailureFilter()) -> int:
        """How many entries match ``where``."""
        query = sa.select(sa.func.count()).select_from(failures).where(where.clause())
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def counts_by_status(self) -> dict[FailureStatus, int]:
        """Entries per status (every status present, 0 when none)."""
        query = sa.select(failures.c.status, sa.func.count()).group_by(failures.c.status)
        with self.engine.connect() as conn:
            found = {FailureStatus(s): int(n) for s, n in conn.execute(query)}
        return {s: found.get(s, 0) for s in FailureStatus}

    def in_source_order(self, where: FailureFilter) -> list[Failure]:
        """Entries matching ``where`` in the order their events were first read.

        Entries of one key share a partition, so this is each key's original order.
        """
        query = (
            sa.select(failures)
            .where(where.clause())
            .order_by(
                failures.c.source_topic,
                failures.c.source_partition,
                failures.c.source_offset,
                failures.c.id,
            )
        )
        with self.engine.connect() as conn:
            return [_failure(row._mapping) for row in conn.execute(query)]

    def pending_replays(self, limit: int = 500) -> list[Failure]:
        """Entries whose replay was asked for but not yet appended, in source order."""
        query = (
            sa.select(failures)
            .where(
                failures.c.status == FailureStatus.REPLAYING.value,
                failures.c.replay_offset.is_(None),
            )
            .order_by(
                failures.c.source_topic,
                failures.c.source_partition,
                failures.c.source_offset,
                failures.c.id,
            )
            .limit(limit)
        )
        with self.engine.connect() as conn:
            found = [_failure(row._mapping) for row in conn.execute(query)]
            if len(found) == limit:
                # Entries of one event (several flows failed) share one replayed
                # record: a chunk takes all of them, so every pass groups them alike.
                last = found[-1]
                rest = sa.select(failures).where(
                    failures.c.status == FailureStatus.REPLAYING.value,
                    failures.c.replay_offset.is_(None),
                    failures.c.source_topic == last.source_topic,
                    failures.c.source_partition == last.source_partition,
                    failures.c.source_offset == last.source_offset,
                    failures.c.id > last.id,
                )
                found.extend(
                    _failure(row._mapping) for row in conn.execute(rest.order_by(failures.c.id))
                )
        return found

    def undispatched(self, ids: Sequence[int]) -> int:
        """How many of ``ids`` are ``replaying`` but not yet appended to the log."""
        total = 0
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = (
                    sa.select(sa.func.count())
                    .select_from(failures)
                    .where(
                        failures.c.id.in_(list(ids[start : start + 500])),
                        failures.c.status == FailureStatus.REPLAYING.value,
                        failures.c.replay_offset.is_(None),
                    )
                )
                total += int(conn.execute(query).scalar_one())
        return total

    def awaiting_outcome(self, limit: int = 5000) -> list[Failure]:
        """Entries whose replayed event is in the log, waiting for its outcome."""
        query = (
            sa.select(failures)
            .where(
                failures.c.status == FailureStatus.REPLAYING.value,
                failures.c.replay_offset.is_not(None),
            )
            .order_by(failures.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_failure(row._mapping) for row in conn.execute(query)]

    def positions(self, topic: str) -> dict[int, int]:
        """The next dead-letter offset to index, per partition already seen."""
        query = sa.select(indexer_position.c.partition, indexer_position.c.next_offset).where(
            indexer_position.c.topic == topic
        )
        with self.engine.connect() as conn:
            return {int(p): int(o) for p, o in conn.execute(query)}

    def audit_log(self, *, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """The audit trail, newest first."""
        query = sa.select(audit).order_by(audit.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [
                AuditEntry(
                    id=row.id,
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    detail=dict(row.detail),
                    count=row._mapping["count"],
                )
                for row in conn.execute(query)
            ]

    # -- writes -----------------------------------------------------------------

    def record_failures(
        self,
        new: Sequence[NewFailure],
        *,
        topic: str,
        positions: Mapping[int, int],
        replay_positions: Mapping[tuple[str, int, int], int] | None = None,
        lease: Lease | None = None,
    ) -> tuple[int, int]:
        """Store dead letters and move the indexer past them, in one transaction.

        A dead letter for an (event id, flow) already stored updates that entry
        (attempts added, last failure, message, payload, back to open) unless the
        entry has already seen this dead-letter record or a later one: indexing
        the same record twice is a no-op. ``replay_positions`` maps the log
        position of a replayed event to the entry it replays, to fill
        ``replay_of`` of entries it creates. With ``lease``, nothing is written
        unless it is still held (`LeaseLostError`). Returns (created, updated).
        """
        now = _now()
        replay_positions = replay_positions or {}
        columns = (
            failures.c.id,
            failures.c.entry_key,
            failures.c.dlq_partition,
            failures.c.dlq_offset,
            failures.c.attempts,
            failures.c.failure_count,
            failures.c.first_failure,
        )
        with self.engine.begin() as conn:
            if lease is not None:
                _hold(conn, lease)
            keys = list({item.entry_key for item in new})
            existing: dict[str, dict[str, Any]] = {}
            for start in range(0, len(keys), 500):
                query = sa.select(*columns).where(
                    failures.c.entry_key.in_(keys[start : start + 500])
                )
                existing.update({row.entry_key: dict(row._mapping) for row in conn.execute(query)})
            inserts: dict[str, dict[str, Any]] = {}
            updates: dict[str, dict[str, Any]] = {}
            for item in new:
                key = item.entry_key
                values = _failure_values(item)
                row = inserts.get(key) or updates.get(key) or existing.get(key)
                if row is None:
                    inserts[key] = {
                        "entry_key": key,
                        **values,
                        "attempts": item.attempts,
                        "failure_count": 1,
                        "first_failure": item.first_failure,
                        "status": FailureStatus.OPEN.value,
                        "status_reason": "",
                        "source_topic": item.source_topic,
                        "source_partition": item.source_partition,
                        "source_offset": item.source_offset,
                        "replay_of": replay_positions.get(
                            (item.source_topic, item.source_partition, item.source_offset)
                        ),
                        "replays": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    continue
                if (item.dlq_partition, item.dlq_offset) <= (
                    row["dlq_partition"],
                    row["dlq_offset"],
                ):
                    continue  # this record, or a later one, is already in the entry
                merged = {
                    **row,
                    **values,
                    "attempts": row["attempts"] + item.attempts,
                    "failure_count": row["failure_count"] + 1,
                    "first_failure": min(row["first_failure"], item.first_failure),
                }
                if key in inserts:
                    inserts[key] = merged
                else:
                    updates[key] = merged
            if inserts:
                conn.execute(failures.insert(), list(inserts.values()))
            for row in updates.values():
                conn.execute(
                    failures.update()
                    .where(failures.c.id == row["id"])
                    .values(
                        **{name: row[name] for name in _REPLACED},
                        attempts=row["attempts"],
                        failure_count=row["failure_count"],
                        first_failure=row["first_failure"],
                        status=FailureStatus.OPEN.value,
                        status_reason="failed again",
                        replay_payload=None,
                        resolved_at=None,
                        updated_at=now,
                    )
                )
            self._save_positions(conn, topic, positions)
        return len(inserts), len(updates)

    def _save_positions(self, conn: Connection, topic: str, positions: Mapping[int, int]) -> None:
        for partition, next_offset in positions.items():
            done = conn.execute(
                indexer_position.update()
                .where(
                    indexer_position.c.topic == topic,
                    indexer_position.c.partition == partition,
                    indexer_position.c.next_offset < next_offset,
                )
                .values(next_offset=next_offset)
            )
            if done.rowcount == 0:
                exists = conn.execute(
                    sa.select(indexer_position.c.next_offset).where(
                        indexer_position.c.topic == topic,
                        indexer_position.c.partition == partition,
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        indexer_position.insert().values(
                            topic=topic, partition=partition, next_offset=next_offset
                        )
                    )

    def request_replays(
        self,
        ids: Sequence[int],
        *,
        payloads: Mapping[int, bytes] | None = None,
        allowed: Sequence[FailureStatus],
        audit_row: tuple[str, str, dict[str, Any]] | None = None,
        job: tuple[str, str, dict[str, Any]] | None = None,
    ) -> list[int]:
        """Mark entries ``replaying`` (only those in an ``allowed`` status); returns them.

        Each marked entry's ``replays`` goes up by one: that number is the replay
        attempt, which keys the replayed record (`platypus.ops.replays`). The
        status test and the change are one statement per chunk, so two replays
        asked for at once never both take an entry. With ``audit_row`` = (actor,
        action, detail), the audit row is written in the same transaction with the
        count of entries marked; with ``job`` = (job id, actor, selection), so is
        the bulk-replay job listing them (`replay_job`).
        """
        now = _now()
        payloads = payloads or {}
        allowed_values = [s.value for s in allowed]
        marked: dict[int, int] = {}
        changes = {
            "status": FailureStatus.REPLAYING.value,
            "replays": failures.c.replays + 1,
            "replay_requested_at": now,
            "replay_partition": None,
            "replay_offset": None,
            "updated_at": now,
        }
        order = list(dict.fromkeys(ids))
        with self.engine.begin() as conn:
            for start in range(0, len(order), 500):
                chunk = order[start : start + 500]
                # Lock the rows in id order first (PostgreSQL; SQLite has one writer
                # anyway), so two overlapping replays queue instead of deadlocking.
                conn.execute(
                    sa.select(failures.c.id)
                    .where(failures.c.id.in_(chunk))
                    .order_by(failures.c.id)
                    .with_for_update()
                ).all()
                plain = [i for i in chunk if i not in payloads]
                if plain:
                    done = conn.execute(
                        failures.update()
                        .where(failures.c.id.in_(plain), failures.c.status.in_(allowed_values))
                        .values(**changes, replay_payload=None)
                        .returning(failures.c.id, failures.c.replays)
                    )
                    marked.update({int(i): int(n) for i, n in done})
                for failure_id in chunk:
                    if failure_id not in payloads:
                        continue
                    done = conn.execute(
                        failures.update()
                        .where(failures.c.id == failure_id, failures.c.status.in_(allowed_values))
                        .values(**changes, replay_payload=payloads[failure_id])
                        .returning(failures.c.id, failures.c.replays)
                    )
                    marked.update({int(i): int(n) for i, n in done})
            ordered = [i for i in order if i in marked]
            job_id = None
            if job is not None:
                job_id, job_actor, selection = job
                skipped = len(order) - len(ordered)
                _insert_job(conn, job_id, job_actor, selection, skipped, now, marked, ordered)
            if audit_row is not None:
                actor, action, detail = audit_row
                detail = {**detail, "ids": ordered}
                if job_id is not None:
                    detail["job"] = job_id
                _insert_audit(conn, actor, action, detail, len(ordered))
        return ordered

    def mark_replayed(
        self, placed: Mapping[int, tuple[int, int]], *, lease: Lease | None = None
    ) -> int:
        """Record where each entry's replayed event was appended (partition, offset).

        Only entries still ``replaying`` and not yet placed change, so a slower
        second dispatcher cannot move an entry to another copy. With ``lease``,
        nothing is written unless it is still held (`LeaseLostError`). Returns
        how many entries changed.
        """
        if not placed:
            return 0
        now = _now()
        statement = (
            failures.update()
            .where(
                failures.c.id == sa.bindparam("failure_id"),
                failures.c.status == FailureStatus.REPLAYING.value,
                failures.c.replay_offset.is_(None),
            )
            .values(
                replay_partition=sa.bindparam("partition"),
                replay_offset=sa.bindparam("offset"),
                updated_at=now,
            )
        )
        rows = [
            {"failure_id": failure_id, "partition": partition, "offset": offset}
            for failure_id, (partition, offset) in placed.items()
        ]
        with self.engine.begin() as conn:
            if lease is not None:
                _hold(conn, lease)
            done = conn.execute(statement, rows)
        return max(0, done.rowcount)

    # -- bulk-replay jobs ---------------------------------------------------------

    def replay_job(self, job_id: str) -> ReplayJob | None:
        """The bulk-replay job ``job_id`` with its progress, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(replay_jobs).where(replay_jobs.c.id == job_id)).first()
            if row is None:
                return None
            c, e = failures.c, replay_job_entries.c
            joined = replay_job_entries.join(failures, failures.c.id == e.failure_id)
            undispatched = sa.and_(
                c.status == FailureStatus.REPLAYING.value, c.replay_offset.is_(None)
            )
            query = (
                sa.select(
                    c.status,
                    sa.func.count(),
                    sa.func.sum(sa.case((undispatched, 1), else_=0)),
                )
                .select_from(joined)
                .where(e.job_id == job_id)
                .group_by(c.status)
            )
            statuses: dict[FailureStatus, int] = {}
            waiting = 0
            for status, count, pending in conn.execute(query):
                statuses[FailureStatus(status)] = int(count)
                waiting += int(pending or 0)
        return ReplayJob(
            id=row.id,
            actor=row.actor,
            selection=dict(row.selection),
            total=row.total,
            skipped=row.skipped,
            created_at=row.created_at,
            statuses={s: statuses.get(s, 0) for s in FailureStatus},
            dispatched=row.total - waiting,
        )

    def replay_job_ids(self, job_id: str) -> list[int]:
        """The entries job ``job_id`` marked, in the order it marked them."""
        query = (
            sa.select(replay_job_entries.c.failure_id)
            .where(replay_job_entries.c.job_id == job_id)
            .order_by(replay_job_entries.c.failure_id)
        )
        with self.engine.connect() as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    # -- leases -------------------------------------------------------------------

    def acquire_lease(
        self,
        name: str,
        holder: str,
        *,
        host: str,
        pid: int,
        ttl: float,
        detail: str = "",
        gone: Callable[[str, int], bool] | None = None,
    ) -> Lease | None:
        """Take lease ``name`` for ``holder`` (or renew it); None while another has it.

        A lease is free when nobody holds it, when it expired, or when ``gone``
        says its holder's process no longer exists. Every change of holder bumps
        the lease's token.
        """
        now = _now()
        expires = now + timedelta(seconds=ttl)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(leases).where(leases.c.name == name).with_for_update()
                ).first()
                if row is None:
                    conn.execute(
                        leases.insert().values(
                            name=name,
                            holder=holder,
                            host=host,
                            pid=pid,
                            token=1,
                            detail=detail[:512],
                            acquired_at=now,
                            expires_at=expires,
                        )
                    )
                    return Lease(name, holder, 1, ttl, expires)
                if row.holder == holder:
                    token = int(row.token)
                else:
                    free = row.expires_at <= now or (gone is not None and gone(row.host, row.pid))
                    if not free:
                        return None
                    token = int(row.token) + 1
                done = conn.execute(
                    leases.update()
                    .where(
                        leases.c.name == name,
                        leases.c.holder == row.holder,
                        leases.c.token == row.token,
                    )
                    .values(
                        holder=holder,
                        host=host,
                        pid=pid,
                        token=token,
                        detail=detail[:512],
                        acquired_at=now if token != row.token else row.acquired_at,
                        expires_at=expires,
                    )
                )
                if done.rowcount != 1:
                    return None  # taken by someone else between the read and the write
                return Lease(name, holder, token, ttl, expires)
        except sa.exc.IntegrityError:
            return None  # another process inserted it first

    def release_lease(self, lease: Lease) -> None:
        """Give ``lease`` up at once (a no-op if it is no longer held).

        The row stays, expired, so the next holder's token is still a higher one.
        """
        with self.engine.begin() as conn:
            conn.execute(
                leases.update()
                .where(
                    leases.c.name == lease.name,
                    leases.c.holder == lease.holder,
                    leases.c.token == lease.token,
                )
                .values(expires_at=_now())
            )

    def last_alerts(self) -> dict[str, datetime]:
        """When the last failure alert of each flow was posted (`platypus.ops.alerts`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(alert_cooldowns.c.flow, alert_cooldowns.c.sent_at))
            return {str(flow): sent_at for flow, sent_at in rows}

    def alert_sent(self, flow: str, at: datetime, *, lease: Lease | None = None) -> None:
        """Record that an alert of ``flow`` was posted at ``at``.

        With ``lease``, nothing is written unless it is still held (`LeaseLostError`).
        """
        flow = flow[:256]
        with self.engine.begin() as conn:
            if lease is not None:
                _hold(conn, lease)
            done = conn.execute(
                alert_cooldowns.update().where(alert_cooldowns.c.flow == flow).values(sent_at=at)
            )
            if done.rowcount == 0:
                conn.execute(alert_cooldowns.insert().values(flow=flow, sent_at=at))

    def lease_holder(self, name: str) -> dict[str, Any] | None:
        """Who holds lease ``name`` and until when (even if expired), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        if row is None:
            return None
        return {
            "holder": row.holder,
            "host": row.host,
            "pid": row.pid,
            "detail": row.detail,
            "expires_at": row.expires_at,
        }

    def settle(
        self,
        outcomes: Mapping[int, tuple[FailureStatus, str]],
        *,
        actor: str = "platypus",
        lease: Lease | None = None,
    ) -> int:
        """Move replaying entries to their final status (resolved, discarded).

        Only entries still ``replaying`` change; an audit row per status records it.
        With ``lease``, nothing is written unless it is still held.
        """
        now = _now()
        changed: dict[FailureStatus, list[int]] = {}
        with self.engine.begin() as conn:
            if lease is not None:
                _hold(conn, lease)
            for failure_id, (status, reason) in outcomes.items():
                done = conn.execute(
                    failures.update()
                    .where(
                        failures.c.id == failure_id,
                        failures.c.status == FailureStatus.REPLAYING.value,
                    )
                    .values(
                        status=status.value,
                        status_reason=reason,
                        resolved_at=now,
                        updated_at=now,
                    )
                )
                if done.rowcount:
                    changed.setdefault(status, []).append(failure_id)
            for status, ids in changed.items():
                action = "resolve" if status is FailureStatus.RESOLVED else "settle"
                detail = {"ids": ids, "status": status.value}
                _insert_audit(conn, actor, action, detail, len(ids), at=now)
        return sum(len(ids) for ids in changed.values())

    # -- outcomes -------------------------------------------------------------------

    def record_outcomes(
        self,
        rows: Sequence[OutcomeRow],
        *,
        topic: str,
        positions: Mapping[int, int],
        lease: Lease | None = None,
        keep: int = OUTCOMES_KEPT,
    ) -> int:
        """Store outcomes and move the indexer past them on ``topic``, in one transaction.

        An outcome already stored (same record, same flow) is skipped, so indexing
        a record twice is a no-op. Past ``keep`` rows, the oldest are pruned.
        With ``lease``, nothing is written unless it is still held. Returns how
        many rows were added.
        """
        with self.engine.begin() as conn:
            if lease is not None:
                _hold(conn, lease)
            added = 0
            if rows and conn.dialect.name == "sqlite":
                added = _insert_outcomes_sqlite(conn, rows)
            elif rows:
                values = [{f.name: getattr(row, f.name) for f in fields(row)} for row in rows]
                added = _insert_new(
                    conn, outcomes, values, ("topic", "partition", "offset", "flow")
                )
            self._save_positions(conn, topic, positions)
            if added:
                _prune_outcomes(conn, keep)
        return added

    def outcome_status(self, topic: str, partition: int, offset: int, flow: str) -> str | None:
        """The status of ``flow`` for the record at (topic, partition, offset), if known."""
        query = sa.select(outcomes.c.status).where(
            outcomes.c.topic == topic,
            outcomes.c.partition == partition,
            outcomes.c.offset == offset,
            outcomes.c.flow == flow,
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else str(found)

    def outcome_history(
        self,
        *,
        event_id: str | None = None,
        business_key: str | None = None,
        flow: str | None = None,
        status: str | None = None,
        limit: int = 200,
    ) -> list[OutcomeRow]:
        """Outcomes matching every criterion given, oldest first (an event's timeline)."""
        clauses = []
        if event_id is not None:
            clauses.append(outcomes.c.event_id == event_id)
        if business_key is not None:
            clauses.append(outcomes.c.business_key == business_key)
        if flow is not None:
            clauses.append(outcomes.c.flow == flow)
        if status is not None:
            clauses.append(outcomes.c.status == status)
        newest = sa.select(outcomes).where(*clauses).order_by(outcomes.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            found = [
                OutcomeRow(**{f: row._mapping[f] for f in _OUTCOME_FIELDS})
                for row in conn.execute(newest)
            ]
        return found[::-1]

    # -- ingest de-duplication --------------------------------------------------------

    def claim_ingest(
        self, kind: str, keys: Sequence[tuple[str, str]], *, stale_after: float
    ) -> dict[tuple[str, str], str]:
        """Claim (source, ident) pairs before producing them: ``new`` (claimed now: yours
        to produce), ``done`` (produced before: a duplicate) or ``pending`` (another
        process claimed it ``stale_after`` seconds ago at most, and has not said done).

        A pending claim older than that is taken over (its process died between
        claim and produce) and answers ``new``.
        """
        now = _now()
        stale = now - timedelta(seconds=stale_after)
        t = ingest_dedupe
        out: dict[tuple[str, str], str] = {}
        with self.engine.begin() as conn:
            rows = [
                {
                    "kind": kind,
                    "source": source[:512],
                    "ident": ident[:512],
                    "digest": "",
                    "done": False,
                    "seen_at": now,
                }
                for source, ident in dict.fromkeys(keys)
            ]
            inserted = _inserted_keys(conn, t, rows, ("kind", "source", "ident"))
            for (source, ident), row in zip(dict.fromkeys(keys), rows, strict=True):
                key = (row["kind"], row["source"], row["ident"])
                if key in inserted:
                    out[(source, ident)] = "new"
                    continue
                where = (t.c.kind == kind, t.c.source == row["source"], t.c.ident == row["ident"])
                taken = conn.execute(
                    t.update()
                    .where(*where, t.c.done.is_(False), t.c.seen_at < stale)
                    .values(seen_at=now)
                )
                if taken.rowcount == 1:
                    out[(source, ident)] = "new"
                    continue
                done = conn.execute(sa.select(t.c.done).where(*where)).scalar_one_or_none()
                out[(source, ident)] = "done" if done else "pending"
        return out

    def finish_ingest(self, kind: str, keys: Sequence[tuple[str, str]], digest: str = "") -> None:
        """Mark claimed pairs as produced: from now on a copy is a duplicate."""
        self._ingest_rows(kind, keys, {"done": True, "digest": digest, "seen_at": _now()})

    def release_ingest(self, kind: str, keys: Sequence[tuple[str, str]]) -> None:
        """Give claims up (producing failed): the client's retry may claim them again."""
        t = ingest_dedupe
        with self.engine.begin() as conn:
            for source, ident in keys:
                conn.execute(
                    t.delete().where(
                        t.c.kind == kind,
                        t.c.source == source[:512],
                        t.c.ident == ident[:512],
                        t.c.done.is_(False),
                    )
                )

    def remember_ingest(self, kind: str, source: str, ident: str, digest: str) -> None:
        """Record (source, ident) as done with ``digest``, unless it is already known."""
        row = {
            "kind": kind,
            "source": source[:512],
            "ident": ident[:512],
            "digest": digest,
            "done": True,
            "seen_at": _now(),
        }
        with self.engine.begin() as conn:
            _inserted_keys(conn, ingest_dedupe, [row], ("kind", "source", "ident"))

    def ingest_digest(self, kind: str, source: str, ident: str) -> str | None:
        """The digest (source, ident) was recorded with when done; None when not seen."""
        t = ingest_dedupe
        query = sa.select(t.c.digest).where(
            t.c.kind == kind,
            t.c.source == source[:512],
            t.c.ident == ident[:512],
            t.c.done.is_(True),
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else str(found)

    def forget_ingest(self, older_than: datetime) -> int:
        """Drop de-duplication rows last seen before ``older_than``; how many."""
        with self.engine.begin() as conn:
            done = conn.execute(ingest_dedupe.delete().where(ingest_dedupe.c.seen_at < older_than))
        return max(0, done.rowcount)

    def _ingest_rows(
        self, kind: str, keys: Sequence[tuple[str, str]], values: dict[str, Any]
    ) -> None:
        t = ingest_dedupe
        with self.engine.begin() as conn:
            for source, ident in keys:
                conn.execute(
                    t.update()
                    .where(t.c.kind == kind, t.c.source == source[:512], t.c.ident == ident[:512])
                    .values(**values)
                )

    def discard(
        self,
        ids: Sequence[int],
        *,
        reason: str,
        allowed: Sequence[FailureStatus],
        audit_row: tuple[str, str, dict[str, Any]] | None = None,
    ) -> list[int]:
        """Mark entries ``discarded`` with ``reason``; returns those changed."""
        now = _now()
        done: list[int] = []
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                found = set(
                    conn.execute(
                        sa.select(failures.c.id).where(
                            failures.c.id.in_(chunk),
                            failures.c.status.in_([s.value for s in allowed]),
                        )
                    ).scalars()
                )
                hit = [i for i in chunk if i in found]
                if hit:
                    conn.execute(
                        failures.update()
                        .where(failures.c.id.in_(hit))
                        .values(
                            status=FailureStatus.DISCARDED.value,
                            status_reason=reason,
                            resolved_at=now,
                            updated_at=now,
                        )
                    )
                done.extend(hit)
            if audit_row is not None:
                actor, action, detail = audit_row
                detail = {**detail, "ids": done, "reason": reason}
                _insert_audit(conn, actor, action, detail, len(done), at=now)
        return done

    def audit(self, actor: str, action: str, detail: Mapping[str, Any], count: int) -> int:
        """Write one audit row; returns its id."""
        with self.engine.begin() as conn:
            return _insert_audit(conn, actor, action, dict(detail), count)

    # -- dashboard sessions and logins ------------------------------------------

    def shared_key(self, name: str) -> str:
        """A random key every process using this store shares, made on first use."""
        query = sa.select(ops_keys.c.value).where(ops_keys.c.name == name)
        with self.engine.begin() as conn:
            found = conn.execute(query).scalar()
            if found is not None:
                return str(found)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    ops_keys.insert().values(
                        name=name, value=secrets.token_urlsafe(32), created_at=_now()
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another process made it first: use theirs
        with self.engine.connect() as conn:
            return str(conn.execute(query).scalar_one())

    def create_session(
        self, session_id: str, session: StoredSession, *, audit_row: tuple[str, str, dict[str, Any]]
    ) -> None:
        """Store a new login (``session_id`` is the token's hash), with its audit row."""
        with self.engine.begin() as conn:
            conn.execute(
                sessions.insert().values(
                    id=session_id,
                    username=session.user,
                    csrf=session.csrf,
                    granted=session.grant,
                    address=session.address[:64],
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                )
            )
            actor, action, detail = audit_row
            _insert_audit(conn, actor, action, detail, 1)
            # Expired logins are of no use to anyone: dropped as new ones come.
            conn.execute(sessions.delete().where(sessions.c.expires_at < session.created_at))

    def session(self, session_id: str) -> StoredSession | None:
        """The login stored under ``session_id`` (revoked or expired ones too), or None."""
        query = sa.select(sessions).where(sessions.c.id == session_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return StoredSession(
            user=row.username,
            csrf=row.csrf,
            grant=row.granted,
            address=row.address,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            revoked_why=row.revoked_why,
        )

    def revoke_session(
        self, session_id: str, why: str, *, audit_row: tuple[str, str, dict[str, Any]] | None
    ) -> bool:
        """Revoke a login that is not revoked yet (with its audit row); whether it was."""
        now = _now()
        with self.engine.begin() as conn:
            done = conn.execute(
                sessions.update()
                .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_why=why[:128])
            )
            if done.rowcount and audit_row is not None:
                actor, action, detail = audit_row
                _insert_audit(conn, actor, action, detail, 1)
        return bool(done.rowcount)

    def login_failures(self, scope: str, subject: str, since: datetime) -> list[datetime]:
        """When logins failed for ``subject`` (a user hash or an address) since ``since``."""
        c = login_failures.c
        query = (
            sa.select(c.at)
            .where(c.scope == scope, c.subject == subject, c.at >= since)
            .order_by(c.at)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def record_login_failure(
        self,
        subjects: Mapping[str, str],
        *,
        at: datetime,
        forget_before: datetime,
        audit_rows: Sequence[tuple[str, str, dict[str, Any]]],
    ) -> None:
        """Count one failed login against each (scope -> subject), with audit rows."""
        with self.engine.begin() as conn:
            conn.execute(
                login_failures.insert(),
                [
                    {"scope": scope, "subject": subject, "at": at}
                    for scope, subject in subjects.items()
                ],
            )
            conn.execute(login_failures.delete().where(login_failures.c.at < forget_before))
            for actor, action, detail in audit_rows:
                _insert_audit(conn, actor, action, detail, 0)

    def clear_login_failures(self, scope: str, subject: str) -> None:
        """Forget the failed logins of ``subject`` (a user who just logged in)."""
        c = login_failures.c
        with self.engine.begin() as conn:
            conn.execute(login_failures.delete().where(c.scope == scope, c.subject == subject))


def new_job_id() -> str:
    """A fresh, unguessable bulk-replay job id."""
    return secrets.token_urlsafe(9)


def _hold(conn: Connection, lease: Lease) -> None:
    # The fence: the write's own transaction renews the lease, or finds it gone.
    done = conn.execute(
        leases.update()
        .where(
            leases.c.name == lease.name,
            leases.c.holder == lease.holder,
            leases.c.token == lease.token,
        )
        .values(expires_at=_now() + timedelta(seconds=lease.ttl))
    )
    if done.rowcount != 1:
        raise LeaseLostError(
            f"the {lease.name!r} lease of the failed-event store is no longer held by "
            f"{lease.holder}: it expired or another process took it over; nothing was written"
        )


def _insert_job(
    conn: Connection,
    job_id: str,
    actor: str,
    selection: dict[str, Any],
    skipped: int,
    now: datetime,
    attempts: Mapping[int, int],
    ordered: Sequence[int],
) -> None:
    conn.execute(
        replay_jobs.insert().values(
            id=job_id,
            actor=actor,
            selection=selection,
            total=len(ordered),
            skipped=skipped,
            created_at=now,
        )
    )
    rows = [{"job_id": job_id, "failure_id": i, "attempt": attempts[i]} for i in ordered]
    for start in range(0, len(rows), 1000):
        conn.execute(replay_job_entries.insert(), rows[start : start + 1000])
    # Keep the newest JOBS_KEPT jobs (the audit trail keeps every replay anyway).
    old = (
        sa.select(replay_jobs.c.id)
        .order_by(replay_jobs.c.created_at.desc(), replay_jobs.c.id)
        .offset(JOBS_KEPT)
    )
    stale = [str(i) for i in conn.execute(old).scalars()]
    for start in range(0, len(stale), 500):
        chunk = stale[start : start + 500]
        conn.execute(replay_job_entries.delete().where(replay_job_entries.c.job_id.in_(chunk)))
        conn.execute(replay_jobs.delete().where(replay_jobs.c.id.in_(chunk)))


def _insert_new(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> int:
    """Insert ``rows`` whose ``unique`` columns are not taken yet; how many went in."""
    return len(_inserted_keys(conn, table, rows, unique))


def _inserted_keys(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> set[tuple[Any, ...]]:
    """Insert ``rows`` whose ``unique`` columns are free; the keys of those that went in."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).on_conflict_do_nothing(index_elements=list(unique))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(unique))
    returning = statement.returning(*[table.c[name] for name in unique])
    return {tuple(row) for row in conn.execute(returning, list(rows)).all()}


def _insert_outcomes_sqlite(conn: Connection, rows: Sequence[OutcomeRow]) -> int:
    """`_insert_new` for outcomes on SQLite, through the driver: how many went in.

    The embedded indexer copies every outcome of the log here. Through SQLAlchemy's
    executemany (parameters built per row, two datetime type processors, RETURNING)
    a row cost ~20 µs of CPU, several times SQLite's own insert. The rows and the
    stored text are the same (`_sqlite_time`), and a row already stored is skipped
    by the same unique key.
    """
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    unique = ", ".join(quote(name) for name in ("topic", "partition", "offset", "flow"))
    statement = (
        f"INSERT INTO {quote(outcomes.name)} ({', '.join(quote(n) for n in _OUTCOME_FIELDS)}) "  # noqa: S608 -- names from the table
        f"VALUES ({', '.join('?' * len(_OUTCOME_FIELDS))}) ON CONFLICT ({unique}) DO NOTHING"
    )
    settled = _OUTCOME_FIELDS.index("settled_at")
    appended = _OUTCOME_FIELDS.index("appended_at")
    values = attrgetter(*_OUTCOME_FIELDS)
    # Rows copied together share few times (those of a settlement, of an append):
    # each distinct one is written as text once.
    texts: dict[datetime | None, str | None] = {None: None}
    params = []
    for row in rows:
        found = list(values(row))
        for column in (settled, appended):
            moment = found[column]
            text = texts.get(moment, _NO_TEXT)
            if text is _NO_TEXT:
                text = texts[moment] = _sqlite_time(moment)
            found[column] = text
        params.append(tuple(found))
    return int(conn.exec_driver_sql(statement, params).rowcount)


_NO_TEXT = "\0not written yet"


def _sqlite_time(value: datetime | None) -> str | None:
    """A time as `_UtcDateTime` stores it on SQLite: UTC, naive, to the microsecond
    (SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _prune_outcomes(conn: Connection, keep: int) -> None:
    newest = conn.execute(sa.select(sa.func.max(outcomes.c.id))).scalar_one_or_none()
    if newest is not None and newest > keep:
        conn.execute(outcomes.delete().where(outcomes.c.id <= newest - keep))


def _insert_audit(
    conn: Connection,
    actor: str,
    action: str,
    detail: dict[str, Any],
    count: int,
    *,
    at: datetime | None = None,
) -> int:
    # ``at``: the time of the change the row records, so the two agree exactly.
    result = conn.execute(
        audit.insert().values(
            at=at or _now(), actor=actor, action=action, detail=detail, count=count
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key is not None else 0


_REPLACED = (
    "event_id",
    "event_type",
    "flow",
    "flow_version",
    "step",
    "connection",
    "business_key",
    "error_class",
    "error_message",
    "fingerprint",
    "retryable",
    "status_code",
    "vendor_code",
    "errors",
    "headers",
    "last_failure",
    "dlq_partition",
    "dlq_offset",
    "payload",
)


def _failure_values(item: NewFailure) -> dict[str, Any]:
    # The fields a later dead letter of the same entry replaces.
    return {
        "event_id": item.event_id,
        "event_type": item.event_type,
        "flow": item.flow,
        "flow_version": item.flow_version,
        "step": item.step,
        "connection": item.connection,
        "business_key": item.business_key,
        "error_class": item.error_class,
        "error_message": item.error_message,
        "fingerprint": item.fingerprint,
        "retryable": item.retryable,
        "status_code": item.status_code,
        "vendor_code": item.vendor_code,
        "errors": item.errors,
        "headers": item.headers,
        "last_failure": item.last_failure,
        "dlq_partition": item.dlq_partition,
        "dlq_offset": item.dlq_offset,
        "payload": item.payload,
    }


_OUTCOME_FIELDS = tuple(f.name for f in fields(OutcomeRow))


def _failure(row: sa.RowMapping) -> Failure:
    values = {name: row[name] for name in _FAILURE_FIELDS}
    values["status"] = FailureStatus(values["status"])
    values["payload"] = bytes(values["payload"])
    if values["replay_payload"] is not None:
        values["replay_payload"] = bytes(values["replay_payload"])
    values["errors"] = list(values["errors"] or [])
    values["headers"] = dict(values["headers"] or {})
    return Failure(**values)


SQLITE_CACHE_KIB = 512
"""Page cache of each SQLite connection of the store, in KiB (SQLite's default: 2,000).

A connection keeps its cache for its life, and the pool keeps connections open, so an
unbounded or large cache is memory that grows with the store's size until it is full,
once per pooled connection. Most of what the store reads and writes is its newest
rows (the outcome history's right edge, a dashboard page); pages missed come from the
OS's file cache. Half the log's writer's: the embedded runtime's process holds the log's
two connections and at least one of these.
"""


def _engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: the CLI reads while the running app's indexer writes.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # negative: KiB
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)
