"""The ERP's and the ledger's commands against a SQLite file in a temporary data directory:
``einvoice erp add``, ``einvoice rates import`` and ``einvoice ledger trial-balance``, over documents
taken through the stages in process (validation stubbed, matching and posting real)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from einvoice.cli import app
from einvoice.domain.states import DocumentStatus as S
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.services import SupplierView, accounts, erp, posting, process, queries
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork, make_engine, migrate, uow_factory_for
from tests.integration.posting_support import CHART, PROFILE, usd_invoice, valid
from tests.unit.services import documents

BUYER = documents.BUYER_ENDPOINT
runner = CliRunner()


@dataclass
class Books:
    uow_factory: Callable[[], UnitOfWork]
    supplier: SupplierView
    institution_id: str

    def submit(self, raw: bytes) -> str:
        """Submit, validate (stubbed), match and post (pull connector: held for the ERP)."""
        doc = submit_document(
            self.uow_factory, supplier=self.supplier, raw=raw, idempotency_key=None, settings=Settings()
        ).document.id
        self.run("validate", doc)
        self.run("post", doc)
        return doc

    def run(self, stage: str, doc: str) -> None:
        poster = posting.EntryPoster(self.uow_factory, posting.PullConnector())
        process.runner(self.uow_factory, process.Ports(valid, poster, parser=parse_for_pipeline)).run(stage, doc)

    def status(self, doc: str) -> str:
        return queries.get_document(self.uow_factory(), doc).status


@pytest.fixture
def books(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Books]:
    """The data directory's database with the buyer (chart, profile, a contract with the supplier)."""
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    engine = make_engine(f"sqlite:///{tmp_path / 'einvoice.db'}")
    migrate(engine)
    uow_factory = uow_factory_for(engine)
    institution = accounts.add_institution(uow_factory(), name="Ministry", endpoint=BUYER, unchecked=True)
    supplier = documents.register_seller(uow_factory)
    documents.register_contract(uow_factory, institution.id)
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=CHART, effective_from=date(2026, 1, 1))
    posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=PROFILE)
    try:
        yield Books(uow_factory, supplier, institution.id)
    finally:
        engine.dispose()


def test_erp_add_prints_the_key_on_the_last_line_and_refuses_an_unknown_institution(books: Books) -> None:
    added = runner.invoke(app, ["erp", "add", "--institution", BUYER, "--name", "Treasury ERP"])
    assert added.exit_code == 0, added.output
    key = added.output.strip().splitlines()[-1]
    assert key.startswith("eik_")
    assert "Treasury ERP, serving 0192:987654325" in added.output
    view = erp.authenticate_erp(books.uow_factory(), key)
    assert view is not None
    assert (view.name, view.institutions) == ("Treasury ERP", (BUYER,))

    unknown = runner.invoke(
        app, ["erp", "add", "--institution", BUYER, "--institution", "0192:916766285", "--name", "X"]
    )
    assert unknown.exit_code == 1
    assert "0192:916766285" in unknown.output
    assert "eik_" not in unknown.output
    again = runner.invoke(app, ["erp", "add", "--institution", BUYER, "--name", "Treasury ERP"])
    assert again.exit_code == 1  # the name is taken
    assert "Treasury ERP" in again.output
    with books.uow_factory() as uow:
        assert uow.posting.erp_by_name("X") is None  # nothing registered by the refusals


ECB = "Date, USD, JPY, SEK,\n2026-10-30, 1.0800, 160.50, 11.4000,\n2026-11-02, 1.0750, N/A, 11.3900,\n"


def test_rates_import_loads_the_ecb_file_and_sends_on_the_document_held_for_a_rate(
    books: Books, tmp_path: Path
) -> None:
    raw = usd_invoice(books.uow_factory, books.institution_id)
    doc = books.submit(raw)
    held = queries.get_document(books.uow_factory(), doc)
    assert held.status == S.APPROVED
    assert "USD" in (held.failure_reason or "")  # waits, saying for what

    (tmp_path / "eurofxref.csv").write_text(ECB, encoding="utf-8")
    loaded = runner.invoke(app, ["rates", "import", str(tmp_path / "eurofxref.csv")])
    assert loaded.exit_code == 0, loaded.output
    assert "5 rates against EUR loaded from eurofxref.csv; 1 waiting documents sent on" in loaded.output
    books.run("post", doc)  # the message the import queued
    assert books.status(doc) == S.POSTING
    with books.uow_factory() as uow:
        entry = uow.posting.entry(doc)
        assert entry is not None
        rate, totals = entry.data["exchange_rate"], entry.data["totals"]
    # The last rate on or before the issue date, as EUR per USD (the file's 1.0800 USD per EUR).
    assert (rate["rate"], rate["date"]) == ("0.9259259259", "2026-10-30")
    assert totals == {"debit": "100.00", "credit": "100.00"}  # 108.00 USD at 1.08

    bad = tmp_path / "rates.csv"
    bad.write_text("currency,date,rate\nUSD,2026-11-02,-1\n", encoding="utf-8")
    refused = runner.invoke(app, ["rates", "import", str(bad)])
    assert refused.exit_code == 1
    assert "rate" in refused.output
    assert runner.invoke(app, ["rates", "import", str(tmp_path / "missing.csv")]).exit_code == 2


def test_ledger_trial_balance_adds_up_the_posted_entries_debits_equal_credits(books: Books) -> None:
    docs = [books.submit(documents.invoice(f"TB-{n}", amount=amount)) for n, amount in enumerate(("100.00", "23.45"))]
    waiting = books.submit(documents.invoice("TB-waiting", amount="999.00"))
    for doc in docs:
        erp.confirm_entry(books.uow_factory, f"je_{doc}", by="test")
    assert [books.status(d) for d in (*docs, waiting)] == [S.POSTED, S.POSTED, S.POSTING]
    with books.uow_factory() as uow:
        entry = uow.posting.entry(docs[0])
        assert entry is not None
        assert entry.posting_date is not None
        today = entry.posting_date.isoformat()

    table = runner.invoke(app, ["ledger", "trial-balance", "--institution", BUYER, "--from", today, "--to", today])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == f"trial balance of {BUYER}, posting dates {today} to {today}: 2 entries"
    rows = [line.split() for line in lines[2:]]
    assert [(row[0], row[-3:]) for row in rows[:2]] == [
        ("2239", ["123.45", "0.00", "123.45"]),
        ("5310", ["0.00", "123.45", "-123.45"]),
    ]
    assert rows[-1] == ["total", "123.45", "123.45", "0.00"]  # debits equal credits; the waiting one not counted

    as_json = runner.invoke(
        app, ["ledger", "trial-balance", "--institution", BUYER, "--from", today, "--to", today, "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["totals"] == {"debit": "123.45", "credit": "123.45", "balance": "0.00", "entries": 2}
    assert sum(Decimal(a["debit"]) for a in data["accounts"]) == sum(Decimal(a["credit"]) for a in data["accounts"])
    assert [a["account"] for a in data["accounts"]] == ["2239", "5310"]

    for refused in (
        ["--institution", "0192:916766285", "--from", today, "--to", today],  # unknown institution
        ["--institution", BUYER, "--from", "yesterday", "--to", today],
    ):
        result = runner.invoke(app, ["ledger", "trial-balance", *refused])
        assert result.exit_code == 1, result.output
