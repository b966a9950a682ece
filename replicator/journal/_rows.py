"""Small pure helpers of the store: batch validation, row conversion, prefix ranges."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import Row

from replicator.journal.records import DecisionRow, JournalBatch, ManagedKey

_DIGEST = re.compile(r"[0-9a-f]{64}")


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (code point order)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return "".join(chars) + chr(nxt)
    return None


def _check_digest(digest: str | None, key: str) -> None:
    if digest is not None and not _DIGEST.fullmatch(digest):
        raise ValueError(f"{key}: value_digest must be a sha256 hex digest, not a value")


def validate(batch: JournalBatch) -> None:
    """The caller's side of invariants 4 and 5, checked before anything is written."""
    copied: set[str] = set()
    deleted: set[str] = set()
    copy_digests: dict[tuple[str, int], str | None] = {}
    for d in batch.decisions:
        _check_digest(d.value_digest, d.key)
        if d.action == "copy":
            copied.add(d.key)
            copy_digests[(d.key, d.revision)] = d.value_digest
        elif d.action == "delete":
            deleted.add(d.key)
    for m in batch.managed_upserts:
        _check_digest(m.value_digest, m.key)
        if m.key not in copied:
            raise ValueError(f"{m.key}: managed upsert without a copy decision in the same batch")
        if m.epoch_id is not None and m.epoch_id != batch.epoch_id:
            raise ValueError(f"{m.key}: managed upsert for epoch {m.epoch_id} in a batch of {batch.epoch_id}")
    for key in batch.managed_deletes:
        if key not in deleted:
            raise ValueError(f"{key}: managed delete without a delete decision in the same batch")
    for key, revision, value in batch.values:
        if (key, revision) not in copy_digests:
            raise ValueError(f"{key}: kept value without a copy decision at revision {revision} in the batch")
        if copy_digests[(key, revision)] != hashlib.sha256(value).hexdigest():
            raise ValueError(f"{key}: kept value does not match its copy decision's digest")
    both = {m.key for m in batch.managed_upserts} & set(batch.managed_deletes)
    if both:
        raise ValueError(f"{sorted(both)[0]}: both upserted and deleted in one batch")


def decision_row(row: Row[Any]) -> DecisionRow:
    return DecisionRow(
        id=row.id,
        epoch_id=row.epoch_id,
        revision=row.revision,
        key=row.key,
        action=row.action,
        reason=row.reason,
        rule=row.rule,
        value_digest=row.value_digest,
        value_size=row.value_size,
        recorded_at=row.recorded_at,
    )


def managed_row(row: Row[Any]) -> ManagedKey:
    return ManagedKey(
        key=row.key,
        mod_revision=row.mod_revision,
        value_digest=row.value_digest,
        rule=row.rule,
        epoch_id=row.epoch_id,
        updated_at=row.updated_at,
    )
