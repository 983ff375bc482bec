from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, replace

import pytest

from einvoice.services import SupplierView, accounts
from einvoice.store import UnitOfWork


def test_add_supplier_returns_a_key_that_authenticates_and_stores_only_its_hash(
    uow_factory: Callable[[], UnitOfWork], supplier_and_key: tuple[SupplierView, str]
) -> None:
    supplier, key = supplier_and_key
    assert key.startswith("eik_")
    assert len(key) > 40
    assert accounts.authenticate_supplier(uow_factory(), key) == supplier
    with uow_factory() as uow:
        row = uow.suppliers.get(supplier.id)
        assert row is not None
        assert row.api_key_hash == accounts.hash_api_key(key)
        assert key not in row.api_key_hash


@pytest.mark.parametrize("key", ["", "eik_wrong", "not-a-key", "eik_" + "x" * 300])
def test_wrong_keys_do_not_authenticate(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, key: str
) -> None:
    assert accounts.authenticate_supplier(uow_factory(), key) is None


def test_endpoint_must_be_scheme_colon_id(uow_factory: Callable[[], UnitOfWork]) -> None:
    with pytest.raises(accounts.InvalidEndpointError):
        accounts.add_institution(uow_factory(), name="X", endpoint="987654321")
    assert accounts.parse_endpoint("0192:987654321") == ("0192", "987654321")


def test_same_endpoint_twice_is_refused(uow_factory: Callable[[], UnitOfWork]) -> None:
    accounts.add_institution(uow_factory(), name="A", endpoint="0192:974760673")
    with pytest.raises(accounts.DuplicateAccountError):
        accounts.add_institution(uow_factory(), name="B", endpoint="0192:974760673")
    assert [i.name for i in accounts.list_institutions(uow_factory())] == ["A"]


def test_list_suppliers(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    listed = accounts.list_suppliers(uow_factory())
    assert listed == [supplier]
    assert listed[0].to_dict()["endpoint"] == "0192:123456785"


def test_new_key_replaces_the_old_one(
    uow_factory: Callable[[], UnitOfWork], supplier_and_key: tuple[SupplierView, str]
) -> None:
    supplier, old_key = supplier_and_key
    _, new_key = accounts.new_supplier_key(uow_factory(), supplier.id)
    assert accounts.authenticate_supplier(uow_factory(), old_key) is None
    assert accounts.authenticate_supplier(uow_factory(), new_key) == supplier


def test_deactivated_supplier_does_not_authenticate(
    uow_factory: Callable[[], UnitOfWork], supplier_and_key: tuple[SupplierView, str]
) -> None:
    supplier, key = supplier_and_key
    accounts.set_supplier_active(uow_factory(), supplier.id, active=False)
    assert accounts.authenticate_supplier(uow_factory(), key) is None
    accounts.set_supplier_active(uow_factory(), supplier.id, active=True)
    assert accounts.authenticate_supplier(uow_factory(), key) is not None


def test_bad_identifiers_are_refused_unless_unchecked(uow_factory: Callable[[], UnitOfWork]) -> None:
    with pytest.raises(accounts.InvalidIdentifierError, match="PEPPOL-COMMON-R040"):
        accounts.add_supplier(uow_factory(), name="S", endpoint="0088:123")
    with pytest.raises(accounts.InvalidIdentifierError, match="BR-CO-09"):
        accounts.add_supplier(uow_factory(), name="S", endpoint="0192:974760673", vat="not a vat")
    with pytest.raises(accounts.InvalidIdentifierError, match="PEPPOL-EN16931-CL008"):
        accounts.add_institution(uow_factory(), name="I", endpoint="9999:123")
    supplier, _ = accounts.add_supplier(uow_factory(), name="S", endpoint="0088:123", vat="not a vat", unchecked=True)
    institution = accounts.add_institution(uow_factory(), name="I", endpoint="9999:123", unchecked=True)
    # kept in the compact form every identifier is compared in (services.intake's seller check)
    assert (supplier.endpoint, supplier.vat_id, institution.endpoint) == ("0088:123", "NOTAVAT", "9999:123")


def test_what_the_store_returns_is_a_snapshot_changed_only_through_its_write_methods(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    with uow_factory() as uow:
        before = uow.suppliers.get(supplier.id)
        assert before is not None
        with pytest.raises(FrozenInstanceError):
            before.active = False  # type: ignore[misc]
        after = uow.suppliers.set_active(supplier.id, False)
        uow.commit()
    assert (before.active, after.active) == (True, False)
    assert accounts.get_supplier(uow_factory(), supplier.id) == replace(supplier, active=False)
