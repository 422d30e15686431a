"""Flows: declarative YAML that routes event types to adapter actions."""

from platypus.flow.loader import load_flow, load_flows
from platypus.flow.model import FlowSpec, OnError, StepSpec

__all__ = ["FlowSpec", "OnError", "StepSpec", "load_flow", "load_flows"]
