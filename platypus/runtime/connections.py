"""The adapter instances flow steps write to: one per connection of ``platypus.yaml``.

Built once per process by the wiring (`platypus.runtime.wiring`), checked
against the flows before anything runs, started and closed with the runtime.
Each connection's concurrency and rate budget is shared by every flow using it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from platypus.adapter import Adapter, AdapterRegistry
from platypus.config import ProjectConfig
from platypus.exceptions import ConfigurationError
from platypus.flow.model import FlowSpec, StepSpec
from platypus.flow.personal import unallowed_personal_data
from platypus.runtime.limits import ConnectionLimit
from platypus.schema_registry import SchemaRegistry

__all__ = ["Connections"]


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

    def prepare(
        self, flows: Sequence[FlowSpec], schemas: SchemaRegistry | None = None
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        """Build every connection the flows use and check each step's params.

        Returns the validated params by (flow, step). Raises `ConfigurationError`
        naming the flow and step for an unknown connection, adapter or action,
        and (given ``schemas``) for a step sending personal data to free text
        that its ``allow_personal_data`` does not name: the rule of
        ``platypus flows lint``, so a flow that skipped lint cannot post it.
        """
        params: dict[tuple[str, str], Mapping[str, Any]] = {}
        for flow in flows:
            for step in flow.steps:
                where = f"{flow.source_file}: flow {flow.name!r}, step {step.name!r}"
                try:
                    adapter = self.get(step.connection)
                    params[(flow.name, step.name)] = adapter.params_for(step.action, step.params)
                    if schemas is not None:
                        _check_personal(flow, step, adapter, schemas)
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


def _check_personal(
    flow: FlowSpec, step: StepSpec, adapter: Adapter, schemas: SchemaRegistry
) -> None:
    action = adapter.actions.get(step.action)
    if action is None or action.input is None:
        return
    wires = []
    for event_type in flow.consumes:
        if event_type not in schemas:
            continue
        data = dict(schemas.json_schema(event_type))
        defs = data.pop("$defs", {})
        wires.append(({"type": "object", "properties": {"data": data}}, defs))
    found = unallowed_personal_data(step, action.input, wires)
    if found:
        fields = sorted({field for listed in found.values() for field in listed})
        raise ConfigurationError(
            f"sends personal data ({', '.join(fields)}) to free text ({', '.join(found)}) of "
            f"{step.to!r}, which is kept and searchable: leave it out, or allow it on the "
            f"step with allow_personal_data: [{', '.join(fields)}] (platypus flows lint "
            "finds this before start-up)"
        )
