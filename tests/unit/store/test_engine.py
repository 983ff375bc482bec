"""Which statements count as writes when a unit of work ends without commit (``engine.note_statements``)."""

from __future__ import annotations

import pytest

from einvoice.store.engine import may_have_written, note_statements


@pytest.mark.parametrize(
    ("sql", "tag"),
    [
        ("SELECT suppliers.id FROM suppliers WHERE suppliers.api_key_hash = %(h)s", "SELECT 1"),
        ("  select id from commitments where number = any(%(n)s) for update", "SELECT 2"),
        ("SET LOCAL enable_seqscan = off", "SET"),
        ("UPDATE outbox SET sent_at = now() WHERE id = ANY(%(ids)s)", "UPDATE 0"),
        ("DELETE FROM sessions WHERE expires_at < now()", "DELETE 0"),
        ("INSERT INTO outbox (document_id) SELECT id FROM documents WHERE false", "INSERT 0 0"),
    ],
)
def test_statements_that_change_no_row_leave_the_transaction_read_only(sql: str, tag: str) -> None:
    info: dict[str, object] = {}
    note_statements(info, [(sql, tag)])
    assert not may_have_written(info)


@pytest.mark.parametrize(
    ("sql", "tag"),
    [
        ("UPDATE documents SET status = %(s)s WHERE id = %(id)s", "UPDATE 1"),
        ("INSERT INTO transitions (document_id) VALUES (%(id)s)", "INSERT 0 1"),
        # a WITH that writes reports the tag of its last part
        ("WITH changed AS (UPDATE documents SET status = 'x' RETURNING id) SELECT id FROM changed", "SELECT 1"),
        ("WITH earlier AS (SELECT 1) INSERT INTO outbox (document_id) VALUES ('d')", "INSERT 0 0"),
        ("UPDATE documents SET status = %(s)s", None),  # the tag unknown (a statement sharing a cursor)
        ("SAVEPOINT sp1", "SAVEPOINT"),
    ],
)
def test_anything_that_may_have_written_is_noted(sql: str, tag: str | None) -> None:
    info: dict[str, object] = {}
    note_statements(info, [("SELECT 1", "SELECT 1"), (sql, tag)])
    assert may_have_written(info)
