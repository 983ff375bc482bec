"""The accountants' pages in a browser: headless Chromium (Playwright) against ``einvoice serve``,
set up with the CLI as an administrator would (``users add --password-stdin``).

Sign in, filter the queue, open a document, approve one exception and reject another, see the
state change for the supplier, four eyes completed by a second approver and refused to the first,
a guessed URL of another institution's document, sign-out; an exception matched again to a
commitment imported with the CLI. Screenshots of the queue and the
document page go to ``EINVOICE_TEST_ARTEFACTS`` (default: the test's temporary directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.documents import BUYER_ENDPOINT, SELLER_ENDPOINT, SELLER_VAT, invoice
from tests.e2e.test_docs_offline import CHROMIUM_ARGS, chromium  # noqa: F401 (a fixture)
from tests.serving import served as serving

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OTHER_BUYER = "0216:003740000002"
PASSWORD = "correct horse battery staple"


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "einvoice", *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``einvoice serve`` with two institutions, a supplier and four users registered by the CLI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EINVOICE_")}
    env["EINVOICE_DATA_DIR"] = str(tmp_path_factory.mktemp("ui-served"))
    _cli(env, "institutions", "add", "--name", "Ministry of Examples", "--endpoint", BUYER_ENDPOINT, "--unchecked")
    _cli(env, "institutions", "add", "--name", "Other Agency", "--endpoint", OTHER_BUYER, "--unchecked")
    _cli(env, "institutions", "set-approval", BUYER_ENDPOINT, "--two-people-above", "1000")
    key = _cli(
        env, "suppliers", "add", "--name", "Supplier Oy", "--endpoint", SELLER_ENDPOINT, "--vat", SELLER_VAT,
        "--unchecked",
    ).strip().splitlines()[-1]  # fmt: skip
    for name, role, institution in [
        ("anna", "accountant", BUYER_ENDPOINT),
        ("ari", "approver", BUYER_ENDPOINT),
        ("bea", "approver", BUYER_ENDPOINT),
        ("olga", "accountant", OTHER_BUYER),
    ]:
        args = ["users", "add", "--username", name, "--role", role, "--institution", institution]
        _cli(env, *args, "--password-stdin", stdin=PASSWORD + "\n")
    assert "anna" in _cli(env, "users", "list")
    with serving(env) as base:
        yield {"base": base, "key": key, "env": env}


def _status(served: dict[str, Any], document_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{served['base']}/v1/documents/{document_id}", headers={"Authorization": f"Bearer {served['key']}"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _submitted(served: dict[str, Any], body: bytes) -> str:
    """Send ``body`` as the supplier and wait for the pipeline to settle it; its id."""
    answer = httpx.post(
        f"{served['base']}/v1/documents",
        content=body,
        headers={"Authorization": f"Bearer {served['key']}", "Content-Type": "application/xml"},
    )
    assert answer.status_code == 202, answer.text
    document_id: str = answer.json()["id"]
    deadline = time.monotonic() + 60
    while _status(served, document_id)["status"] in {"received", "validating", "validated", "matching"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return document_id


def _exception(served: dict[str, Any], number: str, *, buyer: str = BUYER_ENDPOINT, price: str = "100.00") -> str:
    """A duplicate (same supplier, number and year), waiting in ``exception``."""
    ids = [
        _submitted(
            served, invoice(number, buyer_endpoint=buyer, note=note, lines=[("Consulting", "2", price, "S", "24")])
        )
        for note in ("first", "second")
    ]
    assert _status(served, ids[-1])["status"] == "exception"
    return ids[-1]


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("EINVOICE_TEST_ARTEFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:  # noqa: F811 (the fixture imported above)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _signed_in(browser: Any, served: dict[str, Any], username: str) -> Any:
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.goto(served["base"] + "/ui/queue")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")  # by keyboard: the form submits without a script
    page.wait_for_url("**/ui/queue")
    return page


def _decide(page: Any, action: str, *, reason: str = "", comment: str = "", commitment: str = "") -> None:
    form = page.locator("form#decision")
    form.locator(f"input[name=action][value={action}]").check()
    if reason:
        form.locator("select[name=reason]").select_option(reason)
    if commitment:
        form.locator("input[name=commitment]").fill(commitment)
    form.locator("textarea[name=comment]").fill(comment)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()


def test_an_accountant_filters_opens_approves_and_rejects(
    browser: Any, served: dict[str, Any], artefacts: Path
) -> None:
    approve_me = _exception(served, "B-APPROVE")
    reject_me = _exception(served, "B-REJECT", price="250.00")
    theirs = _exception(served, "B-THEIRS", buyer=OTHER_BUYER)
    page = _signed_in(browser, served, "anna")
    rows = page.locator("table#queue tbody tr[data-document-id]")
    assert page.locator(f'tr[data-document-id="{approve_me}"]').count() == 1
    assert page.locator(f'tr[data-document-id="{theirs}"]').count() == 0
    page.select_option("select[name=reason]", "DUPLICATE")
    page.fill("input[name=min_amount]", "300")
    page.click("form#filters button[type=submit]")
    page.wait_for_url("**/ui/queue?*min_amount=300*")
    assert page.locator(f'tr[data-document-id="{reject_me}"]').count() == 1
    assert page.locator(f'tr[data-document-id="{approve_me}"]').count() == 0
    page.goto(served["base"] + "/ui/queue")
    assert rows.count() >= 2
    page.screenshot(path=str(artefacts / "queue.png"), full_page=True)

    page.click(f'tr[data-document-id="{approve_me}"] a')
    page.wait_for_url(f"**/ui/documents/{approve_me}")
    assert "Consulting" in page.inner_text("main")
    page.screenshot(path=str(artefacts / "document.png"), full_page=True)
    _decide(page, "approve")  # over a duplicate warning: refused without a comment
    assert "a comment is required" in page.inner_text("main")
    _decide(page, "approve", comment="a second delivery, not a duplicate")
    assert page.inner_text("#status") == "approved"
    assert _status(served, approve_me)["decisions"][-1]["comment"] == "a second delivery, not a duplicate"

    page.goto(f"{served['base']}/ui/documents/{reject_me}")
    _decide(page, "reject", reason="PRI", comment="the price is not the agreed one")
    assert page.inner_text("#status") == "rejected"
    supplier_view = _status(served, reject_me)
    assert supplier_view["status"] == "rejected"
    assert supplier_view["decisions"][-1]["reason"] == "PRI"

    answer = page.goto(f"{served['base']}/ui/documents/{theirs}")
    assert answer is not None
    assert answer.status == 404

    page.click("text=Sign out")
    page.wait_for_url("**/ui/sign-in")
    page.goto(served["base"] + "/ui/queue")
    assert "/ui/sign-in" in page.url  # the session ended
    page.context.close()


def test_four_eyes_the_same_approver_is_refused_and_a_second_one_completes(
    browser: Any, served: dict[str, Any]
) -> None:
    document_id = _exception(served, "B-FOUR-EYES", price="2000.00")  # above the limit of 1000
    ari = _signed_in(browser, served, "ari")
    ari.goto(f"{served['base']}/ui/documents/{document_id}")
    _decide(ari, "approve", comment="ordered, delivered twice")
    assert ari.inner_text("#status") == "awaiting_second_approval"
    _decide(ari, "approve", comment="me again")
    assert "the second must come from another person" in ari.inner_text("main")
    assert _status(served, document_id)["status"] == "awaiting_second_approval"
    bea = _signed_in(browser, served, "bea")
    bea.goto(f"{served['base']}/ui/documents/{document_id}")
    _decide(bea, "approve", comment="agreed")
    assert bea.inner_text("#status") == "approved"
    assert [d["by"] for d in _status(served, document_id)["decisions"]] == ["ari", "bea"]
    ari.context.close()
    bea.context.close()


def test_an_exception_is_matched_again_to_another_commitment(
    browser: Any, served: dict[str, Any], tmp_path: Path
) -> None:
    body = invoice("B-REMATCH", lines=[("Consulting", "2", "103.00", "S", "24")])  # a total of its own: no duplicate
    body = body.replace(b">REF-1<", b">NOT-REGISTERED<", 1)  # its buyer reference names nothing
    document_id = _submitted(served, body)
    assert _status(served, document_id)["match_result"]["reasons"][0]["code"] == "NO_COMMITMENT"
    orders = tmp_path / "commitments.csv"
    orders.write_text(
        f"number,kind,supplier_endpoint,currency,amount\nCT-2026-7,contract,{SELLER_ENDPOINT},EUR,5000.00\n",
        encoding="utf-8",
    )
    _cli(served["env"], "commitments", "import", str(orders), "--institution", BUYER_ENDPOINT)
    assert _status(served, document_id)["status"] == "exception"  # the import matched nothing naming it

    page = _signed_in(browser, served, "anna")
    page.goto(f"{served['base']}/ui/documents/{document_id}")
    assert page.inner_text("#status") == "exception"
    page.fill("#find", "ct-2026")
    page.click("form#find-commitment button[type=submit]")
    page.wait_for_url("**find=ct-2026*")
    assert page.locator("table#candidates tr[data-commitment]").count() == 1
    assert "5000.00" in page.inner_text('tr[data-commitment="CT-2026-7"]')
    _decide(page, "rematch", commitment="CT-2026-7", comment="the framework contract")
    assert page.inner_text("#status") == "approved"
    assert "255.44 EUR" in page.inner_text("#commitment-figures")  # what the invoice now holds on it
    supplier_view = _status(served, document_id)
    assert supplier_view["match_result"]["commitment"] == "CT-2026-7"
    assert supplier_view["decisions"][-1]["action"] == "rematch"
    responses = httpx.get(
        f"{served['base']}/v1/documents/{document_id}/responses", headers={"Authorization": f"Bearer {served['key']}"}
    )
    assert [r["code"] for r in responses.json()][-1] == "AP"
    page.context.close()
