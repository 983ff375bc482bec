"""UBL 2.1 Invoice and CreditNote -> the EN 16931 domain model (Peppol BIS Billing 3.0 mapping).

The parser reads what is there and never invents what is not: an absent element is ``None`` (or
an empty tuple), so fragments and broken documents still give an ``Invoice`` the validation
layers can talk about. What it refuses is a value it cannot read faithfully: an amount, quantity,
rate, date or boolean outside its XSD lexical space raises ``UblParseError``.

Speed: every element's children are indexed once by tag (``_Kids``) and looked up by Clark
name, rather than running one XPath per business term.

``parse_for_pipeline`` is the pipeline's parse step (bytes in, ``Invoice`` out, one permanent
error class when it cannot); ``read_header`` is intake's lenient reading of the few header fields
it routes and checks a document by, without parsing the whole invoice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from lxml import etree

from einvoice.domain.invoice import (
    AllowanceCharge,
    Contact,
    Delivery,
    DirectDebitMandate,
    DocumentKind,
    DocumentTotals,
    FinancialAccount,
    Identifier,
    Invoice,
    Item,
    ItemAttribute,
    ItemClassification,
    Line,
    Party,
    Payee,
    PaymentCard,
    PaymentMeans,
    Period,
    PostalAddress,
    PrecedingInvoice,
    Price,
    SupportingDocument,
    TaxRepresentative,
    VatBreakdown,
)
from einvoice.domain.money import Amount, DecimalSyntaxError, Quantity, parse_decimal
from einvoice.errors import DocumentParseError, IntakeError, UblParseError  # UblParseError: importable from here too
from einvoice.parsers import safe_xml
from einvoice.parsers.namespaces import CREDIT_NOTE_TAG, INVOICE_TAG, cac, cbc

# Document type codes of additional document references with a meaning of their own (UNCL 1001).
_INVOICED_OBJECT_CODE = "130"  # BT-18 / BT-128
_PROJECT_CODE = "50"  # BT-11 in a credit note (which has no cac:ProjectReference)


# --- reading elements ------------------------------------------------------------------------

_Kids = dict[str, list[etree._Element]]
_XML_SPACE = " \t\r\n"  # what XSD whitespace collapsing removes; other Unicode spaces are content
_NO_KIDS: _Kids = {}


def _kids(element: etree._Element | None) -> _Kids:
    """Index an element's children by tag, in document order (an empty index for None)."""
    if element is None:
        return _NO_KIDS
    index: _Kids = {}
    for child in element:
        # Comments are indexed too, under their (non-string) tag: no lookup ever asks for them.
        tag = child.tag
        found = index.get(tag)
        if found is None:
            index[tag] = [child]
        else:
            found.append(child)
    return index


def _first(kids: _Kids, tag: str) -> etree._Element | None:
    found = kids.get(tag)
    return found[0] if found else None


def _all(kids: _Kids, tag: str) -> list[etree._Element]:
    return kids.get(tag, [])


def _child(element: etree._Element | None, *tags: str) -> etree._Element | None:
    """Follow a path of child tags, taking the first match at each step."""
    for tag in tags:
        if element is None:
            return None
        for child in element:
            if child.tag == tag:
                element = child
                break
        else:
            return None
    return element


def _text_of(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    return (element.text or "").strip(_XML_SPACE)


def _text(kids: _Kids, tag: str) -> str | None:
    """Stripped text of the first child with ``tag``; None when absent, "" when empty."""
    found = kids.get(tag)  # _text_of(_first(...)) inlined: the parser's most frequent call
    return (found[0].text or "").strip(_XML_SPACE) if found else None


def _texts(kids: _Kids, tag: str) -> str | None:
    """Texts of all children with ``tag`` joined by line breaks (for 0..1 notes UBL lets repeat)."""
    parts = [t for t in (_text_of(e) for e in _all(kids, tag)) if t is not None]
    return "\n".join(parts) if parts else None


def _fail(element: etree._Element, problem: str) -> UblParseError:
    name = etree.QName(element).localname
    line = element.sourceline if isinstance(element.sourceline, int) else None
    return UblParseError(f"{name} (line {line}): {problem}", element=name, line=line)


def _decimal_of(element: etree._Element | None) -> Decimal | None:
    if element is None:
        return None
    try:
        return parse_decimal(element.text or "")
    except DecimalSyntaxError as exc:
        raise _fail(element, str(exc)) from None


def _decimal(kids: _Kids, tag: str) -> Decimal | None:
    return _decimal_of(_first(kids, tag))


def _amount_of(element: etree._Element | None) -> Amount | None:
    value = _decimal_of(element)
    if value is None or element is None:
        return None
    return Amount(value, element.get("currencyID"))


def _amount(kids: _Kids, tag: str) -> Amount | None:
    found = kids.get(tag)
    return _amount_of(found[0]) if found else None


def _quantity_of(element: etree._Element | None) -> Quantity | None:
    value = _decimal_of(element)
    if value is None or element is None:
        return None
    return Quantity(value, element.get("unitCode"))


_XS_DATE = re.compile(r"(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?")


def _date(kids: _Kids, tag: str) -> date | None:
    """An ``xs:date``; a time zone, if written, is dropped (EN 16931 dates have none)."""
    element = _first(kids, tag)
    if element is None:
        return None
    match = _XS_DATE.fullmatch((element.text or "").strip(_XML_SPACE))
    if match is None:
        raise _fail(element, f"not a date: {element.text!r}")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise _fail(element, f"not a date: {element.text!r} ({exc})") from None


def _boolean(kids: _Kids, tag: str) -> bool | None:
    element = _first(kids, tag)
    if element is None:
        return None
    text = (element.text or "").strip(_XML_SPACE)
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _fail(element, f"not a boolean: {element.text!r}")


def _identifier_of(element: etree._Element | None) -> Identifier | None:
    text = _text_of(element)
    if text is None or element is None:
        return None
    return Identifier(text, element.get("schemeID"))


def _identifier(kids: _Kids, tag: str) -> Identifier | None:
    return _identifier_of(_first(kids, tag))


# --- BG groups -------------------------------------------------------------------------------


def _period(element: etree._Element | None) -> Period | None:
    """BG-14 invoicing period / BG-26 line period."""
    if element is None:
        return None
    k = _kids(element)
    return Period(
        start_date=_date(k, cbc.StartDate),
        end_date=_date(k, cbc.EndDate),
        description_code=_text(k, cbc.DescriptionCode),
    )


def _address(element: etree._Element | None) -> PostalAddress | None:
    """BG-5, BG-8, BG-12, BG-15 postal addresses."""
    if element is None:
        return None
    k = _kids(element)
    return PostalAddress(
        street_name=_text(k, cbc.StreetName),
        additional_street_name=_text(k, cbc.AdditionalStreetName),
        address_line=_text_of(_child(_first(k, cac.AddressLine), cbc.Line)),
        city_name=_text(k, cbc.CityName),
        postal_zone=_text(k, cbc.PostalZone),
        country_subdivision=_text(k, cbc.CountrySubentity),
        country_code=_text_of(_child(_first(k, cac.Country), cbc.IdentificationCode)),
    )


def _contact(element: etree._Element | None) -> Contact | None:
    """BG-6 / BG-9 contact."""
    if element is None:
        return None
    k = _kids(element)
    return Contact(
        name=_text(k, cbc.Name),
        telephone=_text(k, cbc.Telephone),
        email=_text(k, cbc.ElectronicMail),
    )


def _tax_scheme_ids(party: _Kids) -> tuple[str | None, str | None]:
    """(VAT identifier BT-31/BT-48/BT-63, tax registration identifier BT-32) from cac:PartyTaxScheme."""
    vat_id = tax_registration_id = None
    for scheme in _all(party, cac.PartyTaxScheme):
        k = _kids(scheme)
        scheme_id = (_text_of(_child(_first(k, cac.TaxScheme), cbc.ID)) or "").upper()
        if scheme_id == "VAT":
            vat_id = vat_id if vat_id is not None else _text(k, cbc.CompanyID)
        elif tax_registration_id is None:
            tax_registration_id = _text(k, cbc.CompanyID)
    return vat_id, tax_registration_id


def _party(element: etree._Element | None) -> Party | None:
    """BG-4 seller / BG-7 buyer, from cac:AccountingSupplierParty or cac:AccountingCustomerParty."""
    party = _child(element, cac.Party)
    if party is None:
        return None
    k = _kids(party)
    legal = _kids(_first(k, cac.PartyLegalEntity))
    vat_id, tax_registration_id = _tax_scheme_ids(k)
    identifiers = (_identifier_of(_child(e, cbc.ID)) for e in _all(k, cac.PartyIdentification))
    return Party(
        name=_text(legal, cbc.RegistrationName),
        trading_name=_text_of(_child(_first(k, cac.PartyName), cbc.Name)),
        endpoint_id=_identifier(k, cbc.EndpointID),
        identifiers=tuple(i for i in identifiers if i is not None),
        legal_registration_id=_identifier(legal, cbc.CompanyID),
        legal_form=_text(legal, cbc.CompanyLegalForm),
        vat_id=vat_id,
        tax_registration_id=tax_registration_id,
        address=_address(_first(k, cac.PostalAddress)),
        contact=_contact(_first(k, cac.Contact)),
    )


def _payee(element: etree._Element | None) -> Payee | None:
    """BG-10 payee."""
    if element is None:
        return None
    k = _kids(element)
    return Payee(
        name=_text_of(_child(_first(k, cac.PartyName), cbc.Name)),
        identifier=_identifier_of(_child(_first(k, cac.PartyIdentification), cbc.ID)),
        legal_registration_id=_identifier_of(_child(_first(k, cac.PartyLegalEntity), cbc.CompanyID)),
    )


def _tax_representative(element: etree._Element | None) -> TaxRepresentative | None:
    """BG-11 seller tax representative."""
    if element is None:
        return None
    k = _kids(element)
    return TaxRepresentative(
        name=_text_of(_child(_first(k, cac.PartyName), cbc.Name)),
        vat_id=_tax_scheme_ids(k)[0],
        address=_address(_first(k, cac.PostalAddress)),
    )


def _delivery(element: etree._Element | None) -> Delivery | None:
    """BG-13 delivery information."""
    if element is None:
        return None
    k = _kids(element)
    location = _kids(_first(k, cac.DeliveryLocation))
    return Delivery(
        party_name=_text_of(_child(_first(k, cac.DeliveryParty), cac.PartyName, cbc.Name)),
        location_id=_identifier(location, cbc.ID),
        actual_delivery_date=_date(k, cbc.ActualDeliveryDate),
        address=_address(_first(location, cac.Address)),
    )


def _payment_means(element: etree._Element) -> PaymentMeans:
    """BG-16 payment instructions with BG-17 credit transfer, BG-18 card, BG-19 direct debit."""
    k = _kids(element)
    code = _first(k, cbc.PaymentMeansCode)
    account = card = mandate = None
    if (account_element := _first(k, cac.PayeeFinancialAccount)) is not None:
        a = _kids(account_element)
        account = FinancialAccount(
            id=_text(a, cbc.ID),
            name=_text(a, cbc.Name),
            service_provider_id=_text_of(_child(_first(a, cac.FinancialInstitutionBranch), cbc.ID)),
        )
    if (card_element := _first(k, cac.CardAccount)) is not None:
        c = _kids(card_element)
        card = PaymentCard(
            primary_account_number=_text(c, cbc.PrimaryAccountNumberID),
            holder_name=_text(c, cbc.HolderName),
            network_id=_text(c, cbc.NetworkID),
        )
    if (mandate_element := _first(k, cac.PaymentMandate)) is not None:
        m = _kids(mandate_element)
        mandate = DirectDebitMandate(
            mandate_id=_text(m, cbc.ID),
            debited_account_id=_text_of(_child(_first(m, cac.PayerFinancialAccount), cbc.ID)),
        )
    return PaymentMeans(
        code=_text_of(code),
        text=None if code is None else code.get("name"),
        remittance_information=_text(k, cbc.PaymentID),
        payee_account=account,
        card=card,
        mandate=mandate,
    )


def _allowance_charge(element: etree._Element) -> AllowanceCharge:
    """BG-20/BG-21 document level, BG-27/BG-28 line level allowance or charge."""
    k = _kids(element)
    category = _kids(_first(k, cac.TaxCategory))
    return AllowanceCharge(
        is_charge=_boolean(k, cbc.ChargeIndicator),
        amount=_amount(k, cbc.Amount),
        base_amount=_amount(k, cbc.BaseAmount),
        percentage=_decimal(k, cbc.MultiplierFactorNumeric),
        vat_category_code=_text(category, cbc.ID),
        vat_rate=_decimal(category, cbc.Percent),
        reason=_text(k, cbc.AllowanceChargeReason),
        reason_code=_text(k, cbc.AllowanceChargeReasonCode),
    )


def _vat_breakdown(element: etree._Element) -> VatBreakdown:
    """BG-23 VAT breakdown, from cac:TaxSubtotal."""
    k = _kids(element)
    category = _kids(_first(k, cac.TaxCategory))
    return VatBreakdown(
        taxable_amount=_amount(k, cbc.TaxableAmount),
        tax_amount=_amount(k, cbc.TaxAmount),
        category_code=_text(category, cbc.ID),
        rate=_decimal(category, cbc.Percent),
        exemption_reason=_text(category, cbc.TaxExemptionReason),
        exemption_reason_code=_text(category, cbc.TaxExemptionReasonCode),
    )


def _tax_totals(
    elements: Iterable[etree._Element], currency: str | None, tax_currency: str | None
) -> tuple[Amount | None, Amount | None, tuple[VatBreakdown, ...]]:
    """(BT-110, BT-111, BG-23) from the cac:TaxTotal elements.

    BT-111 is the TaxAmount stated in the tax currency (BT-6) when that differs from BT-5; BT-110
    is the other one (the first, if a broken document states more). Breakdowns are taken from
    every TaxTotal, so that none a document states goes unseen.
    """
    tax_amount = accounting = None
    breakdown: list[VatBreakdown] = []
    for element in elements:
        k = _kids(element)
        amount = _amount(k, cbc.TaxAmount)
        breakdown.extend(_vat_breakdown(e) for e in _all(k, cac.TaxSubtotal))
        if amount is None:
            continue
        in_tax_currency = tax_currency is not None and tax_currency != currency and amount.currency == tax_currency
        if in_tax_currency and accounting is None:
            accounting = amount
        elif tax_amount is None:
            tax_amount = amount
    return tax_amount, accounting, tuple(breakdown)


def _totals(element: etree._Element | None, tax_amount: Amount | None, accounting: Amount | None) -> DocumentTotals:
    """BG-22 document totals from cac:LegalMonetaryTotal (BT-110/111 come from cac:TaxTotal)."""
    k = _kids(element)
    return DocumentTotals(
        line_extension_amount=_amount(k, cbc.LineExtensionAmount),
        allowance_total_amount=_amount(k, cbc.AllowanceTotalAmount),
        charge_total_amount=_amount(k, cbc.ChargeTotalAmount),
        tax_exclusive_amount=_amount(k, cbc.TaxExclusiveAmount),
        tax_amount=tax_amount,
        tax_amount_in_accounting_currency=accounting,
        tax_inclusive_amount=_amount(k, cbc.TaxInclusiveAmount),
        prepaid_amount=_amount(k, cbc.PrepaidAmount),
        rounding_amount=_amount(k, cbc.PayableRoundingAmount),
        payable_amount=_amount(k, cbc.PayableAmount),
    )


def _price(element: etree._Element | None) -> Price | None:
    """BG-29 price details; the price discount is the one allowance UBL allows on a price."""
    if element is None:
        return None
    k = _kids(element)
    discount = _kids(_first(k, cac.AllowanceCharge))
    return Price(
        net_price=_amount(k, cbc.PriceAmount),
        discount=_amount(discount, cbc.Amount),
        gross_price=_amount(discount, cbc.BaseAmount),
        base_quantity=_quantity_of(_first(k, cbc.BaseQuantity)),
    )


def _item(element: etree._Element | None) -> tuple[Item | None, str | None, Decimal | None]:
    """BG-31 item information, plus BT-151 and BT-152 (cac:ClassifiedTaxCategory sits in the item)."""
    if element is None:
        return None, None, None
    k = _kids(element)
    classifications = []
    for commodity in _all(k, cac.CommodityClassification):
        code = _child(commodity, cbc.ItemClassificationCode)
        if code is not None:
            classifications.append(
                ItemClassification(_text_of(code) or "", code.get("listID"), code.get("listVersionID"))
            )
    attributes = []
    for prop in _all(k, cac.AdditionalItemProperty):
        p = _kids(prop)
        attributes.append(ItemAttribute(_text(p, cbc.Name), _text(p, cbc.Value)))
    category = _kids(_first(k, cac.ClassifiedTaxCategory))
    item = Item(
        name=_text(k, cbc.Name),
        description=_text(k, cbc.Description),
        sellers_id=_text_of(_child(_first(k, cac.SellersItemIdentification), cbc.ID)),
        buyers_id=_text_of(_child(_first(k, cac.BuyersItemIdentification), cbc.ID)),
        standard_id=_identifier_of(_child(_first(k, cac.StandardItemIdentification), cbc.ID)),
        classifications=tuple(classifications),
        origin_country=_text_of(_child(_first(k, cac.OriginCountry), cbc.IdentificationCode)),
        attributes=tuple(attributes),
    )
    return item, _text(category, cbc.ID), _decimal(category, cbc.Percent)


def _line_object_id(k: _Kids) -> Identifier | None:
    """BT-128: the line's document reference with type code 130 (invoiced object)."""
    for reference in _all(k, cac.DocumentReference):
        r = _kids(reference)
        if _text(r, cbc.DocumentTypeCode) == _INVOICED_OBJECT_CODE:
            return _identifier(r, cbc.ID)
    return None


def _line(element: etree._Element, quantity_tag: str) -> Line:
    """BG-25 invoice line (cac:InvoiceLine or cac:CreditNoteLine)."""
    k = _kids(element)
    item, vat_category_code, vat_rate = _item(_first(k, cac.Item))
    return Line(
        id=_text(k, cbc.ID),
        quantity=_quantity_of(_first(k, quantity_tag)),
        net_amount=_amount(k, cbc.LineExtensionAmount),
        note=_texts(k, cbc.Note),
        object_id=_line_object_id(k),
        order_line_reference=_text_of(_child(_first(k, cac.OrderLineReference), cbc.LineID)),
        accounting_reference=_text(k, cbc.AccountingCost),
        period=_period(_first(k, cac.InvoicePeriod)),
        allowances_charges=tuple(_allowance_charge(e) for e in _all(k, cac.AllowanceCharge)),
        price=_price(_first(k, cac.Price)),
        vat_category_code=vat_category_code,
        vat_rate=vat_rate,
        item=item,
    )


def _preceding_invoices(k: _Kids) -> tuple[PrecedingInvoice, ...]:
    """BG-3 preceding invoice references."""
    result = []
    for billing in _all(k, cac.BillingReference):
        reference = _kids(_child(billing, cac.InvoiceDocumentReference))
        if reference:
            result.append(PrecedingInvoice(_text(reference, cbc.ID), _date(reference, cbc.IssueDate)))
    return tuple(result)


def _additional_documents(k: _Kids) -> tuple[Identifier | None, str | None, tuple[SupportingDocument, ...]]:
    """(BT-18 invoiced object, BT-11 project in a credit note, BG-24 supporting documents)."""
    invoiced_object = project = None
    documents = []
    for element in _all(k, cac.AdditionalDocumentReference):
        d = _kids(element)
        type_code = _text(d, cbc.DocumentTypeCode)
        if type_code == _INVOICED_OBJECT_CODE:
            invoiced_object = invoiced_object or _identifier(d, cbc.ID)
            continue
        if type_code == _PROJECT_CODE:
            project = project if project is not None else _text(d, cbc.ID)
            continue
        attachment = _kids(_first(d, cac.Attachment))
        embedded = _first(attachment, cbc.EmbeddedDocumentBinaryObject)
        documents.append(
            SupportingDocument(
                id=_text(d, cbc.ID),
                description=_text(d, cbc.DocumentDescription),
                external_uri=_text_of(_child(_first(attachment, cac.ExternalReference), cbc.URI)),
                attachment_mime_code=None if embedded is None else embedded.get("mimeCode"),
                attachment_filename=None if embedded is None else embedded.get("filename"),
            )
        )
    return invoiced_object, project, tuple(documents)


def _reference_id(k: _Kids, tag: str) -> str | None:
    """The cbc:ID of the first ``tag`` document reference (BT-12, BT-15, BT-16, BT-17, BT-11)."""
    return _text_of(_child(_first(k, tag), cbc.ID))


# --- the document ----------------------------------------------------------------------------


def parse_invoice(root: etree._Element) -> Invoice:
    """Map a UBL 2.1 ``Invoice`` or ``CreditNote`` root element to an ``Invoice``.

    Returns the invoice with absent elements as None / empty tuples.
    Raises ``UblParseError`` when the root is neither document, or a value is outside its lexical
    space (amounts, quantities, rates: ``xs:decimal``; dates: ``xs:date``; ``xs:boolean``).
    """
    if root.tag == INVOICE_TAG:
        kind, type_tag = DocumentKind.INVOICE, cbc.InvoiceTypeCode
        line_tag, quantity_tag = cac.InvoiceLine, cbc.InvoicedQuantity
    elif root.tag == CREDIT_NOTE_TAG:
        kind, type_tag = DocumentKind.CREDIT_NOTE, cbc.CreditNoteTypeCode
        line_tag, quantity_tag = cac.CreditNoteLine, cbc.CreditedQuantity
    else:
        raise UblParseError(f"not a UBL Invoice or CreditNote: {root.tag!r}", element=str(root.tag))

    k = _kids(root)
    currency = _text(k, cbc.DocumentCurrencyCode)
    tax_currency = _text(k, cbc.TaxCurrencyCode)
    tax_amount, accounting, breakdown = _tax_totals(_all(k, cac.TaxTotal), currency, tax_currency)
    invoiced_object, credit_note_project, documents = _additional_documents(k)
    order = _kids(_first(k, cac.OrderReference))
    means = tuple(_payment_means(e) for e in _all(k, cac.PaymentMeans))
    due_date = _date(k, cbc.DueDate)
    if due_date is None and kind is DocumentKind.CREDIT_NOTE:
        # A UBL CreditNote has no cbc:DueDate; Peppol BIS puts BT-9 in the payment means.
        due_date = next(
            (d for d in (_date(_kids(e), cbc.PaymentDueDate) for e in _all(k, cac.PaymentMeans)) if d),
            None,
        )
    return Invoice(
        kind=kind,
        id=_text(k, cbc.ID),
        issue_date=_date(k, cbc.IssueDate),
        type_code=_text(k, type_tag),
        currency=currency,
        customization_id=_text(k, cbc.CustomizationID),
        profile_id=_text(k, cbc.ProfileID),
        due_date=due_date,
        tax_point_date=_date(k, cbc.TaxPointDate),
        tax_currency=tax_currency,
        notes=tuple(t for t in (_text_of(e) for e in _all(k, cbc.Note)) if t is not None),
        accounting_reference=_text(k, cbc.AccountingCost),
        buyer_reference=_text(k, cbc.BuyerReference),
        project_reference=_reference_id(k, cac.ProjectReference) or credit_note_project,
        contract_reference=_reference_id(k, cac.ContractDocumentReference),
        order_reference=_text(order, cbc.ID),
        sales_order_reference=_text(order, cbc.SalesOrderID),
        receiving_advice_reference=_reference_id(k, cac.ReceiptDocumentReference),
        despatch_advice_reference=_reference_id(k, cac.DespatchDocumentReference),
        tender_or_lot_reference=_reference_id(k, cac.OriginatorDocumentReference),
        invoiced_object_id=invoiced_object,
        invoice_period=_period(_first(k, cac.InvoicePeriod)),
        preceding_invoices=_preceding_invoices(k),
        supporting_documents=documents,
        seller=_party(_first(k, cac.AccountingSupplierParty)),
        buyer=_party(_first(k, cac.AccountingCustomerParty)),
        payee=_payee(_first(k, cac.PayeeParty)),
        tax_representative=_tax_representative(_first(k, cac.TaxRepresentativeParty)),
        delivery=_delivery(_first(k, cac.Delivery)),
        payment_means=means,
        payment_terms=_texts(_kids(_first(k, cac.PaymentTerms)), cbc.Note),
        allowances_charges=tuple(_allowance_charge(e) for e in _all(k, cac.AllowanceCharge)),
        totals=_totals(_first(k, cac.LegalMonetaryTotal), tax_amount, accounting),
        vat_breakdown=breakdown,
        lines=tuple(_line(e, quantity_tag) for e in _all(k, line_tag)),
    )


def parse_invoice_bytes(data: bytes) -> Invoice:
    """Parse UBL bytes safely (no DTD, no entities, no network, bounded size and depth) into an ``Invoice``.

    Raises what ``safe_xml.parse_document`` raises (``NotWellFormedError``, ``UnsafeXmlError``,
    ``DocumentTooLargeError``, ``UnsupportedDocumentError`` for a root other than Invoice or
    CreditNote), and ``UblParseError`` as ``parse_invoice`` does.
    """
    return parse_invoice(safe_xml.parse_document(data).root)


def parse_for_pipeline(
    raw: bytes, *, max_bytes: int = safe_xml.DEFAULT_MAX_BYTES, max_depth: int = safe_xml.DEFAULT_MAX_DEPTH
) -> Invoice:
    """The ``Invoice`` of a stored document, for the pipeline's parse step (a document validation
    found valid): a safe parse (as ``safe_xml.parse_document``, within ``max_bytes`` and
    ``max_depth``: pass the settings intake applied) and then ``parse_invoice``.

    Raises ``DocumentParseError`` (permanent) when it cannot: ``UblParseError`` for a value outside
    its lexical space, a ``DocumentParseError`` with the cause for bytes that do not parse safely
    or are not a UBL Invoice or CreditNote.
    """
    try:
        root = safe_xml.parse_document(raw, max_bytes=max_bytes, max_depth=max_depth).root
    except IntakeError as exc:
        raise DocumentParseError(f"the document cannot be parsed: {exc}") from exc
    return parse_invoice(root)


# --- the header intake reads -----------------------------------------------------------------
#
# Intake reads a few header fields in the HTTP request, before any validation, to route and
# deduplicate a document and to check its seller. It is lenient where the parser is strict: a
# value it cannot read is None (validation reports it later), never an error; texts are stripped
# of all white space at their ends and an empty one is None. Each field is the first element its
# path finds (``Element.find`` semantics), and the root's children are read only up to the first
# line: the header read costs the same for one line or a thousand.


@dataclass(frozen=True, slots=True)
class DocumentHeader:
    """What intake reads from a document: the fields that route, deduplicate and check it."""

    document_type: str  # invoice | credit_note
    customization_id: str | None  # BT-24
    number: str | None  # BT-1
    issue_date: date | None  # BT-2
    currency: str | None  # BT-5
    payable_amount: Decimal | None  # BT-115
    seller_endpoint: tuple[str, str] | None  # BT-34 (scheme, id)
    seller_vat_ids: tuple[str, ...]  # BT-31: PartyTaxScheme company ids under tax scheme VAT
    seller_tax_ids: tuple[str, ...]  # BT-32: PartyTaxScheme company ids under any other tax scheme
    seller_legal_ids: tuple[str, ...]  # BT-30
    buyer_endpoint: tuple[str, str] | None  # BT-49 (scheme, id)


_HEADER_KIND = {safe_xml.DocumentType.INVOICE: "invoice", safe_xml.DocumentType.CREDIT_NOTE: "credit_note"}
_MAX_AMOUNT_TEXT = 40  # longer amount texts are no amount at intake (DecimalText holds 48)


def _find(element: etree._Element, tag: str, *tags: str) -> etree._Element | None:
    """``element.find("tag/…")``: the first element at the end of the path, in document order."""
    for child in element.iterchildren(tag):
        if not tags:
            return child
        found = _find(child, *tags)
        if found is not None:
            return found
    return None


def _header_text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _header_endpoint(party: etree._Element | None) -> tuple[str, str] | None:
    """(scheme, id) of the party's cbc:EndpointID; None when absent or blank."""
    found = None if party is None else _find(party, cbc.EndpointID)
    if found is None or not (found.text or "").strip():
        return None
    return (found.get("schemeID") or "").strip(), (found.text or "").strip()


def _header_date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _header_amount(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and len(text) <= _MAX_AMOUNT_TEXT else None


# The header's paths from the root: (first step, second step or None).
_HEADER_PATHS: dict[str, str | None] = {
    cbc.CustomizationID: None,
    cbc.ID: None,
    cbc.IssueDate: None,
    cbc.DocumentCurrencyCode: None,
    cac.LegalMonetaryTotal: cbc.PayableAmount,
    cac.AccountingSupplierParty: cac.Party,
    cac.AccountingCustomerParty: cac.Party,
}
_LINE_TAGS = frozenset({cac.InvoiceLine, cac.CreditNoteLine})


def _header_elements(root: etree._Element) -> dict[str, etree._Element]:
    """The element at the end of each ``_HEADER_PATHS`` path, by its first step (absent: missing).

    One pass over the root's children that stops when every path has its element or at the first
    line (UBL puts the header before the lines); a path still open then is looked up among all the
    children (``_find``: lxml's tag iterator scans every sibling of a match, about 8 µs for a
    thousand lines, so each lookup is kept for what the pass did not find)."""
    found: dict[str, etree._Element] = {}
    for child in root:
        tag = child.tag
        if tag in _LINE_TAGS:
            break
        if tag in _HEADER_PATHS and tag not in found:
            second = _HEADER_PATHS[tag]
            element = child if second is None else _find(child, second)
            if element is not None:
                found[tag] = element
                if len(found) == len(_HEADER_PATHS):
                    return found
    for first, second in _HEADER_PATHS.items():
        if first not in found:
            element = _find(root, first) if second is None else _find(root, first, second)
            if element is not None:
                found[first] = element
    return found


def read_header(root: etree._Element) -> DocumentHeader:
    """Read intake's header fields from a parsed document (its root element), leniently: a date or
    amount that cannot be read, or an amount written in more than 40 characters, is None.

    Raises ``UnsupportedDocumentError`` (``safe_xml.detect_type``) when the root is not a UBL 2.1
    Invoice or CreditNote.
    """
    document_type = _HEADER_KIND[safe_xml.detect_type(root)]
    header = _header_elements(root)
    seller = header.get(cac.AccountingSupplierParty)
    buyer = header.get(cac.AccountingCustomerParty)
    vat_ids: list[str] = []
    tax_ids: list[str] = []
    legal_ids: list[str] = []
    if seller is not None:
        for scheme in seller.iterchildren(cac.PartyTaxScheme):
            company_id = _header_text(_find(scheme, cbc.CompanyID))
            if company_id:
                is_vat = (_header_text(_find(scheme, cac.TaxScheme, cbc.ID)) or "").upper() == "VAT"
                (vat_ids if is_vat else tax_ids).append(company_id)
        for entity in seller.iterchildren(cac.PartyLegalEntity):
            company_id = _header_text(_find(entity, cbc.CompanyID))
            if company_id:
                legal_ids.append(company_id)
    return DocumentHeader(
        document_type=document_type,
        customization_id=_header_text(header.get(cbc.CustomizationID)),
        number=_header_text(header.get(cbc.ID)),
        issue_date=_header_date(_header_text(header.get(cbc.IssueDate))),
        currency=_header_text(header.get(cbc.DocumentCurrencyCode)),
        payable_amount=_header_amount(_header_text(header.get(cac.LegalMonetaryTotal))),
        seller_endpoint=_header_endpoint(seller),
        seller_vat_ids=tuple(vat_ids),
        seller_tax_ids=tuple(tax_ids),
        seller_legal_ids=tuple(legal_ids),
        buyer_endpoint=_header_endpoint(buyer),
    )
