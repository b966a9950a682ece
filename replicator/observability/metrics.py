"""The replicator's metrics, all in one place.

Catalogue (all counters are totals since the process started):

- ``keys_copied``     keys written to the destination (put)
- ``keys_deleted``    keys deleted on the destination (source delete or scope exit)
- ``keys_skipped``    keys decided out of scope
- ``keys_failed``     values that could not be decoded/decrypted or were too large (journaled, skipped)
- ``txns``            destination transactions committed
- ``txn_retries``     destination transactions retried after a retryable error
- ``revisions``       source revisions processed in the watch phase
- ``bytes_written``   value bytes written to the destination
- ``last_revision``   gauge: last source revision committed to the destination
- ``last_progress``   gauge: monotonic time of the last progress (for "seconds since progress")

A process exports them through `snapshot()` (logged periodically and printed by the CLI); there is
no global registry, each ``Metrics`` is its own.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class Metrics:
    keys_copied: int = 0
    keys_deleted: int = 0
    keys_skipped: int = 0
    keys_failed: int = 0
    txns: int = 0
    txn_retries: int = 0
    revisions: int = 0
    bytes_written: int = 0
    last_revision: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    per_rule: dict[str, int] = field(default_factory=dict)

    def progressed(self, revision: int) -> None:
        self.last_revision = max(self.last_revision, revision)
        self.last_progress = time.monotonic()

    def seconds_since_progress(self) -> float:
        return time.monotonic() - self.last_progress

    def count_rule(self, rule: str) -> None:
        self.per_rule[rule] = self.per_rule.get(rule, 0) + 1

    def snapshot(self) -> dict[str, object]:
        doc = asdict(self)
        doc.pop("last_progress")
        doc["seconds_since_progress"] = round(self.seconds_since_progress(), 1)
        return doc
