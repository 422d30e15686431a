"""Running one event through its flows: the part every runtime shares.

The decisions come from `platypus.core`; this module adds what needs I/O and
time: calling adapters with the step's `RetryPolicy` (tenacity), remembering
delivered steps, and building dead-letter records. A runtime hands it a record
and gets back the outcomes to write; it owns partitions, keys and offsets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from platypus import core
from platypus.adapter import Adapter, AdapterRegistry, Request
from platypus.config import ProjectConfig
from platypus.deadletter import DeadLetter, SourceRecord, dead_letter
from platypus.envelope import CloudEvent
from platypus.exceptions import ConfigurationError, EventValidationError, FieldError
from platypus.flow.model import FlowSpec, OnError, StepSpec
from platypus.ledger import DeliveryLedger, needs_ledger
from platypus.logging import redaction_scope
from platypus.redaction import personal_values
from platypus.retry import RetryPolicy
from platypus.runtime.limits import ConnectionLimit
from platypus.schema_registry import SchemaRegistry
from platypus.validation import field_errors

__all__ = [
    "EVENT_ID_HEADER",
    "VALIDATED_HEADER",
    "Connections",
    "EventResult",
    "FlowOutcome",
    "ProcessingObserver",
    "Processor",
]

EVENT_ID_HEADER = "platypus.event.id"
"""Set by the ingress: the event's id, so runtimes know it without parsing the value."""

VALIDATED_HEADER = "platypus.validated"
"""Set by the ingress on records whose data it validated against the schema of their type."""

_log = structlog.get_logger("platypus.runtime")

RecordDelivery = Callable[[str, str, str, str, Any, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    """How an event ended in one flow."""

    flow: str
    status: str  # delivered | filtered | dead_lettered | discarded
    flow_version: str = ""
    step: str = ""
    detail: str = ""
    attempts: int = 0
    retried: bool = False
    dead_letter: DeadLetter | None = None


@dataclass(slots=True)
class EventResult:
    """Everything one event produced: an outcome per flow (or one if none applied)."""

    event_id: str
    event_type: str
    outcomes: list[FlowOutcome] = field(default_factory=list)
    # Deliveries of final steps, to be written with the outcomes:
    # (event id, flow, step, flow version, result, attempts).
    deliveries: list[tuple[str, str, str, str, Any, int]] = field(default_factory=list)


class ProcessingObserver(Protocol):
    """Told about every processed event, for metrics; must be quick and never raise."""

    def processed(self, result: EventResult, seconds: float) -> None:
        """``result`` is the event's outcomes; ``seconds`` how long processing took."""
        ...


class Connections:
    """The adapter instances steps write to, one per connection, started once."""

    def __init__(
        self,
        config: ProjectConfig,
        registry: AdapterRegistry,
        overrides: Mapping[str, Adapter] | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        self._adapters: dict[str, Adapter] = dict(overrides or {})
        self._started: set[str] = set()
        self._limits: dict[str, ConnectionLimit] = {}

    def prepare(self, flows: Sequence[FlowSpec]) -> dict[tuple[str, str], Mapping[str, Any]]:
        """Build every connection the flows use and check each step's params.

        Returns the validated params by (flow, step). Raises `ConfigurationError`
        naming the flow and step for an unknown connection, adapter or action.
        """
        params: dict[tuple[str, str], Mapping[str, Any]] = {}
        for flow in flows:
            for step in flow.steps:
                where = f"{flow.source_file}: flow {flow.name!r}, step {step.name!r}"
                try:
                    adapter = self.get(step.connection)
                    params[(flow.name, step.name)] = adapter.params_for(step.action, step.params)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{where}: {exc}") from None
                except ValidationError as exc:
                    problems = "; ".join(
                        f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                        for e in exc.errors(include_input=False)
                    )
                    raise ConfigurationError(f"{where}: {problems}") from None
        return params

    def get(self, name: str) -> Adapter:
        """The adapter instance of connection ``name``."""
        adapter = self._adapters.get(name)
        if adapter is None:
            spec = self._config.connection(name)
            cls = self._registry.get(spec.adapter)
            adapter = cls.from_config(spec.settings, connection=name)
            self._adapters[name] = adapter
        return adapter

    def built(self) -> dict[str, Adapter]:
        """The adapter instances built so far, by connection name (for metrics)."""
        return dict(self._adapters)

    def limit(self, name: str) -> ConnectionLimit:
        """The concurrency and rate budget of connection ``name``, shared by all flows."""
        found = self._limits.get(name)
        if found is None:
            spec = self._config.connection(name)
            found = self._limits[name] = ConnectionLimit(spec.max_concurrency, spec.rate_limit)
        return found

    async def start(self) -> None:
        """Start every built connection (open clients, read secrets)."""
        for name, adapter in self._adapters.items():
            if name not in self._started:
                await adapter.start()
                self._started.add(name)

    async def close(self) -> None:
        """Close every started connection."""
        for name in list(self._started):
            await self._adapters[name].close()
            self._started.discard(name)


class Processor:
    """Runs events through the flows that consume them."""

    def __init__(
        self,
        flows: Sequence[FlowSpec],
        schemas: SchemaRegistry,
        connections: Connections,
        *,
        retry: RetryPolicy,
        concurrency: int,
        record_delivery: RecordDelivery,
        params: Mapping[tuple[str, str], Mapping[str, Any]],
        ledger: DeliveryLedger | None = None,
    ) -> None:
        self.flows = list(flows)
        self.schemas = schemas
        self.connections = connections
        self.retry = retry
        self._slots = asyncio.Semaphore(concurrency)
        self._record_delivery = record_delivery
        self._params = params
        self._stopping = asyncio.Event()
        self._ledger = ledger
        self._routes: dict[str, list[FlowSpec]] = {}
        self._policies: dict[tuple[str, str], RetryPolicy] = {}

    def stop(self) -> None:
        """Cut short every retry backoff: events waiting in one are left unfinished.

        Their offsets are not committed, so the next run picks them up again.
        """
        self._stopping.set()

    async def _backoff(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise asyncio.CancelledError

    def route(self, event_type: str) -> list[FlowSpec]:
        """The flows for ``event_type`` (cached)."""
        found = self._routes.get(event_type)
        if found is None:
            found = self._routes[event_type] = core.route(self.flows, event_type)
        return found

    async def process(
        self,
        source: SourceRecord,
        delivered: Mapping[tuple[str, str, str], Any],
        validated_type: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> EventResult:
        """Run the event in ``source`` through its flows.

        ``delivered`` holds steps already delivered in an earlier run
        ((event id, flow, step) -> result): they are not sent again.
        ``validated_type`` is the type the ingress already validated the data
        against; anything else (another producer, a changed type) is validated here.
        ``event`` is the event already decoded (from Kafka's binary mode, say);
        by default it is parsed from ``source.value``.
        """
        if event is None:
            try:
                event = json.loads(source.value)
                if not isinstance(event, dict):
                    raise TypeError("a CloudEvent is a JSON object")
            except (ValueError, TypeError) as exc:
                message = f"the stored record is not a JSON event: {exc}"
                return self.unreadable(source, message, ())
        event_id = str(event.get("id", ""))
        event_type = str(event.get("type", ""))
        if validated_type != event_type:
            problem = self._validate(event)
            if problem is not None:
                return self.unreadable(source, str(problem), problem.errors, event)
        values = _PersonalValues(event.get("data"), self.schemas.personal_paths(event_type))
        result = EventResult(event_id, event_type)
        flows = self.route(event_type)
        tokens = structlog.contextvars.bind_contextvars(event_id=event_id, event_type=event_type)
        try:
            with redaction_scope(values):
                if not flows:
                    detail = f"no flow consumes {event_type}"
                    result.outcomes.append(FlowOutcome(flow="", status="filtered", detail=detail))
                    _log.debug("event filtered", reason=detail)
                    return result
                for flow in flows:
                    outcome = await self._run_flow(flow, source, event, delivered, values, result)
                    result.outcomes.append(outcome)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
        return result

    def _validate(self, event: dict[str, Any]) -> EventValidationError | None:
        try:
            envelope = CloudEvent.model_validate(event)
        except ValidationError as exc:
            errors = field_errors(exc)
            return EventValidationError(
                f"event {event.get('id')!r} is not a valid CloudEvent", errors, str(event.get("id"))
            )
        try:
            self.schemas.validate(envelope)
        except EventValidationError as exc:
            return exc
        return None

    def unreadable(
        self,
        source: SourceRecord,
        message: str,
        errors: Sequence[FieldError] = (),
        event: Mapping[str, Any] | None = None,
    ) -> EventResult:
        """Dead-letter a record that is not a valid event, saying why (no flow runs)."""
        event = event or {}
        event_id, event_type = str(event.get("id", "")), str(event.get("type", ""))
        patterns = self.schemas.personal_paths(event_type) if event_type in self.schemas else ()
        values = personal_values(event.get("data"), patterns)
        failure = core.Failed(
            error_class="platypus.exceptions.EventValidationError",
            message=message,
            retryable=False,
            errors=tuple(errors),
        )
        now = datetime.now(UTC)
        letter = dead_letter(
            source,
            failure,
            flow="",
            flow_version="",
            step="",
            event_id=event_id,
            event_type=event_type,
            attempts=1,
            first_failure=now,
            last_failure=now,
            personal=values,
        )
        with redaction_scope(values):
            _log.warning("event dead-lettered", event_id=event_id, error=message)
        outcome = FlowOutcome(
            flow="",
            status="dead_lettered",
            detail=letter.header("__connect.errors.exception.message") or "",
            attempts=1,
            dead_letter=letter,
        )
        return EventResult(event_id, event_type, [outcome])

    async def _run_flow(
        self,
        flow: FlowSpec,
        source: SourceRecord,
        event: Mapping[str, Any],
        delivered: Mapping[tuple[str, str, str], Any],
        values: _PersonalValues,
        result: EventResult,
    ) -> FlowOutcome:
        tokens = structlog.contextvars.bind_contextvars(flow=flow.name)
        try:
            return await self._run_steps(flow, source, event, delivered, values, result)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _run_steps(
        self,
        flow: FlowSpec,
        source: SourceRecord,
        event: Mapping[str, Any],
        delivered: Mapping[tuple[str, str, str], Any],
        values: _PersonalValues,
        result: EventResult,
    ) -> FlowOutcome:
        event_id = result.event_id
        results: dict[str, Any] = {}
        decision = core.decide_flow(flow, core.event_context(event, results))
        if isinstance(decision, core.Filtered):
            _log.debug("event filtered", reason=decision.reason)
            return FlowOutcome(flow.name, "filtered", flow.version, detail=decision.reason)
        if isinstance(decision, core.Failed):
            return self._failed(flow, None, source, event, decision, 1, time.time(), values)
        attempts_total = 0
        retried = False
        last = flow.steps[-1]
        for step in flow.steps:
            done_key = (event_id, flow.name, step.name)
            if done_key in delivered:
                results[step.name] = delivered[done_key]
                continue
            planned = core.decide_step(flow, step, core.event_context(event, results))
            if isinstance(planned, core.Filtered):
                results[step.name] = None
                _log.debug("step skipped", step=step.name, reason=planned.reason)
                continue
            adapter = self.connections.get(step.connection)
            spec = adapter.actions.get(step.action)
            if isinstance(planned, core.Deliver):
                problem = core.check_payload(spec.input if spec else None, planned.payload, step)
                if problem is not None:
                    planned = problem
            if isinstance(planned, core.Failed):
                return self._failed(flow, step, source, event, planned, 1, time.time(), values)
            request = Request(
                action=step.action,
                payload=planned.payload,
                params=self._params.get((flow.name, step.name), step.params),
                event_id=event_id,
                event_type=result.event_type,
                key=source.key,
                flow=flow.name,
                step=step.name,
            )
            # Writes the vendor does not de-duplicate itself are guarded by the ledger.
            ledger = self._ledger if needs_ledger(spec) else None
            if ledger is not None:
                found, earlier = await ledger.get((event_id, flow.name, step.name))
                if found:
                    # Delivered before (a replay): the vendor has the record already.
                    results[step.name] = earlier
                    _log.info("step already delivered, not sent again", step=step.name)
                    continue
            tokens = structlog.contextvars.bind_contextvars(step=step.name)
            try:
                delivery = await self._deliver(adapter, request, self._policy(flow, step))
            finally:
                structlog.contextvars.reset_contextvars(**tokens)
            if ledger is not None and delivery.failure is None:
                await ledger.put((event_id, flow.name, step.name), delivery.result)
            attempts_total += delivery.attempts
            retried = retried or delivery.attempts > 1
            if delivery.failure is not None:
                return self._failed(
                    flow,
                    step,
                    source,
                    event,
                    delivery.failure,
                    delivery.attempts,
                    delivery.first_failure,
                    values,
                    last=delivery.last_failure,
                    retried=retried,
                )
            record = (
                event_id,
                flow.name,
                step.name,
                flow.version,
                delivery.result,
                delivery.attempts,
            )
            if step is last:
                # Written with the outcome, in one transaction: one write per event.
                result.deliveries.append(record)
            else:
                # Later steps may fail; a restart must know this one is done.
                await self._record_delivery(*record)
            results[step.name] = delivery.result
            _log.debug("step delivered", step=step.name, to=step.to, attempts=delivery.attempts)
        return FlowOutcome(
            flow.name, "delivered", flow.version, attempts=attempts_total, retried=retried
        )

    def _policy(self, flow: FlowSpec, step: StepSpec) -> RetryPolicy:
        found = self._policies.get((flow.name, step.name))
        if found is None:
            found = self._policies[(flow.name, step.name)] = core.retry_policy(
                self.retry, flow, step
            )
        return found

    async def _deliver(self, adapter: Adapter, request: Request, policy: RetryPolicy) -> _Delivery:
        out = _Delivery(attempts=1)
        started = time.monotonic()
        # The first attempt is made directly: most deliveries succeed at once, and
        # the retry machinery is only set up when one does not.
        limit = self.connections.limit(adapter.connection)
        try:
            async with self._slots, limit.slot():
                out.result = await adapter.call(request)
        except Exception as exc:  # noqa: BLE001 -- every failure is classified, none escapes
            out.first_failure = out.last_failure = time.time()
            failure = core.classify(exc)
            elapsed = time.monotonic() - started
            if not policy.should_retry(exc, 1, elapsed):
                out.failure = failure
                return out
            _log.info("delivery failed, will retry", attempt=1, error=failure.message)
            await self._backoff(policy.delay(1, failure.retry_after))
        else:
            return out
        try:
            retrying = policy.retrying(
                after_attempts=1,
                elapsed=time.monotonic() - started,
                sleep=self._backoff,
                before_sleep=_log_retry,
            )
            async for attempt in retrying:
                with attempt:
                    out.attempts += 1
                    try:
                        async with self._slots, limit.slot():
                            out.result = await adapter.call(_with_attempt(request, out.attempts))
                    except Exception:
                        out.last_failure = time.time()
                        raise
        except Exception as exc:  # noqa: BLE001 -- every failure is classified, none escapes
            out.failure = core.classify(exc)
        return out

    def _failed(
        self,
        flow: FlowSpec,
        step: StepSpec | None,
        source: SourceRecord,
        event: Mapping[str, Any],
        failure: core.Failed,
        attempts: int,
        first: float,
        values: _PersonalValues,
        *,
        last: float | None = None,
        retried: bool = False,
    ) -> FlowOutcome:
        step_name = step.name if step else ""
        policy = core.on_error(flow, step) if step else flow.on_error
        letter = dead_letter(
            source,
            failure,
            flow=flow.name,
            flow_version=flow.version,
            step=step_name,
            event_id=str(event.get("id", "")),
            event_type=str(event.get("type", "")),
            attempts=attempts,
            first_failure=datetime.fromtimestamp(first, UTC),
            last_failure=datetime.fromtimestamp(last or first, UTC),
            personal=values(),
            call=step.to if step else "",
            executing_class=_class_name(self.connections.get(step.connection)) if step else "",
        )
        detail = letter.header("__connect.errors.exception.message") or ""
        if policy is OnError.DISCARD:
            _log.warning("event discarded", step=step_name, error=detail, attempts=attempts)
            return FlowOutcome(
                flow.name, "discarded", flow.version, step_name, detail, attempts, retried
            )
        # An alert-worthy failure (refused credentials, say) will fail every event
        # of the connection until a person acts: log it at error level, marked.
        (_log.error if failure.alert else _log.warning)(
            "event dead-lettered",
            step=step_name,
            error_class=failure.error_class,
            error=detail,
            attempts=attempts,
            alert=failure.alert,
        )
        return FlowOutcome(
            flow.name,
            "dead_lettered",
            flow.version,
            step_name,
            detail,
            attempts,
            retried,
            dead_letter=letter,
        )


class _PersonalValues:
    """The event's personal-data values, looked for only when something needs them."""

    __slots__ = ("_data", "_found", "_patterns")

    def __init__(self, data: Any, patterns: frozenset[str]) -> None:
        self._data = data
        self._patterns = patterns
        self._found: frozenset[str] | None = None

    def __call__(self) -> frozenset[str]:
        if self._found is None:
            self._found = (
                frozenset(personal_values(self._data, self._patterns))
                if self._patterns
                else frozenset()
            )
        return self._found


@dataclass(slots=True)
class _Delivery:
    attempts: int = 0
    result: Any = None
    failure: core.Failed | None = None
    first_failure: float = 0.0
    last_failure: float = 0.0


def _with_attempt(request: Request, attempt: int) -> Request:
    return request if attempt == request.attempt else dataclasses.replace(request, attempt=attempt)


def _log_retry(state: Any) -> None:
    error = state.outcome.exception() if state.outcome else None
    _log.info(
        "delivery failed, will retry",
        attempt=state.attempt_number,
        wait_s=round(state.upcoming_sleep, 3),
        error=str(error),
    )


def _class_name(adapter: Adapter) -> str:
    cls = type(adapter)
    return f"{cls.__module__}.{cls.__qualname__}"
