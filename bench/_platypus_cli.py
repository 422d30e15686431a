"""The ``platypus`` command, with the ``sink`` adapter tallying what it is given.

::

    python bench/_platypus_cli.py run --project DIR --port 0 ...
    python bench/_platypus_cli.py worker --project DIR ...

Exactly ``platypus run`` and ``platypus worker`` (the same click commands, the
same process), except that the adapter registry's ``sink`` is `TallyingSink`:
the built-in sink adapter that also hands each delivery to the tally every peer
uses (`bench._tally`, configured from the environment). So Platypus is measured
with its real command, flows and adapter plumbing, and checked the same way as
its peers: every event delivered, in key order, none twice.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._tally import Tally
from platypus.adapter import Adapter, AdapterRegistry, Request

_SINK: type[Adapter] = AdapterRegistry.default().get("sink")
_TALLY = Tally.from_env()


class TallyingSink(_SINK):  # type: ignore[valid-type,misc]
    """The ``sink`` adapter, tallying each delivery before it counts it."""

    async def call(self, request: Request) -> Any:
        payload = request.payload
        _TALLY.delivered(payload["external_id"], request.event_id, payload.get("sent_at"))
        return await super().call(request)


_default = AdapterRegistry.default.__func__  # type: ignore[attr-defined]


def _with_tallying_sink(cls: type[AdapterRegistry]) -> AdapterRegistry:
    registry: AdapterRegistry = _default(cls)
    registry.register("sink", TallyingSink)
    return registry


def main() -> None:
    """Run the ``platypus`` command line with the tallying sink registered."""
    AdapterRegistry.default = classmethod(_with_tallying_sink)  # type: ignore[method-assign,assignment]
    from platypus.cli import main as platypus

    platypus(prog_name="platypus")


if __name__ == "__main__":
    main()
