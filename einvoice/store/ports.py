"""What services may ask of the store: the unit of work and its repositories, as protocols.

Two implementations: ``uow.SqlUnitOfWork`` (SQLAlchemy, on SQLite or PostgreSQL) and
``memory.MemoryUnitOfWork`` (dicts, for unit tests of services and stages without a database).
What they read comes back as immutable records (``InstitutionRecord``, ``DocumentRecord``, …, below:
the columns of the table classes in ``tables`` that callers use) or domain objects, never as ORM
rows: a record stays valid after its unit of work ends. Changes go through the repositories' write
methods, never by assigning to what they returned.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from einvoice.domain.commitments import Commitment, CommitmentKind, DespatchAdvice, Receipt, Tolerances
from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.domain.invoice import Invoice
from einvoice.domain.journal import Account, ChartOfAccounts, PostingProfile
from einvoice.domain.review import QueueCounts, QueueFilter, QueueSlice
from einvoice.store.tables import (
    ApprovalRuleRow,
    ErpRow,
    ExchangeRateRow,
    InstitutionRow,
    JournalEntryRow,
    OutboxRow,
    PaymentRow,
    SupplierRow,
    UserRow,
    UserSessionRow,
)
from einvoice.store.writes import DocumentChange, Step, Written

#: States whose documents are no one's history: refused at intake, or rejected.
NOT_HISTORY = frozenset({"rejected", "refused"})


@dataclass(frozen=True, slots=True)
class EarlierQuery:
    """Which of a supplier's earlier documents matching's history needs (``earlier_of_supplier``)."""

    supplier_id: str
    before: tuple[datetime, str]  # (received_at, id) of the document being matched
    numbers: frozenset[str] = frozenset()  # its BT-1 and a credit note's BT-25 numbers
    issued_from: date | None = None  # the duplicate window around its BT-2 …
    issued_to: date | None = None
    amount: Decimal | None = None  # … for the documents of its BT-112 (no window without it)
    institution_id: str | None = None
    last: int = 0  # the last invoices with the institution, for the amount anomaly
    holdings: bool = True  # read each one's match_result (what it holds): a credit note's match needs it


@dataclass(frozen=True, slots=True)
class EarlierRow:
    """One earlier document of the supplier as the store has it (the parsed fields None when no
    parsed form is stored)."""

    id: str
    number: str | None
    issue_date: date | None
    institution_id: str | None
    match_result: str | None  # JSON
    amount: str | None  # BT-112
    credit_note: bool = False  # a CreditNote, or an Invoice with a credit note type code (BT-3)
    preceding: tuple[str, ...] = ()  # BT-25 numbers (credit notes only)


# --- what the repositories return ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstitutionRecord:
    """A buyer institution (``tables.InstitutionRow``)."""

    id: str
    name: str
    endpoint_scheme: str
    endpoint_id: str
    created_at: datetime
    api_key_hash: str | None  # None: no key issued


@dataclass(frozen=True, slots=True)
class RateRecord:
    """An exchange rate as loaded (``tables.ExchangeRateRow``): units of ``currency`` per unit of
    ``base`` on ``rate_date``."""

    base: str
    currency: str
    rate_date: date
    rate: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class ErpRecord:
    """An ERP that takes journal entries (``tables.ErpRow``)."""

    id: str
    name: str
    api_key_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SupplierRecord:
    """A supplier (``tables.SupplierRow``)."""

    id: str
    name: str
    endpoint_scheme: str
    endpoint_id: str
    vat_id: str | None
    legal_id: str | None
    tax_id: str | None
    api_key_hash: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A document and where it stands (``tables.DocumentRow``; its bytes: ``DocumentStore.raw``)."""

    id: str
    supplier_id: str
    institution_id: str | None
    status: str
    sha256: str
    size: int
    idempotency_key: str | None
    document_type: str | None
    customization_id: str | None
    number: str | None
    issue_date: date | None
    issue_year: int | None
    number_key: str | None
    currency: str | None
    payable_amount: Decimal | None
    seller_endpoint: str | None
    seller_vat_id: str | None
    seller_legal_id: str | None
    buyer_endpoint: str | None
    suspected_duplicate_of: str | None
    refusal_code: str | None
    refusal_reason: str | None
    match_result: str | None
    ruleset: str | None
    journal_ref: str | None
    failure_reason: str | None
    lease_token: str | None
    lease_expires_at: datetime | None
    received_at: datetime
    status_changed_at: datetime


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One step of a document's history (``tables.TransitionRow``)."""

    id: int
    document_id: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    detail: str | None


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A response the buyer gave the supplier about a document (``tables.ResponseRow``)."""

    id: int
    document_id: str
    kind: str
    code: str
    reason: str | None
    action: str | None
    note: str | None
    number: str
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user of the accountants' pages (``tables.UserRow``)."""

    id: str
    username: str
    role: str
    password_hash: str
    active: bool
    failed_sign_ins: int
    locked_until: datetime | None
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in user's session (``tables.UserSessionRow``)."""

    token_hash: str
    user_id: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ApprovalRuleRecord:
    """An institution's approval limits (``tables.ApprovalRuleRow``)."""

    institution_id: str
    person_above: Decimal | None
    two_people_above: Decimal | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A person's decision on a document (``tables.DecisionRow``)."""

    id: int
    document_id: str
    user_id: str | None
    username: str
    action: str
    reason: str | None
    comment: str | None
    from_status: str
    to_status: str
    at: datetime


R = TypeVar("R")


#: Per record class: what reads its fields' values off a row, in the order of its fields.
_READERS: dict[type[Any], Callable[[Any], tuple[Any, ...]]] = {}


def record_of(record: type[R], row: Any) -> R:
    """The ``record`` (one of the classes above) of ``row``: any object with its attributes."""
    read = _READERS.get(record)
    if read is None:
        names = [f.name for f in fields(record)]  # type: ignore[arg-type]
        one = attrgetter(*names)
        read = _READERS[record] = one if len(names) > 1 else lambda row: (one(row),)
    return record(*read(row))


def record_or_none(record: type[R], row: Any) -> R | None:
    return None if row is None else record_of(record, row)


def finding_of(row: Any) -> Finding:
    """The ``Finding`` a findings row (``tables.FindingRow``, or an object with its attributes) keeps."""
    return Finding(
        rule=row.rule,
        severity=Severity(row.severity),
        layer=Layer(row.layer),
        message=row.message,
        location=row.location,
        line=row.line,
        test=row.test,
        value=row.value,
        override=row.override,
    )


class InstitutionStore(Protocol):
    def add(self, row: InstitutionRow) -> InstitutionRecord: ...
    def get(self, institution_id: str) -> InstitutionRecord | None: ...
    def by_key_hash(self, key_hash: str) -> InstitutionRecord | None: ...
    def by_endpoint(self, scheme: str, endpoint_id: str) -> InstitutionRecord | None: ...
    def list(self) -> Sequence[InstitutionRecord]: ...
    def set_api_key_hash(self, institution_id: str, key_hash: str) -> InstitutionRecord: ...


class SupplierStore(Protocol):
    def add(self, row: SupplierRow) -> SupplierRecord: ...
    def get(self, supplier_id: str) -> SupplierRecord | None: ...
    def by_key_hash(self, key_hash: str) -> SupplierRecord | None: ...
    def by_identifier(self, column: str, value: str) -> SupplierRecord | None: ...
    def by_endpoint(self, scheme: str, endpoint_id: str) -> SupplierRecord | None: ...
    def list(self) -> Sequence[SupplierRecord]: ...
    def set_api_key_hash(self, supplier_id: str, key_hash: str) -> SupplierRecord: ...
    def set_active(self, supplier_id: str, active: bool) -> SupplierRecord: ...
    def holding_identifiers(self, values: Collection[str], *, other_than: str) -> set[str]: ...


class DocumentStore(Protocol):
    def add_refused(
        self, values: dict[str, Any], raw: bytes, *, actor: str, detail: str, findings: Sequence[dict[str, Any]]
    ) -> None: ...
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
    ) -> str | None: ...
    def earlier_with_key(self, key: str | None, *, not_duplicate_of: Collection[str] = ()) -> str | None: ...
    def write(self, change: DocumentChange, *, commit: bool = False) -> Written: ...
    def write_many(self, changes: Sequence[DocumentChange]) -> list[Written]: ...
    def compare_and_set(
        self,
        document_id: str,
        *,
        expected: Collection[str],
        values: dict[str, Any],
        at: datetime,
        steps: Sequence[Step] = (),
        holder: Any = ...,
        findings: Sequence[dict[str, Any]] | None = None,
        message: str | None = None,
    ) -> bool: ...
    def get(self, document_id: str, *, for_update: bool = False) -> DocumentRecord | None: ...
    def get_many(self, document_ids: Collection[str]) -> dict[str, DocumentRecord]: ...
    def by_sha256(self, supplier_id: str, sha256: str) -> DocumentRecord | None: ...
    def by_idempotency_key(self, supplier_id: str, key: str) -> DocumentRecord | None: ...
    def lock_number(self, key: str) -> None: ...
    def raw(self, document_id: str) -> bytes | None: ...
    def list_for_supplier(
        self, supplier_id: str, *, status: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> Sequence[DocumentRecord]: ...
    def stuck(
        self,
        *,
        idle_statuses: Collection[str],
        idle_before: datetime,
        working_statuses: Collection[str],
        now: datetime,
        limit: int = 500,
        resting_with_reason: Collection[str] = (),
    ) -> Sequence[DocumentRecord]: ...
    def oldest_status_change(self, statuses: Collection[str]) -> datetime | None: ...
    def count_by_status(self) -> dict[str, int]: ...
    def transitions(self, document_id: str) -> Sequence[TransitionRecord]: ...
    def stage_durations(
        self, since: datetime, states: Collection[str], *, limit: int = 5_000
    ) -> dict[str, list[float]]: ...
    def findings(self, document_id: str) -> Sequence[Finding]: ...
    def add_parsed(self, document_id: str, invoice: Invoice, *, at: datetime) -> None: ...
    def parsed(self, document_id: str) -> Invoice | None: ...
    def earlier_of_supplier(self, query: EarlierQuery) -> Sequence[EarlierRow]: ...
    def responses(self, document_id: str) -> Sequence[ResponseRecord]: ...
    def response(self, document_id: str, response_id: int) -> ResponseRecord | None: ...


class OutboxStore(Protocol):
    def add(self, document_id: str, action: str, *, now: datetime) -> None: ...
    def claim_pending(self, limit: int = 100) -> Sequence[OutboxRow]: ...
    def take_pending(self, limit: int = 100, *, now: datetime) -> list[tuple[int, str, str]]: ...
    def mark_sent(self, rows: Iterable[OutboxRow], *, now: datetime) -> None: ...
    def last_written_at(self, document_id: str) -> datetime | None: ...
    def pending_count(self) -> int: ...
    def oldest_pending_created_at(self) -> datetime | None: ...
    def purge_sent(self, *, before: datetime) -> int: ...


class CommitmentStore(Protocol):
    """The commitments register (``store.commitments.CommitmentRepository``)."""

    def get(self, institution_id: str, number: str, *, for_update: bool = False) -> Commitment | None: ...
    def lock(self, institution_id: str, numbers: Collection[str]) -> dict[str, Commitment]: ...
    def by_number(
        self,
        institution_id: str,
        number: str,
        *,
        kinds: Collection[CommitmentKind] | None = None,
        for_update: bool = False,
    ) -> Commitment | None: ...
    def list_for(
        self, institution_id: str, *, supplier_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Commitment]: ...
    def receipt(self, institution_id: str, number: str, reference: str) -> Receipt | None: ...
    def documents_referencing(self, institution_id: str, number: str, *, status: str) -> list[str]: ...
    def add(self, commitment: Commitment, *, source: str, at: datetime) -> None: ...
    def replace(self, commitment: Commitment, *, at: datetime) -> None: ...
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
    ) -> Commitment: ...
    def put_figures(self, before: Commitment, after: Commitment, *, at: datetime) -> None: ...
    def put_figures_many(self, changes: Sequence[tuple[Commitment, Commitment]], *, at: datetime) -> None: ...
    def add_receipt(self, institution_id: str, number: str, receipt: Receipt, *, at: datetime) -> None: ...
    def default_tolerances(self, institution_id: str) -> Tolerances: ...
    def set_default_tolerances(self, institution_id: str, tolerances: Tolerances, *, at: datetime) -> None: ...
    def add_despatch_advice(
        self, advice: DespatchAdvice, *, institution_id: str, supplier_id: str, at: datetime
    ) -> DespatchAdvice: ...
    def despatch_advice(self, advice_id: str, *, for_update: bool = False) -> DespatchAdvice | None: ...
    def despatch_advice_by_number(self, supplier_id: str, number: str) -> DespatchAdvice | None: ...
    def despatch_advice_owner(self, advice_id: str) -> tuple[str, str] | None: ...
    def list_despatch_advices(
        self, institution_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[DespatchAdvice]: ...
    def confirm_despatch_advice(self, advice_id: str, *, receipt_reference: str, at: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class Books:
    """What posting a document reads of its institution (``PostingStore.books``): its endpoint
    (``scheme:id``), its posting profile and the chart in force, each None when there is none."""

    endpoint: str
    profile: PostingProfile | None
    chart: ChartOfAccounts | None


class PostingStore(Protocol):
    """Charts of accounts, posting profiles and journal entries (``store.posting.PostingRepository``)."""

    def replace_chart(self, institution_id: str, effective_from: date, accounts: Iterable[Account]) -> None: ...
    def chart(self, institution_id: str, at: date | None = None) -> ChartOfAccounts | None: ...
    def books(self, institution_id: str, on: date) -> Books | None: ...
    def read_books_ahead(self, institution_id: str, on: date) -> None: ...
    def profile(self, institution_id: str) -> PostingProfile | None: ...
    def set_profile(self, institution_id: str, profile: PostingProfile, *, at: datetime) -> None: ...
    def entry(self, document_id: str) -> JournalEntryRow | None: ...
    def add_entry(self, row: JournalEntryRow) -> JournalEntryRow: ...
    def mark_exported(
        self, document_id: str, *, batch: str, confirmed_at: datetime | None = None, confirmed_by: str | None = None
    ) -> None: ...
    def waiting_for_setup(self, institution_id: str | None, status: str) -> Sequence[str]: ...
    def entry_by_batch(self, batch: str) -> JournalEntryRow | None: ...
    def confirm_entry(self, document_id: str, *, at: datetime, by: str) -> bool: ...
    def confirm_unconfirmed(
        self, entry_ids: Sequence[str], *, at: datetime, by: str, institution_ids: Collection[str] | None = None
    ) -> dict[str, str]: ...
    def entries_by_ids(self, entry_ids: Collection[str]) -> Sequence[JournalEntryRow]: ...
    def unconfirmed_batches(self, limit: int = 1000) -> Sequence[JournalEntryRow]: ...
    def feed(
        self, institution_ids: Collection[str], *, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[JournalEntryRow]: ...
    def posted_entries(self, institution_id: str, start: date, end: date) -> Sequence[JournalEntryRow]: ...
    def add_erp(self, row: ErpRow, institution_ids: Iterable[str]) -> ErpRow: ...
    def erp_by_name(self, name: str) -> ErpRow | None: ...
    def erp_by_key_hash(self, key_hash: str) -> ErpRecord | None: ...
    def erp_institutions(self, erp_id: str) -> Sequence[InstitutionRecord]: ...
    def put_rates(self, rows: Iterable[ExchangeRateRow]) -> int: ...
    def rate_on(self, base: str, currency: str, on: date) -> RateRecord | None: ...
    def payment(self, document_id: str) -> PaymentRow | None: ...


class UserStore(Protocol):
    """The accountants' accounts and sessions (``store.repositories.UserRepository``)."""

    def add(self, row: UserRow, institution_ids: Iterable[str]) -> UserRecord: ...
    def get(self, user_id: str) -> UserRecord | None: ...
    def by_username(self, username: str) -> UserRecord | None: ...
    def list(self) -> Sequence[UserRecord]: ...
    def institutions_of(self, user_id: str) -> Sequence[InstitutionRecord]: ...
    def set_active(self, user_id: str, active: bool) -> UserRecord: ...
    def set_password(self, user_id: str, password_hash: str, *, changed_at: datetime | None) -> UserRecord: ...
    def set_failed_sign_ins(self, user_id: str, count: int, *, locked_until: datetime | None) -> UserRecord: ...
    def add_session(self, row: UserSessionRow) -> None: ...
    def session_by_hash(self, token_hash: str) -> SessionRecord | None: ...
    def touch_session(self, token_hash: str, at: datetime) -> None: ...
    def end_session(self, token_hash: str) -> None: ...
    def end_sessions_of(self, user_id: str) -> None: ...
    def end_expired_sessions(self, now: datetime) -> None: ...
    def approval_rule(self, institution_id: str) -> ApprovalRuleRecord | None: ...
    def read_approval_rule_ahead(self, institution_id: str) -> None: ...
    def set_approval_rule(self, row: ApprovalRuleRow) -> None: ...
    def decisions(self, document_id: str) -> Sequence[DecisionRecord]: ...


class ReviewStore(Protocol):
    """The accountants' queue (``store.review.ReviewRepository``): the documents waiting for a
    person in the given institutions."""

    def queue(self, wanted: QueueFilter, *, institution_ids: Collection[str], now: datetime) -> QueueSlice: ...
    def counts(self, *, institution_ids: Collection[str]) -> QueueCounts: ...


class UnitOfWork(Protocol):
    """One transaction and the repositories that work inside it. ``with uow:`` begins it (entering
    again joins it), ``commit()`` commits it, leaving the block without a commit rolls it back."""

    @property
    def institutions(self) -> InstitutionStore: ...
    @property
    def suppliers(self) -> SupplierStore: ...
    @property
    def documents(self) -> DocumentStore: ...
    @property
    def outbox(self) -> OutboxStore: ...
    @property
    def commitments(self) -> CommitmentStore: ...
    @property
    def users(self) -> UserStore: ...
    @property
    def posting(self) -> PostingStore: ...
    @property
    def review(self) -> ReviewStore: ...

    @property
    def scope(self) -> object:
        """What identifies the data behind this unit of work (the engine), for per-store caches."""
        ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


# --- suppliers' webhooks (not part of the unit of work: no stage writes them) -------------------------


@dataclass(frozen=True, slots=True)
class WebhookView:
    url: str
    created_at: datetime
    rotated_at: datetime | None


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    id: str
    response_id: int
    document_id: str
    attempts: int
    last_error: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One delivery's attempt: where, with which secret, which response (detached)."""

    id: str
    attempts: int  # made before this one
    url: str
    secret: str
    response: ResponseRecord


class WebhookStore(Protocol):
    def get(self, supplier_id: str) -> WebhookView | None: ...
    def put(self, supplier_id: str, url: str, secret: str, *, now: datetime) -> WebhookView: ...
    def delete(self, supplier_id: str) -> bool: ...
    def failures(self, supplier_id: str, *, limit: int) -> list[FailedDelivery]: ...
    def scan(self, *, now: datetime, limit: int) -> int: ...
    def claim_due(self, *, now: datetime, lease: timedelta, limit: int) -> list[str]: ...
    def job(self, delivery_id: str) -> DeliveryJob | None: ...
    def record(self, delivery_id: str, *, error: str | None, now: datetime, retry_at: datetime | None) -> None: ...
