"""The JSON a stage's finish sends PostgreSQL: what ``jsonb_to_recordset`` reads of each value."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

from einvoice.store import writes
from einvoice.store.writes import FINDINGS, json_text


def test_values_json_does_not_know_are_written_as_their_text() -> None:
    value = {
        "amount": Decimal("1234.50"),
        "at": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        "day": date(2026, 3, 2),
        "nested": [{"n": 1, "ok": True, "none": None, "text": "Äö €"}],
    }
    assert json.loads(json_text(value)) == {
        "amount": "1234.50",
        "at": "2026-03-02 10:00:00+00:00",
        "day": "2026-03-02",
        "nested": [{"n": 1, "ok": True, "none": None, "text": "Äö €"}],
    }


def test_rows_leave_out_the_document_id_and_keep_the_rest() -> None:
    rows = [{"document_id": "d1", "position": 0, "rule": "BR-01", "severity": "fatal", "message": "m"}]
    assert json.loads(writes._json_rows(FINDINGS, rows)) == [
        {"position": 0, "rule": "BR-01", "severity": "fatal", "message": "m"}
    ]
