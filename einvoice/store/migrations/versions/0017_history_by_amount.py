"""Matching's history finds a supplier's documents of the same BT-112 within the duplicate window
by one index: ``parsed_documents`` keeps the document's supplier and issue date (BT-2) beside its
amount, indexed as (supplier, amount, issue date). Before, that part of the history read every
document of the supplier issued within the window (``ix_documents_supplier_issued``) and looked up
each one's parsed form for its amount: 1,870 buffers a document at 420 documents of one supplier,
growing with them. Existing rows are filled in from their documents; the index on the amount
alone and the documents' (supplier, issue date) index, which served only that part, are dropped
(one index fewer to update on every change of a document).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parsed_documents") as batch:
        batch.add_column(sa.Column("supplier_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("issue_date", sa.Date(), nullable=True))
    # one statement on both databases: each row's document by its primary key
    op.execute(
        "UPDATE parsed_documents SET"
        " supplier_id = (SELECT d.supplier_id FROM documents AS d WHERE d.id = parsed_documents.document_id),"
        " issue_date = (SELECT d.issue_date FROM documents AS d WHERE d.id = parsed_documents.document_id)"
    )
    op.drop_index("ix_parsed_documents_amount", table_name="parsed_documents")
    op.create_index(
        "ix_parsed_documents_supplier_amount", "parsed_documents", ["supplier_id", "tax_inclusive_amount", "issue_date"]
    )
    op.drop_index("ix_documents_supplier_issued", table_name="documents")


def downgrade() -> None:
    op.create_index("ix_documents_supplier_issued", "documents", ["supplier_id", "issue_date"])
    op.drop_index("ix_parsed_documents_supplier_amount", table_name="parsed_documents")
    op.create_index("ix_parsed_documents_amount", "parsed_documents", ["tax_inclusive_amount"])
    with op.batch_alter_table("parsed_documents") as batch:
        batch.drop_column("issue_date")
        batch.drop_column("supplier_id")
