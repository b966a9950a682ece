"""Connecting to a journal database and moving its schema: the only place that drives alembic.

Alembic is configured here, in code, so an installed package can migrate without an alembic.ini
or a working directory: the scripts are found next to the package (when shipped inside it) or
at the repository's top-level ``migrations/`` directory (a development checkout).

Every error leaves this module as a ``JournalError`` whose one line names the journal with its
password masked.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)

from replicator.errors import JournalError, JournalUnavailable
from replicator.journal.schema import metadata

# New revision files are named like versions/2026_12_03_0001_initial.py.
FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s"


def default_url(state_dir: Path) -> str:
    """The journal's URL when none is configured: a SQLite file in the state directory."""
    return f"sqlite:///{Path(state_dir).resolve() / 'journal.db'}"


def parse_url(url: str) -> URL:
    """Parse a journal URL; a bare ``postgresql://`` means psycopg 3, the driver we ship."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise JournalError(f"journal URL is not valid: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise JournalError(f"journal {masked(parsed)}: only sqlite and postgresql URLs are supported")
    return parsed


def masked(url: URL | str) -> str:
    """The URL as it may appear in a message or a log line: the password replaced by ***."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<invalid URL>"
    return url.render_as_string(hide_password=True)


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # WAL lets an operator's `replicator journal status` read while the worker writes;
    # synchronous=NORMAL is durable against process crashes, which is what resume needs (the
    # destination's own checkpoint covers a power loss). SQLite enforces foreign keys only when asked.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()


def make_engine(url: str | URL) -> Engine:
    """An engine for the journal, with the SQLite pragmas the journal relies on."""
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(f"journal {masked(parsed)}: cannot create its directory: {exc}") from None
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # synchronous_commit=off: the same trade as SQLite's synchronous=NORMAL (see store.py).
    return create_engine(parsed, pool_pre_ping=True, connect_args={"options": "-c synchronous_commit=off"})


@contextlib.contextmanager
def translate_errors(url: URL, doing: str) -> Iterator[None]:
    """Turn a SQLAlchemy error into a one-line JournalError naming the journal and the step."""
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first_line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        kind = JournalUnavailable if _is_outage(exc) else JournalError
        raise kind(f"journal {masked(url)}: {doing} failed: {first_line}") from exc


def _is_outage(exc: SQLAlchemyError) -> bool:
    """Connection refused or lost (retryable), as opposed to a constraint or a schema problem."""
    if isinstance(exc, DisconnectionError) or getattr(exc, "connection_invalidated", False):
        return True
    if isinstance(exc, OperationalError):
        text = str(exc).lower()
        return not any(w in text for w in ("no such table", "no such column", "syntax error", "readonly"))
    return isinstance(exc, InterfaceError)


def migrations_dir() -> Path:
    """Where the alembic scripts are: inside the installed package, else the repository's."""
    shipped = Path(str(resources.files("replicator.journal"))) / "migrations"
    if (shipped / "env.py").is_file():
        return shipped
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise JournalError(f"journal migrations not found (looked in {shipped} and {checkout})")


def alembic_config() -> Config:
    """The alembic configuration, built in code (no alembic.ini needed at run time)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("file_template", FILE_TEMPLATE)
    return config


def head_revision() -> str:
    """The schema revision this version of the code needs."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise JournalError("journal migrations have no head revision")
    return head


def _run(url: str, doing: str, action: str, target: str) -> None:
    parsed = parse_url(url)
    engine = make_engine(parsed)
    try:
        with translate_errors(parsed, doing), engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            if action == "upgrade":
                command.upgrade(config, target)
            else:
                command.downgrade(config, target)
    finally:
        engine.dispose()


def upgrade(url: str, target: str = "head") -> None:
    """Bring the journal's schema to ``target`` (default: this version's head); creates tables."""
    _run(url, "schema upgrade", "upgrade", target)


def downgrade(url: str, target: str) -> None:
    """Take the journal's schema back to ``target`` (a revision id, or "base" to drop everything)."""
    _run(url, "schema downgrade", "downgrade", target)


def connection_revision(connection: Connection) -> str | None:
    """The schema revision of the database behind an open connection (None when empty)."""
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(url: str) -> str | None:
    """The journal's schema revision, or None for an empty database."""
    parsed = parse_url(url)
    engine = make_engine(parsed)
    try:
        with translate_errors(parsed, "connect"), engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def schema_diff(url: str) -> list[str]:
    """Differences between the migrated database and the code's metadata (``alembic check``).

    Empty when the migrations and ``schema.py`` agree; CI runs this on SQLite and PostgreSQL.
    """
    parsed = parse_url(url)
    engine = make_engine(parsed)
    try:
        with translate_errors(parsed, "schema compare"), engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return [repr(diff) for diff in compare_metadata(context, metadata)]
    finally:
        engine.dispose()
