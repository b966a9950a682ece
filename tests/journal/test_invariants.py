"""One test per invariant in the module docstring of replicator/journal/store.py (numbers match)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from replicator.errors import JournalError, JournalSchemaError
from replicator.journal import DecisionRecord, Journal, JournalBatch, ManagedKey, downgrade, store
from replicator.journal.migrate import parse_url

from .conftest import digest
from .test_store import copies, copy


def test_docstring_lists_the_invariants_tested_here() -> None:
    assert store.__doc__ is not None
    listed = re.findall(r"^(\d+)\. ", store.__doc__, flags=re.MULTILINE)
    tested = sorted({int(n) for n in re.findall(r"def test_(\d+)_", Path(__file__).read_text())})
    assert [int(n) for n in listed] == tested


def test_1_a_revision_is_recorded_at_most_once_per_epoch(journal: Journal, run_id: int) -> None:
    epoch_id = journal.open_epoch(run_id=run_id, reason="first-start", start_revision=100)
    journal.record(JournalBatch(epoch_id, revisions=[101]))
    with pytest.raises(JournalError, match="record batch"):
        journal.record(JournalBatch(epoch_id, revisions=[101]))
    later = journal.open_epoch(run_id=run_id, reason="resync", start_revision=100)
    journal.record(JournalBatch(later, revisions=[101]))  # the same revision in a new epoch is fine
    assert journal.status().revisions == 2


def test_2_a_batch_commits_all_together_or_not_at_all(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, ["/a"], 101, checkpoint=101))
    before = journal.status()
    # Everything in this batch is fine except its revision row, which repeats 101 and fails last-but-one.
    d, m = copy("/b", 101)
    gone = DecisionRecord(101, "/a", "delete", "deleted at source")
    bad = JournalBatch(
        epoch_id,
        decisions=[d, gone],
        revisions=[101],
        managed_upserts=[m],
        managed_deletes=["/a"],
        checkpoint=102,
    )
    with pytest.raises(JournalError):
        journal.record(bad)
    after = journal.status()
    assert (after.decisions, after.revisions, after.managed_keys) == (
        before.decisions,
        before.revisions,
        before.managed_keys,
    )
    assert after.checkpoint == before.checkpoint
    assert set(journal.managed(["/a", "/b"])) == {"/a"}


def test_3_the_checkpoint_never_moves_backwards(journal: Journal, run_id: int) -> None:
    first = journal.open_epoch(run_id=run_id, reason="first-start", start_revision=100)
    journal.record(JournalBatch(first, checkpoint=200))
    journal.record(JournalBatch(first, checkpoint=200))  # standing still is allowed
    with pytest.raises(JournalError, match="backwards, from revision 200"):
        journal.record(JournalBatch(first, revisions=[150], checkpoint=150))
    assert journal.status().revisions == 0  # and the refused batch left nothing behind
    # A new epoch may start lower (a restored source), but nothing may go back to the old one.
    second = journal.open_epoch(run_id=run_id, reason="cluster-changed", start_revision=50)
    journal.set_checkpoint(revision=60, epoch_id=second, source_cluster_id=42)
    with pytest.raises(JournalError, match="backwards"):
        journal.set_checkpoint(revision=300, epoch_id=first)
    checkpoint = journal.checkpoint()
    assert checkpoint is not None
    assert (checkpoint.revision, checkpoint.epoch_id, checkpoint.source_cluster_id) == (60, second, 42)


def test_4_managed_keys_change_only_with_a_decision(journal: Journal, epoch_id: int) -> None:
    d = digest(b"v")
    lone_upsert = JournalBatch(epoch_id, managed_upserts=[ManagedKey("/k", 101, d)])
    with pytest.raises(ValueError, match="without a copy decision"):
        journal.record(lone_upsert)
    skipped = JournalBatch(
        epoch_id,
        decisions=[DecisionRecord(101, "/k", "skip", "excluded")],
        managed_upserts=[ManagedKey("/k", 101, d)],
    )
    with pytest.raises(ValueError, match="without a copy decision"):
        journal.record(skipped)
    with pytest.raises(ValueError, match="without a delete decision"):
        journal.record(JournalBatch(epoch_id, managed_deletes=["/k"]))
    assert journal.managed_count() == 0 and journal.status().decisions == 0

    # Then: managed keys are exactly those whose last copy-or-delete decision was a copy.
    journal.record(copies(epoch_id, ["/a", "/b", "/c"], 101))
    dels = [DecisionRecord(102, k, "delete", "gone") for k in ("/a", "/c")]
    journal.record(JournalBatch(epoch_id, decisions=dels, managed_deletes=["/a", "/c"]))
    journal.record(copies(epoch_id, ["/c"], 103))
    journal.record(JournalBatch(epoch_id, decisions=[DecisionRecord(104, "/b", "skip", "rule changed")]))
    expected = {
        key
        for key in ("/a", "/b", "/c")
        if next(h.action for h in journal.key_history(key) if h.action in ("copy", "delete")) == "copy"
    }
    assert {m.key for m in journal.iter_managed()} == expected == {"/b", "/c"}


def test_5_no_values_only_digests(journal: Journal, epoch_id: int, journal_url: str) -> None:
    secret = "c3VwZXJzZWNyZXQ="  # what a Secret's data looks like; must never be accepted
    leak = DecisionRecord(101, "/registry/secrets/a/b", "copy", "ok", value_digest=secret)
    with pytest.raises(ValueError, match="sha256 hex digest"):
        journal.record(JournalBatch(epoch_id, decisions=[leak]))
    d, _ = copy("/registry/secrets/a/b", 101)
    leak_upsert = ManagedKey("/registry/secrets/a/b", 101, secret.ljust(64, "="))
    with pytest.raises(ValueError, match="sha256 hex digest"):
        journal.record(JournalBatch(epoch_id, decisions=[d], managed_upserts=[leak_upsert]))
    # The audit tables have nowhere to put a value: only digests and sizes.
    engine = create_engine(parse_url(journal_url))
    try:
        schema = inspect(engine)
        # Audit tables only: the opt-in ``values`` table is the one place a value may live.
        audit = set(schema.get_table_names()) - {"values"}
        columns = {c["name"] for t in audit for c in schema.get_columns(t)}
        with engine.begin() as conn, pytest.raises(Exception, match=r"(?i)check"):
            conn.execute(  # the database refuses a non-digest too, whoever writes
                text(
                    "INSERT INTO managed_keys (key, mod_revision, value_digest, epoch_id, updated_at) "
                    "VALUES ('/x', 1, 'plaintext', :e, CURRENT_TIMESTAMP)"
                ),
                {"e": epoch_id},
            )
    finally:
        engine.dispose()
    assert not columns & {"value", "data", "content", "plaintext"}
    assert {"value_digest", "value_size"} <= columns


def test_5_values_are_kept_only_with_their_copy_decision_and_digest(journal: Journal, epoch_id: int) -> None:
    ciphertext = b"k8s:enc:aescbc:v1:key1:" + bytes(range(32))  # kept as stored, never decrypted
    d, m = copy("/registry/secrets/a/b", 101)
    d = DecisionRecord(101, d.key, "copy", "ok", value_digest=digest(ciphertext), value_size=len(ciphertext))
    m = ManagedKey(d.key, 101, digest(ciphertext))
    orphan = JournalBatch(epoch_id, values=[(d.key, 101, ciphertext)])
    with pytest.raises(ValueError, match="without a copy decision"):
        journal.record(orphan)
    other = JournalBatch(epoch_id, decisions=[d], managed_upserts=[m], values=[(d.key, 101, b"plaintext")])
    with pytest.raises(ValueError, match="digest"):
        journal.record(other)
    wrong_rev = JournalBatch(epoch_id, decisions=[d], managed_upserts=[m], values=[(d.key, 102, ciphertext)])
    with pytest.raises(ValueError, match="without a copy decision"):
        journal.record(wrong_rev)
    assert journal.status().values == 0
    journal.record(
        JournalBatch(epoch_id, decisions=[d], managed_upserts=[m], values=[(d.key, 101, ciphertext)])
    )
    assert journal.kept_values([(d.key, 101), (d.key, 100)]) == {(d.key, 101): ciphertext}
    # A resync re-copying the same revision keeps one row.
    journal.record(
        JournalBatch(epoch_id, decisions=[d], managed_upserts=[m], values=[(d.key, 101, ciphertext)])
    )
    assert journal.status().values == 1


def test_6_retention_keeps_checkpoint_and_managed_keys(journal: Journal, epoch_id: int) -> None:
    for rev in range(101, 111):
        journal.record(copies(epoch_id, [f"/k/{rev}"], rev, checkpoint=rev))
    before = journal.checkpoint()
    deleted = journal.prune(keep_revisions=3)  # keeps revisions 108, 109, 110
    assert deleted == 7 + 7
    status = journal.status()
    assert (status.decisions, status.revisions, status.managed_keys) == (3, 3, 10)
    assert journal.checkpoint() == before
    assert journal.key_history("/k/101") == [] and len(journal.key_history("/k/108")) == 1
    assert journal.current_epoch() is not None and status.run is not None
    assert journal.prune(keep_revisions=0) == 6
    assert journal.managed_count() == 10 and journal.checkpoint() == before


def test_6_retention_removes_kept_values_with_their_decisions(journal: Journal, epoch_id: int) -> None:
    for rev in range(101, 106):
        value = f"v{rev}".encode()
        d = DecisionRecord(rev, "/k", "copy", "ok", value_digest=digest(value), value_size=len(value))
        journal.record(
            JournalBatch(
                epoch_id,
                decisions=[d],
                revisions=[rev],
                managed_upserts=[ManagedKey("/k", rev, digest(value))],
                values=[("/k", rev, value)],
                checkpoint=rev,
            )
        )
    journal.prune(keep_revisions=2)  # keeps 104, 105
    assert set(journal.kept_values([("/k", r) for r in range(101, 106)])) == {("/k", 104), ("/k", 105)}
    assert journal.managed_count() == 1


def test_6_retention_before_any_checkpoint_does_nothing(journal: Journal, epoch_id: int) -> None:
    journal.record(copies(epoch_id, ["/a"], 101))
    assert journal.prune(keep_revisions=0) == 0
    assert journal.status().decisions == 1


def test_7_epochs_only_move_forward(journal: Journal, run_id: int) -> None:
    ids = [journal.open_epoch(run_id=run_id, reason="operator", start_revision=r) for r in (300, 100, 200)]
    assert ids == sorted(ids)
    current = journal.current_epoch()
    assert current is not None and current.id == ids[-1] and current.start_revision == 200
    with pytest.raises(JournalError):
        journal.record(JournalBatch(ids[-1] + 100, decisions=[DecisionRecord(1, "/a", "skip", "x")]))
    with pytest.raises(JournalError, match=r"epoch \d+ does not exist"):
        journal.set_checkpoint(revision=1, epoch_id=ids[-1] + 100)


def test_8_only_the_head_schema_is_used(journal_url: str) -> None:
    Journal.create(journal_url).close()
    downgrade(journal_url, "base")
    with pytest.raises(JournalSchemaError, match="replicator journal upgrade"):
        Journal.open(journal_url)
