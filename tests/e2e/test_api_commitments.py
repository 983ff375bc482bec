"""The commitments register over HTTP (``/v1/commitments``), on the embedded default (SQLite) and on
PostgreSQL: institution keys, registration with its defaults, repeats and conflicts, bad input
named by field, one institution's commitments out of another's reach, changes, receipts."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from einvoice.domain.commitments import Tolerances
from einvoice.services.commitments import COMMITMENT_EXAMPLE
from einvoice.settings import Settings
from tests.e2e.documents import commitment

pytestmark = pytest.mark.slow

SUPPLIER_ENDPOINT = "0088:7300010000001"
SUPPLIER_VAT = "LV40003000000"
OTHER_SUPPLIER_ENDPOINT = "0088:7300010000002"
INSTITUTION = "0192:987654325"
OTHER_INSTITUTION = "0192:987654326"
THIRD_INSTITUTION = "0192:987654327"

#: The API description's example commitment (its supplier: ``SUPPLIER_ENDPOINT``, ``SUPPLIER_VAT``).
EXAMPLE = commitment(COMMITMENT_EXAMPLE["number"])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from einvoice.bootstrap import build

    data_dir: Path = tmp_path_factory.mktemp("commitments")
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
    """API keys: ``institution`` and ``other`` (two institutions), ``supplier`` (a supplier's)."""
    from einvoice.services import accounts, commitments

    uow = runtime.uow_factory
    for name, endpoint in (("Ministry", INSTITUTION), ("Agency", OTHER_INSTITUTION), ("Office", THIRD_INSTITUTION)):
        accounts.add_institution(uow(), name=name, endpoint=endpoint, unchecked=True)
    _, supplier = accounts.add_supplier(
        uow(), name="Paper SIA", endpoint=SUPPLIER_ENDPOINT, vat=SUPPLIER_VAT, legal_id="40003000000", unchecked=True
    )
    accounts.add_supplier(uow(), name="Other SIA", endpoint=OTHER_SUPPLIER_ENDPOINT, unchecked=True)
    _, institution = accounts.new_institution_key(uow(), INSTITUTION)
    _, other = accounts.new_institution_key(uow(), OTHER_INSTITUTION)
    _, third = accounts.new_institution_key(uow(), THIRD_INSTITUTION)
    third_id = accounts.institution_by_endpoint(uow(), THIRD_INSTITUTION).id
    commitments.set_default_tolerances(
        uow(), institution_id=third_id, tolerances=Tolerances(quantity_percent=Decimal("5"))
    )
    return {"institution": institution, "other": other, "third": third, "supplier": supplier}


@pytest.fixture(scope="module")
def client(runtime: Any) -> TestClient:
    return TestClient(create_app(runtime))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(client: TestClient, key: str, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/commitments", json=body, headers=auth(key))


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def field_named(response: httpx.Response) -> str:
    body = problem(response, 422)
    locations = [error["location"] for error in body["errors"]]
    assert len(locations) == 1, body
    return str(locations[0])


def test_a_commitment_is_registered_and_read_back_with_its_figures(client: TestClient, keys: dict[str, str]) -> None:
    created = post(client, keys["institution"], EXAMPLE)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/commitments/PO-2026-0042"
    body = created.json()
    for name in ("number", "kind", "currency", "valid_from", "valid_to", "budget", "account", "amount", "tolerances"):
        assert body[name] == EXAMPLE[name], name
    assert body["supplier"]["endpoint"] == SUPPLIER_ENDPOINT
    assert (body["status"], body["reserved"], body["consumed"], body["remaining"]) == (
        "open",
        "0.00",
        "0.00",
        "5000.00",
    )
    line = body["lines"][0]
    assert {k: line[k] for k in EXAMPLE["lines"][0]} == EXAMPLE["lines"][0]
    assert (line["ordered"], line["received"], line["invoiced"]) == ("100", "0", "0")
    read = client.get("/v1/commitments/PO-2026-0042", headers=auth(keys["institution"]))
    assert read.status_code == 200
    assert read.json() == body


def test_the_same_number_again_is_200_with_the_same_content_and_409_with_other(
    client: TestClient, keys: dict[str, str]
) -> None:
    first = post(client, keys["institution"], commitment("PO-REPEAT"))
    assert first.status_code == 201
    same = commitment("PO-REPEAT")
    same["lines"][0]["unit_price"] = "3.5"  # the same value, written otherwise
    again = post(client, keys["institution"], same)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    other = post(client, keys["institution"], commitment("PO-REPEAT", amount="6000.00"))
    assert problem(other, 409)["type"] == "urn:einvoice:problem:commitment-conflict"


def test_the_amount_defaults_to_the_lines_with_their_vat(client: TestClient, keys: dict[str, str]) -> None:
    lines = [
        {"id": "1", "quantity": "100", "unit_price": "3.50", "vat_category": "S", "vat_rate": "21"},
        {"id": "2", "quantity": "3", "unit_price": "0.335", "vat_category": "S", "vat_rate": "21"},
        {"id": "3", "quantity": "2", "unit_price": "10.00", "vat_category": "Z", "vat_rate": "0"},
    ]
    body = commitment("PO-NO-AMOUNT", lines=lines)
    del body["amount"]
    created = post(client, keys["institution"], body)
    assert created.status_code == 201, created.text
    # net 350.00 + 1.01 (1.005 rounded half up) at 21 %: VAT 73.71; 20.00 at 0 %
    assert created.json()["amount"] == "444.72"
    assert created.json()["remaining"] == "444.72"


def test_tolerances_left_out_are_the_institutions_which_default_to_exact(
    client: TestClient, keys: dict[str, str]
) -> None:
    body = commitment("PO-DEFAULTS")
    del body["tolerances"]
    exact = post(client, keys["institution"], body)
    assert exact.status_code == 201, exact.text
    assert set(exact.json()["tolerances"].values()) == {None}
    defaults = post(client, keys["third"], body)
    assert defaults.status_code == 201, defaults.text
    assert defaults.json()["tolerances"]["quantity_percent"] == "5"
    assert defaults.json()["tolerances"]["price_percent"] is None


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda b: b.update(currency="XYZ"), "body.currency"),
        (lambda b: b.update(currency="eur"), "body.currency"),
        (lambda b: b["lines"][0].update(quantity="-1"), "body.lines.0.quantity"),
        (lambda b: b["lines"][0].update(unit_price="-3.50"), "body.lines.0.unit_price"),
        (lambda b: b["lines"].append(dict(b["lines"][0])), "body.lines"),
        (lambda b: b.update(supplier={"endpoint": "0088:7399999999999"}), "body.supplier"),
        (lambda b: b.update(supplier={"vat": "LV99999999999"}), "body.supplier"),
        (lambda b: b.update(supplier={"endpoint": OTHER_SUPPLIER_ENDPOINT, "vat": SUPPLIER_VAT}), "body.supplier"),
        (lambda b: b.update(supplier={}), "body.supplier"),
        (lambda b: b.update(amount=5000.0), "body.amount"),
        (lambda b: b.update(amount="1e3"), "body.amount"),
        (lambda b: b["tolerances"].update(price_percent="-2"), "body.tolerances.price_percent"),
        (lambda b: b["lines"][0].update(vat_category="X"), "body.lines.0.vat_category"),
        (lambda b: b.update(kind="promise"), "body.kind"),
        (lambda b: b.update(valid_to="2025-12-31"), "body.valid_to"),
        (lambda b: b.update(lines=[]), "body.lines"),
        (lambda b: b.update(kind="contract", lines=[], amount=None), "body.amount"),
        (lambda b: b.update(colour="blue"), "body.colour"),
    ],
)
def test_bad_input_is_a_422_problem_naming_the_field(
    client: TestClient, keys: dict[str, str], change: Any, location: str
) -> None:
    body = commitment("PO-BAD")
    change(body)
    if body.get("amount", "") is None:
        del body["amount"]
    assert field_named(post(client, keys["institution"], body)) == location
    assert client.get("/v1/commitments/PO-BAD", headers=auth(keys["institution"])).status_code == 404


def test_a_contract_without_lines_controls_only_its_amount_and_names_its_supplier_by_legal_id(
    client: TestClient, keys: dict[str, str]
) -> None:
    body = commitment("CT-7", kind="contract", lines=[], supplier={"legal_id": "40003000000"}, amount="120000.00")
    created = post(client, keys["institution"], body)
    assert created.status_code == 201, created.text
    assert (created.json()["lines"], created.json()["remaining"]) == ([], "120000.00")


def test_keys_reach_only_their_own_institutions_commitments(client: TestClient, keys: dict[str, str]) -> None:
    assert post(client, keys["institution"], commitment("PO-MINE")).status_code == 201
    assert client.get("/v1/commitments/PO-MINE", headers=auth(keys["other"])).status_code == 404
    assert (
        client.put("/v1/commitments/PO-MINE", json=commitment("PO-MINE"), headers=auth(keys["other"])).status_code
        == 404
    )
    receipt = {"reference": "GRN-1", "received_on": "2026-03-01", "lines": [{"line": "1", "quantity": "1"}]}
    assert client.post("/v1/commitments/PO-MINE/receipts", json=receipt, headers=auth(keys["other"])).status_code == 404
    listed = client.get("/v1/commitments", headers=auth(keys["other"])).json()
    assert "PO-MINE" not in [c["number"] for c in listed["items"]]
    # the other institution may use the same number for a commitment of its own
    assert post(client, keys["other"], commitment("PO-MINE", amount="1.00")).status_code == 201
    assert client.get("/v1/commitments/PO-MINE", headers=auth(keys["institution"])).json()["amount"] == "5000.00"


@pytest.mark.parametrize("key", ["", "eik_unknown", "supplier"])
def test_without_an_institution_key_the_answer_is_401(client: TestClient, keys: dict[str, str], key: str) -> None:
    headers = auth(keys.get(key, key)) if key else {}
    problem(client.post("/v1/commitments", json=EXAMPLE, headers=headers), 401)
    problem(client.get("/v1/commitments", headers=headers), 401)


def test_list_filters_by_supplier_and_status(client: TestClient, keys: dict[str, str]) -> None:
    key = keys["other"]
    assert post(client, key, commitment("L-1")).status_code == 201
    assert post(client, key, commitment("L-2", status="closed")).status_code == 201
    other = commitment("L-3", supplier={"endpoint": OTHER_SUPPLIER_ENDPOINT})
    assert post(client, key, other).status_code == 201

    def numbers(query: str) -> list[str]:
        response = client.get("/v1/commitments" + query, headers=auth(key))
        assert response.status_code == 200, response.text
        assert response.json()["count"] == len(response.json()["items"])
        return [c["number"] for c in response.json()["items"] if c["number"].startswith("L-")]

    assert numbers("") == ["L-1", "L-2", "L-3"]
    assert numbers(f"?supplier={SUPPLIER_VAT}") == ["L-1", "L-2"]
    assert numbers(f"?supplier={OTHER_SUPPLIER_ENDPOINT}") == ["L-3"]
    assert numbers(f"?supplier={SUPPLIER_ENDPOINT}&status=closed") == ["L-2"]
    assert numbers("?supplier=LV00000000000") == []
    assert field_named(client.get("/v1/commitments?status=done", headers=auth(key))) == "query.status"


def test_put_changes_a_commitment_and_keeps_what_receipts_hold(client: TestClient, keys: dict[str, str]) -> None:
    key = keys["institution"]
    assert post(client, key, commitment("PO-CHANGE")).status_code == 201
    receipt = {"reference": "GRN-C", "received_on": "2026-03-01", "lines": [{"line": "1", "quantity": "40"}]}
    assert client.post("/v1/commitments/PO-CHANGE/receipts", json=receipt, headers=auth(key)).status_code == 201

    changed = commitment("PO-CHANGE", amount="6000.00")
    changed["lines"][0]["quantity"] = "120"
    changed["lines"].append({"id": "2", "quantity": "5", "unit_price": "20.00", "vat_category": "S", "vat_rate": "21"})
    answer = client.put("/v1/commitments/PO-CHANGE", json=changed, headers=auth(key))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["amount"], body["remaining"]) == ("6000.00", "6000.00")
    assert [(x["id"], x["ordered"], x["received"]) for x in body["lines"]] == [("1", "120", "40"), ("2", "5", "0")]
    assert client.get("/v1/commitments/PO-CHANGE", headers=auth(key)).json() == body

    without_line_1 = commitment("PO-CHANGE", lines=changed["lines"][1:])
    problem(client.put("/v1/commitments/PO-CHANGE", json=without_line_1, headers=auth(key)), 409)
    assert field_named(client.put("/v1/commitments/PO-OTHER", json=changed, headers=auth(key))) == "body.number"
    problem(client.put("/v1/commitments/PO-NONE", json=commitment("PO-NONE"), headers=auth(key)), 404)


def test_receipts_add_to_what_lines_received_once(client: TestClient, keys: dict[str, str]) -> None:
    key = keys["institution"]
    body = commitment("PO-GRN")
    body["lines"].append({"id": "2", "quantity": "10", "unit_price": "1.00"})
    assert post(client, key, body).status_code == 201
    receipt = {"reference": "GRN-17", "received_on": "2026-03-01", "lines": [{"line": "1", "quantity": "40"}]}
    first = client.post("/v1/commitments/PO-GRN/receipts", json=receipt, headers=auth(key))
    assert first.status_code == 201, first.text
    assert first.json()["reference"] == "GRN-17"
    assert first.json()["lines"] == [{"line": "1", "quantity": "40"}]
    assert [x["received"] for x in first.json()["commitment"]["lines"]] == ["40", "0"]
    again = client.post("/v1/commitments/PO-GRN/receipts", json=receipt, headers=auth(key))
    assert again.status_code == 200
    assert [x["received"] for x in again.json()["commitment"]["lines"]] == ["40", "0"]
    second = {"reference": "GRN-18", "received_on": "2026-03-02", "lines": [{"line": "1", "quantity": "2.5"}]}
    assert client.post("/v1/commitments/PO-GRN/receipts", json=second, headers=auth(key)).status_code == 201
    read = client.get("/v1/commitments/PO-GRN", headers=auth(key)).json()
    assert [x["received"] for x in read["lines"]] == ["42.5", "0"]

    other = {**receipt, "lines": [{"line": "1", "quantity": "41"}]}
    problem(client.post("/v1/commitments/PO-GRN/receipts", json=other, headers=auth(key)), 409)
    unknown_line = {"reference": "GRN-19", "received_on": "2026-03-02", "lines": [{"line": "9", "quantity": "1"}]}
    assert field_named(client.post("/v1/commitments/PO-GRN/receipts", json=unknown_line, headers=auth(key))) == (
        "body.lines.0.line"
    )
    negative = {"reference": "GRN-20", "received_on": "2026-03-02", "lines": [{"line": "1", "quantity": "-1"}]}
    assert field_named(client.post("/v1/commitments/PO-GRN/receipts", json=negative, headers=auth(key))) == (
        "body.lines.0.quantity"
    )
    assert client.get("/v1/commitments/PO-GRN", headers=auth(keys["institution"])).json() == read


def test_numbers_with_slashes_are_addressed_as_they_are(client: TestClient, keys: dict[str, str]) -> None:
    created = post(client, keys["institution"], commitment("PO/2026/7"))
    assert created.status_code == 201
    assert client.get(created.headers["location"], headers=auth(keys["institution"])).json()["number"] == "PO/2026/7"
    receipt = {"reference": "G/1", "received_on": "2026-03-02", "lines": [{"line": "1", "quantity": "1"}]}
    assert (
        client.post("/v1/commitments/PO/2026/7/receipts", json=receipt, headers=auth(keys["institution"])).status_code
        == 201
    )
