"""The parsed document: ``parsed_documents`` keeps, for each valid document, its EN 16931 model
(``domain.invoice.Invoice``) as JSON (``parsers.invoice_dict``: header, parties with their
identifiers, lines, allowances and charges, VAT breakdown, totals), with the format version of
that JSON and when it was parsed. Matching and posting read it instead of the XML.

A new table beside ``documents`` (no batch copy of a table that others reference). Documents
validated before this revision have no row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parsed_documents",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("parsed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_parsed_documents_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_parsed_documents")),
    )


def downgrade() -> None:
    op.drop_table("parsed_documents")
