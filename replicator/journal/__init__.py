"""The journal: every processed revision and per-key decision, the checkpoint, the managed keys.

The only package that imports SQLAlchemy and alembic. See ``store`` for its invariants.
"""

from replicator.journal.migrate import (
    current_revision,
    default_url,
    downgrade,
    head_revision,
    schema_diff,
    upgrade,
)
from replicator.journal.records import (
    Action,
    Checkpoint,
    DecisionRecord,
    DecisionRow,
    EpochReason,
    EpochRow,
    JournalBatch,
    JournalStatus,
    ManagedKey,
    RunRow,
    RunStatus,
)
from replicator.journal.store import Journal

__all__ = [
    "Action",
    "Checkpoint",
    "DecisionRecord",
    "DecisionRow",
    "EpochReason",
    "EpochRow",
    "Journal",
    "JournalBatch",
    "JournalStatus",
    "ManagedKey",
    "RunRow",
    "RunStatus",
    "current_revision",
    "default_url",
    "downgrade",
    "head_revision",
    "schema_diff",
    "upgrade",
]
