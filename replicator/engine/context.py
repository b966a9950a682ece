"""The objects one mirror run shares, built once by ``runner.build`` and torn down with it."""

from __future__ import annotations

from dataclasses import dataclass

from replicator.config import Settings
from replicator.etcd import EtcdClient
from replicator.observability import Metrics

from .evaluate import Evaluator
from .fence import Fence
from .guard import PositionGuard
from .sink import JournalSink
from .writer import DestWriter


@dataclass(slots=True)
class Context:
    settings: Settings
    source: EtcdClient
    dest: EtcdClient
    sink: JournalSink
    evaluator: Evaluator
    metrics: Metrics
    fence: Fence
    run_id: int
    source_cluster_id: int
    dest_cluster_id: int

    @property
    def prefix(self) -> bytes:
        """The Kubernetes prefix with its trailing slash: the only keys ever read."""
        return (self.settings.kube_prefix.rstrip("/") + "/").encode()

    def guard(self) -> PositionGuard:
        """A new guard for one stream of source responses (each stream's revisions only grow)."""
        return PositionGuard(cluster_id=self.source_cluster_id)

    def writer(self, *, epoch_id: int, ordered: bool) -> DestWriter:
        s = self.settings
        return DestWriter(
            dest=self.dest,
            sink=self.sink,
            fence=self.fence,
            metrics=self.metrics,
            epoch_id=epoch_id,
            source_cluster_id=self.source_cluster_id,
            max_ops=s.max_txn_ops,
            max_bytes=s.max_txn_bytes,
            inflight=1 if ordered else s.inflight_txns,
            ordered=ordered,
            keep_values=s.journal_values,
        )
