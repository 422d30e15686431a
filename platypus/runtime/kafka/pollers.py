"""Pollers and backfills on Kafka: one active poller per source, checkpoints after the broker.

Every ``platypus worker`` of a deployment runs `run_pollers`, but each poller
runs in one worker at a time: the one holding its **lease** (``poller:<name>``)
in the shared database (`SqlCheckpoints`, the database of ``kafka.ledger_url``,
or a SQLite file in ``data_dir`` when every worker is on one machine). The
holder renews it every ``ttl / 4`` seconds; the others try to take it every
second, and get it when the holder gave it up, when it expired (``ttl``
seconds after the last renewal), or at once when the holder was a process on
the same host that is gone (killed with SIGKILL, say).

A poller's checkpoint is saved only after the broker acknowledged (``acks=all``)
the events of the page it follows (`KafkaCheckpointStore`), in a transaction
that also checks the lease is still this holder's: a worker that lost its lease
(paused, partitioned away) cannot move the checkpoint past what the new holder
does. A worker killed after producing a page and before saving its checkpoint
makes the next holder read that page again: its events are produced again with
the same ids (at least once), never skipped.

``platypus backfill --kafka`` (`backfill_on_kafka`) reads a range into the
events topic of a running deployment in the same way, under a lease and a
checkpoint of its own (``backfill:<name>``): interrupted, it resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from platypus.config import KafkaSettings, ProjectConfig
from platypus.exceptions import PlatypusError
from platypus.ops.dedupe import shared_dedupe
from platypus.ops.lease import process_gone, this_host
from platypus.records import EVENTS, NewRecord, Placement
from platypus.runtime.kafka.producer import KafkaEventSink
from platypus.sqlddl import create_tables

__all__ = [
    "KafkaCheckpointStore",
    "PollerLeaseLostError",
    "SqlCheckpoints",
    "backfill_on_kafka",
    "checkpoints_for",
    "run_pollers",
]

_log = structlog.get_logger("platypus.pollers")

DEFAULT_TTL = 10.0
"""Seconds a poller's lease stays held without being renewed."""


class PollerLeaseLostError(PlatypusError):
    """A checkpoint write under a lease that its holder no longer has: nothing was written."""


@dataclass(frozen=True, slots=True)
class Held:
    """A lease as held: its name, holder and token (which changes with every new holder)."""

    name: str
    holder: str
    token: int
    ttl: float


class SqlCheckpoints:
    """Checkpoints and leases of pollers and backfills, in a SQL database all workers reach."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        metadata = sa.MetaData()
        self._checkpoints = sa.Table(
            "platypus_checkpoints",
            metadata,
            sa.Column("name", sa.String(256), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
        )
        self._leases = sa.Table(
            "platypus_poller_leases",
            metadata,
            sa.Column("name", sa.String(256), primary_key=True),
            sa.Column("holder", sa.String(256), nullable=False),
            sa.Column("token", sa.Integer, nullable=False),
            sa.Column("host", sa.String(512), nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )
        create_tables(self.engine, metadata)

    # -- checkpoints --------------------------------------------------------------

    def load(self, name: str) -> str | None:
        """The value of checkpoint ``name``, None when never saved."""
        table = self._checkpoints
        with self.engine.connect() as conn:
            row = conn.execute(self._sa.select(table.c.value).where(table.c.name == name)).first()
        return None if row is None else str(row[0])

    def save(self, name: str, value: str, lease: Held | None = None) -> None:
        """Set checkpoint ``name``; with ``lease``, only while held (`PollerLeaseLostError`)."""
        table = self._checkpoints
        with self.engine.begin() as conn:
            if lease is not None:
                self._renew(conn, lease)
            conn.execute(table.delete().where(table.c.name == name))
            conn.execute(table.insert().values(name=name, value=value, updated_at=time.time()))

    def delete(self, name: str) -> None:
        """Forget checkpoint ``name``."""
        table = self._checkpoints
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.name == name))

    # -- leases -------------------------------------------------------------------

    def acquire(self, name: str, holder: str, ttl: float = DEFAULT_TTL) -> Held | None:
        """Take or renew lease ``name`` for ``holder``; None while another holds it."""
        sa, table = self._sa, self._leases
        now = time.time()
        values = {
            "holder": holder,
            "host": this_host(),
            "pid": os.getpid(),
            "expires_at": now + ttl,
        }
        try:
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(table).where(table.c.name == name).with_for_update()
                ).first()
                if row is None:
                    conn.execute(table.insert().values(name=name, token=1, **values))
                    return Held(name, holder, 1, ttl)
                if row.holder == holder:
                    token = int(row.token)
                elif row.expires_at < now or process_gone(row.host, int(row.pid)):
                    token = int(row.token) + 1
                else:
                    return None
                done = conn.execute(
                    table.update()
                    .where(table.c.name == name, table.c.token == row.token)
                    .values(token=token, **values)
                )
                return Held(name, holder, token, ttl) if done.rowcount == 1 else None
        except sa.exc.IntegrityError:
            return None  # another worker inserted the lease first

    def release(self, lease: Held) -> None:
        """Give ``lease`` up at once (a no-op if it moved on)."""
        table = self._leases
        with self.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(
                    table.c.name == lease.name,
                    table.c.holder == lease.holder,
                    table.c.token == lease.token,
                )
                .values(expires_at=0.0)
            )

    def holder(self, name: str) -> dict[str, Any] | None:
        """Who holds lease ``name`` (even if expired), or None."""
        table = self._leases
        with self.engine.connect() as conn:
            row = conn.execute(self._sa.select(table).where(table.c.name == name)).first()
        return None if row is None else dict(row._mapping)

    def _renew(self, conn: Any, lease: Held) -> None:
        table = self._leases
        done = conn.execute(
            table.update()
            .where(
                table.c.name == lease.name,
                table.c.holder == lease.holder,
                table.c.token == lease.token,
            )
            .values(expires_at=time.time() + lease.ttl)
        )
        if done.rowcount != 1:
            raise PollerLeaseLostError(
                f"the {lease.name!r} lease is no longer held by {lease.holder} (it expired or "
                "another worker took it over); the checkpoint was not moved"
            )

    def renew(self, lease: Held) -> None:
        """Extend ``lease``; `PollerLeaseLostError` when it moved on."""
        with self.engine.begin() as conn:
            self._renew(conn, lease)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()


def checkpoints_for(config: ProjectConfig, settings: KafkaSettings) -> SqlCheckpoints:
    """The deployment's shared checkpoint database: ``kafka.ledger_url``, or SQLite in data_dir."""
    if settings.ledger_url:
        return SqlCheckpoints(settings.ledger_url)
    folder = config.resolve(config.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return SqlCheckpoints(f"sqlite:///{folder / 'checkpoints.db'}")


class KafkaCheckpointStore:
    """The `CheckpointStore` of pollers on Kafka: events produced (``acks=all``) first,
    then the checkpoint saved under the lease."""

    def __init__(
        self, sink: KafkaEventSink, checkpoints: SqlCheckpoints, lease: Held | None = None
    ) -> None:
        self.sink = sink
        self.checkpoints = checkpoints
        self.lease = lease

    def load_checkpoint(self, name: str) -> str | None:
        """The value of checkpoint ``name``."""
        return self.checkpoints.load(name)

    async def save_checkpoint(self, name: str, value: str) -> None:
        """Set checkpoint ``name`` (under the lease)."""
        await asyncio.to_thread(self.checkpoints.save, name, value, self.lease)

    async def delete_checkpoint(self, name: str) -> None:
        """Forget checkpoint ``name``."""
        await asyncio.to_thread(self.checkpoints.delete, name)

    async def append_with_checkpoint(
        self, topic: str, records: Sequence[NewRecord], name: str, value: str
    ) -> list[Placement | None]:
        """Produce ``records`` and wait for the broker's acknowledgement, then save."""
        placed = await self.sink.append(topic, records)
        await self.save_checkpoint(name, value)
        return placed

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        """Record a refused body on the rejected topic."""
        return await self.sink.reject(reason, errors, body)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_pollers(
    config: ProjectConfig,
    settings: KafkaSettings,
    *,
    ttl: float = DEFAULT_TTL,
    standby: float = 1.0,
    stop: asyncio.Event | None = None,
    on_held: Callable[[str, bool], None] | None = None,
) -> None:
    """Run every poller of ``config`` whose lease this process gets, until cancelled.

    ``on_held(name, held)`` is told when this process starts or stops running one.
    """
    from platypus.ingress import Ingress
    from platypus.schema_registry import SchemaRegistry
    from platypus.sources.pollers.poller import build_poller, open_adapter, poller_specs

    specs = poller_specs(config)
    if not specs:
        return
    stop = stop or asyncio.Event()
    checkpoints = await asyncio.to_thread(checkpoints_for, config, settings)
    # Polled records read again (overlap, a page produced before a kill) are
    # claimed like posted events, so the topic holds each (source, id) once.
    sink = KafkaEventSink(settings, dedupe=shared_dedupe(config.failures_store))
    await sink.start()
    holder = _holder()

    async def one(name: str) -> None:
        spec = specs[name]
        lease_name = f"poller:{name}"
        while not stop.is_set():
            try:
                held = await asyncio.to_thread(checkpoints.acquire, lease_name, holder, ttl)
            except Exception:  # noqa: BLE001 -- the database may be back next time
                _log.warning("poller lease: the database did not answer", poller=name)
                held = None
            if held is None:
                await _wait(stop, standby)
                continue
            _log.info("this worker now runs the poller", poller=name, holder=holder)
            if on_held is not None:
                on_held(name, True)
            adapter = None
            try:
                adapter = await open_adapter(config, name, spec.connection)
                store = KafkaCheckpointStore(sink, checkpoints, held)
                ingress = Ingress(
                    sink,
                    SchemaRegistry.default(),
                    config.ingress,
                    settings.topic(EVENTS),
                    keys=config.ordering,
                )
                poller = build_poller(name, spec, adapter, ingress, store)
                lost = asyncio.Event()
                polling = asyncio.create_task(poller.run(lost), name=f"poller-{name}")
                renewing = asyncio.create_task(
                    _renew(checkpoints, held, lost, stop), name=f"poller-lease-{name}"
                )
                await asyncio.wait({polling, renewing}, return_when=asyncio.FIRST_COMPLETED)
                lost.set()
                renewing.cancel()
                await asyncio.gather(polling, renewing, return_exceptions=True)
            except Exception:  # noqa: BLE001 -- the next holder (maybe us) tries again
                _log.exception("poller stopped", poller=name)
            finally:
                if adapter is not None:
                    await adapter.close()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(checkpoints.release, held)
                if on_held is not None:
                    on_held(name, False)
            _log.info("this worker no longer runs the poller", poller=name)

    try:
        await asyncio.gather(*(one(name) for name in specs))
    finally:
        await sink.stop()
        checkpoints.close()


async def _renew(
    checkpoints: SqlCheckpoints, held: Held, lost: asyncio.Event, stop: asyncio.Event
) -> None:
    while not stop.is_set() and not lost.is_set():
        await _wait(stop, held.ttl / 4)
        try:
            await asyncio.to_thread(checkpoints.renew, held)
        except PollerLeaseLostError:
            _log.error("poller lease lost; stopping the poller here", lease=held.name)
            return
        except Exception:  # noqa: BLE001 -- a database hiccup: try again before it expires
            _log.warning("renewing the poller lease failed", lease=held.name)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def backfill_on_kafka(
    config: ProjectConfig,
    settings: KafkaSettings,
    source: str,
    since: Any,
    until: Any,
    *,
    restart: bool = False,
    progress: Callable[[Any], None] | None = None,
    ttl: float = DEFAULT_TTL,
) -> Any:
    """Backfill poller ``source`` into the events topic of a running Kafka deployment.

    Under the ``backfill:<source>`` lease (one backfill of a source at a time) and
    its checkpoint in the shared database, so an interrupted backfill resumes,
    from any machine. Returns the poller's `PollResult`.
    """
    from platypus.exceptions import ConfigurationError
    from platypus.ingress import Ingress
    from platypus.schema_registry import SchemaRegistry
    from platypus.sources.pollers.poller import build_poller, open_adapter, poller_specs

    spec = poller_specs(config)[source]
    checkpoints = await asyncio.to_thread(checkpoints_for, config, settings)
    lease_name = f"backfill:{source}"
    held = await asyncio.to_thread(checkpoints.acquire, lease_name, _holder(), ttl)
    if held is None:
        other = checkpoints.holder(lease_name) or {}
        checkpoints.close()
        raise ConfigurationError(
            f"a backfill of {source!r} is already running ({other.get('holder', '?')}); "
            "wait for it to finish, or stop it: the next run resumes where it stopped"
        )
    # Polled records read again (overlap, a page produced before a kill) are
    # claimed like posted events, so the topic holds each (source, id) once.
    sink = KafkaEventSink(settings, dedupe=shared_dedupe(config.failures_store))
    adapter = None
    stop, lost = asyncio.Event(), asyncio.Event()
    renewing = asyncio.create_task(_renew(checkpoints, held, lost, stop))
    try:
        await sink.start()
        adapter = await open_adapter(config, source, spec.connection)
        store = KafkaCheckpointStore(sink, checkpoints, held)
        ingress = Ingress(
            sink,
            SchemaRegistry.default(),
            config.ingress,
            settings.topic(EVENTS),
            keys=config.ordering,
        )
        poller = build_poller(source, spec, adapter, ingress, store)
        return await poller.backfill(since, until, restart=restart, progress=progress)
    finally:
        stop.set()
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        if adapter is not None:
            await adapter.close()
        await sink.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(checkpoints.release, held)
        checkpoints.close()
