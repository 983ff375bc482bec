"""Peppol Order (T01) and Despatch Advice (T16) -> domain, on small hand-written documents."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from einvoice.domain.commitments import CommitmentKind, DespatchStatus
from einvoice.errors import UblParseError, UnsupportedDocumentError
from einvoice.parsers.despatch import parse_despatch_advice_bytes
from einvoice.parsers.order import parse_order_bytes

NS = (
    'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
    'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"'
)

ORDER_LINE = """
  <cac:OrderLine><cac:LineItem>
    <cbc:ID>{id}</cbc:ID>
    <cbc:Quantity unitCode="{unit}">{quantity}</cbc:Quantity>
    {amount}
    {price}
    <cac:Item>
      <cbc:Name>{name}</cbc:Name>
      <cac:SellersItemIdentification><cbc:ID>SKU-{id}</cbc:ID></cac:SellersItemIdentification>
      <cac:StandardItemIdentification>
        <cbc:ID schemeID="0160">0570406620409{id}</cbc:ID></cac:StandardItemIdentification>
      <cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>21</cbc:Percent>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
    </cac:Item>
  </cac:LineItem></cac:OrderLine>"""


def order_line(
    line_id: str = "1",
    quantity: str = "10",
    *,
    unit: str = "C62",
    price: str | None = "3.50",
    base: str | None = None,
    amount: str | None = None,
    name: str = "Printer paper A4",
) -> str:
    price_xml = ""
    if price is not None:
        base_xml = f'<cbc:BaseQuantity unitCode="{unit}">{base}</cbc:BaseQuantity>' if base else ""
        price_xml = f'<cac:Price><cbc:PriceAmount currencyID="EUR">{price}</cbc:PriceAmount>{base_xml}</cac:Price>'
    amount_xml = f'<cbc:LineExtensionAmount currencyID="EUR">{amount}</cbc:LineExtensionAmount>' if amount else ""
    return ORDER_LINE.format(id=line_id, unit=unit, quantity=quantity, amount=amount_xml, price=price_xml, name=name)


def order(*lines: str, payable: str | None = "42.35", extra: str = "", root: str = "Order") -> bytes:
    total = (
        f'<cac:AnticipatedMonetaryTotal><cbc:PayableAmount currencyID="EUR">{payable}</cbc:PayableAmount>'
        "</cac:AnticipatedMonetaryTotal>"
        if payable
        else ""
    )
    return f"""<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2" {NS}>
  <cbc:CustomizationID>urn:fdc:peppol.eu:poacc:trns:order:3</cbc:CustomizationID>
  <cbc:ID>PO-2026-0042</cbc:ID>
  <cbc:IssueDate>2026-03-01</cbc:IssueDate>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:AccountingCost>2239</cbc:AccountingCost>
  <cac:ValidityPeriod><cbc:StartDate>2026-03-01</cbc:StartDate><cbc:EndDate>2026-12-31</cbc:EndDate></cac:ValidityPeriod>
  <cac:BuyerCustomerParty><cac:Party>
    <cbc:EndpointID schemeID="0192">987654325</cbc:EndpointID>
  </cac:Party></cac:BuyerCustomerParty>
  <cac:SellerSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="0088">7300010000001</cbc:EndpointID>
    <cac:PartyTaxScheme><cbc:CompanyID>LV40003000000</cbc:CompanyID>
      <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>Paper SIA</cbc:RegistrationName>
      <cbc:CompanyID>40003000000</cbc:CompanyID></cac:PartyLegalEntity>
  </cac:Party></cac:SellerSupplierParty>
  {extra}{total}{"".join(lines)}
</{root}>""".encode()


def test_an_order_reads_as_its_commitment() -> None:
    parsed = parse_order_bytes(order(order_line()))
    commitment = parsed.commitment
    assert parsed.buyer == "0192:987654325"
    assert (commitment.number, commitment.kind, commitment.currency) == ("PO-2026-0042", CommitmentKind.ORDER, "EUR")
    assert commitment.amount == Decimal("42.35")
    assert (commitment.valid_from, commitment.valid_to) == (date(2026, 3, 1), date(2026, 12, 31))
    assert commitment.account == "2239"
    assert commitment.supplier.endpoint == "0088:7300010000001"
    assert (commitment.supplier.vat, commitment.supplier.legal_id) == ("LV40003000000", "40003000000")
    assert (commitment.institution_id, commitment.supplier_id) == ("", "")  # the register resolves them
    (line,) = commitment.lines
    assert (line.id, line.quantity, line.unit_code, line.unit_price) == ("1", Decimal(10), "C62", Decimal("3.50"))
    assert (line.description, line.seller_item_id, line.standard_item_id) == (
        "Printer paper A4",
        "SKU-1",
        "0160:05704066204091",
    )
    assert (line.vat_category, line.vat_rate) == ("S", Decimal(21))


def test_the_price_is_per_unit_over_its_base_quantity() -> None:
    (line,) = parse_order_bytes(order(order_line(price="35.00", base="10"))).commitment.lines
    assert line.unit_price == Decimal("3.5")


def test_a_line_without_a_price_takes_its_amount_over_its_quantity() -> None:
    (line,) = parse_order_bytes(order(order_line(price=None, amount="35.00"))).commitment.lines
    assert line.unit_price == Decimal("3.5")


def test_a_line_with_neither_price_nor_amount_is_refused_with_its_line() -> None:
    with pytest.raises(UblParseError) as caught:
        parse_order_bytes(order(order_line(price=None)))
    assert caught.value.element == "LineItem"
    assert caught.value.line is not None


def test_without_a_payable_amount_the_amount_is_the_lines_with_their_vat() -> None:
    parsed = parse_order_bytes(order(order_line(quantity="10", price="3.50"), payable=None))
    assert parsed.commitment.amount == Decimal("42.35")  # 35.00 + 21% VAT


def test_lines_keep_their_order() -> None:
    lines = parse_order_bytes(order(order_line("2"), order_line("1"), order_line("10"))).commitment.lines
    assert [line.id for line in lines] == ["2", "1", "10"]


@pytest.mark.parametrize("quantity", ["1e3", "ten", "1,5", ""])
def test_a_quantity_outside_xs_decimal_is_refused(quantity: str) -> None:
    with pytest.raises(UblParseError):
        parse_order_bytes(order(order_line(quantity=quantity)))


def test_an_invoice_is_not_an_order() -> None:
    with pytest.raises(UnsupportedDocumentError):
        parse_order_bytes(order(order_line(), root="Invoice"))


# --- Despatch Advice -------------------------------------------------------------------------------


def despatch_line(line_id: str, order_line_id: str | None, quantity: str, *, order_ref: str | None = None) -> str:
    reference = f"<cac:OrderReference><cbc:ID>{order_ref}</cbc:ID></cac:OrderReference>" if order_ref else ""
    line_ref = f"<cbc:LineID>{order_line_id}</cbc:LineID>" if order_line_id is not None else ""
    return f"""
  <cac:DespatchLine>
    <cbc:ID>{line_id}</cbc:ID>
    <cbc:DeliveredQuantity unitCode="KGM">{quantity}</cbc:DeliveredQuantity>
    <cac:OrderLineReference>{line_ref}{reference}</cac:OrderLineReference>
    <cac:Item><cbc:Name>Apples</cbc:Name>
      <cac:SellersItemIdentification><cbc:ID>A-{line_id}</cbc:ID></cac:SellersItemIdentification></cac:Item>
  </cac:DespatchLine>"""


def despatch_advice(*lines: str, root: str = "DespatchAdvice") -> bytes:
    return f"""<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2" {NS}>
  <cbc:CustomizationID>urn:fdc:peppol.eu:poacc:trns:despatch_advice:3</cbc:CustomizationID>
  <cbc:ID>DA-17</cbc:ID>
  <cbc:IssueDate>2026-03-02</cbc:IssueDate>
  <cac:OrderReference><cbc:ID>PO-2026-0042</cbc:ID></cac:OrderReference>
  <cac:DespatchSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="0088">7300010000001</cbc:EndpointID></cac:Party></cac:DespatchSupplierParty>
  <cac:DeliveryCustomerParty><cac:Party>
    <cbc:EndpointID schemeID="0192">987654325</cbc:EndpointID></cac:Party></cac:DeliveryCustomerParty>
  {"".join(lines)}
</{root}>""".encode()


def test_a_despatch_advice_reads_with_its_lines_and_expected_deliveries() -> None:
    advice = parse_despatch_advice_bytes(
        despatch_advice(
            despatch_line("1", "1", "10", order_ref="PO-2026-0042"),
            despatch_line("3A", "3", "3.0"),
            despatch_line("3B", "3", "0.975"),
        )
    )
    assert (advice.number, advice.order, advice.issue_date) == ("DA-17", "PO-2026-0042", date(2026, 3, 2))
    assert (advice.supplier_endpoint, advice.customer_endpoint) == ("0088:7300010000001", "0192:987654325")
    assert advice.status is DespatchStatus.ADVISED
    assert [(x.id, x.order_line, x.quantity, x.unit_code) for x in advice.lines] == [
        ("1", "1", Decimal(10), "KGM"),
        ("3A", "3", Decimal("3.0"), "KGM"),
        ("3B", "3", Decimal("0.975"), "KGM"),
    ]
    first = advice.lines[0]
    assert (first.order, first.seller_item_id, first.description) == ("PO-2026-0042", "A-1", "Apples")
    assert advice.expected() == {"1": Decimal(10), "3": Decimal("3.975")}


def test_a_despatch_line_without_its_order_line_is_refused() -> None:
    with pytest.raises(UblParseError) as caught:
        parse_despatch_advice_bytes(despatch_advice(despatch_line("1", None, "10")))
    assert caught.value.element == "DespatchLine"


def test_the_same_shipment_is_the_same_content_whatever_the_scale_and_order_of_lines() -> None:
    first = parse_despatch_advice_bytes(despatch_advice(despatch_line("1", "1", "10"), despatch_line("2", "2", "5")))
    second = parse_despatch_advice_bytes(
        despatch_advice(despatch_line("2", "2", "5.00"), despatch_line("1", "1", "10"))
    )
    other = parse_despatch_advice_bytes(despatch_advice(despatch_line("1", "1", "9"), despatch_line("2", "2", "5")))
    assert first.same_content(second)
    assert not first.same_content(other)


def test_an_order_is_not_a_despatch_advice() -> None:
    with pytest.raises(UnsupportedDocumentError):
        parse_despatch_advice_bytes(order(order_line()))
