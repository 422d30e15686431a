"""What an operator does with failed events: look, replay, discard. Every action is audited.

A **replay** appends the event again to the events topic, keyed as before (the
key the ingress gave it, `platypus.keys.ordering_key`: the subject unless
``ordering:`` says otherwise), so it goes through its flows in its key's order,
and with headers:

* ``platypus.event.id`` and, when it validates against its schema now,
  ``platypus.validated`` (what the ingress sets);
* ``platypus.replay-of``: the id of the entry it replays.

The entry is ``replaying`` until the indexer sees the replayed record's outcome:
``delivered`` resolves it; a new dead letter reopens the same entry. Entries of a
bulk replay are appended in the order their events were first read, so each
key's events keep their order. Steps already delivered for the event (in this
flow or another one consuming it) are skipped, as after a crash.

A replay may carry an **edited event** (one entry at a time). It is refused unless
it is a valid CloudEvent whose data validates against its schema, whose ``id``
is the entry's (the id decides which entry a new failure updates) and whose
ordering key is the one the event had (the key decides the order).

The process that owns the event log appends replays (`dispatch_replays`), and
only while it holds the store's indexer lease: an `Operations` given the log
appends them itself when no indexer holds the lease, and otherwise leaves them
to the indexer that does. Anyone else (the CLI while ``platypus run`` is up)
only marks entries ``replaying``; the running app's indexer appends them on its
next pass. Either way each replay is appended once, in source order
(`platypus.ops.replays`).

A bulk replay is a **job** kept in the store (`FailureStore.replay_job`): who
asked, with which selection, the entries it marked and how far they got. It
survives a restart; a dispatcher killed half-way is resumed by the next one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from platypus.envelope import CloudEvent
from platypus.exceptions import EventValidationError, PlatypusError
from platypus.keys import OrderingKeys, ordering_key
from platypus.ops.lease import DEFAULT_TTL, INDEXER_LEASE, StoreLease
from platypus.ops.replays import ReplayTarget, dispatch_replays
from platypus.ops.store import (
    Failure,
    FailureFilter,
    FailureStatus,
    FailureStore,
    LeaseLostError,
    new_job_id,
)
from platypus.redaction import MASK, mask_data
from platypus.safejson import loads as load_json
from platypus.schema_registry import SchemaRegistry
from platypus.validation import field_errors

__all__ = [
    "REPLAYABLE",
    "Actor",
    "InvalidReplayError",
    "NotFoundError",
    "OperationError",
    "Operations",
    "Permission",
    "PermissionDeniedError",
    "Progress",
    "ReplayReport",
    "Selection",
    "dispatch_replays",
]
# dispatch_replays lives in platypus.ops.replays; it is re-exported here, where it was.

Progress = Callable[[int], None]
"""Called with the number of entries just handled (``click.progressbar.update``)."""

Selection = Sequence[int] | FailureFilter
"""Entries by id, or every entry matching a filter."""

REPLAYABLE = (FailureStatus.OPEN, FailureStatus.DISCARDED)
"""Statuses a replay may start from: not resolved (delivered), not already replaying."""

DISCARDABLE = (FailureStatus.OPEN,)


class OperationError(PlatypusError):
    """An operator's action on failed events could not be done."""


class NotFoundError(OperationError, LookupError):
    """No failed-event entry has that id."""


class PermissionDeniedError(OperationError, PermissionError):
    """The actor may not do that (e.g. reveal personal data)."""


class InvalidReplayError(OperationError, ValueError):
    """A replay that cannot be accepted: wrong status, or an invalid edited event."""

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class Permission(StrEnum):
    """What an actor may do beyond looking at masked entries."""

    REPLAY = "replay"
    """Replay entries, with their event or an edited one."""
    DISCARD = "discard"
    """Discard entries, with a reason."""
    REVEAL = "reveal"
    """See the personal data of an event (audited)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a name for the audit trail and what they may do."""

    name: str
    permissions: frozenset[Permission] = frozenset({Permission.REPLAY, Permission.DISCARD})

    @classmethod
    def operator(cls, name: str) -> Actor:
        """Someone with every permission (the CLI user, who can read the data dir anyway)."""
        return cls(name, frozenset(Permission))


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did: entries marked, and how many were appended to the log now.

    ``queued``: the replays are left to the indexer that holds the store's lease
    (or to the process that owns the log). ``job``: the bulk-replay job's id.
    """

    ids: list[int]
    dispatched: int
    queued: bool = False
    skipped: list[int] = field(default_factory=list)
    job: str = ""


class Operations:
    """Show, replay and discard failed events.

    ``target`` is where replays go (the runtime's `ReplayTarget`) if this process
    may append them: they are sent at once unless an indexer holds the store's
    lease, which then sends them. Without one, replays are queued for the process
    that owns the log. ``notify`` is called after entries are marked (the app wakes
    its indexer with it). ``dispatch_chunk`` is how many entries go out at once.
    """

    def __init__(
        self,
        store: FailureStore,
        schemas: SchemaRegistry,
        *,
        target: ReplayTarget | None = None,
        notify: Callable[[], None] | None = None,
        keys: OrderingKeys | None = None,
        lease_ttl: float = DEFAULT_TTL,
        dispatch_chunk: int = 500,
    ) -> None:
        self.store = store
        self.schemas = schemas
        self.target = target
        self.notify = notify
        self.keys = keys
        """The project's ``ordering:``: an edited replay must keep the event's key."""
        self._lease_ttl = lease_ttl
        self._chunk = dispatch_chunk

    # -- looking ----------------------------------------------------------------

    def get(self, failure_id: int) -> Failure:
        """The entry ``failure_id``; `NotFoundError` if there is none."""
        found = self.store.get(failure_id)
        if found is None:
            raise NotFoundError(
                f"no failed event has id {failure_id}: `platypus dlq list` lists them"
            )
        return found

    def show(self, failure_id: int, actor: Actor, *, reveal: bool = False) -> dict[str, Any]:
        """The entry with its event; personal-data fields masked unless ``reveal``.

        Revealing needs `Permission.REVEAL` and is written to the audit trail.
        """
        failure = self.get(failure_id)
        if reveal:
            self._require(actor, Permission.REVEAL, "reveal", {"ids": [failure_id]})
            self.store.audit(actor.name, "reveal", {"ids": [failure_id]}, 1)
        out = failure.summary()
        out.update(
            flow_version=failure.flow_version,
            retryable=failure.retryable,
            errors=failure.errors,
            source={
                "topic": failure.source_topic,
                "partition": failure.source_partition,
                "offset": failure.source_offset,
            },
            dead_letter={"partition": failure.dlq_partition, "offset": failure.dlq_offset},
            headers=failure.headers,
            event=self._event(failure.payload, failure.event_type, reveal),
            masked=not reveal,
        )
        if failure.replay_payload is not None:
            out["edited_event"] = self._event(failure.replay_payload, failure.event_type, reveal)
        return out

    def _event(self, payload: bytes, event_type: str, reveal: bool) -> Any:
        try:
            event = json.loads(payload)
        except ValueError:
            text = payload.decode("utf-8", "replace")
            return text if reveal else f"{MASK} ({len(payload)} bytes, not JSON)"
        if reveal or not isinstance(event, dict):
            return event
        patterns = self.schemas.personal_paths(str(event.get("type", event_type)))
        if "data" in event:
            event["data"] = mask_data(event["data"], patterns)
        return event

    # -- acting -----------------------------------------------------------------

    async def replay(
        self,
        selection: Selection,
        actor: Actor,
        *,
        payload: bytes | None = None,
        progress: Progress | None = None,
    ) -> ReplayReport:
        """Replay the selected entries (a filter selects ``open`` ones unless it says).

        ``payload`` replaces the event of a single entry; it must validate (see the
        module docstring). Entries given by id must all be replayable.
        """
        detail: dict[str, Any] = _describe(selection)
        self._require(actor, Permission.REPLAY, "replay", detail)
        entries = await asyncio.to_thread(self._select, selection, (FailureStatus.OPEN,))
        wrong = [f.id for f in entries if f.status not in REPLAYABLE]
        if wrong:
            raise InvalidReplayError(
                f"cannot replay {_ids(wrong)}: only open or discarded entries can be replayed "
                "(resolved ones were delivered; replaying ones are on their way)"
            )
        payloads: dict[int, bytes] = {}
        if payload is not None:
            if len(entries) != 1:
                raise InvalidReplayError("an edited event replays exactly one entry")
            [entry] = entries
            try:
                self._check_edit(entry, payload)
            except InvalidReplayError as exc:
                self.store.audit(
                    actor.name,
                    "replay.rejected",
                    {**detail, "ids": [entry.id], "error": str(exc), "errors": exc.errors},
                    0,
                )
                raise
            payloads[entry.id] = payload
            detail["edited"] = True
        job = new_job_id()
        # Off the event loop: a bulk replay may mark a hundred thousand entries.
        marked = await asyncio.to_thread(
            self.store.request_replays,
            [f.id for f in entries],
            payloads=payloads,
            allowed=REPLAYABLE,
            audit_row=(actor.name, "replay", detail),
            job=(job, actor.name, _criteria(selection)),
        )
        taken = set(marked)
        skipped = [f.id for f in entries if f.id not in taken]
        if self.notify is not None:
            self.notify()
        dispatched = await self._dispatch(progress) if self.target is not None else None
        if dispatched is None:
            return ReplayReport(marked, 0, queued=True, skipped=skipped, job=job)
        return ReplayReport(marked, dispatched, skipped=skipped, job=job)

    async def _dispatch(self, progress: Progress | None) -> int | None:
        # Appends only while holding the indexer lease; None: another holder does it.
        assert self.target is not None
        lease = StoreLease(self.store, INDEXER_LEASE, ttl=self._lease_ttl, detail="replay")
        if await asyncio.to_thread(lease.acquire) is None:
            return None
        try:
            return await dispatch_replays(
                self.target,
                self.store,
                lease,
                schemas=self.schemas,
                progress=progress,
                chunk=self._chunk,
            )
        except LeaseLostError:
            return None  # taken over half-way: the new holder sends the rest, once each
        finally:
            await asyncio.to_thread(lease.release)

    def discard(self, selection: Selection, actor: Actor, *, reason: str) -> list[int]:
        """Discard the selected entries (a filter selects ``open`` ones) with ``reason``."""
        detail = _describe(selection)
        self._require(actor, Permission.DISCARD, "discard", detail)
        if not reason.strip():
            raise OperationError("say why the events are discarded (--reason)")
        entries = self._select(selection, default=DISCARDABLE)
        wrong = [f.id for f in entries if f.status not in DISCARDABLE]
        if wrong:
            raise OperationError(f"cannot discard {_ids(wrong)}: only open entries can be")
        return self.store.discard(
            [f.id for f in entries],
            reason=reason.strip(),
            allowed=DISCARDABLE,
            audit_row=(actor.name, "discard", detail),
        )

    def _require(
        self, actor: Actor, permission: Permission, action: str, detail: dict[str, Any]
    ) -> None:
        if permission in actor.permissions:
            return
        self.store.audit(actor.name, f"{action}.denied", detail, 0)
        raise PermissionDeniedError(f"{actor.name} may not {permission.value} failed events")

    def _select(self, selection: Selection, default: Sequence[FailureStatus]) -> list[Failure]:
        if isinstance(selection, FailureFilter):
            if not selection.status:
                selection = FailureFilter(**{**_fields(selection), "status": tuple(default)})
            return self.store.in_source_order(selection)
        ids = list(dict.fromkeys(selection))
        if not ids:
            raise OperationError("no entry selected: give ids or filters")
        found = self.store.in_source_order(FailureFilter(ids=ids))
        missing = sorted(set(ids) - {f.id for f in found})
        if missing:
            raise NotFoundError(f"no failed event has id {_ids(missing)}")
        return found

    def _check_edit(self, entry: Failure, payload: bytes) -> None:
        try:
            raw = load_json(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidReplayError(f"the edited event is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidReplayError("the edited event must be a JSON object (a CloudEvent)")
        try:
            event = CloudEvent.model_validate(raw)
        except ValidationError as exc:
            errors = [e.to_dict() for e in field_errors(exc)]
            summary = _first("the edited event is not a CloudEvent", errors)
            raise InvalidReplayError(summary, errors) from None
        try:
            self.schemas.validate(event)
        except EventValidationError as exc:
            errors = [e.to_dict() for e in exc.errors]
            raise InvalidReplayError(_first(str(exc), errors), errors) from None
        if event.id != entry.event_id:
            raise InvalidReplayError(
                f"the edited event's id {event.id!r} must stay {entry.event_id!r}: "
                "the id ties a new failure to this entry"
            )
        key, kept = ordering_key(event, self.keys), entry.business_key
        if key != kept:
            raise InvalidReplayError(
                f"the edited event's ordering key {key!r} must stay {kept!r}: the key "
                "(its subject, unless ordering: in platypus.yaml names another field) "
                "decides the order of its events"
            )


def _describe(selection: Selection) -> dict[str, Any]:
    if isinstance(selection, FailureFilter):
        return {"filter": selection.describe()}
    return {"ids": list(selection)}


def _criteria(selection: Selection) -> dict[str, Any]:
    if isinstance(selection, FailureFilter):
        return selection.describe()
    return {"ids": list(selection)}


def _fields(where: FailureFilter) -> dict[str, Any]:
    return {name: getattr(where, name) for name in where.__dataclass_fields__}


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return f"{'entry' if len(ids) == 1 else 'entries'} {shown}{more}"


def _first(summary: str, errors: Sequence[dict[str, Any]]) -> str:
    if not errors:
        return summary
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{summary}: {first.get('path') or 'event'}: {first.get('message')}{more}"
