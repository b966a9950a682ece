"""The journal's tables, as SQLAlchemy Core metadata: the single source of truth for the schema.

Migrations in the repository's ``migrations/`` directory must produce exactly this metadata; the
test suite compares the two on SQLite and PostgreSQL (an ``alembic check`` equivalent).

Two details that are easy to get wrong:

- etcd cluster IDs are unsigned 64-bit integers, which neither SQLite's INTEGER nor PostgreSQL's
  BIGINT can hold. They are stored as 16 lowercase hex digits (``ClusterId``), the way etcdctl
  prints them, and are plain ``int`` on the Python side.
- Keys are compared and ordered byte-wise, like etcd does, on both backends: SQLite's default
  BINARY collation already is, and PostgreSQL columns use the "C" collation. Without it a
  prefix scan or an ordered walk would follow the server's locale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import postgresql, sqlite

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EPOCH_REASONS = ("first-start", "compaction", "cluster-changed", "operator", "resync")
ACTIONS = ("copy", "skip", "delete", "fail", "ignore")
RUN_STATUSES = ("running", "completed", "stopped", "failed")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Decision ids pass 2**31 after a few days of watch traffic; SQLite only auto-increments a column
# declared exactly INTEGER.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
KeyText = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


class ClusterId(TypeDecorator[int]):
    """An etcd cluster ID (uint64) stored as 16 hex digits."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not 0 <= value < 2**64:
            raise ValueError(f"cluster id {value} is not an unsigned 64-bit integer")
        return f"{value:016x}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value, 16)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends (SQLite returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("journal timestamps must be timezone-aware")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("status", String(16), nullable=False),
    Column("source_cluster_id", ClusterId, nullable=False),
    Column("dest_cluster_id", ClusterId, nullable=False),
    Column("version", String(64), nullable=False),
    Column("settings", Text, nullable=False),
    CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
)

epochs = Table(
    "epochs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("start_revision", BigInteger, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    CheckConstraint(_one_of("reason", EPOCH_REASONS), name="reason"),
)

revisions = Table(
    "revisions",
    metadata,
    Column("epoch_id", Integer, ForeignKey("epochs.id"), primary_key=True),
    Column("revision", BigInteger, primary_key=True),
    Column("processed_at", UtcDateTime, nullable=False),
    Column("event_count", Integer, nullable=False),
    Index(None, "revision"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("epoch_id", Integer, ForeignKey("epochs.id"), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("key", KeyText, nullable=False),
    Column("action", String(8), nullable=False),
    Column("reason", Text, nullable=False),
    Column("rule", Text, nullable=True),
    Column("value_digest", String(64), nullable=True),
    Column("value_size", BigInteger, nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
    CheckConstraint(_one_of("action", ACTIONS), name="action"),
    CheckConstraint("value_digest IS NULL OR length(value_digest) = 64", name="value_digest"),
    Index(None, "key"),
    Index(None, "rule"),
    Index(None, "revision"),
)

managed_keys = Table(
    "managed_keys",
    metadata,
    Column("key", KeyText, primary_key=True),
    Column("mod_revision", BigInteger, nullable=False),
    Column("value_digest", String(64), nullable=False),
    Column("epoch_id", Integer, ForeignKey("epochs.id"), nullable=False),
    Column("rule", Text, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("length(value_digest) = 64", name="value_digest"),
)

checkpoint = Table(
    "checkpoint",
    metadata,
    # A single row: the constraint makes a second one impossible rather than merely unused.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
    Column("epoch_id", Integer, ForeignKey("epochs.id"), nullable=False),
    Column("source_cluster_id", ClusterId, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

# Values as stored in etcd (ciphertext stays ciphertext), kept only with ``--journal-values`` so
# that `replicator replay` can rebuild a standby after the source compacted them away. The table
# name is an SQL keyword; SQLAlchemy and alembic quote it.
values = Table(
    "values",
    metadata,
    Column("key", KeyText, primary_key=True),
    Column("revision", BigInteger, primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Index(None, "revision"),
)
