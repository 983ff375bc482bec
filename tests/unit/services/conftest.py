"""Unit-test wiring for services: the store's in-memory twin (``store.memory``), fresh per test:
no database, no I/O. The same services run against SQLite and PostgreSQL in ``tests/integration``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from einvoice.domain.commitments import Commitment
from einvoice.services import InstitutionView, SupplierView, accounts
from einvoice.store import UnitOfWork
from einvoice.store.memory import memory_uow_factory
from tests.unit.services.documents import (
    BUYER_ENDPOINT,
    SELLER_ENDPOINT,
    SELLER_LEGAL_ID,
    SELLER_VAT,
    register_contract,
)


@pytest.fixture
def uow_factory() -> Callable[[], UnitOfWork]:
    return memory_uow_factory()


@pytest.fixture
def institution(uow_factory: Callable[[], UnitOfWork]) -> InstitutionView:
    return accounts.add_institution(uow_factory(), name="Ministry of Finance", endpoint=BUYER_ENDPOINT)


@pytest.fixture
def supplier_and_key(uow_factory: Callable[[], UnitOfWork]) -> tuple[SupplierView, str]:
    return accounts.add_supplier(
        uow_factory(), name="Acme Ltd", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, legal_id=SELLER_LEGAL_ID
    )


@pytest.fixture
def supplier(supplier_and_key: tuple[SupplierView, str]) -> SupplierView:
    return supplier_and_key[0]


@pytest.fixture
def contract(uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView) -> Commitment:
    """The institution's contract with the supplier that the factory's invoices name (BT-10
    ``REF-1``): with it, a valid invoice is matched and approved."""
    return register_contract(uow_factory, institution.id)
