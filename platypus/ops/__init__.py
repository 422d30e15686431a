"""Operations on failed events: the store, its indexer, replay, discard and the audit trail.

::

    store = FailureStore.for_data_dir(data_dir)        # or FailureStore("postgresql+psycopg://...")
    target = LogReplayTarget(app.log)                  # platypus.runtime.embedded
    indexer = Indexer(app.log, store, target=target, flows=app.flows)
    task = asyncio.create_task(indexer.run_forever(1.0))
    ops = Operations(store, app.schemas, target=target, notify=indexer.wake)
    report = await ops.replay(FailureFilter(fingerprint="..."), Actor.operator("ana"))
    store.replay_job(report.job)                       # its progress, kept in the store

Several indexers and replays may run against one store and one log: the store's
indexer lease lets one of them append at a time, and each replay is appended
once (`platypus.ops.replays`).

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
from platypus.ops.lease import StoreLease
from platypus.ops.replays import Replay, ReplayTarget
from platypus.ops.store import (
    AuditEntry,
    Failure,
    FailureFilter,
    FailureStatus,
    FailureStore,
    LeaseLostError,
    ReplayJob,
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
    "LeaseLostError",
    "LogOwnerLock",
    "NotFoundError",
    "OperationError",
    "Operations",
    "Permission",
    "PermissionDeniedError",
    "Replay",
    "ReplayJob",
    "ReplayReport",
    "ReplayTarget",
    "StoreLease",
    "default_store_url",
    "dispatch_replays",
    "fingerprint",
]
