"""Tables, as SQLAlchemy 2 typed declarative classes.

The migrations in ``migrations/versions`` create exactly these; a test compares the two.
Identifiers are 32-character hex strings (uuid4); timestamps are UTC (see ``types.UTCDateTime``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    cast,
    false,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from einvoice.store.types import DecimalText, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only gives AUTOINCREMENT-like rowids to INTEGER PRIMARY KEY columns.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
# JSON text on SQLite, binary JSON on PostgreSQL (indexable, queryable with -> and @>).
JsonData = JSON().with_variant(postgresql.JSONB(), "postgresql")


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class InstitutionRow(Base):
    """A buyer institution; documents are addressed to its Peppol endpoint (BT-49)."""

    __tablename__ = "institutions"
    __table_args__ = (
        UniqueConstraint("endpoint_scheme", "endpoint_id"),
        # A unique index rather than a constraint: added by ALTER TABLE on SQLite (no batch copy of
        # a table that documents and commitments reference).
        Index("ix_institutions_api_key_hash", "api_key_hash", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    endpoint_scheme: Mapped[str] = mapped_column(String(16))
    endpoint_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: sha256 of the institution's API key (``einvoice institutions new-key``); None: no key issued.
    api_key_hash: Mapped[str | None] = mapped_column(String(64))


class InstitutionToleranceRow(Base):
    """An institution's default tolerances, for commitments registered without their own. No row,
    or a column left None: that limit allows nothing (exact)."""

    __tablename__ = "institution_tolerances"

    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)
    price_percent: Mapped[Decimal | None] = mapped_column(DecimalText())
    price_amount: Mapped[Decimal | None] = mapped_column(DecimalText())
    quantity_percent: Mapped[Decimal | None] = mapped_column(DecimalText())
    amount_percent: Mapped[Decimal | None] = mapped_column(DecimalText())
    amount_amount: Mapped[Decimal | None] = mapped_column(DecimalText())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SupplierRow(Base):
    """A supplier allowed to submit; only the sha256 of its API key is kept."""

    __tablename__ = "suppliers"
    __table_args__ = (UniqueConstraint("endpoint_scheme", "endpoint_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    endpoint_scheme: Mapped[str] = mapped_column(String(16))  # BT-34 scheme
    endpoint_id: Mapped[str] = mapped_column(String(128))  # BT-34
    vat_id: Mapped[str | None] = mapped_column(String(64), index=True)  # BT-31
    legal_id: Mapped[str | None] = mapped_column(String(128), index=True)  # BT-30
    tax_id: Mapped[str | None] = mapped_column(String(64), index=True)  # BT-32 (a tax scheme other than VAT)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def column_length(row_class: type[Base], column: str) -> int:
    """How many characters a string column of ``row_class`` holds."""
    length: int = row_class.__table__.c[column].type.length  # type: ignore[attr-defined]
    return length


def number_key(supplier_id: str, number: str | None, issue_year: int | None) -> str | None:
    """The key of the supplier's invoice number (BT-1) in its issue year; None without either.
    Supplier ids hold no colon and years are digits, so the key tells its parts apart."""
    if not number or not issue_year:
        return None
    return f"{supplier_id}:{issue_year}:{number}"


class DocumentRow(Base):
    """One submitted document and where it stands. The raw bytes live in ``document_contents``."""

    __tablename__ = "documents"
    __table_args__ = (
        # Led by the column a repeat is looked up by: an index led by supplier_id would compete
        # with the others led by it, and the planner can pick the wrong one (see repositories).
        UniqueConstraint("sha256", "supplier_id"),
        UniqueConstraint("idempotency_key", "supplier_id"),
        # Intake's lookup of the earliest document with a number: one column that only this index
        # holds, so the planner cannot take an index led by supplier_id and read all of theirs.
        Index("ix_documents_number_key", "number_key", "received_at", "id"),
        Index("ix_documents_status_changed", "status", "status_changed_at"),
        Index("ix_documents_supplier_received", "supplier_id", "received_at"),
        # Matching's history of a supplier (repositories.earlier_of_supplier), one index per part,
        # so that no part reads all the supplier's documents: its credit notes and its last
        # invoices with an institution by issue date (its numbers: ``ix_documents_supplier_number_key``;
        # those of the same BT-112 around the document's issue date:
        # ``ix_parsed_documents_supplier_amount``).
        Index(
            "ix_documents_supplier_kind_issued",
            "supplier_id",
            "document_type",
            "institution_id",
            "issue_date",
            "received_at",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"))
    institution_id: Mapped[str | None] = mapped_column(ForeignKey("institutions.id"))
    status: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    document_type: Mapped[str | None] = mapped_column(String(32))  # invoice | credit_note
    customization_id: Mapped[str | None] = mapped_column(String(300))  # BT-24
    number: Mapped[str | None] = mapped_column(String(200))  # BT-1
    issue_date: Mapped[date | None] = mapped_column(Date)  # BT-2
    issue_year: Mapped[int | None] = mapped_column(Integer)
    #: "<supplier_id>:<issue_year>:<number>" (``number_key``): what makes a suspected duplicate.
    number_key: Mapped[str | None] = mapped_column(String(256))
    currency: Mapped[str | None] = mapped_column(String(3))  # BT-5
    payable_amount: Mapped[Decimal | None] = mapped_column(DecimalText())  # BT-115
    seller_endpoint: Mapped[str | None] = mapped_column(String(160))  # BT-34 "scheme:id"
    seller_vat_id: Mapped[str | None] = mapped_column(String(64))  # BT-31
    seller_legal_id: Mapped[str | None] = mapped_column(String(128))  # BT-30
    buyer_endpoint: Mapped[str | None] = mapped_column(String(160))  # BT-49 "scheme:id"
    suspected_duplicate_of: Mapped[str | None] = mapped_column(String(32))
    refusal_code: Mapped[str | None] = mapped_column(String(64))
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    match_result: Mapped[str | None] = mapped_column(Text)  # JSON
    #: JSON: what validation ran (document type and CustomizationID as validated, rule set, its
    #: version and artefacts: ``ValidationReport.rule_set()``), for the stored report.
    ruleset: Mapped[str | None] = mapped_column(Text)
    journal_ref: Mapped[str | None] = mapped_column(String(200))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # A worker that moved the document into a working state holds it until lease_expires_at;
    # lease_token says which message holds it (dramatiq keeps the message id across retries).
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


#: The documents waiting for a person (``domain.states.REVIEW_STATES``), written out: the predicate
#: of the queue's partial indexes, which the planner uses only for a query that states it as is.
REVIEW_PREDICATE = "status IN ('awaiting_second_approval', 'exception', 'matched', 'under_query')"
#: The queue's amount: BT-115 as a number (the column keeps the document's text).
PAYABLE_AMOUNT = cast(DocumentRow.__table__.c.payable_amount, Numeric())


def _review_index(name: str, *columns: Any) -> Index:
    """A partial index of the documents waiting for a person, one per sort of the queue (the
    sort's key, then id: the order is stable and a page is read off the index)."""
    where = text(REVIEW_PREDICATE)
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


_DOCUMENTS = DocumentRow.__table__.c
REVIEW_INDEXES = (
    _review_index("ix_documents_review_age", _DOCUMENTS.status_changed_at, _DOCUMENTS.id),
    _review_index("ix_documents_review_amount", PAYABLE_AMOUNT, _DOCUMENTS.id),
    _review_index("ix_documents_review_issue_date", _DOCUMENTS.issue_date, _DOCUMENTS.id),
    _review_index("ix_documents_review_number", _DOCUMENTS.number, _DOCUMENTS.id),
    _review_index("ix_documents_review_supplier", _DOCUMENTS.supplier_id, _DOCUMENTS.status_changed_at),
    _review_index(
        "ix_documents_review_institution", _DOCUMENTS.institution_id, _DOCUMENTS.status_changed_at, _DOCUMENTS.id
    ),
)


class SupplierNumberKey(ColumnElement[str]):
    """A document's ``supplier_id:number``, the key by which matching's history looks up a
    supplier's documents of some numbers (BT-1), which only ``ix_documents_supplier_number_key``
    holds. With the two columns apart, the planner's plan for any values (which the history asks
    for) took an index led by the supplier for them and read every document of the supplier.
    Written on PostgreSQL as the server writes the index's expression back, so that comparing the
    migrated schema with these tables finds them equal; for a query on ``documents`` alone."""

    inherit_cache = True
    type = String()


@compiles(SupplierNumberKey, "postgresql")
def _supplier_number_key_postgresql(element: SupplierNumberKey, compiler: Any, **kw: Any) -> str:
    return "((supplier_id::text || ':'::text) || number::text)"


@compiles(SupplierNumberKey)
def _supplier_number_key(element: SupplierNumberKey, compiler: Any, **kw: Any) -> str:
    return "(supplier_id || ':' || number)"


SUPPLIER_NUMBER = SupplierNumberKey()
_DOCUMENTS_TABLE: Table = DocumentRow.__table__  # type: ignore[assignment]
Index("ix_documents_supplier_number_key", SUPPLIER_NUMBER, _table=_DOCUMENTS_TABLE)


# The queue sorted by supplier or institution: their names in order, each one's documents by
# ix_documents_review_supplier or _institution (an incremental sort, not a sort of the queue).
Index("ix_suppliers_name", SupplierRow.__table__.c.name, SupplierRow.__table__.c.id)
Index("ix_institutions_name", InstitutionRow.__table__.c.name, InstitutionRow.__table__.c.id)


class DocumentReasonRow(Base):
    """A reason a document waits for a person, by code (``REASON_LABELS``): the codes of its match
    result, written with it and replaced with it (``domain.review.reason_rows``), so that the
    queue filters and counts by reason without reading the JSON."""

    __tablename__ = "document_reasons"
    __table_args__ = (
        Index("ix_document_reasons_document", "document_id"),
        Index("ix_document_reasons_code", "code", "document_id"),
    )

    # A serial key, not (document_id, code): a write that replaces a document's reasons deletes and
    # inserts in one PostgreSQL statement, where the new rows must not meet the old ones' key.
    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))


class DocumentContentRow(Base):
    """The bytes exactly as received (kept apart so that listing documents stays light)."""

    __tablename__ = "document_contents"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class ParsedDocumentRow(Base):
    """A valid document read into the EN 16931 model (``domain.invoice.Invoice``), for matching and
    posting: the data of ``parsers.invoice_dict.invoice_to_dict`` in its ``format_version``."""

    __tablename__ = "parsed_documents"
    # Matching's history: the supplier's documents of a BT-112 issued within the duplicate window,
    # found among only those (led by the supplier and the amount, not the dates: a supplier's
    # documents in a window of months may be thousands, those of one amount among them few).
    __table_args__ = (
        Index("ix_parsed_documents_supplier_amount", "supplier_id", "tax_inclusive_amount", "issue_date"),
    )

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonData)
    format_version: Mapped[int] = mapped_column(Integer)
    parsed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What matching's history reads of every earlier document, kept beside ``data`` so that the
    # history does not read (and, on PostgreSQL, decompress) the whole parsed form per document:
    # BT-112 as ``amount_key`` text (equal amounts, equal texts), and whether it is a credit note.
    tax_inclusive_amount: Mapped[str | None] = mapped_column(String(48))
    credit_note: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The document's supplier and BT-2, for the index that finds the same BT-112 of a supplier.
    supplier_id: Mapped[str | None] = mapped_column(String(32))
    issue_date: Mapped[date | None] = mapped_column(Date)


class TransitionRow(Base):
    """One change of a document's state: who or what made it, when, and why."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_document", "document_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(Text)


class FindingRow(Base):
    """One finding about a document (validation layers, intake, business checks)."""

    __tablename__ = "findings"
    __table_args__ = (Index("ix_findings_document", "document_id", "position"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    layer: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    line: Mapped[int | None] = mapped_column(Integer)
    test: Mapped[str | None] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    override: Mapped[str | None] = mapped_column(Text)


class OutboxRow(Base):
    """A message to send, written in the same transaction as the change that calls for it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "sent_at", "id"),
        Index("ix_outbox_document", "document_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))  # validate | match | post
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- the commitments register ----------------------------------------------------------------------


class CommitmentRow(Base):
    """An order, contract or framework of one institution with one supplier (``domain.commitments``).
    ``reserved`` and ``consumed`` change only under a lock on the row (``CommitmentRepository``)."""

    __tablename__ = "commitments"
    __table_args__ = (
        UniqueConstraint("institution_id", "number"),
        Index("ix_commitments_supplier", "institution_id", "supplier_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"))
    number: Mapped[str] = mapped_column(String(200))  # compared with BT-13, BT-12, BT-10
    kind: Mapped[str] = mapped_column(String(16))  # order | contract | framework
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"))
    #: The supplier as the commitment named it (any one identifies it).
    supplier_endpoint: Mapped[str | None] = mapped_column(String(160))  # BT-34 "scheme:id"
    supplier_vat: Mapped[str | None] = mapped_column(String(64))  # BT-31
    supplier_legal_id: Mapped[str | None] = mapped_column(String(128))  # BT-30
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    budget_programme: Mapped[str | None] = mapped_column(String(64))
    budget_economic_code: Mapped[str | None] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(64))
    receipt_required: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal] = mapped_column(DecimalText())  # VAT included
    price_percent: Mapped[Decimal | None] = mapped_column(DecimalText())
    price_amount: Mapped[Decimal | None] = mapped_column(DecimalText())
    quantity_percent: Mapped[Decimal | None] = mapped_column(DecimalText())
    amount_percent: Mapped[Decimal | None] = mapped_column(DecimalText())
    amount_amount: Mapped[Decimal | None] = mapped_column(DecimalText())
    status: Mapped[str] = mapped_column(String(16))  # open | closed
    reserved: Mapped[Decimal] = mapped_column(DecimalText())
    consumed: Mapped[Decimal] = mapped_column(DecimalText())
    source: Mapped[str] = mapped_column(String(16))  # api | import | order
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CommitmentLineRow(Base):
    """One line of a commitment, with what receipts say arrived and what matched invoices hold."""

    __tablename__ = "commitment_lines"

    commitment_id: Mapped[str] = mapped_column(ForeignKey("commitments.id", ondelete="CASCADE"), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[Decimal] = mapped_column(DecimalText())
    unit_code: Mapped[str | None] = mapped_column(String(16))
    unit_price: Mapped[Decimal] = mapped_column(DecimalText())  # net
    description: Mapped[str | None] = mapped_column(Text)
    seller_item_id: Mapped[str | None] = mapped_column(String(200))  # BT-155
    standard_item_id: Mapped[str | None] = mapped_column(String(200))  # BT-157 "scheme:id"
    vat_category: Mapped[str | None] = mapped_column(String(8))  # BT-151
    vat_rate: Mapped[Decimal | None] = mapped_column(DecimalText())  # BT-152
    account: Mapped[str | None] = mapped_column(String(64))
    received: Mapped[Decimal] = mapped_column(DecimalText())
    invoiced: Mapped[Decimal] = mapped_column(DecimalText())


class ReceiptRow(Base):
    """Goods received or services accepted against a commitment: the buyer's word."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("commitment_id", "reference"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    commitment_id: Mapped[str] = mapped_column(ForeignKey("commitments.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(200))
    received_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReceiptLineRow(Base):
    __tablename__ = "receipt_lines"

    receipt_id: Mapped[str] = mapped_column(ForeignKey("receipts.id", ondelete="CASCADE"), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the commitment line
    quantity: Mapped[Decimal] = mapped_column(DecimalText())


class DespatchAdviceRow(Base):
    """A supplier's Peppol Despatch Advice against an order commitment (migration 0010): expected
    deliveries until the institution confirms it (``status`` confirmed, ``receipt_reference`` the
    receipt it recorded)."""

    __tablename__ = "despatch_advices"
    __table_args__ = (
        UniqueConstraint("supplier_id", "number"),
        Index("ix_despatch_advices_institution", "institution_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"))
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"))
    commitment_id: Mapped[str] = mapped_column(ForeignKey("commitments.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(200))  # cbc:ID
    issue_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # advised | confirmed
    receipt_reference: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DespatchAdviceLineRow(Base):
    """One line of a Despatch Advice: what was shipped against one commitment (order) line."""

    __tablename__ = "despatch_advice_lines"

    despatch_advice_id: Mapped[str] = mapped_column(
        ForeignKey("despatch_advices.id", ondelete="CASCADE"), primary_key=True
    )
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # cac:DespatchLine/cbc:ID
    position: Mapped[int] = mapped_column(Integer)
    order_line: Mapped[str] = mapped_column(String(64))  # the commitment line
    quantity: Mapped[Decimal] = mapped_column(DecimalText())
    unit_code: Mapped[str | None] = mapped_column(String(16))
    seller_item_id: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


# --- the accountants: users, sessions, decisions, approval rules (migration 0007) ------------------


class UserRow(Base):
    """A person who signs in to the accountants' pages. Only an Argon2id hash of the password is
    kept; ``failed_sign_ins`` in a row lock the user out until ``locked_until``."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # accountant | approver | administrator
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserInstitutionRow(Base):
    """An institution whose documents a user sees (and none other's)."""

    __tablename__ = "user_institutions"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)


class UserSessionRow(Base):
    """A signed-in session: the sha256 of the random token its (signed) cookie carries, the CSRF
    token of its forms, and when it ends (idle or not)."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user", "user_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DecisionRow(Base):
    """A person's decision on a document: who, when, what (approve, reject, query), why (the
    Invoice Response status reason code, a comment) and what it changed (states)."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_document", "document_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(8))  # OPStatusReason code
    comment: Mapped[str | None] = mapped_column(Text)
    from_status: Mapped[str] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApprovalRuleRow(Base):
    """An institution's approval limits (``domain.review.ApprovalRule``)."""

    __tablename__ = "approval_rules"

    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)
    person_above: Mapped[Decimal | None] = mapped_column(DecimalText())
    two_people_above: Mapped[Decimal | None] = mapped_column(DecimalText())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ResponseRow(Base):
    """A response the buyer gave the supplier about a document (``einvoice.responses``): a Peppol
    Invoice Response (``kind`` ``invoice-response``: the status ``code``, its OPStatusReason
    ``reason`` and OPStatusAction ``action``, ``note`` in words) or a Message Level Response
    (``message-level-response``, code ``RE``: the document's fatal findings). ``number`` is the
    response's cbc:ID; its XML is built from this row, the document and its parties."""

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_document", "document_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(2))
    reason: Mapped[str | None] = mapped_column(String(8))
    action: Mapped[str | None] = mapped_column(String(8))
    note: Mapped[str | None] = mapped_column(Text)
    number: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- suppliers' webhooks --------------------------------------------------------------------------


class WebhookRow(Base):
    """A supplier's webhook (``PUT /v1/webhook``): where its new responses are POSTed, signed with
    ``secret`` (HMAC-SHA256). Responses after ``since_response_id`` (at first the last one when the
    webhook was registered) are looked at by the relay's scan; the scan moves it up to
    ``next_since_response_id`` (the last response when it looked at ``next_since_at``) once that is
    old enough for every response up to it to be visible and recorded (``store.webhooks``)."""

    __tablename__ = "webhooks"

    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    since_response_id: Mapped[int] = mapped_column(BigInteger)
    next_since_response_id: Mapped[int | None] = mapped_column(BigInteger)
    next_since_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDeliveryRow(Base):
    """One response to deliver to a supplier's webhook (its id is the ``X-Einvoice-Delivery``):
    ``pending`` until the receiver answers 2xx (``delivered``) or the attempts run out (``dead``);
    ``next_attempt_at`` is when the relay sends it (again) to the queue."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("response_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_supplier", "supplier_id", "status", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    response_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("responses.id", ondelete="CASCADE"))
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- posting ----------------------------------------------------------------------------------------


class AccountRow(Base):
    """One account of an institution's chart of accounts, in the version in force from
    ``effective_from`` (a chart is every row of an institution with one ``effective_from``)."""

    __tablename__ = "accounts"

    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # domain.journal.AccountKind


class PostingProfileRow(Base):
    """An institution's posting profile: ``domain.journal.PostingProfile.to_dict``."""

    __tablename__ = "posting_profiles"

    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonData)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JournalEntryRow(Base):
    """The journal entry of a document (one per document: its id is ``je_<document id>``), kept as
    built so that every delivery of it, and every retry, sends the same entry. ``batch`` is the
    file it was exported in; ``confirmed_at`` when the ERP confirmed it, ``confirmed_by`` how."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        # The pull feed: unconfirmed entries in a stable order (``confirmed_at IS NULL`` first).
        Index("ix_journal_entries_feed", "confirmed_at", "created_at", "document_id"),
        Index("ix_journal_entries_ledger", "institution_id", "posting_date"),
    )

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(64), unique=True)
    institution_id: Mapped[str | None] = mapped_column(ForeignKey("institutions.id"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonData)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    batch: Mapped[str | None] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_by: Mapped[str | None] = mapped_column(String(200))
    posting_date: Mapped[date | None] = mapped_column(Date)  # the entry's, for the trial balance


class ErpRow(Base):
    """An ERP that takes journal entries (by pull, with its API key, of which only the sha256 is
    kept) for the institutions it serves (``erp_institutions``)."""

    __tablename__ = "erps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ErpInstitutionRow(Base):
    """An institution whose journal entries an ERP takes (and none other's)."""

    __tablename__ = "erp_institutions"

    erp_id: Mapped[str] = mapped_column(ForeignKey("erps.id", ondelete="CASCADE"), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)


class ExchangeRateRow(Base):
    """Units of ``currency`` per unit of ``base`` on ``rate_date`` (the ECB reference rates: base
    EUR, ``1 EUR = rate USD``)."""

    __tablename__ = "exchange_rates"

    base: Mapped[str] = mapped_column(String(3), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate_date: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(DecimalText())
    source: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentRow(Base):
    """A document's payment as the ERP recorded it (the supplier gets the Invoice Response PD)."""

    __tablename__ = "payments"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    erp_id: Mapped[str | None] = mapped_column(ForeignKey("erps.id"))
    paid_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    reference: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
