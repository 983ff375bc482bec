"""The accountants' pages over HTTP, embedded mode: sign-in, sessions, CSRF, lock-out, the queue,
the document page, and decisions with their effect on the supplier's API.

Requests go through the ASGI app in process (httpx); documents go through the real pipeline. Two
institutions: a user of one never sees the other's documents, not even by guessing a URL.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from einvoice.settings import Settings
from tests.e2e.documents import (
    BUYER_ENDPOINT,
    SELLER_ENDPOINT,
    SELLER_VAT,
    default_issue_date,
    invoice,
    register_contracts,
)

pytestmark = pytest.mark.slow

OTHER_BUYER = "0216:003740000002"
PASSWORD = "correct horse battery staple"
XML = {"Content-Type": "application/xml"}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from einvoice.bootstrap import build

    data_dir: Path = tmp_path_factory.mktemp("ui")
    runtime = build(Settings(data_dir=data_dir, ui_lockout_attempts=3))
    runtime.start_background()
    try:
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def key(runtime: Any) -> str:
    """The supplier's API key; institutions, users and approval rules registered."""
    from einvoice.services import users
    from einvoice.services.accounts import add_institution, add_supplier

    add_institution(runtime.uow_factory(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
    add_institution(runtime.uow_factory(), name="Other Agency", endpoint=OTHER_BUYER, unchecked=True)
    _, api_key = add_supplier(
        runtime.uow_factory(), name="Supplier Oy", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    register_contracts(runtime.uow_factory)  # the contract the invoices name (BT-10)
    for name, role, institutions in [
        ("anna", "accountant", [BUYER_ENDPOINT]),
        ("olga", "accountant", [OTHER_BUYER]),
        ("ari", "approver", [BUYER_ENDPOINT]),
        ("bea", "approver", [BUYER_ENDPOINT]),
        ("locky", "accountant", [BUYER_ENDPOINT]),
    ]:
        users.add_user(runtime.uow_factory(), username=name, role=role, institutions=institutions, password=PASSWORD)
    return api_key


@pytest.fixture(scope="module")
def app(runtime: Any) -> Any:
    return create_app(runtime)


def client(app: Any, base_url: str = "http://testserver") -> TestClient:
    return TestClient(app, base_url=base_url, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def sign_in(browser: TestClient, username: str, password: str = PASSWORD) -> httpx.Response:
    form = browser.get("/ui/sign-in")
    assert form.status_code == 200
    return browser.post(
        "/ui/sign-in", data={"username": username, "password": password, "csrf_token": csrf_of(form.text)}
    )


def signed_in(app: Any, username: str) -> TestClient:
    browser = client(app)
    answer = sign_in(browser, username)
    assert answer.status_code == 303, answer.text
    return browser


def submit(app: Any, key: str, body: bytes) -> str:
    with TestClient(app) as api:
        answer = api.post("/v1/documents", content=body, headers={"Authorization": f"Bearer {key}", **XML})
        assert answer.status_code == 202, answer.text
        document_id: str = answer.json()["id"]
    return document_id


def status_of(app: Any, key: str, document_id: str) -> dict[str, Any]:
    with TestClient(app) as api:
        answer = api.get(f"/v1/documents/{document_id}", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
    return body


def settled(app: Any, key: str, document_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = status_of(app, key, document_id)
        if body["status"] not in {"received", "validating", "validated", "matching"}:
            return body
        assert time.monotonic() < deadline, f"{document_id} still {body['status']}"
        time.sleep(0.1)


def exception_document(app: Any, key: str, number: str, buyer: str = BUYER_ENDPOINT, price: str = "100.00") -> str:
    """A document in ``exception``: the second of two with one number (a duplicate: same supplier, number and year)."""
    first = submit(app, key, invoice(number, buyer_endpoint=buyer, note="first"))
    settled(app, key, first)
    second = submit(
        app,
        key,
        invoice(number, buyer_endpoint=buyer, note="second", lines=[("Consulting", "2", price, "S", "24")]),
    )
    assert settled(app, key, second)["status"] == "exception"
    return second


def decide(browser: TestClient, document_id: str, **fields: str) -> httpx.Response:
    page = browser.get(f"/ui/documents/{document_id}")
    assert page.status_code == 200, page.text
    return browser.post(
        f"/ui/documents/{document_id}/decision", data={"csrf_token": csrf_of(page.text), "commitment": "", **fields}
    )


# --- sign-in, sessions, CSRF ------------------------------------------------------------------------------


def test_pages_ask_for_sign_in_and_the_session_cookie_is_http_only_and_same_site(app: Any, key: str) -> None:
    browser = client(app)
    assert browser.get("/ui/queue").headers["location"].startswith("/ui/sign-in?next=")
    form = browser.get("/ui/sign-in").text
    assert 'name="username"' in form
    assert 'name="password"' in form
    answer = sign_in(browser, "anna")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/queue"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("einvoice_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http (a test client): a Secure cookie would never come back
    assert browser.get("/ui/queue").status_code == 200


def test_behind_tls_the_session_cookie_is_secure(app: Any, key: str) -> None:
    browser = client(app, "https://testserver")
    answer = sign_in(browser, "anna")
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("einvoice_session="))
    assert "Secure" in cookie


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_user_out(app: Any, key: str) -> None:
    browser = client(app)
    first = sign_in(browser, "locky", "wrong password!")
    assert first.status_code == 401
    assert "wrong user name or password" in first.text
    assert sign_in(browser, "nobody", "wrong password!").status_code == 401  # the same answer
    assert sign_in(browser, "locky", "wrong password!").status_code == 401
    third = sign_in(browser, "locky", "wrong password!")  # ui_lockout_attempts=3
    assert third.status_code == 429
    assert "too many failed sign-ins" in third.text
    still = sign_in(browser, "locky")  # even the right password, until the wait is over
    assert still.status_code == 429
    assert "einvoice_session=" not in " ".join(still.headers.get_list("set-cookie"))


def test_sign_in_without_the_forms_csrf_token_is_refused(app: Any, key: str) -> None:
    browser = client(app)
    browser.get("/ui/sign-in")
    answer = browser.post("/ui/sign-in", data={"username": "anna", "password": PASSWORD, "csrf_token": "forged"})
    assert answer.status_code == 403
    assert "einvoice_session=" not in " ".join(answer.headers.get_list("set-cookie"))


def test_a_forged_session_cookie_is_not_a_session(app: Any, key: str) -> None:
    browser = client(app)
    browser.cookies.set("einvoice_session", "InNvbWV0aGluZyI.forged", path="/ui")
    assert browser.get("/ui/queue").status_code == 303


def test_sign_out_ends_the_session_for_the_cookie_too(app: Any, key: str) -> None:
    browser = signed_in(app, "anna")
    stolen = browser.cookies.get("einvoice_session")
    page = browser.get("/ui/queue")
    out = browser.post("/ui/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/sign-in"
    replay = client(app)
    replay.cookies.set("einvoice_session", stolen, path="/ui")
    assert replay.get("/ui/queue").status_code == 303  # to the sign-in page


def test_disabling_a_user_ends_their_session(app: Any, runtime: Any, key: str) -> None:
    from einvoice.services import users

    users.add_user(
        runtime.uow_factory(), username="temp", role="accountant", institutions=[BUYER_ENDPOINT], password=PASSWORD
    )
    browser = signed_in(app, "temp")
    assert browser.get("/ui/queue").status_code == 200
    users.disable_user(runtime.uow_factory(), "temp")
    assert browser.get("/ui/queue").status_code == 303
    assert sign_in(client(app), "temp").status_code == 401


# --- the queue and the document page ------------------------------------------------------------------------


def test_the_queue_shows_only_the_users_institutions_with_reasons_and_counts(app: Any, key: str) -> None:
    mine = exception_document(app, key, "Q-MINE")
    theirs = exception_document(app, key, "Q-THEIRS", buyer=OTHER_BUYER)
    anna = signed_in(app, "anna")
    page = anna.get("/ui/queue").text
    assert 'id="queue"' in page
    assert f'data-document-id="{mine}"' in page
    assert f'data-document-id="{theirs}"' not in page
    # the row names its reason by code and in words
    assert '<span class="reason" title="duplicate (same supplier, number and year)"><code>DUPLICATE</code>' in page
    assert "Ministry of Examples" in page
    assert "Other Agency" not in page
    olga = signed_in(app, "olga").get("/ui/queue").text
    assert f'data-document-id="{theirs}"' in olga
    assert f'data-document-id="{mine}"' not in olga


def test_the_queue_filters_by_the_url(app: Any, key: str) -> None:
    cheap = exception_document(app, key, "Q-CHEAP", price="10.00")
    dear = exception_document(app, key, "Q-DEAR", price="5000.00")
    anna = signed_in(app, "anna")
    page = anna.get("/ui/queue?min_amount=1000&reason=DUPLICATE&sort=amount&order=desc").text
    assert f'data-document-id="{dear}"' in page
    assert f'data-document-id="{cheap}"' not in page
    none = anna.get("/ui/queue?supplier=no-such-supplier").text
    assert "data-document-id=" not in none
    assert "No document matches." in none
    sorted_page = anna.get("/ui/queue?sort=amount&order=asc&per_page=25").text
    rows = re.findall(r'data-document-id="([0-9a-f]+)"', sorted_page)
    assert rows.index(cheap) < rows.index(dear)


def test_a_guessed_url_of_another_institutions_document_answers_404(app: Any, key: str) -> None:
    theirs = exception_document(app, key, "G-THEIRS", buyer=OTHER_BUYER)
    anna = signed_in(app, "anna")
    assert anna.get(f"/ui/documents/{theirs}").status_code == 404
    assert anna.get(f"/ui/documents/{theirs}/raw").status_code == 404
    assert anna.get("/ui/documents/" + "0" * 32).status_code == 404
    page = anna.get("/ui/queue")
    refused = anna.post(
        f"/ui/documents/{theirs}/decision",
        data={"csrf_token": csrf_of(page.text), "action": "reject", "reason": "REF", "comment": "x"},
    )
    assert refused.status_code == 404
    assert status_of(app, key, theirs)["status"] == "exception"


def test_the_document_page_shows_the_invoice_for_people(app: Any, key: str) -> None:
    document_id = exception_document(app, key, "D-PAGE")
    page = signed_in(app, "anna").get(f"/ui/documents/{document_id}")
    assert page.status_code == 200
    text = page.text
    for expected in ("Seller", "Buyer", "Lines", "Consulting", "VAT breakdown", "Totals", "Payable", "History"):
        assert expected in text, expected
    assert "suspected duplicate of" in text  # the match result's reason in words
    assert 'id="decision"' in text
    assert 'name="action"' in text
    assert 'name="reason"' in text
    assert 'name="comment"' in text
    assert 'name="commitment"' in text
    raw = signed_in(app, "anna").get(f"/ui/documents/{document_id}/raw")
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("text/plain")
    assert "<Invoice" in raw.text


# --- decisions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields", [{"action": "approve", "comment": "checked"}, {"action": "rematch", "commitment": "REF-1"}]
)
def test_a_decision_without_the_forms_csrf_token_is_refused(app: Any, key: str, fields: dict[str, str]) -> None:
    document_id = exception_document(app, key, f"C-CSRF-{fields['action']}")
    anna = signed_in(app, "anna")
    answer = anna.post(f"/ui/documents/{document_id}/decision", data={**fields, "csrf_token": "forged"})
    assert answer.status_code == 403
    assert status_of(app, key, document_id)["status"] == "exception"
    assert status_of(app, key, document_id)["decisions"] == []


def test_approving_over_a_duplicate_warning_needs_a_comment_and_the_supplier_sees_the_decision(
    app: Any, key: str
) -> None:
    document_id = exception_document(app, key, "A-DUP")
    anna = signed_in(app, "anna")
    refused = decide(anna, document_id, action="approve", comment="")
    assert refused.status_code == 422
    assert "a comment is required" in refused.text
    assert status_of(app, key, document_id)["status"] == "exception"
    approved = decide(anna, document_id, action="approve", comment="not a duplicate: a second delivery")
    assert approved.status_code == 303
    body = status_of(app, key, document_id)
    assert body["status"] == "approved"
    assert body["decisions"][-1]["action"] == "approve"
    assert body["decisions"][-1]["by"] == "anna"
    assert body["decisions"][-1]["comment"] == "not a duplicate: a second delivery"
    assert body["history"][-1]["actor"] == "user:anna"
    page = anna.get(f"/ui/documents/{document_id}")
    assert 'id="decision"' not in page.text  # nothing left to decide
    stale = anna.post(
        f"/ui/documents/{document_id}/decision",
        data={"csrf_token": csrf_of(page.text), "action": "reject", "reason": "REF", "comment": "too late"},
    )
    assert stale.status_code == 409
    assert "cannot be rejected now" in stale.text


def test_reject_needs_a_reason_code_and_words_and_the_supplier_sees_both(app: Any, key: str) -> None:
    document_id = exception_document(app, key, "R-1")
    anna = signed_in(app, "anna")
    assert decide(anna, document_id, action="reject", comment="wrong prices").status_code == 422
    assert decide(anna, document_id, action="reject", reason="XYZ", comment="wrong prices").status_code == 422
    assert decide(anna, document_id, action="reject", reason="PRI", comment="").status_code == 422
    assert decide(anna, document_id, action="reject", reason="PRI", comment="price of line 1").status_code == 303
    body = status_of(app, key, document_id)
    assert body["status"] == "rejected"
    decision = body["decisions"][-1]
    assert (decision["action"], decision["reason"], decision["reason_text"], decision["comment"]) == (
        "reject",
        "PRI",
        "Prices incorrect",
        "price of line 1",
    )


def test_query_puts_the_document_under_query_and_it_can_be_decided_afterwards(app: Any, key: str) -> None:
    document_id = exception_document(app, key, "U-1")
    anna = signed_in(app, "anna")
    assert decide(anna, document_id, action="query", comment="").status_code == 422
    assert decide(anna, document_id, action="query", comment="which delivery is this for?").status_code == 303
    body = status_of(app, key, document_id)
    assert body["status"] == "under_query"
    assert body["decisions"][-1]["comment"] == "which delivery is this for?"
    queue = anna.get("/ui/queue?status=under_query").text
    assert f'data-document-id="{document_id}"' in queue
    assert decide(anna, document_id, action="query", comment="again?").status_code == 409
    assert decide(anna, document_id, action="reject", reason="DEL", comment="no answer").status_code == 303
    assert status_of(app, key, document_id)["status"] == "rejected"


def test_four_eyes_above_the_limit_the_second_approval_must_come_from_another_person(
    app: Any, runtime: Any, key: str
) -> None:
    from einvoice.services import users

    users.set_approval_rule(runtime.uow_factory(), BUYER_ENDPOINT, person_above=None, two_people_above="1000")
    try:
        document_id = exception_document(app, key, "F-1", price="3000.00")
        ari = signed_in(app, "ari")
        assert decide(ari, document_id, action="approve", comment="ordered by phone").status_code == 303
        assert status_of(app, key, document_id)["status"] == "awaiting_second_approval"
        twice = decide(ari, document_id, action="approve", comment="me again")
        assert twice.status_code == 422
        assert "the second must come from another person" in twice.text
        assert status_of(app, key, document_id)["status"] == "awaiting_second_approval"
        bea = signed_in(app, "bea")
        assert decide(bea, document_id, action="approve", comment="agreed").status_code == 303
        body = status_of(app, key, document_id)
        assert body["status"] == "approved"
        assert [(d["by"], d["to_status"]) for d in body["decisions"]] == [
            ("ari", "awaiting_second_approval"),
            ("bea", "approved"),
        ]
        below = exception_document(app, key, "F-2", price="10.00")
        assert decide(ari, below, action="approve", comment="small").status_code == 303
        assert status_of(app, key, below)["status"] == "approved"
    finally:
        users.set_approval_rule(runtime.uow_factory(), BUYER_ENDPOINT, person_above=None, two_people_above=None)


def test_the_issue_date_is_shown_in_the_queue(app: Any, key: str) -> None:
    document_id = exception_document(app, key, "I-1")
    page = signed_in(app, "anna").get("/ui/queue?supplier=supplier").text
    row = page[page.index(f'data-document-id="{document_id}"') :]
    assert default_issue_date("I-1").isoformat() in row[: row.index("</tr>")]


# --- re-match, the match in detail, attachments -----------------------------------------------------------


def commitment(
    runtime: Any, number: str, *, buyer: str = BUYER_ENDPOINT, lines: list[dict[str, str]] | None = None
) -> None:
    """Register the buyer's commitment ``number`` with the supplier (with ``lines``, or a contract without)."""
    from einvoice.services import accounts, commitments

    institution = accounts.institution_by_endpoint(runtime.uow_factory(), buyer)
    data = commitments.CommitmentInput.model_validate(
        {
            "number": number,
            "kind": "order" if lines else "contract",
            "supplier": {"endpoint": SELLER_ENDPOINT},
            "currency": "EUR",
            "amount": "10000.00",
            "lines": lines or [],
        }
    )
    commitments.register(runtime.uow_factory(), data, institution_id=institution.id)


def naming(number: str, reference: str, *, price: str = "100.00") -> bytes:
    """An invoice whose buyer reference (BT-10) names ``reference`` instead of the contract."""
    body = invoice(number, lines=[("Consulting", "2", price, "S", "24")])
    return body.replace(b"<cbc:BuyerReference>REF-1<", b"<cbc:BuyerReference>" + reference.encode() + b"<")


def no_commitment(app: Any, key: str, number: str, price: str = "100.00") -> str:
    """A document in ``exception``: its buyer reference names no commitment."""
    document_id = submit(app, key, naming(number, f"NONE-{number}", price=price))
    body = settled(app, key, document_id)
    assert body["status"] == "exception", body
    assert body["match_result"]["reasons"][0]["code"] == "NO_COMMITMENT"
    return document_id


def responses_of(app: Any, key: str, document_id: str) -> list[str]:
    with TestClient(app) as api:
        answer = api.get(f"/v1/documents/{document_id}/responses", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        return [r["code"] for r in answer.json()]


def test_rematch_to_another_commitment_is_recorded_and_the_supplier_gets_the_response(
    app: Any, runtime: Any, key: str
) -> None:
    document_id = no_commitment(app, key, "M-1", price="101.00")  # a total no other test's invoice has
    commitment(runtime, "RM-2026-1")
    anna = signed_in(app, "anna")
    page = anna.get(f"/ui/documents/{document_id}").text
    assert '<tr data-commitment="RM-2026-1"><td>RM-2026-1</td><td>contract</td><td class="num">10000.00</td>' in page
    assert 'value="rematch"' in page
    assert "NO_COMMITMENT" in page
    found = anna.get(f"/ui/documents/{document_id}?find=rm-2026").text
    assert 'data-commitment="RM-2026-1"' in found
    assert 'data-commitment="REF-1"' not in found
    assert 'data-commitment="REF-1"' in page  # without a search, every open commitment with the supplier

    answer = decide(anna, document_id, action="rematch", commitment="RM-2026-1", comment="the contract of the year")
    assert answer.status_code == 303, answer.text
    body = status_of(app, key, document_id)
    assert body["status"] == "approved", body["match_result"]  # matched, and approved as the approval policy says
    assert body["match_result"]["commitment"] == "RM-2026-1"
    made = body["decisions"][-1]
    assert (made["action"], made["by"], made["from_status"], made["to_status"]) == (
        "rematch",
        "anna",
        "exception",
        "approved",
    )
    assert made["comment"] == "to commitment RM-2026-1: the contract of the year"
    assert {t["actor"] for t in body["history"][-3:]} == {"user:anna"}
    assert responses_of(app, key, document_id)[-1] == "AP"
    shown = anna.get(f"/ui/documents/{document_id}").text
    assert "<dt>Reserved</dt><dd>250.48 EUR</dd>" in shown  # 2 x 101.00 and 24 % VAT, held on the contract
    assert "<dt>Remaining</dt><dd>9749.52 EUR</dd>" in shown
    again = decide(anna, document_id, action="rematch", commitment="REF-1", comment="")
    assert again.status_code == 409
    assert "cannot be matched again now" in again.text
    assert status_of(app, key, document_id)["match_result"]["commitment"] == "RM-2026-1"


def test_rematch_to_a_commitment_of_another_institution_or_none_answers_404(app: Any, runtime: Any, key: str) -> None:
    document_id = no_commitment(app, key, "M-2")
    commitment(runtime, "THEIRS-1", buyer=OTHER_BUYER)  # the same supplier, another institution
    anna = signed_in(app, "anna")
    assert 'data-commitment="THEIRS-1"' not in anna.get(f"/ui/documents/{document_id}").text
    for number in ("THEIRS-1", "NO-SUCH-1"):
        answer = decide(anna, document_id, action="rematch", commitment=number)
        assert answer.status_code == 404
        assert f"no commitment {number} of the document&#39;s institution and supplier" in answer.text
    assert decide(anna, document_id, action="rematch", commitment="").status_code == 422
    body = status_of(app, key, document_id)
    assert body["status"] == "exception"
    assert body["decisions"] == []


def test_rematch_is_for_accountants_and_approvers(app: Any, runtime: Any, key: str) -> None:
    from einvoice.services import users

    users.add_user(
        runtime.uow_factory(), username="adam", role="administrator", institutions=[BUYER_ENDPOINT], password=PASSWORD
    )
    document_id = no_commitment(app, key, "M-4")
    adam = signed_in(app, "adam")
    assert 'value="rematch"' not in adam.get(f"/ui/documents/{document_id}").text
    refused = decide(adam, document_id, action="rematch", commitment="REF-1")
    assert refused.status_code == 422
    assert "re-matching is for accountants and approvers" in refused.text
    ari = signed_in(app, "ari")
    assert decide(ari, document_id, action="rematch", commitment="REF-1").status_code == 303
    assert status_of(app, key, document_id)["decisions"][-1]["by"] == "ari"


def test_the_match_is_shown_line_by_line_with_the_price_variance_in_words(app: Any, runtime: Any, key: str) -> None:
    line = {
        "id": "1",
        "description": "Consulting",
        "quantity": "10",
        "unit_code": "C62",
        "unit_price": "100.00",
        "vat_category": "S",
        "vat_rate": "24",
    }
    commitment(runtime, "PV-2026-1", lines=[line])
    document_id = submit(app, key, naming("V-1", "PV-2026-1", price="120.00"))
    body = settled(app, key, document_id)
    assert body["status"] == "exception"
    variance = next(r for r in body["match_result"]["reasons"] if r["code"] == "PRICE_VARIANCE")
    page = signed_in(app, "anna").get(f"/ui/documents/{document_id}").text
    table = page[page.index('<table id="match-reasons"') :]
    row = table[table.index("<code>PRICE_VARIANCE</code>") :]
    row = row[: row.index("</tr>")]
    assert variance["message"] in row
    assert f'<mark class="expected">{variance["expected"]}</mark>' in row
    assert f'<mark class="actual">{variance["actual"]}</mark>' in row
    assert variance["expected"] != variance["actual"]
    lines = page[page.index('<table id="match-lines"') :]
    lines = lines[: lines.index("</table>")]
    assert "<td>1</td><td>1</td><td>description</td>" in lines  # invoice line 1 to the order's line 1
    assert 'id="commitment-figures"' in page
    assert "<dt>Amount</dt><dd>10000.00 EUR</dd>" in page


def test_an_older_match_result_with_reasons_in_words_still_renders(app: Any, runtime: Any, key: str) -> None:
    from sqlalchemy import update

    from einvoice.store.tables import DocumentRow

    document_id = no_commitment(app, key, "O-1")
    old = '{"outcome": "exception", "reasons": ["checked by hand before matching existed"]}'
    with runtime.uow_factory() as uow:
        uow.session.execute(update(DocumentRow).where(DocumentRow.id == document_id).values(match_result=old))
        uow.commit()
    page = signed_in(app, "anna").get(f"/ui/documents/{document_id}")
    assert page.status_code == 200
    assert '<tr class="variance"><td colspan="7">checked by hand before matching existed</td></tr>' in page.text


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def with_attachments(body: bytes) -> bytes:
    """The invoice with two supporting documents (BG-24): an embedded PDF and a link elsewhere."""
    embedded = base64.b64encode(PDF).decode()
    references = (
        "<cac:AdditionalDocumentReference><cbc:ID>TS-1</cbc:ID>"
        "<cbc:DocumentDescription>Timesheet</cbc:DocumentDescription><cac:Attachment>"
        f'<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="timesheet ö.pdf">{embedded}'
        "</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>"
        "<cac:AdditionalDocumentReference><cbc:ID>SPEC-1</cbc:ID><cac:Attachment><cac:ExternalReference>"
        "<cbc:URI>https://supplier.example/spec.pdf</cbc:URI></cac:ExternalReference></cac:Attachment>"
        "</cac:AdditionalDocumentReference>"
    )
    return body.replace(b"<cac:AccountingSupplierParty>", references.encode() + b"<cac:AccountingSupplierParty>", 1)


def test_an_embedded_attachment_downloads_with_its_type_and_name_and_never_inline(app: Any, key: str) -> None:
    document_id = submit(app, key, with_attachments(invoice("AT-1")))
    assert settled(app, key, document_id)["status"] in {"approved", "matched", "exception"}
    anna = signed_in(app, "anna")
    page = anna.get(f"/ui/documents/{document_id}").text
    attachments = page[page.index('<ul id="attachments">') :]
    attachments = attachments[: attachments.index("</ul>")]
    assert f'href="/ui/documents/{document_id}/attachments/1" download>timesheet ö.pdf</a>' in attachments
    assert "https://supplier.example/spec.pdf" in attachments
    assert "/attachments/2" not in attachments  # a link elsewhere is shown, not fetched
    answer = anna.get(f"/ui/documents/{document_id}/attachments/1")
    assert answer.status_code == 200
    assert answer.content == PDF
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"timesheet _.pdf\"; filename*=UTF-8''timesheet%20%C3%B6.pdf"
    )
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"].startswith("sandbox")
    assert anna.get(f"/ui/documents/{document_id}/attachments/2").status_code == 404  # not embedded
    assert anna.get(f"/ui/documents/{document_id}/attachments/3").status_code == 404
    assert signed_in(app, "olga").get(f"/ui/documents/{document_id}/attachments/1").status_code == 404
    assert client(app).get(f"/ui/documents/{document_id}/attachments/1").status_code == 303  # sign in first
