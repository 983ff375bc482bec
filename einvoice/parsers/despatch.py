"""Peppol Despatch Advice (T16, UBL 2.1 DespatchAdvice) -> the domain ``DespatchAdvice``: what a
supplier says it shipped against an order's lines.

What is read: the number (``cbc:ID``), the issue date, the order (``cac:OrderReference/cbc:ID``:
the commitment's number), the supplier's endpoint (``cac:DespatchSupplierParty``), the receiving
institution's endpoint (``cac:DeliveryCustomerParty``, to whom the advice is addressed) and each
``cac:DespatchLine``: its id, the order line (``cac:OrderLineReference/cbc:LineID``), the delivered
quantity and unit, the line's own order reference, the item's name and seller's id. A number
outside ``xs:decimal`` raises ``UblParseError``, a root that is not a DespatchAdvice
``UnsupportedDocumentError``.
"""

from __future__ import annotations

from lxml import etree

from einvoice.domain.commitments import DespatchAdvice, DespatchLine
from einvoice.errors import UnsupportedDocumentError
from einvoice.parsers import safe_xml
from einvoice.parsers.namespaces import DESPATCH_ADVICE_TAG, cac, cbc
from einvoice.parsers.order import child, decimal, endpoint, fail, text, xs_date


def _line(element: etree._Element) -> DespatchLine:
    line_id = text(element, cbc.ID)
    order_line = text(element, cac.OrderLineReference, cbc.LineID)
    quantity_element = child(element, cbc.DeliveredQuantity)
    quantity = decimal(element, cbc.DeliveredQuantity)
    if line_id is None or order_line is None or quantity is None or quantity_element is None:
        raise fail(element, "a despatch line needs its cbc:ID, cbc:DeliveredQuantity and order line (cbc:LineID)")
    item = child(element, cac.Item)
    return DespatchLine(
        id=line_id,
        order_line=order_line,
        quantity=quantity,
        unit_code=quantity_element.get("unitCode"),
        order=text(element, cac.OrderLineReference, cac.OrderReference, cbc.ID),
        seller_item_id=text(item, cac.SellersItemIdentification, cbc.ID),
        description=text(item, cbc.Name),
    )


def parse_despatch_advice(root: etree._Element) -> DespatchAdvice:
    """The Despatch Advice ``root`` (see the module's text)."""
    if root.tag != DESPATCH_ADVICE_TAG:
        raise UnsupportedDocumentError(f"not a UBL DespatchAdvice: {root.tag}")
    number = text(root, cbc.ID)
    order = text(root, cac.OrderReference, cbc.ID)
    if number is None or order is None:
        raise fail(root, "a Despatch Advice needs its cbc:ID and cac:OrderReference/cbc:ID")
    return DespatchAdvice(
        number=number,
        order=order,
        issue_date=xs_date(root, cbc.IssueDate),
        lines=tuple(_line(element) for element in root.iterfind(cac.DespatchLine)),
        supplier_endpoint=endpoint(child(root, cac.DespatchSupplierParty)),
        customer_endpoint=endpoint(child(root, cac.DeliveryCustomerParty)),
    )


def parse_despatch_advice_bytes(data: bytes) -> DespatchAdvice:
    """Parse untrusted bytes safely (``safe_xml.parse``), then ``parse_despatch_advice``."""
    return parse_despatch_advice(safe_xml.parse(data).getroot())
