"""The indexer: dead letters of the embedded event log into the failed-event store.

Each pass (`Indexer.index_once`):

1. **appends the replays asked for** (`platypus.ops.actions.dispatch_replays`), when
   this process may write the log;
2. **indexes new dead letters** from the store's saved position on. Position and
   entries move in one transaction, and an entry remembers the last dead letter
   it took in, so indexing a record twice is a no-op. A dead letter for an
   (event id, flow) already stored (a replay that failed again) updates that
   entry instead of adding one;
3. **settles replays**: an entry ``replaying`` whose replayed record (its
   position in the events topic is kept on the entry) has the outcome
   ``delivered`` or ``filtered`` in its flow becomes ``resolved``; ``discarded``
   (the flow's ``on_error: discard``) becomes ``discarded``; ``dead_lettered``
   comes back through step 2 and reopens the entry.

Only one process may write the embedded log. `LogOwnerLock` is how the running
app says so: it holds ``<data_dir>/ops.lock`` while its indexer runs, and the CLI
queues replays for it instead of opening the log itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

import structlog

from platypus import deadletter as dl
from platypus.flow.model import FlowSpec
from platypus.keys import OrderingKeys
from platypus.ops.store import FailureStatus, FailureStore, NewFailure
from platypus.runtime.embedded import EVENTS_TOPIC
from platypus.runtime.log import EventLog, LogRecord

__all__ = ["IndexReport", "Indexer", "LogOwnerLock", "OutcomeLookup", "parse_dead_letter"]

LOCK_FILE = "ops.lock"

_log = structlog.get_logger("platypus.ops")


class OutcomeLookup(Protocol):
    """Reads the outcome of one flow for one record of the events topic."""

    def outcome(self, topic: str, partition: int, offset: int, flow: str) -> str | None:
        """``delivered``, ``filtered``, ``dead_lettered``, ``discarded`` or None (not yet)."""
        ...

    def close(self) -> None:
        """Release what it holds."""
        ...


class _SqliteOutcomes:
    """Point reads of the event log's ``outcomes`` table through a read-only connection.

    `EventLog.outcomes` returns the whole table; the indexer needs a handful of
    rows by primary key on every pass, from any process.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def outcome(self, topic: str, partition: int, offset: int, flow: str) -> str | None:
        if self._conn is None:
            if not self._path.exists():
                return None
            self._conn = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, check_same_thread=False
            )
            self._conn.execute("PRAGMA busy_timeout=10000")
        row = self._conn.execute(
            "SELECT status FROM outcomes "
            "WHERE topic = ? AND partition = ? AND offset = ? AND flow = ?",
            (topic, partition, offset, flow),
        ).fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class IndexReport:
    """What one pass did."""

    __slots__ = ("created", "dispatched", "read", "settled", "updated")

    def __init__(self) -> None:
        self.read = 0
        self.created = 0
        self.updated = 0
        self.dispatched = 0
        self.settled = 0

    def __repr__(self) -> str:
        return (
            f"IndexReport(read={self.read}, created={self.created}, updated={self.updated}, "
            f"dispatched={self.dispatched}, settled={self.settled})"
        )

    @property
    def busy(self) -> bool:
        """Whether the pass found anything to do (another pass may find more)."""
        return bool(self.read or self.dispatched or self.settled)


class Indexer:
    """Keeps the failed-event store up to date with the log's dead-letter topic.

    ``flows`` (optional) names the connection of each step in the entries.
    ``writable`` says this process owns the log, so it may append replays.
    ``quiet`` leaves out the info line per batch (the CLI's output is its report).
    ``keys`` is the project's ``ordering:``, which keys the replays it appends.
    """

    def __init__(
        self,
        log: EventLog,
        store: FailureStore,
        *,
        flows: Sequence[FlowSpec] = (),
        writable: bool = True,
        batch: int = 1000,
        outcomes: OutcomeLookup | None = None,
        quiet: bool = False,
        keys: OrderingKeys | None = None,
    ) -> None:
        self.log = log
        self._quiet = quiet
        self._keys = keys
        self.store = store
        self.writable = writable
        self._batch = batch
        self._connections = {
            (flow.name, step.name): step.connection for flow in flows for step in flow.steps
        }
        self._outcomes = outcomes or _SqliteOutcomes(log.path)

    def close(self) -> None:
        """Close the outcome reader."""
        self._outcomes.close()

    async def index_once(self) -> IndexReport:
        """One pass: dispatch queued replays, index new dead letters, settle replays."""
        from platypus.ops.actions import dispatch_replays  # actions imports this module

        report = IndexReport()
        if self.writable:
            report.dispatched = await dispatch_replays(self.log, self.store, keys=self._keys)
        while True:
            read, created, updated = self._index_batch()
            report.read += read
            report.created += created
            report.updated += updated
            if read == 0:
                break
        report.settled = self._settle()
        return report

    async def run_forever(self, poll: float = 1.0, *, lock: bool = True) -> None:
        """Index every ``poll`` seconds until cancelled.

        With ``lock`` the indexer holds the data directory's `LogOwnerLock` while it
        runs, which tells the CLI that this process owns the log.
        """
        owner = LogOwnerLock(self.log.data_dir) if lock else None
        if owner is not None and not owner.acquire():
            _log.warning(
                "another process holds the ops lock of the event log; "
                "replays asked for through the CLI are appended by that process",
                lock=str(owner.path),
            )
            self.writable = False
        try:
            while True:
                try:
                    report = await self.index_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 -- one bad pass must not stop the indexer
                    _log.exception("indexing dead letters failed; trying again")
                    report = IndexReport()
                if not report.busy:
                    await asyncio.sleep(poll)
                else:
                    await asyncio.sleep(0)
        finally:
            if owner is not None:
                owner.release()
            self.close()

    def _index_batch(self) -> tuple[int, int, int]:
        saved = self.store.positions(dl.DEAD_LETTER_TOPIC)
        positions = {p: saved.get(p, 0) for p in range(self.log.partitions)}
        records = self.log.fetch(dl.DEAD_LETTER_TOPIC, positions, self._batch)
        if not records:
            return 0, 0, 0
        moved = dict(positions)
        for record in records:
            moved[record.partition] = max(moved[record.partition], record.offset + 1)
        parsed = [parse_dead_letter(record, self._connections) for record in records]
        replays = self._replay_positions(parsed)
        created, updated = self.store.record_failures(
            parsed,
            topic=dl.DEAD_LETTER_TOPIC,
            positions={p: o for p, o in moved.items() if o != positions[p]},
            replay_positions=replays,
        )
        if (created or updated) and not self._quiet:
            _log.info("dead letters indexed", created=created, updated=updated)
        return len(records), created, updated

    def _replay_positions(self, parsed: Sequence[NewFailure]) -> dict[tuple[str, int, int], int]:
        # A failure read from a replayed record, for an entry not yet stored (another
        # flow of the same event failing this time), says which entry's replay it was.
        out: dict[tuple[str, int, int], int] = {}
        for item in parsed:
            replay_of = item.headers.get(REPLAY_OF_HEADER)
            if replay_of and str(replay_of).isdigit():
                out[(item.source_topic, item.source_partition, item.source_offset)] = int(replay_of)
        if len(out) < len(parsed):
            waiting = {
                (EVENTS_TOPIC, f.replay_partition, f.replay_offset): f.id
                for f in self.store.awaiting_outcome()
            }
            for item in parsed:
                where = (item.source_topic, item.source_partition, item.source_offset)
                if where in waiting:
                    out.setdefault(where, waiting[where])
        return out

    def _settle(self) -> int:
        settled: dict[int, tuple[FailureStatus, str]] = {}
        for failure in self.store.awaiting_outcome():
            if failure.replay_partition is None or failure.replay_offset is None:
                continue
            status = self._outcomes.outcome(
                EVENTS_TOPIC, failure.replay_partition, failure.replay_offset, failure.flow
            )
            if status in ("delivered", "filtered"):
                settled[failure.id] = (FailureStatus.RESOLVED, f"replay {status}")
            elif status == "discarded":
                settled[failure.id] = (
                    FailureStatus.DISCARDED,
                    "the flow discarded the replayed event (on_error: discard)",
                )
        if not settled:
            return 0
        return self.store.settle(settled)


REPLAY_OF_HEADER = "platypus.replay-of"
"""On a replayed record: the id of the failed-event entry it replays."""


def parse_dead_letter(
    record: LogRecord, connections: Mapping[tuple[str, str], str] | None = None
) -> NewFailure:
    """What a dead-letter record says, as a `NewFailure` (tolerant of missing headers)."""
    headers = dl.describe_headers(record.headers)

    def text(name: str) -> str:
        return str(headers.get(name, ""))

    flow, step = text(dl.FLOW), text(dl.STEP)
    now = datetime.fromtimestamp(record.timestamp, UTC)
    errors = headers.get(dl.ERRORS, [])
    status = text(dl.STATUS_CODE)
    return NewFailure(
        event_id=text(dl.EVENT_ID),
        event_type=text(dl.EVENT_TYPE),
        flow=flow,
        flow_version=text(dl.FLOW_VERSION),
        step=step,
        connection=(connections or {}).get((flow, step), ""),
        business_key=record.key,
        error_class=text(dl.EXCEPTION_CLASS),
        error_message=text(dl.EXCEPTION_MESSAGE),
        retryable=text(dl.RETRYABLE) == "true",
        status_code=int(status) if status.isdigit() else None,
        vendor_code=text(dl.VENDOR_CODE) or None,
        errors=errors if isinstance(errors, list) else [],
        headers=headers,
        attempts=_int(text(dl.ATTEMPTS), 1),
        first_failure=_time(text(dl.FIRST_FAILURE), now),
        last_failure=_time(text(dl.LAST_FAILURE), now),
        source_topic=text(dl.TOPIC) or EVENTS_TOPIC,
        source_partition=_int(text(dl.PARTITION), -1),
        source_offset=_int(text(dl.OFFSET), -1),
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        payload=record.value,
    )


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _time(text: str, default: datetime) -> datetime:
    if not text:
        return default
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LogOwnerLock:
    """An advisory lock on ``<data_dir>/ops.lock``: held by the process that owns the log.

    The running app's indexer holds it; the CLI takes it (non-blocking) before
    it opens the event log itself, and queues replays for the app when it cannot.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the lock if free; False if another process holds it."""
        if self._handle is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid()}))
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        """Let go of the lock (a no-op when not held)."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> LogOwnerLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
