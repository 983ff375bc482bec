"""Institutions (buyers) and suppliers (who may submit), and their API keys.

An API key is ``eik_`` followed by 43 url-safe characters (32 random bytes). Only its sha256 is
stored; the key itself is returned once, by ``add_supplier``, ``new_supplier_key`` or
``new_institution_key``. A supplier's key submits documents; an institution's key registers its
commitments (and reaches nothing of another institution).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from einvoice.domain.identifiers import endpoint_problem, vat_problem

# defined in einvoice.errors; importable from here too, where they were first defined
from einvoice.errors import (
    AccountError,
    DuplicateAccountError,
    DuplicateKeyError,
    InvalidEndpointError,
    InvalidIdentifierError,
)
from einvoice.services import (
    InstitutionView,
    SupplierView,
    institution_view,
    supplier_view,
)
from einvoice.store import UnitOfWork
from einvoice.store.ports import InstitutionRecord
from einvoice.store.tables import InstitutionRow, SupplierRow, column_length

API_KEY_PREFIX = "eik_"
V = TypeVar("V")
_ENDPOINT = re.compile(r"^(?P<scheme>[0-9A-Za-z]{1,16}):(?P<id>\S{1,128})$")


def parse_endpoint(endpoint: str) -> tuple[str, str]:
    """Split ``"SCHEME:ID"`` into (scheme, id); raise InvalidEndpointError when it is not that."""
    match = _ENDPOINT.match(endpoint.strip())
    if not match:
        raise InvalidEndpointError(f"endpoint must be SCHEME:ID (e.g. 0192:987654325), not {endpoint!r}")
    return match["scheme"], match["id"]


def check_endpoint(scheme: str, endpoint_id: str) -> None:
    """Raise InvalidIdentifierError when ``scheme:endpoint_id`` is not a Peppol endpoint."""
    problem = endpoint_problem(scheme, endpoint_id)
    if problem:
        raise InvalidIdentifierError(f"endpoint {scheme}:{endpoint_id}: {problem}")


def check_vat(vat: str) -> None:
    """Raise InvalidIdentifierError when ``vat`` is not a VAT identifier (BT-31)."""
    problem = vat_problem(vat)
    if problem:
        raise InvalidIdentifierError(f"VAT identifier {vat!r}: {problem}")


def _fitting(value: str | None, what: str, row: type[InstitutionRow | SupplierRow], column: str) -> str | None:
    """``value`` stripped (None when empty); AccountError when longer than its column holds."""
    value = (value or "").strip() or None
    length = column_length(row, column)
    if value is not None and len(value) > length:
        raise AccountError(f"{what} is at most {length} characters, not {len(value)}")
    return value


def compact_identifier(value: str | None) -> str | None:
    """A party identifier in the one written form the register keeps and compares: no white
    space, upper case; None when empty. (``"lv 4000 3000 000"`` and ``"LV40003000000"`` are one.)"""
    return "".join((value or "").split()).upper() or None


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


def add_institution(uow: UnitOfWork, *, name: str, endpoint: str, unchecked: bool = False) -> InstitutionView:
    """Register a buyer institution. Raises InvalidEndpointError, InvalidIdentifierError (a scheme
    outside the Peppol EAS list, a wrong check digit; not with ``unchecked``), DuplicateAccountError,
    AccountError (no name, or one longer than 200 characters)."""
    scheme, endpoint_id = parse_endpoint(endpoint)
    if not unchecked:
        check_endpoint(scheme, endpoint_id)
    name = _fitting(name, "an institution's name", InstitutionRow, "name") or ""
    if not name:
        raise AccountError("an institution needs a name")
    with uow:
        if uow.institutions.by_endpoint(scheme, endpoint_id) is not None:
            raise DuplicateAccountError(f"an institution with endpoint {scheme}:{endpoint_id} exists")
        try:
            row = uow.institutions.add(
                InstitutionRow(name=name, endpoint_scheme=scheme, endpoint_id=endpoint_id, created_at=_now())
            )
            view = institution_view(row)
            uow.commit()
        except DuplicateKeyError as exc:
            raise DuplicateAccountError(f"an institution with endpoint {scheme}:{endpoint_id} exists") from exc
    return view


def add_supplier(
    uow: UnitOfWork,
    *,
    name: str,
    endpoint: str,
    vat: str | None = None,
    legal_id: str | None = None,
    tax_id: str | None = None,
    unchecked: bool = False,
) -> tuple[SupplierView, str]:
    """Register a supplier; return it and its new API key (the only time the key is available).

    ``endpoint`` is the supplier's Peppol endpoint (BT-34), ``vat`` its VAT identifier (BT-31),
    ``legal_id`` its legal registration identifier (BT-30), ``tax_id`` its tax registration
    identifier (BT-32); identifiers are kept in the form ``compact_identifier`` gives. Every
    identifier a document states for its seller is checked against these (``services.intake``).
    The endpoint and the VAT identifier are checked (Peppol EAS scheme, form and check digits,
    VAT country prefix) unless ``unchecked``. Raises InvalidEndpointError,
    InvalidIdentifierError, DuplicateAccountError, AccountError (no name, or a value longer than
    its column: name 200, VAT and tax identifiers 64, legal identifier 128 characters).
    """
    scheme, endpoint_id = parse_endpoint(endpoint)
    if not unchecked:
        check_endpoint(scheme, endpoint_id)
    name = _fitting(name, "a supplier's name", SupplierRow, "name") or ""
    if not name:
        raise AccountError("a supplier needs a name")
    vat = _fitting(vat, "a VAT identifier", SupplierRow, "vat_id")
    if vat is not None and not unchecked:
        check_vat(vat)  # as written: the message quotes what the administrator typed
    vat = compact_identifier(vat)
    legal_id = _fitting(compact_identifier(legal_id), "a legal identifier", SupplierRow, "legal_id")
    tax_id = _fitting(compact_identifier(tax_id), "a tax registration identifier", SupplierRow, "tax_id")
    api_key = new_api_key()
    with uow:
        if uow.suppliers.by_endpoint(scheme, endpoint_id) is not None:
            raise DuplicateAccountError(f"a supplier with endpoint {scheme}:{endpoint_id} exists")
        try:
            row = uow.suppliers.add(
                SupplierRow(
                    name=name,
                    endpoint_scheme=scheme,
                    endpoint_id=endpoint_id,
                    vat_id=vat,
                    legal_id=legal_id,
                    tax_id=tax_id,
                    api_key_hash=hash_api_key(api_key),
                    active=True,
                    created_at=_now(),
                )
            )
            view = supplier_view(row)
            uow.commit()
        except DuplicateKeyError as exc:
            raise DuplicateAccountError(f"a supplier with endpoint {scheme}:{endpoint_id} exists") from exc
    return view, api_key


def new_supplier_key(uow: UnitOfWork, supplier_id: str) -> tuple[SupplierView, str]:
    """Replace a supplier's API key (lost or leaked); return the supplier and the new key. The
    old key stops working at once. Raises NotFoundError."""
    from einvoice.errors import NotFoundError

    api_key = new_api_key()
    with uow:
        if uow.suppliers.get(supplier_id) is None:
            raise NotFoundError(f"no supplier {supplier_id}")
        view = supplier_view(uow.suppliers.set_api_key_hash(supplier_id, hash_api_key(api_key)))
        uow.commit()
    return view, api_key


def set_supplier_active(uow: UnitOfWork, supplier_id: str, *, active: bool) -> SupplierView:
    """Allow or stop a supplier's submissions (its key stops or starts working). Raises NotFoundError."""
    from einvoice.errors import NotFoundError

    with uow:
        if uow.suppliers.get(supplier_id) is None:
            raise NotFoundError(f"no supplier {supplier_id}")
        view = supplier_view(uow.suppliers.set_active(supplier_id, active))
        uow.commit()
    return view


def _key_holder(
    uow: UnitOfWork, api_key: str, store: Callable[[UnitOfWork], Any], view: Callable[[Any], V]
) -> V | None:
    """The ``view`` of the row of ``store`` holding ``api_key`` (compared in constant time), or None."""
    if not api_key or not api_key.startswith(API_KEY_PREFIX) or len(api_key) > 200:
        return None
    key_hash = hash_api_key(api_key)
    with uow:
        row = store(uow).by_key_hash(key_hash)
        if row is None or row.api_key_hash is None or not hmac.compare_digest(row.api_key_hash, key_hash):
            return None
        return view(row)


def authenticate_supplier(uow: UnitOfWork, api_key: str) -> SupplierView | None:
    """Return the active supplier holding ``api_key``, or None."""
    supplier = _key_holder(uow, api_key, lambda u: u.suppliers, supplier_view)
    return supplier if supplier is not None and supplier.active else None


def registered_institution(uow: UnitOfWork, endpoint: str) -> InstitutionRecord:
    """The institution registered with ``endpoint`` (inside ``uow``). Raises
    InvalidEndpointError, NotFoundError."""
    from einvoice.errors import NotFoundError

    scheme, endpoint_id = parse_endpoint(endpoint)
    row = uow.institutions.by_endpoint(scheme, endpoint_id)
    if row is None:
        raise NotFoundError(f"no institution with endpoint {scheme}:{endpoint_id}")
    return row


def institution_by_endpoint(uow: UnitOfWork, endpoint: str) -> InstitutionView:
    """The institution registered with ``endpoint`` (``SCHEME:ID``). Raises InvalidEndpointError,
    NotFoundError."""
    with uow:
        return institution_view(registered_institution(uow, endpoint))


def new_institution_key(uow: UnitOfWork, endpoint: str) -> tuple[InstitutionView, str]:
    """Issue a new API key to the institution registered with ``endpoint``; return it and the key
    (the only time the key is available; a key issued before stops working). Raises
    InvalidEndpointError, NotFoundError."""
    api_key = new_api_key()
    with uow:
        row = uow.institutions.set_api_key_hash(registered_institution(uow, endpoint).id, hash_api_key(api_key))
        view = institution_view(row)
        uow.commit()
    return view, api_key


def authenticate_institution(uow: UnitOfWork, api_key: str) -> InstitutionView | None:
    """Return the institution holding ``api_key``, or None."""
    return _key_holder(uow, api_key, lambda u: u.institutions, institution_view)


def list_institutions(uow: UnitOfWork) -> list[InstitutionView]:
    with uow:
        return [institution_view(row) for row in uow.institutions.list()]


def list_suppliers(uow: UnitOfWork) -> list[SupplierView]:
    with uow:
        return [supplier_view(row) for row in uow.suppliers.list()]


def get_supplier(uow: UnitOfWork, supplier_id: str) -> SupplierView | None:
    with uow:
        row = uow.suppliers.get(supplier_id)
        return supplier_view(row) if row is not None else None
