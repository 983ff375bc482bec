"""Every Peppol Order and Despatch Advice of the corpus parses, and the parse agrees with a second,
independent reading of the same document by plain XPath: the number, the parties' endpoints, and
each line's id, quantity, unit, price and order line. The Orders' totals agree with their lines: the
amount (``cac:AnticipatedMonetaryTotal/cbc:PayableAmount``) is the lines' net amounts plus the
document's ``cac:TaxTotal``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from einvoice.parsers.despatch import parse_despatch_advice_bytes
from einvoice.parsers.order import parse_order_bytes
from tests.conftest import CORPUS_DIR

ORDERS = sorted((CORPUS_DIR / "peppol-2026.5" / "Order use cases").glob("*.xml"))
DESPATCH_ADVICES = sorted((CORPUS_DIR / "peppol-2026.5" / "Despatch Advice use cases").glob("*.xml"))
NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}


def xpath(element: etree._Element, path: str) -> list[etree._Element]:
    found = element.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    return [e for e in found if isinstance(e, etree._Element)]


def one(element: etree._Element, path: str) -> str:
    (found,) = xpath(element, path)
    return (found.text or "").strip()


def endpoint(element: etree._Element, party: str) -> str:
    (found,) = xpath(element, f"cac:{party}/cac:Party/cbc:EndpointID")
    return f"{found.get('schemeID')}:{(found.text or '').strip()}"


def test_the_corpus_holds_the_samples() -> None:
    assert len(ORDERS) == 6
    assert len(DESPATCH_ADVICES) == 5


@pytest.mark.parametrize("path", ORDERS, ids=lambda p: p.stem)
def test_every_corpus_order_parses_as_xpath_reads_it(path: Path) -> None:
    data = path.read_bytes()
    root = etree.fromstring(data)
    parsed = parse_order_bytes(data)
    commitment = parsed.commitment
    assert commitment.number == one(root, "cbc:ID")
    assert commitment.currency == one(root, "cbc:DocumentCurrencyCode")
    assert parsed.buyer == endpoint(root, "BuyerCustomerParty")
    assert commitment.supplier.endpoint == endpoint(root, "SellerSupplierParty")
    items = xpath(root, "cac:OrderLine/cac:LineItem")
    assert len(commitment.lines) == len(items) > 0
    net = Decimal(0)
    for line, item in zip(commitment.lines, items, strict=True):
        assert line.id == one(item, "cbc:ID")
        assert line.quantity == Decimal(one(item, "cbc:Quantity"))
        assert line.unit_code == xpath(item, "cbc:Quantity")[0].get("unitCode")
        base = xpath(item, "cac:Price/cbc:BaseQuantity")
        price = Decimal(one(item, "cac:Price/cbc:PriceAmount"))
        assert line.unit_price == (price / Decimal(base[0].text or "1") if base else price)
        net += Decimal(one(item, "cbc:LineExtensionAmount"))
    tax = Decimal(one(root, "cac:TaxTotal/cbc:TaxAmount")) if xpath(root, "cac:TaxTotal") else Decimal(0)
    assert commitment.amount == Decimal(one(root, "cac:AnticipatedMonetaryTotal/cbc:PayableAmount"))
    assert commitment.amount == net + tax


@pytest.mark.parametrize("path", DESPATCH_ADVICES, ids=lambda p: p.stem)
def test_every_corpus_despatch_advice_parses_as_xpath_reads_it(path: Path) -> None:
    data = path.read_bytes()
    root = etree.fromstring(data)
    advice = parse_despatch_advice_bytes(data)
    assert advice.number == one(root, "cbc:ID")
    assert advice.order == one(root, "cac:OrderReference/cbc:ID")
    assert advice.supplier_endpoint == endpoint(root, "DespatchSupplierParty")
    assert advice.customer_endpoint == endpoint(root, "DeliveryCustomerParty")
    lines = xpath(root, "cac:DespatchLine")
    assert len(advice.lines) == len(lines) > 0
    expected: dict[str, Decimal] = {}
    for line, element in zip(advice.lines, lines, strict=True):
        assert line.id == one(element, "cbc:ID")
        assert line.order_line == one(element, "cac:OrderLineReference/cbc:LineID")
        assert line.quantity == Decimal(one(element, "cbc:DeliveredQuantity"))
        expected[line.order_line] = expected.get(line.order_line, Decimal(0)) + line.quantity
    assert advice.expected() == expected
