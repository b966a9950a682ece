"""Journal checks after a fault test, on the database itself (sqlite3 / psycopg).

What is exactly checkable, given that the test's workload is the source's only writer and every
one of its writes is one revision with one event under ``/registry/``:

1. Within an epoch, recorded revisions have no gaps between the first and the last (the primary
   key already makes each one unique per epoch; a duplicate would have failed the batch).
2. Each recorded revision carries exactly one decision, in that epoch, for the key written at
   that revision (namespace re-evaluations add decisions for *other* keys at the same revision).
3. After a clean stop the journal's checkpoint equals the destination's (revision and epoch).
4. ``managed_keys`` is exactly the set of keys the oracle expects on the destination, with the
   sha256 of each value.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping

from support import journal_db, oracle


def check_journal(
    url: str,
    *,
    writes: list[tuple[int, str]],
    source: Mapping[str, bytes],
    dest: Mapping[str, bytes],
) -> None:
    written = dict(writes)
    problems: list[str] = []

    by_epoch = journal_db.revisions_by_epoch(url)
    assert by_epoch, "the journal recorded no revision at all"
    for epoch, revs in by_epoch.items():
        if missing := journal_db.gaps(revs):
            problems.append(
                f"epoch {epoch}: {len(missing)} revisions missing between {revs[0]} and "
                f"{revs[-1]}: {missing[:10]}"
            )

    counts = Counter(
        (int(e), int(r), k)
        for e, r, k in journal_db.query(
            url,
            "SELECT d.epoch_id, d.revision, d.key FROM decisions d "
            "JOIN revisions v ON v.epoch_id = d.epoch_id "
            "AND v.revision = d.revision",
        )
    )
    for epoch, revs in by_epoch.items():
        for r in revs:
            key = written.get(r)
            if key is None:
                continue  # written during an outage with an unknown outcome: nothing exact to say
            n = counts.get((epoch, r, key), 0)
            if n != 1:
                problems.append(f"epoch {epoch} revision {r} ({key}): {n} decisions for its key")
                if len(problems) > 20:
                    break

    ck = oracle.checkpoint(dest)
    assert ck is not None, "destination has no checkpoint"
    rows = journal_db.query(url, "SELECT revision, epoch_id FROM checkpoint")
    if rows != [(int(str(ck["revision"])), int(str(ck["epoch"])))]:
        problems.append(f"journal checkpoint {rows} != destination checkpoint {ck}")

    want = oracle.expected(source)
    managed = dict(journal_db.query(url, "SELECT key, value_digest FROM managed_keys"))
    if set(managed) != set(want):
        problems.append(
            "managed_keys differ from the expected destination: "
            f"extra {sorted(set(managed) - set(want))[:8]}, missing {sorted(set(want) - set(managed))[:8]}"
        )
    wrong = [k for k in set(managed) & set(want) if managed[k] != hashlib.sha256(want[k]).hexdigest()]
    if wrong:
        problems.append(f"managed_keys digests differ for {sorted(wrong)[:8]}")

    assert not problems, "journal check failed:\n  " + "\n  ".join(problems)


def assert_sole_writer(writes: list[tuple[int, str]], head: int) -> None:
    """The premise of check 1: the workload's revisions are contiguous up to the source head."""
    revs = sorted(r for r, _ in writes)
    assert revs and revs[-1] == head, f"source head {head} is not the workload's last write {revs[-1:]}"
    assert revs == list(range(revs[0], head + 1)), "the workload is not the source's only writer"
