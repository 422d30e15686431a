"""The indexer: dead letters of the embedded event log into the failed-event store.

Each pass (`Indexer.index_once`) first takes or renews the store's indexer lease
(`platypus.ops.lease`): of several indexers on one store, one works and the
others stand by, so no replay is appended twice and no dead letter is indexed
by two writers at once. Then it

1. **appends the replays asked for** (`platypus.ops.replays.dispatch_replays`), when
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
queues replays for it instead of opening the log itself. An app that starts while
the CLI holds the lock takes it on a later pass.

The same indexer runs on Kafka (`platypus.runtime.kafka.indexer`, ``platypus
indexer``): there its log is the dead-letter and outcomes topics read by a
consumer of its own, and an `OutcomeFeed` stores the outcomes topic before each
pass settles, so a replay resolves when its outcome arrives.

A dead-letter record some other tool wrote (headers missing, a value that is not
JSON, bytes that are not UTF-8) is indexed with what it has, and its entry's
message says what was missing: it never stops the indexer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import structlog

from platypus import deadletter as dl
from platypus.flow.model import FlowSpec
from platypus.ops.lease import DEFAULT_TTL, INDEXER_LEASE, StoreLease
from platypus.ops.replays import ReplayTarget, dispatch_replays
from platypus.ops.store import FailureStatus, FailureStore, Lease, NewFailure
from platypus.records import DEAD_LETTER_TOPIC, EVENTS_TOPIC, REPLAY_OF_HEADER, Record

__all__ = [
    "IndexReport",
    "IndexedLog",
    "Indexer",
    "LogOwnerLock",
    "OutcomeFeed",
    "parse_dead_letter",
]

LOCK_FILE = "ops.lock"

_log = structlog.get_logger("platypus.ops")


class IndexedLog(Protocol):
    """What the indexer needs of a runtime's log: its dead letters and outcomes.

    The embedded `EventLog` is one; it lives in its runtime, and this module only
    knows it through this Protocol.
    """

    @property
    def partitions(self) -> int:
        """Partitions of the dead-letter topic."""
        ...

    @property
    def data_dir(self) -> Path:
        """Where the log's ops lock is kept."""
        ...

    def fetch(self, topic: str, positions: Mapping[int, int], limit: int = 500) -> list[Record]:
        """Records of ``topic`` from each partition's position on, up to ``limit``."""
        ...

    def outcome(self, topic: str, partition: int, offset: int, flow: str) -> str | None:
        """``delivered``, ``filtered``, ``dead_lettered``, ``discarded`` or None (not yet)."""
        ...


class OutcomeFeed(Protocol):
    """Outcomes into the store before a pass settles replays (the Kafka outcomes topic)."""

    def index(self, store: FailureStore, lease: Lease) -> int:
        """Store what arrived since the last call, under ``lease``; how many records read."""
        ...


class IndexReport:
    """What one pass did; ``standby`` when another indexer holds the store's lease."""

    __slots__ = ("created", "dispatched", "outcomes", "read", "settled", "standby", "updated")

    def __init__(self) -> None:
        self.read = 0
        self.outcomes = 0  # of ``read``: outcomes the `OutcomeFeed` stored
        self.created = 0
        self.updated = 0
        self.dispatched = 0
        self.settled = 0
        self.standby = False

    def __repr__(self) -> str:
        return (
            f"IndexReport(read={self.read}, created={self.created}, updated={self.updated}, "
            f"dispatched={self.dispatched}, settled={self.settled}, outcomes={self.outcomes}, "
            f"standby={self.standby})"
        )

    @property
    def busy(self) -> bool:
        """Whether the pass found anything to do (another pass may find more).

        Outcomes do not count: the feed stores everything there is when called,
        so a pass at once would find only the few settled meanwhile. Under load
        that made a pass (and its store transactions) every few milliseconds.
        """
        return bool(self.read - self.outcomes or self.dispatched or self.settled)


class Indexer:
    """Keeps the failed-event store up to date with the log's dead-letter topic.

    ``flows`` (optional) names the connection of each step in the entries.
    ``target`` is where replays go (the runtime's `ReplayTarget`); without one,
    this process may not append to the log and only indexes and settles.
    ``quiet`` leaves out the info line per batch (the CLI's output is its report).
    ``lease_ttl`` is how long the store's indexer lease outlives a pass.
    ``events_topic`` and ``dead_letter_topic`` name the log's topics (the
    embedded ones by default; ``<prefix>.events`` ... on Kafka). ``outcomes``,
    when given, is stored before each pass settles replays.
    """

    def __init__(
        self,
        log: IndexedLog,
        store: FailureStore,
        *,
        target: ReplayTarget | None = None,
        flows: Sequence[FlowSpec] = (),
        batch: int = 1000,
        quiet: bool = False,
        lease_ttl: float = DEFAULT_TTL,
        events_topic: str = EVENTS_TOPIC,
        dead_letter_topic: str = DEAD_LETTER_TOPIC,
        outcomes: OutcomeFeed | None = None,
    ) -> None:
        self.log = log
        self.events_topic = events_topic
        self.dead_letter_topic = dead_letter_topic
        self.outcomes = outcomes
        self._quiet = quiet
        self.store = store
        self.target = target
        self._batch = batch
        self._connections = {
            (flow.name, step.name): step.connection for flow in flows for step in flow.steps
        }
        self.lease = StoreLease(
            store, INDEXER_LEASE, ttl=lease_ttl, detail=f"indexer of {log.data_dir}"
        )
        self._pass: asyncio.Lock | None = None
        self._acquiring: asyncio.Future[Lease | None] | None = None
        self._wake: asyncio.Event | None = None
        self._standing_by = False

    def close(self) -> None:
        """Give the store's lease up."""
        with contextlib.suppress(Exception):  # the store may be gone already
            self.lease.release()

    def wake(self) -> None:
        """Start the next pass of `run_forever` now (replays were just asked for)."""
        if self._wake is not None:
            self._wake.set()

    async def index_once(self) -> IndexReport:
        """One pass: dispatch queued replays, index new dead letters, settle replays.

        Stands by (``report.standby``) while another indexer holds the store's lease.
        Outside `run_forever` the lease is given up again when the pass ends.
        """
        if self._pass is None:
            self._pass = asyncio.Lock()
        async with self._pass:  # one pass at a time, whoever calls
            report = IndexReport()
            # Shielded: a pass cancelled while the store grants the lease must still
            # see the grant through, or `close` would give it up before it is taken.
            self._acquiring = asyncio.ensure_future(asyncio.to_thread(self.lease.acquire))
            lease = await asyncio.shield(self._acquiring)
            if lease is None:
                report.standby = True
                self._say_standby()
                return report
            if self._standing_by:
                self._standing_by = False
                _log.info("took the failed-event store's indexer lease", store=self.store.url)
            try:
                if self.target is not None:
                    report.dispatched = await dispatch_replays(self.target, self.store, self.lease)
                while True:
                    read, created, updated = self._index_batch(lease)
                    report.read += read
                    report.created += created
                    report.updated += updated
                    if read == 0:
                        break
                if self.outcomes is not None:
                    report.outcomes = self.outcomes.index(self.store, lease)
                    report.read += report.outcomes
                report.settled = self._settle(lease)
            finally:
                if self._wake is None:  # a one-off pass: let others have the store
                    await asyncio.to_thread(self.lease.release)
            return report

    def _say_standby(self) -> None:
        if self._standing_by:
            return
        self._standing_by = True
        holder = self.lease.holder_now() or {}
        _log.warning(
            "another indexer holds the failed-event store's lease; this one stands by "
            "until it is free (it expires if its holder stops)",
            store=self.store.url,
            holder=holder.get("holder"),
            holder_detail=holder.get("detail"),
        )

    async def run_forever(self, poll: float = 1.0, *, lock: bool = True) -> None:
        """Index every ``poll`` seconds (sooner after `wake`) until cancelled.

        With ``lock`` the indexer holds the data directory's `LogOwnerLock` while it
        runs, which tells the CLI that this process owns the log. While another
        process holds that lock, that process indexes and appends replays: this
        indexer waits, trying the lock again on every pass.
        """
        owner = LogOwnerLock(self.log.data_dir) if lock else None
        self._wake = asyncio.Event()
        warned = False
        try:
            while True:
                report = IndexReport()
                if owner is not None and not owner.acquire():
                    if not warned:
                        warned = True
                        _log.warning(
                            "another process holds the ops lock of the event log; "
                            "it indexes and appends replays until it lets go",
                            lock=str(owner.path),
                        )
                    report.standby = True
                try:
                    if not report.standby:
                        report = await self.index_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 -- one bad pass must not stop the indexer
                    _log.exception("indexing dead letters failed; trying again")
                    report = IndexReport()
                if report.busy:
                    await asyncio.sleep(0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=poll)
                self._wake.clear()
        finally:
            self._wake = None
            if self._acquiring is not None and not self._acquiring.done():
                with contextlib.suppress(Exception):
                    await self._acquiring
            if owner is not None:
                owner.release()
            self.close()

    def _index_batch(self, lease: Lease) -> tuple[int, int, int]:
        saved = self.store.positions(self.dead_letter_topic)
        positions = {p: saved.get(p, 0) for p in range(self.log.partitions)}
        records = self.log.fetch(self.dead_letter_topic, positions, self._batch)
        if not records:
            return 0, 0, 0
        moved = dict(positions)
        for record in records:
            moved[record.partition] = max(moved[record.partition], record.offset + 1)
        parsed = [
            parse_dead_letter(record, self._connections, events_topic=self.events_topic)
            for record in records
        ]
        replays = self._replay_positions(parsed)
        created, updated = self.store.record_failures(
            parsed,
            topic=self.dead_letter_topic,
            positions={p: o for p, o in moved.items() if o != positions[p]},
            replay_positions=replays,
            lease=lease,
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
                (self.events_topic, f.replay_partition, f.replay_offset): f.id
                for f in self.store.awaiting_outcome()
            }
            for item in parsed:
                where = (item.source_topic, item.source_partition, item.source_offset)
                if where in waiting:
                    out.setdefault(where, waiting[where])
        return out

    def _settle(self, lease: Lease) -> int:
        settled: dict[int, tuple[FailureStatus, str]] = {}
        for failure in self.store.awaiting_outcome():
            if failure.replay_partition is None or failure.replay_offset is None:
                continue
            status = self.log.outcome(
                self.events_topic, failure.replay_partition, failure.replay_offset, failure.flow
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
        return self.store.settle(settled, lease=lease)


_EXPECTED = (dl.EVENT_ID, dl.FLOW, dl.EXCEPTION_CLASS, dl.TOPIC, dl.PARTITION, dl.OFFSET)
"""Headers every Platypus dead letter has; a record without them came from elsewhere."""


def parse_dead_letter(
    record: Record,
    connections: Mapping[tuple[str, str], str] | None = None,
    *,
    events_topic: str = EVENTS_TOPIC,
) -> NewFailure:
    """What a dead-letter record says, as a `NewFailure`.

    Tolerant: a record another tool wrote (headers missing or not UTF-8, a value
    that is not JSON) becomes an entry with what it has (the event's id and type
    from its value when that is a CloudEvent), and its message says what was
    missing, so that someone can look at it.
    """
    headers, notes = _describe_tolerantly(record.headers)

    def text(name: str) -> str:
        return str(headers.get(name, ""))

    missing = [name for name in _EXPECTED if name not in headers]
    event_id, event_type = text(dl.EVENT_ID), text(dl.EVENT_TYPE)
    if missing:
        event = _cloud_event(record.value)
        if event is None:
            notes.append("its value is not a JSON CloudEvent")
        else:
            event_id = event_id or str(event.get("id") or "")
            event_type = event_type or str(event.get("type") or "")
        notes.insert(
            0,
            "a dead-letter record without Platypus's headers (written by another tool?): "
            f"missing {', '.join(missing)}",
        )
    flow, step = text(dl.FLOW), text(dl.STEP)
    now = datetime.fromtimestamp(record.timestamp, UTC)
    errors = headers.get(dl.ERRORS, [])
    status = text(dl.STATUS_CODE)
    message = text(dl.EXCEPTION_MESSAGE)
    if notes:
        message = "; ".join([*notes, *([message] if message else [])])
    return NewFailure(
        event_id=event_id,
        event_type=event_type,
        flow=flow,
        flow_version=text(dl.FLOW_VERSION),
        step=step,
        connection=(connections or {}).get((flow, step), ""),
        business_key=record.key,
        error_class=text(dl.EXCEPTION_CLASS) or ("unknown" if missing else ""),
        error_message=message,
        retryable=text(dl.RETRYABLE) == "true",
        status_code=int(status) if status.isdigit() else None,
        vendor_code=text(dl.VENDOR_CODE) or None,
        errors=errors if isinstance(errors, list) else [],
        headers=headers,
        attempts=_int(text(dl.ATTEMPTS), 1),
        first_failure=_time(text(dl.FIRST_FAILURE), now),
        last_failure=_time(text(dl.LAST_FAILURE), now),
        source_topic=text(dl.TOPIC) or events_topic,
        source_partition=_int(text(dl.PARTITION), -1),
        source_offset=_int(text(dl.OFFSET), -1),
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        payload=record.value,
    )


def _describe_tolerantly(raw: Sequence[tuple[str, bytes]]) -> tuple[dict[str, Any], list[str]]:
    headers: dict[str, Any] = {}
    notes: list[str] = []
    for name, value in raw:
        try:
            headers[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            headers[name] = value.decode("utf-8", "replace")
            notes.append(f"header {name} is not UTF-8")
    if dl.ERRORS in headers:
        try:
            headers[dl.ERRORS] = json.loads(headers[dl.ERRORS])
        except ValueError:
            notes.append(f"header {dl.ERRORS} is not JSON")
            headers[dl.ERRORS] = []
    return headers, notes


def _cloud_event(value: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(value)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


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
