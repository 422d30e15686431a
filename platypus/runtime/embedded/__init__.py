"""The embedded runtime: one process, one SQLite file, no server to install.

`Platypus` wires it: the event log (`EventLog`), the consumer over it
(`EmbeddedRuntime`), the HTTP ingress and the operations around them.
"""

from platypus.runtime.embedded.app import Platypus
from platypus.runtime.embedded.history import LogOutcomeFeed
from platypus.runtime.embedded.log import Durability, EventLog
from platypus.runtime.embedded.replays import LogReplayTarget
from platypus.runtime.embedded.runtime import EmbeddedRuntime

__all__ = [
    "Durability",
    "EmbeddedRuntime",
    "EventLog",
    "LogOutcomeFeed",
    "LogReplayTarget",
    "Platypus",
]
