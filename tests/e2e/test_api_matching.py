"""Matching end to end over HTTP, on the embedded default (``einvoice serve`` on SQLite with its
in-process worker) and in production (``einvoice serve`` and ``einvoice worker`` on a fresh
PostgreSQL database and RabbitMQ virtual host): an institution registers its commitments with
the key ``einvoice institutions new-key`` prints, suppliers submit invoices, and
``GET /v1/documents/{id}`` shows ``approved`` or ``exception`` with the ``match_result`` of issue
#11; a receipt lets a three-way match through; a commitment registered after its invoice sends
the invoice through matching again; a Peppol Order of the corpus becomes the commitment an invoice
is matched against."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from einvoice.benchmarks.pipeline import (
    InvoiceLine,
    Target,
    commitment_references,
    invoice_xml,
    random_invoice,
    register_commitments,
)
from tests.conftest import CORPUS_DIR
from tests.e2e import documents
from tests.e2e.documents import BUYER_ENDPOINT, SELLER_ENDPOINT, SELLER_VAT
from tests.serving import served
from tests.unit.matching.builders import ISSUE_MATCH_RESULT

pytestmark = pytest.mark.slow

#: The buyer and the seller of the corpus's first Order (``UC1_Order.xml``, order ``1``).
ORDER = CORPUS_DIR / "peppol-2026.5" / "Order use cases" / "UC1_Order.xml"
HOSPITAL = "0088:7300010000001"
ORDER_SELLER = "0192:987654325"
ORDER_SELLER_VAT = "NO987654325MVA"
#: States a document passes through before matching has decided.
BEFORE_MATCHING = {"received", "validating", "validated", "matching"}


def commitment(number: str, **changes: Any) -> dict[str, Any]:
    """Issue #11's example commitment (the API description's), with this test's supplier."""
    return documents.commitment(number, **{"supplier": {"endpoint": SELLER_ENDPOINT, "vat": SELLER_VAT}, **changes})


COMMITMENT = commitment("PO-2026-0042")


def bill(number: str, issue_date: date, order: str, *lines: InvoiceLine) -> bytes:
    """The seller's invoice ``number`` to the ministry, naming ``order`` (BT-13)."""
    return invoice_xml(
        number=number,
        issue_date=issue_date,
        seller_endpoint=SELLER_ENDPOINT,
        seller_vat=SELLER_VAT,
        buyer_endpoint=BUYER_ENDPOINT,
        order_reference=order,
        lines=lines,
    )


def paper(quantity: str, price: str = "3.50", **ids: str) -> InvoiceLine:
    return InvoiceLine("Printer paper A4", Decimal(quantity), Decimal(price), "S", Decimal(21), **ids)


@dataclass
class Engine:
    """A running engine: its base URL and the environment its CLI reaches the same database with."""

    url: str
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        """Run ``einvoice ARGS`` against the engine's database; the last line it printed."""
        done = subprocess.run(
            [sys.executable, "-m", "einvoice", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout.strip().splitlines()[-1]


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EINVOICE_") or k == "EINVOICE_SHARED_DIR"}
    return env | {"EINVOICE_DATA_DIR": str(home)}


@pytest.fixture(
    scope="module",
    params=["embedded", pytest.param("production", marks=[pytest.mark.postgres, pytest.mark.rabbitmq])],
)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    home: Path = tmp_path_factory.mktemp(f"matching-{request.param}")
    env = _environment(home)
    if request.param == "embedded":
        with served(env, died=lambda: "einvoice serve (embedded) exited") as url:
            yield Engine(url, env)
        return
    from tests.integration.databases import fresh_postgres_database
    from tests.integration.pipeline_support import WorkerProcess, fresh_rabbitmq_vhost

    key_file = home / "receipt-key.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    postgres_url = request.getfixturevalue("postgres_url")
    rabbitmq_url = request.getfixturevalue("rabbitmq_url")
    with fresh_postgres_database(postgres_url) as database_url, fresh_rabbitmq_vhost(rabbitmq_url) as broker_url:
        env |= {
            "EINVOICE_MODE": "production",
            "EINVOICE_DATABASE_URL": database_url,
            "EINVOICE_BROKER_URL": broker_url,
            "EINVOICE_SIGNING_KEY_FILE": str(key_file),
        }
        worker = WorkerProcess(env, home / "worker.log", threads=2)
        try:
            with served(env, args=["--workers-in-process", "0"], until="/readyz", timeout=90) as url:
                yield Engine(url, env)
        finally:
            worker.stop()


@pytest.fixture(scope="module")
def keys(engine: Engine) -> dict[str, str]:
    """API keys: the institutions' from ``einvoice institutions new-key`` (``ministry``;
    ``hospital``, the corpus Order's buyer), the suppliers' (``seller``; ``order_seller``, the
    Order's seller)."""
    from einvoice.bootstrap import database_engine
    from einvoice.services.accounts import add_institution, add_supplier
    from einvoice.settings import Settings
    from einvoice.store import uow_factory_for

    database = database_engine(
        Settings(data_dir=Path(engine.env["EINVOICE_DATA_DIR"]), database_url=engine.env.get("EINVOICE_DATABASE_URL"))
    )
    try:
        uow = uow_factory_for(database)
        add_institution(uow(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
        add_institution(uow(), name="City Hospital", endpoint=HOSPITAL, unchecked=True)
        _, seller = add_supplier(uow(), name="Supplier Oy", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True)
        _, order_seller = add_supplier(
            uow(), name="The Supplier AB", endpoint=ORDER_SELLER, vat=ORDER_SELLER_VAT, unchecked=True
        )
    finally:
        database.dispose()
    return {
        "ministry": engine.cli("institutions", "new-key", BUYER_ENDPOINT),
        "hospital": engine.cli("institutions", "new-key", HOSPITAL),
        "seller": seller,
        "order_seller": order_seller,
    }


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine.url, timeout=30) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def register(client: httpx.Client, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/commitments", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


def submit(client: httpx.Client, key: str, document: bytes) -> str:
    response = client.post("/v1/documents", content=document, headers=auth(key) | {"Content-Type": "application/xml"})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def document(client: httpx.Client, key: str, document_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/documents/{document_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decided(client: httpx.Client, key: str, document_id: str, timeout: float = 60) -> dict[str, Any]:
    """The document once matching has decided (or it left the pipeline another way)."""
    deadline = time.monotonic() + timeout
    while (body := document(client, key, document_id))["status"] in BEFORE_MATCHING:
        assert time.monotonic() < deadline, f"document {document_id} still {body['status']} after {timeout} s"
        time.sleep(0.1)
    return body


def figures(client: httpx.Client, key: str, number: str) -> dict[str, Any]:
    response = client.get(f"/v1/commitments/{number}", headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_invoice_within_its_order_is_approved_and_one_above_the_price_waits_with_the_reason(
    client: httpx.Client, keys: dict[str, str]
) -> None:
    register(client, keys["ministry"], COMMITMENT)

    within = submit(
        client,
        keys["seller"],
        bill("M-1", date(2026, 3, 2), "PO-2026-0042", paper("10", order_line="1")),
    )
    body = decided(client, keys["seller"], within)
    assert body["status"] == "approved", body
    assert body["match_result"] == {
        "outcome": "matched",
        "commitment": "PO-2026-0042",
        "reasons": [],
        "warnings": [],
        "lines": [{"line": "1", "commitment_line": "1", "by": "order_line_reference", "outcome": "matched"}],
        "reserved": "42.35",
    }

    # issue #11's example: line 2 is found by its item id and is 8.6 % dearer than committed
    dearer = submit(
        client,
        keys["seller"],
        bill(
            "M-2",
            date(2026, 3, 10),
            "PO-2026-0042",
            paper("1", order_line="1"),
            paper("1", "3.80", seller_item_id="SKU-1"),
        ),
    )
    body = decided(client, keys["seller"], dearer)
    assert body["status"] == "exception", body
    assert body["match_result"] == ISSUE_MATCH_RESULT

    # only the approved invoice holds anything on the order
    order = figures(client, keys["ministry"], "PO-2026-0042")
    assert (order["reserved"], order["consumed"], order["remaining"]) == ("42.35", "0.00", "4957.65")
    assert Decimal(order["lines"][0]["invoiced"]) == 10


def test_three_way_an_invoice_beyond_what_arrived_waits_until_a_receipt_covers_it(
    client: httpx.Client, keys: dict[str, str]
) -> None:
    number = "PO-2026-0043"
    register(client, keys["ministry"], commitment(number, receipt_required=True))
    receipts = f"/v1/commitments/{number}/receipts"
    first = {"reference": "GRN-1", "received_on": "2026-04-01", "lines": [{"line": "1", "quantity": "40"}]}
    assert client.post(receipts, json=first, headers=auth(keys["ministry"])).status_code == 201

    ahead = submit(
        client,
        keys["seller"],
        bill("M-3", date(2026, 4, 2), number, paper("42", order_line="1")),
    )
    body = decided(client, keys["seller"], ahead)
    assert body["status"] == "exception", body
    [reason] = body["match_result"]["reasons"]
    assert (reason["code"], reason["line"], reason["commitment_line"]) == ("QUANTITY_EXCEEDS_RECEIVED", "1", "1")
    assert (Decimal(reason["expected"]), Decimal(reason["actual"])) == (40, 42)

    # the rest arrives: the receipt sends the waiting invoice through matching again, in the request
    second = {"reference": "GRN-2", "received_on": "2026-04-05", "lines": [{"line": "1", "quantity": "10"}]}
    assert client.post(receipts, json=second, headers=auth(keys["ministry"])).status_code == 201
    body = document(client, keys["seller"], ahead)
    assert body["status"] == "approved", body
    assert body["match_result"]["outcome"] == "matched"
    assert f"commitment:{number}" in {t["actor"] for t in body["history"]}

    # 42 of the 50 received are invoiced: 9 more are one too many
    beyond = submit(
        client,
        keys["seller"],
        bill("M-4", date(2026, 4, 14), number, paper("9", order_line="1")),
    )
    body = decided(client, keys["seller"], beyond)
    assert body["status"] == "exception", body
    [reason] = body["match_result"]["reasons"]
    assert reason["code"] == "QUANTITY_EXCEEDS_RECEIVED"
    assert (Decimal(reason["expected"]), Decimal(reason["actual"])) == (50, 51)
    order = figures(client, keys["ministry"], number)
    assert (Decimal(order["lines"][0]["received"]), Decimal(order["lines"][0]["invoiced"])) == (50, 42)


def test_an_invoice_that_arrives_before_its_commitment_is_matched_when_the_commitment_is_registered(
    client: httpx.Client, keys: dict[str, str]
) -> None:
    number = "PO-2026-0044"
    early = submit(
        client,
        keys["seller"],
        bill("M-5", date(2026, 5, 4), number, paper("5", order_line="1")),
    )
    body = decided(client, keys["seller"], early)
    assert body["status"] == "exception", body
    assert [r["code"] for r in body["match_result"]["reasons"]] == ["NO_COMMITMENT"]
    assert body["match_result"]["commitment"] is None

    register(client, keys["ministry"], commitment(number))
    body = document(client, keys["seller"], early)
    assert body["status"] == "approved", body
    assert (body["match_result"]["commitment"], body["match_result"]["reserved"]) == (number, "21.18")
    assert [t["to_status"] for t in body["history"] if t["actor"] == f"commitment:{number}"] == [
        "matching",
        "matched",
        "approved",
    ]
    assert figures(client, keys["ministry"], number)["reserved"] == "21.18"


def test_an_invoice_against_an_order_imported_from_the_corpus_is_approved(
    client: httpx.Client, keys: dict[str, str]
) -> None:
    imported = client.post(
        "/v1/orders", content=ORDER.read_bytes(), headers=auth(keys["hospital"]) | {"Content-Type": "application/xml"}
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["number"] == "1"

    # the Order's three lines, each billed in full at the ordered price: 115.00 + 25 % VAT
    lines = [
        InvoiceLine(name, Decimal(quantity), Decimal(price), "S", Decimal(25), unit="NAR", order_line=line)
        for line, name, quantity, price in (
            ("1", "Brown sauce", "10", "4"),
            ("2", "White sauce", "5", "6"),
            ("3", "Pepper sauce", "15", "3"),
        )
    ]
    raw = invoice_xml(
        number="SAUCE-1",
        issue_date=date(2013, 7, 20),  # within the Order's validity (to 2013-07-30)
        seller_endpoint=ORDER_SELLER,
        seller_vat=ORDER_SELLER_VAT,
        seller_name="The Supplier AB",
        buyer_endpoint=HOSPITAL,
        buyer_name="City Hospital",
        order_reference="1",
        lines=lines,
    )
    body = decided(client, keys["order_seller"], submit(client, keys["order_seller"], raw))
    assert body["status"] == "approved", body
    assert body["match_result"]["commitment"] == "1"
    assert body["match_result"]["reserved"] == "143.75"
    assert [(x["line"], x["commitment_line"], x["by"]) for x in body["match_result"]["lines"]] == [
        ("1", "1", "order_line_reference"),
        ("2", "2", "order_line_reference"),
        ("3", "3", "order_line_reference"),
    ]
    order = figures(client, keys["hospital"], "1")
    assert (order["reserved"], order["remaining"]) == ("143.75", "0.00")


def test_the_pipeline_benchmark_s_invoices_each_name_a_contract_it_registered_and_are_approved(
    engine: Engine, client: httpx.Client, keys: dict[str, str]
) -> None:
    """What ``einvoice bench pipeline --commitments`` does before its clock starts, and sends."""
    numbers = register_commitments(
        engine.url, keys["ministry"], seller_endpoint=SELLER_ENDPOINT, tag="E2E", per_currency=2
    )
    assert {currency: len(found) for currency, found in numbers.items()} == {"EUR": 2, "SEK": 2}
    target = Target(engine.url, keys["seller"], SELLER_ENDPOINT, SELLER_VAT, BUYER_ENDPOINT, numbers)
    rng, reference = random.Random(7), commitment_references(target, 7)
    generated = [
        random_invoice(
            rng,
            number=f"GEN-{i}",
            seller_endpoint=SELLER_ENDPOINT,
            seller_vat=SELLER_VAT,
            buyer_endpoint=BUYER_ENDPOINT,
            reference=reference,
        )
        for i in range(8)
    ]
    ids = [submit(client, keys["seller"], raw) for raw in generated]
    decisions = [decided(client, keys["seller"], document_id) for document_id in ids]
    assert [d["status"] for d in decisions] == ["approved"] * 8, [d["match_result"] for d in decisions]
    assert {d["match_result"]["commitment"] for d in decisions} <= {n for found in numbers.values() for n in found}
