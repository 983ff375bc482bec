"""Delivery to the ERP: ERPs and their keys (``erps``, ``erp_institutions``: one ERP may serve many
institutions), exchange rates (``exchange_rates``: one rate per currency and date, the ECB
reference-rate layout), payments the ERP records (``payments``), and on ``journal_entries`` the
posting date (the trial balance reads by it) and the index the pull feed reads unconfirmed entries
by.

New tables, a nullable column added and indexes: no batch copy of a table others reference.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erps",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erps")),
        sa.UniqueConstraint("name", name=op.f("uq_erps_name")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_erps_api_key_hash")),
    )
    op.create_table(
        "erp_institutions",
        sa.Column("erp_id", sa.String(length=32), nullable=False),
        sa.Column("institution_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["erp_id"], ["erps.id"], name=op.f("fk_erp_institutions_erp_id_erps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_erp_institutions_institution_id_institutions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("erp_id", "institution_id", name=op.f("pk_erp_institutions")),
    )
    op.create_table(
        "exchange_rates",
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate_date", sa.Date(), nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.String(length=48), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("base", "currency", "rate_date", name=op.f("pk_exchange_rates")),
    )
    op.create_table(
        "payments",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("erp_id", sa.String(length=32), nullable=True),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.String(length=48), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_payments_document_id_documents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["erp_id"], ["erps.id"], name=op.f("fk_payments_erp_id_erps")),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_payments")),
    )
    op.add_column("journal_entries", sa.Column("posting_date", sa.Date(), nullable=True))
    entries = sa.table(
        "journal_entries", sa.column("document_id", sa.String), sa.column("data", sa.JSON), sa.column("posting_date")
    )
    connection = op.get_bind()
    for document_id, data in connection.execute(sa.select(entries.c.document_id, entries.c.data)).all():
        when = (data or {}).get("posting_date")
        if when:
            connection.execute(
                entries.update()
                .where(entries.c.document_id == document_id)
                .values(posting_date=date.fromisoformat(when))
            )
    op.create_index("ix_journal_entries_feed", "journal_entries", ["confirmed_at", "created_at", "document_id"])
    op.create_index("ix_journal_entries_ledger", "journal_entries", ["institution_id", "posting_date"])


def downgrade() -> None:
    op.drop_index("ix_journal_entries_ledger", table_name="journal_entries")
    op.drop_index("ix_journal_entries_feed", table_name="journal_entries")
    with op.batch_alter_table("journal_entries") as batch:
        batch.drop_column("posting_date")
    op.drop_table("payments")
    op.drop_table("exchange_rates")
    op.drop_table("erp_institutions")
    op.drop_table("erps")
