"""``platypus backfill SOURCE --since DATE [--until DATE]``: replay a poller's history.

The range is read through the poller's own query and mapping, page by page,
under a checkpoint of its own (``backfill:<name>``), with a progress bar. Stopped
(Ctrl-C) or crashed, the same command resumes where it stopped; ``--restart``
reads the range again from the start. Events already in the log are
de-duplicated by (source, id), so a backfill never doubles what the live poller
appended.

The backfill writes to the embedded log directly: run it while ``platypus run``
is stopped. With ``--kafka`` it produces to the events topic of a running Kafka
deployment instead (``--broker`` or ``PLATYPUS_BROKER`` or ``kafka.broker``),
keeping its checkpoint and a lease (one backfill of a source at a time) in the
deployment's shared database (``kafka.ledger_url``), so it resumes from any
machine; the workers process the events as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click

from platypus.clitools import (
    EXIT_INTERRUPTED,
    EXIT_UNUSABLE,
    echo_json,
    examples,
    json_option,
    progressbar,
)
from platypus.exceptions import ConfigurationError, PlatypusError

__all__ = ["backfill", "run_backfill"]


def _moment(value: str, *, end: bool = False) -> datetime:
    """A date (the start of that day, or its end with ``end``) or an ISO instant, in UTC."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (2024-06-01) or an instant") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def run_backfill(
    project: Path,
    source: str,
    since: datetime,
    until: datetime,
    *,
    data_dir: Path | None = None,
    restart: bool = False,
    echo: bool = True,
    kafka: bool = False,
    broker: str | None = None,
) -> dict[str, int]:
    """Backfill poller ``source`` of the project at ``project``; returns the counts.

    With ``kafka``, into the events topic of the Kafka deployment at ``broker``.
    """
    from platypus.config import load_config
    from platypus.ingress import Ingress
    from platypus.records import EVENTS_TOPIC
    from platypus.runtime.embedded import EventLog
    from platypus.schema_registry import SchemaRegistry
    from platypus.sources.pollers.poller import build_poller, open_adapter, poller_specs

    config = load_config(root=project)
    specs = poller_specs(config)
    if source not in specs:
        known = ", ".join(sorted(specs)) or "none configured"
        raise ConfigurationError(f"no poller {source!r} under pollers: in platypus.yaml ({known})")
    if since >= until:
        raise ConfigurationError("--since must be before --until")
    spec = specs[source]
    if kafka:
        return await _backfill_on_kafka(config, source, since, until, restart, echo, broker)
    log = EventLog(config.resolve(data_dir or config.data_dir), partitions=config.partitions)
    log.open()
    adapter = None
    try:
        adapter = await open_adapter(config, source, spec.connection)
        ingress = Ingress(
            log, SchemaRegistry.default(), config.ingress, EVENTS_TOPIC, keys=config.ordering
        )
        poller = build_poller(source, spec, adapter, ingress, log)
        with _progress(source, echo) as progress:
            result = await poller.backfill(since, until, restart=restart, progress=progress)
    finally:
        if adapter is not None:
            await adapter.close()
        log.close()
    return _counts(result)


async def _backfill_on_kafka(
    config: Any,
    source: str,
    since: datetime,
    until: datetime,
    restart: bool,
    echo: bool,
    broker: str | None,
) -> dict[str, int]:
    from platypus.runtime.kafka import backfill_on_kafka, settings_for

    settings = settings_for(config, broker)
    with _progress(source, echo) as progress:
        result = await backfill_on_kafka(
            config, settings, source, since, until, restart=restart, progress=progress
        )
    return _counts(result)


@contextlib.contextmanager
def _progress(source: str, echo: bool) -> Iterator[Callable[[object], None]]:
    scale = 1000
    with progressbar(
        length=scale, label=f"backfill {source}", file=None if echo else io.StringIO()
    ) as bar:
        done = [0]

        def progress(page: object) -> None:
            step = int(getattr(page, "progress", 1.0) * scale)
            if step > done[0]:
                bar.update(step - done[0])
                done[0] = step

        yield progress


def _counts(result: Any) -> dict[str, int]:
    return {
        "pages": result.pages,
        "records": result.records,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "ignored": result.ignored,
        "rejected": result.rejected,
    }


@examples(
    "platypus backfill crm --since 2024-06-01",
    "platypus backfill hr --since 2024-06-01 --until 2024-06-30 --restart --json",
    "platypus backfill crm --since 2024-06-01 --kafka --broker kafka://kafka-1:9092",
)
@click.command("backfill")
@click.argument("source")
@click.option("--since", required=True, help="Start: a date (2024-06-01) or an ISO instant.")
@click.option("--until", default=None, help="End (default: now); a date means its end.")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Project folder holding platypus.yaml.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Event log folder (default: data_dir of platypus.yaml).",
)
@click.option("--restart", is_flag=True, help="Read the range again from its start.")
@click.option(
    "--kafka",
    is_flag=True,
    help="Produce to the events topic of a running Kafka deployment (not the embedded log).",
)
@click.option(
    "--broker",
    default=None,
    help="With --kafka: the broker, kafka://host:9092 (default: PLATYPUS_BROKER, kafka.broker).",
)
@json_option
def backfill(
    source: str,
    since: str,
    until: str | None,
    project: Path,
    data_dir: Path | None,
    restart: bool,
    kafka: bool,
    broker: str | None,
    as_json: bool,
) -> None:
    """Replay poller SOURCE's records modified from --since to --until as events.

    Interrupted, the same command resumes where it stopped.
    """
    from platypus.logging import configure_logging

    # Logs go to stderr (stdout is the result), and only what needs a look.
    configure_logging(level="warning")
    start = _moment(since)
    end = _moment(until, end=True) if until else datetime.now(UTC)
    try:
        counts = asyncio.run(
            run_backfill(
                project,
                source,
                start,
                end,
                data_dir=data_dir,
                restart=restart,
                kafka=kafka or broker is not None,
                broker=broker,
            )
        )
    except KeyboardInterrupt:
        click.echo("\ninterrupted: run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except PlatypusError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNUSABLE)
    if as_json:
        echo_json({"source": source, **counts})
        return
    click.echo(
        f"backfill {source}: {counts['records']} records in {counts['pages']} pages, "
        f"{counts['accepted']} events appended, {counts['duplicates']} already there, "
        f"{counts['ignored']} ignored, {counts['rejected']} refused"
    )
