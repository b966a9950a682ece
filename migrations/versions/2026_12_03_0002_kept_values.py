"""kept values: the opt-in ``values`` table (`run --journal-values`) that `replay` falls back on

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 18:40:00

Written out in full (no imports from replicator.journal.schema), like 0001. Values are stored
byte for byte as etcd holds them: an encrypted Secret stays ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
KEY = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")  # byte-wise order, like etcd


def upgrade() -> None:
    op.create_table(
        "values",
        sa.Column("key", KEY, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("key", "revision", name=op.f("pk_values")),
    )
    with op.batch_alter_table("values") as batch_op:
        batch_op.create_index(batch_op.f("ix_values_revision"), ["revision"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("values") as batch_op:
        batch_op.drop_index(batch_op.f("ix_values_revision"))
    op.drop_table("values")
