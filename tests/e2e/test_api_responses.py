"""The responses to suppliers over HTTP, embedded mode: ``GET /v1/documents/{id}/responses`` and
each response's XML, for a document rejected by validation (Message Level Response), one waiting
for a person (``IP``), approved automatically (``AP``), and the accountants' decisions (``UQ``,
``RE``, ``AP``); every XML passes the engine's own T111 or T71 validation.

Documents go through the real pipeline; decisions through the accountants' pages."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from einvoice.api import create_app
from einvoice.settings import Settings
from einvoice.validation import validate
from tests.e2e.documents import (
    BUYER_ENDPOINT,
    OTHER_SELLER_ENDPOINT,
    OTHER_SELLER_VAT,
    SELLER_ENDPOINT,
    SELLER_VAT,
    register_contracts,
)
from tests.e2e.documents import invoice as make_invoice

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
XML = {"Content-Type": "application/xml"}
NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from einvoice.bootstrap import build

    runtime = build(Settings(data_dir=tmp_path_factory.mktemp("responses")))
    runtime.start_background()
    try:
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def keys(runtime: Any) -> tuple[str, str]:
    """The supplier's API key and another supplier's; the institution and an approver registered."""
    from einvoice.services import users
    from einvoice.services.accounts import add_institution, add_supplier

    add_institution(runtime.uow_factory(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
    _, key = add_supplier(
        runtime.uow_factory(), name="Supplier Oy", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    register_contracts(runtime.uow_factory)  # the contract the invoices name (BT-10)
    _, other = add_supplier(
        runtime.uow_factory(), name="Other Oy", endpoint=OTHER_SELLER_ENDPOINT, vat=OTHER_SELLER_VAT, unchecked=True
    )
    users.add_user(
        runtime.uow_factory(), username="ari", role="approver", institutions=[BUYER_ENDPOINT], password=PASSWORD
    )
    return key, other


@pytest.fixture(scope="module")
def app(runtime: Any) -> Any:
    return create_app(runtime)


@pytest.fixture(scope="module")
def api(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def browser(app: Any, keys: tuple[str, str]) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    form = client.get("/ui/sign-in").text
    answer = client.post("/ui/sign-in", data={"username": "ari", "password": PASSWORD, "csrf_token": _csrf(form)})
    assert answer.status_code == 303, answer.text
    return client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def submit(api: TestClient, key: str, body: bytes) -> str:
    answer = api.post("/v1/documents", content=body, headers={**_auth(key), **XML})
    assert answer.status_code == 202, answer.text
    document_id: str = answer.json()["id"]
    return document_id


def settled(api: TestClient, key: str, document_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        answer = api.get(f"/v1/documents/{document_id}", headers=_auth(key))
        assert answer.status_code == 200, answer.text
        status: str = answer.json()["status"]
        if status not in {"received", "validating", "validated", "matching"}:
            return status
        assert time.monotonic() < deadline, f"{document_id} still {status}"
        time.sleep(0.1)


def responses(api: TestClient, key: str, document_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/documents/{document_id}/responses", headers=_auth(key))
    assert answer.status_code == 200, answer.text
    body: list[dict[str, Any]] = answer.json()
    return body


def fetched(api: TestClient, key: str, url: str) -> etree._Element:
    """The response's XML at ``url``, checked with the engine's own validator (T111 or T71)."""
    answer = api.get(url, headers=_auth(key))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    report = validate(answer.content)
    assert report.rules in ("peppol-invoice-response", "peppol-mlr")
    assert [f.rule for f in report.findings if f.is_fatal] == []
    return etree.fromstring(answer.content)


def _text(root: etree._Element, path: str) -> list[str]:
    found: Any = root.xpath(path, namespaces=NS)
    return [e.text for e in found]


def decide(browser: TestClient, document_id: str, **fields: str) -> None:
    page = browser.get(f"/ui/documents/{document_id}")
    assert page.status_code == 200, page.text
    answer = browser.post(
        f"/ui/documents/{document_id}/decision", data={"csrf_token": _csrf(page.text), "commitment": "", **fields}
    )
    assert answer.status_code == 303, answer.text


def exception_document(api: TestClient, key: str, number: str) -> str:
    """A document in ``exception``: the second of two with one number (a suspected duplicate)."""
    first = submit(api, key, make_invoice(number, note="first"))
    assert settled(api, key, first) == "approved"
    second = submit(api, key, make_invoice(number, note="second", lines=[("Consulting", "3", "100.00", "S", "24")]))
    assert settled(api, key, second) == "exception"
    return second


def test_a_document_rejected_by_validation_gets_a_message_level_response(
    api: TestClient, keys: tuple[str, str]
) -> None:
    key, _ = keys
    broken = re.sub(
        rb"(<cbc:PayableAmount[^>]*>)[^<]+(</cbc:PayableAmount>)", rb"\g<1>999.99\g<2>", make_invoice("RSP-MLR-1")
    )
    document_id = submit(api, key, broken)
    assert settled(api, key, document_id) == "rejected"
    [taken_in, response] = responses(api, key, document_id)
    assert (taken_in["type"], taken_in["code"]) == ("invoice-response", "AB")  # written by intake
    assert response["type"] == "message-level-response"
    assert response["code"] == "RE"
    assert response["url"] == f"/v1/documents/{document_id}/responses/{response['id']}.xml"
    root = fetched(api, key, response["url"])
    assert _text(root, "cbc:CustomizationID") == ["urn:fdc:peppol.eu:poacc:trns:mlr:3"]
    assert _text(root, "cac:DocumentResponse/cac:DocumentReference/cbc:ID") == ["RSP-MLR-1"]
    assert _text(root, "cac:SenderParty/cbc:EndpointID") == [BUYER_ENDPOINT.split(":")[1]]
    assert _text(root, "cac:ReceiverParty/cbc:EndpointID") == [SELLER_ENDPOINT.split(":")[1]]
    lines = _text(root, "//cac:LineResponse/cac:Response/cbc:Description")
    assert any("[BR-CO-16]" in line for line in lines), lines
    assert _text(root, "//cac:LineResponse/cac:Response/cac:Status/cbc:StatusReasonCode") == ["BV"] * len(lines)


def test_a_document_approved_automatically_gets_ap(api: TestClient, keys: tuple[str, str]) -> None:
    key, _ = keys
    document_id = submit(api, key, make_invoice("RSP-AP-1"))
    assert settled(api, key, document_id) == "approved"
    [taken_in, response] = responses(api, key, document_id)
    assert _text(fetched(api, key, taken_in["url"]), "//cac:Response/cbc:ResponseCode") == ["AB"]
    assert taken_in["issued_at"] <= response["issued_at"]
    assert (response["type"], response["code"], response["reason"]) == ("invoice-response", "AP", None)
    root = fetched(api, key, response["url"])
    assert _text(root, "cbc:CustomizationID") == ["urn:fdc:peppol.eu:poacc:trns:invoice_response:3"]
    assert _text(root, "cac:SenderParty/cac:PartyLegalEntity/cbc:RegistrationName") == ["Ministry of Examples"]
    assert _text(root, "cac:ReceiverParty/cac:PartyLegalEntity/cbc:RegistrationName") == ["Supplier Oy"]
    assert _text(root, "cac:DocumentResponse/cac:DocumentReference/cbc:DocumentTypeCode") == ["380"]


def test_an_exception_gets_ip_then_a_query_uq_then_an_approval_ap(
    api: TestClient, keys: tuple[str, str], browser: TestClient
) -> None:
    key, _ = keys
    document_id = exception_document(api, key, "RSP-UQ-1")
    assert [r["code"] for r in responses(api, key, document_id)] == ["AB", "IP"]
    decide(browser, document_id, action="query", reason="REF", comment="Which order is this for?")
    decide(browser, document_id, action="approve", reason="", comment="duplicate checked: a second delivery")
    listed = responses(api, key, document_id)
    assert [(r["code"], r["reason"], r["action"]) for r in listed] == [
        ("AB", None, None),
        ("IP", None, None),
        ("UQ", "REF", "PIN"),
        ("AP", "NON", None),
    ]
    assert listed[2]["note"] == "Which order is this for?"
    query = fetched(api, key, listed[2]["url"])
    assert _text(query, "//cac:Response/cbc:ResponseCode") == ["UQ"]
    assert _text(query, "//cac:Status/cbc:StatusReasonCode") == ["REF", "PIN"]
    assert _text(query, "//cac:Status/cbc:StatusReason") == ["Which order is this for?"]
    approval = fetched(api, key, listed[3]["url"].removesuffix(".xml"))  # the id alone answers too
    assert _text(approval, "//cac:Response/cbc:ResponseCode") == ["AP"]


def test_a_rejection_gets_re_with_the_reason_and_words(
    api: TestClient, keys: tuple[str, str], browser: TestClient
) -> None:
    key, _ = keys
    document_id = exception_document(api, key, "RSP-RE-1")
    decide(browser, document_id, action="reject", reason="PRI", comment="The price is not the agreed one.")
    listed = responses(api, key, document_id)
    assert [(r["code"], r["reason"]) for r in listed] == [("AB", None), ("IP", None), ("RE", "PRI")]
    root = fetched(api, key, listed[2]["url"])
    assert _text(root, "//cac:Response/cbc:ResponseCode") == ["RE"]
    assert _text(root, "//cac:Status/cbc:StatusReasonCode") == ["PRI"]
    assert _text(root, "//cac:Status/cbc:StatusReason") == ["The price is not the agreed one."]


def test_another_supplier_and_unknown_ids_answer_404(api: TestClient, keys: tuple[str, str]) -> None:
    key, other = keys
    document_id = submit(api, key, make_invoice("RSP-404-1"))
    settled(api, key, document_id)
    response = responses(api, key, document_id)[-1]
    assert api.get(f"/v1/documents/{document_id}/responses", headers=_auth(other)).status_code == 404
    assert api.get(response["url"], headers=_auth(other)).status_code == 404
    assert api.get(f"/v1/documents/{document_id}/responses/999999.xml", headers=_auth(key)).status_code == 404
    assert api.get(f"/v1/documents/{document_id}/responses/abc", headers=_auth(key)).status_code == 404
    assert api.get("/v1/documents/nope/responses", headers=_auth(key)).status_code == 404
    assert api.get(f"/v1/documents/{document_id}/responses").status_code == 401


def test_the_routes_are_in_the_openapi_description(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "get" in paths["/v1/documents/{document_id}/responses"]
    xml_route = paths["/v1/documents/{document_id}/responses/{response_id}"]["get"]
    assert "application/xml" in xml_route["responses"]["200"]["content"]
