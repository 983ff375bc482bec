"""The commitments register: institutions register orders, contracts and frameworks (by the API, a
CSV import or a Peppol Order), change them, record receipts; matching reads them.

The input forms (``CommitmentInput``, ``ReceiptInput``) are the API's JSON, checked field by field
with pydantic: every amount and quantity a decimal written as a string, currencies ISO 4217,
quantities and prices not negative, each line id once. What needs the register (the supplier must
be registered; a receipt's lines must be the commitment's) is checked here and raised as
``InvalidCommitmentError`` naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from einvoice.domain.commitments import (
    Budget,
    Commitment,
    CommitmentKind,
    CommitmentLine,
    CommitmentStatus,
    Receipt,
    ReceiptLine,
    Supplier,
    Tolerances,
    amount_of_lines,
    definition,
)
from einvoice.domain.states import DocumentStatus
from einvoice.errors import CommitmentConflictError, DuplicateKeyError, InvalidCommitmentError, NotFoundError
from einvoice.store import UnitOfWork
from einvoice.store.ports import SupplierRecord

# --- the input forms -------------------------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
MAX_DECIMAL_CHARACTERS = 40  # the register keeps decimals as text of at most 48

#: UNCL 5305 VAT category codes of EN 16931 (BT-151, BT-118).
VAT_CATEGORIES = frozenset({"S", "Z", "E", "AE", "K", "G", "O", "L", "M"})


def _decimal_string(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError('write amounts and quantities as decimal strings, such as "3.50"')
    text = value.strip()
    if len(text) > MAX_DECIMAL_CHARACTERS or not _DECIMAL.fullmatch(text):
        raise ValueError(f'not a decimal number (such as "3.50"): {value[:50]!r}')
    return Decimal(text)


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must not be negative, not {value}")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"must be more than zero, not {value}")
    return value


def _schema(example: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": _DECIMAL_PATTERN, "examples": [example]})


#: A decimal written as a JSON string ("3.50"); a JSON number is refused (a float may already
#: have lost digits on its way).
DecimalString = Annotated[Decimal, BeforeValidator(_decimal_string), _schema("3.50")]
NotNegative = Annotated[Decimal, BeforeValidator(_decimal_string), AfterValidator(_not_negative), _schema("2")]
Positive = Annotated[Decimal, BeforeValidator(_decimal_string), AfterValidator(_positive), _schema("100")]

Text64 = Annotated[str, Field(min_length=1, max_length=64)]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SupplierInput(_Form):
    """Any one of the identifiers identifies the supplier; each one given must be the same
    registered supplier's."""

    endpoint: str | None = Field(
        None, max_length=160, description="BT-34 form SCHEME:ID", examples=["0088:7300010000001"]
    )
    vat: str | None = Field(None, max_length=64, description="VAT identifier (BT-31)", examples=["LV40003000000"])
    legal_id: str | None = Field(None, max_length=128, description="Legal registration identifier (BT-30)")


class BudgetInput(_Form):
    programme: str | None = Field(None, max_length=64, examples=["01.00.00"])
    economic_code: str | None = Field(None, max_length=64, examples=["2239"])


class TolerancesInput(_Form):
    """A variance is within tolerance when it exceeds neither the percentage nor the absolute limit
    that is set; a limit left out allows nothing."""

    price_percent: NotNegative | None = None
    price_amount: NotNegative | None = None
    quantity_percent: NotNegative | None = None
    amount_percent: NotNegative | None = None
    amount_amount: NotNegative | None = None

    def domain(self) -> Tolerances:
        return Tolerances(**self.model_dump())


class LineInput(_Form):
    id: Text64
    seller_item_id: str | None = Field(None, max_length=200, description="Compared with BT-155")
    standard_item_id: str | None = Field(None, max_length=200, description="SCHEME:ID, compared with BT-157")
    description: str | None = Field(None, max_length=4000)
    quantity: Positive
    unit_code: str | None = Field(None, max_length=16, description="UN/ECE Recommendation 20 (as BT-130)")
    unit_price: NotNegative = Field(description="Net, per unit (as BT-146 per BT-149)")
    vat_category: str | None = Field(None, description="UNCL 5305 (as BT-151): S, Z, E, AE, K, G, O, L, M")
    vat_rate: NotNegative | None = Field(None, description="Percent (as BT-152)")
    account: str | None = Field(None, max_length=64)

    @field_validator("vat_category")
    @classmethod
    def _known_category(cls, value: str | None) -> str | None:
        if value is not None and value not in VAT_CATEGORIES:
            raise ValueError(f"not a VAT category code (UNCL 5305: {', '.join(sorted(VAT_CATEGORIES))}): {value!r}")
        return value


def _currency(value: str) -> str:
    if len(value) != 3 or not value.isupper() or pycountry.currencies.get(alpha_3=value) is None:
        raise ValueError(f"not an ISO 4217 currency code: {value[:20]!r}")
    return value


#: The example commitment of the API description (``POST /v1/commitments``), issue #11's.
COMMITMENT_EXAMPLE: dict[str, Any] = {
    "number": "PO-2026-0042",
    "kind": "order",
    "supplier": {"endpoint": "0088:7300010000001", "vat": "LV40003000000"},
    "currency": "EUR",
    "valid_from": "2026-01-01",
    "valid_to": "2026-12-31",
    "budget": {"programme": "01.00.00", "economic_code": "2239"},
    "account": "2239",
    "receipt_required": False,
    "amount": "5000.00",
    "tolerances": {
        "price_percent": "2",
        "price_amount": "1.00",
        "quantity_percent": "0",
        "amount_percent": "0",
        "amount_amount": "0.00",
    },
    "lines": [
        {
            "id": "1",
            "seller_item_id": "SKU-1",
            "standard_item_id": "0160:7300010000017",
            "description": "Printer paper A4",
            "quantity": "100",
            "unit_code": "C62",
            "unit_price": "3.50",
            "vat_category": "S",
            "vat_rate": "21",
            "account": "2311",
        }
    ],
}


class CommitmentInput(_Form):
    """A commitment as an institution registers it (``POST /v1/commitments``)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"example": COMMITMENT_EXAMPLE},
    )

    number: Text200 = Field(description="Compared with invoices' BT-13, BT-12 and BT-10")
    kind: CommitmentKind = Field(description="order, contract or framework; contracts and frameworks may have no lines")
    supplier: SupplierInput
    currency: Annotated[str, AfterValidator(_currency)] = Field(description="ISO 4217", examples=["EUR"])
    valid_from: date | None = None
    valid_to: date | None = None
    budget: BudgetInput | None = None
    account: str | None = Field(None, max_length=64)
    receipt_required: bool = Field(False, description="Three-way: invoices may take only what receipts say arrived")
    amount: NotNegative | None = Field(
        None, description="The ceiling, VAT included (what BT-112 consumes); default: the lines with their VAT"
    )
    tolerances: TolerancesInput | None = Field(None, description="Default: the institution's (exact unless set)")
    status: CommitmentStatus = Field(CommitmentStatus.OPEN, description="open, or closed: no more invoices")
    lines: list[LineInput] = Field(default_factory=list, max_length=10_000)

    @field_validator("lines")
    @classmethod
    def _each_id_once(cls, lines: list[LineInput]) -> list[LineInput]:
        seen: set[str] = set()
        for line in lines:
            if line.id in seen:
                raise ValueError(f"line id {line.id!r} appears more than once")
            seen.add(line.id)
        return lines


class ReceiptLineInput(_Form):
    line: Text64 = Field(description="The commitment line's id")
    quantity: Positive


class ReceiptInput(_Form):
    """Goods received or services accepted (``POST /v1/commitments/{number}/receipts``)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "example": {"reference": "GRN-17", "received_on": "2026-03-01", "lines": [{"line": "1", "quantity": "40"}]}
        },
    )

    reference: Text200
    received_on: date
    lines: list[ReceiptLineInput] = Field(min_length=1, max_length=10_000)


# --- what the register answers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    """A registration's outcome: the commitment as it is now, and whether this call created it
    (False: the same content was registered before, nothing changed)."""

    commitment: Commitment
    created: bool


def _now() -> datetime:
    return datetime.now(UTC)


def _resolve_supplier(uow: UnitOfWork, supplier: SupplierInput, field: str) -> SupplierRecord:
    """The registered supplier every identifier of ``supplier`` names; InvalidCommitmentError else."""
    from einvoice.services.accounts import AccountError, compact_identifier, parse_endpoint

    found: list[tuple[str, SupplierRecord | None]] = []
    if supplier.endpoint:
        try:
            scheme, endpoint_id = parse_endpoint(supplier.endpoint)
        except AccountError as exc:
            raise InvalidCommitmentError(f"{field}.endpoint", str(exc)) from None
        found.append((f"endpoint {supplier.endpoint}", uow.suppliers.by_endpoint(scheme, endpoint_id)))
    if supplier.vat:
        vat = compact_identifier(supplier.vat) or ""
        found.append((f"VAT id {supplier.vat}", uow.suppliers.by_identifier("vat_id", vat)))
    if supplier.legal_id:
        found.append(
            (
                f"legal id {supplier.legal_id}",
                uow.suppliers.by_identifier("legal_id", compact_identifier(supplier.legal_id) or ""),
            )
        )
    if not found:
        raise InvalidCommitmentError(field, "name the supplier by its endpoint, VAT id or legal id")
    for what, row in found:
        if row is None:
            raise InvalidCommitmentError(field, f"no supplier is registered with {what}")
    ids = {row.id for _, row in found if row is not None}
    if len(ids) > 1:
        raise InvalidCommitmentError(field, "the identifiers name different registered suppliers")
    row = found[0][1]
    assert row is not None
    return row


def build_commitment(
    uow: UnitOfWork, data: CommitmentInput, *, institution_id: str, field_prefix: str = "body."
) -> Commitment:
    """The domain ``Commitment`` ``data`` describes for the institution (figures zero): the
    supplier resolved, tolerances defaulted to the institution's, the amount to the lines with
    their VAT. Raises InvalidCommitmentError naming the field (``field_prefix`` before it)."""
    supplier = _resolve_supplier(uow, data.supplier, field_prefix + "supplier")
    if data.valid_from and data.valid_to and data.valid_to < data.valid_from:
        raise InvalidCommitmentError(
            field_prefix + "valid_to", f"{data.valid_to} is before valid_from {data.valid_from}"
        )
    if data.kind == CommitmentKind.ORDER and not data.lines:
        raise InvalidCommitmentError(field_prefix + "lines", "an order needs at least one line")
    lines = tuple(
        CommitmentLine(
            id=line.id,
            quantity=line.quantity,
            unit_price=line.unit_price,
            unit_code=line.unit_code,
            description=line.description,
            seller_item_id=line.seller_item_id,
            standard_item_id=line.standard_item_id,
            vat_category=line.vat_category,
            vat_rate=line.vat_rate,
            account=line.account,
        )
        for line in data.lines
    )
    if data.amount is None and not lines:
        raise InvalidCommitmentError(field_prefix + "amount", "a commitment without lines needs its amount")
    amount = data.amount if data.amount is not None else amount_of_lines(lines)
    tolerances = data.tolerances.domain() if data.tolerances else uow.commitments.default_tolerances(institution_id)
    budget = data.budget or BudgetInput()
    return Commitment(
        number=data.number,
        kind=data.kind,
        institution_id=institution_id,
        supplier_id=supplier.id,
        currency=data.currency,
        amount=amount,
        lines=lines,
        supplier=Supplier(endpoint=data.supplier.endpoint, vat=data.supplier.vat, legal_id=data.supplier.legal_id),
        valid_from=data.valid_from,
        valid_to=data.valid_to,
        budget=Budget(programme=budget.programme, economic_code=budget.economic_code),
        account=data.account,
        receipt_required=data.receipt_required,
        tolerances=tolerances,
        status=data.status,
        reserved=Decimal("0.00"),
        consumed=Decimal("0.00"),
    )


def register(
    uow: UnitOfWork, data: CommitmentInput, *, institution_id: str, source: str = "api", field_prefix: str = "body."
) -> Registered:
    """Register the institution's commitment ``data``. The same number again: unchanged (``created``
    False) when its content is the same, CommitmentConflictError when it differs (change it with
    ``change``). Raises InvalidCommitmentError naming the field."""
    with uow:
        commitment = build_commitment(uow, data, institution_id=institution_id, field_prefix=field_prefix)
        existing = uow.commitments.get(institution_id, data.number)
        if existing is None:
            try:
                uow.commitments.add(commitment, source=source, at=_now())
                uow.commit()
            except DuplicateKeyError:  # registered by a concurrent request meanwhile
                uow.rollback()
                existing = uow.commitments.get(institution_id, data.number)
                if existing is None:
                    raise
            else:
                return Registered(commitment, created=True)
        if definition(existing) != definition(commitment):
            raise CommitmentConflictError(
                f"commitment {data.number} is registered with other content; "
                "change it with PUT /v1/commitments/{number}"
            )
        return Registered(existing, created=False)


def change(uow: UnitOfWork, data: CommitmentInput, *, institution_id: str, number: str) -> Commitment:
    """Replace the definition of the institution's commitment ``number`` with ``data``, keeping its
    figures. Raises NotFoundError, InvalidCommitmentError (``data.number`` is not ``number``, or a
    field as ``register`` checks them), CommitmentConflictError (a line that receipts or invoices
    hold would go, or the supplier or currency would change while invoices hold an amount)."""
    if data.number != number:
        raise InvalidCommitmentError("body.number", f"{data.number!r} is not the number of the address, {number!r}")
    with uow:
        existing = uow.commitments.get(institution_id, number, for_update=True)
        if existing is None:
            raise NotFoundError(f"no commitment {number}")
        new = build_commitment(uow, data, institution_id=institution_id)
        held = existing.reserved != 0 or existing.consumed != 0
        if held and (new.supplier_id != existing.supplier_id or new.currency != existing.currency):
            raise CommitmentConflictError(
                f"commitment {number}: invoices hold {existing.reserved + existing.consumed} of it; "
                "its supplier and currency cannot change"
            )
        lines = []
        kept = {line.id for line in new.lines}
        for old in existing.lines:
            if old.id not in kept and (old.received or old.invoiced):
                raise CommitmentConflictError(
                    f"commitment {number}: line {old.id} has {old.received} received and {old.invoiced} invoiced; "
                    "it cannot be removed"
                )
        for line in new.lines:
            old_line = existing.line(line.id)
            if old_line is not None:
                line = replace(line, received=old_line.received, invoiced=old_line.invoiced)
            lines.append(line)
        changed = replace(new, lines=tuple(lines), reserved=existing.reserved, consumed=existing.consumed)
        uow.commitments.replace(changed, at=_now())
        uow.commit()
    return changed


def get(uow: UnitOfWork, *, institution_id: str, number: str) -> Commitment:
    """The institution's commitment ``number``; NotFoundError when it has none."""
    with uow:
        commitment = uow.commitments.get(institution_id, number)
    if commitment is None:
        raise NotFoundError(f"no commitment {number}")
    return commitment


def list_commitments(
    uow: UnitOfWork, *, institution_id: str, supplier: str | None = None, status: str | None = None, limit: int = 100
) -> list[Commitment]:
    """The institution's commitments by number; ``supplier`` a supplier's id, endpoint, VAT id or
    legal id (one no supplier holds finds nothing)."""
    with uow:
        supplier_id = None
        if supplier:
            row = _supplier_named(uow, supplier)
            if row is None:
                return []
            supplier_id = row.id
        return uow.commitments.list_for(institution_id, supplier_id=supplier_id, status=status, limit=limit)


def _supplier_named(uow: UnitOfWork, name: str) -> SupplierRecord | None:
    from einvoice.services.accounts import AccountError, compact_identifier, parse_endpoint

    row = uow.suppliers.get(name)
    if row is None and ":" in name:
        try:
            row = uow.suppliers.by_endpoint(*parse_endpoint(name))
        except AccountError:
            row = None
    compact = compact_identifier(name) or ""
    return row or uow.suppliers.by_identifier("vat_id", compact) or uow.suppliers.by_identifier("legal_id", compact)


@dataclass(frozen=True, slots=True)
class ReceiptRecorded:
    receipt: Receipt
    commitment: Commitment
    created: bool


def record_receipt(uow: UnitOfWork, data: ReceiptInput, *, institution_id: str, number: str) -> ReceiptRecorded:
    """Record a receipt against the institution's commitment ``number``: each line's quantity is
    added to what the line has ``received``. The same reference again: unchanged (``created``
    False) when its content is the same, CommitmentConflictError when it differs. Raises
    NotFoundError, InvalidCommitmentError (a line the commitment does not have, a line twice)."""
    receipt = Receipt(
        reference=data.reference,
        received_on=data.received_on,
        lines=tuple(ReceiptLine(line=line.line, quantity=line.quantity) for line in data.lines),
    )
    with uow:
        commitment = uow.commitments.get(institution_id, number, for_update=True)
        if commitment is None:
            raise NotFoundError(f"no commitment {number}")
        earlier = uow.commitments.receipt(institution_id, number, data.reference)
        if earlier is not None:
            same_lines = sorted((x.line, x.quantity) for x in earlier.lines) == sorted(
                (x.line, x.quantity) for x in receipt.lines
            )
            if not same_lines or earlier.received_on != receipt.received_on:
                raise CommitmentConflictError(
                    f"receipt {data.reference} of commitment {number} is recorded with other content"
                )
            return ReceiptRecorded(earlier, commitment, created=False)
        seen: set[str] = set()
        for n, line in enumerate(receipt.lines):
            if commitment.line(line.line) is None:
                raise InvalidCommitmentError(f"body.lines.{n}.line", f"commitment {number} has no line {line.line!r}")
            if line.line in seen:
                raise InvalidCommitmentError(f"body.lines.{n}.line", f"line {line.line!r} appears more than once")
            seen.add(line.line)
        uow.commitments.add_receipt(institution_id, number, receipt, at=_now())
        now = uow.commitments.get(institution_id, number)
        uow.commit()
    assert now is not None
    return ReceiptRecorded(receipt, now, created=True)


# --- institutions' defaults, late commitments ------------------------------------------------------


def set_default_tolerances(uow: UnitOfWork, *, institution_id: str, tolerances: Tolerances) -> Tolerances:
    """Set the tolerances the institution's commitments registered without their own take."""
    with uow:
        if uow.institutions.get(institution_id) is None:
            raise NotFoundError(f"no institution {institution_id}")
        uow.commitments.set_default_tolerances(institution_id, tolerances, at=_now())
        uow.commit()
    return tolerances


def late_documents(uow: UnitOfWork, *, institution_id: str, number: str) -> list[str]:
    """Ids of the institution's documents waiting in ``exception`` whose BT-13 (order reference),
    BT-12 (contract reference) or BT-10 (buyer reference) is ``number``, oldest first: the documents
    to match again once the commitment ``number`` is registered or changed (invoices that arrived
    before their order)."""
    with uow:
        return uow.commitments.documents_referencing(institution_id, number, status=DocumentStatus.EXCEPTION.value)


# --- bulk import (CSV) -----------------------------------------------------------------------------

#: The columns of ``einvoice commitments import``: one row per commitment line; the commitment's own
#: columns repeat on each of its rows (the first row's count, the others must agree or be empty).
HEADER_COLUMNS = (
    "number",
    "kind",
    "supplier_endpoint",
    "supplier_vat",
    "supplier_legal_id",
    "currency",
    "valid_from",
    "valid_to",
    "budget_programme",
    "budget_economic_code",
    "account",
    "receipt_required",
    "amount",
    "price_percent",
    "price_amount",
    "quantity_percent",
    "amount_percent",
    "amount_amount",
    "status",
)
LINE_COLUMNS = (
    "line",
    "seller_item_id",
    "standard_item_id",
    "description",
    "quantity",
    "unit_code",
    "unit_price",
    "vat_category",
    "vat_rate",
    "line_account",
)
CSV_COLUMNS = HEADER_COLUMNS + LINE_COLUMNS
REQUIRED_COLUMNS = ("number", "kind", "currency")

_TOLERANCE_COLUMNS = ("price_percent", "price_amount", "quantity_percent", "amount_percent", "amount_amount")
# The JSON field a column fills, and back (for errors): line fields by their JSON names.
_LINE_FIELD = {"line": "id", "line_account": "account"}
_LINE_COLUMN = {v: k for k, v in _LINE_FIELD.items()}


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # the line of the file (the header is line 1)
    column: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """One commitment of an import: ``created``, ``unchanged`` (registered before with the same
    content) or ``failed`` (``errors``, each on its row; the commitment's other rows are not
    imported either)."""

    number: str
    rows: tuple[int, ...]
    outcome: str
    errors: tuple[RowError, ...] = ()


def group_rows(rows: list[tuple[int, dict[str, str]]]) -> list[tuple[str, list[tuple[int, dict[str, str]]]]]:
    """The rows (line number, cells) by commitment number, in the order numbers first appear."""
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for row_number, cells in rows:
        groups.setdefault((cells.get("number") or "").strip(), []).append((row_number, cells))
    return list(groups.items())


def _cell(cells: dict[str, str], column: str) -> str | None:
    value = (cells.get(column) or "").strip()
    return value or None


def input_from_rows(rows: list[tuple[int, dict[str, str]]]) -> tuple[dict[str, Any] | None, list[RowError]]:
    """The JSON form of the commitment ``rows`` (line number, cells) describe, or the errors that
    keep them from describing one: a commitment column that differs from the first row's, a
    second row without a line."""
    first_row, first = rows[0]
    errors: list[RowError] = []
    for row_number, cells in rows[1:]:
        for column in HEADER_COLUMNS:
            value = _cell(cells, column)
            if value is not None and value != _cell(first, column):
                errors.append(
                    RowError(row_number, column, f"{value!r} differs from {_cell(first, column)!r} on row {first_row}")
                )
    lines: list[dict[str, Any]] = []
    for row_number, cells in rows:
        line = {_LINE_FIELD.get(c, c): _cell(cells, c) for c in LINE_COLUMNS}
        if line["id"] is None:
            if len(rows) > 1 or any(v is not None for v in line.values()):
                errors.append(
                    RowError(row_number, "line", "each row of a commitment with several rows needs its line id")
                )
            continue
        lines.append({k: v for k, v in line.items() if v is not None})
    if errors:
        return None, errors
    supplier = {
        "endpoint": _cell(first, "supplier_endpoint"),
        "vat": _cell(first, "supplier_vat"),
        "legal_id": _cell(first, "supplier_legal_id"),
    }
    data: dict[str, Any] = {
        "number": _cell(first, "number"),
        "kind": _cell(first, "kind"),
        "supplier": {k: v for k, v in supplier.items() if v is not None},
        "currency": _cell(first, "currency"),
        "valid_from": _cell(first, "valid_from"),
        "valid_to": _cell(first, "valid_to"),
        "budget": {
            "programme": _cell(first, "budget_programme"),
            "economic_code": _cell(first, "budget_economic_code"),
        },
        "account": _cell(first, "account"),
        "receipt_required": _cell(first, "receipt_required"),
        "amount": _cell(first, "amount"),
        "status": _cell(first, "status"),
        "lines": lines,
    }
    tolerances = {c: _cell(first, c) for c in _TOLERANCE_COLUMNS}
    if any(v is not None for v in tolerances.values()):
        data["tolerances"] = {k: v for k, v in tolerances.items() if v is not None}
    return {k: v for k, v in data.items() if v is not None}, []


def _column_of(location: tuple[Any, ...] | list[Any], rows: list[tuple[int, dict[str, str]]]) -> tuple[int, str | None]:
    """The row and column of the CSV an input form's error location (``("lines", 2, "quantity")``)
    points at."""
    parts = list(location)
    first_row = rows[0][0]
    if not parts:
        return first_row, None
    if parts[0] == "lines" and len(parts) >= 2 and isinstance(parts[1], int):
        # lines come from the rows in order (the rows without a line make no line)
        with_lines = [n for n, cells in rows if _cell(cells, "line") is not None]
        row = with_lines[parts[1]] if parts[1] < len(with_lines) else first_row
        field = str(parts[2]) if len(parts) > 2 else "line"
        return row, _LINE_COLUMN.get(field, field)
    if parts[0] == "lines":
        return first_row, "line"
    if parts[0] in ("supplier", "budget") and len(parts) > 1:
        return first_row, f"{parts[0]}_{parts[1]}"
    if parts[0] == "tolerances" and len(parts) > 1:
        return first_row, str(parts[1])
    if parts[0] == "supplier":
        return first_row, "supplier_endpoint"
    return first_row, str(parts[0])


def import_commitment(uow: UnitOfWork, rows: list[tuple[int, dict[str, str]]], *, institution_id: str) -> ImportOutcome:
    """Register the commitment ``rows`` (line number, cells, one row per line) describe for the
    institution, as ``register`` does (the same content again changes nothing). An error fails the
    commitment, never the import: it is returned on its row and column."""
    from pydantic import ValidationError

    number = _cell(rows[0][1], "number") or ""
    row_numbers = tuple(n for n, _ in rows)

    def failed(*errors: RowError) -> ImportOutcome:
        return ImportOutcome(number, row_numbers, "failed", tuple(errors))

    data, errors = input_from_rows(rows)
    if data is None:
        return failed(*errors)
    try:
        form = CommitmentInput.model_validate(data)
    except ValidationError as exc:
        found = []
        for error in exc.errors():
            row, column = _column_of(error["loc"], rows)
            found.append(RowError(row, column, error["msg"].removeprefix("Value error, ")))
        return failed(*found)
    try:
        outcome = register(uow, form, institution_id=institution_id, source="import", field_prefix="")
    except InvalidCommitmentError as exc:
        row, column = _column_of(exc.field.split("."), rows)
        return failed(RowError(row, column, exc.message))
    except CommitmentConflictError:
        return failed(
            RowError(rows[0][0], None, f"commitment {number} is registered with other content; change it with PUT")
        )
    return ImportOutcome(number, row_numbers, "created" if outcome.created else "unchanged")
