"""The parsed ``Invoice`` as plain JSON-able data, and back: what the store keeps of a document.

Pure: no I/O. The dict mirrors the domain model (``einvoice.domain.invoice``) field by field,
under the same names: every business term the parser reads, the header, parties with all their
identifiers, lines, allowances and charges, VAT breakdown, totals. Decimals are strings written
with the scale the document gave them (``"10.50"`` stays ``"10.50"``), dates ISO 8601
(``"2026-11-01"``), the document kind its value (``"invoice"``, ``"credit_note"``), tuples lists.
A field at its default (None, an empty list) is left out, so a key that is absent means "not in
the document"; reading fills it in again.

Pydantic (already the engine's settings and API models) does the walking, from the dataclasses'
own type hints: a field added to the model is stored without a change here. ``FORMAT_VERSION``
says which form the stored data has: change it, and teach ``invoice_from_dict`` the older form,
when a field is renamed or its meaning changes.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter, ValidationError

from einvoice.domain.invoice import Invoice
from einvoice.errors import StoredInvoiceError  # defined there; importable from here too

#: The form of the data ``invoice_to_dict`` gives; stored beside it.
FORMAT_VERSION = 1


@functools.cache
def _adapter() -> TypeAdapter[Invoice]:
    # Built on first use (about 45 ms), not at import time.
    return TypeAdapter(Invoice)


def invoice_to_dict(invoice: Invoice) -> dict[str, Any]:
    """The invoice as a dict of JSON types only (str, bool, None, lists, dicts): ``json.dumps``
    takes it as it is. Fields at their defaults are left out."""
    data: dict[str, Any] = _adapter().dump_python(invoice, mode="json", exclude_defaults=True)
    return data


def invoice_from_dict(data: Any, *, format_version: int = FORMAT_VERSION) -> Invoice:
    """The ``Invoice`` that ``invoice_to_dict`` gave ``data`` for (equal to the one it was given).

    Raises ``StoredInvoiceError`` for another ``format_version`` or data that does not fit the
    model.
    """
    if format_version != FORMAT_VERSION:
        raise StoredInvoiceError(
            f"stored invoice data of format version {format_version}; this engine reads version {FORMAT_VERSION}"
        )
    try:
        return _adapter().validate_python(data)
    except ValidationError as exc:
        raise StoredInvoiceError(f"stored invoice data does not fit the model: {exc}") from None
