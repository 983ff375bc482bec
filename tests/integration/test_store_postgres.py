"""The tests of ``test_store_sqlite.py``, run against a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

from einvoice import store
from tests.integration.test_store_sqlite import *  # noqa: F403 - the same test functions

pytestmark = pytest.mark.postgres


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


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:  # type: ignore[no-redef]
    with fresh_postgres_database(postgres_url) as url:
        yield url
