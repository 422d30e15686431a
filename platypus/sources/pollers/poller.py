"""`Poller`: reads a vendor on a schedule and appends typed events, resuming where it stopped.

One poll reads one window of modification times, page by page:

1. The window starts ``overlap`` before the watermark (records committed late with
   an earlier modification time are caught) and ends now (Workday, NetSuite) or is
   open-ended (Salesforce, whose own clock sets the watermark).
2. Each page's records are normalised, mapped to events (the same `MappingSpec`
   machinery as webhooks) and validated by the ingress. The events and the
   checkpoint after that page are written in one transaction, so a crash between
   pages loses nothing and repeats nothing; a restart continues from the cursor.
3. Event ids come from the records, so what the overlap reads again is dropped by
   the log's (source, id) de-duplication.
4. A record whose event is invalid is recorded as rejected (``poller <name>: ...``)
   and skipped: one bad record does not stop the poller.
5. A `RetryableError` (rate limits, concurrency limits, timeouts) waits its
   ``retry_after``, or backs off exponentially up to ``max_backoff``, and tries the
   same page again.

A backfill (`Poller.backfill`) reads a fixed range the same way, under its own
checkpoint, and can be interrupted and resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from platypus.adapter import Adapter, AdapterRegistry
from platypus.config import ProjectConfig
from platypus.exceptions import ConfigurationError, PermanentError, RetryableError
from platypus.ingress import Ingress
from platypus.runtime.base import CheckpointStore
from platypus.sources.mapping import MappingSpec, PayloadMapping

from .checkpoint import Checkpoint, CheckpointSink, Window
from .config import PollerSpec
from .presets import DEFAULT_PRESET, POLLER_PRESETS
from .sources import Page, RecordSource, source_class

__all__ = [
    "PollResult",
    "Poller",
    "PollerGroup",
    "build_poller",
    "default_preset",
    "poller_specs",
    "start_pollers",
]

_log = structlog.get_logger("platypus.pollers")

Sleep = Callable[[float], Awaitable[None]]
Progress = Callable[[Page], None]


@dataclass(slots=True)
class PollResult:
    """What one poll or backfill did."""

    pages: int = 0
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0
    retries: int = 0


class Poller:
    """One configured poller; see the module docstring."""

    def __init__(
        self,
        name: str,
        spec: PollerSpec,
        source: RecordSource,
        ingress: Ingress,
        log: CheckpointStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.spec = spec
        self.source = source
        self.ingress = ingress
        self.log = log
        self.clock = clock
        self.sleep = sleep
        self.event_source = spec.event_source or f"/{spec.kind.value}/poller/{name}"
        self.mapping = PayloadMapping(_mapping(name, spec, type(source)))

    @property
    def checkpoint_name(self) -> str:
        return f"poller:{self.name}"

    def checkpoint(self) -> Checkpoint | None:
        """The live poller's saved position."""
        return Checkpoint.loads(self.log.load_checkpoint(self.checkpoint_name))

    # -- live polling -------------------------------------------------------------

    async def poll_once(self) -> PollResult:
        """Read one window to its end (finishing an interrupted one first)."""
        saved = self.checkpoint()
        overlap = timedelta(seconds=self.spec.overlap)
        now = self.clock()
        if saved is not None and saved.window is not None:
            window = Window(
                saved.window.since, saved.window.until, self.source.resume(saved.window.cursor)
            )
            watermark = saved.watermark or window.since
        else:
            watermark = (saved.watermark if saved else None) or self.spec.start_from or now
            until = now if self.source.needs_until else None
            window = Window(watermark - overlap, until)
        result = PollResult()

        def position(page: Page, cursor: dict[str, Any] | None, seen: datetime | None) -> str:
            if cursor is None:
                # The window is read: the watermark moves to its end (our clock) or to
                # the latest modification read (the vendor's clock).
                end = window.until if window.until is not None else seen
                return Checkpoint(max(watermark, end or watermark), None).dumps()
            return Checkpoint(watermark, Window(window.since, window.until, cursor)).dumps()

        await self._read(window, self.checkpoint_name, position, result)
        return result

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval`` until ``stop`` is set; errors are logged, never raised."""
        while not stop.is_set():
            try:
                result = await self.poll_once()
                _log.info("poll done", poller=self.name, **_fields(result))
            except PermanentError as exc:
                _log.error("poll failed", poller=self.name, error=exc.message)
            except Exception as exc:  # noqa: BLE001 -- the poller must outlive one bad poll
                _log.exception("poll crashed", poller=self.name, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.spec.interval)

    # -- backfill -----------------------------------------------------------------

    def backfill_name(self) -> str:
        return f"backfill:{self.name}"

    async def backfill(
        self,
        since: datetime,
        until: datetime,
        *,
        restart: bool = False,
        progress: Progress | None = None,
    ) -> PollResult:
        """Replay ``[since, until]`` under the backfill's own checkpoint.

        A backfill interrupted earlier for the same range resumes from its cursor;
        ``restart`` (or another range) starts over. The live poller's checkpoint is
        not touched.
        """
        name = self.backfill_name()
        saved = Checkpoint.loads(self.log.load_checkpoint(name))
        window = Window(since, until)
        same = (
            saved is not None
            and saved.window is not None
            and (saved.window.since, saved.window.until) == (since, until)
        )
        if same and not restart and saved is not None and saved.window is not None:
            if saved.done:
                return PollResult()
            window = Window(since, until, self.source.resume(saved.window.cursor))

        def position(page: Page, cursor: dict[str, Any] | None, seen: datetime | None) -> str:
            return Checkpoint(None, Window(since, until, cursor), done=cursor is None).dumps()

        result = PollResult()
        await self._read(window, name, position, result, progress)
        return result

    # -- the loop both share --------------------------------------------------------

    async def _read(
        self,
        window: Window,
        checkpoint: str,
        position: Callable[[Page, dict[str, Any] | None, datetime | None], str],
        result: PollResult,
        progress: Progress | None = None,
    ) -> None:
        cursor = window.cursor
        seen: datetime | None = None
        while True:
            page = await self._page(window, cursor, result)
            result.pages += 1
            result.records += len(page.records)
            if page.newest is not None:
                seen = page.newest if seen is None else max(seen, page.newest)
            await self._ingest(page, checkpoint, position(page, page.cursor, seen), result)
            if progress is not None:
                progress(page)
            if page.cursor is None:
                return
            cursor = page.cursor

    async def _page(
        self, window: Window, cursor: dict[str, Any] | None, result: PollResult
    ) -> Page:
        failures = 0
        while True:
            try:
                return await self.source.page(window.since, window.until, cursor)
            except RetryableError as exc:
                failures += 1
                result.retries += 1
                delay = exc.retry_after
                if delay is None:
                    delay = min(self.spec.max_backoff, 2.0 ** (failures - 1))
                delay = min(delay, self.spec.max_backoff)
                _log.warning(
                    "poll backing off",
                    poller=self.name,
                    seconds=round(delay, 3),
                    vendor_code=exc.vendor_code,
                    error=exc.message,
                )
                await self.sleep(delay)

    async def _ingest(self, page: Page, checkpoint: str, value: str, result: PollResult) -> None:
        events: list[dict[str, Any]] = []
        for record in page.records:
            delivery = self.mapping.apply(
                self.source.normalise(record), {}, self.event_source, where=f"poller {self.name}: "
            )
            events.extend(delivery.events)
            result.ignored += len(delivery.ignored)
        body = json.dumps(page.records, default=str).encode()
        sink = CheckpointSink(self.log, checkpoint, value)
        ingress = Ingress(
            sink,
            self.ingress.schemas,
            self.ingress.settings,
            self.ingress.topic,
            keys=self.ingress.keys,
        )
        context = f"poller {self.name}: "
        if events:
            answer = await ingress.accept_events(events, body, context=context)
            if answer.status == 422:
                bad = {int(e.get("index", 0)) for e in answer.body.get("errors", [])}
                result.rejected += len(bad)
                _log.warning(
                    "poll records refused",
                    poller=self.name,
                    refused=len(bad),
                    rejection_id=answer.body.get("rejection_id"),
                    reason=answer.body.get("error"),
                )
                events = [e for i, e in enumerate(events) if i not in bad]
                answer = (
                    await ingress.accept_events(events, body, context=context) if events else answer
                )
            if answer.status == 202:
                result.accepted += int(answer.body["accepted"])
                result.duplicates += int(answer.body["duplicates"])
        if not sink.saved:
            await self.log.save_checkpoint(checkpoint, value)


def default_preset(kind: str) -> str:
    """The preset a poller of ``kind`` uses when it names no mapping."""
    found = DEFAULT_PRESET.get(kind) or source_class(kind).default_preset
    if found is None:
        raise ConfigurationError(f"poller kind {kind!r} has no default mapping; give a mapping")
    return found


def _mapping(name: str, spec: PollerSpec, source: type[RecordSource]) -> MappingSpec:
    chosen = spec.mapping if spec.mapping is not None else default_preset(spec.kind.value)
    if isinstance(chosen, str):
        presets = {**POLLER_PRESETS, **source.presets}
        preset = presets.get(chosen)
        if preset is None:
            raise ConfigurationError(
                f"pollers.{name}.mapping: no preset {chosen!r} "
                f"(presets: {', '.join(sorted(presets))})"
            )
        return preset
    try:
        return MappingSpec.model_validate(chosen)
    except (ValidationError, ValueError) as exc:
        raise ConfigurationError(f"pollers.{name}.mapping: {exc}") from None


def _fields(result: PollResult) -> dict[str, int]:
    return {
        "pages": result.pages,
        "records": result.records,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "ignored": result.ignored,
        "rejected": result.rejected,
        "retries": result.retries,
    }


def poller_specs(config: ProjectConfig) -> dict[str, PollerSpec]:
    """The ``pollers:`` section, validated; a problem is a `ConfigurationError`."""
    raw: Mapping[str, Any] = getattr(config, "pollers", None) or {}
    specs: dict[str, PollerSpec] = {}
    for name, spec in raw.items():
        if isinstance(spec, PollerSpec):
            specs[name] = spec
            continue
        try:
            specs[name] = PollerSpec.model_validate(spec)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(poller)'}: {err['msg']}"
                for err in exc.errors(include_input=False)
            )
            raise ConfigurationError(f"pollers.{name}: {problems}") from None
    return specs


def build_poller(
    name: str,
    spec: PollerSpec,
    adapter: Adapter,
    ingress: Ingress,
    log: CheckpointStore,
    **options: Any,
) -> Poller:
    """The `Poller` for ``spec``, reading through the started ``adapter``."""
    source = source_class(spec.kind.value)(adapter, spec, name)
    return Poller(name, spec, source, ingress, log, **options)


class PollerGroup:
    """Running pollers and the connections they opened; `stop` ends both."""

    def __init__(self, pollers: list[Poller], adapters: list[Adapter]) -> None:
        self.pollers = pollers
        self._adapters = adapters
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.create_task(p.run(self._stop), name=f"poller-{p.name}") for p in pollers
        ]

    async def stop(self) -> None:
        """Let each poller finish the page in hand, then close the connections."""
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=30)
            except TimeoutError:
                task.cancel()
        for adapter in self._adapters:
            await adapter.close()


async def open_adapter(config: ProjectConfig, name: str, connection: str) -> Adapter:
    """Build and start the adapter of ``connection`` for poller ``name``."""
    if connection not in config.connections:
        raise ConfigurationError(
            f"pollers.{name}.connection: no connection {connection!r} under connections:"
        )
    spec = config.connection(connection)
    adapter = (
        AdapterRegistry.default()
        .get(spec.adapter)
        .from_config(spec.settings, connection=connection)
    )
    await adapter.start()
    return adapter


async def start_pollers(
    config: ProjectConfig,
    log: CheckpointStore,
    ingress: Ingress,
    *,
    adapters: Mapping[str, Adapter] | None = None,
) -> PollerGroup:
    """Start every poller of ``config`` on the embedded log; stop them with `PollerGroup.stop`.

    ``adapters`` are started connections by name to reuse; the others are opened
    here (and closed by `PollerGroup.stop`). A configuration problem, or a poller
    whose connection is of another kind, is a `ConfigurationError` before anything
    runs.
    """
    specs = poller_specs(config)
    opened: list[Adapter] = []
    pollers: list[Poller] = []
    try:
        for name, spec in specs.items():
            adapter = (adapters or {}).get(spec.connection)
            if adapter is None:
                adapter = await open_adapter(config, name, spec.connection)
                opened.append(adapter)
            if adapter.name != spec.kind.value:
                raise ConfigurationError(
                    f"pollers.{name}: kind {spec.kind.value!r} needs a {spec.kind.value} "
                    f"connection; {spec.connection!r} is {adapter.name!r}"
                )
            pollers.append(build_poller(name, spec, adapter, ingress, log))
    except BaseException:
        for adapter in opened:
            await adapter.close()
        raise
    return PollerGroup(pollers, opened)
