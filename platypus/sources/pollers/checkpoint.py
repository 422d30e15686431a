"""Where a poller or a backfill has got to, stored next to the events it produced.

A checkpoint is a small JSON document under a name (``poller:<name>``,
``backfill:<name>``) in the event log's ``checkpoints`` table:

* ``watermark``: every record modified before ``watermark - overlap`` has been read;
* ``window``: the window being read (``since``, ``until``) and the ``cursor`` of its
  next page, while a poll or backfill is under way; None between polls;
* ``done``: a backfill that has read its whole range.

`CheckpointSink` hands the ingress an `EventSink` whose ``append`` writes the
page's events and the checkpoint after that page in one transaction
(`EventLog.append_with_checkpoint`), so a crash loses neither and repeats nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from platypus.records import NewRecord, Placement
from platypus.runtime.base import CheckpointStore

from .sources import parse_instant

__all__ = ["Checkpoint", "CheckpointSink", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """A range of modification times being read, and the cursor of its next page."""

    since: datetime
    until: datetime | None
    cursor: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "cursor": self.cursor,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Window:
        until = raw.get("until")
        return cls(
            parse_instant(raw["since"]),
            None if until is None else parse_instant(until),
            raw.get("cursor"),
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A poller's or backfill's position; see the module docstring."""

    watermark: datetime | None = None
    window: Window | None = None
    done: bool = False

    def dumps(self) -> str:
        return json.dumps(
            {
                "watermark": None if self.watermark is None else self.watermark.isoformat(),
                "window": None if self.window is None else self.window.to_json(),
                "done": self.done,
            },
            sort_keys=True,
        )

    @classmethod
    def loads(cls, text: str | None) -> Checkpoint | None:
        if text is None:
            return None
        raw = json.loads(text)
        watermark = raw.get("watermark")
        window = raw.get("window")
        return cls(
            None if watermark is None else parse_instant(watermark),
            None if window is None else Window.from_json(window),
            bool(raw.get("done", False)),
        )


class CheckpointSink:
    """An `EventSink` that saves checkpoint ``name`` with every append it makes."""

    def __init__(self, log: CheckpointStore, name: str, value: str) -> None:
        self.log = log
        self.name = name
        self.value = value
        self.saved = False

    async def append(self, topic: str, items: Sequence[NewRecord]) -> list[Placement | None]:
        placed = await self.log.append_with_checkpoint(topic, items, self.name, self.value)
        self.saved = True
        return placed

    async def reject(self, reason: str, errors: Sequence[Mapping[str, Any]], body: bytes) -> int:
        return await self.log.reject(reason, errors, body)
