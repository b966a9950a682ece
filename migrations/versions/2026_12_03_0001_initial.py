"""initial: runs, epochs, revisions, decisions, managed_keys, checkpoint

Revision ID: 0001
Revises:
Create Date: 2026-12-03 17:28:32

Written out in full (no imports from replicator.journal.schema), so that later changes to the
code's metadata can never change what this migration did.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
CLUSTER_ID = sa.String(length=16)  # uint64 as 16 hex digits
KEY = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")  # byte-wise order, like etcd
BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_cluster_id", CLUSTER_ID, nullable=False),
        sa.Column("dest_cluster_id", CLUSTER_ID, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'stopped', 'failed')", name=op.f("ck_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "epochs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("start_revision", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "reason IN ('first-start', 'compaction', 'cluster-changed', 'operator', 'resync')",
            name=op.f("ck_epochs_reason"),
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_epochs_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epochs")),
    )
    op.create_table(
        "checkpoint",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("source_cluster_id", CLUSTER_ID, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_checkpoint_single_row")),
        sa.ForeignKeyConstraint(["epoch_id"], ["epochs.id"], name=op.f("fk_checkpoint_epoch_id_epochs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoint")),
    )
    op.create_table(
        "decisions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("value_digest", sa.String(length=64), nullable=True),
        sa.Column("value_size", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "action IN ('copy', 'skip', 'delete', 'fail', 'ignore')", name=op.f("ck_decisions_action")
        ),
        sa.CheckConstraint(
            "value_digest IS NULL OR length(value_digest) = 64", name=op.f("ck_decisions_value_digest")
        ),
        sa.ForeignKeyConstraint(["epoch_id"], ["epochs.id"], name=op.f("fk_decisions_epoch_id_epochs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_revision"), ["revision"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_rule"), ["rule"], unique=False)
    op.create_table(
        "managed_keys",
        sa.Column("key", KEY, nullable=False),
        sa.Column("mod_revision", sa.BigInteger(), nullable=False),
        sa.Column("value_digest", sa.String(length=64), nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("length(value_digest) = 64", name=op.f("ck_managed_keys_value_digest")),
        sa.ForeignKeyConstraint(["epoch_id"], ["epochs.id"], name=op.f("fk_managed_keys_epoch_id_epochs")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_managed_keys")),
    )
    op.create_table(
        "revisions",
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", TIMESTAMP, nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["epoch_id"], ["epochs.id"], name=op.f("fk_revisions_epoch_id_epochs")),
        sa.PrimaryKeyConstraint("epoch_id", "revision", name=op.f("pk_revisions")),
    )
    with op.batch_alter_table("revisions") as batch_op:
        batch_op.create_index(batch_op.f("ix_revisions_revision"), ["revision"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("revisions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_revisions_revision"))
    op.drop_table("revisions")
    op.drop_table("managed_keys")
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_rule"))
        batch_op.drop_index(batch_op.f("ix_decisions_revision"))
        batch_op.drop_index(batch_op.f("ix_decisions_key"))
    op.drop_table("decisions")
    op.drop_table("checkpoint")
    op.drop_table("epochs")
    op.drop_table("runs")
