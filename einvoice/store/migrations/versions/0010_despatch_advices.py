"""Despatch Advices: suppliers' Peppol Despatch Advices (T16) against order commitments, with their
lines (expected deliveries per order line), until the institution confirms them as receipts.

New tables only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "despatch_advices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("institution_id", sa.String(length=32), nullable=False),
        sa.Column("supplier_id", sa.String(length=32), nullable=False),
        sa.Column("commitment_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=200), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("receipt_reference", sa.String(length=200), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["commitment_id"],
            ["commitments.id"],
            name=op.f("fk_despatch_advices_commitment_id_commitments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institutions.id"], name=op.f("fk_despatch_advices_institution_id_institutions")
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"], ["suppliers.id"], name=op.f("fk_despatch_advices_supplier_id_suppliers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_despatch_advices")),
        sa.UniqueConstraint("supplier_id", "number", name=op.f("uq_despatch_advices_supplier_id_number")),
    )
    op.create_index("ix_despatch_advices_institution", "despatch_advices", ["institution_id", "status"])
    op.create_table(
        "despatch_advice_lines",
        sa.Column("despatch_advice_id", sa.String(length=32), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("order_line", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.String(length=48), nullable=False),
        sa.Column("unit_code", sa.String(length=16), nullable=True),
        sa.Column("seller_item_id", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["despatch_advice_id"],
            ["despatch_advices.id"],
            name=op.f("fk_despatch_advice_lines_despatch_advice_id_despatch_advices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("despatch_advice_id", "line_id", name=op.f("pk_despatch_advice_lines")),
    )


def downgrade() -> None:
    op.drop_table("despatch_advice_lines")
    op.drop_index("ix_despatch_advices_institution", table_name="despatch_advices")
    op.drop_table("despatch_advices")
