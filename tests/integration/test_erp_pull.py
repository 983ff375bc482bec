"""The ERP's side through the HTTP API, on SQLite and PostgreSQL: credentials that reach one set of
institutions, the pull feed in a stable order with a cursor, acknowledgements that post documents
(once, naming the ERP), payments that answer the supplier with PD, the trial balance of what was
posted, and exchange rates loaded for a foreign-currency invoice that waited for one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from einvoice.bootstrap import build
from einvoice.domain.commitments import Commitment
from einvoice.domain.states import DocumentStatus as S
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.services import SupplierView, accounts, erp, posting, process, queries, responses
from einvoice.services.intake import submit_document
from einvoice.services.matching import held
from einvoice.services.stages import Runner
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.integration.posting_support import CHART, PROFILE, usd_invoice, valid
from tests.unit.services import documents

BUYER = documents.BUYER_ENDPOINT
OTHER = "0192:916766285"
AT = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Books:
    uow_factory: Callable[[], UnitOfWork]
    supplier: SupplierView
    client: TestClient
    erp_key: str
    other_key: str
    institution_key: str

    @property
    def run(self) -> Runner[process.Ports]:
        poster = posting.EntryPoster(self.uow_factory, posting.PullConnector())
        return process.runner(self.uow_factory, process.Ports(valid, poster, parser=parse_for_pipeline))

    def submit(self, raw: bytes) -> str:
        doc = submit_document(
            self.uow_factory, supplier=self.supplier, raw=raw, idempotency_key=None, settings=Settings()
        ).document.id
        self.run.run("validate", doc)
        self.run.run("post", doc)
        return doc

    def get(self, url: str, key: str | None = None) -> Any:
        return self.client.get(url, headers={"Authorization": f"Bearer {key or self.erp_key}"})

    def post(self, url: str, key: str | None = None, **kw: Any) -> Any:
        return self.client.post(url, headers={"Authorization": f"Bearer {key or self.erp_key}"}, **kw)


@pytest.fixture
def books(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, contract: object, tmp_path: Path
) -> Iterator[Books]:
    """The buyer's books ready for posting, its contract with the supplier registered (``contract``)
    so that the test invoices are matched and approved."""
    accounts.add_institution(uow_factory(), name="Other agency", endpoint=OTHER, unchecked=True)
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=CHART, effective_from=date(2026, 1, 1))
    posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=PROFILE)
    _, erp_key = erp.add_erp(uow_factory(), name="Treasury ERP", endpoints=[BUYER, OTHER])
    _, other_key = erp.add_erp(uow_factory(), name="Agency ERP", endpoints=[OTHER])
    _, institution_key = accounts.new_institution_key(uow_factory(), BUYER)
    runtime = build(Settings(database_url=database_url, data_dir=tmp_path), validator=valid)
    client = TestClient(create_app(runtime))
    try:
        yield Books(uow_factory, supplier, client, erp_key, other_key, institution_key)
    finally:
        client.close()
        runtime.stop()


def test_the_feed_offers_unacknowledged_entries_in_a_stable_order_until_each_is_acknowledged(books: Books) -> None:
    docs = [books.submit(documents.invoice(f"INV-{n}", amount=f"{n}00.00")) for n in (1, 2, 3)]
    for doc in docs:
        view = queries.get_document(books.uow_factory(), doc)
        assert (view.status, view.journal_ref) == (S.POSTING, f"je_{doc}")  # delivered, held for the ERP

    first = books.get("/v1/erp/entries?limit=2")
    assert first.status_code == 200, first.text
    assert [e["id"] for e in first.json()["entries"]] == [f"je_{d}" for d in docs[:2]]
    assert first.json()["entries"][0]["totals"] == {"debit": "100.00", "credit": "100.00"}
    rest = books.get(f"/v1/erp/entries?limit=2&after={first.json()['next']}").json()
    assert [e["id"] for e in rest["entries"]] == [f"je_{docs[2]}"]
    empty = books.get(f"/v1/erp/entries?after={rest['next']}").json()
    assert empty == {"entries": [], "next": rest["next"]}  # the place is kept when nothing came

    acked = books.post(f"/v1/erp/entries/je_{docs[1]}/ack")
    assert acked.status_code == 200, acked.text
    assert acked.json()["document_status"] == "posted"
    assert acked.json()["acknowledged_by"] == "erp:Treasury ERP"
    again = books.post(f"/v1/erp/entries/je_{docs[1]}/ack")
    assert again.json() == acked.json()  # idempotent: the first acknowledgement stands

    # A pull that starts before them offers the others again; the acknowledged one never.
    assert [e["id"] for e in books.get("/v1/erp/entries").json()["entries"]] == [f"je_{docs[0]}", f"je_{docs[2]}"]
    view = queries.get_document(books.uow_factory(), docs[1])
    assert (view.status, view.failure_reason) == (S.POSTED, None)
    last = view.history[-1]
    assert (last.from_status, last.to_status, last.actor) == ("posting", "posted", "erp:Treasury ERP")
    assert [t.to_status for t in view.history].count(S.POSTED) == 1
    assert books.run.run("post", docs[1]).ran is False  # a late message changes nothing


def test_an_erp_key_reaches_only_its_institutions_entries(books: Books) -> None:
    doc = books.submit(documents.invoice("INV-9"))
    assert books.get("/v1/erp/entries", books.other_key).json()["entries"] == []
    denied = books.post(f"/v1/erp/entries/je_{doc}/ack", books.other_key)
    assert (denied.status_code, denied.json()["type"]) == (404, "urn:einvoice:problem:not-found")
    assert queries.get_document(books.uow_factory(), doc).status == S.POSTING
    assert books.client.get("/v1/erp/entries").status_code == 401
    assert books.get("/v1/erp/entries", books.institution_key).status_code == 401  # not an ERP's key
    bad = books.get("/v1/erp/entries?after=not-a-cursor")
    assert (bad.status_code, bad.json()["type"]) == (422, "urn:einvoice:problem:invalid-cursor")
    assert books.post("/v1/erp/entries/je_nothing/ack").status_code == 404


def test_a_page_is_acknowledged_in_one_request_answered_per_id(books: Books) -> None:
    docs = [books.submit(documents.invoice(f"INV-{n}", amount=f"{n}00.00")) for n in (1, 2, 3)]
    other = books.submit(documents.invoice("INV-4"))
    books.post(f"/v1/erp/entries/je_{docs[0]}/ack")  # one acknowledged alone before
    page = [e["id"] for e in books.get("/v1/erp/entries").json()["entries"]]
    assert page == [f"je_{d}" for d in [*docs[1:], other]]

    ids = [f"je_{docs[0]}", *page[:2], "je_nothing", page[0]]
    acked = books.post("/v1/erp/entries/ack", json={"ids": ids})
    assert acked.status_code == 200, acked.text
    answers = acked.json()["entries"]
    assert [(a["id"], a["acknowledged"]) for a in answers] == [
        (f"je_{docs[0]}", True),
        (f"je_{docs[1]}", True),
        (f"je_{docs[2]}", True),
        ("je_nothing", False),  # an id given twice answers once
    ]
    assert {a["document_status"] for a in answers[:3]} == {"posted"}
    assert answers[3]["error"] == "not_found"
    for doc in docs:
        view = queries.get_document(books.uow_factory(), doc)
        assert view.status == S.POSTED
        assert [t.to_status for t in view.history].count(S.POSTED) == 1
        assert view.history[-1].actor == "erp:Treasury ERP"
    assert [e["id"] for e in books.get("/v1/erp/entries").json()["entries"]] == [f"je_{other}"]
    again = books.post("/v1/erp/entries/ack", json={"ids": ids[:3]}).json()["entries"]
    assert again == answers[:3]  # idempotent: the first acknowledgements stand

    # An ERP acknowledges only its institutions' entries: the rest of the batch goes through.
    denied = books.post("/v1/erp/entries/ack", books.other_key, json={"ids": [f"je_{other}"]}).json()
    assert denied["entries"] == [
        {"id": f"je_{other}", "acknowledged": False, "error": "not_found", "detail": f"no journal entry je_{other}"}
    ]
    assert queries.get_document(books.uow_factory(), other).status == S.POSTING
    body: dict[str, object]
    for body in ({"ids": []}, {"ids": [f"je_{n}" for n in range(501)]}, {"ids": "je_x"}, {}):
        refused = books.post("/v1/erp/entries/ack", json=body)
        assert refused.status_code == 422, body
    assert books.client.post("/v1/erp/entries/ack", json={"ids": [f"je_{other}"]}).status_code == 401


def test_overlapping_acknowledgements_at_once_post_each_document_once_and_consume_what_it_held_once(
    books: Books, contract: Commitment
) -> None:
    """Two posting jobs acknowledge the same entries at the same moment, in opposite orders, pages
    longer than one transaction (``ACK_TRANSACTION``): no deadlock, each document ``posted``
    once, and the contract's figures move once per document, from reserved to consumed."""
    docs = [books.submit(documents.invoice(f"INV-{n}", amount=f"{100 + n}.00")) for n in range(7)]
    with books.uow_factory() as uow:
        before = uow.commitments.get(contract.institution_id, contract.number)
        held_amounts = [held(uow.documents.get(doc).match_result).amount for doc in docs]  # type: ignore[union-attr]
    assert before is not None
    assert before.reserved == sum(held_amounts)
    assert before.consumed == 0
    ids = [f"je_{doc}" for doc in docs]
    start = threading.Barrier(2)
    answers: list[dict[str, erp.Confirmed]] = []

    def acknowledge(order: list[str]) -> None:
        start.wait(10)
        answers.append(erp.confirm_entries(books.uow_factory, order, by="erp:Treasury ERP"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(erp, "ACK_TRANSACTION", 3)
        threads = [threading.Thread(target=acknowledge, args=(order,)) for order in (ids, ids[::-1])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(answers) == 2
    assert all(set(answer) == set(ids) for answer in answers)
    for doc in docs:
        view = queries.get_document(books.uow_factory(), doc)
        assert view.status == S.POSTED
        assert [t.to_status for t in view.history].count(S.POSTED) == 1
    with books.uow_factory() as uow:
        after = uow.commitments.get(contract.institution_id, contract.number)
    assert after is not None
    assert (after.reserved, after.consumed) == (0, sum(held_amounts))


def test_a_document_that_moved_on_before_its_write_keeps_its_entry_confirmed_and_consumes_nothing(
    books: Books, contract: Commitment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the read of the documents and their guarded writes, one of them moved on (here
    to ``dead``, in the same transaction, where another writer's commit would land): it is left
    where it is, consumes nothing, and its entry stays confirmed; the others post as usual."""
    moved, other = (books.submit(documents.invoice(f"INV-{n}", amount=f"{100 + n}.00")) for n in (1, 2))
    locking = erp.lock_held

    def moved_on_meanwhile(uow: UnitOfWork, rows: Any) -> Any:
        assert uow.documents.compare_and_set(moved, expected=[S.POSTING], values={"status": S.DEAD}, at=AT)
        return locking(uow, rows)

    monkeypatch.setattr(erp, "lock_held", moved_on_meanwhile)
    with books.uow_factory() as uow:
        reserved = uow.documents.get(other).match_result  # type: ignore[union-attr]
        before = uow.commitments.get(contract.institution_id, contract.number)
    answers = erp.confirm_entries(books.uow_factory, [f"je_{moved}", f"je_{other}"], by="erp:Treasury ERP")
    assert answers[f"je_{moved}"].status == S.POSTING  # as read: it did not post
    assert answers[f"je_{other}"].status == S.POSTED
    with books.uow_factory() as uow:
        assert uow.documents.get(moved).status == S.DEAD  # type: ignore[union-attr]
        assert uow.posting.entry(moved).confirmed_by == "erp:Treasury ERP"  # type: ignore[union-attr]
        after = uow.commitments.get(contract.institution_id, contract.number)
    assert before is not None
    assert after is not None
    consumed = held(reserved).amount  # type: ignore[union-attr]
    assert (after.reserved, after.consumed) == (before.reserved - consumed, consumed)


def test_a_payment_answers_the_supplier_with_pd_once(books: Books) -> None:
    doc = books.submit(documents.invoice("INV-PAY", amount="250.00"))
    url = f"/v1/erp/documents/{doc}/paid"
    early = books.post(url, json={"paid_on": "2026-12-01"})
    assert (early.status_code, early.json()["document_id"]) == (409, doc)
    assert "is posting, not posted: nothing to pay" in early.json()["detail"]
    books.post(f"/v1/erp/entries/je_{doc}/ack")
    wrong = books.post(url, json={"paid_on": "2026-12-01", "amount": "240.00"})
    assert (wrong.status_code, wrong.json()["type"]) == (422, "urn:einvoice:problem:payment-refused")
    assert books.post(url, books.other_key, json={"paid_on": "2026-12-01"}).status_code == 404

    paid = books.post(url, json={"paid_on": "2026-12-01", "amount": "250.00", "reference": "PAY-1"})
    assert paid.status_code == 200, paid.text
    assert paid.json() == {
        "document_id": doc,
        "paid_on": "2026-12-01",
        "amount": "250.00",
        "reference": "PAY-1",
        "response": "PD",
        "recorded": True,
    }
    repeated = books.post(url, json={"paid_on": "2026-12-01", "reference": "PAY-1"})
    assert (repeated.status_code, repeated.json()["recorded"]) == (200, False)
    other = books.post(url, json={"paid_on": "2026-12-02", "reference": "PAY-1"})
    assert other.status_code == 409
    codes = [r.code for r in responses.list_responses(books.uow_factory(), doc)]
    assert codes == ["AB", "AP", "PD"]
    xml = responses.response_xml(books.uow_factory(), doc, responses.list_responses(books.uow_factory(), doc)[-1].id)
    assert b">PD</cbc:ResponseCode>" in xml
    history = queries.get_document(books.uow_factory(), doc).history
    assert (history[-1].actor, history[-1].detail) == ("erp:Treasury ERP", "paid on 2026-12-01, reference PAY-1")


def test_the_trial_balance_adds_up_the_posted_entries_by_posting_date(books: Books) -> None:
    docs = [books.submit(documents.invoice(f"TB-{n}", amount=amount)) for n, amount in enumerate(("100.00", "23.45"))]
    waiting = books.submit(documents.invoice("TB-waiting", amount="999.00"))
    for doc in docs:
        books.post(f"/v1/erp/entries/je_{doc}/ack")
    with books.uow_factory() as uow:
        entry = uow.posting.entry(docs[0])
        assert entry is not None
        assert entry.posting_date is not None
        today = entry.posting_date.isoformat()
    url = f"/v1/institutions/{BUYER}/trial-balance?from={today}&to={today}"
    answer = books.client.get(url, headers={"Authorization": f"Bearer {books.institution_key}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accounts"] == [
        {"account": "2239", "name": "Supplies", "debit": "123.45", "credit": "0.00", "balance": "123.45"},
        {"account": "5310", "name": "Accounts payable", "debit": "0.00", "credit": "123.45", "balance": "-123.45"},
    ]
    assert answer.json()["totals"] == {"debit": "123.45", "credit": "123.45", "balance": "0.00", "entries": 2}
    assert queries.get_document(books.uow_factory(), waiting).status == S.POSTING  # not posted: not counted
    before = books.client.get(
        f"/v1/institutions/{BUYER}/trial-balance?from=2026-01-01&to=2026-01-31",
        headers={"Authorization": f"Bearer {books.institution_key}"},
    )
    assert before.json()["totals"]["entries"] == 0
    other = books.client.get(url, headers={"Authorization": f"Bearer {books.erp_key}"})
    assert other.status_code == 401
    backwards = books.client.get(
        f"/v1/institutions/{BUYER}/trial-balance?from=2026-02-01&to=2026-01-01",
        headers={"Authorization": f"Bearer {books.institution_key}"},
    )
    assert backwards.status_code == 422


ECB = """Date, USD, JPY, SEK,
2026-10-30, 1.0800, 160.50, 11.4000,
2026-11-02, 1.0750, N/A, 11.3900,
"""


def test_a_foreign_currency_invoice_waits_for_a_rate_and_posts_at_the_latest_before_its_issue_date(
    books: Books,
) -> None:
    with books.uow_factory() as uow:
        buyer = uow.institutions.by_endpoint(*BUYER.split(":", 1))
        assert buyer is not None
        buyer_id = buyer.id
    raw = usd_invoice(books.uow_factory, buyer_id)
    doc = books.submit(raw)
    held = queries.get_document(books.uow_factory(), doc)
    assert (held.status, held.failure_reason) == (
        S.APPROVED,
        "waiting: no exchange rate from USD to EUR on or before 2026-11-01 (einvoice rates import)",
    )
    count, sent = posting.import_rates(books.uow_factory, ECB, source="eurofxref-hist.csv")
    assert (count, sent) == (5, [doc])
    books.run.run("post", doc)
    entry = books.get("/v1/erp/entries").json()["entries"][0]
    # The latest rate on or before 1 November is 30 October's: 1 EUR = 1.08 USD.
    assert entry["exchange_rate"] == {"rate": "0.9259259259", "date": "2026-10-30", "source": "eurofxref-hist.csv"}
    assert (entry["currency"], entry["document_currency"]) == ("EUR", "USD")
    assert entry["totals"] == {"debit": "100.00", "credit": "100.00"}
