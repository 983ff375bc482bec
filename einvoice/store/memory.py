"""The store's in-memory twin: a unit of work over dicts, for unit tests of services and stages
without a database (as dramatiq's StubBroker stands in for a broker).

It keeps the rules the services rely on: guarded writes (``DocumentChange``: the expected states
and lease holder, or nothing written), unique keys (a repeated sha256, idempotency key, endpoint
or API key raises ``DuplicateKeyError`` as the databases' store does), UTC-only timestamps, transactions
(``with uow:`` works on a copy; ``commit()`` makes it the store's; leaving without a commit drops
it; one transaction at a time, as SQLite's write lock allows). Rows are plain objects with the
attributes of the table classes, kept inside; the repositories return the same records (``ports``)
as the databases' store.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace, TracebackType
from typing import Any, Generic, TypeVar

from sqlalchemy import Table

from einvoice.domain.commitments import Commitment, CommitmentKind, DespatchAdvice, Receipt, Tolerances
from einvoice.domain.findings import Finding
from einvoice.domain.invoice import Invoice
from einvoice.domain.journal import Account, ChartOfAccounts, PostingProfile
from einvoice.domain.money import amount_key
from einvoice.domain.review import (
    COUNT_LIMIT,
    STATE_REASONS,
    QueueCounts,
    QueueFilter,
    QueueRow,
    QueueSlice,
    cursor_of,
    parse_cursor,
    queue_reasons,
)
from einvoice.domain.states import REVIEW_STATES
from einvoice.errors import DuplicateKeyError
from einvoice.parsers.invoice_dict import invoice_from_dict
from einvoice.store.ports import (
    NOT_HISTORY,
    ApprovalRuleRecord,
    DocumentRecord,
    EarlierQuery,
    EarlierRow,
    InstitutionRecord,
    ResponseRecord,
    SupplierRecord,
    TransitionRecord,
    UnitOfWork,
    finding_of,
    record_of,
    record_or_none,
)
from einvoice.store.tables import (
    ApprovalRuleRow,
    Base,
    DocumentReasonRow,
    DocumentRow,
    FindingRow,
    InstitutionRow,
    JournalEntryRow,
    OutboxRow,
    ParsedDocumentRow,
    ResponseRow,
    SupplierRow,
    TransitionRow,
    new_id,
    number_key,
)
from einvoice.store.writes import ANYONE, DocumentChange, NewDocument, Step, Written

Row = Any
R = TypeVar("R")
P = TypeVar("P", InstitutionRecord, SupplierRecord)


def _table(row_class: type[Base]) -> Table:
    table: Table = row_class.__table__  # type: ignore[assignment]
    return table


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value


def _row(row_class: type[Base], values: dict[str, Any] | Any) -> Row:
    """A row of ``row_class``'s table: every column, ``values`` over the column defaults."""
    given = values if isinstance(values, dict) else {c.name: getattr(values, c.name, None) for c in _table(row_class).c}
    row = {}
    for column in _table(row_class).c:
        value = given.get(column.name)
        default: Any = column.default
        if value is None and default is not None:
            if default.is_scalar:
                value = default.arg
            elif default.is_callable and column.name == "id":
                value = new_id()
        row[column.name] = _utc(value)
    return SimpleNamespace(**row)


def _records(record: type[R], rows: Iterable[Row]) -> list[R]:
    return [record_of(record, row) for row in rows]


def _conflict(what: str) -> DuplicateKeyError:
    return DuplicateKeyError(f"unique key: {what}")


@dataclass
class _Data:
    institutions: dict[str, Row] = field(default_factory=dict)
    suppliers: dict[str, Row] = field(default_factory=dict)
    documents: dict[str, Row] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    transitions: list[Row] = field(default_factory=list)
    findings: dict[str, list[Row]] = field(default_factory=dict)
    outbox: list[Row] = field(default_factory=list)
    parsed: dict[str, Row] = field(default_factory=dict)
    responses: list[Row] = field(default_factory=list)
    commitments: dict[tuple[str, str], Commitment] = field(default_factory=dict)  # (institution, number)
    receipts: dict[tuple[str, str, str], Receipt] = field(default_factory=dict)  # (…, reference)
    tolerances: dict[str, Tolerances] = field(default_factory=dict)
    approval_rules: dict[str, Row] = field(default_factory=dict)  # institution id -> rule
    reasons: dict[str, list[str]] = field(default_factory=dict)  # document id -> codes
    entries: dict[str, Row] = field(default_factory=dict)  # document id -> its journal entry
    serial: int = 0

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial


class MemoryStore:
    """The data every unit of work of one factory shares."""

    def __init__(self) -> None:
        self.data = _Data()
        self.lock = threading.RLock()


class MemoryUnitOfWork:
    """A unit of work on a ``MemoryStore`` (``ports.UnitOfWork``)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._depth = 0
        self._data: _Data | None = None
        self.institutions = _Institutions(self)
        self.suppliers = _Suppliers(self)
        self.documents = _Documents(self)
        self.outbox = _Outbox(self)
        self.commitments = _Commitments(self)
        self.users = _Users(self)
        self.posting = _Posting(self)
        self.review = _Review(self)

    @property
    def scope(self) -> object:
        return self._store

    @property
    def data(self) -> _Data:
        if self._data is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._data

    def __enter__(self) -> MemoryUnitOfWork:
        self._depth += 1
        if self._depth == 1:
            self._store.lock.acquire()
            self._data = copy.deepcopy(self._store.data)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._data = None
            self._store.lock.release()

    def commit(self) -> None:
        """Make this transaction's data the store's (an outer block's commit does it when nested)."""
        if self._depth == 1:
            self._store.data = copy.deepcopy(self.data)

    def rollback(self) -> None:
        self._data = copy.deepcopy(self._store.data)


def memory_uow_factory(store: MemoryStore | None = None) -> Callable[[], UnitOfWork]:
    """A factory of units of work sharing one (new, unless given) ``MemoryStore``."""
    shared = store or MemoryStore()
    return lambda: MemoryUnitOfWork(shared)


class _Repository:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self.uow = uow

    @property
    def data(self) -> _Data:
        return self.uow.data


def _first(record: type[R], rows: Iterable[Row], wanted: Callable[[Row], bool]) -> R | None:
    """The ``record`` of the first of ``rows`` that is ``wanted``, or None."""
    return record_or_none(record, next((r for r in rows if wanted(r)), None))


def _set(rows: Mapping[str, Row], key: str, **values: Any) -> Row:
    """The row ``rows[key]`` with ``values`` set on it (LookupError: there is none)."""
    row = rows.get(key)
    if row is None:
        raise LookupError(f"no row {key}")
    for name, value in values.items():
        setattr(row, name, _utc(value))
    return row


class _Parties(_Repository, Generic[P]):
    """What institutions and suppliers share (``repositories._Parties``)."""

    row_class: type[InstitutionRow] | type[SupplierRow]
    record: type[P]
    kind: str  # for the messages of unique keys

    @property
    def rows(self) -> dict[str, Row]:
        raise NotImplementedError

    def add(self, row: Any) -> P:
        added = _row(self.row_class, row)
        if self.by_endpoint(added.endpoint_scheme, added.endpoint_id) is not None:
            raise _conflict(f"{self.kind} endpoint")
        if added.api_key_hash is not None and self.by_key_hash(added.api_key_hash) is not None:
            raise _conflict(f"{self.kind} API key")
        self.rows[added.id] = added
        return record_of(self.record, added)

    def get(self, party_id: str) -> P | None:
        return record_or_none(self.record, self.rows.get(party_id))

    def by_key_hash(self, key_hash: str) -> P | None:
        return _first(self.record, self.rows.values(), lambda r: r.api_key_hash == key_hash)

    def by_endpoint(self, scheme: str, endpoint_id: str) -> P | None:
        wanted = (scheme, endpoint_id)
        return _first(self.record, self.rows.values(), lambda r: (r.endpoint_scheme, r.endpoint_id) == wanted)

    def list(self) -> Sequence[P]:
        return _records(self.record, sorted(self.rows.values(), key=lambda r: (r.name, r.id)))

    def set_api_key_hash(self, party_id: str, key_hash: str) -> P:
        if self.by_key_hash(key_hash) is not None:
            raise _conflict(f"{self.kind} API key")
        return record_of(self.record, _set(self.rows, party_id, api_key_hash=key_hash))


class _Institutions(_Parties[InstitutionRecord]):
    row_class = InstitutionRow
    record = InstitutionRecord
    kind = "institution"

    @property
    def rows(self) -> dict[str, Row]:
        return self.data.institutions


class _Suppliers(_Parties[SupplierRecord]):
    row_class = SupplierRow
    record = SupplierRecord
    kind = "supplier"

    @property
    def rows(self) -> dict[str, Row]:
        return self.data.suppliers

    def by_identifier(self, column: str, value: str) -> SupplierRecord | None:
        return _first(SupplierRecord, self.rows.values(), lambda r: getattr(r, column) == value)

    def set_active(self, supplier_id: str, active: bool) -> SupplierRecord:
        return record_of(SupplierRecord, _set(self.rows, supplier_id, active=active))

    def holding_identifiers(self, values: Collection[str], *, other_than: str) -> set[str]:
        held: set[str] = set()
        for row in self.data.suppliers.values():
            if row.id != other_than:
                held |= {v for v in (row.vat_id, row.legal_id, row.tax_id) if v is not None and v in values}
        return held


class _Documents(_Repository):
    def _insert(self, new: NewDocument, earlier: str | None, detail: str | None) -> None:
        values = dict(new.values)
        document = _row(DocumentRow, {**values, "suspected_duplicate_of": earlier})
        for other in self.data.documents.values():
            if other.supplier_id == document.supplier_id and (
                other.sha256 == document.sha256
                or (document.idempotency_key is not None and other.idempotency_key == document.idempotency_key)
            ):
                raise _conflict("document sha256 or idempotency key")
        self.data.documents[document.id] = document
        self.data.contents[document.id] = new.raw
        self._transitions(document.id, (Step(None, document.status, new.actor, detail),), document.received_at)
        if new.findings:
            self._set_findings(document.id, new.findings)
        if new.message is not None:
            self.uow.outbox.add(document.id, new.message, now=document.received_at)
        self._add_rows(document.id, new.rows)

    def _transitions(self, document_id: str, steps: Sequence[Step], at: datetime) -> None:
        for s in steps:
            row: dict[str, Any] = {"document_id": document_id, "from_status": s.from_status, "to_status": s.to_status}
            row |= {"actor": s.actor, "at": at, "detail": s.detail, "id": self.data.next_serial()}
            self.data.transitions.append(_row(TransitionRow, row))

    def _add_rows(self, document_id: str, rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        for table, rows in rows_by_table.items():
            if table == ResponseRow.__tablename__:
                for row in rows:
                    values = {**row, "document_id": document_id, "id": self.data.next_serial()}
                    self.data.responses.append(_row(ResponseRow, values))
            elif table == DocumentReasonRow.__tablename__:
                self.data.reasons[document_id] = [str(row["code"]) for row in rows]
            elif table == ParsedDocumentRow.__tablename__:
                for row in rows:
                    self.data.parsed[document_id] = _row(ParsedDocumentRow, {**row, "document_id": document_id})
            elif table == JournalEntryRow.__tablename__:
                for row in rows:
                    if document_id in self.data.entries:
                        raise _conflict(f"journal entry of {document_id}")
                    self.data.entries[document_id] = _row(JournalEntryRow, {**row, "document_id": document_id})
            else:
                raise KeyError(f"the memory store keeps no table {table!r}")

    def _set_findings(self, document_id: str, findings: Iterable[Any]) -> None:
        self.data.findings[document_id] = [
            _row(FindingRow, {**f, "document_id": document_id, "position": n, "id": self.data.next_serial()})
            for n, f in enumerate(findings)
        ]

    def add_refused(
        self, values: dict[str, Any], raw: bytes, *, actor: str, detail: str, findings: Sequence[dict[str, Any]]
    ) -> None:
        key = number_key(values["supplier_id"], values.get("number"), values.get("issue_year"))
        new = NewDocument({**values, "number_key": key}, raw, actor=actor, message=None, findings=tuple(findings))
        self._insert(new, None, detail)

    def add_received(
        self,
        values: dict[str, Any],
        raw: bytes,
        *,
        actor: str,
        next_action: str,
        not_duplicate_of: Collection[str] = (),
        commit: bool = False,
        rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> str | None:
        key = number_key(values["supplier_id"], values.get("number"), values.get("issue_year"))
        new = NewDocument({**values, "number_key": key}, raw, actor=actor, message=next_action, rows=rows or {})
        earlier = self.earlier_with_key(key, not_duplicate_of=not_duplicate_of)
        self._insert(new, earlier, f"suspected duplicate of {earlier}" if earlier else None)
        return earlier

    def earlier_with_key(self, key: str | None, *, not_duplicate_of: Collection[str] = ()) -> str | None:
        if key is None:
            return None
        found = [d for d in self.data.documents.values() if d.number_key == key and d.status not in not_duplicate_of]
        return min(found, key=lambda d: (d.received_at, d.id)).id if found else None

    def write(self, change: DocumentChange, *, commit: bool = False) -> Written:
        document = self.data.documents.get(change.document_id)
        if document is None or document.status not in change.expected:
            return Written(False)
        if change.holder is not ANYONE and document.lease_token != change.holder:
            return Written(False)
        _utc(change.at)
        for name, value in change.values.items():
            setattr(document, name, _utc(value))
        self._transitions(document.id, change.steps, change.at)
        if change.findings is not None:
            self._set_findings(document.id, change.findings)
        if change.message is not None:
            self.uow.outbox.add(document.id, change.message, now=change.at)
        self._add_rows(document.id, change.rows)
        if not change.read:
            return Written(True)
        raw = self.data.contents.get(document.id) if change.read == "row+raw" else None
        return Written(True, copy.copy(document), raw)

    def compare_and_set(
        self,
        document_id: str,
        *,
        expected: Collection[str],
        values: dict[str, Any],
        at: datetime,
        steps: Sequence[Step] = (),
        holder: Any = ANYONE,
        findings: Sequence[dict[str, Any]] | None = None,
        message: str | None = None,
    ) -> bool:
        change = DocumentChange(
            document_id, tuple(expected), values, at, tuple(steps), holder, findings=findings, message=message
        )
        return self.write(change).changed

    def get(self, document_id: str, *, for_update: bool = False) -> DocumentRecord | None:
        return record_or_none(DocumentRecord, self.data.documents.get(document_id))

    def write_many(self, changes: Sequence[DocumentChange]) -> list[Written]:
        return [self.write(change) for change in changes]

    def get_many(self, document_ids: Collection[str]) -> dict[str, DocumentRecord]:
        found = (self.data.documents.get(document_id) for document_id in document_ids)
        return {d.id: record_of(DocumentRecord, d) for d in found if d is not None}

    def by_sha256(self, supplier_id: str, sha256: str) -> DocumentRecord | None:
        wanted = (supplier_id, sha256)
        return _first(DocumentRecord, self.data.documents.values(), lambda d: (d.supplier_id, d.sha256) == wanted)

    def by_idempotency_key(self, supplier_id: str, key: str) -> DocumentRecord | None:
        wanted = (supplier_id, key)
        documents = self.data.documents.values()
        return _first(DocumentRecord, documents, lambda d: (d.supplier_id, d.idempotency_key) == wanted)

    def lock_number(self, key: str) -> None:
        return None  # one transaction at a time already

    def raw(self, document_id: str) -> bytes | None:
        return self.data.contents.get(document_id)

    def list_for_supplier(
        self, supplier_id: str, *, status: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[DocumentRecord]:
        rows = [
            d
            for d in self.data.documents.values()
            if d.supplier_id == supplier_id
            and (status is None or d.status == status)
            and (since is None or d.received_at >= since)
        ]
        return _records(DocumentRecord, sorted(rows, key=lambda d: (d.received_at, d.id), reverse=True)[:limit])

    def stuck(
        self,
        *,
        idle_statuses: Collection[str],
        idle_before: datetime,
        working_statuses: Collection[str],
        now: datetime,
        limit: int = 500,
        resting_with_reason: Collection[str] = (),
    ) -> list[DocumentRecord]:
        def is_stuck(d: Row) -> bool:
            resting = d.status in resting_with_reason and d.failure_reason is not None
            if d.status in idle_statuses:
                return bool(d.status_changed_at < idle_before) and not resting
            held = resting and d.lease_token is None
            expired = d.lease_expires_at is None or d.lease_expires_at < now
            return d.status in working_statuses and expired and not held

        found = sorted(filter(is_stuck, self.data.documents.values()), key=lambda d: d.status_changed_at)
        return _records(DocumentRecord, found[:limit])

    def oldest_status_change(self, statuses: Collection[str]) -> datetime | None:
        return min((d.status_changed_at for d in self.data.documents.values() if d.status in statuses), default=None)

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.data.documents.values():
            counts[d.status] = counts.get(d.status, 0) + 1
        return counts

    def transitions(self, document_id: str) -> list[TransitionRecord]:
        found = sorted((t for t in self.data.transitions if t.document_id == document_id), key=lambda t: t.id)
        return _records(TransitionRecord, found)

    def stage_durations(
        self, since: datetime, states: Collection[str], *, limit: int = 5_000
    ) -> dict[str, list[float]]:
        changes = [t for t in self.data.transitions if t.at >= since and t.from_status != t.to_status]
        before: dict[str, Row] = {}  # each document's change before this one
        durations: dict[str, list[float]] = {}
        for t in sorted(changes, key=lambda t: t.id)[-limit:]:
            entered = before.get(t.document_id)
            if t.from_status in states and entered is not None and entered.to_status == t.from_status:
                durations.setdefault(t.from_status, []).append((t.at - entered.at).total_seconds())
            before[t.document_id] = t
        return durations

    def findings(self, document_id: str) -> list[Finding]:
        return [finding_of(f) for f in self.data.findings.get(document_id, ())]

    def responses(self, document_id: str) -> list[ResponseRecord]:
        return _records(ResponseRecord, (r for r in self.data.responses if r.document_id == document_id))

    def response(self, document_id: str, response_id: int) -> ResponseRecord | None:
        return next((r for r in self.responses(document_id) if r.id == response_id), None)

    def add_parsed(self, document_id: str, invoice: Invoice, *, at: datetime) -> None:
        from einvoice.store.repositories import parsed_row

        document = self.data.documents.get(document_id)
        supplier_id = document.supplier_id if document is not None else None
        self.data.parsed[document_id] = _row(
            ParsedDocumentRow, parsed_row(document_id, invoice, at, supplier_id=supplier_id)
        )

    def parsed(self, document_id: str) -> Invoice | None:
        row = self.data.parsed.get(document_id)
        return None if row is None else invoice_from_dict(row.data, format_version=row.format_version)

    def earlier_of_supplier(self, query: EarlierQuery) -> list[EarlierRow]:
        def last_invoices() -> set[str]:
            invoices = [
                d
                for d in self.data.documents.values()
                if counts(d) and d.institution_id == query.institution_id and d.document_type == "invoice"
            ]
            invoices.sort(key=lambda d: (d.issue_date or date.min, d.received_at), reverse=True)
            return {d.id for d in invoices[: query.last]}

        def counts(d: Row) -> bool:
            return (
                d.supplier_id == query.supplier_id
                and d.status not in NOT_HISTORY
                and (d.received_at, d.id) < query.before
            )

        last = last_invoices() if query.institution_id is not None and query.last > 0 else set()
        issued_from, issued_to = query.issued_from, query.issued_to
        # the duplicate window: documents of the same BT-112 (none without an amount or dates)
        same_amount = amount_key(query.amount) if query.amount is not None and issued_from and issued_to else None
        found = []
        for d in sorted(self.data.documents.values(), key=lambda d: (d.received_at, d.id)):
            parsed = self.data.parsed.get(d.id)
            amount = parsed.tax_inclusive_amount if parsed is not None else None
            in_window = (
                same_amount is not None
                and amount == same_amount
                and issued_from is not None
                and issued_to is not None
                and d.issue_date is not None
                and issued_from <= d.issue_date <= issued_to
            )
            if not counts(d) or not (
                d.document_type == "credit_note" or d.number in query.numbers or in_window or d.id in last
            ):
                continue
            credit_note = parsed is not None and parsed.credit_note
            data = parsed.data if parsed is not None and credit_note else {}
            preceding = tuple(str(p["id"]) for p in data.get("preceding_invoices") or () if p.get("id"))
            row = (d.id, d.number, d.issue_date, d.institution_id, d.match_result if query.holdings else None, amount)
            found.append(EarlierRow(*row, credit_note, preceding))
        return found


class _Outbox(_Repository):
    def add(self, document_id: str, action: str, *, now: datetime) -> None:
        row = {"id": self.data.next_serial(), "document_id": document_id, "action": action, "created_at": now}
        self.data.outbox.append(_row(OutboxRow, row))

    def _unsent(self) -> list[Row]:
        return [o for o in self.data.outbox if o.sent_at is None]

    def claim_pending(self, limit: int = 100) -> list[Row]:
        return self._unsent()[:limit]

    def take_pending(self, limit: int = 100, *, now: datetime) -> list[tuple[int, str, str]]:
        taken = self._unsent()[:limit]
        self.mark_sent(taken, now=now)
        return [(o.id, o.action, o.document_id) for o in taken]

    def mark_sent(self, rows: Iterable[Any], *, now: datetime) -> None:
        ids = {row.id for row in rows}
        for o in self.data.outbox:
            if o.id in ids:
                o.sent_at = _utc(now)

    def last_written_at(self, document_id: str) -> datetime | None:
        return max((o.created_at for o in self.data.outbox if o.document_id == document_id), default=None)

    def pending_count(self) -> int:
        return len(self._unsent())

    def oldest_pending_created_at(self) -> datetime | None:
        return min((o.created_at for o in self._unsent()), default=None)

    def purge_sent(self, *, before: datetime) -> int:
        kept = [o for o in self.data.outbox if o.sent_at is None or o.sent_at >= before]
        purged = len(self.data.outbox) - len(kept)
        self.data.outbox[:] = kept
        return purged


class _Commitments(_Repository):
    """Commitments, their receipts and institutions' default tolerances (Despatch Advices are not
    kept: their tests run on SQLite and PostgreSQL). ``for_update`` needs no lock: one transaction
    runs at a time."""

    def get(self, institution_id: str, number: str, *, for_update: bool = False) -> Commitment | None:
        return self.data.commitments.get((institution_id, number))

    def lock(self, institution_id: str, numbers: Collection[str]) -> dict[str, Commitment]:
        found = {n: self.data.commitments.get((institution_id, n)) for n in sorted(numbers)}
        return {n: c for n, c in found.items() if c is not None}

    def by_number(
        self,
        institution_id: str,
        number: str,
        *,
        kinds: Collection[CommitmentKind] | None = None,
        for_update: bool = False,
    ) -> Commitment | None:
        found = self.get(institution_id, number)
        return None if found is None or (kinds is not None and found.kind not in kinds) else found

    def list_for(
        self, institution_id: str, *, supplier_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Commitment]:
        found = [
            c
            for (institution, _), c in sorted(self.data.commitments.items())
            if institution == institution_id
            and (supplier_id is None or c.supplier_id == supplier_id)
            and (status is None or c.status.value == status)
        ]
        return found[:limit]

    def receipt(self, institution_id: str, number: str, reference: str) -> Receipt | None:
        return self.data.receipts.get((institution_id, number, reference))

    def documents_referencing(self, institution_id: str, number: str, *, status: str) -> list[str]:
        fields = ("order_reference", "contract_reference", "buyer_reference")
        found = [
            d
            for d in self.data.documents.values()
            if d.status == status
            and d.institution_id == institution_id
            and d.id in self.data.parsed
            and any(self.data.parsed[d.id].data.get(f) == number for f in fields)
        ]
        return [d.id for d in sorted(found, key=lambda d: (d.received_at, d.id))]

    def add(self, commitment: Commitment, *, source: str, at: datetime) -> None:
        key = (commitment.institution_id, commitment.number)
        if key in self.data.commitments:
            raise _conflict("commitment number")
        self.data.commitments[key] = commitment

    def replace(self, commitment: Commitment, *, at: datetime) -> None:
        key = (commitment.institution_id, commitment.number)
        if key not in self.data.commitments:
            raise LookupError(f"no commitment {commitment.number}")
        self.data.commitments[key] = commitment

    def change_figures(
        self,
        institution_id: str,
        number: str,
        *,
        at: datetime,
        reserved: Decimal = Decimal(0),
        consumed: Decimal = Decimal(0),
        received: Mapping[str, Decimal] | None = None,
        invoiced: Mapping[str, Decimal] | None = None,
    ) -> Commitment:
        commitment = self.get(institution_id, number)
        if commitment is None:
            raise LookupError(f"no commitment {number}")
        received, invoiced = received or {}, invoiced or {}
        known = {line.id for line in commitment.lines}
        for line_id in (*received, *invoiced):
            if line_id not in known:
                raise LookupError(f"commitment {number} has no line {line_id}")
        lines = tuple(
            replace(
                line,
                received=line.received + received.get(line.id, Decimal(0)),
                invoiced=line.invoiced + invoiced.get(line.id, Decimal(0)),
            )
            for line in commitment.lines
        )
        changed = replace(
            commitment, reserved=commitment.reserved + reserved, consumed=commitment.consumed + consumed, lines=lines
        )
        self.data.commitments[(institution_id, number)] = changed
        return changed

    def put_figures(self, before: Commitment, after: Commitment, *, at: datetime) -> None:
        key = (before.institution_id, before.number)
        stored = self.data.commitments.get(key)
        if stored is None or (stored.reserved, stored.consumed) != (before.reserved, before.consumed):
            raise LookupError(f"commitment {before.number} no longer holds the figures read under its lock")
        if [line.id for line in stored.lines] != [line.id for line in after.lines]:
            raise LookupError(f"commitment {before.number} has other lines")
        figures = {line.id: (line.received, line.invoiced) for line in after.lines}
        lines = tuple(
            replace(line, received=figures[line.id][0], invoiced=figures[line.id][1]) for line in stored.lines
        )
        self.data.commitments[key] = replace(stored, reserved=after.reserved, consumed=after.consumed, lines=lines)

    def put_figures_many(self, changes: Sequence[tuple[Commitment, Commitment]], *, at: datetime) -> None:
        for before, after in changes:
            self.put_figures(before, after, at=at)

    def add_receipt(self, institution_id: str, number: str, receipt: Receipt, *, at: datetime) -> None:
        key = (institution_id, number, receipt.reference)
        if key in self.data.receipts:
            raise _conflict("receipt reference")
        received: dict[str, Decimal] = {}
        for line in receipt.lines:
            received[line.line] = received.get(line.line, Decimal(0)) + line.quantity
        self.change_figures(institution_id, number, at=at, received=received)
        self.data.receipts[key] = receipt

    def default_tolerances(self, institution_id: str) -> Tolerances:
        return self.data.tolerances.get(institution_id, Tolerances())

    def set_default_tolerances(self, institution_id: str, tolerances: Tolerances, *, at: datetime) -> None:
        self.data.tolerances[institution_id] = tolerances

    def add_despatch_advice(
        self, advice: DespatchAdvice, *, institution_id: str, supplier_id: str, at: datetime
    ) -> DespatchAdvice:
        raise NotImplementedError("the in-memory store keeps no commitments")

    def despatch_advice(self, advice_id: str, *, for_update: bool = False) -> DespatchAdvice | None:
        raise NotImplementedError("the in-memory store keeps no commitments")

    def despatch_advice_by_number(self, supplier_id: str, number: str) -> DespatchAdvice | None:
        raise NotImplementedError("the in-memory store keeps no commitments")

    def despatch_advice_owner(self, advice_id: str) -> tuple[str, str] | None:
        raise NotImplementedError("the in-memory store keeps no commitments")

    def list_despatch_advices(
        self, institution_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[DespatchAdvice]:
        raise NotImplementedError("the in-memory store keeps no commitments")

    def confirm_despatch_advice(self, advice_id: str, *, receipt_reference: str, at: datetime) -> None:
        raise NotImplementedError("the in-memory store keeps no commitments")


class _Posting(_Repository):
    """Journal entries by document (a finish writes them as rows of its change); the rest is not
    kept by the twin yet: tests of posting's storage and stage run on SQLite and PostgreSQL."""

    def replace_chart(self, institution_id: str, effective_from: date, accounts: Iterable[Account]) -> None:
        raise NotImplementedError("the in-memory store keeps no posting setup or journal entries")

    def chart(self, institution_id: str, at: date | None = None) -> ChartOfAccounts | None:
        raise NotImplementedError("the in-memory store keeps no posting setup or journal entries")

    def profile(self, institution_id: str) -> PostingProfile | None:
        raise NotImplementedError("the in-memory store keeps no posting setup or journal entries")

    def read_books_ahead(self, institution_id: str, on: date) -> None:
        pass  # no round trips to save (and no books: ``books`` says so when asked)

    def set_profile(self, institution_id: str, profile: PostingProfile, *, at: datetime) -> None:
        raise NotImplementedError("the in-memory store keeps no posting setup or journal entries")

    def entry(self, document_id: str) -> JournalEntryRow | None:
        row: JournalEntryRow | None = self.data.entries.get(document_id)
        return row

    def add_entry(self, row: JournalEntryRow) -> JournalEntryRow:
        if row.document_id in self.data.entries:
            raise _conflict(f"journal entry of {row.document_id}")
        self.data.entries[row.document_id] = _row(JournalEntryRow, row)
        return row

    def mark_exported(
        self, document_id: str, *, batch: str, confirmed_at: datetime | None = None, confirmed_by: str | None = None
    ) -> None:
        raise NotImplementedError("the in-memory store keeps no posting setup or journal entries")

    def waiting_for_setup(self, institution_id: str | None, status: str) -> Sequence[str]:
        raise NotImplementedError("the in-memory store keeps no posting setup or journal entries")

    def __getattr__(self, name: str) -> Any:
        # entries by id and batch, the pull feed, ERPs, exchange rates, payments: not kept either
        raise NotImplementedError(f"the in-memory store keeps no posting data ({name})")


class _Users(_Repository):
    """Institutions' approval limits; users, sessions and decisions are not kept by the twin yet:
    tests of sign-in and sessions run on SQLite."""

    def approval_rule(self, institution_id: str) -> ApprovalRuleRecord | None:
        return record_or_none(ApprovalRuleRecord, self.data.approval_rules.get(institution_id))

    def read_approval_rule_ahead(self, institution_id: str) -> None:
        pass  # no round trips to save

    def set_approval_rule(self, row: ApprovalRuleRow) -> None:
        self.data.approval_rules[row.institution_id] = _row(ApprovalRuleRow, row)

    def __getattr__(self, name: str) -> Any:
        # users, their sessions and decisions
        raise NotImplementedError(f"the in-memory store keeps no users ({name})")


class _Review(_Repository):
    """The queue in Python, with the rules of ``store.review`` (ties broken by id)."""

    def _waiting(self, institution_ids: Collection[str]) -> list[Row]:
        return [
            d for d in self.data.documents.values() if d.status in REVIEW_STATES and d.institution_id in institution_ids
        ]

    def _kept(self, d: Row, wanted: QueueFilter, now: datetime) -> bool:
        amount = Decimal(d.payable_amount) if d.payable_amount is not None else None
        supplier = self.data.suppliers.get(d.supplier_id)
        found = (wanted.supplier or "").strip().lower()
        checks = (
            not wanted.institution or d.institution_id == wanted.institution,
            not wanted.status or d.status == wanted.status,
            not wanted.reason
            or (
                d.status == STATE_REASONS[wanted.reason]
                if wanted.reason in STATE_REASONS
                else wanted.reason in self.data.reasons.get(d.id, ())
            ),
            not found
            or found in (supplier.name.lower() if supplier else "")
            or (supplier is not None and found in f"{supplier.endpoint_scheme}:{supplier.endpoint_id}".lower()),
            not wanted.min_age_days or (now - d.status_changed_at).days >= wanted.min_age_days,
            wanted.min_amount is None or (amount is not None and amount >= wanted.min_amount),
            wanted.max_amount is None or (amount is not None and amount <= wanted.max_amount),
        )
        return all(checks)

    def _name(self, table: dict[str, Row], key: str | None) -> str:
        row = table.get(key or "")
        return str(row.name) if row is not None else ""

    def queue(self, wanted: QueueFilter, *, institution_ids: Collection[str], now: datetime) -> QueueSlice:
        found = [d for d in self._waiting(institution_ids) if self._kept(d, wanted, now)]
        keys: dict[str, Callable[[Row], Any]] = {
            "age": lambda d: d.status_changed_at,
            "amount": lambda d: Decimal(d.payable_amount) if d.payable_amount is not None else Decimal(0),
            "issue_date": lambda d: d.issue_date or date.min,
            "number": lambda d: d.number or "",
            "supplier": lambda d: self._name(self.data.suppliers, d.supplier_id),
            "institution": lambda d: self._name(self.data.institutions, d.institution_id),
        }
        key = keys.get(wanted.sort, keys["age"])
        found.sort(key=lambda d: (key(d), d.id), reverse=wanted.descending)
        cursor = parse_cursor(wanted.sort, wanted.after or wanted.before or "")
        if cursor is None:
            start = (max(1, wanted.page) - 1) * wanted.per_page
            chosen = found[start : start + wanted.per_page]
            has_previous, has_next = wanted.page > 1, start + wanted.per_page < len(found)
        else:

            def follows(d: Row) -> bool:  # comes after the cursor in the order shown
                at: Any = (key(d), d.id)
                return bool(at < cursor if wanted.descending else at > cursor)

            def precedes(d: Row) -> bool:
                at: Any = (key(d), d.id)
                return bool(at > cursor if wanted.descending else at < cursor)

            if wanted.after:
                following = [d for d in found if follows(d)]
                chosen, has_previous = following[: wanted.per_page], True
                has_next = len(following) > wanted.per_page
            else:
                preceding = [d for d in found if precedes(d)]
                chosen, has_next = preceding[-wanted.per_page :], True
                has_previous = len(preceding) > wanted.per_page
        rows = tuple(
            QueueRow(
                id=d.id,
                institution=self._name(self.data.institutions, d.institution_id),
                supplier=self._name(self.data.suppliers, d.supplier_id),
                number=d.number,
                issue_date=d.issue_date,
                amount=Decimal(d.payable_amount) if d.payable_amount is not None else None,
                currency=d.currency,
                status=d.status,
                reasons=queue_reasons(d.status, self.data.reasons.get(d.id, ())),
                waiting_since=d.status_changed_at,
            )
            for d in chosen
        )
        return QueueSlice(
            rows,
            min(len(found), COUNT_LIMIT),
            len(found) > COUNT_LIMIT,
            has_previous,
            has_next,
            cursor_of(key(chosen[0]), chosen[0].id) if chosen else None,
            cursor_of(key(chosen[-1]), chosen[-1].id) if chosen else None,
        )

    def counts(self, *, institution_ids: Collection[str]) -> QueueCounts:
        by_reason: dict[str, int] = {}
        by_institution: dict[str, int] = {}
        for d in self._waiting(institution_ids):
            by_institution[d.institution_id] = by_institution.get(d.institution_id, 0) + 1
            for code in queue_reasons(d.status, self.data.reasons.get(d.id, ())):
                by_reason[code] = by_reason.get(code, 0) + 1
        return QueueCounts(by_reason, by_institution)
