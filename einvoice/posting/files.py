"""The file connector: journal entries written as batch files to a folder, for ERPs that import
files, and confirmed by a ``.ack`` file beside the batch (the ERP's import writes it, or
``einvoice erp confirm BATCH``).

A batch is written atomically: to a temporary name in the same folder, flushed and fsynced,
renamed to its name, and the folder fsynced; an importer never sees half a batch. Batches are
named by entry id (``je_<document id>.jsonl`` or ``.csv``), so writing one again (a retry after a
crash) finds it there and leaves it: each entry is exported once.

- JSON lines: one entry per line, the entry JSON (``JournalEntry.to_dict``);
- CSV: one row per posting line, every row carrying its entry's fields (institution, supplier,
  commitment and budget, document, dates, payment reference), amounts as written in the JSON.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

FileFormat = Literal["jsonl", "csv"]
ACK_SUFFIX = ".ack"
_BATCH = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")

CSV_COLUMNS = (
    "entry_id",
    "document_id",
    "document_number",
    "kind",
    "institution",
    "supplier_name",
    "supplier_endpoint",
    "supplier_vat",
    "supplier_legal_id",
    "commitment",
    "corrects",
    "currency",
    "document_currency",
    "exchange_rate",
    "exchange_rate_date",
    "issue_date",
    "tax_point_date",
    "posting_date",
    "due_date",
    "payment_reference",
    "role",
    "account",
    "debit",
    "credit",
    "description",
    "vat_category",
    "vat_rate",
    "invoice_line",
    "commitment_line",
    "programme",
    "economic_code",
)


def csv_rows(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The CSV rows of one entry (its JSON form): one per posting line."""
    supplier = entry.get("supplier") or {}
    rate = entry.get("exchange_rate") or {}
    head = {
        "entry_id": entry["id"],
        "document_id": entry["document_id"],
        "document_number": entry.get("document_number"),
        "kind": entry.get("kind"),
        "institution": entry.get("institution"),
        "supplier_name": supplier.get("name"),
        "supplier_endpoint": supplier.get("endpoint"),
        "supplier_vat": supplier.get("vat"),
        "supplier_legal_id": supplier.get("legal_id"),
        "commitment": entry.get("commitment"),
        "corrects": " ".join(entry.get("corrects") or ()),
        "currency": entry.get("currency"),
        "document_currency": entry.get("document_currency"),
        "exchange_rate": rate.get("rate"),
        "exchange_rate_date": rate.get("date"),
        "issue_date": entry.get("issue_date"),
        "tax_point_date": entry.get("tax_point_date"),
        "posting_date": entry.get("posting_date"),
        "due_date": entry.get("due_date"),
        "payment_reference": entry.get("payment_reference"),
    }
    rows = []
    for line in entry.get("lines", ()):
        budget = line.get("budget") or entry.get("budget") or {}
        rows.append(
            head
            | {key: line.get(key) for key in ("role", "account", "debit", "credit", "description")}
            | {key: line.get(key) for key in ("vat_category", "vat_rate", "invoice_line", "commitment_line")}
            | {"programme": budget.get("programme"), "economic_code": budget.get("economic_code")}
        )
    return rows


def render(entries: Iterable[Mapping[str, Any]], file_format: FileFormat) -> bytes:
    """A batch's bytes: JSON lines, or CSV with a header row."""
    if file_format == "jsonl":
        return b"".join(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode() + b"\n" for entry in entries)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for entry in entries:
        writer.writerows(csv_rows(entry))
    return out.getvalue().encode()


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path`` whole or not at all: a temporary name, fsync, rename, fsync of the folder.
    The temporary name is this writer's own: two writers of one batch at once (a retry while the
    first run still writes) each rename a whole file, never interleave in a shared one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class FileExport:
    """Batches of journal entries in ``folder``, as JSON lines or CSV."""

    def __init__(self, folder: Path, file_format: FileFormat = "jsonl") -> None:
        self.folder = folder
        self.file_format: FileFormat = file_format

    def batch_name(self, entry_id: str) -> str:
        return f"{entry_id}.{self.file_format}"

    def write(self, batch: str, entries: Iterable[Mapping[str, Any]]) -> Path:
        """Write the batch unless it is there already (a retry); return its path."""
        path = self._path(batch)
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(path, render(entries, self.file_format))
        return path

    def confirmed(self, batch: str) -> bool:
        """Whether the ERP confirmed the batch (its ``.ack`` file exists)."""
        return self._path(batch + ACK_SUFFIX).exists()

    def confirm(self, batch: str) -> None:
        """Confirm a batch by hand (what the ERP's import does by writing ``<batch>.ack``)."""
        if not self._path(batch).exists():
            raise FileNotFoundError(f"no batch {batch} in {self.folder}")
        write_atomically(self._path(batch + ACK_SUFFIX), b"")

    def _path(self, name: str) -> Path:
        if not _BATCH.fullmatch(name) or name.startswith("."):
            raise ValueError(f"not a batch name: {name!r}")
        return self.folder / name
