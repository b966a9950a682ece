"""The journal's vocabulary: what the engine hands in and what audit queries hand back.

Plain frozen dataclasses, so nothing above the journal sees a SQLAlchemy row. Decisions and
managed keys carry only a value's sha256 digest (hex) and size: the audit tables must be safe to
show to an operator who may not read Secrets. The one exception is opt-in (``--journal-values``):
``JournalBatch.values`` keeps copied values exactly as stored in etcd, for `replicator replay`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Action = Literal["copy", "skip", "delete", "fail", "ignore"]
EpochReason = Literal["first-start", "compaction", "cluster-changed", "operator", "resync"]
RunStatus = Literal["running", "completed", "stopped", "failed"]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision about one key at one source revision, as the engine made it."""

    revision: int
    key: str
    action: Action
    reason: str
    rule: str | None = None
    value_digest: str | None = None  # sha256 hex of the value as stored in etcd (never the value)
    value_size: int | None = None  # bytes, as stored in etcd


@dataclass(frozen=True, slots=True)
class ManagedKey:
    """A key this replicator wrote to the destination and that exists there.

    As input (``JournalBatch.managed_upserts``) ``epoch_id`` and ``updated_at`` may be left None:
    the batch's epoch and the commit time are used.
    """

    key: str
    mod_revision: int  # the source revision the destination's copy came from
    value_digest: str
    rule: str | None = None
    epoch_id: int | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JournalBatch:
    """Everything one destination transaction did; ``Journal.record`` commits it atomically.

    ``revisions`` are the source revisions whose events are now fully processed (a full-sync
    batch usually has none until its last). Each one's event count is the number of decisions in
    this batch at that revision. ``checkpoint`` is the revision the destination has reached;
    ``source_cluster_id`` None means the epoch's run's source cluster.

    ``values`` (only with ``--journal-values``) are ``(key, revision, value)`` triples, the value
    exactly as stored in etcd (encrypted values stay encrypted); each must belong to a ``copy``
    decision of this batch at that key and revision whose digest it matches.
    """

    epoch_id: int
    decisions: Sequence[DecisionRecord] = ()
    revisions: Sequence[int] = ()
    managed_upserts: Sequence[ManagedKey] = ()
    managed_deletes: Sequence[str] = ()
    checkpoint: int | None = None
    source_cluster_id: int | None = None
    values: Sequence[tuple[str, int, bytes]] = ()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    revision: int
    epoch_id: int
    source_cluster_id: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EpochRow:
    id: int
    run_id: int
    reason: EpochReason
    start_revision: int
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    started_at: datetime
    ended_at: datetime | None
    status: RunStatus
    source_cluster_id: int
    dest_cluster_id: int
    version: str
    settings: str


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """A recorded decision, as audit queries return it."""

    id: int
    epoch_id: int
    revision: int
    key: str
    action: Action
    reason: str
    rule: str | None
    value_digest: str | None
    value_size: int | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class JournalStatus:
    """What `replicator journal status` shows."""

    url: str  # password masked
    schema_revision: str | None
    checkpoint: Checkpoint | None
    epoch: EpochRow | None
    run: RunRow | None
    decisions: int
    revisions: int
    managed_keys: int
    values: int = 0  # values kept with --journal-values
    last_recorded_at: datetime | None = None  # newest decision or checkpoint move
