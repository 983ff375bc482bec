"""Posting through the pipeline on SQLite and PostgreSQL, with the folder connector: a corpus
invoice from ``approved`` to ``posted`` exactly once, the entry checked against a hand-worked one;
a document whose institution has no posting profile waits in ``approved`` with the reason until
one is set; charts of accounts versioned by the date they are in force from."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from einvoice.domain.states import DocumentStatus as S
from einvoice.errors import PostingSetupError
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.posting.files import FileExport
from einvoice.services import accounts, posting, process, queries, sweeper
from einvoice.services.intake import submit_document
from einvoice.services.stages import Runner
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.integration.posting_support import CORPUS_CHART, CORPUS_PROFILE, valid
from tests.unit.services.documents import register_contract

BUYER = "0002:FR23342"


@pytest.fixture
def export(tmp_path: Path) -> FileExport:
    return FileExport(tmp_path / "erp-outbox")


def runner(uow_factory: Callable[[], UnitOfWork], export: FileExport) -> Runner[process.Ports]:
    ports = process.Ports(valid, posting.EntryPoster(uow_factory, export), parser=parse_for_pipeline)
    return process.runner(uow_factory, ports)


def approved(uow_factory: Callable[[], UnitOfWork], export: FileExport, corpus_dir: Path) -> str:
    buyer = accounts.add_institution(uow_factory(), name="Buyer AB", endpoint=BUYER, unchecked=True)
    supplier, _ = accounts.add_supplier(
        uow_factory(), name="Seller Ltd", endpoint="0088:9482348239847239874", vat="GB1232434", unchecked=True
    )
    # the contract the example names by its buyer reference (BT-10), with room for its 1656.25
    register_contract(
        uow_factory, buyer.id, number="0150abc", amount="5000.00", supplier_endpoint="0088:9482348239847239874"
    )
    raw = (corpus_dir / "peppol-2026.5/billing/base-example.xml").read_bytes()
    doc = submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings()).document
    assert runner(uow_factory, export).run("validate", doc.id).status == S.APPROVED
    return doc.id


def pending(uow_factory: Callable[[], UnitOfWork]) -> list[tuple[str, str]]:
    with uow_factory() as uow:
        return [(r.action, r.document_id) for r in uow.outbox.claim_pending()]


def test_a_corpus_invoice_is_posted_once_with_the_hand_worked_entry(
    uow_factory: Callable[[], UnitOfWork], export: FileExport, corpus_dir: Path
) -> None:
    doc = approved(uow_factory, export, corpus_dir)
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=CORPUS_CHART, effective_from=date(2026, 1, 1))
    posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=CORPUS_PROFILE)
    run = runner(uow_factory, export)

    # Exported; held in posting (no retry, no lease) until the ERP confirms the batch.
    assert run.run("post", doc).status == S.POSTING
    held = queries.get_document(uow_factory(), doc)
    assert held.status == S.POSTING
    assert held.failure_reason is not None
    assert re.fullmatch(
        r"waiting: journal entry je_\w+ exported as je_\w+\.jsonl; waiting for its \.ack", held.failure_reason
    )
    (batch,) = [p for p in export.folder.iterdir() if not p.name.startswith(".")]
    assert batch.name == f"je_{doc}.jsonl"
    (line,) = batch.read_text().splitlines()
    entry = json.loads(line)
    assert [(x["role"], x["account"], x["debit"], x["credit"]) for x in entry["lines"]] == [
        ("expense", "4025", "2800.00", "0.00"),  # line 1, BT-19 4025:123:4343 mapped (its BT-133 is not)
        ("expense", "4025", "0.00", "1500.00"),  # line 2, a negative amount
        ("charge", "4090", "25.00", "0.00"),  # Insurance, a document level charge
        ("input_vat", "2641", "331.25", "0.00"),  # BT-117 at 25 %
        ("payable", "5310", "0.00", "1656.25"),  # BT-115
    ]
    assert entry["totals"] == {"debit": "3156.25", "credit": "3156.25"}
    assert (entry["institution"], entry["document_number"], entry["kind"]) == (BUYER, "Snippet1", "invoice")
    assert entry["supplier"]["endpoint"] == "0088:9482348239847239874"
    written = batch.stat().st_mtime_ns

    # A message sent again before the confirmation writes nothing again.
    assert run.run("post", doc).status == S.POSTING
    assert batch.stat().st_mtime_ns == written
    assert posting.collect_file_acks(uow_factory, export) == []  # no .ack yet

    (export.folder / f"{batch.name}.ack").write_bytes(b"")  # the ERP's import confirms it
    assert posting.collect_file_acks(uow_factory, export) == [f"je_{doc}"]
    assert posting.collect_file_acks(uow_factory, export) == []  # once
    view = queries.get_document(uow_factory(), doc)
    assert (view.status, view.journal_ref, view.failure_reason) == (S.POSTED, f"je_{doc}", None)
    assert (view.history[-1].from_status, view.history[-1].actor) == ("posting", f"file:{batch.name}.ack")
    assert run.run("post", doc).ran is False  # posted: a repeated message changes nothing
    assert [p.name for p in sorted(export.folder.iterdir())] == [batch.name, batch.name + ".ack"]
    assert [t.to_status for t in view.history].count(S.POSTED) == 1
    with uow_factory() as uow:
        contract = uow.commitments.get(view.institution_id or "", "0150abc")
    assert contract is not None  # what the document held is consumed, in the write that posted it
    assert (contract.reserved, contract.consumed) == (0, Decimal("1656.25"))
    assert entry["commitment"] == "0150abc"  # the entry names the commitment the document matched
    with uow_factory() as uow:
        kept = uow.posting.entry(doc)
        assert kept is not None
        assert kept.confirmed_by == f"file:{batch.name}.ack"
        assert kept.data == entry


def test_without_a_profile_the_document_waits_in_approved_until_one_is_set(
    uow_factory: Callable[[], UnitOfWork], export: FileExport, corpus_dir: Path
) -> None:
    doc = approved(uow_factory, export, corpus_dir)
    assert pending(uow_factory).count(("post", doc)) == 1  # validation's finish sent it on to posting
    result = runner(uow_factory, export).run("post", doc)
    view = queries.get_document(uow_factory(), doc)
    assert (result.status, view.status) == (S.APPROVED, S.APPROVED)
    assert view.failure_reason == f"waiting: institution {BUYER} has no posting profile"
    assert view.history[-1].detail == view.failure_reason
    assert pending(uow_factory).count(("post", doc)) == 1  # resting: no new message for the post stage
    later = datetime.now(UTC) + timedelta(hours=1)
    ports = process.Ports(poster=posting.EntryPoster(uow_factory, export))
    assert sweeper.sweep(uow_factory, stuck_after=timedelta(minutes=5), ports=ports, now=later).total == 0

    incomplete = {k: v for k, v in CORPUS_PROFILE.items() if k != "payable"}
    _, sent = posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=incomplete)
    assert sent == [doc]
    runner(uow_factory, export).run("post", doc)
    assert queries.get_document(uow_factory(), doc).failure_reason == (
        f"waiting: the posting profile of {BUYER} lacks payable"
    )

    _, sent = posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=CORPUS_PROFILE)
    assert pending(uow_factory).count(("post", doc)) == 3  # one more each time a profile was set
    export.folder.mkdir(parents=True)
    (export.folder / f"je_{doc}.jsonl.ack").write_bytes(b"")  # the ERP confirms as soon as it sees the batch
    assert runner(uow_factory, export).run("post", doc).status == S.POSTED  # the .ack found at delivery


def test_a_chart_must_hold_every_account_the_profile_names(
    uow_factory: Callable[[], UnitOfWork], export: FileExport, corpus_dir: Path
) -> None:
    approved(uow_factory, export, corpus_dir)
    posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=CORPUS_PROFILE)
    short = "\n".join(line for line in CORPUS_CHART.splitlines() if not line.startswith("2641"))
    with pytest.raises(PostingSetupError, match=r"input_vat\.25 2641"):
        posting.import_accounts(uow_factory(), endpoint=BUYER, text=short, effective_from=date(2026, 1, 1))
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=CORPUS_CHART, effective_from=date(2026, 1, 1))
    with pytest.raises(PostingSetupError, match="charge_account 9999"):
        posting.set_posting_profile(uow_factory(), endpoint=BUYER, data={**CORPUS_PROFILE, "charge_account": "9999"})


def test_the_chart_in_force_on_a_date_is_the_latest_loaded_from_before_it(
    uow_factory: Callable[[], UnitOfWork], export: FileExport, corpus_dir: Path
) -> None:
    approved(uow_factory, export, corpus_dir)
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=CORPUS_CHART, effective_from=date(2026, 1, 1))
    renamed = CORPUS_CHART.replace("Goods", "Goods and materials")
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=renamed, effective_from=date(2026, 7, 1))
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=renamed, effective_from=date(2026, 7, 1))  # again

    def name_of_4000(at: date | None) -> str | None:
        chart = posting.chart_of_accounts(uow_factory(), endpoint=BUYER, at=at)
        return None if chart is None else next(a.name for a in chart.accounts if a.number == "4000")

    assert name_of_4000(date(2025, 12, 31)) is None
    assert name_of_4000(date(2026, 6, 30)) == "Goods"
    assert name_of_4000(date(2026, 7, 1)) == "Goods and materials"
    assert name_of_4000(None) == "Goods and materials"
    latest = posting.chart_of_accounts(uow_factory(), endpoint=BUYER)
    assert latest is not None
    assert len(latest.accounts) == 9


def test_what_posting_reads_of_an_institution_is_its_endpoint_profile_and_chart_in_force_in_one_read(
    uow_factory: Callable[[], UnitOfWork],
) -> None:
    buyer = accounts.add_institution(uow_factory(), name="Buyer AB", endpoint=BUYER, unchecked=True)

    def books(on: date) -> tuple[str, dict[str, object] | None, date | None, list[str]] | None:
        with uow_factory() as uow:
            read = uow.posting.books(buyer.id, on)
        if read is None:
            return None
        chart = read.chart
        return (
            read.endpoint,
            None if read.profile is None else read.profile.to_dict(),
            None if chart is None else chart.effective_from,
            [] if chart is None else [f"{a.number} {a.name}" for a in chart.accounts],
        )

    assert books(date(2026, 6, 30)) == (BUYER, None, None, [])
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=CORPUS_CHART, effective_from=date(2026, 1, 1))
    renamed = CORPUS_CHART.replace("Goods", "Goods and materials")
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=renamed, effective_from=date(2026, 7, 1))
    posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=CORPUS_PROFILE)

    before_july = books(date(2026, 6, 30))
    assert before_july is not None
    endpoint, profile, effective_from, chart = before_july
    assert (endpoint, effective_from, len(chart)) == (BUYER, date(2026, 1, 1), 9)  # one version's accounts
    kept = posting.posting_profile(uow_factory(), endpoint=BUYER)
    assert kept is not None
    assert profile == kept.to_dict()
    assert "4000 Goods" in chart
    july = books(date(2026, 7, 1))
    assert july is not None
    assert (july[2], len(july[3]), "4000 Goods and materials" in july[3]) == (date(2026, 7, 1), 9, True)
    assert books(date(2025, 12, 31)) == (BUYER, profile, None, [])  # no chart in force yet
    with uow_factory() as uow:
        assert uow.posting.books("no-such-institution", date(2026, 7, 1)) is None
