"""The HTTP API end to end, embedded mode: SQLite in a temporary folder, the in-process worker.

Requests go through httpx into the ASGI app (no sockets); the pipeline runs for real, so
documents are polled until validation is done.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from einvoice.receipts import verify_receipt
from einvoice.settings import Settings
from tests.e2e.documents import (
    BUYER_ENDPOINT,
    MALFORMED,
    NOT_UBL,
    OTHER_SELLER_ENDPOINT,
    OTHER_SELLER_VAT,
    SELLER_ENDPOINT,
    SELLER_VAT,
    invoice,
    register_contracts,
    with_doctype,
)

pytestmark = pytest.mark.slow

MAX_BYTES = 200_000
BEFORE_VALIDATION = {"received", "validating"}
XML = {"Content-Type": "application/xml"}
PEPPOL_BILLING = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from einvoice.bootstrap import build

    data_dir: Path = tmp_path_factory.mktemp("embedded")
    runtime = build(Settings(data_dir=data_dir, max_document_bytes=MAX_BYTES))
    runtime.start_background()
    try:
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def keys(runtime: Any) -> dict[str, str]:
    """API keys: ``seller`` (the documents' seller) and ``other`` (another supplier)."""
    from einvoice.services.accounts import add_institution, add_supplier

    # made-up identifiers (tests/e2e/documents.py)
    add_institution(runtime.uow_factory(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
    _, seller = add_supplier(
        runtime.uow_factory(), name="Supplier Oy", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    register_contracts(runtime.uow_factory)  # the contract the invoices name (BT-10)
    _, other = add_supplier(
        runtime.uow_factory(), name="Other Oy", endpoint=OTHER_SELLER_ENDPOINT, vat=OTHER_SELLER_VAT, unchecked=True
    )
    return {"seller": seller, "other": other}


@pytest.fixture(scope="module")
def app(runtime: Any) -> Any:
    return create_app(runtime)


@pytest.fixture(scope="module")
def client(app: Any) -> TestClient:
    return TestClient(app)


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def submit(client: TestClient, key: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post("/v1/documents", content=body, headers=auth(key, **XML, **headers))


def wait_for_validation(client: TestClient, key: str, document_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/documents/{document_id}", headers=auth(key))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] not in BEFORE_VALIDATION:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"document {document_id} still {body['status']} after {timeout} s")
        time.sleep(0.1)


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:einvoice:problem:{kind}"
    assert body["title"]
    assert body["detail"]
    return body


# --- submission and processing -------------------------------------------------------------------


def test_submit_answers_202_with_receipt_and_the_document_gets_validated(
    client: TestClient, keys: dict[str, str]
) -> None:
    response = submit(client, keys["seller"], invoice("E2E-1"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) >= {"id", "status", "sha256", "received_at", "status_url", "receipt"}
    assert body["status"] == "received"
    assert body["status_url"] == f"/v1/documents/{body['id']}"
    assert response.headers["location"] == body["status_url"]

    done = wait_for_validation(client, keys["seller"], body["id"])
    assert done["status"] != "rejected", done["findings"]
    assert not [f for f in done["findings"] if f["severity"] == "fatal"]
    steps = [(t["from_status"], t["to_status"]) for t in done["history"]]
    assert steps[0] == (None, "received")
    assert ("received", "validating") in steps
    assert ("validating", "validated") in steps
    assert all(t["actor"] and t["at"] for t in done["history"])
    assert done["number"] == "E2E-1"
    assert done["payable_amount"] == "248.00"
    assert done["report_urls"]["json"].endswith("/report.json")


def test_same_bytes_again_return_the_first_document(client: TestClient, keys: dict[str, str]) -> None:
    document = invoice("E2E-REPEAT")
    first = submit(client, keys["seller"], document)
    again = submit(client, keys["seller"], document)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["receipt"] == first.json()["receipt"]


def test_idempotency_key_returns_the_first_answer(client: TestClient, keys: dict[str, str]) -> None:
    first = submit(client, keys["seller"], invoice("E2E-IDEM"), **{"Idempotency-Key": "k-1"})
    again = submit(client, keys["seller"], invoice("E2E-IDEM"), **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]


def test_same_number_and_year_is_a_suspected_duplicate(client: TestClient, keys: dict[str, str]) -> None:
    first = submit(client, keys["seller"], invoice("E2E-DUP", issue_date=date(2026, 3, 1)))
    second = submit(
        client, keys["seller"], invoice("E2E-DUP", issue_date=date(2026, 4, 1), note="corrected delivery address")
    )
    next_year = submit(client, keys["seller"], invoice("E2E-DUP", issue_date=date(2027, 1, 5)))
    assert (first.status_code, second.status_code, next_year.status_code) == (202, 202, 202)
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["suspected_duplicate_of"] == first.json()["id"]
    assert next_year.json()["suspected_duplicate_of"] is None
    detail = client.get(second.json()["status_url"], headers=auth(keys["seller"])).json()
    assert detail["suspected_duplicate_of"] == first.json()["id"]


def test_multipart_upload(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/documents",
        files={"file": ("invoice.xml", invoice("E2E-MULTI"), "application/xml")},
        headers=auth(keys["seller"]),
    )
    assert response.status_code == 202, response.text


def test_twenty_concurrent_submissions_of_the_same_bytes_make_one_document(app: Any, keys: dict[str, str]) -> None:
    document = invoice("E2E-RACE")

    async def race() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/documents", content=document, headers=auth(keys["seller"], **XML))
                    for _ in range(20)
                )
            )

    responses = asyncio.run(race())
    assert all(r.status_code in (200, 202) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sorted(r.status_code for r in responses).count(202) == 1


# --- refusals ------------------------------------------------------------------------------------


def test_wrong_seller_is_403_with_the_reason(client: TestClient, keys: dict[str, str]) -> None:
    document = invoice("E2E-NOT-MINE", seller_endpoint=OTHER_SELLER_ENDPOINT, seller_vat=OTHER_SELLER_VAT)
    body = assert_problem(submit(client, keys["seller"], document), 403, "seller-mismatch")
    assert "seller" in body["detail"].lower()


def test_unknown_buyer_is_422_and_recorded(client: TestClient, keys: dict[str, str]) -> None:
    response = submit(client, keys["seller"], invoice("E2E-NOBUYER", buyer_endpoint="0216:003799999999"))
    body = assert_problem(response, 422, "unknown-buyer")
    assert body["findings"]
    recorded = client.get(body["status_url"], headers=auth(keys["seller"]))
    assert recorded.status_code == 200
    assert recorded.json()["status"] == "refused"


def test_a_pdf_is_400_saying_what_it_is_and_what_to_send(client: TestClient, keys: dict[str, str]) -> None:
    body = assert_problem(submit(client, keys["seller"], b"%PDF-1.7\n%%EOF\n"), 400, "not-well-formed")
    assert body["detail"].startswith("not XML: a PDF document; send the UBL 2.1 Invoice or CreditNote XML")
    assert body["findings"][0]["rule"] == "XML-WELL-FORMED"


def test_malformed_is_400_with_findings(client: TestClient, keys: dict[str, str]) -> None:
    body = assert_problem(submit(client, keys["seller"], MALFORMED), 400, "not-well-formed")
    assert body["findings"][0]["severity"] == "fatal"
    assert body["findings"][0]["layer"] == "intake"


def test_doctype_is_refused(client: TestClient, keys: dict[str, str]) -> None:
    body = assert_problem(submit(client, keys["seller"], with_doctype(invoice("E2E-DTD"))), 400, "unsafe-xml")
    assert "DOCTYPE" in body["detail"]


def test_oversized_is_413(client: TestClient, keys: dict[str, str]) -> None:
    big = invoice("E2E-BIG", note="x" * (MAX_BYTES + 1))
    assert_problem(submit(client, keys["seller"], big), 413, "too-large")


def test_not_ubl_is_422_and_recorded(client: TestClient, keys: dict[str, str]) -> None:
    body = assert_problem(submit(client, keys["seller"], NOT_UBL), 422, "unsupported-document")
    assert body["document_id"]


def test_wrong_media_type_is_415(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/v1/documents", content=invoice("E2E-JSON"), headers=auth(keys["seller"], **{"Content-Type": "text/plain"})
    )
    assert_problem(response, 415, "unsupported-media-type")


def test_no_or_wrong_key_is_401(client: TestClient) -> None:
    assert_problem(client.post("/v1/documents", content=invoice(), headers=XML), 401, "unauthenticated")
    assert_problem(submit(client, "eik_wrong", invoice()), 401, "unauthenticated")


# --- reading back ------------------------------------------------------------------------------


def test_list_shows_only_own_documents_filtered_by_status_and_since(client: TestClient, keys: dict[str, str]) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = submit(client, keys["seller"], invoice("E2E-LIST")).json()
    wait_for_validation(client, keys["seller"], created["id"])

    mine = client.get("/v1/documents", params={"since": before.isoformat()}, headers=auth(keys["seller"])).json()
    assert created["id"] in [d["id"] for d in mine["items"]]
    assert mine["count"] == len(mine["items"])
    later = client.get(
        "/v1/documents",
        params={"since": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()},
        headers=auth(keys["seller"]),
    ).json()
    assert later["items"] == []
    refused = client.get("/v1/documents", params={"status": "refused"}, headers=auth(keys["seller"])).json()
    assert refused["items"]
    assert {d["status"] for d in refused["items"]} == {"refused"}
    assert created["id"] not in [d["id"] for d in refused["items"]]

    assert_problem(
        client.get("/v1/documents", params={"status": "lost"}, headers=auth(keys["seller"])), 422, "invalid-request"
    )
    theirs = client.get("/v1/documents", headers=auth(keys["other"])).json()
    assert created["id"] not in [d["id"] for d in theirs["items"]]
    assert_problem(client.get(created["status_url"], headers=auth(keys["other"])), 404, "not-found")
    assert_problem(client.get(created["status_url"] + "/report.json", headers=auth(keys["other"])), 404, "not-found")
    assert_problem(client.get("/v1/documents/nope", headers=auth(keys["seller"])), 404, "not-found")


def test_receipt_verifies_with_published_key_and_fails_when_tampered(client: TestClient, keys: dict[str, str]) -> None:
    body = submit(client, keys["seller"], invoice("E2E-RECEIPT")).json()
    receipt = body["receipt"]
    assert receipt["payload"]["id"] == body["id"]
    assert receipt["payload"]["sha256"] == body["sha256"]
    published = client.get("/v1/receipt-keys").json()
    assert receipt["kid"] == published["current"]
    assert verify_receipt(receipt, published["keys"])
    tampered = copy.deepcopy(receipt)
    tampered["payload"]["sha256"] = "0" * 64
    assert not verify_receipt(tampered, published["keys"])


def test_reports(client: TestClient, keys: dict[str, str]) -> None:
    created = submit(client, keys["seller"], invoice("E2E-REPORT")).json()
    wait_for_validation(client, keys["seller"], created["id"])
    report = client.get(created["status_url"] + "/report.json", headers=auth(keys["seller"]))
    assert report.status_code == 200
    assert report.json()["verdict"] == "valid"
    assert report.json()["counts"]["fatal"] == 0
    page = client.get(created["status_url"] + "/report.html", headers=auth(keys["seller"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()


def test_stored_reports_name_the_rule_set_its_version_and_artefacts(client: TestClient, keys: dict[str, str]) -> None:
    document = invoice("E2E-RULES").replace(b">248.00</cbc:PayableAmount>", b">249.00</cbc:PayableAmount>")
    created = submit(client, keys["seller"], document).json()
    assert wait_for_validation(client, keys["seller"], created["id"])["status"] == "rejected"
    stored = client.get(created["status_url"] + "/report.json", headers=auth(keys["seller"])).json()
    checked = client.post("/v1/validate", content=document, headers=auth(keys["seller"], **XML)).json()
    assert stored["customization_id"] == checked["customization_id"] == PEPPOL_BILLING
    for key in ("document_type", "rules", "rules_version", "artefacts"):
        assert stored[key] == checked[key], key
    assert (stored["rules"], stored["rules_version"]) == ("peppol-bis3", "2026.5")
    assert [a["id"] for a in stored["artefacts"]] == [
        "ubl-2.1/xsd/maindoc/UBL-Invoice-2.1.xsd",
        "peppol-bis3-2026.5/CEN-EN16931-UBL.xslt",
        "peppol-bis3-2026.5/PEPPOL-EN16931-UBL.xslt",
    ]
    assert all(len(a["sha256"]) == 64 for a in stored["artefacts"])
    page = client.get(created["status_url"] + "/report.html", headers=auth(keys["seller"])).text
    assert "<dt>Rules</dt><dd>peppol-bis3 2026.5</dd>" in page
    assert f"<code>{PEPPOL_BILLING}</code>" in page
    assert "peppol-bis3-2026.5/PEPPOL-EN16931-UBL.xslt" in page
    checked_page = client.post(
        "/v1/validate", params={"format": "html"}, content=document, headers=auth(keys["seller"], **XML)
    ).text
    assert "<dt>Rules</dt><dd>peppol-bis3 2026.5</dd>" in checked_page


def test_invalid_document_is_rejected_with_findings(client: TestClient, keys: dict[str, str]) -> None:
    document = invoice("E2E-BADTOTAL").replace(b">248.00</cbc:PayableAmount>", b">249.00</cbc:PayableAmount>")
    created = submit(client, keys["seller"], document).json()
    done = wait_for_validation(client, keys["seller"], created["id"])
    assert done["status"] == "rejected"
    assert "BR-CO-15" in {f["rule"] for f in done["findings"]} or any(
        f["severity"] == "fatal" for f in done["findings"]
    )
    report = client.get(created["status_url"] + "/report.json", headers=auth(keys["seller"])).json()
    assert report["verdict"] == "invalid"


# --- validation without storing ------------------------------------------------------------------


def test_validate_without_storing(client: TestClient, keys: dict[str, str]) -> None:
    before = client.get("/v1/documents", params={"limit": 1000}, headers=auth(keys["seller"])).json()["count"]
    good = client.post("/v1/validate", content=invoice("E2E-CHECK"), headers=auth(keys["seller"], **XML))
    assert good.status_code == 200, good.text
    assert good.json()["valid"] is True
    bad_doc = invoice("E2E-CHECK2").replace(b">248.00</cbc:PayableAmount>", b">1.00</cbc:PayableAmount>")
    bad = client.post("/v1/validate", content=bad_doc, headers=auth(keys["seller"], **XML))
    assert bad.status_code == 200
    assert bad.json()["valid"] is False
    assert any(f["severity"] == "fatal" for f in bad.json()["findings"])
    html = client.post(
        "/v1/validate", params={"format": "html"}, content=invoice("E2E-CHECK"), headers=auth(keys["seller"], **XML)
    )
    assert html.headers["content-type"].startswith("text/html")
    unreadable = client.post("/v1/validate", content=MALFORMED, headers=auth(keys["seller"], **XML))
    assert unreadable.status_code == 200
    assert unreadable.json()["valid"] is False
    assert unreadable.json()["findings"][0]["layer"] == "intake"
    after = client.get("/v1/documents", params={"limit": 1000}, headers=auth(keys["seller"])).json()["count"]
    assert after == before
    assert client.post("/v1/validate", content=invoice(), headers=XML).status_code == 401


def test_one_rule_id_per_problem_on_submission_and_validation(client: TestClient, keys: dict[str, str]) -> None:
    """The same problem has the same rule id from POST /v1/documents as from POST /v1/validate (and
    the CLI); the problem body names the intake's former id for one release."""
    cases = (
        (MALFORMED, 400, "XML-WELL-FORMED", "INTAKE-NOT-WELL-FORMED"),
        (with_doctype(invoice("E2E-VOCAB-DTD")), 400, "XML-SAFETY", "INTAKE-UNSAFE-XML"),
        (NOT_UBL, 422, "DOCUMENT-TYPE", "INTAKE-UNSUPPORTED-DOCUMENT"),
    )
    for body, status, rule, former in cases:
        refused = submit(client, keys["seller"], body)
        assert refused.status_code == status, refused.text
        [finding] = refused.json()["findings"]
        assert (finding["rule"], finding["former_rule"]) == (rule, former)
        checked = client.post("/v1/validate", content=body, headers=auth(keys["seller"], **XML)).json()
        assert [f["rule"] for f in checked["findings"] if f["layer"] == "intake"] == [rule]
        assert "former_rule" not in checked["findings"][0]
    recorded = submit(client, keys["seller"], NOT_UBL).json()  # the refused Order, stored
    stored = client.get(recorded["status_url"], headers=auth(keys["seller"])).json()
    assert [f["rule"] for f in stored["findings"]] == ["DOCUMENT-TYPE"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["FindingModel"]["properties"]
    assert schema["former_rule"]["deprecated"] is True


# --- operations ----------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? \S+$')


def test_health_readiness_and_metrics(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert text.endswith("\n")
    families: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            families[name] = kind
        elif line and not line.startswith("#"):
            assert _SAMPLE.match(line), line
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))
    assert families["einvoice_documents"] == "gauge"
    assert families["einvoice_queue_lag_seconds"] == "gauge"
    assert families["einvoice_submission_seconds"] == "histogram"
    assert re.search(r'^einvoice_documents\{status="validated"\} [1-9]', text, re.MULTILINE) or re.search(
        r'^einvoice_documents\{status="(matching|matched|exception|approved|posted)"\} [1-9]', text, re.MULTILINE
    )


def test_openapi_and_docs_render(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/documents/{document_id}/report.html" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
