"""Integration fixtures: the store on both databases.

``database_url`` is a fresh, migrated database, once SQLite (a file) and once PostgreSQL (a fresh
database on the test server; those cases carry the ``postgres`` mark): a test that takes it, or
``uow_factory``, runs on both. A module that needs one database only defines its own
``database_url``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from einvoice import store
from einvoice.domain.commitments import Commitment
from einvoice.services import InstitutionView, SupplierView, accounts
from einvoice.store import UnitOfWork
from tests.integration.databases import fresh_postgres_database
from tests.unit.services import documents


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'einvoice.db'}"
        store.migrate(url)
        yield url
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
def uow_factory(database_url: str) -> Iterator[Callable[[], UnitOfWork]]:
    engine = store.make_engine(database_url)
    yield store.uow_factory_for(engine)
    engine.dispose()


@pytest.fixture
def institution(uow_factory: Callable[[], UnitOfWork]) -> InstitutionView:
    """The test documents' buyer (``tests.unit.services.documents``)."""
    return accounts.add_institution(uow_factory(), name="Ministry", endpoint=documents.BUYER_ENDPOINT, unchecked=True)


@pytest.fixture
def supplier(uow_factory: Callable[[], UnitOfWork], institution: InstitutionView) -> SupplierView:
    """The test documents' seller (``tests.unit.services.documents``), with their buyer registered."""
    return documents.register_seller(uow_factory)


@pytest.fixture
def contract(uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView) -> Commitment:
    """The institution's contract with the supplier that the test documents name (BT-10 ``REF-1``):
    with it, a valid test document is matched and approved."""
    return documents.register_contract(uow_factory, institution.id)
