"""What matching's history reads of each earlier document, kept beside its parsed form:
``parsed_documents.tax_inclusive_amount`` (BT-112 as ``domain.money.amount_key`` text, so that
equal amounts are equal texts) and ``parsed_documents.credit_note``. The history read them out of
the parsed form's JSON, which PostgreSQL decompresses whole for every field of every row: about
30 to 60 rows for each invoice matched. Existing rows are filled in from their JSON. An index on
the amount finds the documents of the same BT-112 (the duplicate window) among all.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# domain.invoice.CREDIT_NOTE_TYPE_CODES as this revision was written (a migration does not follow
# later changes of the code)
CREDIT_NOTE_TYPE_CODES = ("81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532")
BATCH = 1_000


def upgrade() -> None:
    op.add_column("parsed_documents", sa.Column("tax_inclusive_amount", sa.String(length=48), nullable=True))
    op.add_column("parsed_documents", sa.Column("credit_note", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_parsed_documents_amount", "parsed_documents", ["tax_inclusive_amount"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text(
                "UPDATE parsed_documents AS p SET"
                " tax_inclusive_amount = trim_scale((p.data #>> '{totals,tax_inclusive_amount,value}')::numeric)::text,"
                " credit_note = d.document_type = 'credit_note'"
                " OR coalesce(p.data ->> 'type_code' = ANY(:codes), false)"
                " FROM documents AS d WHERE d.id = p.document_id"
            ).bindparams(sa.bindparam("codes", list(CREDIT_NOTE_TYPE_CODES), type_=sa.ARRAY(sa.String())))
        )
        return
    _fill_in_batches()


def _fill_in_batches() -> None:
    """Fill the new columns from each row's JSON, a batch at a time (SQLite: the embedded default,
    whose JSON functions differ)."""
    bind = op.get_bind()
    parsed = sa.table(
        "parsed_documents",
        sa.column("document_id", sa.String()),
        sa.column("data", sa.JSON()),
        sa.column("tax_inclusive_amount", sa.String()),
        sa.column("credit_note", sa.Boolean()),
    )
    documents = sa.table("documents", sa.column("id", sa.String()), sa.column("document_type", sa.String()))
    after = ""
    while True:
        rows = bind.execute(
            sa.select(parsed.c.document_id, parsed.c.data, documents.c.document_type)
            .join(documents, documents.c.id == parsed.c.document_id)
            .where(parsed.c.document_id > after)
            .order_by(parsed.c.document_id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for document_id, data, document_type in rows:
            type_code = (data or {}).get("type_code")
            bind.execute(
                sa.update(parsed)
                .where(parsed.c.document_id == document_id)
                .values(
                    tax_inclusive_amount=_amount_key(data),
                    credit_note=document_type == "credit_note" or type_code in CREDIT_NOTE_TYPE_CODES,
                )
            )
        after = rows[-1][0]


def _amount_key(data: dict | None) -> str | None:
    """``domain.money.amount_key`` of the JSON's BT-112, as this revision was written."""
    value = (((data or {}).get("totals") or {}).get("tax_inclusive_amount") or {}).get("value")
    if value is None:
        return None
    try:
        text = format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        return None
    return "0" if text in ("-0", "0") else text


def downgrade() -> None:
    op.drop_index("ix_parsed_documents_amount", table_name="parsed_documents")
    with op.batch_alter_table("parsed_documents") as batch:
        batch.drop_column("credit_note")
        batch.drop_column("tax_inclusive_amount")
