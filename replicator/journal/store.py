"""The journal: what was mirrored, when, by which rule; and where to resume.

The engine calls it synchronously from one worker thread and records one ``JournalBatch`` per
destination transaction, right after that transaction commits. SQLAlchemy Core, batched
executemany, one database transaction per batch: no per-row round trips, no ORM.

What is exactly-once, and what is reconciled: the *destination* is exactly-once, because the
engine writes its own checkpoint key in the same destination transaction as the data. The
journal is written after that commit, so after a crash it can lag the destination by at most
the batch in flight; at start the engine compares ``Journal.checkpoint()`` with the
destination's checkpoint and reconciles (re-deciding the missing revisions and recording them,
or ``set_checkpoint`` under a new epoch). The journal is never ahead of the destination.

Invariants (each has a test in tests/journal/test_invariants.py):

1. A source revision is recorded at most once per epoch; recording it again fails the batch.
2. A batch commits all together or not at all: its decisions, processed revisions, managed-key
   upserts and deletes and the checkpoint move.
3. The checkpoint never moves backwards within an epoch, and never back to an older epoch.
4. ``managed_keys`` changes only together with the decision that explains it: every upsert has a
   ``copy`` decision for that key in the same batch, every delete a ``delete`` decision. So
   ``managed_keys`` holds exactly the keys whose last copy-or-delete decision was a copy.
5. Decisions and managed keys hold no values: only sha256 hex digests (checked, 64 lowercase
   hex digits) and sizes. Values are kept only when the operator asks (``--journal-values``), in
   the ``values`` table alone, byte for byte as stored in etcd (never decrypted), and only with a
   ``copy`` decision for the same key and revision in the same batch whose digest they match.
6. Retention (``prune``) removes old decision, revision and kept-value rows only; never the
   checkpoint, managed keys, epochs or runs.
7. Epochs only move forward: the current epoch is the most recently opened one, and a batch for
   an epoch that does not exist is refused.
8. The journal is only used at the schema version this code needs; anything else is refused with
   a message naming `replicator journal upgrade`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from typing import Any

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Insert,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from replicator.errors import JournalError, JournalSchemaError
from replicator.journal import migrate
from replicator.journal._fast import FastInserts, bind_processor_of
from replicator.journal._rows import decision_row, managed_row, prefix_end, validate
from replicator.journal.records import (
    Checkpoint,
    DecisionRow,
    EpochReason,
    EpochRow,
    JournalBatch,
    JournalStatus,
    ManagedKey,
    RunRow,
    RunStatus,
)
from replicator.journal.schema import checkpoint as checkpoint_t
from replicator.journal.schema import decisions, epochs, managed_keys, revisions, runs
from replicator.journal.schema import values as values_t

_IN_CHUNK = 500  # keys per IN (...) query: well under SQLite's bound-parameter limit
_STREAM_CHUNK = 1000


def _now() -> datetime:
    return datetime.now(UTC)


def _version() -> str:
    try:
        return package_metadata.version("etcd-replicator")
    except package_metadata.PackageNotFoundError:
        return "unknown"


class Journal:
    """A journal database at the current schema. Not thread-safe: one worker thread uses it."""

    def __init__(self, engine: Engine, *, url: URL) -> None:
        self._engine = engine
        self._parsed = url
        self._url = migrate.masked(url)
        self._upsert = self._managed_upsert_statement()
        self._fast = FastInserts(engine.dialect)
        self._stamp = bind_processor_of(decisions.c.recorded_at, engine.dialect)
        self._values_upsert = self._values_upsert_statement()
        self._epoch_source: dict[int, int] = {}

    @classmethod
    def open(cls, url: str) -> Journal:
        """Open an existing journal; refuses one whose schema is not this version's head."""
        parsed = migrate.parse_url(url)
        engine = migrate.make_engine(parsed)
        try:
            with migrate.translate_errors(parsed, "connect"), engine.connect() as conn:
                found = migrate.connection_revision(conn)
            needed = migrate.head_revision()
            if found != needed:
                raise JournalSchemaError(
                    f"journal {migrate.masked(parsed)} is at schema {found or '<empty>'}, this version "
                    f"needs {needed}: run `replicator journal upgrade`"
                )
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, url=parsed)

    @classmethod
    def create(cls, url: str) -> Journal:
        """Upgrade the schema to head (creating the tables if needed), then open."""
        migrate.upgrade(url)
        return cls.open(url)

    @property
    def url(self) -> str:
        """The journal's URL with the password masked."""
        return self._url

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs and epochs ------------------------------------------------------------------------

    def start_run(self, *, source_cluster_id: int, dest_cluster_id: int, settings: str) -> int:
        """Record a replicator start; ``settings`` is a summary with secrets already masked."""
        values = {
            "started_at": _now(),
            "status": "running",
            "source_cluster_id": source_cluster_id,
            "dest_cluster_id": dest_cluster_id,
            "version": _version(),
            "settings": settings,
        }
        with self._tx("start run") as conn:
            return int(conn.execute(insert(runs).values(values).returning(runs.c.id)).scalar_one())

    def end_run(self, run_id: int, *, status: RunStatus) -> None:
        with self._tx("end run") as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(status=status, ended_at=_now()))

    def open_epoch(self, *, run_id: int, reason: EpochReason, start_revision: int) -> int:
        """Open a new epoch (a fresh full sync) and make it the current one."""
        values = {"run_id": run_id, "reason": reason, "start_revision": start_revision, "opened_at": _now()}
        with self._tx("open epoch") as conn:
            return int(conn.execute(insert(epochs).values(values).returning(epochs.c.id)).scalar_one())

    def current_epoch(self) -> EpochRow | None:
        with self._tx("read current epoch") as conn:
            row = conn.execute(select(epochs).order_by(epochs.c.id.desc()).limit(1)).first()
        return None if row is None else EpochRow(**row._asdict())

    # -- recording ------------------------------------------------------------------------------

    def record(self, batch: JournalBatch) -> None:
        """Commit one destination transaction's worth of journal in one database transaction."""
        validate(batch)
        now = _now()
        with self._tx(f"record batch (epoch {batch.epoch_id})") as conn:
            if batch.decisions:
                at = self._stamp(now)
                self._fast.decisions(
                    conn,
                    [
                        (
                            batch.epoch_id,
                            d.revision,
                            d.key,
                            d.action,
                            d.reason,
                            d.rule,
                            d.value_digest,
                            d.value_size,
                            at,
                        )
                        for d in batch.decisions
                    ],
                )
            if batch.revisions:
                counts = Counter(d.revision for d in batch.decisions)
                rows = [
                    {"epoch_id": batch.epoch_id, "revision": r, "processed_at": now, "event_count": counts[r]}
                    for r in batch.revisions
                ]
                self._insert_many(conn, revisions, rows)
            for start in range(0, len(batch.managed_deletes), _IN_CHUNK):
                chunk = list(batch.managed_deletes[start : start + _IN_CHUNK])
                conn.execute(delete(managed_keys).where(managed_keys.c.key.in_(chunk)))
            if batch.managed_upserts:
                at = self._stamp(now)
                self._fast.managed(
                    conn,
                    [
                        (m.key, m.mod_revision, m.value_digest, batch.epoch_id, m.rule, at)
                        for m in batch.managed_upserts
                    ],
                )
            if batch.values:
                rows = [{"key": k, "revision": r, "value": v, "recorded_at": now} for k, r, v in batch.values]
                conn.execute(self._values_upsert, rows)
            if batch.checkpoint is not None:
                self._move_checkpoint(
                    conn, batch.checkpoint, epoch_id=batch.epoch_id, source=batch.source_cluster_id, now=now
                )

    def set_checkpoint(self, *, revision: int, epoch_id: int, source_cluster_id: int | None = None) -> None:
        """Move the checkpoint alone (reconciliation at start); the same rules as in ``record``."""
        with self._tx("set checkpoint") as conn:
            self._move_checkpoint(conn, revision, epoch_id=epoch_id, source=source_cluster_id, now=_now())

    def checkpoint(self) -> Checkpoint | None:
        with self._tx("read checkpoint") as conn:
            row = conn.execute(
                select(
                    checkpoint_t.c.revision,
                    checkpoint_t.c.epoch_id,
                    checkpoint_t.c.source_cluster_id,
                    checkpoint_t.c.updated_at,
                )
            ).first()
        return None if row is None else Checkpoint(**row._asdict())

    # -- managed keys ---------------------------------------------------------------------------

    def managed(self, keys: Sequence[str]) -> dict[str, ManagedKey]:
        """Which of ``keys`` are managed, with their recorded state."""
        found: dict[str, ManagedKey] = {}
        with self._tx("read managed keys") as conn:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = list(keys[start : start + _IN_CHUNK])
                for row in conn.execute(select(managed_keys).where(managed_keys.c.key.in_(chunk))):
                    found[row.key] = managed_row(row)
        return found

    def iter_managed(self, prefix: str = "") -> Iterator[ManagedKey]:
        """Stream managed keys under ``prefix`` in byte-wise key order, at flat memory."""
        query = select(managed_keys).where(managed_keys.c.key >= prefix).order_by(managed_keys.c.key)
        end = prefix_end(prefix)
        if end is not None:
            query = query.where(managed_keys.c.key < end)
        # Closing the result on an early exit closes PostgreSQL's server-side cursor in time.
        with (
            migrate.translate_errors(self._parsed, "stream managed keys"),
            self._engine.connect() as conn,
            conn.execution_options(yield_per=_STREAM_CHUNK).execute(query) as result,
        ):
            for row in result:
                yield managed_row(row)

    def managed_count(self) -> int:
        with self._tx("count managed keys") as conn:
            return int(conn.execute(select(func.count()).select_from(managed_keys)).scalar_one())

    # -- audit ----------------------------------------------------------------------------------

    def key_history(self, key: str, limit: int = 100) -> list[DecisionRow]:
        """The latest decisions about ``key``, newest first."""
        query = select(decisions).where(decisions.c.key == key)
        return self._decisions(query.order_by(decisions.c.id.desc()).limit(limit), "read key history")

    def decisions_by_rule(self, rule: str, limit: int = 100) -> list[DecisionRow]:
        """The latest decisions a rule made, newest first."""
        query = select(decisions).where(decisions.c.rule == rule)
        return self._decisions(query.order_by(decisions.c.id.desc()).limit(limit), "read decisions by rule")

    def changes_between(self, rev_a: int, rev_b: int, *, limit: int = 10_000) -> list[DecisionRow]:
        """Copies and deletes after ``rev_a`` up to and including ``rev_b``, oldest first."""
        query = select(decisions).where(
            decisions.c.revision > rev_a,
            decisions.c.revision <= rev_b,
            decisions.c.action.in_(("copy", "delete")),
        )
        return self._decisions(
            query.order_by(decisions.c.revision, decisions.c.id).limit(limit), "read changes"
        )

    def iter_changes(
        self,
        *,
        from_revision: int = 0,
        to_revision: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[DecisionRow]:
        """Stream copies and deletes with ``from_revision <= revision <= to_revision`` (and
        ``since <= recorded_at < until``), at flat memory.

        Order: epoch, then revision, then recording order. Within an epoch that is source order
        (a full sync decides each key once, at its value's revision, before the watch goes on);
        a later epoch's full sync re-establishes the whole scope, so it must come after the
        epoch before it even where its copies carry older revisions.
        """
        query = select(decisions).where(
            decisions.c.action.in_(("copy", "delete")), decisions.c.revision >= from_revision
        )
        if to_revision is not None:
            query = query.where(decisions.c.revision <= to_revision)
        if since is not None:
            query = query.where(decisions.c.recorded_at >= since)
        if until is not None:
            query = query.where(decisions.c.recorded_at < until)
        query = query.order_by(decisions.c.epoch_id, decisions.c.revision, decisions.c.id)
        with (
            migrate.translate_errors(self._parsed, "stream changes"),
            self._engine.connect() as conn,
            conn.execution_options(yield_per=_STREAM_CHUNK).execute(query) as result,
        ):
            for row in result:
                yield decision_row(row)

    def kept_values(self, wanted: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        """The values kept with ``--journal-values`` for these (key, revision) pairs, where kept."""
        found: dict[tuple[str, int], bytes] = {}
        keys = sorted({k for k, _ in wanted})
        pairs = set(wanted)
        with self._tx("read kept values") as conn:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                query = select(values_t.c.key, values_t.c.revision, values_t.c.value).where(
                    values_t.c.key.in_(chunk)
                )
                for row in conn.execute(query):
                    if (row.key, row.revision) in pairs:
                        found[(row.key, row.revision)] = bytes(row.value)
        return found

    def status(self) -> JournalStatus:
        with self._tx("read status") as conn:
            schema = migrate.connection_revision(conn)
            run = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(1)).first()
            counts = [
                int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (decisions, revisions, managed_keys, values_t)
            ]
            # By primary key, not max(recorded_at): no index needed on a table of millions.
            last = conn.execute(
                select(decisions.c.recorded_at).order_by(decisions.c.id.desc()).limit(1)
            ).scalar()
        checkpoint = self.checkpoint()
        moments = [t for t in (last, checkpoint.updated_at if checkpoint else None) if t is not None]
        return JournalStatus(
            url=self._url,
            schema_revision=schema,
            checkpoint=checkpoint,
            epoch=self.current_epoch(),
            run=None if run is None else RunRow(**run._asdict()),
            decisions=counts[0],
            revisions=counts[1],
            managed_keys=counts[2],
            values=counts[3],
            last_recorded_at=max(moments) if moments else None,
        )

    def prune(self, *, keep_revisions: int) -> int:
        """Delete decision, revision and kept-value rows more than ``keep_revisions`` behind the
        checkpoint (a kept value without its decision could never be replayed).

        Returns the number of rows deleted. Never touches the checkpoint, managed keys, epochs or
        runs; does nothing before the first checkpoint.
        """
        if keep_revisions < 0:
            raise ValueError("keep_revisions must be >= 0")
        with self._tx("prune") as conn:
            current = conn.execute(select(checkpoint_t.c.revision)).scalar()
            if current is None:
                return 0
            cutoff = int(current) - keep_revisions
            gone = conn.execute(delete(decisions).where(decisions.c.revision <= cutoff)).rowcount
            gone += conn.execute(delete(revisions).where(revisions.c.revision <= cutoff)).rowcount
            gone += conn.execute(delete(values_t).where(values_t.c.revision <= cutoff)).rowcount
        return int(gone)

    # -- internals ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self, doing: str) -> Iterator[Connection]:
        """One database transaction; SQLAlchemy errors leave as one-line JournalErrors."""
        with migrate.translate_errors(self._parsed, doing), self._engine.begin() as conn:
            yield conn

    def _decisions(self, query: Any, doing: str) -> list[DecisionRow]:
        with self._tx(doing) as conn:
            return [decision_row(row) for row in conn.execute(query)]

    def _insert_many(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """One executemany (pipelined by psycopg); for ``managed_keys`` an upsert on the key.

        Measured and rejected: multi-row VALUES (recompiled per batch, 4x slower) and RETURNING
        to get SQLAlchemy's insertmanyvalues (no faster on PostgreSQL, slower on SQLite).
        """
        conn.execute(self._upsert if table is managed_keys else insert(table), rows)

    def _managed_upsert_statement(self) -> Insert:
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(managed_keys)
        changing = ("mod_revision", "value_digest", "epoch_id", "rule", "updated_at")
        upsert: Insert = stmt.on_conflict_do_update(
            index_elements=[managed_keys.c.key], set_={c: stmt.excluded[c] for c in changing}
        )
        return upsert

    def _values_upsert_statement(self) -> Insert:
        # A value at (key, revision) is immutable in one source; a resync re-copying the same
        # revision keeps one row. The newest wins should the source cluster have been replaced.
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(values_t)
        upsert: Insert = stmt.on_conflict_do_update(
            index_elements=[values_t.c.key, values_t.c.revision],
            set_={"value": stmt.excluded.value, "recorded_at": stmt.excluded.recorded_at},
        )
        return upsert

    def _source_of(self, conn: Connection, epoch_id: int) -> int:
        if epoch_id not in self._epoch_source:
            source = conn.execute(
                select(runs.c.source_cluster_id)
                .join(epochs, epochs.c.run_id == runs.c.id)
                .where(epochs.c.id == epoch_id)
            ).scalar()
            if source is None:
                raise JournalError(f"journal {self._url}: epoch {epoch_id} does not exist")
            self._epoch_source[epoch_id] = int(source)
        return self._epoch_source[epoch_id]

    def _move_checkpoint(
        self, conn: Connection, revision: int, *, epoch_id: int, source: int | None, now: datetime
    ) -> None:
        t = checkpoint_t
        values = {
            "revision": revision,
            "epoch_id": epoch_id,
            "source_cluster_id": self._source_of(conn, epoch_id) if source is None else source,
            "updated_at": now,
        }
        # One round trip in the common case: the WHERE clause is invariant 3.
        forward = or_(t.c.epoch_id < epoch_id, and_(t.c.epoch_id == epoch_id, t.c.revision <= revision))
        if conn.execute(update(t).where(t.c.id == 1, forward).values(values)).rowcount == 1:
            return
        held = conn.execute(select(t.c.revision, t.c.epoch_id)).first()
        if held is None:
            conn.execute(insert(t).values(id=1, **values))
            return
        raise JournalError(
            f"journal {self._url}: checkpoint would move backwards, from revision {held.revision} "
            f"(epoch {held.epoch_id}) to {revision} (epoch {epoch_id}); is another replicator "
            "writing to this journal?"
        )
