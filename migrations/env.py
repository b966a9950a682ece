"""Alembic environment for the journal.

Run by ``replicator.journal.migrate`` (which passes an open connection in
``config.attributes["connection"]``) or by a developer through the top-level alembic.ini:
``alembic -x url=sqlite:///dev.db revision --autogenerate --rev-id 0002 -m "..."``.
Batch mode is on so that ALTERs work on SQLite.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from replicator.journal.migrate import make_engine
from replicator.journal.schema import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the journal URL: alembic -x url=<URL> ...")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, render_as_batch=True, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _configure_and_run(given)
else:
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _configure_and_run(connection)
    finally:
        engine.dispose()
