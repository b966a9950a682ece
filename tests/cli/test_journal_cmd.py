"""`replicator journal ...` as an operator reads it: in-process CLI calls on a real SQLite journal."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from replicator.cli.main import main
from replicator.journal import DecisionRecord, Journal, JournalBatch, ManagedKey


def _copy(key: str, revision: int, rule: str = "secondary[0]") -> tuple[DecisionRecord, ManagedKey]:
    d = hashlib.sha256(key.encode()).hexdigest()
    return DecisionRecord(revision, key, "copy", "rule matched", rule, d, 10), ManagedKey(
        key, revision, d, rule
    )


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with Journal.create(url) as journal:
        run = journal.start_run(source_cluster_id=1, dest_cluster_id=2, settings="x")
        epoch = journal.open_epoch(run_id=run, reason="first-start", start_revision=0)
        for rev, key in ((5, "/registry/configmaps/a/one"), (7, "/registry/configmaps/a/two")):
            d, m = _copy(key, rev)
            journal.record(
                JournalBatch(epoch, decisions=[d], revisions=[rev], managed_upserts=[m], checkpoint=rev)
            )
        skip = DecisionRecord(8, "/registry/events/a/e", "skip", "never copied: Events")
        gone = DecisionRecord(9, "/registry/configmaps/a/one", "delete", "deleted on source")
        journal.record(
            JournalBatch(
                epoch, decisions=[skip, gone], revisions=[8, 9], managed_deletes=[gone.key], checkpoint=9
            )
        )
    yield url


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["journal", *args])
    return code, capsys.readouterr().out.strip().splitlines()


def test_status_shows_checkpoint_epoch_and_time_since_the_last_record(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _run(capsys, "--journal", url, "status")
    assert code == 0
    text = "\n".join(lines)
    assert re.search(r"^checkpoint:  revision 9 \(epoch 1, updated ", text, re.M)
    assert re.search(r"^epoch:       1 opened .* \(first-start\)$", text, re.M)
    seconds = re.search(r"^last record: (\d+) s ago", text, re.M)
    assert seconds and int(seconds.group(1)) < 60
    assert "lag:" not in text  # only with --source-endpoints
    assert re.search(r"^managed:     1$", text, re.M) and re.search(r"^values kept: 0$", text, re.M)


@pytest.mark.integration
def test_status_shows_the_lag_behind_the_source(
    url: str, capsys: pytest.CaptureFixture[str], etcd_factory: Any, etcdctl: Any
) -> None:
    source = etcd_factory("source")
    for i in range(11):  # a new etcd is at revision 1: head becomes 12
        etcdctl(source.endpoint, "put", f"/registry/k{i}", "v")
    code, lines = _run(capsys, "--journal", url, "status", "--source-endpoints", source.endpoint)
    assert code == 0
    assert "lag:         3 revisions (source head 12)" in lines


def test_changes_in_a_revision_window(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _run(capsys, "--journal", url, "changes", "--from-revision", "6", "--to-revision", "9")
    assert code == 0
    assert [line.split(" rev ")[1].split()[:3] for line in lines] == [
        ["7", "copy", "/registry/configmaps/a/two"],
        ["9", "delete", "/registry/configmaps/a/one:"],  # no rule: the reason follows
    ]  # skips are not changes
    assert lines[0].endswith("[secondary[0]]: rule matched")
    _, everything = _run(capsys, "--journal", url, "changes")
    assert len(everything) == 3
    _, limited = _run(capsys, "--journal", url, "changes", "--limit", "1")
    assert len(limited) == 2 and limited[-1].startswith("... (more")


def test_changes_in_a_time_window(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, none = _run(capsys, "--journal", url, "changes", "--since", later)
    assert none == []
    _, all_before = _run(capsys, "--journal", url, "changes", "--until", later.replace("+00:00", ""))
    assert len(all_before) == 3  # a time without offset is UTC


def test_bad_time_is_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["journal", "--journal", url, "changes", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "not an ISO 8601 time" in capsys.readouterr().err


def test_history_and_rule(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, history = _run(capsys, "--journal", url, "history", "/registry/configmaps/a/one")
    assert [line.split(" rev ")[1].split()[1] for line in history] == ["delete", "copy"]  # newest first
    _, by_rule = _run(capsys, "--journal", url, "rule", "secondary[0]")
    assert len(by_rule) == 2 and all("[secondary[0]]" in line for line in by_rule)


def test_prune_keeps_the_newest_revisions(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _run(capsys, "--journal", url, "prune", "--keep-revisions", "2")  # keeps 8 and 9
    assert code == 0 and lines == ["pruned 4 rows"]  # decisions at 5 and 7, revisions 5 and 7
    _, left = _run(capsys, "--journal", url, "changes")
    assert len(left) == 1 and " rev        9 delete " in left[0]
