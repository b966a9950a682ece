"""Migrations are boring and checked: round trip, `alembic check`, refusal of other schemas."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, inspect, text

from replicator.errors import JournalError, JournalSchemaError
from replicator.journal import Journal, current_revision, downgrade, head_revision, schema_diff, upgrade
from replicator.journal.migrate import migrations_dir, parse_url

TABLES = {"runs", "epochs", "revisions", "decisions", "managed_keys", "checkpoint", "values"}


def _tables(url: str) -> set[str]:
    engine = create_engine(parse_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_revision_files_are_dated_and_head_is_the_last() -> None:
    names = sorted(p.name for p in (migrations_dir() / "versions").glob("*.py"))
    assert names and all(re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d{4}_\w+\.py", n) for n in names)
    assert head_revision() == "0002"


def test_0002_adds_only_the_values_table_and_goes_back_cleanly(journal_url: str) -> None:
    upgrade(journal_url, "0001")
    assert _tables(journal_url) == TABLES - {"values"}
    upgrade(journal_url)
    assert _tables(journal_url) == TABLES
    downgrade(journal_url, "0001")
    assert current_revision(journal_url) == "0001" and _tables(journal_url) == TABLES - {"values"}


def test_upgrade_downgrade_upgrade_round_trip(journal_url: str) -> None:
    assert current_revision(journal_url) is None
    upgrade(journal_url)
    assert current_revision(journal_url) == head_revision()
    assert _tables(journal_url) == TABLES
    downgrade(journal_url, "base")
    assert current_revision(journal_url) is None
    assert _tables(journal_url) == set()
    upgrade(journal_url)
    assert current_revision(journal_url) == head_revision()
    assert _tables(journal_url) == TABLES


def test_migrated_schema_matches_the_metadata(journal_url: str) -> None:
    """The `alembic check` equivalent: autogenerate finds nothing to do."""
    upgrade(journal_url)
    assert schema_diff(journal_url) == []


def test_open_refuses_an_empty_database(journal_url: str) -> None:
    with pytest.raises(JournalSchemaError) as info:
        Journal.open(journal_url)
    message = str(info.value)
    assert "\n" not in message
    assert f"is at schema <empty>, this version needs {head_revision()}" in message
    assert "run `replicator journal upgrade`" in message


def test_open_refuses_a_newer_schema(journal_url: str) -> None:
    upgrade(journal_url)
    engine = create_engine(parse_url(journal_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(JournalSchemaError, match="is at schema 9999, this version needs 0002"):
        Journal.open(journal_url)


def test_create_is_idempotent(journal_url: str) -> None:
    Journal.create(journal_url).close()
    Journal.create(journal_url).close()
    assert current_revision(journal_url) == head_revision()


def test_passwords_are_masked_in_schema_errors(backend: str, journal_url: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite URLs have no password")
    with_password = journal_url.replace("postgres:@", "postgres:s3cret@")
    assert with_password != journal_url
    with pytest.raises(JournalSchemaError) as info:
        Journal.open(with_password)  # trust auth ignores the password; the schema check fails
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def test_unreachable_postgres_is_one_masked_line() -> None:
    with pytest.raises(JournalError) as info:
        Journal.open("postgresql://me:s3cret@/journal?host=/nonexistent-socket-dir&connect_timeout=2")
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message
    assert message.startswith("journal postgresql+psycopg://me:***@/journal") and "connect failed" in message


def test_unusable_sqlite_path_is_a_journal_error(tmp_path: object) -> None:
    with pytest.raises(JournalError, match="journal sqlite:////proc/"):
        Journal.create("sqlite:////proc/no/such/dir/journal.db")


def test_unsupported_url_is_refused() -> None:
    with pytest.raises(JournalError, match="only sqlite and postgresql"):
        Journal.open("mysql://u:pw@host/db")
