"""The commitments register: institutions' API keys (sha256, like suppliers'), their default
tolerances, commitments (orders, contracts, frameworks) with their lines, and receipts with theirs.

New tables, and a column and a unique index added to ``institutions`` in place (ALTER TABLE on
SQLite too: a batch operation would copy a table that documents reference).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOLERANCES = ("price_percent", "price_amount", "quantity_percent", "amount_percent", "amount_amount")


def _decimal(name: str, *, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=48), nullable=nullable)


def upgrade() -> None:
    op.add_column("institutions", sa.Column("api_key_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_institutions_api_key_hash", "institutions", ["api_key_hash"], unique=True)
    op.create_table(
        "institution_tolerances",
        sa.Column("institution_id", sa.String(length=32), nullable=False),
        *(_decimal(name) for name in _TOLERANCES),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_institution_tolerances_institution_id_institutions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("institution_id", name=op.f("pk_institution_tolerances")),
    )
    op.create_table(
        "commitments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("institution_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("supplier_id", sa.String(length=32), nullable=False),
        sa.Column("supplier_endpoint", sa.String(length=160), nullable=True),
        sa.Column("supplier_vat", sa.String(length=64), nullable=True),
        sa.Column("supplier_legal_id", sa.String(length=128), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("budget_programme", sa.String(length=64), nullable=True),
        sa.Column("budget_economic_code", sa.String(length=64), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("receipt_required", sa.Boolean(), nullable=False),
        _decimal("amount", nullable=False),
        *(_decimal(name) for name in _TOLERANCES),
        sa.Column("status", sa.String(length=16), nullable=False),
        _decimal("reserved", nullable=False),
        _decimal("consumed", nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institutions.id"], name=op.f("fk_commitments_institution_id_institutions")
        ),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"], name=op.f("fk_commitments_supplier_id_suppliers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commitments")),
        sa.UniqueConstraint("institution_id", "number", name=op.f("uq_commitments_institution_id_number")),
    )
    op.create_index("ix_commitments_supplier", "commitments", ["institution_id", "supplier_id", "status"])
    op.create_table(
        "commitment_lines",
        sa.Column("commitment_id", sa.String(length=32), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _decimal("quantity", nullable=False),
        sa.Column("unit_code", sa.String(length=16), nullable=True),
        _decimal("unit_price", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("seller_item_id", sa.String(length=200), nullable=True),
        sa.Column("standard_item_id", sa.String(length=200), nullable=True),
        sa.Column("vat_category", sa.String(length=8), nullable=True),
        _decimal("vat_rate"),
        sa.Column("account", sa.String(length=64), nullable=True),
        _decimal("received", nullable=False),
        _decimal("invoiced", nullable=False),
        sa.ForeignKeyConstraint(
            ["commitment_id"],
            ["commitments.id"],
            name=op.f("fk_commitment_lines_commitment_id_commitments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("commitment_id", "line_id", name=op.f("pk_commitment_lines")),
    )
    op.create_table(
        "receipts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("commitment_id", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["commitment_id"],
            ["commitments.id"],
            name=op.f("fk_receipts_commitment_id_commitments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("commitment_id", "reference", name=op.f("uq_receipts_commitment_id_reference")),
    )
    op.create_table(
        "receipt_lines",
        sa.Column("receipt_id", sa.String(length=32), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=False),
        _decimal("quantity", nullable=False),
        sa.ForeignKeyConstraint(
            ["receipt_id"], ["receipts.id"], name=op.f("fk_receipt_lines_receipt_id_receipts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("receipt_id", "line_id", name=op.f("pk_receipt_lines")),
    )


def downgrade() -> None:
    op.drop_table("receipt_lines")
    op.drop_table("receipts")
    op.drop_table("commitment_lines")
    op.drop_index("ix_commitments_supplier", "commitments")
    op.drop_table("commitments")
    op.drop_table("institution_tolerances")
    op.drop_index("ix_institutions_api_key_hash", "institutions")
    op.drop_column("institutions", "api_key_hash")  # SQLite 3.35 and later drop a column in place
