"""A sanity print of the recording rate; not an assertion on time (CI machines vary)."""

from __future__ import annotations

import time

import pytest

from replicator.journal import DecisionRecord, Journal, JournalBatch, ManagedKey

from .conftest import digest

TOTAL = 100_000
BATCH = 128


def test_record_100k_decisions_in_128_row_batches(
    journal: Journal, epoch_id: int, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    d = digest(b"value")
    started = time.perf_counter()
    for first in range(0, TOTAL, BATCH):
        revision = 1_000 + first // BATCH
        keys = [f"/registry/configmaps/ns/{i:07d}" for i in range(first, min(first + BATCH, TOTAL))]
        journal.record(
            JournalBatch(
                epoch_id,
                decisions=[DecisionRecord(revision, k, "copy", "rule matched", "all", d, 5) for k in keys],
                revisions=[revision],
                managed_upserts=[ManagedKey(k, revision, d, rule="all") for k in keys],
                checkpoint=revision,
            )
        )
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        rate = TOTAL / elapsed
        print(f"\n[{backend}] {TOTAL} decisions + managed upserts in {elapsed:.1f}s: {rate:,.0f}/s")
    assert journal.status().decisions == TOTAL and journal.managed_count() == TOTAL
