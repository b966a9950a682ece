"""The journal's behaviour, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from replicator.journal import DecisionRecord, Journal, JournalBatch, ManagedKey, default_url

from .conftest import digest


def copy(key: str, revision: int, *, rule: str = "keep-all") -> tuple[DecisionRecord, ManagedKey]:
    d = digest(key.encode())
    return (
        DecisionRecord(revision, key, "copy", "rule matched", rule=rule, value_digest=d, value_size=len(key)),
        ManagedKey(key, revision, d, rule=rule),
    )


def copies(epoch_id: int, keys: list[str], revision: int, *, checkpoint: int | None = None) -> JournalBatch:
    pairs = [copy(k, revision) for k in keys]
    return JournalBatch(
        epoch_id,
        decisions=[p[0] for p in pairs],
        revisions=[revision],
        managed_upserts=[p[1] for p in pairs],
        checkpoint=checkpoint,
    )


def test_default_url_is_a_sqlite_file_in_the_state_dir(tmp_path: Path) -> None:
    assert default_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/journal.db"
    Journal.create(default_url(tmp_path / "state")).close()
    assert (tmp_path / "state" / "journal.db").is_file()


def test_runs_and_epochs(journal: Journal, run_id: int) -> None:
    assert journal.current_epoch() is None
    first = journal.open_epoch(run_id=run_id, reason="first-start", start_revision=10)
    second = journal.open_epoch(run_id=run_id, reason="compaction", start_revision=500)
    epoch = journal.current_epoch()
    assert epoch is not None and epoch.id == second > first
    assert (epoch.run_id, epoch.reason, epoch.start_revision) == (run_id, "compaction", 500)
    assert epoch.opened_at.tzinfo is not None
    journal.end_run(run_id, status="completed")
    run = journal.status().run
    assert run is not None and run.status == "completed" and run.ended_at is not None
    assert run.source_cluster_id == 0xFEEDFACECAFEBEEF and run.settings == "rules=a.yaml"


def test_cluster_ids_round_trip_the_whole_uint64_range(journal: Journal, run_id: int) -> None:
    epoch_id = journal.open_epoch(run_id=run_id, reason="first-start", start_revision=1)
    journal.record(JournalBatch(epoch_id, checkpoint=5, source_cluster_id=2**64 - 1))
    checkpoint = journal.checkpoint()
    assert checkpoint is not None and checkpoint.source_cluster_id == 2**64 - 1


def test_record_and_read_back(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, ["/registry/secrets/a/x", "/registry/pods/a/p"], 101, checkpoint=101))
    checkpoint = journal.checkpoint()
    assert checkpoint is not None
    assert (checkpoint.revision, checkpoint.epoch_id) == (101, epoch_id)
    assert checkpoint.source_cluster_id == 0xFEEDFACECAFEBEEF  # from the epoch's run
    assert checkpoint.updated_at.tzinfo == UTC
    got = journal.managed(["/registry/secrets/a/x", "/registry/nope"])
    assert list(got) == ["/registry/secrets/a/x"]
    m = got["/registry/secrets/a/x"]
    assert (m.mod_revision, m.value_digest, m.rule, m.epoch_id) == (
        101,
        digest(b"/registry/secrets/a/x"),
        "keep-all",
        epoch_id,
    )
    assert journal.managed_count() == 2


def test_an_upsert_replaces_the_managed_state(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, ["/k"], 101))
    journal.record(copies(epoch_id, ["/k"], 102))
    assert journal.managed(["/k"])["/k"].mod_revision == 102
    assert journal.managed_count() == 1


def test_a_delete_removes_the_managed_key(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, ["/k", "/j"], 101))
    gone = DecisionRecord(102, "/k", "delete", "deleted at source")
    journal.record(JournalBatch(epoch_id, decisions=[gone], revisions=[102], managed_deletes=["/k"]))
    assert set(journal.managed(["/k", "/j"])) == {"/j"}


def test_managed_looks_up_many_keys_in_chunks(journal: Journal, epoch_id: int) -> None:
    keys = [f"/registry/configmaps/ns/{i:05d}" for i in range(1_300)]
    journal.record(copies(epoch_id, keys, 101))
    assert len(journal.managed([*keys, "/absent"])) == 1_300


def test_iter_managed_streams_a_prefix_in_byte_order(journal: Journal, epoch_id: int) -> None:
    keys = ["/registry/a/z", "/registry/a/B", "/registry/a/é", "/registry/a/a", "/registry/ab", "/registry/b"]
    journal.record(copies(epoch_id, keys, 101))
    under = [m.key for m in journal.iter_managed("/registry/a/")]
    assert under == sorted(k for k in keys if k.startswith("/registry/a/"))  # code point = UTF-8 order
    assert under == ["/registry/a/B", "/registry/a/a", "/registry/a/z", "/registry/a/é"]
    assert [m.key for m in journal.iter_managed()] == sorted(keys)
    assert [m.key for m in journal.iter_managed("/registry/a")] == sorted(keys)[:5]


def test_iter_managed_stops_early_without_leaking(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, [f"/k/{i:04d}" for i in range(2_500)], 101))
    stream = journal.iter_managed("/k/")
    assert [next(stream).key for _ in range(3)] == ["/k/0000", "/k/0001", "/k/0002"]
    stream.close()
    assert journal.managed_count() == 2_500


def test_audit_queries(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, ["/k"], 101))
    skip = DecisionRecord(102, "/k", "skip", "namespace excluded", rule="drop-kube-system")
    journal.record(JournalBatch(epoch_id, decisions=[skip], revisions=[102]))
    journal.record(copies(epoch_id, ["/other"], 103))
    gone = DecisionRecord(104, "/k", "delete", "deleted at source")
    journal.record(JournalBatch(epoch_id, decisions=[gone], revisions=[104], managed_deletes=["/k"]))

    history = journal.key_history("/k")
    assert [(d.revision, d.action) for d in history] == [(104, "delete"), (102, "skip"), (101, "copy")]
    assert history[2].value_digest == digest(b"/k") and history[2].recorded_at.tzinfo == UTC
    assert len(journal.key_history("/k", limit=1)) == 1
    by_rule = journal.decisions_by_rule("drop-kube-system", limit=10)
    assert [(d.key, d.reason) for d in by_rule] == [("/k", "namespace excluded")]
    changes = journal.changes_between(101, 104)
    assert [(d.revision, d.key, d.action) for d in changes] == [
        (103, "/other", "copy"),
        (104, "/k", "delete"),
    ]


def test_status(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, ["/a", "/b"], 101, checkpoint=101))
    status = journal.status()
    assert status.schema_revision == "0002"
    assert status.checkpoint is not None and status.checkpoint.revision == 101
    assert status.epoch is not None and status.epoch.id == epoch_id
    assert status.run is not None and status.run.status == "running"
    assert (status.decisions, status.revisions, status.managed_keys) == (2, 1, 2)


def test_revision_rows_count_their_events(journal: Journal, epoch_id: int) -> None:
    batch = copies(epoch_id, ["/a", "/b", "/c"], 101)
    journal.record(batch)
    assert journal.status().revisions == 1
    assert journal.changes_between(100, 101)[0].revision == 101


def test_full_sync_batches_may_carry_no_revision(journal: Journal, epoch_id: int) -> None:
    for chunk in (["/a", "/b"], ["/c"]):
        pairs = [copy(k, 100) for k in chunk]
        journal.record(
            JournalBatch(epoch_id, decisions=[p[0] for p in pairs], managed_upserts=[p[1] for p in pairs])
        )
    journal.record(JournalBatch(epoch_id, revisions=[100], checkpoint=100))
    assert journal.managed_count() == 3
    assert journal.status().revisions == 1


def test_iter_changes_streams_copies_and_deletes_by_epoch_then_revision(
    journal: Journal, run_id: int
) -> None:
    first = journal.open_epoch(run_id=run_id, reason="first-start", start_revision=0)
    journal.record(copies(first, ["/k"], 105))
    journal.record(JournalBatch(first, decisions=[DecisionRecord(107, "/x", "skip", "no rule")]))
    gone = DecisionRecord(108, "/k", "delete", "left scope")
    journal.record(JournalBatch(first, decisions=[gone], revisions=[108], managed_deletes=["/k"]))
    # A resync re-copies /k at its value's own (older) revision: it must still come last.
    second = journal.open_epoch(run_id=run_id, reason="resync", start_revision=0)
    journal.record(copies(second, ["/k"], 105))

    rows = list(journal.iter_changes())
    assert [(r.epoch_id, r.revision, r.action) for r in rows] == [
        (first, 105, "copy"),
        (first, 108, "delete"),
        (second, 105, "copy"),
    ]
    assert [r.revision for r in journal.iter_changes(from_revision=106, to_revision=108)] == [108]
    newest = rows[-1].recorded_at
    assert [r.epoch_id for r in journal.iter_changes(since=newest)] == [second]
    assert list(journal.iter_changes(until=rows[0].recorded_at)) == []


def test_status_tells_when_the_journal_last_moved(journal: Journal, epoch_id: int) -> None:
    assert journal.status().last_recorded_at is None
    journal.record(copies(epoch_id, ["/a"], 101, checkpoint=101))
    status = journal.status()
    assert status.last_recorded_at is not None and status.checkpoint is not None
    assert status.last_recorded_at >= status.checkpoint.updated_at
