"""What the Kafka worker's settlement keeps in its delivery ledger (no broker needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from platypus.config import ConnectionSpec
from platypus.flow.loader import load_flows
from platypus.records import FLOW_DELIVERED, Delivery
from platypus.runtime.base import Settlement
from platypus.runtime.kafka.worker import KafkaRuntime, flows_sent_again
from tests.support import project_config, write_project

FLOWS = {
    # sink.send is idempotent: sending it again is harmless.
    "to-sink": """
        name: to-sink
        consumes: sales.opportunity.closed_won.v1
        steps:
          - name: deliver
            to: sink.send
            payload: {id: id}
    """,
    # The http adapter's post is not: the ledger guards it.
    "orders": """
        name: orders
        consumes: sales.opportunity.closed_won.v1
        steps:
          - name: first
            to: sink.send
            payload: {id: id}
          - name: create_order
            to: vendor.post
            params: {path: /orders}
            payload: {id: id}
    """,
}


class _Producer:
    async def send(self, *_args: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Consumer:
    def ack(self, _message: Any) -> None:
        return None


def _runtime(tmp_path: Path) -> KafkaRuntime:
    flows = load_flows(write_project(tmp_path, FLOWS))
    config = project_config(
        tmp_path,
        "http://127.0.0.1:9",
        connections={
            "vendor": ConnectionSpec(adapter="http", settings={"base_url": "http://127.0.0.1:9"}),
            "sink": ConnectionSpec(adapter="sink"),
        },
    )
    runtime = KafkaRuntime(config, flows, broker="kafka://127.0.0.1:9")
    runtime.app.producer = _Producer()  # type: ignore[assignment]
    runtime.app.consumer = _Consumer()  # type: ignore[assignment]
    return runtime


async def test_only_flows_of_idempotent_steps_are_sent_again(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    try:
        assert flows_sent_again(runtime.processor.flows, runtime.connections) == {"to-sink"}
    finally:
        runtime.ledger.close()


async def test_a_flow_of_idempotent_steps_is_not_recorded_as_delivered_one_guarded_is(
    tmp_path: Path,
) -> None:
    runtime = _runtime(tmp_path)
    try:
        versions = {flow.name: flow.version for flow in runtime.processor.flows}
        await runtime.settle(
            Settlement(
                deliveries=[
                    Delivery("evt-1", "to-sink", FLOW_DELIVERED, versions["to-sink"], "v", 1),
                    Delivery("evt-1", "orders", FLOW_DELIVERED, versions["orders"], "v", 2),
                    # A step delivered before a later one failed: kept in every flow,
                    # for the replay and for `dlq to-test`.
                    Delivery("evt-2", "to-sink", "deliver", versions["to-sink"], {"ok": 1}, 1),
                ]
            )
        )
        found = await runtime.ledger.delivered(["evt-1", "evt-2"])
        assert found == {
            ("evt-1", "orders", FLOW_DELIVERED): "v",
            ("evt-2", "to-sink", "deliver"): {"ok": 1},
        }
    finally:
        runtime.ledger.close()
