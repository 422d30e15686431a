"""Running one event through its flows: the part every runtime shares.

The decisions come from `platypus.core`; this module adds what needs I/O and
time: calling adapters with the step's `RetryPolicy` (tenacity), asking the
`DeliveryLedger` what was already delivered, and building dead-letter records.
A runtime's consumer (`platypus.runtime.consumer`) hands it records and gets
back, per record, the outcomes and deliveries to settle; it owns partitions,
keys and offsets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from pydantic import BaseModel

from platypus import core
from platypus._frozen import quick_init
from platypus.adapter import Adapter, Request
from platypus.deadletter import DeadLetter, dead_letter
from platypus.envelope import stored_form
from platypus.exceptions import EventValidationError, FieldError, JsonTextError
from platypus.flow.model import FlowSpec, OnError, StepSpec
from platypus.jsontext import dumps, loads
from platypus.logging import context_var, debug_enabled, redaction_scope
from platypus.records import (
    EVENT_ID_HEADER,
    FLOW_DELIVERED,
    VALIDATED_HEADER,
    Delivery,
    Record,
)
from platypus.redaction import personal_values, scrub_data
from platypus.retry import RetryPolicy
from platypus.runtime.base import DeliveryLedger
from platypus.runtime.codec import decode_record, read_record
from platypus.runtime.connections import Connections
from platypus.runtime.limits import ConnectionLimit, Slots
from platypus.schema_registry import SchemaRegistry
from platypus.validated import proven

__all__ = [
    "EventResult",
    "FlowOutcome",
    "ProcessingObserver",
    "Processor",
    "record_event_id",
]

_log = structlog.get_logger("platypus.runtime")
# A strict read of a record (`read_record`): the event and its canonical bytes, or why not.
_Read = tuple[dict[str, Any], bytes] | JsonTextError | EventValidationError
# What every log line of an event carries (structlog's contextvars), set directly:
# bind_contextvars builds a mapping of names and tokens per call, ~1 us each.
_EVENT_ID, _EVENT_TYPE = context_var("event_id"), context_var("event_type")
_FLOW, _STEP = context_var("flow"), context_var("step")


@quick_init  # one per flow an event runs (platypus._frozen)
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
    deliveries: list[Delivery] = field(default_factory=list)
    """Steps delivered that the ledger has not recorded yet: settled with the outcomes."""


class ProcessingObserver(Protocol):
    """Told about the events of every settlement, for metrics; must be quick and never raise."""

    def settled(self, done: Sequence[tuple[EventResult, float]]) -> None:
        """Each event's outcomes, and how long processing it took, in seconds.

        Called once per settlement once it is durable, not per event: an
        observer adds up what it counts over the lot.
        """
        ...


def record_event_id(record: Record) -> str:
    """The id of the event in ``record``: from the ingress's header, else from the value."""
    found = record.header(EVENT_ID_HEADER)
    if found is not None:
        return found
    event, _ = decode_record(record.value, record.headers)
    return str(event.get("id", "")) if event is not None else ""


class Processor:
    """Runs events through the flows that consume them.

    Steps the ledger says were delivered are not sent again. The ledger is read
    once per batch (`prepare`) and what this processor delivers meanwhile is
    remembered in memory, so a second copy of an event (a replay, a producer's
    retry) sees the first copy's deliveries without another read.
    """

    def __init__(
        self,
        flows: Sequence[FlowSpec],
        schemas: SchemaRegistry,
        connections: Connections,
        *,
        retry: RetryPolicy,
        concurrency: int,
        params: Mapping[tuple[str, str], Mapping[str, Any]],
        ledger: DeliveryLedger,
    ) -> None:
        self.flows = list(flows)
        self.schemas = schemas
        self.connections = connections
        self.retry = retry
        self.ledger = ledger
        self._slots = Slots(concurrency)
        self._params = params
        self._stopping = asyncio.Event()
        self._routes: dict[str, list[FlowSpec]] = {}
        self._policies: dict[tuple[str, str], RetryPolicy] = {}
        self._plans: dict[tuple[str, str], _StepPlan] = {}
        self._flow_plans: dict[str, _FlowPlan] = {}
        # Deliveries of events being processed, by event id: (flow, step) -> result,
        # with how many records of that event hold the entry.
        self._delivered: dict[str, dict[tuple[str, str], Any]] = {}
        self._holds: dict[str, int] = {}
        # A record without the ingress's id header is read strictly once, for its id
        # (`prepare`), and that read is the one `_read` validates: reading it again
        # for `process`'s id and for `_read` cost two more strict parses and
        # re-encodings an event (~12 us). By id(record), the record kept so that
        # the id is not reused; an entry is taken by `_read`, else left by `process`.
        self._reads: dict[int, tuple[Record, _Read]] = {}

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

    async def prepare(self, records: Sequence[Record]) -> None:
        """Read, in one ledger call, what was delivered for the events of ``records``.

        Every prepared record must then be `process`\\ ed (which releases it).
        """
        ids = [self._event_id(record) for record in records]
        wanted = [i for i in dict.fromkeys(ids) if i not in self._delivered]
        found = await self.ledger.delivered(wanted) if wanted else {}
        for event_id in ids:
            self._delivered.setdefault(event_id, {})
            self._holds[event_id] = self._holds.get(event_id, 0) + 1
        for (event_id, flow, step), result in found.items():
            entry = self._delivered.get(event_id)
            if entry is not None:
                entry[(flow, step)] = result

    def _event_id(self, record: Record) -> str:
        """`record_event_id`, keeping the strict read of a record without the header."""
        found = record.header(EVENT_ID_HEADER)
        if found is not None:
            return found
        entry = self._reads.get(id(record))
        if entry is not None and entry[0] is record:
            read = entry[1]
        else:
            try:
                read = read_record(record.value, record.headers)
            except (JsonTextError, EventValidationError) as exc:
                read = exc
            self._reads[id(record)] = (record, read)
        return str(read[0].get("id", "")) if isinstance(read, tuple) else ""

    def _release(self, event_id: str) -> None:
        left = self._holds.get(event_id, 0) - 1
        if left > 0:
            self._holds[event_id] = left
        else:
            self._holds.pop(event_id, None)
            self._delivered.pop(event_id, None)

    async def process(self, record: Record, event: dict[str, Any] | None = None) -> EventResult:
        """Run the event in ``record`` through its flows.

        ``event`` is the event already decoded; by default it is read from the
        record (structured or binary mode). A record that this process's ingress
        validated (`platypus.validated`) is not validated again; any other is,
        whatever its headers say.
        """
        held = self._event_id(record)
        if held not in self._holds:
            await self.prepare([record])
        # One coroutine for the event and one per flow (`_run_flow`): each level of
        # `await` between the consumer and the adapter costs a frame and a send per
        # event, so reading the event and routing it are done here, in line.
        try:
            read = self._read(record, event)
            if isinstance(read, EventResult):
                return read
            delivered = self._delivered[held]
            event_id = str(read.get("id", ""))
            event_type = str(read.get("type", ""))
            values = _PersonalValues(read.get("data"), self.schemas.personal_paths(event_type))
            result = EventResult(event_id, event_type)
            flows = self._routes.get(event_type)
            if flows is None:
                flows = self.route(event_type)
            bound_id, bound_type = _EVENT_ID.set(event_id), _EVENT_TYPE.set(event_type)
            try:
                with redaction_scope(values):
                    if not flows:
                        detail = f"no flow consumes {event_type}"
                        result.outcomes.append(
                            FlowOutcome(flow="", status="filtered", detail=detail)
                        )
                        if debug_enabled():
                            _log.debug("event filtered", reason=detail)
                        return result
                    outcomes = result.outcomes
                    for flow in flows:
                        outcomes.append(
                            await self._run_flow(flow, record, read, delivered, values, result)
                        )
            finally:
                _EVENT_TYPE.reset(bound_type)
                _EVENT_ID.reset(bound_id)
            return result
        finally:
            key = id(record)
            entry = self._reads.get(key)
            if entry is not None and entry[0] is record:
                del self._reads[key]
            self._release(held)

    def _read(self, record: Record, event: dict[str, Any] | None) -> dict[str, Any] | EventResult:
        """The record's event as flows read it, or its dead letter if it is not a valid one.

        A record proven validated by this process is only parsed; any other is
        read strictly (`platypus.runtime.codec`) and validated, envelope and
        data, from its canonical bytes, as the ingress does.
        """
        if proven(record.header(VALIDATED_HEADER), record.value):
            trusted: dict[str, Any] = loads(record.value) if event is None else event
            return trusted
        parsed: dict[str, Any] | None = None
        try:
            if event is None:
                # Taken, not shared: validation converts lenient fields in place.
                entry = self._reads.pop(id(record), None)
                if entry is None or entry[0] is not record:
                    parsed, value = read_record(record.value, record.headers)
                elif isinstance(entry[1], tuple):
                    parsed, value = entry[1]
                else:
                    raise entry[1]
            else:
                parsed = stored_form(dict(event))
                value = dumps(parsed)
            self.schemas.check_event(parsed, value)
        except JsonTextError as exc:
            return self.unreadable(record, f"the record is not a JSON event: {exc}")
        except EventValidationError as exc:
            return self.unreadable(record, str(exc), exc.errors, parsed)
        return parsed  # as validated: lenient fields hold their converted values

    def unreadable(
        self,
        record: Record,
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
            record,
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
        record: Record,
        event: Mapping[str, Any],
        delivered: dict[tuple[str, str], Any],
        values: _PersonalValues,
        result: EventResult,
    ) -> FlowOutcome:
        plan = self._flow_plans.get(flow.name)
        if plan is None or plan.flow is not flow:
            plan = self._flow_plans[flow.name] = _FlowPlan.of(flow)
        bound = _FLOW.set(flow.name)
        try:
            event_id = result.event_id
            if delivered.get(plan.delivered) == flow.version:
                # This flow, as it is now, delivered the event before (a replay of an
                # event another flow failed, a restart): nothing to send again.
                if debug_enabled():
                    _log.debug("flow already delivered, not run again")
                return FlowOutcome(flow.name, "delivered", flow.version, detail="delivered before")
            results: dict[str, Any] = {}
            # Without a condition there is nothing to evaluate: no context to build.
            decision = (
                core.decide_flow(flow, core.event_context(event, results))
                if flow.when is not None
                else None
            )
            if isinstance(decision, core.Filtered):
                if debug_enabled():
                    _log.debug("event filtered", reason=decision.reason)
                return FlowOutcome(flow.name, "filtered", flow.version, detail=decision.reason)
            if isinstance(decision, core.Failed):
                return self._failed(flow, None, record, event, decision, 1, time.time(), values)
            attempts_total = 0
            retried = False
            # Steps delivered so far: kept for a replay if a later step fails; once the
            # flow is delivered, one row says so for all of them.
            done_steps: list[Delivery] = []
            last = plan.last
            # Asked once per flow run, not per step: what the level is when the run starts.
            debug = debug_enabled()
            plans = plan.plans
            for index, (step, key) in enumerate(plan.steps):
                done = delivered.get(key, _NOT_DELIVERED)
                if done is not _NOT_DELIVERED:
                    # Delivered before (an earlier run, a replay): the vendor has it already.
                    results[step.name] = done
                    if debug:
                        _log.debug("step already delivered, not sent again", step=step.name)
                    continue
                step_plan = plans[index]
                if step_plan is None:
                    step_plan = plans[index] = self._plan(flow, step)
                planned = core.decide_step(
                    flow, step, core.event_context(event, results), step_plan.payload
                )
                if isinstance(planned, core.Filtered):
                    results[step.name] = None
                    if debug:
                        _log.debug("step skipped", step=step.name, reason=planned.reason)
                    continue
                adapter = step_plan.adapter
                if isinstance(planned, core.Deliver) and step_plan.input is not None:
                    problem = core.check_payload(step_plan.input, planned.payload, step)
                    if problem is not None:
                        planned = problem
                if isinstance(planned, core.Failed):
                    result.deliveries.extend(done_steps)
                    return self._failed(flow, step, record, event, planned, 1, time.time(), values)
                request = Request(
                    action=step_plan.action,
                    payload=planned.payload,
                    params=step_plan.params,
                    event_id=event_id,
                    event_type=result.event_type,
                    key=record.key,
                    flow=flow.name,
                    step=step.name,
                )
                bound_step = _STEP.set(step.name)
                try:
                    # The first attempt is made here, in line: most deliveries succeed at
                    # once, and the retry machinery (`_retry`) is only set up when one
                    # does not.
                    started = time.monotonic()
                    slots = self._slots
                    limit = step_plan.limit
                    try:
                        await slots.acquire()
                        try:
                            if limit.unlimited:
                                answer = await adapter.call(request)
                            else:
                                async with limit.slot():
                                    answer = await adapter.call(request)
                        finally:
                            slots.release()
                    except Exception as exc:  # noqa: BLE001 -- classified in `_retry`
                        delivery = await self._retry(
                            adapter, request, step_plan.policy, limit, exc, started
                        )
                    else:
                        delivery = _Delivery(1, answer)
                finally:
                    _STEP.reset(bound_step)
                attempts_total += delivery.attempts
                retried = retried or delivery.attempts > 1
                if delivery.failure is not None:
                    result.deliveries.extend(done_steps)
                    return self._failed(
                        flow,
                        step,
                        record,
                        event,
                        delivery.failure,
                        delivery.attempts,
                        delivery.first_failure,
                        values,
                        last=delivery.last_failure,
                        retried=retried,
                    )
                delivered[key] = delivery.result
                # A row for a guarded step, or for one a later step may fail after; the
                # last unguarded step's is never read (nothing after it can fail).
                if step_plan.guarded or step is not last:
                    done_row = Delivery(
                        event_id,
                        flow.name,
                        step.name,
                        flow.version,
                        delivery.result,
                        delivery.attempts,
                    )
                    if step_plan.guarded:
                        # The vendor would take this write twice: remember it before going
                        # on. A final step's answer is never read back (no later step uses
                        # it), so it is kept with the event's personal values masked; an
                        # earlier one stays whole, since a later step may read it after a
                        # restart (docs/operations.md, "Personal data").
                        if step is last:
                            done_row = done_row._replace(
                                result=scrub_data(delivery.result, values())
                            )
                        await self.ledger.record([done_row])
                    else:
                        # Sending it again is harmless: it is settled with the outcome.
                        done_steps.append(done_row)
                results[step.name] = delivery.result
                if debug:
                    _log.debug(
                        "step delivered", step=step.name, to=step.to, attempts=delivery.attempts
                    )
            delivered[plan.delivered] = flow.version
            result.deliveries.append(
                Delivery(
                    event_id, flow.name, FLOW_DELIVERED, flow.version, flow.version, attempts_total
                )
            )
            return FlowOutcome(
                flow.name, "delivered", flow.version, attempts=attempts_total, retried=retried
            )
        finally:
            _FLOW.reset(bound)

    def _policy(self, flow: FlowSpec, step: StepSpec) -> RetryPolicy:
        found = self._policies.get((flow.name, step.name))
        if found is None:
            found = self._policies[(flow.name, step.name)] = core.retry_policy(
                self.retry, flow, step
            )
        return found

    def _plan(self, flow: FlowSpec, step: StepSpec) -> _StepPlan:
        """What running ``step`` of ``flow`` needs that is the same for every event."""
        found = self._plans.get((flow.name, step.name))
        if found is None or found.step is not step:
            adapter = self.connections.get(step.connection)
            spec = adapter.actions.get(step.action)
            found = self._plans[(flow.name, step.name)] = _StepPlan(
                step=step,
                adapter=adapter,
                action=step.action,
                input=spec.input if spec is not None else None,
                guarded=spec is not None and spec.guarded,
                params=self._params.get((flow.name, step.name), step.params),
                policy=self._policy(flow, step),
                limit=self.connections.limit(adapter.connection),
                payload=core.renderer(step.payload),
            )
        return found

    async def _retry(
        self,
        adapter: Adapter,
        request: Request,
        policy: RetryPolicy,
        limit: ConnectionLimit,
        error: Exception,
        started: float,
    ) -> _Delivery:
        """After a first attempt (begun at ``started``) that raised ``error``: the
        attempts ``policy`` allows, until one succeeds or it gives up."""
        out = _Delivery(attempts=1)
        out.first_failure = out.last_failure = time.time()
        failure = core.classify(error)
        elapsed = time.monotonic() - started
        if not policy.should_retry(error, 1, elapsed):
            out.failure = failure
            return out
        _log.info("delivery failed, will retry", attempt=1, error=failure.message)
        await self._backoff(policy.delay(1, failure.retry_after))
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
        record: Record,
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
            record,
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


_NOT_DELIVERED = object()


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


@dataclass(frozen=True, slots=True)
class _StepPlan:
    """A step's adapter, action, checks, policy and payload renderer, found once."""

    step: StepSpec  # what it was made for: a flow reloaded under the same names gets its own
    adapter: Adapter
    action: str
    input: type[BaseModel] | None
    guarded: bool
    params: Mapping[str, Any]
    policy: RetryPolicy
    limit: ConnectionLimit
    payload: core.Renderer


@dataclass(frozen=True, slots=True)
class _FlowPlan:
    """A flow's steps with the keys their deliveries are remembered by, made once."""

    flow: FlowSpec  # what it was made for: a flow reloaded under the same name gets its own
    delivered: tuple[str, str]  # (flow, FLOW_DELIVERED)
    steps: tuple[tuple[StepSpec, tuple[str, str]], ...]  # each step and (flow, step)
    last: StepSpec
    plans: list[_StepPlan | None]  # each step's plan, made when the step first runs

    @classmethod
    def of(cls, flow: FlowSpec) -> _FlowPlan:
        steps = tuple((step, (flow.name, step.name)) for step in flow.steps)
        return cls(flow, (flow.name, FLOW_DELIVERED), steps, flow.steps[-1], [None] * len(steps))


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
