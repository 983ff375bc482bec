"""Alembic environment. Runs on a connection handed over by ``einvoice.store.migrate`` or, from
the alembic command line, on ``EINVOICE_DATABASE_URL`` / the settings' default URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from einvoice.store.tables import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from einvoice.bootstrap import database_engine
    from einvoice.settings import get_settings

    engine = database_engine(get_settings())
    try:
        with engine.connect() as new_connection:
            _run(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():  # pragma: no cover - the engine never emits SQL scripts
    raise SystemExit("offline migrations are not supported; run `einvoice db upgrade`")
run_migrations_online()
