"""The tests of ``test_store_sqlite.py``, run against a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from einvoice import store
from einvoice.errors import TransientError
from einvoice.services import SupplierView
from einvoice.services.intake import SubmitOutcome, submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.integration.test_store_sqlite import *  # noqa: F403 - the same test functions
from tests.unit.services import documents

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


def _terminate_other_backends(database_url: str) -> None:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_a_lost_connection_during_intake_answers_transient_and_the_next_submission_succeeds(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    def submit(number: str) -> SubmitOutcome:
        return submit_document(
            uow_factory, supplier=supplier, raw=documents.invoice(number), idempotency_key=None, settings=Settings()
        )

    submit("LOST-0")  # the pool now holds a connection, used a moment ago: no ping before the next use
    _terminate_other_backends(database_url)
    with pytest.raises(TransientError):
        submit("LOST-1")
    assert submit("LOST-1").created
    with uow_factory() as uow:
        assert len(uow.documents.list_for_supplier(supplier.id)) == 2


def test_intake_of_a_new_document_is_one_round_trip(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
) -> None:
    def submit(number: str) -> SubmitOutcome:
        return submit_document(
            uow_factory, supplier=supplier, raw=documents.invoice(number), idempotency_key=None, settings=Settings()
        )

    submit("RT-0")  # institutions cached
    sent: list[tuple[str, bool]] = []  # (statement or command, inside a pipeline)
    execute, command = psycopg.Cursor.execute, psycopg.Connection._exec_command

    def counting_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((str(query).split()[0], self.connection._pipeline is not None))
        return execute(self, query, *args, **kwargs)

    def counting_command(self: psycopg.Connection[Any], command_: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((str(command_), self._pipeline is not None))
        return command(self, command_, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", counting_command)
    pipelines = []
    pipeline = psycopg.Connection.pipeline
    monkeypatch.setattr(psycopg.Connection, "pipeline", lambda self: pipelines.append(1) or pipeline(self))
    assert submit("RT-1").created
    # The lock and the statement, sent together, committed at the pipeline's sync: no BEGIN or
    # COMMIT of their own, nothing else.
    assert sent == [("SELECT", True), ("WITH", True)]
    assert len(pipelines) == 1
