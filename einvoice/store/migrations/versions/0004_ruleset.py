"""Stored reports name their rule set: documents get ``ruleset`` (JSON: the document type and
CustomizationID as validated, the rule set, its version and the artefacts with their sha256),
written with the validation's findings. Documents validated before have none (their reports
say "-").

One rule id per problem: findings stored under intake's former ids get the engine's
(``INTAKE-UNSUPPORTED-DOCUMENT`` becomes ``DOCUMENT-TYPE``; the others were never stored, intake
records nothing for XML it cannot read).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The engine's id for each id intake used before (einvoice.domain.findings.FORMER_RULES, as of
# this revision: a migration does not follow later edits of the code).
RENAMED = {
    "XML-WELL-FORMED": "INTAKE-NOT-WELL-FORMED",
    "XML-SAFETY": "INTAKE-UNSAFE-XML",
    "XML-SIZE": "INTAKE-TOO-LARGE",
    "DOCUMENT-TYPE": "INTAKE-UNSUPPORTED-DOCUMENT",
}


def _rename(pairs: Sequence[tuple[str, str]]) -> None:
    findings = sa.table("findings", sa.column("rule", sa.String), sa.column("layer", sa.String))
    for old, new in pairs:
        op.execute(findings.update().where(findings.c.rule == old, findings.c.layer == "intake").values(rule=new))


def upgrade() -> None:
    op.add_column("documents", sa.Column("ruleset", sa.Text(), nullable=True))
    _rename([(old, new) for new, old in RENAMED.items()])


def downgrade() -> None:
    _rename(list(RENAMED.items()))
    # ALTER TABLE … DROP COLUMN (SQLite 3.35 and later), not a batch copy of the table: dropping the
    # old documents table would delete its findings, transitions and bytes (ON DELETE CASCADE).
    op.execute("ALTER TABLE documents DROP COLUMN ruleset")
