"""Suppliers' identifiers for the seller check: the tax registration identifier (BT-32) beside
the VAT (BT-31) and legal (BT-30) identifiers, each indexed and kept in one written form
(upper case, no white space), so that intake can tell whether an identifier a document states is
registered to another supplier with one index lookup.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IDENTIFIERS = ("vat_id", "legal_id", "tax_id")


def _compact(value: str | None) -> str | None:
    return "".join((value or "").split()).upper() or None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN and CREATE INDEX, on SQLite too: a batch operation would copy
    # the table, which the documents' foreign keys to it do not allow.
    op.add_column("suppliers", sa.Column("tax_id", sa.String(length=64), nullable=True))
    # Existing values in the written form compact_identifier() gives new registrations.
    suppliers = sa.table("suppliers", sa.column("id"), sa.column("vat_id"), sa.column("legal_id"))
    bind = op.get_bind()
    for supplier_id, vat_id, legal_id in bind.execute(sa.select(suppliers)).all():
        bind.execute(
            suppliers.update()
            .where(suppliers.c.id == supplier_id)
            .values(vat_id=_compact(vat_id), legal_id=_compact(legal_id))
        )
    for column in _IDENTIFIERS:
        op.create_index(f"ix_suppliers_{column}", "suppliers", [column], unique=False)


def downgrade() -> None:
    for column in _IDENTIFIERS:
        op.drop_index(f"ix_suppliers_{column}", "suppliers")
    op.drop_column("suppliers", "tax_id")  # SQLite 3.35 and later drop a column in place
