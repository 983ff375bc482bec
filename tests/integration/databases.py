"""Databases for the integration tests: a fresh PostgreSQL database per test, and what the driver
sends (to prove the one-round-trip paths)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from einvoice import store


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create ``einvoice_test_<random>`` on the server of ``server_url``, migrate it, yield its
    URL, drop it afterwards (even when connections are left open)."""
    url = make_url(server_url)
    name = f"einvoice_test_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    database_url = url.set(database=name).render_as_string(hide_password=False)
    try:
        store.migrate(database_url)
        yield database_url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def terminate_other_backends(database_url: str) -> None:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def record_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """From now on, what psycopg sends: (first word of each statement, or command such as BEGIN;
    whether it went inside a pipeline), in order."""
    sent: list[tuple[str, bool]] = []
    execute, command = psycopg.Cursor.execute, psycopg.Connection._exec_command

    def counting_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((str(query).split()[0], self.connection._pipeline is not None))
        return execute(self, query, *args, **kwargs)

    def counting_command(self: psycopg.Connection[Any], command_: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((str(command_), self._pipeline is not None))
        return command(self, command_, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", counting_command)
    return sent


@contextmanager
def downgraded(database_url: str, revision: str) -> Iterator[dict[str, set[str]]]:
    """The database at ``database_url`` taken down to ``revision`` (its data kept, as a database of
    that release has it): yields its tables with their columns; brought back up to the newest
    revision when the block ends."""
    from alembic import command

    engine = store.make_engine(database_url)
    try:
        with engine.begin() as connection:
            command.downgrade(store._alembic_config(connection), revision)  # type: ignore[arg-type]
            seen = inspect(connection)
            tables = {name: {c["name"] for c in seen.get_columns(name)} for name in seen.get_table_names()}
        yield tables
        store.migrate(engine)
    finally:
        engine.dispose()
