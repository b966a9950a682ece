"""Guard the position: every source response must come from the same cluster, never from the past.

A source restored from a snapshot, or an endpoint list that now reaches another cluster, would
otherwise be mirrored as if nothing happened: deletes that never happened, revisions that mean
something else. The guard checks the cluster ID and that revisions never go backwards on every
header it sees, and stops the mirror with a clear message (``--new-epoch`` starts over on purpose).
"""

from __future__ import annotations

from replicator.errors import MirrorStopped
from replicator.etcd import Header


class PositionGuard:
    """Header checks for range and status responses (their header revision is the store's)."""

    def __init__(self, *, cluster_id: int, revision: int = 0) -> None:
        self.cluster_id = cluster_id
        self.revision = revision

    def check(self, header: Header) -> None:
        if header.cluster_id != self.cluster_id:
            raise MirrorStopped(
                f"the source answered as etcd cluster {header.cluster_id:x}, not {self.cluster_id:x}: the "
                "endpoints now reach a different cluster. Stopping (use --new-epoch to mirror the new one "
                "from scratch)."
            )
        if header.revision < self.revision:
            raise MirrorStopped(
                f"the source's revision went backwards ({header.revision} after {self.revision}): it was "
                "restored from a snapshot or replaced. Stopping (use --new-epoch to mirror it from scratch)."
            )
        self.revision = header.revision


class StreamGuard:
    """The same for a watch stream. Its header revisions may step back (an unsynced watcher's
    responses carry older headers than a progress notification sent before them), so here the
    revisions that must only grow are the events' own."""

    def __init__(self, *, cluster_id: int, revision: int = 0) -> None:
        self.header = PositionGuard(cluster_id=cluster_id)
        self.revision = revision

    def check(self, header: Header, first_event_revision: int | None) -> None:
        if header.cluster_id != self.header.cluster_id:
            self.header.check(header)  # raises with the message
        if first_event_revision is None:
            return
        if first_event_revision <= self.revision:
            raise MirrorStopped(
                f"the source's watch went back to revision {first_event_revision} after {self.revision}: it "
                "was restored from a snapshot or replaced. Stopping (use --new-epoch to mirror it from "
                "scratch)."
            )
