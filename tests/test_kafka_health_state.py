"""The rules of a Kafka process's readiness (`HealthState`), with the time given: no I/O."""

from __future__ import annotations

import logging

from platypus.config import KafkaSettings
from platypus.runtime.kafka.health import HealthState, KafkaHealth, watch_client_logs

EVENTS, DLQ = "p.events", "p.dead-letter"


def _worker(**kwargs: float) -> HealthState:
    state = HealthState([EVENTS, DLQ], EVENTS, started=0.0, **kwargs)
    state.observe_metadata(0.0, {EVENTS: 8, DLQ: 8})
    state.partitions_assigned(0.0, {0, 1})
    return state


def test_a_worker_with_partitions_and_an_answering_broker_is_ready() -> None:
    state = _worker()
    assert state.readiness(1.0) == {
        "broker": None,
        "topics": None,
        "data": None,
        "partitions": None,
        "commits": None,
        "consumer": None,
    }
    assert state.ready(1.0)


def test_nothing_is_ready_before_the_first_probe() -> None:
    state = HealthState([EVENTS], None)
    assert not state.ready(0.0)
    assert "not probed yet" in (state.readiness(0.0)["broker"] or "")


def test_an_unreachable_broker_says_so() -> None:
    state = _worker()
    state.broker_unreachable("KafkaConnectionError: connection refused")
    reason = state.readiness(1.0)["broker"]
    assert reason is not None
    assert "connection refused" in reason
    assert state.accepting(1.0) == reason


def test_a_changed_partition_count_is_data_loss_until_the_hold_passes() -> None:
    state = _worker(loss_hold=10.0)
    [loss] = state.observe_metadata(5.0, {EVENTS: 4, DLQ: 8})
    assert loss.kind == "partitions_changed"
    reason = state.readiness(6.0)["data"]
    assert reason is not None
    assert "had 8 partitions and now has 4" in reason
    assert state.accepting(6.0) is not None
    # The new count is the baseline from now on: no second finding, ready again later.
    assert state.observe_metadata(7.0, {EVENTS: 4, DLQ: 8}) == []
    assert state.readiness(16.0)["data"] is None


def test_a_missing_topic_fails_readiness_and_web_does_not_accept() -> None:
    state = HealthState([EVENTS, DLQ], None)
    state.observe_metadata(0.0, {EVENTS: 8, DLQ: 8})
    [loss] = state.observe_metadata(1.0, {DLQ: 8})
    assert loss.kind == "topic_missing"
    assert "p.events" in (state.readiness(2.0)["topics"] or "")
    assert state.accepting(2.0) is not None


def test_end_offsets_going_back_are_data_loss_of_those_partitions() -> None:
    state = _worker()
    assert state.observe_end_offsets(1.0, EVENTS, {0: 50, 1: 40}) == []
    assert state.observe_end_offsets(2.0, EVENTS, {0: 55, 1: 40}) == []
    [loss] = state.observe_end_offsets(3.0, EVENTS, {0: 3, 1: 41})
    assert (loss.kind, loss.partitions) == ("end_offsets_decreased", frozenset({0}))
    assert "0: 55 -> 3" in loss.reason
    # The new end is what later ends are compared with.
    assert state.observe_end_offsets(4.0, EVENTS, {0: 4, 1: 41}) == []


def test_committed_offsets_that_vanish_are_data_loss() -> None:
    state = _worker()
    assert state.observe_committed(1.0, {0: 10, 1: 12}) == []
    [loss] = state.observe_committed(2.0, {1: 12})
    assert (loss.kind, loss.partitions) == ("committed_offsets_lost", frozenset({0}))


def test_no_partitions_for_longer_than_the_grace_is_not_ready() -> None:
    state = _worker(unassigned_grace=20.0)
    state.partitions_assigned(10.0, set())
    assert state.readiness(29.0)["partitions"] is None
    reason = state.readiness(31.0)["partitions"]
    assert reason is not None
    assert "no partition of p.events assigned for 21 s" in reason
    state.partitions_assigned(32.0, {3})
    assert state.readiness(33.0)["partitions"] is None


def test_failed_commits_fail_readiness_for_the_window() -> None:
    state = _worker(commit_window=15.0)
    state.commit_failed(10.0, "OffsetCommit failed for group g: UnknownMemberIdError")
    reason = state.readiness(11.0)["commits"]
    assert reason is not None
    assert "1 offset commit(s) failed" in reason
    assert "UnknownMemberIdError" in reason
    assert state.readiness(26.0)["commits"] is None


def test_lag_is_end_minus_committed_per_partition_never_negative() -> None:
    state = _worker()
    state.observe_end_offsets(1.0, EVENTS, dict.fromkeys(range(8), 10) | {0: 100})
    state.observe_committed(1.0, {0: 40, 1: 12})
    lag = state.lag()
    assert (lag[0], lag[1], lag[2], len(lag)) == (60, 0, 10, 8)


def test_the_client_log_tells_commit_failures_and_out_of_range_offsets() -> None:
    health = KafkaHealth(KafkaSettings(), [EVENTS], events_topic=EVENTS, group="g")
    undo = watch_client_logs(health)
    try:
        logging.getLogger("aiokafka.consumer.group_coordinator").error(
            "OffsetCommit failed for group %s due to group error (%s), will rejoin",
            "g",
            "UnknownMemberIdError",
        )
        logging.getLogger("aiokafka.consumer.fetcher").info(
            "Fetch offset %s is out of range for partition %s, resetting offset",
            57,
            "TopicPartition(topic='p.events', partition=3)",
        )
    finally:
        undo()
    assert len(health.state.commit_failures) == 1
    [(_, loss)] = health.state.losses
    assert (loss.kind, loss.partitions) == ("offsets_out_of_range", frozenset({3}))
    assert "fetch offset 57" in loss.reason


async def test_web_answers_503_with_retry_after_while_unavailable_or_when_producing_fails() -> None:
    import httpx
    from aiokafka.errors import KafkaTimeoutError
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from platypus.runtime.kafka.web import guard

    produced: list[bytes] = []

    async def events(request: Request) -> JSONResponse:
        body = await request.body()
        if body == b"timeout":
            raise KafkaTimeoutError
        produced.append(body)
        return JSONResponse({"accepted": 1}, status_code=202)

    health = KafkaHealth(KafkaSettings(), [EVENTS, DLQ])
    app = guard(Starlette(routes=[Route("/events", events, methods=["POST"])]), health)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        # Not probed yet, then a topic missing: refused, nothing produced.
        before = await c.post("/events", content=b"a")
        health.state.observe_metadata(health.clock(), {DLQ: 8})
        missing = await c.post("/events", content=b"b")
        health.state.observe_metadata(health.clock(), {EVENTS: 8, DLQ: 8})
        accepted = await c.post("/events", content=b"c")
        failed = await c.post("/events", content=b"timeout")
    assert (before.status_code, missing.status_code) == (503, 503)
    assert "topics missing on the broker: p.events" in missing.json()["detail"]
    assert missing.headers["retry-after"] == "5"
    assert accepted.status_code == 202
    assert failed.status_code == 503
    assert "KafkaTimeoutError" in failed.json()["detail"]
    assert produced == [b"c"]
