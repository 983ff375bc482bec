"""Peppol Orders and Despatch Advices over HTTP, on the embedded default (SQLite) and on
PostgreSQL: every Order of the corpus becomes an order commitment of its buyer (``POST
/v1/orders``), refused when the buyer is not the key's institution, invalid, not an Order, or from
a supplier nobody registered; every Despatch Advice of the corpus is stored against its order's
lines as expected deliveries (``POST /v1/despatch-advices``) and becomes a receipt only when the
institution confirms it, whole or with what arrived (``POST /v1/despatch-advices/{id}/confirm``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from einvoice.api import create_app
from einvoice.parsers.despatch import parse_despatch_advice_bytes
from einvoice.parsers.order import parse_order_bytes
from einvoice.settings import Settings
from tests.conftest import CORPUS_DIR

pytestmark = pytest.mark.slow

ORDERS = sorted((CORPUS_DIR / "peppol-2026.5" / "Order use cases").glob("*.xml"))
DESPATCH_ADVICES = sorted((CORPUS_DIR / "peppol-2026.5" / "Despatch Advice use cases").glob("*.xml"))
INVOICE = CORPUS_DIR / "peppol-2026.5" / "billing" / "base-example.xml"

#: The buyers of the corpus's Orders and the institution its Despatch Advices are delivered to.
HOSPITAL = "0088:7300010000001"  # UC1, UC2, UC3, UC6
AGENCY = "0007:5541277710"  # UC4, UC5
RECEIVER = "0088:7398000000124"  # every Despatch Advice's cac:DeliveryCustomerParty
#: The Orders' sellers and the Despatch Advices' supplier.
SELLERS = ("0192:987654325", "0088:7300010000001", "0007:5546577791")
DESPATCHER = "0088:7385000000124"
OTHER_SUPPLIER = "0088:7300010000002"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from einvoice.bootstrap import build

    data_dir: Path = tmp_path_factory.mktemp("orders")
    if request.param == "sqlite":
        runtime = build(Settings(data_dir=data_dir))
        yield runtime
        runtime.stop()
        return
    from tests.integration.test_store_postgres import fresh_postgres_database

    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        runtime = build(Settings(data_dir=data_dir, database_url=url), migrate=True)
        yield runtime
        runtime.stop()


@pytest.fixture(scope="module")
def keys(runtime: Any) -> dict[str, str]:
    """API keys of the institutions (``hospital``, ``agency``, ``receiver``) and of the suppliers
    (``despatcher``, ``other_supplier``); the corpus's parties registered unchecked."""
    from einvoice.services import accounts

    uow = runtime.uow_factory
    for name, endpoint in (("City Hospital", HOSPITAL), ("Agency", AGENCY), ("Receiver", RECEIVER)):
        accounts.add_institution(uow(), name=name, endpoint=endpoint, unchecked=True)
    for n, endpoint in enumerate(SELLERS):
        accounts.add_supplier(uow(), name=f"Seller {n}", endpoint=endpoint, unchecked=True)
    _, despatcher = accounts.add_supplier(uow(), name="Despatcher", endpoint=DESPATCHER, unchecked=True)
    _, other_supplier = accounts.add_supplier(uow(), name="Other", endpoint=OTHER_SUPPLIER, unchecked=True)
    found = {"despatcher": despatcher, "other_supplier": other_supplier}
    for name, endpoint in (("hospital", HOSPITAL), ("agency", AGENCY), ("receiver", RECEIVER)):
        found[name] = accounts.new_institution_key(uow(), endpoint)[1]
    return found


@pytest.fixture
def client(runtime: Any, keys: dict[str, str]) -> Iterator[TestClient]:
    """A client over an empty register (the corpus's Orders share numbers: each test starts afresh)."""
    from einvoice.store.tables import (
        CommitmentLineRow,
        CommitmentRow,
        DespatchAdviceLineRow,
        DespatchAdviceRow,
        ReceiptLineRow,
        ReceiptRow,
    )

    yield TestClient(create_app(runtime))
    with runtime.uow_factory() as uow:
        for table in (DespatchAdviceLineRow, DespatchAdviceRow, ReceiptLineRow, ReceiptRow, CommitmentLineRow):
            uow.session.execute(delete(table))
        uow.session.execute(delete(CommitmentRow))
        uow.commit()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def send(client: TestClient, path: str, key: str, xml: bytes) -> httpx.Response:
    return client.post(path, content=xml, headers={**auth(key), "Content-Type": "application/xml"})


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def located(response: httpx.Response) -> list[str]:
    return [str(error["location"]) for error in problem(response, 422)["errors"]]


def buyer_key(keys: dict[str, str], xml: bytes) -> str:
    buyer = parse_order_bytes(xml).buyer
    return keys["hospital"] if buyer == HOSPITAL else keys["agency"]


# --- Orders ----------------------------------------------------------------------------------------


def test_the_corpus_holds_the_samples() -> None:
    assert len(ORDERS) == 6
    assert len(DESPATCH_ADVICES) == 5


@pytest.mark.parametrize("path", ORDERS, ids=lambda p: p.stem)
def test_every_corpus_order_becomes_an_order_commitment(client: TestClient, keys: dict[str, str], path: Path) -> None:
    xml = path.read_bytes()
    order = parse_order_bytes(xml).commitment
    key = buyer_key(keys, xml)

    created = send(client, "/v1/orders", key, xml)
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["Location"] == f"/v1/commitments/{order.number}"
    assert body["number"] == order.number
    assert body["kind"] == "order"
    assert body["currency"] == order.currency
    assert Decimal(body["amount"]) == order.amount
    assert body["supplier"]["endpoint"] == order.supplier.endpoint
    assert body["valid_to"] == order.valid_to.isoformat()
    assert [(x["id"], Decimal(x["quantity"]), x["unit_code"]) for x in body["lines"]] == [
        (x.id, x.quantity, x.unit_code) for x in order.lines
    ]
    assert Decimal(body["remaining"]) == order.amount

    read = client.get(f"/v1/commitments/{order.number}", headers=auth(key))
    assert read.status_code == 200
    assert read.json() == body

    again = send(client, "/v1/orders", key, xml)
    assert again.status_code == 200, again.text
    assert again.json() == body


def test_an_order_of_the_corpus_reads_as_the_buyer_wrote_it(client: TestClient, keys: dict[str, str]) -> None:
    uc1 = ORDERS[0].read_bytes()
    body = send(client, "/v1/orders", keys["hospital"], uc1).json()
    assert body["amount"] == "143.75"  # cac:AnticipatedMonetaryTotal/cbc:PayableAmount, VAT included
    first = body["lines"][0]
    assert (first["quantity"], first["unit_code"], first["unit_price"]) == ("10", "NAR", "4")
    assert (first["seller_item_id"], first["standard_item_id"]) == ("SN-33", "0160:05704066204093")
    assert (first["vat_category"], first["vat_rate"], first["account"]) == ("S", "25", "MAFO-1")
    assert first["description"] == "Brown sauce"


def test_the_price_is_per_unit_over_the_base_quantity(client: TestClient, keys: dict[str, str]) -> None:
    uc1 = ORDERS[0].read_bytes()
    price = b'<cbc:PriceAmount currencyID="EUR">4</cbc:PriceAmount>'
    assert uc1.count(price) == 1
    per_ten = uc1.replace(  # 40 for 10 pieces: 4 a piece, as before
        price,
        b'<cbc:PriceAmount currencyID="EUR">40</cbc:PriceAmount><cbc:BaseQuantity unitCode="NAR">10</cbc:BaseQuantity>',
    )
    created = send(client, "/v1/orders", keys["hospital"], per_ten)
    assert created.status_code == 201, created.text
    assert Decimal(created.json()["lines"][0]["unit_price"]) == Decimal("4")


def test_the_orders_buyer_must_be_the_keys_institution(client: TestClient, keys: dict[str, str]) -> None:
    uc4 = (CORPUS_DIR / "peppol-2026.5" / "Order use cases" / "UC4_Order.xml").read_bytes()  # buyer AGENCY
    body = problem(send(client, "/v1/orders", keys["hospital"], uc4), 403)
    assert AGENCY in body["detail"]
    assert client.get("/v1/commitments/5", headers=auth(keys["hospital"])).status_code == 404
    assert client.get("/v1/commitments/5", headers=auth(keys["agency"])).status_code == 404


def test_orders_need_an_institution_key(client: TestClient, keys: dict[str, str]) -> None:
    xml = ORDERS[0].read_bytes()
    problem(client.post("/v1/orders", content=xml, headers={"Content-Type": "application/xml"}), 401)
    problem(send(client, "/v1/orders", keys["despatcher"], xml), 401)


def test_an_invalid_order_is_refused_with_its_findings(client: TestClient, keys: dict[str, str]) -> None:
    xml = re.sub(rb"\s*<cbc:IssueDate>[^<]*</cbc:IssueDate>", b"", ORDERS[0].read_bytes())
    body = problem(send(client, "/v1/orders", keys["hospital"], xml), 422)
    rules = {finding["rule"] for finding in body["findings"]}
    assert "PEPPOL-T01-B00104" in rules  # cbc:IssueDate MUST be provided (PEPPOLBIS-T01.xslt)
    assert any(finding["layer"] == "xsd" for finding in body["findings"])
    assert client.get("/v1/commitments/1", headers=auth(keys["hospital"])).status_code == 404


def test_an_invoice_is_not_an_order(client: TestClient, keys: dict[str, str]) -> None:
    body = problem(send(client, "/v1/orders", keys["hospital"], INVOICE.read_bytes()), 422)
    assert "Order" in body["detail"]


def test_an_order_from_a_supplier_nobody_registered_names_the_supplier(
    client: TestClient, keys: dict[str, str]
) -> None:
    xml = ORDERS[0].read_bytes().replace(b"987654325", b"987654317")  # another valid organisation number
    assert located(send(client, "/v1/orders", keys["hospital"], xml)) == ["order.supplier"]


def test_the_same_order_number_with_other_content_is_a_conflict(client: TestClient, keys: dict[str, str]) -> None:
    uc1, uc2 = ORDERS[0].read_bytes(), ORDERS[1].read_bytes()  # both number 1, buyer HOSPITAL
    assert send(client, "/v1/orders", keys["hospital"], uc1).status_code == 201
    problem(send(client, "/v1/orders", keys["hospital"], uc2), 409)


# --- Despatch Advices ------------------------------------------------------------------------------


def register_order_4321(client: TestClient, keys: dict[str, str], *, quantity: str = "1000") -> None:
    """The order the corpus's Despatch Advices ship against: 4321 of RECEIVER with DESPATCHER."""
    body = {
        "number": "4321",
        "kind": "order",
        "supplier": {"endpoint": DESPATCHER},
        "currency": "SEK",
        "receipt_required": True,
        "lines": [
            {"id": str(n), "quantity": quantity, "unit_price": "1.00", "vat_category": "S", "vat_rate": "25"}
            for n in range(1, 6)
        ],
    }
    created = client.post("/v1/commitments", json=body, headers=auth(keys["receiver"]))
    assert created.status_code == 201, created.text


def received(client: TestClient, keys: dict[str, str]) -> dict[str, Decimal]:
    order = client.get("/v1/commitments/4321", headers=auth(keys["receiver"])).json()
    return {line["id"]: Decimal(line["received"]) for line in order["lines"] if Decimal(line["received"])}


@pytest.mark.parametrize("path", DESPATCH_ADVICES, ids=lambda p: p.stem)
def test_every_corpus_despatch_advice_is_expected_until_confirmed_whole(
    client: TestClient, keys: dict[str, str], path: Path
) -> None:
    register_order_4321(client, keys)
    xml = path.read_bytes()
    advice = parse_despatch_advice_bytes(xml)

    sent = send(client, "/v1/despatch-advices", keys["despatcher"], xml)
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert sent.headers["Location"] == f"/v1/despatch-advices/{body['id']}"
    assert (body["number"], body["order"], body["status"]) == (advice.number, "4321", "advised")
    assert {x["line"]: Decimal(x["quantity"]) for x in body["expected"]} == advice.expected()
    assert [x["line"] for x in body["lines"]] == [x.id for x in advice.lines]
    assert received(client, keys) == {}  # shipped is not arrived

    listed = client.get("/v1/despatch-advices?status=advised", headers=auth(keys["receiver"])).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]

    confirmed = client.post(f"/v1/despatch-advices/{body['id']}/confirm", headers=auth(keys["receiver"]))
    assert confirmed.status_code == 200, confirmed.text
    result = confirmed.json()
    assert result["despatch_advice"]["status"] == "confirmed"
    assert result["receipt"]["reference"] == f"DESADV-{advice.number}"
    assert received(client, keys) == {k: v for k, v in advice.expected().items() if v}
    assert {x["id"]: Decimal(x["received"]) for x in result["commitment"]["lines"] if Decimal(x["received"])} == (
        received(client, keys)
    )

    read = client.get(f"/v1/despatch-advices/{body['id']}", headers=auth(keys["receiver"])).json()
    assert (read["status"], read["receipt_reference"]) == ("confirmed", f"DESADV-{advice.number}")
    again = client.post(f"/v1/despatch-advices/{body['id']}/confirm", headers=auth(keys["receiver"]))
    problem(again, 409)
    assert received(client, keys) == {k: v for k, v in advice.expected().items() if v}


def sent_uc1(client: TestClient, keys: dict[str, str]) -> str:
    register_order_4321(client, keys)
    sent = send(client, "/v1/despatch-advices", keys["despatcher"], DESPATCH_ADVICES[0].read_bytes())
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


def test_a_confirmation_records_the_quantities_that_arrived(client: TestClient, keys: dict[str, str]) -> None:
    advice_id = sent_uc1(client, keys)  # ships 10 on line 1 and 10 on line 2
    confirmed = client.post(
        f"/v1/despatch-advices/{advice_id}/confirm",
        json={"lines": [{"line": "1", "quantity": "4"}]},
        headers=auth(keys["receiver"]),
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["receipt"]["lines"] == [{"line": "1", "quantity": "4"}]
    assert received(client, keys) == {"1": Decimal("4")}


def test_an_empty_object_confirms_the_whole_advice(client: TestClient, keys: dict[str, str]) -> None:
    advice_id = sent_uc1(client, keys)
    confirmed = client.post(f"/v1/despatch-advices/{advice_id}/confirm", json={}, headers=auth(keys["receiver"]))
    assert confirmed.status_code == 200, confirmed.text
    assert received(client, keys) == {"1": Decimal("10"), "2": Decimal("10")}


@pytest.mark.parametrize(
    ("lines", "location"),
    [
        ([{"line": "1", "quantity": "10.001"}], "body.lines.0.quantity"),  # more than was shipped
        ([{"line": "3", "quantity": "1"}], "body.lines.0.line"),  # nothing shipped on line 3
        ([{"line": "1", "quantity": "1"}, {"line": "1", "quantity": "1"}], "body.lines.1.line"),
        ([{"line": "1", "quantity": "0"}], "body.lines.0.quantity"),
        ([{"line": "1", "quantity": 4}], "body.lines.0.quantity"),  # a JSON number
    ],
)
def test_a_confirmation_the_advice_does_not_support_is_refused_naming_the_field(
    client: TestClient, keys: dict[str, str], lines: list[dict[str, Any]], location: str
) -> None:
    advice_id = sent_uc1(client, keys)
    refused = client.post(
        f"/v1/despatch-advices/{advice_id}/confirm", json={"lines": lines}, headers=auth(keys["receiver"])
    )
    assert location in located(refused)
    assert received(client, keys) == {}
    assert client.get(f"/v1/despatch-advices/{advice_id}", headers=auth(keys["receiver"])).json()["status"] == (
        "advised"
    )


def test_another_institution_neither_sees_nor_confirms_an_advice(client: TestClient, keys: dict[str, str]) -> None:
    advice_id = sent_uc1(client, keys)
    problem(client.get(f"/v1/despatch-advices/{advice_id}", headers=auth(keys["hospital"])), 404)
    problem(client.post(f"/v1/despatch-advices/{advice_id}/confirm", headers=auth(keys["hospital"])), 404)
    assert client.get("/v1/despatch-advices", headers=auth(keys["hospital"])).json()["count"] == 0
    problem(client.post(f"/v1/despatch-advices/{advice_id}/confirm", headers=auth(keys["despatcher"])), 401)
    assert received(client, keys) == {}


def test_a_despatch_advice_needs_the_key_of_its_supplier(client: TestClient, keys: dict[str, str]) -> None:
    register_order_4321(client, keys)
    xml = DESPATCH_ADVICES[0].read_bytes()
    problem(send(client, "/v1/despatch-advices", keys["receiver"], xml), 401)
    problem(send(client, "/v1/despatch-advices", keys["other_supplier"], xml), 403)


def test_a_despatch_advice_for_an_order_not_registered_names_the_order(
    client: TestClient, keys: dict[str, str]
) -> None:
    xml = DESPATCH_ADVICES[0].read_bytes()
    assert located(send(client, "/v1/despatch-advices", keys["despatcher"], xml)) == ["cac:OrderReference/cbc:ID"]


def test_a_despatch_line_not_on_the_order_is_named(client: TestClient, keys: dict[str, str]) -> None:
    body = {
        "number": "4321",
        "kind": "order",
        "supplier": {"endpoint": DESPATCHER},
        "currency": "SEK",
        "lines": [{"id": "1", "quantity": "100", "unit_price": "1.00"}],
    }
    assert client.post("/v1/commitments", json=body, headers=auth(keys["receiver"])).status_code == 201
    xml = DESPATCH_ADVICES[0].read_bytes()  # ships on lines 1 and 2
    assert located(send(client, "/v1/despatch-advices", keys["despatcher"], xml)) == [
        "cac:DespatchLine[2]/cac:OrderLineReference/cbc:LineID"
    ]


def test_the_same_advice_again_changes_nothing_and_other_content_is_a_conflict(
    client: TestClient, keys: dict[str, str]
) -> None:
    advice_id = sent_uc1(client, keys)
    xml = DESPATCH_ADVICES[0].read_bytes()
    again = send(client, "/v1/despatch-advices", keys["despatcher"], xml)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == advice_id
    changed = xml.replace(
        b'<cbc:DeliveredQuantity unitCode="EA">10</cbc:DeliveredQuantity>',
        b'<cbc:DeliveredQuantity unitCode="EA">9</cbc:DeliveredQuantity>',
        1,
    )
    assert changed != xml
    problem(send(client, "/v1/despatch-advices", keys["despatcher"], changed), 409)


def test_an_order_is_not_a_despatch_advice(client: TestClient, keys: dict[str, str]) -> None:
    body = problem(send(client, "/v1/despatch-advices", keys["despatcher"], ORDERS[0].read_bytes()), 422)
    assert "Despatch Advice" in body["detail"]
