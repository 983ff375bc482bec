"""Indexes that only one lookup matches: documents get ``number_key``
("<supplier_id>:<issue_year>:<number>"), indexed in the order intake reads it, in place of the
index on (supplier_id, number, issue_year); the unique keys on sha256 and on the idempotency key
are led by those columns, not by supplier_id.

Intake looks up the earliest document of the supplier with the number and year. The lookup named
three columns, and every index led by ``supplier_id`` matched it too: with no or few statistics
the PostgreSQL planner took one of those and read every document of the supplier, on each
submission. The same held for the lookup of a repeat by its sha256 or idempotency key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number_key", sa.String(length=256), nullable=True))
    op.execute(
        "UPDATE documents SET number_key = supplier_id || ':' || CAST(issue_year AS VARCHAR(12)) || ':' || number"
        " WHERE number IS NOT NULL AND number <> '' AND issue_year IS NOT NULL AND issue_year <> 0"
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_supplier_number_year")
        batch_op.create_index("ix_documents_number_key", ["number_key", "received_at", "id"], unique=False)
        batch_op.drop_constraint("uq_documents_supplier_id_sha256", type_="unique")
        batch_op.drop_constraint("uq_documents_supplier_id_idempotency_key", type_="unique")
        batch_op.create_unique_constraint("uq_documents_sha256_supplier_id", ["sha256", "supplier_id"])
        batch_op.create_unique_constraint(
            "uq_documents_idempotency_key_supplier_id", ["idempotency_key", "supplier_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint("uq_documents_idempotency_key_supplier_id", type_="unique")
        batch_op.drop_constraint("uq_documents_sha256_supplier_id", type_="unique")
        batch_op.create_unique_constraint("uq_documents_supplier_id_sha256", ["supplier_id", "sha256"])
        batch_op.create_unique_constraint(
            "uq_documents_supplier_id_idempotency_key", ["supplier_id", "idempotency_key"]
        )
        batch_op.drop_index("ix_documents_number_key")
        batch_op.create_index(
            "ix_documents_supplier_number_year", ["supplier_id", "number", "issue_year"], unique=False
        )
        batch_op.drop_column("number_key")
