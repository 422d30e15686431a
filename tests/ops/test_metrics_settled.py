"""`Metrics.settled`: the counters of a settlement, added up over its events."""

from __future__ import annotations

from platypus.ops.metrics import Metrics
from platypus.runtime.processor import EventResult, FlowOutcome

TYPE = "sales.opportunity.closed_won.v1"


def _settlement() -> list[tuple[EventResult, float]]:
    return [
        (
            EventResult(
                "evt-1",
                TYPE,
                [
                    FlowOutcome("orders", "delivered", "v1", attempts=2, retried=True),
                    FlowOutcome("crm", "filtered", "v1"),
                ],
            ),
            0.003,
        ),
        (EventResult("evt-2", TYPE, [FlowOutcome("orders", "delivered", "v1", attempts=1)]), 0.2),
        (
            EventResult(
                "evt-3",
                TYPE,
                [FlowOutcome("orders", "dead_lettered", "v1", attempts=3, retried=True)],
            ),
            0.0125,
        ),
        (EventResult("", "", [FlowOutcome("", "dead_lettered", attempts=1)]), 7.5),
    ]


def test_a_settlement_counts_every_event_outcome_attempt_and_latency() -> None:
    metrics = Metrics()
    metrics.settled(_settlement())
    text = metrics.render().decode()
    expected = [
        f'platypus_events_consumed_total{{event_type="{TYPE}"}} 3.0',
        'platypus_events_consumed_total{event_type="(unknown)"} 1.0',
        'platypus_flow_outcomes_total{flow="orders",outcome="delivered"} 2.0',
        'platypus_flow_outcomes_total{flow="orders",outcome="dead_lettered"} 1.0',
        'platypus_flow_outcomes_total{flow="crm",outcome="filtered"} 1.0',
        'platypus_flow_outcomes_total{flow="(none)",outcome="dead_lettered"} 1.0',
        'platypus_delivery_attempts_total{flow="orders"} 6.0',
        'platypus_delivery_attempts_total{flow="(none)"} 1.0',
        'platypus_retried_total{flow="orders"} 2.0',
        "platypus_event_processing_seconds_count 4.0",
        'platypus_event_processing_seconds_bucket{le="0.005"} 1.0',
        'platypus_event_processing_seconds_bucket{le="0.025"} 2.0',
        'platypus_event_processing_seconds_bucket{le="0.25"} 3.0',
        'platypus_event_processing_seconds_bucket{le="10.0"} 4.0',
    ]
    for line in expected:
        assert line in text.splitlines(), line
    assert 'platypus_retried_total{flow="crm"}' not in text


def test_one_settlement_of_many_events_counts_as_many_settlements_of_one() -> None:
    together, apart = Metrics(), Metrics()
    done = _settlement()
    together.settled(done)
    for one in done:
        apart.settled([one])
    assert _samples(together) == _samples(apart)


def _samples(metrics: Metrics) -> list[str]:
    # Without the `_created` samples: when each child was made, not what it counts.
    lines = metrics.render().decode().splitlines()
    return [line for line in lines if "_created" not in line]
