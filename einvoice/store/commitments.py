"""The commitments register: commitments with their lines, receipts, institutions' default
tolerances, read and written as the domain types of ``einvoice.domain.commitments``.

A commitment is addressed by its institution and number (unique together). Its figures
(``reserved``, ``consumed``, and per line ``received`` and ``invoiced``) change only under a lock
on its row: ``change_figures`` reads the commitment ``FOR UPDATE`` on PostgreSQL (SQLite's
``BEGIN IMMEDIATE`` serialises writers already) and adds to them; matching locks the commitments it
needs with ``lock`` (one statement) and writes the figures it worked out with ``put_figures``. Any
number of workers matching invoices against one commitment at once take their turns on its row.
Nothing here commits: the unit of work does.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from einvoice.domain.commitments import (
    Budget,
    Commitment,
    CommitmentKind,
    CommitmentLine,
    CommitmentStatus,
    DespatchAdvice,
    DespatchLine,
    DespatchStatus,
    Receipt,
    ReceiptLine,
    Supplier,
    Tolerances,
)
from einvoice.store import writes
from einvoice.store.tables import (
    CommitmentLineRow,
    CommitmentRow,
    DespatchAdviceLineRow,
    DespatchAdviceRow,
    DocumentRow,
    InstitutionToleranceRow,
    ParsedDocumentRow,
    ReceiptLineRow,
    ReceiptRow,
)

ZERO = Decimal(0)
_COMMITMENTS: Table = CommitmentRow.__table__  # type: ignore[assignment]
_LINES: Table = CommitmentLineRow.__table__  # type: ignore[assignment]

# Matching's statements, built once: it runs them for every document, and building them cost more
# than running them.
_KEY = (_COMMITMENTS.c.institution_id == bindparam("k_institution"), _COMMITMENTS.c.number == bindparam("k_number"))
_LOCK = (
    select(_COMMITMENTS)
    .where(
        _COMMITMENTS.c.institution_id == bindparam("institution_id"),
        _COMMITMENTS.c.number.in_(bindparam("numbers", expanding=True)),
    )
    .order_by(_COMMITMENTS.c.number)
    .with_for_update()
)
_LINES_OF = (
    select(_LINES)
    .where(_LINES.c.commitment_id.in_(bindparam("ids", expanding=True)))
    .order_by(_LINES.c.commitment_id, _LINES.c.position)
)
_PUT_FIGURES = (
    update(_COMMITMENTS)
    .where(
        *_KEY,
        _COMMITMENTS.c.reserved == bindparam("old_reserved"),
        _COMMITMENTS.c.consumed == bindparam("old_consumed"),
    )
    .values(reserved=bindparam("new_reserved"), consumed=bindparam("new_consumed"), updated_at=bindparam("at"))
)
_PUT_LINES = (
    update(_LINES)
    .where(
        _LINES.c.commitment_id == select(_COMMITMENTS.c.id).where(*_KEY).scalar_subquery(),
        _LINES.c.line_id == bindparam("k_line"),
    )
    .values(received=bindparam("new_received"), invoiced=bindparam("new_invoiced"))
)
_TOLERANCE_FIELDS = ("price_percent", "price_amount", "quantity_percent", "amount_percent", "amount_amount")

#: The references of an invoice that may name a commitment, as ``parsed_documents`` keeps them:
#: BT-13 (purchase order), BT-12 (contract), BT-10 (buyer reference).
REFERENCE_FIELDS = ("order_reference", "contract_reference", "buyer_reference")


class CommitmentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- reading -------------------------------------------------------------------------------

    def get(self, institution_id: str, number: str, *, for_update: bool = False) -> Commitment | None:
        """The institution's commitment ``number`` with its lines, or None. ``for_update``: locked
        until the transaction ends (PostgreSQL ``SELECT … FOR UPDATE``), for a change of its figures
        that depends on them (matching's reservation)."""
        row = self._row(institution_id, number, for_update=for_update)
        return None if row is None else self._commitment(row)

    def by_number(
        self,
        institution_id: str,
        number: str,
        *,
        kinds: Collection[CommitmentKind] | None = None,
        for_update: bool = False,
    ) -> Commitment | None:
        """The institution's commitment ``number`` if it is of one of ``kinds`` (None: any kind):
        the lookups of matching, by BT-13 (orders), BT-12 (contracts and frameworks) and BT-10
        (any kind)."""
        row = self._row(institution_id, number, for_update=for_update)
        if row is None or (kinds is not None and row.kind not in {CommitmentKind(k).value for k in kinds}):
            return None
        return self._commitment(row)

    def lock(self, institution_id: str, numbers: Collection[str]) -> dict[str, Commitment]:
        """The institution's commitments of ``numbers`` (those it has) with their lines, each
        locked until the transaction ends (``FOR UPDATE`` on PostgreSQL), taken in number order so
        that two transactions wanting the same commitments queue instead of deadlocking. What
        matching reserves on is read this way: two statements, the commitments locked, then their
        lines. Not one join: a statement that waited for a lock sees the locked row as it is now
        but the rows it joins as they were when it began, before the other transaction changed
        the lines."""
        if not numbers:
            return {}
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            return self._lock_pg(institution_id, sorted(numbers))
        heads = connection.execute(_LOCK, {"institution_id": institution_id, "numbers": sorted(numbers)}).all()
        if not heads:
            return {}
        lines: dict[str, list[Any]] = {head.id: [] for head in heads}
        for row in connection.execute(_LINES_OF, {"ids": list(lines)}):
            lines[row.commitment_id].append(row)
        return {head.number: _commitment(head, lines[head.id]) for head in heads}

    def _lock_pg(self, institution_id: str, numbers: list[str]) -> dict[str, Commitment]:
        """``lock`` on PostgreSQL, in one round trip on the driver: the lock, then (a statement of
        its own, begun once the lock is held) the commitments with their lines."""
        from einvoice.store.repositories import pg_round_trip

        lock, read = _pg_lock()
        key = {"institution_id": institution_id, "numbers": numbers}
        (_, _), (rows, _) = pg_round_trip(
            self.session, [(lock.sql, lock.parameters(key)), (read.sql, read.parameters(key))]
        )
        heads: dict[str, Any] = {}
        lines: dict[str, list[Any]] = {}
        width = len(_COMMITMENTS.c)
        for row in rows:
            head = heads.get(row[0]) or heads.setdefault(row[0], writes.table_row(_COMMITMENTS, row[:width]))
            lines.setdefault(head.number, [])
            if row[width] is not None:
                lines[head.number].append(writes.table_row(_LINES, row[width:]))
        return {head.number: _commitment(head, lines[head.number]) for head in heads.values()}

    def list_for(
        self,
        institution_id: str,
        *,
        supplier_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Commitment]:
        """The institution's commitments, by number, filtered by supplier and status."""
        query = select(CommitmentRow).where(CommitmentRow.institution_id == institution_id)
        if supplier_id is not None:
            query = query.where(CommitmentRow.supplier_id == supplier_id)
        if status is not None:
            query = query.where(CommitmentRow.status == status)
        rows = self.session.scalars(query.order_by(CommitmentRow.number).limit(limit)).all()
        lines = self._lines([row.id for row in rows])
        return [_commitment(row, lines.get(row.id, [])) for row in rows]

    def receipt(self, institution_id: str, number: str, reference: str) -> Receipt | None:
        """The commitment's receipt ``reference``, or None."""
        row = self.session.scalars(
            select(ReceiptRow)
            .join(CommitmentRow, CommitmentRow.id == ReceiptRow.commitment_id)
            .where(
                CommitmentRow.institution_id == institution_id,
                CommitmentRow.number == number,
                ReceiptRow.reference == reference,
            )
        ).first()
        if row is None:
            return None
        lines = self.session.scalars(
            select(ReceiptLineRow).where(ReceiptLineRow.receipt_id == row.id).order_by(ReceiptLineRow.line_id)
        ).all()
        return Receipt(
            reference=row.reference,
            received_on=row.received_on,
            lines=tuple(ReceiptLine(line=line.line_id, quantity=line.quantity) for line in lines),
        )

    def documents_referencing(self, institution_id: str, number: str, *, status: str) -> list[str]:
        """Ids of the institution's documents in ``status`` whose parsed data names ``number`` as
        BT-13, BT-12 or BT-10, oldest first (the JSON of ``parsed_documents``; a document without
        a parsed form is not found)."""
        data = ParsedDocumentRow.data
        names = [data[field].as_string() == number for field in REFERENCE_FIELDS]
        query = (
            select(DocumentRow.id)
            .join(ParsedDocumentRow, ParsedDocumentRow.document_id == DocumentRow.id)
            .where(DocumentRow.status == status, DocumentRow.institution_id == institution_id)
            .where(names[0] | names[1] | names[2])
            .order_by(DocumentRow.received_at, DocumentRow.id)
        )
        return list(self.session.scalars(query).all())

    # --- writing -------------------------------------------------------------------------------

    def add(self, commitment: Commitment, *, source: str, at: datetime) -> None:
        """Register ``commitment`` (figures as it carries them). A number the institution has
        registered already raises DuplicateKeyError at the flush."""
        row = CommitmentRow(
            institution_id=commitment.institution_id,
            number=commitment.number,
            source=source,
            created_at=at,
        )
        _set_definition(row, commitment, at)
        row.reserved, row.consumed = commitment.reserved, commitment.consumed
        self.session.add(row)
        self.session.flush()
        self._put_lines(row.id, commitment.lines)

    def replace(self, commitment: Commitment, *, at: datetime) -> None:
        """Replace the definition and lines of the registered commitment of the same institution
        and number with ``commitment``'s (its figures too: a caller that changes a commitment
        carries over what it read, under the lock of ``get(..., for_update=True)``)."""
        row = self._row(commitment.institution_id, commitment.number, for_update=True)
        if row is None:
            raise LookupError(f"no commitment {commitment.number}")
        _set_definition(row, commitment, at)
        row.reserved, row.consumed = commitment.reserved, commitment.consumed
        self.session.flush()
        self.session.query(CommitmentLineRow).filter(CommitmentLineRow.commitment_id == row.id).delete()
        self._put_lines(row.id, commitment.lines)

    def change_figures(
        self,
        institution_id: str,
        number: str,
        *,
        at: datetime,
        reserved: Decimal = ZERO,
        consumed: Decimal = ZERO,
        received: Mapping[str, Decimal] | None = None,
        invoiced: Mapping[str, Decimal] | None = None,
    ) -> Commitment:
        """Add ``reserved`` and ``consumed`` (negative to release) to the commitment's figures, and
        per line id ``received`` and ``invoiced`` to its lines, under a lock on the commitment;
        return it as it is now. Raises LookupError for an unknown commitment or line. Checks
        nothing else: whether a change is allowed is the caller's (matching's) to decide, on the
        figures it read with ``get(..., for_update=True)`` in the same transaction."""
        row = self._row(institution_id, number, for_update=True)
        if row is None:
            raise LookupError(f"no commitment {number}")
        row.reserved += reserved
        row.consumed += consumed
        row.updated_at = at
        changes = {**{k: (v, ZERO) for k, v in (received or {}).items()}}
        for line_id, quantity in (invoiced or {}).items():
            changes[line_id] = (changes.get(line_id, (ZERO, ZERO))[0], quantity)
        if changes:
            lines = {
                line.line_id: line
                for line in self.session.scalars(
                    select(CommitmentLineRow).where(
                        CommitmentLineRow.commitment_id == row.id, CommitmentLineRow.line_id.in_(list(changes))
                    )
                ).all()
            }
            for line_id, (received_delta, invoiced_delta) in changes.items():
                line = lines.get(line_id)
                if line is None:
                    raise LookupError(f"commitment {number} has no line {line_id}")
                line.received += received_delta
                line.invoiced += invoiced_delta
        self.session.flush()
        return self._commitment(row)

    def put_figures(self, before: Commitment, after: Commitment, *, at: datetime) -> None:
        """Write ``after``'s figures (``reserved``, ``consumed``, the lines' ``received`` and
        ``invoiced``) over ``before``'s, which the caller read with ``lock`` in this transaction and
        holds the lock of: two statements (the commitment's row, guarded by the figures read; the
        lines that changed, in one batch), nothing read back. Raises LookupError when the row no
        longer holds ``before``'s figures (the caller did not hold the lock) or a line is unknown."""
        self.put_figures_many([(before, after)], at=at)

    def put_figures_many(self, changes: Sequence[tuple[Commitment, Commitment]], *, at: datetime) -> None:
        """``put_figures`` for each (before, after) of ``changes``; on PostgreSQL all in one round
        trip on the driver."""
        connection = self.session.connection()
        postgres = connection.dialect.name == "postgresql"
        steps: list[tuple[str, Any]] = []  # PostgreSQL's, in one round trip
        checks: list[tuple[Commitment, int, list[str]]] = []  # per change: its row changed or not, its lines changed
        counts: list[int] = []
        put, put_lines = _pg_put() if postgres else (None, None)
        for before, after in changes:
            key = {"k_institution": before.institution_id, "k_number": before.number}
            figures: dict[str, Any] = {}
            if (after.reserved, after.consumed) != (before.reserved, before.consumed):
                figures = key | {
                    "old_reserved": before.reserved,
                    "old_consumed": before.consumed,
                    "new_reserved": after.reserved,
                    "new_consumed": after.consumed,
                    "at": at,
                }
            changed = [
                key | {"k_line": new.id, "new_received": new.received, "new_invoiced": new.invoiced}
                for new, old in zip(after.lines, before.lines, strict=True)
                if (new.received, new.invoiced) != (old.received, old.invoiced)
            ]
            checks.append((before, 1 if figures else 0, [str(x["k_line"]) for x in changed]))
            if put is not None and put_lines is not None:
                if figures:
                    steps.append((put.sql, put.parameters(figures)))
                if changed:
                    steps.append((put_lines.sql, [put_lines.parameters(x) for x in changed]))
            else:
                if figures:
                    counts.append(connection.execute(_PUT_FIGURES, figures).rowcount)
                if changed:
                    counts.append(connection.execute(_PUT_LINES, changed).rowcount)
        if steps:
            from einvoice.store.repositories import pg_round_trip

            counts = [count for _, count in pg_round_trip(self.session, steps)]
        position = 0
        for before, row_changed, lines in checks:
            if row_changed:
                if counts[position] != 1:
                    raise LookupError(f"commitment {before.number} no longer holds the figures read under its lock")
                position += 1
            if lines:
                if counts[position] != len(lines):
                    raise LookupError(f"commitment {before.number} has not every line of {lines}")
                position += 1
        # ORM copies of the rows this session holds are stale now: read them afresh when asked
        for held in list(self.session.identity_map.values()):
            if isinstance(held, CommitmentRow | CommitmentLineRow):
                self.session.expire(held)

    def add_receipt(self, institution_id: str, number: str, receipt: Receipt, *, at: datetime) -> None:
        """Record ``receipt`` against the commitment and add its quantities to the lines'
        ``received`` (``change_figures``). Raises LookupError for an unknown commitment or line;
        a reference recorded before raises DuplicateKeyError at the flush."""
        row = self._row(institution_id, number, for_update=True)
        if row is None:
            raise LookupError(f"no commitment {number}")
        receipt_row = ReceiptRow(
            commitment_id=row.id, reference=receipt.reference, received_on=receipt.received_on, created_at=at
        )
        self.session.add(receipt_row)
        self.session.flush()
        self.session.add_all(
            ReceiptLineRow(receipt_id=receipt_row.id, line_id=line.line, quantity=line.quantity)
            for line in receipt.lines
        )
        received: dict[str, Decimal] = {}
        for line in receipt.lines:
            received[line.line] = received.get(line.line, ZERO) + line.quantity
        self.change_figures(institution_id, number, at=at, received=received)

    # --- Despatch Advices ----------------------------------------------------------------------

    def add_despatch_advice(
        self, advice: DespatchAdvice, *, institution_id: str, supplier_id: str, at: datetime
    ) -> DespatchAdvice:
        """Store ``advice`` against the institution's commitment ``advice.order`` (status advised);
        return it with its id. Raises LookupError for an unknown commitment; a number the supplier
        has sent before raises DuplicateKeyError at the flush."""
        commitment = self._row(institution_id, advice.order, for_update=False)
        if commitment is None:
            raise LookupError(f"no commitment {advice.order}")
        row = DespatchAdviceRow(
            institution_id=institution_id,
            supplier_id=supplier_id,
            commitment_id=commitment.id,
            number=advice.number,
            issue_date=advice.issue_date,
            status=DespatchStatus.ADVISED.value,
            received_at=at,
        )
        self.session.add(row)
        self.session.flush()
        self.session.add_all(
            DespatchAdviceLineRow(
                despatch_advice_id=row.id,
                line_id=line.id,
                position=position,
                order_line=line.order_line,
                quantity=line.quantity,
                unit_code=line.unit_code,
                seller_item_id=line.seller_item_id,
                description=line.description,
            )
            for position, line in enumerate(advice.lines)
        )
        self.session.flush()
        return self._despatch_advice(row, advice.order)

    def despatch_advice(self, advice_id: str, *, for_update: bool = False) -> DespatchAdvice | None:
        """The stored Despatch Advice ``advice_id``, or None; ``for_update``: locked until the
        transaction ends (its confirmation)."""
        query = select(DespatchAdviceRow).where(DespatchAdviceRow.id == advice_id)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = self.session.scalars(query).first()
        return None if row is None else self._despatch_advice(row)

    def despatch_advice_by_number(self, supplier_id: str, number: str) -> DespatchAdvice | None:
        """The supplier's stored Despatch Advice ``number``, or None."""
        row = self.session.scalars(
            select(DespatchAdviceRow).where(
                DespatchAdviceRow.supplier_id == supplier_id, DespatchAdviceRow.number == number
            )
        ).first()
        return None if row is None else self._despatch_advice(row)

    def despatch_advice_owner(self, advice_id: str) -> tuple[str, str] | None:
        """(institution id, supplier id) of the stored Despatch Advice ``advice_id``, or None."""
        row = self.session.get(DespatchAdviceRow, advice_id)
        return None if row is None else (row.institution_id, row.supplier_id)

    def list_despatch_advices(
        self, institution_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[DespatchAdvice]:
        """The institution's Despatch Advices, oldest first, filtered by status."""
        query = select(DespatchAdviceRow).where(DespatchAdviceRow.institution_id == institution_id)
        if status is not None:
            query = query.where(DespatchAdviceRow.status == status)
        rows = self.session.scalars(query.order_by(DespatchAdviceRow.received_at, DespatchAdviceRow.id).limit(limit))
        return [self._despatch_advice(row) for row in rows.all()]

    def confirm_despatch_advice(self, advice_id: str, *, receipt_reference: str, at: datetime) -> None:
        """Mark the Despatch Advice confirmed, naming the receipt it recorded (``add_receipt`` in
        the same transaction). Raises LookupError for an unknown advice."""
        row = self.session.get(DespatchAdviceRow, advice_id)
        if row is None:
            raise LookupError(f"no despatch advice {advice_id}")
        row.status = DespatchStatus.CONFIRMED.value
        row.receipt_reference = receipt_reference
        row.confirmed_at = at
        self.session.flush()

    def _despatch_advice(self, row: DespatchAdviceRow, order: str | None = None) -> DespatchAdvice:
        if order is None:
            order = self.session.scalar(select(CommitmentRow.number).where(CommitmentRow.id == row.commitment_id))
        lines = self.session.scalars(
            select(DespatchAdviceLineRow)
            .where(DespatchAdviceLineRow.despatch_advice_id == row.id)
            .order_by(DespatchAdviceLineRow.position)
        ).all()
        return DespatchAdvice(
            id=row.id,
            number=row.number,
            order=order or "",
            issue_date=row.issue_date,
            status=DespatchStatus(row.status),
            receipt_reference=row.receipt_reference,
            lines=tuple(
                DespatchLine(
                    id=line.line_id,
                    order_line=line.order_line,
                    quantity=line.quantity,
                    unit_code=line.unit_code,
                    seller_item_id=line.seller_item_id,
                    description=line.description,
                )
                for line in lines
            ),
        )

    # --- institutions' default tolerances ------------------------------------------------------

    def default_tolerances(self, institution_id: str) -> Tolerances:
        """The institution's default tolerances (exact when it has set none)."""
        row = self.session.get(InstitutionToleranceRow, institution_id)
        if row is None:
            return Tolerances()
        return Tolerances(**{name: getattr(row, name) for name in _TOLERANCE_FIELDS})

    def set_default_tolerances(self, institution_id: str, tolerances: Tolerances, *, at: datetime) -> None:
        row = self.session.get(InstitutionToleranceRow, institution_id)
        if row is None:
            row = InstitutionToleranceRow(institution_id=institution_id, updated_at=at)
            self.session.add(row)
        for name in _TOLERANCE_FIELDS:
            setattr(row, name, getattr(tolerances, name))
        row.updated_at = at
        self.session.flush()

    # --- rows ----------------------------------------------------------------------------------

    def _row(self, institution_id: str, number: str, *, for_update: bool) -> CommitmentRow | None:
        query = select(CommitmentRow).where(
            CommitmentRow.institution_id == institution_id, CommitmentRow.number == number
        )
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(query).first()

    def _lines(self, commitment_ids: Sequence[str]) -> dict[str, list[CommitmentLineRow]]:
        lines: dict[str, list[CommitmentLineRow]] = {}
        if not commitment_ids:
            return lines
        for line in self.session.scalars(
            select(CommitmentLineRow)
            .where(CommitmentLineRow.commitment_id.in_(list(commitment_ids)))
            .order_by(CommitmentLineRow.commitment_id, CommitmentLineRow.position)
        ).all():
            lines.setdefault(line.commitment_id, []).append(line)
        return lines

    def _commitment(self, row: CommitmentRow) -> Commitment:
        return _commitment(row, self._lines([row.id]).get(row.id, []))

    def _put_lines(self, commitment_id: str, lines: Sequence[CommitmentLine]) -> None:
        self.session.add_all(
            CommitmentLineRow(
                commitment_id=commitment_id,
                line_id=line.id,
                position=position,
                quantity=line.quantity,
                unit_code=line.unit_code,
                unit_price=line.unit_price,
                description=line.description,
                seller_item_id=line.seller_item_id,
                standard_item_id=line.standard_item_id,
                vat_category=line.vat_category,
                vat_rate=line.vat_rate,
                account=line.account,
                received=line.received,
                invoiced=line.invoiced,
            )
            for position, line in enumerate(lines)
        )
        self.session.flush()


@functools.cache
def _pg_lock() -> tuple[writes.Compiled, writes.Compiled]:
    """PostgreSQL: the institution's commitments of ``numbers`` locked in number order (rows not
    read), and the same commitments with their lines (a row per line; one for a commitment
    without lines), by number and position."""
    c, line = _COMMITMENTS, _LINES
    named = (
        c.c.institution_id == bindparam("institution_id"),
        c.c.number == any_(bindparam("numbers", type_=ARRAY(String))),
    )
    lock = select(c.c.id).where(*named).order_by(c.c.number).with_for_update()
    read = (
        select(c, line)
        .select_from(c.outerjoin(line, line.c.commitment_id == c.c.id))
        .where(*named)
        .order_by(c.c.number, line.c.position)
    )
    return writes.compile_postgres(lock), writes.compile_postgres(read)


@functools.cache
def _pg_put() -> tuple[writes.Compiled, writes.Compiled]:
    return writes.compile_postgres(_PUT_FIGURES), writes.compile_postgres(_PUT_LINES)


def _set_definition(row: CommitmentRow, commitment: Commitment, at: datetime) -> None:
    row.kind = commitment.kind.value
    row.supplier_id = commitment.supplier_id
    row.supplier_endpoint = commitment.supplier.endpoint
    row.supplier_vat = commitment.supplier.vat
    row.supplier_legal_id = commitment.supplier.legal_id
    row.currency = commitment.currency
    row.valid_from, row.valid_to = commitment.valid_from, commitment.valid_to
    row.budget_programme = commitment.budget.programme
    row.budget_economic_code = commitment.budget.economic_code
    row.account = commitment.account
    row.receipt_required = commitment.receipt_required
    row.amount = commitment.amount
    for name in _TOLERANCE_FIELDS:
        setattr(row, name, getattr(commitment.tolerances, name))
    row.status = commitment.status.value
    row.updated_at = at


def _commitment(row: CommitmentRow | Any, lines: Sequence[CommitmentLineRow | Any]) -> Commitment:
    """The domain commitment of a row and its lines (ORM objects, or Core rows of the same columns)."""
    return Commitment(
        number=row.number,
        kind=CommitmentKind(row.kind),
        institution_id=row.institution_id,
        supplier_id=row.supplier_id,
        currency=row.currency,
        amount=row.amount,
        lines=tuple(
            CommitmentLine(
                id=line.line_id,
                quantity=line.quantity,
                unit_price=line.unit_price,
                unit_code=line.unit_code,
                description=line.description,
                seller_item_id=line.seller_item_id,
                standard_item_id=line.standard_item_id,
                vat_category=line.vat_category,
                vat_rate=line.vat_rate,
                account=line.account,
                received=line.received,
                invoiced=line.invoiced,
            )
            for line in lines
        ),
        supplier=Supplier(endpoint=row.supplier_endpoint, vat=row.supplier_vat, legal_id=row.supplier_legal_id),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        budget=Budget(programme=row.budget_programme, economic_code=row.budget_economic_code),
        account=row.account,
        receipt_required=row.receipt_required,
        tolerances=Tolerances(**{name: getattr(row, name) for name in _TOLERANCE_FIELDS}),
        status=CommitmentStatus(row.status),
        reserved=row.reserved,
        consumed=row.consumed,
    )
