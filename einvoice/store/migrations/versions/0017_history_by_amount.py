"""Matching's history finds a supplier's earlier documents by indexes that hold exactly what it
looks for, so that no part of it reads all the supplier's documents:

- the same BT-112 within the duplicate window: ``parsed_documents`` keeps the document's supplier
  and issue date (BT-2) beside its amount, indexed as (supplier, amount, issue date). Before, that
  part read every document of the supplier issued within the window
  (``ix_documents_supplier_issued``) and looked up each one's parsed form for its amount: 1,870
  buffers a document at 420 documents of one supplier, growing with them. Existing rows are filled
  in from their documents; the index on the amount alone and the documents' (supplier, issue date)
  index, which served only that part, are dropped.
- the same numbers (BT-1): by the key ``supplier_id || ':' || number``, which only
  ``ix_documents_supplier_number_key`` holds, instead of (supplier, number): the planner's plan
  for any values took an index led by the supplier for them and read all the supplier's documents
  (800 buffers at 420).

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
    op.drop_index("ix_documents_supplier_number", table_name="documents")
    # as PostgreSQL writes the expression back (tables.SupplierNumberKey)
    postgres = op.get_bind().dialect.name == "postgresql"
    key = "((supplier_id::text || ':'::text) || number::text)" if postgres else "(supplier_id || ':' || number)"
    op.create_index("ix_documents_supplier_number_key", "documents", [sa.text(key)])


def downgrade() -> None:
    op.drop_index("ix_documents_supplier_number_key", table_name="documents")
    op.create_index("ix_documents_supplier_number", "documents", ["supplier_id", "number"])
    op.create_index("ix_documents_supplier_issued", "documents", ["supplier_id", "issue_date"])
    op.drop_index("ix_parsed_documents_supplier_amount", table_name="parsed_documents")
    op.create_index("ix_parsed_documents_amount", "parsed_documents", ["tax_inclusive_amount"])
    with op.batch_alter_table("parsed_documents") as batch:
        batch.drop_column("issue_date")
        batch.drop_column("supplier_id")
