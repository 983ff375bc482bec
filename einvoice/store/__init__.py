"""Storage: SQLAlchemy tables, repositories, the unit of work, and alembic migrations.

Identical behaviour on SQLite (embedded) and PostgreSQL (production); ``engine.make_engine``
holds the few differences.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from einvoice.store.engine import is_sqlite, make_engine
from einvoice.store.ports import UnitOfWork
from einvoice.store.uow import SqlUnitOfWork, uow_factory_for

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

__all__ = ["MIGRATIONS_DIR", "SqlUnitOfWork", "UnitOfWork", "is_sqlite", "make_engine", "migrate", "uow_factory_for"]


def _alembic_config(connection: object | None = None) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Bring the database at ``url_or_engine`` up to ``revision`` (default: the newest).

    On PostgreSQL an advisory lock keeps concurrent callers (several processes starting at
    once) from migrating the same database twice.
    """
    from alembic import command

    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
            command.upgrade(_alembic_config(connection), revision)  # type: ignore[arg-type]
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()  # type: ignore[arg-type]
