"""Indexes for matching's history of a supplier (``repositories.earlier_of_supplier``): its
documents by number, by issue date, and by kind, institution and issue date (its credit notes; its
last invoices with an institution). Without them each match read every earlier document of the
supplier: with one supplier sending thousands, the pipeline slowed down as they accumulated.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_documents_supplier_number": ["supplier_id", "number"],
    "ix_documents_supplier_issued": ["supplier_id", "issue_date"],
    "ix_documents_supplier_kind_issued": [
        "supplier_id",
        "document_type",
        "institution_id",
        "issue_date",
        "received_at",
    ],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "documents", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="documents")
