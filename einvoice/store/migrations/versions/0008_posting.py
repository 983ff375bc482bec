"""Posting: each institution's chart of accounts (``accounts``, versioned by the date it is in
force from), its posting profile (``posting_profiles``, JSON) and the journal entry built for each
posted document (``journal_entries``, the entry's JSON as delivered, the file batch it went out in
and when the ERP confirmed it). Institutions' API keys are on ``institutions`` (0006).

New tables only: no batch copy of a table that others reference.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("institution_id", sa.String(length=32), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_accounts_institution_id_institutions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("institution_id", "effective_from", "number", name=op.f("pk_accounts")),
    )
    op.create_table(
        "posting_profiles",
        sa.Column("institution_id", sa.String(length=32), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_posting_profiles_institution_id_institutions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("institution_id", name=op.f("pk_posting_profiles")),
    )
    op.create_table(
        "journal_entries",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("institution_id", sa.String(length=32), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch", sa.String(length=200), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_journal_entries_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institutions.id"], name=op.f("fk_journal_entries_institution_id_institutions")
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_journal_entries")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_journal_entries_entry_id")),
    )
    op.create_index(op.f("ix_journal_entries_institution_id"), "journal_entries", ["institution_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_journal_entries_institution_id"), table_name="journal_entries")
    op.drop_table("journal_entries")
    op.drop_table("posting_profiles")
    op.drop_table("accounts")
