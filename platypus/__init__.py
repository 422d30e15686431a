"""Platypus: business events in, checked against their schema, routed by YAML flows.

The public API. Everything not listed in ``__all__`` is internal and may change.
"""

from platypus.adapter import Action, Adapter, AdapterRegistry, NoSettings, Request
from platypus.config import ConnectionSpec, ProjectConfig, load_config
from platypus.deadletter import DeadLetter
from platypus.envelope import CloudEvent
from platypus.exceptions import (
    ConfigurationError,
    DeliveryError,
    EventError,
    EventValidationError,
    FieldError,
    FlowError,
    FlowLoadError,
    MappingError,
    MissingDependencyError,
    PermanentError,
    PlatypusError,
    RetryableError,
    SchemaError,
    SourceLocation,
)
from platypus.flow import FlowSpec, OnError, StepSpec, load_flow, load_flows
from platypus.retry import RetryPolicy
from platypus.runtime.embedded import Platypus
from platypus.schema import EventSchema, PersonalData, event_schema
from platypus.schema_registry import SchemaRegistry

__version__ = "0.1.0.dev0"

__all__ = [
    "Action",
    "Adapter",
    "AdapterRegistry",
    "CloudEvent",
    "ConfigurationError",
    "ConnectionSpec",
    "DeadLetter",
    "DeliveryError",
    "EventError",
    "EventSchema",
    "EventValidationError",
    "FieldError",
    "FlowError",
    "FlowLoadError",
    "FlowSpec",
    "MappingError",
    "MissingDependencyError",
    "NoSettings",
    "OnError",
    "PermanentError",
    "PersonalData",
    "Platypus",
    "PlatypusError",
    "ProjectConfig",
    "Request",
    "RetryPolicy",
    "RetryableError",
    "SchemaError",
    "SchemaRegistry",
    "SourceLocation",
    "StepSpec",
    "__version__",
    "event_schema",
    "load_config",
    "load_flow",
    "load_flows",
]
