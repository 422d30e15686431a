"""The rules of ``platypus indexer``'s ``/readyz`` (`indexer_readiness`): pure, no I/O."""

from __future__ import annotations

from platypus.runtime.kafka.indexer import indexer_readiness

KAFKA_OK: dict[str, str | None] = {"broker": None, "topics": None, "data": None}


def test_the_lease_holder_with_everything_answering_is_ready_and_active() -> None:
    status, body = indexer_readiness(
        KAFKA_OK, store_error=None, running=True, holding=True, holder="me"
    )
    assert status == 200
    assert body["status"] == "ready"
    assert body["role"] == "active"
    assert all(body["checks"].values())
    assert "reasons" not in body
    assert "note" not in body


def test_a_standby_is_ready_and_says_it_is_idle() -> None:
    status, body = indexer_readiness(
        KAFKA_OK, store_error=None, running=True, holding=False, holder="other:1:ab"
    )
    assert status == 200
    assert (body["role"], body["lease_holder"]) == ("standby", "other:1:ab")
    assert "ready and idle" in body["note"]


def test_an_unreachable_broker_fails_readiness_and_says_why() -> None:
    kafka = {**KAFKA_OK, "broker": "the broker does not answer: KafkaConnectionError"}
    status, body = indexer_readiness(
        kafka, store_error=None, running=True, holding=False, holder=None
    )
    assert status == 503
    assert body["checks"]["broker"] is False
    assert body["reasons"] == {"broker": "the broker does not answer: KafkaConnectionError"}


def test_a_store_that_does_not_answer_fails_readiness_and_says_why() -> None:
    status, body = indexer_readiness(
        KAFKA_OK,
        store_error="OperationalError: connection refused",
        running=True,
        holding=True,
        holder=None,
    )
    assert status == 503
    assert body["checks"]["store"] is False
    assert "connection refused" in body["reasons"]["store"]


def test_stopped_indexing_fails_readiness() -> None:
    status, body = indexer_readiness(
        KAFKA_OK, store_error=None, running=False, holding=True, holder="me"
    )
    assert status == 503
    assert set(body["reasons"]) == {"indexer"}
