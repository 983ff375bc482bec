"""The accountants' queue at scale: a document's reasons by code (``document_reasons``, written with
its match result), and partial indexes of the documents waiting for a person, one per sort of the
queue (and the suppliers' and institutions' names, for the sorts by them).

New table and indexes only (no table that others reference is altered). The reasons of documents
matched before are read from their stored match result here, once.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVIEW_PREDICATE = "status IN ('awaiting_second_approval', 'exception', 'matched', 'under_query')"
SORT_INDEXES: dict[str, list[str | sa.TextClause]] = {
    "ix_documents_review_age": ["status_changed_at", "id"],
    "ix_documents_review_amount": [sa.text("CAST(payable_amount AS NUMERIC)"), "id"],
    "ix_documents_review_issue_date": ["issue_date", "id"],
    "ix_documents_review_number": ["number", "id"],
    "ix_documents_review_supplier": ["supplier_id", "status_changed_at"],
    "ix_documents_review_institution": ["institution_id", "status_changed_at", "id"],
}


def _codes(match_result: str | None, suspected_duplicate_of: str | None) -> list[str]:
    """The codes of a stored match result (as ``domain.review.reason_rows`` writes them)."""
    try:
        result = json.loads(match_result) if match_result else {}
    except ValueError:
        result = {}
    if not isinstance(result, dict):
        result = {}
    codes: list[str] = []
    for key in ("reasons", "warnings"):
        for reason in result.get(key) or []:
            if isinstance(reason, dict) and reason.get("code"):
                codes.append(str(reason["code"])[:40])
    if suspected_duplicate_of or result.get("suspected_duplicate_of"):
        codes.append("SUSPECTED_DUPLICATE")
    return list(dict.fromkeys(codes))


def upgrade() -> None:
    reasons = op.create_table(
        "document_reasons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_reasons_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_reasons")),
    )
    op.create_index("ix_document_reasons_document", "document_reasons", ["document_id"])
    op.create_index("ix_document_reasons_code", "document_reasons", ["code", "document_id"])
    op.create_index("ix_suppliers_name", "suppliers", ["name", "id"])
    op.create_index("ix_institutions_name", "institutions", ["name", "id"])
    where = sa.text(REVIEW_PREDICATE)
    for name, columns in SORT_INDEXES.items():
        op.create_index(name, "documents", columns, postgresql_where=where, sqlite_where=where)

    documents = sa.table("documents", sa.column("id"), sa.column("match_result"), sa.column("suspected_duplicate_of"))
    connection = op.get_bind()
    found = connection.execute(
        sa.select(documents.c.id, documents.c.match_result, documents.c.suspected_duplicate_of).where(
            documents.c.match_result.is_not(None)
        )
    ).all()
    batch: list[dict[str, str]] = []
    for document_id, match_result, duplicate in found:
        batch.extend({"document_id": document_id, "code": code} for code in _codes(match_result, duplicate))
        if len(batch) >= 5_000:
            op.bulk_insert(reasons, batch)
            batch = []
    if batch:
        op.bulk_insert(reasons, batch)


def downgrade() -> None:
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="documents")
    op.drop_index("ix_institutions_name", table_name="institutions")
    op.drop_index("ix_suppliers_name", table_name="suppliers")
    op.drop_index("ix_document_reasons_code", table_name="document_reasons")
    op.drop_index("ix_document_reasons_document", table_name="document_reasons")
    op.drop_table("document_reasons")
