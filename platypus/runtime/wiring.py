"""One wiring for every runtime: connections, the processor, and the ledger it asks.

A runtime brings its storage (the ledger); everything else is built the same
way from the project's configuration and flows, so the embedded process, a
Kafka worker and a flow's test harness run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from platypus.adapter import Adapter, AdapterRegistry
from platypus.config import ProjectConfig
from platypus.flow.model import FlowSpec
from platypus.runtime.base import DeliveryLedger
from platypus.runtime.connections import Connections
from platypus.runtime.processor import Processor
from platypus.schema_registry import SchemaRegistry

__all__ = ["Pipeline", "build_pipeline"]


@dataclass(frozen=True, slots=True)
class Pipeline:
    """What runs events through flows: the connections and the processor using them."""

    connections: Connections
    processor: Processor


def build_pipeline(
    config: ProjectConfig,
    flows: Sequence[FlowSpec],
    *,
    ledger: DeliveryLedger,
    schemas: SchemaRegistry | None = None,
    adapters: AdapterRegistry | None = None,
    connections: Mapping[str, Adapter] | None = None,
) -> Pipeline:
    """Build the connections the flows use (checking every step) and the processor.

    ``connections`` replaces the adapters of some connections (tests, the demo).
    Raises `ConfigurationError` naming the flow and step for an unknown
    connection, adapter or action, or invalid params.
    """
    built = Connections(config, adapters or AdapterRegistry.default(), connections)
    schemas = schemas or SchemaRegistry.default()
    params = built.prepare(flows, schemas)
    processor = Processor(
        flows,
        schemas,
        built,
        retry=config.retry,
        concurrency=config.concurrency,
        params=params,
        ledger=ledger,
    )
    return Pipeline(built, processor)
