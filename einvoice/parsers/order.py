"""Peppol BIS Order (T01, UBL 2.1 Order) -> the domain ``Order``: the order commitment it registers.

What is read: the number (``cbc:ID``), the currency, the validity end (``cac:ValidityPeriod``), the
header's ``cbc:AccountingCost``, the amount VAT included (``cac:AnticipatedMonetaryTotal/
cbc:PayableAmount``; the lines with their VAT when absent), the buyer's endpoint
(``cac:BuyerCustomerParty``), the supplier's endpoint, VAT id and legal id
(``cac:SellerSupplierParty``) and each ``cac:OrderLine/cac:LineItem``: id, quantity and unit, net
price per unit (``cbc:PriceAmount`` over ``cbc:BaseQuantity``; without a price, the line amount
over the quantity), item name, seller's and standard item ids, VAT category and rate, accounting
cost. The parser reads what is there and never invents; a number outside ``xs:decimal`` or a date
outside ``xs:date`` raises ``UblParseError``, a root that is not an Order ``UnsupportedDocumentError``.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from lxml import etree

from einvoice.domain.commitments import (
    Commitment,
    CommitmentKind,
    CommitmentLine,
    Order,
    Supplier,
    amount_of_lines,
)
from einvoice.domain.money import DecimalSyntaxError, parse_decimal
from einvoice.errors import UblParseError, UnsupportedDocumentError
from einvoice.parsers import safe_xml
from einvoice.parsers.namespaces import ORDER_TAG, cac, cbc

_XML_SPACE = " \t\r\n"
_XS_DATE = re.compile(r"(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?")


def child(element: etree._Element | None, *tags: str) -> etree._Element | None:
    """The first element down the path ``tags`` of direct children, or None."""
    for tag in tags:
        if element is None:
            return None
        element = element.find(tag)
    return element


def text(element: etree._Element | None, *tags: str) -> str | None:
    """The stripped text at ``tags`` below ``element``; None when absent or empty."""
    found = child(element, *tags)
    if found is None:
        return None
    return (found.text or "").strip(_XML_SPACE) or None


def fail(element: etree._Element, problem: str) -> UblParseError:
    name = etree.QName(element).localname
    line = element.sourceline if isinstance(element.sourceline, int) else None
    return UblParseError(f"{name} (line {line}): {problem}", element=name, line=line)


def decimal(element: etree._Element | None, *tags: str) -> Decimal | None:
    found = child(element, *tags)
    if found is None:
        return None
    try:
        return parse_decimal(found.text or "")
    except DecimalSyntaxError as exc:
        raise fail(found, str(exc)) from None


def xs_date(element: etree._Element | None, *tags: str) -> date | None:
    found = child(element, *tags)
    if found is None:
        return None
    match = _XS_DATE.fullmatch((found.text or "").strip(_XML_SPACE))
    if match is None:
        raise fail(found, f"not a date: {found.text!r}")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise fail(found, f"not a date: {found.text!r} ({exc})") from None


def scheme_id(element: etree._Element | None, *tags: str) -> str | None:
    """``SCHEME:ID`` of an identifier with a ``schemeID`` (an endpoint, a standard item id), the
    bare id without one; None when absent."""
    found = child(element, *tags)
    value = text(found)
    if found is None or value is None:
        return None
    scheme = (found.get("schemeID") or "").strip()
    return f"{scheme}:{value}" if scheme else value


def endpoint(party: etree._Element | None) -> str | None:
    """A party's ``cbc:EndpointID`` as ``SCHEME:ID`` (the register's form)."""
    return scheme_id(party, cac.Party, cbc.EndpointID)


def _unit_price(item: etree._Element, quantity: Decimal) -> Decimal:
    price = child(item, cac.Price)
    amount = decimal(price, cbc.PriceAmount)
    if amount is not None:
        base = decimal(price, cbc.BaseQuantity)
        return amount / base if base else amount
    line_amount = decimal(item, cbc.LineExtensionAmount)
    if line_amount is not None and quantity:
        return line_amount / quantity
    raise fail(item, "the line has neither a price (cac:Price/cbc:PriceAmount) nor an amount to derive it from")


def _line(element: etree._Element) -> CommitmentLine:
    item = child(element, cac.LineItem)
    if item is None:
        raise fail(element, "no cac:LineItem")
    line_id = text(item, cbc.ID)
    quantity_element = child(item, cbc.Quantity)
    quantity = decimal(item, cbc.Quantity)
    if line_id is None or quantity is None or quantity_element is None:
        raise fail(item, "a line needs its cbc:ID and cbc:Quantity")
    described = child(item, cac.Item)
    return CommitmentLine(
        id=line_id,
        quantity=quantity,
        unit_price=_unit_price(item, quantity),
        unit_code=quantity_element.get("unitCode"),
        description=text(described, cbc.Name) or text(described, cbc.Description),
        seller_item_id=text(described, cac.SellersItemIdentification, cbc.ID),
        standard_item_id=scheme_id(described, cac.StandardItemIdentification, cbc.ID),
        vat_category=text(described, cac.ClassifiedTaxCategory, cbc.ID),
        vat_rate=decimal(described, cac.ClassifiedTaxCategory, cbc.Percent),
        account=text(item, cbc.AccountingCost),
    )


def _legal_id(party: etree._Element | None) -> str | None:
    return text(party, cac.Party, cac.PartyLegalEntity, cbc.CompanyID)


def _vat_id(party: etree._Element | None) -> str | None:
    if party is None:
        return None
    for scheme in party.iterfind(f"{cac.Party}/{cac.PartyTaxScheme}"):
        if text(scheme, cac.TaxScheme, cbc.ID) == "VAT":
            return text(scheme, cbc.CompanyID)
    return None


def parse_order(root: etree._Element) -> Order:
    """The Order ``root`` as the order commitment it registers (see the module's text)."""
    if root.tag != ORDER_TAG:
        raise UnsupportedDocumentError(f"not a UBL Order: {root.tag}")
    number = text(root, cbc.ID)
    currency = text(root, cbc.DocumentCurrencyCode)
    if number is None or currency is None:
        raise fail(root, "an Order needs its cbc:ID and cbc:DocumentCurrencyCode")
    lines = tuple(_line(element) for element in root.iterfind(cac.OrderLine))
    amount = decimal(root, cac.AnticipatedMonetaryTotal, cbc.PayableAmount)
    seller = child(root, cac.SellerSupplierParty)
    commitment = Commitment(
        number=number,
        kind=CommitmentKind.ORDER,
        institution_id="",
        supplier_id="",
        currency=currency,
        amount=amount if amount is not None else amount_of_lines(lines),
        lines=lines,
        supplier=Supplier(endpoint=endpoint(seller), vat=_vat_id(seller), legal_id=_legal_id(seller)),
        valid_from=xs_date(root, cac.ValidityPeriod, cbc.StartDate),
        valid_to=xs_date(root, cac.ValidityPeriod, cbc.EndDate),
        account=text(root, cbc.AccountingCost),
    )
    return Order(commitment=commitment, buyer=endpoint(child(root, cac.BuyerCustomerParty)))


def parse_order_bytes(data: bytes) -> Order:
    """Parse untrusted bytes safely (``safe_xml.parse``), then ``parse_order``."""
    return parse_order(safe_xml.parse(data).getroot())
