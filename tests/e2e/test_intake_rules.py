"""Intake's rules over HTTP, on both databases: who may invoice as which seller, duplicates on every
path into the pipeline, key revocation, and the size limit on every body form.

Each test meets the engine as a supplier does: through the API, with the in-process worker
running, once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from einvoice.settings import Settings
from tests.e2e.documents import (
    BUYER_ENDPOINT,
    OTHER_SELLER_ENDPOINT,
    OTHER_SELLER_VAT,
    SELLER_ENDPOINT,
    SELLER_VAT,
    invoice,
    register_contracts,
)

pytestmark = pytest.mark.slow

MAX_BYTES = 200_000
XML = {"Content-Type": "application/xml"}
OTHER_SELLER_LEGAL_ID = "2000000-4"
LATE_BUYER_ENDPOINT = "0216:003750000001"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.postgres])], ids=str)
def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from einvoice.bootstrap import build

    data_dir: Path = tmp_path_factory.mktemp(f"intake-{request.param}")
    if request.param == "sqlite":
        database = None
        settings = Settings(data_dir=data_dir, max_document_bytes=MAX_BYTES)
    else:
        from tests.integration.databases import fresh_postgres_database

        database = fresh_postgres_database(request.getfixturevalue("postgres_url"))
        settings = Settings(data_dir=data_dir, max_document_bytes=MAX_BYTES, database_url=database.__enter__())
    runtime = build(settings)
    runtime.start_background()
    try:
        yield runtime
    finally:
        runtime.stop()
        runtime.engine.dispose()
        if database is not None:
            database.__exit__(None, None, None)


@pytest.fixture(scope="module")
def keys(runtime: Any) -> dict[str, str]:
    """``seller``: the documents' seller, registered with its endpoint and VAT id; ``other``:
    another supplier, registered with its endpoint, VAT id and legal id."""
    from einvoice.services.accounts import add_institution, add_supplier

    add_institution(runtime.uow_factory(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
    _, seller = add_supplier(
        runtime.uow_factory(), name="Supplier Oy", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    register_contracts(runtime.uow_factory)  # the contract the invoices name (BT-10)
    _, other = add_supplier(
        runtime.uow_factory(),
        name="Other Oy",
        endpoint=OTHER_SELLER_ENDPOINT,
        vat=OTHER_SELLER_VAT,
        legal_id=OTHER_SELLER_LEGAL_ID,
        unchecked=True,
    )
    return {"seller": seller, "other": other}


@pytest.fixture(scope="module")
def client(runtime: Any) -> TestClient:
    return TestClient(create_app(runtime))


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def submit(client: TestClient, key: str, body: bytes) -> httpx.Response:
    return client.post("/v1/documents", content=body, headers=auth(key, **XML))


def with_tax_scheme(document: bytes, company_id: str, scheme: str) -> bytes:
    """The document with one more ``cac:PartyTaxScheme`` in its seller party, after the first."""
    closing = b"</cac:PartyTaxScheme>"
    extra = (
        f"<cac:PartyTaxScheme><cbc:CompanyID>{company_id}</cbc:CompanyID>"
        f"<cac:TaxScheme><cbc:ID>{scheme}</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
    ).encode()
    assert closing in document
    return document.replace(closing, closing + extra, 1)


def final_status(client: TestClient, key: str, document_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/documents/{document_id}", headers=auth(key)).json()
        if body["status"] not in {"received", "validating", "validated", "matching", "matched"}:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"document {document_id} still {body['status']} after {timeout} s")
        time.sleep(0.1)


# --- 1. the seller is the authenticated supplier by every identifier the document states ----------

OWN = {"seller_endpoint": SELLER_ENDPOINT, "seller_vat": SELLER_VAT}


REFUSED = [
    # The probe's document: another supplier's endpoint, VAT id and name, with the sender's VAT
    # id added under tax scheme TAX.
    (
        "other's endpoint and VAT, own VAT as TAX",
        {"seller_endpoint": OTHER_SELLER_ENDPOINT, "seller_vat": OTHER_SELLER_VAT},
        (SELLER_VAT, "TAX"),
        OTHER_SELLER_ENDPOINT,
    ),
    (
        "other's endpoint, own VAT",
        {"seller_endpoint": OTHER_SELLER_ENDPOINT, "seller_vat": SELLER_VAT},
        None,
        OTHER_SELLER_ENDPOINT,
    ),
    (
        "other's endpoint only",
        {"seller_endpoint": OTHER_SELLER_ENDPOINT, "seller_vat": None},
        None,
        OTHER_SELLER_ENDPOINT,
    ),
    ("own endpoint, other's VAT", {**OWN, "seller_vat": OTHER_SELLER_VAT}, None, OTHER_SELLER_VAT),
    ("own endpoint and VAT, other's VAT as TAX (BT-32)", OWN, (OTHER_SELLER_VAT, "TAX"), OTHER_SELLER_VAT),
    ("own endpoint and VAT, a second VAT id, other's", OWN, (OTHER_SELLER_VAT, "VAT"), OTHER_SELLER_VAT),
    (
        "own endpoint and VAT, other's legal id (BT-30)",
        {**OWN, "seller_legal_id": OTHER_SELLER_LEGAL_ID},
        None,
        OTHER_SELLER_LEGAL_ID,
    ),
    ("own endpoint and VAT, other's legal id as TAX", OWN, (OTHER_SELLER_LEGAL_ID, "TAX"), OTHER_SELLER_LEGAL_ID),
    ("own endpoint, an unregistered VAT id", {**OWN, "seller_vat": "FI99999999"}, None, "FI99999999"),
]


@pytest.mark.parametrize(("case", "parties", "extra_tax_scheme", "named"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_document_stating_an_identifier_not_the_suppliers_is_403_naming_it(
    client: TestClient,
    keys: dict[str, str],
    case: str,
    parties: dict[str, str | None],
    extra_tax_scheme: tuple[str, str] | None,
    named: str,
) -> None:
    document = invoice(f"E2E-SELLER-{abs(hash(case))}", **parties)  # type: ignore[arg-type]
    if extra_tax_scheme is not None:
        document = with_tax_scheme(document, *extra_tax_scheme)
    response = submit(client, keys["seller"], document)
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "urn:einvoice:problem:seller-mismatch"
    assert named in response.json()["detail"]
    listed = client.get("/v1/documents", headers=auth(keys["seller"])).json()
    assert all(item["number"] != f"E2E-SELLER-{abs(hash(case))}" for item in listed["items"])


ACCEPTED = [
    ("own endpoint and VAT", OWN, None),
    ("own endpoint, no VAT id", {**OWN, "seller_vat": None}, None),
    ("own VAT id written with spaces and in lower case", {**OWN, "seller_vat": "fi 2000 0006"}, None),
    ("a legal id no supplier registered", {**OWN, "seller_legal_id": "2000000-6"}, None),
    ("own VAT id again under tax scheme TAX", OWN, (SELLER_VAT, "TAX")),
]


@pytest.mark.parametrize(("case", "parties", "extra_tax_scheme"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_a_document_whose_identifiers_are_all_the_suppliers_is_accepted(
    client: TestClient,
    keys: dict[str, str],
    case: str,
    parties: dict[str, str | None],
    extra_tax_scheme: tuple[str, str] | None,
) -> None:
    document = invoice(f"E2E-OWN-{abs(hash(case))}", **parties)  # type: ignore[arg-type]
    if extra_tax_scheme is not None:
        document = with_tax_scheme(document, *extra_tax_scheme)
    response = submit(client, keys["seller"], document)
    assert response.status_code == 202, response.text
    assert client.get(response.json()["status_url"], headers=auth(keys["seller"])).status_code == 200


def test_the_other_supplier_is_refused_with_the_first_suppliers_document(
    client: TestClient, keys: dict[str, str]
) -> None:
    response = submit(client, keys["other"], invoice("E2E-NOT-OTHERS"))
    assert response.status_code == 403, response.text
    assert SELLER_ENDPOINT in response.json()["detail"]


# --- 2. every path into the pipeline runs the duplicate check ------------------------------------


def test_a_refused_document_accepted_later_is_checked_for_duplicates(
    runtime: Any, client: TestClient, keys: dict[str, str]
) -> None:
    from einvoice.services.accounts import add_institution

    number, issued = "E2E-REVIVED", date(2026, 5, 4)
    refused = submit(client, keys["seller"], invoice(number, issue_date=issued, buyer_endpoint=LATE_BUYER_ENDPOINT))
    assert refused.status_code == 422, refused.text
    first_id = refused.json()["document_id"]
    # a total of its own: another invoice of the module's usual total within 7 days is a suspected duplicate
    unusual = [("Consulting", "2", "100.37", "S", "24")]
    other = submit(client, keys["seller"], invoice(number, issue_date=date(2026, 6, 1), lines=unusual))
    assert other.status_code == 202, other.text
    assert other.json()["suspected_duplicate_of"] is None  # the refused one is no invoice to pay
    # matched while the refused one is no one's history; revived first, it would count as earlier
    assert final_status(client, keys["seller"], other.json()["id"])["status"] == "approved"

    add_institution(runtime.uow_factory(), name="Late Agency", endpoint=LATE_BUYER_ENDPOINT, unchecked=True)
    again = submit(client, keys["seller"], invoice(number, issue_date=issued, buyer_endpoint=LATE_BUYER_ENDPOINT))
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first_id
    assert again.json()["suspected_duplicate_of"] == other.json()["id"]

    revived = final_status(client, keys["seller"], first_id)
    assert revived["status"] == "exception", revived
    assert revived["suspected_duplicate_of"] == other.json()["id"]
    assert final_status(client, keys["seller"], other.json()["id"])["status"] == "approved"


# --- 3. a deactivated key is refused at once -------------------------------------------------------


def test_a_deactivated_key_is_refused_by_the_next_request(
    runtime: Any, client: TestClient, keys: dict[str, str]
) -> None:
    from einvoice.services.accounts import add_supplier, set_supplier_active

    supplier, key = add_supplier(runtime.uow_factory(), name="Leaving Oy", endpoint="0216:003760000009", unchecked=True)
    assert client.get("/v1/documents", headers=auth(key)).status_code == 200
    set_supplier_active(runtime.uow_factory(), supplier.id, active=False)  # what `suppliers deactivate` does
    response = submit(client, key, invoice("E2E-LEAVING", seller_endpoint="0216:003760000009", seller_vat=None))
    assert response.status_code == 401, response.text
    assert client.get("/v1/documents", headers=auth(key)).status_code == 401
    set_supplier_active(runtime.uow_factory(), supplier.id, active=True)
    assert client.get("/v1/documents", headers=auth(key)).status_code == 200


# --- 6. the size limit holds while the body is read, whatever its framing --------------------------


class ReadCounter:
    """The app, counting the request body bytes it takes in (``receive``) per request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted if scope["type"] == "http" else receive, send)


async def chunks(head: bytes, padding: int, tail: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body sent in chunks (an iterator, so with ``Transfer-Encoding: chunked``), as slowly as
    the server reads it."""
    yield head
    for start in range(0, padding, size):
        yield b" " * min(size, padding - start)
    yield tail


@pytest.mark.parametrize("form", ["multipart", "xml"])
def test_a_chunked_upload_over_the_limit_is_refused_before_it_is_read_whole(
    runtime: Any, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    from tempfile import SpooledTemporaryFile

    import starlette.formparsers

    spilled: list[int] = []

    class Watched(SpooledTemporaryFile):  # type: ignore[type-arg]
        def rollover(self) -> None:  # a spooled part going to disk
            spilled.append(self.tell())
            super().rollover()

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Watched)
    counter = ReadCounter(create_app(runtime))
    size = 20 * 1024 * 1024
    if form == "multipart":
        boundary = "einvoice-test-boundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.xml"\r\n'
            "Content-Type: application/xml\r\n\r\n<Invoice>"
        ).encode()
        body = chunks(head, size, f"</Invoice>\r\n--{boundary}--\r\n".encode())
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body = chunks(b"<Invoice>", size, b"</Invoice>")
        content_type = "application/xml"

    async def post() -> httpx.Response:
        # httpx's ASGI transport hands the app one chunk per ``receive`` (Starlette's TestClient
        # reads the whole body first).
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=counter), base_url="http://test") as client:
            headers = auth(keys["seller"], **{"Content-Type": content_type})
            return await client.post("/v1/documents", content=body, headers=headers)

    response = asyncio.run(post())
    assert response.status_code == 413, response.text
    assert response.json()["type"] == "urn:einvoice:problem:too-large"
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert counter.read < MAX_BYTES + 256 * 1024, f"the server read {counter.read} bytes of a {size}-byte upload"
    assert spilled == [], "a part of the upload was written to a temporary file"


def test_a_chunked_multipart_upload_within_the_limit_is_accepted(client: TestClient, keys: dict[str, str]) -> None:
    boundary = "einvoice-test-boundary"
    document = invoice("E2E-CHUNKED-MULTI")
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="invoice.xml"\r\n'
        "Content-Type: application/xml\r\n\r\n".encode()
        + document
        + f"\r\n--{boundary}--\r\n".encode()
    )
    chunks = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
    response = client.post(
        "/v1/documents",
        content=chunks,
        headers=auth(keys["seller"], **{"Content-Type": f"multipart/form-data; boundary={boundary}"}),
    )
    assert response.status_code == 202, response.text
