"""The store speaks the engine's errors, never the driver's: a unique key taken is DuplicateKeyError
and a database that cannot be reached is DatabaseUnavailableError (a TransientError, so callers
retry), on SQLite and PostgreSQL; other integrity errors are bugs and pass through as they are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from einvoice import store
from einvoice.errors import DatabaseUnavailableError, DuplicateKeyError, TransientError
from einvoice.services import InstitutionView
from einvoice.store import UnitOfWork
from einvoice.store.tables import DocumentRow, InstitutionRow
from tests.serving import free_port

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def test_a_unique_key_taken_is_a_duplicate_key_error(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView
) -> None:
    scheme, endpoint = institution.endpoint.split(":", 1)

    def add_twin() -> None:
        with uow_factory() as uow:
            twin = InstitutionRow(
                id="another", name="Twin", endpoint_scheme=scheme, endpoint_id=endpoint, created_at=NOW
            )
            uow.institutions.add(twin)
            uow.commit()

    with pytest.raises(DuplicateKeyError):
        add_twin()
    with uow_factory() as uow:  # nothing was written, and the store goes on working
        assert uow.institutions.get("another") is None
        assert [i.id for i in uow.institutions.list()] == [institution.id]


def test_a_foreign_key_broken_is_a_bug_and_not_called_a_duplicate(uow_factory: Callable[[], UnitOfWork]) -> None:
    with pytest.raises(IntegrityError) as raised:
        _add_orphan(uow_factory)
    assert not isinstance(raised.value, DuplicateKeyError)
    with uow_factory() as uow:
        assert uow.session.get(DocumentRow, "d1") is None  # type: ignore[attr-defined]


def _add_orphan(uow_factory: Callable[[], UnitOfWork]) -> None:
    """A document of a supplier nobody registered."""
    with uow_factory() as uow:
        uow.documents.add_received(
            {
                "id": "d1",
                "supplier_id": "nobody",
                "institution_id": None,
                "status": "received",
                "sha256": "0" * 64,
                "size": 3,
                "received_at": NOW,
                "status_changed_at": NOW,
            },
            b"<x/>",
            actor="t",
            next_action="validate",
        )
        uow.commit()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(lambda tmp: f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", id="postgresql"),
        pytest.param(lambda tmp: f"sqlite:///{tmp}/no-such-folder/einvoice.db", id="sqlite"),
    ],
)
def test_a_database_that_cannot_be_reached_is_unavailable_and_worth_a_retry(url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = store.make_engine(url(tmp_path))
    try:
        with pytest.raises(DatabaseUnavailableError, match="database unavailable") as raised:
            engine.connect()
        assert isinstance(raised.value, TransientError)
    finally:
        engine.dispose()
