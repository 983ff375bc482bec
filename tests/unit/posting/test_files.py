"""The file connector's batch formats (rendering only; writing is tested in the pipeline)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from einvoice.posting import build_entry
from einvoice.posting.files import CSV_COLUMNS, render
from tests.unit.posting.invoices import PROFILE, commitment, invoice, line


def test_jsonl_is_one_entry_a_line_and_csv_one_row_a_posting_line_with_the_entrys_fields() -> None:
    entry = build_entry(
        invoice([line("350.00", order_line="1")]),
        PROFILE,
        document_id="doc1",
        posting_date=date(2026, 3, 3),
        institution="0218:90000012345",
        commitment=commitment(),
    ).to_dict()
    assert [json.loads(x) for x in render([entry, entry], "jsonl").decode().splitlines()] == [entry, entry]
    rows = list(csv.DictReader(io.StringIO(render([entry], "csv").decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["role"], r["account"], r["debit"], r["credit"]) for r in rows] == [
        ("expense", "2311", "350.00", "0.00"),
        ("input_vat", "5721", "73.50", "0.00"),
        ("payable", "5310", "0.00", "423.50"),
    ]
    for row in rows:  # every row carries its entry's fields
        assert (row["entry_id"], row["institution"], row["commitment"]) == (
            "je_doc1",
            "0218:90000012345",
            "PO-2026-0042",
        )
        assert (row["supplier_vat"], row["due_date"], row["programme"]) == ("LV40003000000", "2026-04-01", "01.00.00")
