"""Operations on failed events: the store, its indexer, replay, discard and the audit trail.

::

    store = FailureStore.for_data_dir(data_dir)        # or FailureStore("postgresql+psycopg://...")
    indexer = Indexer(app.log, store, flows=app.flows)
    task = asyncio.create_task(indexer.run_forever(1.0))
    ops = Operations(store, app.schemas, log=app.log)
    await ops.replay(FailureFilter(fingerprint="..."), Actor.operator("ana"))

See docs/dead-letters.md.
"""

from platypus.ops.actions import (
    Actor,
    InvalidReplayError,
    NotFoundError,
    OperationError,
    Operations,
    Permission,
    PermissionDeniedError,
    ReplayReport,
    dispatch_replays,
)
from platypus.ops.indexer import Indexer, IndexReport, LogOwnerLock
from platypus.ops.store import (
    AuditEntry,
    Failure,
    FailureFilter,
    FailureStatus,
    FailureStore,
    default_store_url,
    fingerprint,
)

__all__ = [
    "Actor",
    "AuditEntry",
    "Failure",
    "FailureFilter",
    "FailureStatus",
    "FailureStore",
    "IndexReport",
    "Indexer",
    "InvalidReplayError",
    "LogOwnerLock",
    "NotFoundError",
    "OperationError",
    "Operations",
    "Permission",
    "PermissionDeniedError",
    "ReplayReport",
    "default_store_url",
    "dispatch_replays",
    "fingerprint",
]
