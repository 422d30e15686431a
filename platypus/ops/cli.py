"""``platypus dlq``: failed events from the command line, as the dashboard will offer them.

Every command brings the store up to date first, when it can: if no running
``platypus run`` owns the event log (`LogOwnerLock` is free), the command opens
the log itself, indexes new dead letters, appends replays and settles the
entries whose replays have an outcome. While ``platypus run`` is up, its indexer
does that, and ``replay`` only marks the entries for it to append.

On Kafka there is no event log here: ``platypus indexer`` holds the store's
indexer lease, and ``replay`` marks entries for it to produce to the events
topic (PLATYPUS_DLQ_STORE or ``failures_store`` names the shared store).
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from platypus.clitools import EXIT_UNUSABLE, echo_json, examples, json_option, progressbar
from platypus.config import ProjectConfig, load_config
from platypus.exceptions import PlatypusError
from platypus.ops.actions import Actor, InvalidReplayError, Operations
from platypus.ops.indexer import Indexer, LogOwnerLock
from platypus.ops.lease import INDEXER_LEASE
from platypus.ops.store import Failure, FailureFilter, FailureStatus, FailureStore
from platypus.schema_registry import SchemaRegistry

__all__ = ["dlq"]

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    options = [
        click.option(
            "--project",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path(),
            show_default=True,
            help="Project folder holding platypus.yaml.",
        ),
        click.option(
            "--store",
            "store_url",
            envvar="PLATYPUS_DLQ_STORE",
            help="Store URL, e.g. postgresql+psycopg://user@host/db "
            "(default: platypus.yaml's failures_store, else failures.db in the project's "
            "data_dir).",
        ),
        click.option(
            "--actor",
            default=lambda: os.environ.get("USER") or getpass.getuser(),
            help="Who acts, for the audit trail (default: $USER).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return _errors(func)


def _filters(func: F) -> F:
    options = [
        click.option("--flow", help="Flow name."),
        click.option("--step", help="Step name."),
        click.option("--type", "event_type", help="Event type, e.g. people.worker.hired.v1."),
        click.option("--error-class", help="Error class, e.g. platypus.exceptions.PermanentError."),
        click.option("--fingerprint", help="Failure group (the FP column)."),
        click.option(
            "--status",
            multiple=True,
            type=click.Choice([s.value for s in FailureStatus]),
            help="Status (repeat for several).",
        ),
        click.option("--key", "business_key", help="Business key (the event's subject)."),
        click.option("--search", "text", help="Text in the error message (case-insensitive)."),
        click.option("--since", help="Last failure at or after this ISO time (UTC if no zone)."),
        click.option("--until", help="Last failure before this ISO time."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidReplayError as exc:
            click.echo(f"error: {exc}", err=True)
            for error in exc.errors:
                click.echo(f"  {error.get('path') or 'event'}: {error.get('message')}", err=True)
            sys.exit(EXIT_UNUSABLE)
        except PlatypusError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNUSABLE)

    return wrapper  # type: ignore[return-value]


def _filter(
    *,
    flow: str | None,
    step: str | None,
    event_type: str | None,
    error_class: str | None,
    fingerprint: str | None,
    status: Sequence[str],
    business_key: str | None,
    text: str | None,
    since: str | None,
    until: str | None,
) -> FailureFilter:
    return FailureFilter(
        flow=flow,
        step=step,
        event_type=event_type,
        error_class=error_class,
        fingerprint=fingerprint,
        status=tuple(FailureStatus(s) for s in status),
        business_key=business_key,
        text=text,
        since=_time(since, "--since"),
        until=_time(until, "--until"),
    )


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time", param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _kafka_ledger(config: ProjectConfig) -> Any:
    """The Kafka workers' delivery ledger of the project, or None if it has none.

    ``kafka.ledger_url`` (PostgreSQL, shared by every worker), else the SQLite
    ledger a worker keeps in ``data_dir`` once it has run.
    """
    from platypus.runtime.kafka import SqliteLedger, SqlLedger, settings_for

    settings = settings_for(config)
    if settings.ledger_url:
        return SqlLedger(settings.ledger_url)
    path = config.resolve(config.data_dir) / "ledger.db"
    return SqliteLedger(path) if path.exists() else None


@dataclass
class _Session:
    config: ProjectConfig
    store: FailureStore
    ops: Operations
    log: Any  # the embedded EventLog, open when this process owns it
    owner_running: bool  # a running platypus holds the log (and appends queued replays)


@asynccontextmanager
async def _session(project: Path, store_url: str | None) -> AsyncIterator[_Session]:
    config = load_config(root=project)
    data_dir = config.resolve(config.data_dir)
    # --store (PLATYPUS_DLQ_STORE), else platypus.yaml's failures_store (the shared
    # store of a Kafka deployment), else the data_dir's own.
    store_url = store_url or config.failures_store
    if store_url:
        store = FailureStore(store_url)
        store.create()
    else:
        store = FailureStore.for_data_dir(data_dir)
    schemas = SchemaRegistry.default()
    lock = LogOwnerLock(data_dir)
    log: Any = None
    target = None
    try:
        owned = lock.acquire()
        if owned and (data_dir / "events.db").exists():
            # Nobody runs the log: this command opens it, as the app would.
            from platypus.runtime.embedded import EventLog, LogOutcomeFeed, LogReplayTarget

            log = EventLog(data_dir, partitions=config.partitions)
            log.open()
            target = LogReplayTarget(log)
            indexer = Indexer(
                log,
                store,
                target=target,
                flows=_flows(config),
                quiet=True,
                outcomes=LogOutcomeFeed(log),
            )
            try:
                await indexer.index_once()
            finally:
                indexer.close()
        ops = Operations(store, schemas, target=target, keys=config.ordering)
        # Another process indexes: the app owning the log, or `platypus indexer`
        # (Kafka), which holds the store's indexer lease.
        running = not owned or (target is None and _indexer_running(store))
        yield _Session(config, store, ops, log, owner_running=running)
    finally:
        if log is not None:
            log.close()
        lock.release()
        store.close()


def _indexer_running(store: FailureStore) -> bool:
    holder = store.lease_holder(INDEXER_LEASE)
    return holder is not None and holder["expires_at"] > datetime.now(UTC)


def _flows(config: ProjectConfig) -> list[Any]:
    from platypus.flow.loader import load_flows

    try:
        return list(load_flows(config.resolve(config.flows)))
    except (PlatypusError, OSError):
        return []  # only used to name each step's connection


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@examples(
    "platypus dlq list --flow orders --status open",
    "platypus dlq show 12",
    "platypus dlq replay --all-matching --fingerprint 9c1e0b7a41d2f385 --yes",
)
@click.group("dlq")
def dlq() -> None:
    """Failed events: list, show, replay, discard, and the audit trail."""


@examples(
    "platypus dlq list --flow orders --status open",
    'platypus dlq list --search "account" --since 2026-11-01 --json',
)
@dlq.command("list")
@_common
@_filters
@click.option("--limit", default=50, show_default=True, help="Most entries to show.")
@click.option("--offset", default=0, show_default=True, help="Entries to skip.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@json_option
def list_command(
    project: Path,
    store_url: str | None,
    actor: str,
    limit: int,
    offset: int,
    fmt: str,
    as_json: bool,
    **filters: Any,
) -> None:
    """List failed events, newest failure first."""
    fmt = "json" if as_json else fmt
    where = _filter(**filters)

    async def body() -> tuple[list[Failure], int]:
        async with _session(project, store_url) as session:
            found = session.store.search(where, limit=limit, offset=offset)
            return found, session.store.count(where)

    found, total = _run(body())
    if fmt == "json":
        click.echo(json.dumps({"total": total, "entries": [f.summary() for f in found]}, indent=2))
        return
    if not found:
        click.echo("No failed events match.")
        return
    rows = [
        (
            str(f.id),
            f.status.value,
            f.last_failure.strftime("%Y-%m-%d %H:%M:%S"),
            f"{f.flow}/{f.step}" if f.step else f.flow or "-",
            f.business_key,
            str(f.attempts),
            f.fingerprint,
            _shorten(f.error_message, 60),
        )
        for f in found
    ]
    header = ("ID", "STATUS", "LAST FAILURE (UTC)", "FLOW/STEP", "KEY", "ATT", "FP", "ERROR")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))
    click.echo(f"\n{len(found)} of {total} shown (--limit/--offset for more).")


@examples("platypus dlq show 12", "platypus dlq show 12 --reveal", "platypus dlq show 12 --json")
@dlq.command("show")
@click.argument("failure_id", type=int)
@_common
@click.option("--reveal", is_flag=True, help="Show personal data unmasked (audited).")
@json_option
def show_command(
    failure_id: int, project: Path, store_url: str | None, actor: str, reveal: bool, as_json: bool
) -> None:
    """Show one failed event with its headers; personal data masked unless --reveal."""

    async def body() -> dict[str, Any]:
        async with _session(project, store_url) as session:
            return session.ops.show(failure_id, Actor.operator(actor), reveal=reveal)

    shown = _run(body())
    if as_json:
        echo_json(shown)
    else:
        click.echo(_render_entry(shown))


@examples(
    "platypus dlq to-test 12",
    "platypus dlq to-test 12 --flow-dir flows && platypus flows test",
)
@dlq.command("to-test")
@click.argument("failure_id", type=int)
@_common
@click.option(
    "--flow-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding the flow (default: the project's flows).",
)
@json_option
def to_test_command(
    failure_id: int,
    project: Path,
    store_url: str | None,
    actor: str,
    flow_dir: Path | None,
    as_json: bool,
) -> None:
    """Turn failed event ID into a case of its flow's .test.yaml, personal data replaced.

    The case holds the event, the vendor answers recorded for the steps before
    the failure, and the outcome: a vendor's refusal is expected again (the case
    passes); a failure of the flow itself is expected to be fixed (the case fails
    until the flow delivers the event). Run it with `platypus flows test`.
    """
    from platypus.flow.loader import load_flow
    from platypus.ops.totest import ToTestError, add_case, case_for_failure, find_flow_file

    async def body() -> Any:
        async with _session(project, store_url) as session:
            failure = session.ops.get(failure_id)
            if not failure.flow:
                raise ToTestError(
                    f"failed event {failure_id} was refused before any flow ran "
                    f"({failure.error_message}): there is no flow to test"
                )
            folder = flow_dir or session.config.resolve(session.config.flows)
            flow_file = find_flow_file(failure.flow, folder)
            flow = load_flow(flow_file)
            # The embedded log when this command opened it; else the Kafka workers'
            # ledger, which they share with any reader; None when a running embedded
            # platypus holds its log.
            kafka_ledger = _kafka_ledger(session.config) if session.log is None else None
            ledger = session.log if session.log is not None else kafka_ledger
            try:
                case = await case_for_failure(
                    failure, flow, schemas=SchemaRegistry.default(), ledger=ledger
                )
            finally:
                if kafka_ledger is not None:
                    kafka_ledger.close()
            added = add_case(flow_file, case, schemas=SchemaRegistry.default())
            session.store.audit(actor, "to-test", {"ids": [failure_id]}, 1)
            return added, ledger is not None

    added, read_ledger = _run(body())
    where = f"{added.test_file}:{added.line}"
    if as_json:
        echo_json(
            {
                "test_file": str(added.test_file),
                "line": added.line,
                "name": added.name,
                "expects": added.expects,
            }
        )
        return
    click.echo(f"added case {added.name!r} at {where}")
    if not read_ledger:
        click.echo(
            "note: platypus is running and holds the log: earlier steps' answers were not "
            "read; add them under results: if the flow reads them"
        )
    if added.expects == "delivered":
        click.echo(
            "it expects the event to be delivered, so it fails until the flow is fixed: "
            f"platypus flows test {added.test_file}"
        )
        click.echo(
            "the failing step and those after it never got an answer: in the test they "
            "answer {}; give their answers under results: if later steps read them"
        )
    else:
        click.echo(
            "it expects the vendor's refusal to dead-letter the event again: "
            f"platypus flows test {added.test_file}"
        )


@examples(
    "platypus dlq replay 12",
    "platypus dlq replay --all-matching --fingerprint 9c1e0b7a41d2f385 --yes",
    "platypus dlq replay 12 --edit fixed-event.json",
)
@dlq.command("replay")
@click.argument("ids", nargs=-1, type=int)
@_common
@click.option("--all-matching", is_flag=True, help="Replay every entry matching the filters.")
@_filters
@click.option(
    "--edit",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay one entry with this edited event (JSON); validated first.",
)
@click.option("--yes", is_flag=True, help="Do not ask before a bulk replay.")
@click.option(
    "--wait",
    default=30.0,
    show_default=True,
    help="While platypus run is up: seconds to wait for it to take the replays.",
)
def replay_command(
    ids: tuple[int, ...],
    project: Path,
    store_url: str | None,
    actor: str,
    all_matching: bool,
    edit: Path | None,
    yes: bool,
    wait: float,
    **filters: Any,
) -> None:
    """Replay failed events: IDs, or --all-matching the filters (open ones by default).

    Each event is appended again with its key, in the order the events were first
    read, and its entry is `replaying` until the replay is delivered.
    """
    selection = _selection(ids, all_matching, filters)
    payload = edit.read_bytes() if edit is not None else None

    async def body() -> None:
        async with _session(project, store_url) as session:
            size = _size(session, selection)
            if all_matching and not yes and size > 1:
                click.confirm(f"Replay {size} failed events?", abort=True)
            who = Actor.operator(actor)
            with progressbar(length=size, label="Replaying") as bar:
                report = await session.ops.replay(
                    selection, who, payload=payload, progress=bar.update
                )
                if report.queued and session.owner_running:
                    await _wait_for_owner(session.store, report.ids, bar, wait)
            if report.job and len(report.ids) > 1:
                click.echo(f"bulk-replay job {report.job} (its progress: /ops/jobs/{report.job})")
            if report.queued and not session.owner_running:
                click.echo(
                    f"{len(report.ids)} marked for replay; no indexer is running (platypus run, "
                    "or platypus indexer on Kafka), so they are sent when one starts."
                )
            elif report.queued:
                left = session.store.undispatched(report.ids)
                taken = len(report.ids) - left
                click.echo(
                    f"{len(report.ids)} marked for replay; the running indexer took {taken}."
                    + (f" {left} are still waiting for it." if left else "")
                )
            else:
                click.echo(
                    f"{len(report.ids)} replayed: appended to the events topic; "
                    "they run when `platypus run` does."
                )

    _run(body())


async def _wait_for_owner(store: FailureStore, ids: Sequence[int], bar: Any, wait: float) -> None:
    deadline = time.monotonic() + wait
    taken = 0
    while time.monotonic() < deadline:
        now = len(ids) - store.undispatched(ids)
        if now > taken:
            bar.update(now - taken)
            taken = now
        if taken >= len(ids):
            return
        await asyncio.sleep(0.2)


@examples(
    'platypus dlq discard 13 14 --reason "test orders from the sandbox"',
    'platypus dlq discard --all-matching --flow orders --reason "cancelled deals" --yes',
)
@dlq.command("discard")
@click.argument("ids", nargs=-1, type=int)
@_common
@click.option("--all-matching", is_flag=True, help="Discard every open entry matching the filters.")
@_filters
@click.option("--reason", required=True, help="Why: kept in the entry and the audit trail.")
@click.option("--yes", is_flag=True, help="Do not ask before a bulk discard.")
def discard_command(
    ids: tuple[int, ...],
    project: Path,
    store_url: str | None,
    actor: str,
    all_matching: bool,
    reason: str,
    yes: bool,
    **filters: Any,
) -> None:
    """Discard failed events (IDs, or --all-matching the filters), saying why."""
    selection = _selection(ids, all_matching, filters)

    async def body() -> list[int]:
        async with _session(project, store_url) as session:
            size = _size(session, selection)
            if all_matching and not yes and size > 1:
                click.confirm(f"Discard {size} failed events?", abort=True)
            return session.ops.discard(selection, Actor.operator(actor), reason=reason)

    done = _run(body())
    click.echo(f"{len(done)} discarded.")


@examples("platypus dlq audit", "platypus dlq audit --limit 200 --json")
@dlq.command("audit")
@_common
@click.option("--limit", default=50, show_default=True, help="Most rows to show.")
@click.option("--offset", default=0, show_default=True, help="Rows to skip.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@json_option
def audit_command(
    project: Path,
    store_url: str | None,
    actor: str,
    limit: int,
    offset: int,
    fmt: str,
    as_json: bool,
) -> None:
    """The audit trail: who did what to failed events, newest first."""
    fmt = "json" if as_json else fmt

    async def body() -> list[Any]:
        async with _session(project, store_url) as session:
            return session.store.audit_log(limit=limit, offset=offset)

    entries = _run(body())
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    for entry in entries:
        detail = json.dumps(entry.detail, separators=(",", ":"))
        click.echo(
            f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor}  {entry.action}  "
            f"{entry.count}  {_shorten(detail, 100)}"
        )


@examples(
    "platypus dlq history 6f1c2a90-0d7e-4d55-9a0e-6a1d7f0c9b11",
    "platypus dlq history --key ACME-42 --json",
)
@dlq.command("history")
@click.argument("event_id", required=False)
@_common
@click.option("--key", "business_key", help="Every event of this ordering key instead.")
@click.option("--flow", help="Only this flow.")
@click.option("--status", help="Only this outcome (delivered, filtered, dead_lettered, ...).")
@click.option("--limit", default=200, show_default=True, help="Most outcomes to show.")
@json_option
def history_command(
    event_id: str | None,
    project: Path,
    store_url: str | None,
    actor: str,
    business_key: str | None,
    flow: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """What happened to an event: every outcome the store keeps, successes included.

    Filled from the Kafka outcomes topic by `platypus indexer`; oldest first.
    """
    if event_id is None and business_key is None:
        raise click.UsageError("give an EVENT_ID or --key")

    async def body() -> list[Any]:
        async with _session(project, store_url) as session:
            return session.store.outcome_history(
                event_id=event_id,
                business_key=business_key,
                flow=flow,
                status=status,
                limit=limit,
            )

    found = _run(body())
    if as_json:
        echo_json({"outcomes": [o.to_dict() for o in found]})
        return
    if not found:
        click.echo("No outcomes kept for that event (yet).")
        return
    from platypus.ops.web.views import describe_outcome

    for outcome in found:
        when = f"{outcome.settled_at:%Y-%m-%d %H:%M:%S}"
        click.echo(f"{when}  {outcome.event_id}  {describe_outcome(outcome)}")


def _selection(
    ids: Sequence[int], all_matching: bool, filters: dict[str, Any]
) -> Sequence[int] | FailureFilter:
    given = any(v for v in filters.values())
    if ids and (all_matching or given):
        raise click.UsageError("give IDs or --all-matching with filters, not both")
    if ids:
        return list(ids)
    if not all_matching:
        raise click.UsageError("give the IDs to act on, or --all-matching with filters")
    return _filter(**filters)


def _size(session: _Session, selection: Sequence[int] | FailureFilter) -> int:
    if isinstance(selection, FailureFilter):
        where = selection
        if not where.status:
            where = FailureFilter(**{**_fields(where), "status": (FailureStatus.OPEN,)})
        return session.store.count(where)
    return len(selection)


def _fields(where: FailureFilter) -> dict[str, Any]:
    return {name: getattr(where, name) for name in where.__dataclass_fields__}


def _render_entry(entry: dict[str, Any]) -> str:
    """One entry of ``dlq show`` for a person: what failed, where, why, then the event."""
    step = f"{entry.get('flow')}/{entry.get('step')}" if entry.get("step") else entry.get("flow")
    source = entry.get("source") or {}
    lines = [
        f"failure {entry.get('id')}  {entry.get('status')}  {step or '-'}",
        f"  event        {entry.get('event_id')} ({entry.get('event_type')})",
        f"  key          {entry.get('business_key')}",
        f"  error        {entry.get('error_class')}",
        f"               {entry.get('error_message')}",
        f"  attempts     {entry.get('attempts')}"
        f" (first {entry.get('first_failure')}, last {entry.get('last_failure')})",
        f"  read from    {source.get('topic')} partition {source.get('partition')}"
        f" offset {source.get('offset')}",
        f"  fingerprint  {entry.get('fingerprint')}",
    ]
    for error in entry.get("errors") or []:
        lines.append(f"  field        {error.get('path') or 'event'}: {error.get('message')}")
    lines.append("headers:")
    for name, value in sorted((entry.get("headers") or {}).items()):
        text = json.dumps(value) if not isinstance(value, str) else value
        first, *rest = text.splitlines() or [""]
        lines.append(f"  {name}: {first}")
        lines.extend(f"      {line}" for line in rest)
    masked = " (personal data masked; --reveal to show it)" if entry.get("masked") else ""
    lines.append(f"event{masked}:")
    event = json.dumps(entry.get("event"), indent=2, default=str, ensure_ascii=False)
    lines.extend(f"  {line}" for line in event.splitlines())
    return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
