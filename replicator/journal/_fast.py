"""The two hot inserts of ``Journal.record`` (decision rows, managed-key upserts) as driver SQL.

SQLAlchemy's executemany builds a parameter dict and runs type processors for every row; at full
sync rates that cost more than the database itself, and it holds the GIL the engine needs. Here
the statement text is built once per dialect, rows are plain tuples, and the one column that needs
a bind processor (the batch's timestamp, the same for every row) is processed once per batch.
The schema stays defined in ``schema.py``; ``tests/journal`` reads every row back through the
ordinary SQLAlchemy queries on both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Connection
from sqlalchemy.engine import Dialect

from replicator.journal.schema import decisions, managed_keys

_DECISION_COLUMNS = (
    "epoch_id",
    "revision",
    "key",
    "action",
    "reason",
    "rule",
    "value_digest",
    "value_size",
    "recorded_at",
)
_MANAGED_COLUMNS = ("key", "mod_revision", "value_digest", "epoch_id", "rule", "updated_at")


def bind_processor_of(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """The full bind-side conversion SQLAlchemy applies to ``column`` (type decorator included)."""
    type_ = column.type
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    decorator = getattr(type_, "process_bind_param", None)

    def convert(value: Any) -> Any:
        if decorator is not None:
            value = decorator(value, dialect)
        return processor(value) if processor is not None else value

    return convert


class FastInserts:
    def __init__(self, dialect: Dialect) -> None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"

        def insert(table: str, columns: Sequence[str]) -> str:
            names = ", ".join(f'"{c}"' for c in columns)
            return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(mark for _ in columns)})'

        self._decisions = insert(decisions.name, _DECISION_COLUMNS)
        changing = ", ".join(f'"{c}" = excluded."{c}"' for c in _MANAGED_COLUMNS if c != "key")
        self._managed = (
            insert(managed_keys.name, _MANAGED_COLUMNS) + f' ON CONFLICT ("key") DO UPDATE SET {changing}'
        )

    def decisions(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.exec_driver_sql(self._decisions, rows)

    def managed(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.exec_driver_sql(self._managed, rows)
