"""Pollers: vendors that do not push are read on a schedule, with checkpoints and backfills.

``pollers:`` in ``platypus.yaml`` names each poller's kind (salesforce, workday,
netsuite), connection, interval, overlap, query and mapping (`PollerSpec`).
`start_pollers` runs them beside the embedded runtime; ``platypus backfill``
(`cli.backfill`) replays a range of history through the same mappings. Each
poller's watermark is saved with the events it produced, in one transaction of
the event log. docs/sources.md describes each kind.
"""

from platypus.sources.pollers.checkpoint import Checkpoint, CheckpointSink, Window
from platypus.sources.pollers.config import (
    NetSuiteQuery,
    PollerKind,
    PollerSpec,
    SalesforceQuery,
    WorkdayQuery,
)
from platypus.sources.pollers.poller import (
    Poller,
    PollerGroup,
    PollResult,
    build_poller,
    poller_specs,
    start_pollers,
)
from platypus.sources.pollers.presets import DEFAULT_PRESET, POLLER_PRESETS
from platypus.sources.pollers.sources import (
    NetSuiteSource,
    Page,
    RecordSource,
    SalesforceSource,
    WorkdaySource,
)

__all__ = [
    "DEFAULT_PRESET",
    "POLLER_PRESETS",
    "Checkpoint",
    "CheckpointSink",
    "NetSuiteQuery",
    "NetSuiteSource",
    "Page",
    "PollResult",
    "Poller",
    "PollerGroup",
    "PollerKind",
    "PollerSpec",
    "RecordSource",
    "SalesforceQuery",
    "SalesforceSource",
    "Window",
    "WorkdayQuery",
    "WorkdaySource",
    "build_poller",
    "poller_specs",
    "start_pollers",
]
