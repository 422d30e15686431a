"""Prometheus metrics of a Platypus process, served at ``GET /metrics``.

Counted as events are settled (`Metrics.settled`, the runtime's
`platypus.runtime.processor.ProcessingObserver`, once per settlement):

==========================================  ==========================================
``platypus_events_consumed_total``          events read from the events topic, by type
``platypus_flow_outcomes_total``            events that finished a flow, by flow and
                                            outcome (delivered, filtered,
                                            dead_lettered, discarded)
``platypus_delivery_attempts_total``        adapter calls made, by flow
``platypus_retried_total``                  flow runs that needed more than one attempt
``platypus_event_processing_seconds``       histogram: read to durable outcome, per event
``platypus_alerts_sent_total``              failure alerts posted, by flow
==========================================  ==========================================

Read when scraped (`Metrics.refresh`):

==========================================  ==========================================
``platypus_failures``                       failed-event entries, by status
``platypus_dead_letters_open``              open entries (the dead letters waiting)
``platypus_consumer_lag``                   end offset minus committed offset, by partition
``platypus_consumer_running``               1 while the consumer runs
``platypus_adapter_metric``                 what adapters report through ``metrics()``
                                            (Salesforce: ``api_usage_used``, ...), by
                                            connection and name
==========================================  ==========================================

Every `Metrics` has its own registry, so several apps in one process (tests) do
not share counters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from platypus.ops.store import FailureStatus, FailureStore
from platypus.runtime.processor import EventResult

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_log = structlog.get_logger("platypus.ops")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The process's counters, gauges and histograms in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._consumed: dict[str, Callable[..., None]] = {}  # by event type
        self._outcomes: dict[tuple[str, str], Callable[..., None]] = {}  # by flow, status
        self._attempts: dict[str, Callable[..., None]] = {}  # by flow
        self._retried: dict[str, Callable[..., None]] = {}  # by flow
        r = self.registry
        self.consumed = Counter(
            "platypus_events_consumed",
            "Events read from the events topic, by event type.",
            ["event_type"],
            registry=r,
        )
        self.outcomes = Counter(
            "platypus_flow_outcomes",
            "Events that finished a flow, by flow and outcome.",
            ["flow", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "platypus_delivery_attempts",
            "Adapter calls made for events that finished a flow, by flow.",
            ["flow"],
            registry=r,
        )
        self.retried = Counter(
            "platypus_retried",
            "Flow runs that needed more than one attempt at a step, by flow.",
            ["flow"],
            registry=r,
        )
        self.latency = Histogram(
            "platypus_event_processing_seconds",
            "Time from reading an event to its outcomes being durable.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._observe = self.latency.observe
        self.alerts = Counter(
            "platypus_alerts_sent", "Failure alerts posted, by flow.", ["flow"], registry=r
        )
        self.failures = Gauge(
            "platypus_failures",
            "Failed-event entries in the store, by status.",
            ["status"],
            registry=r,
        )
        self.open_failures = Gauge(
            "platypus_dead_letters_open",
            "Open failed-event entries: dead letters waiting for a replay or a discard.",
            registry=r,
        )
        self.lag = Gauge(
            "platypus_consumer_lag",
            "Events appended but not yet committed (end offset - committed), by partition.",
            ["partition"],
            registry=r,
        )
        self.running = Gauge(
            "platypus_consumer_running", "1 while the event consumer runs.", registry=r
        )
        self.adapter = Gauge(
            "platypus_adapter_metric",
            "Figures adapters report through metrics(), by connection and name.",
            ["connection", "name"],
            registry=r,
        )

    # -- as events are processed ------------------------------------------------

    def settled(self, done: Sequence[tuple[EventResult, float]]) -> None:
        """Count the events of one settlement (the runtime's observer hook).

        Each event's latency is observed; the counters are added up over the
        settlement and each is increased once per label value: an increment costs
        about as much as an observation, and a settlement holds up to a thousand
        events of a few label values. The totals are those of counting one by one.
        """
        consumed: dict[str, int] = {}
        outcomes: dict[tuple[str, str], int] = {}
        attempts: dict[str, int] = {}
        retried: dict[str, int] = {}
        observe = self._observe
        for result, seconds in done:
            observe(seconds)
            consumed[result.event_type] = consumed.get(result.event_type, 0) + 1
            for outcome in result.outcomes:
                flow = outcome.flow
                key = (flow, outcome.status)
                outcomes[key] = outcomes.get(key, 0) + 1
                if outcome.attempts:
                    attempts[flow] = attempts.get(flow, 0) + outcome.attempts
                if outcome.retried:
                    retried[flow] = retried.get(flow, 0) + 1
        for event_type, count in consumed.items():
            inc = self._consumed.get(event_type)
            if inc is None:
                inc = self._consumed[event_type] = self._inc(
                    self.consumed, event_type or "(unknown)"
                )
            inc(count)
        for (flow, status), count in outcomes.items():
            inc = self._outcomes.get((flow, status))
            if inc is None:
                inc = self._outcomes[(flow, status)] = self._inc(
                    self.outcomes, flow or "(none)", status
                )
            inc(count)
        for flow, count in attempts.items():
            self._flow_inc(self._attempts, self.attempts, flow)(count)
        for flow, count in retried.items():
            self._flow_inc(self._retried, self.retried, flow)(count)

    # A child's `inc` is looked up once per label value, in a dict of its own
    # (`labels()` costs more than the increment itself).

    @staticmethod
    def _inc(metric: Any, *labels: str) -> Callable[..., None]:
        inc: Callable[..., None] = metric.labels(*labels).inc
        return inc

    def _flow_inc(
        self, found: dict[str, Callable[..., None]], metric: Any, flow: str
    ) -> Callable[..., None]:
        inc = found.get(flow)
        if inc is None:
            inc = found[flow] = self._inc(metric, flow or "(none)")
        return inc

    # -- when scraped -------------------------------------------------------------

    async def refresh(
        self,
        *,
        store: FailureStore | None = None,
        lag: Callable[[], Mapping[int, int]] | None = None,
        running: bool | None = None,
        adapters: Mapping[str, Any] | None = None,
    ) -> None:
        """Read the gauges that are only known by asking: store, log, adapters."""
        if store is not None:
            try:
                counts = await asyncio.to_thread(store.counts_by_status)
            except Exception:  # noqa: BLE001 -- a scrape must answer; /readyz says why
                _log.warning("metrics: the failed-event store did not answer", exc_info=True)
            else:
                for status, count in counts.items():
                    self.failures.labels(status.value).set(count)
                self.open_failures.set(counts.get(FailureStatus.OPEN, 0))
        if lag is not None:
            for partition, behind in lag().items():
                self.lag.labels(str(partition)).set(behind)
        if running is not None:
            self.running.set(1 if running else 0)
        for connection, adapter in (adapters or {}).items():
            report = getattr(adapter, "metrics", None)
            if not callable(report):
                continue
            try:
                figures = report()
            except Exception:  # noqa: BLE001 -- one adapter's report must not break a scrape
                _log.warning("metrics: adapter metrics() failed", connection=connection)
                continue
            for name, value in (figures or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.adapter.labels(connection, str(name)).set(value)

    def render(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)
