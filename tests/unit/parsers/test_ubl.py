"""UBL Invoice / CreditNote -> domain Invoice, on small hand-written documents."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from einvoice.domain.invoice import (
    DocumentKind,
    Identifier,
    Invoice,
    ItemAttribute,
    ItemClassification,
    PrecedingInvoice,
    check_totals,
)
from einvoice.domain.money import Amount, Quantity
from einvoice.errors import (
    DocumentParseError,
    EInvoiceError,
    NotWellFormedError,
    PermanentError,
    UnsafeXmlError,
    UnsupportedDocumentError,
)
from einvoice.parsers.namespaces import PREFIXES
from einvoice.parsers.ubl import (
    DocumentHeader,
    UblParseError,
    parse_for_pipeline,
    parse_invoice,
    parse_invoice_bytes,
    read_header,
)

NS = (
    'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
    'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"'
)
INVOICE_OPEN = f'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" {NS}>'
CREDIT_NOTE_OPEN = f'<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2" {NS}>'

# Secure settings, as safe_xml applies them at intake: no DTD, no entities, no network.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=False)


def parse(xml: str) -> Invoice:
    return parse_invoice(etree.fromstring(xml.encode("utf-8"), _PARSER))


def eur(value: str) -> Amount:
    return Amount(Decimal(value), "EUR")


# A complete invoice: every business term the model carries, two VAT categories (S 25 %, Z 0 %),
# a negative line (a return), document and line allowances and charges, a price discount,
# prepaid and rounding amounts, and the VAT total in a second (tax) currency.
FULL_INVOICE = f"""<?xml version="1.0" encoding="UTF-8"?>
{INVOICE_OPEN}
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>INV-2026-001</cbc:ID>
  <cbc:IssueDate>2026-03-01</cbc:IssueDate>
  <cbc:DueDate>2026-03-31</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:Note>First note
second line</cbc:Note>
  <cbc:Note>Second note</cbc:Note>
  <cbc:TaxPointDate>2026-02-28</cbc:TaxPointDate>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:TaxCurrencyCode>SEK</cbc:TaxCurrencyCode>
  <cbc:AccountingCost>4217:2323:2323</cbc:AccountingCost>
  <cbc:BuyerReference>REF-0042</cbc:BuyerReference>
  <cac:InvoicePeriod>
    <cbc:StartDate>2026-02-01</cbc:StartDate>
    <cbc:EndDate>2026-02-28</cbc:EndDate>
  </cac:InvoicePeriod>
  <cac:OrderReference><cbc:ID>PO-778</cbc:ID><cbc:SalesOrderID>SO-12</cbc:SalesOrderID></cac:OrderReference>
  <cac:BillingReference>
    <cac:InvoiceDocumentReference>
      <cbc:ID>INV-2025-099</cbc:ID><cbc:IssueDate>2025-12-15</cbc:IssueDate>
    </cac:InvoiceDocumentReference>
  </cac:BillingReference>
  <cac:BillingReference>
    <cac:InvoiceDocumentReference><cbc:ID>INV-2025-100</cbc:ID></cac:InvoiceDocumentReference>
  </cac:BillingReference>
  <cac:DespatchDocumentReference><cbc:ID>DESADV-5</cbc:ID></cac:DespatchDocumentReference>
  <cac:ReceiptDocumentReference><cbc:ID>RECADV-6</cbc:ID></cac:ReceiptDocumentReference>
  <cac:OriginatorDocumentReference><cbc:ID>TENDER-7</cbc:ID></cac:OriginatorDocumentReference>
  <cac:ContractDocumentReference><cbc:ID>CONTRACT-2026-01</cbc:ID></cac:ContractDocumentReference>
  <cac:AdditionalDocumentReference>
    <cbc:ID schemeID="AAG">OBJ-1</cbc:ID>
    <cbc:DocumentTypeCode>130</cbc:DocumentTypeCode>
  </cac:AdditionalDocumentReference>
  <cac:AdditionalDocumentReference>
    <cbc:ID>TIMESHEET</cbc:ID>
    <cbc:DocumentDescription>Hours worked</cbc:DocumentDescription>
    <cac:Attachment>
      <cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="hours.pdf"
        >aGVsbG8=</cbc:EmbeddedDocumentBinaryObject>
    </cac:Attachment>
  </cac:AdditionalDocumentReference>
  <cac:AdditionalDocumentReference>
    <cbc:ID>SPEC</cbc:ID>
    <cac:Attachment>
      <cac:ExternalReference><cbc:URI>https://example.com/spec</cbc:URI></cac:ExternalReference>
    </cac:Attachment>
  </cac:AdditionalDocumentReference>
  <cac:ProjectReference><cbc:ID>PROJ-9</cbc:ID></cac:ProjectReference>
  <cac:AccountingSupplierParty>
    <cac:Party>
      <cbc:EndpointID schemeID="0192">999888777</cbc:EndpointID>
      <cac:PartyIdentification><cbc:ID schemeID="0088">5790000435968</cbc:ID></cac:PartyIdentification>
      <cac:PartyIdentification><cbc:ID schemeID="SEPA">DE98ZZZ09999999999</cbc:ID></cac:PartyIdentification>
      <cac:PartyName><cbc:Name>Seller Trading</cbc:Name></cac:PartyName>
      <cac:PostalAddress>
        <cbc:StreetName>Main Street 1</cbc:StreetName>
        <cbc:AdditionalStreetName>Floor 2</cbc:AdditionalStreetName>
        <cbc:CityName>Oslo</cbc:CityName>
        <cbc:PostalZone>0150</cbc:PostalZone>
        <cbc:CountrySubentity>Oslo county</cbc:CountrySubentity>
        <cac:AddressLine><cbc:Line>Gate 3</cbc:Line></cac:AddressLine>
        <cac:Country><cbc:IdentificationCode>NO</cbc:IdentificationCode></cac:Country>
      </cac:PostalAddress>
      <cac:PartyTaxScheme>
        <cbc:CompanyID>NO999888777MVA</cbc:CompanyID>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
      </cac:PartyTaxScheme>
      <cac:PartyTaxScheme>
        <cbc:CompanyID>Foretaksregisteret</cbc:CompanyID>
        <cac:TaxScheme><cbc:ID>TAX</cbc:ID></cac:TaxScheme>
      </cac:PartyTaxScheme>
      <cac:PartyLegalEntity>
        <cbc:RegistrationName>Seller AS</cbc:RegistrationName>
        <cbc:CompanyID schemeID="0192">999888777</cbc:CompanyID>
        <cbc:CompanyLegalForm>Share capital 30 000 NOK</cbc:CompanyLegalForm>
      </cac:PartyLegalEntity>
      <cac:Contact>
        <cbc:Name>Kari Nordmann</cbc:Name>
        <cbc:Telephone>+47 22 00 00 00</cbc:Telephone>
        <cbc:ElectronicMail>kari@seller.example</cbc:ElectronicMail>
      </cac:Contact>
    </cac:Party>
  </cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty>
    <cac:Party>
      <cbc:EndpointID schemeID="0007">5567321707</cbc:EndpointID>
      <cac:PartyIdentification><cbc:ID schemeID="0088">7300010000001</cbc:ID></cac:PartyIdentification>
      <cac:PartyName><cbc:Name>Ministry Trading Name</cbc:Name></cac:PartyName>
      <cac:PostalAddress>
        <cbc:CityName>Stockholm</cbc:CityName>
        <cac:Country><cbc:IdentificationCode>SE</cbc:IdentificationCode></cac:Country>
      </cac:PostalAddress>
      <cac:PartyTaxScheme>
        <cbc:CompanyID>SE556732170701</cbc:CompanyID>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
      </cac:PartyTaxScheme>
      <cac:PartyLegalEntity>
        <cbc:RegistrationName>The Ministry</cbc:RegistrationName>
        <cbc:CompanyID schemeID="0007">5567321707</cbc:CompanyID>
      </cac:PartyLegalEntity>
      <cac:Contact><cbc:Name>Ann Buyer</cbc:Name></cac:Contact>
    </cac:Party>
  </cac:AccountingCustomerParty>
  <cac:PayeeParty>
    <cac:PartyIdentification><cbc:ID schemeID="0088">7350053850019</cbc:ID></cac:PartyIdentification>
    <cac:PartyName><cbc:Name>Factoring Ltd</cbc:Name></cac:PartyName>
    <cac:PartyLegalEntity><cbc:CompanyID schemeID="0007">5566778899</cbc:CompanyID></cac:PartyLegalEntity>
  </cac:PayeeParty>
  <cac:TaxRepresentativeParty>
    <cac:PartyName><cbc:Name>Tax Rep AS</cbc:Name></cac:PartyName>
    <cac:PostalAddress><cac:Country><cbc:IdentificationCode>NO</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyTaxScheme>
      <cbc:CompanyID>NO888777666MVA</cbc:CompanyID>
      <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
    </cac:PartyTaxScheme>
  </cac:TaxRepresentativeParty>
  <cac:Delivery>
    <cbc:ActualDeliveryDate>2026-02-20</cbc:ActualDeliveryDate>
    <cac:DeliveryLocation>
      <cbc:ID schemeID="0088">7300010000099</cbc:ID>
      <cac:Address>
        <cbc:StreetName>Dock 4</cbc:StreetName>
        <cac:Country><cbc:IdentificationCode>SE</cbc:IdentificationCode></cac:Country>
      </cac:Address>
    </cac:DeliveryLocation>
    <cac:DeliveryParty><cac:PartyName><cbc:Name>Warehouse North</cbc:Name></cac:PartyName></cac:DeliveryParty>
  </cac:Delivery>
  <cac:PaymentMeans>
    <cbc:PaymentMeansCode name="Credit transfer">30</cbc:PaymentMeansCode>
    <cbc:PaymentID>INV-2026-001</cbc:PaymentID>
    <cac:PayeeFinancialAccount>
      <cbc:ID>NO9386011117947</cbc:ID>
      <cbc:Name>Seller AS operating account</cbc:Name>
      <cac:FinancialInstitutionBranch><cbc:ID>DNBANOKK</cbc:ID></cac:FinancialInstitutionBranch>
    </cac:PayeeFinancialAccount>
  </cac:PaymentMeans>
  <cac:PaymentTerms><cbc:Note>Net 30 days</cbc:Note></cac:PaymentTerms>
  <cac:AllowanceCharge>
    <cbc:ChargeIndicator>false</cbc:ChargeIndicator>
    <cbc:AllowanceChargeReasonCode>95</cbc:AllowanceChargeReasonCode>
    <cbc:AllowanceChargeReason>Discount</cbc:AllowanceChargeReason>
    <cbc:MultiplierFactorNumeric>10</cbc:MultiplierFactorNumeric>
    <cbc:Amount currencyID="EUR">10.00</cbc:Amount>
    <cbc:BaseAmount currencyID="EUR">100.00</cbc:BaseAmount>
    <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
  </cac:AllowanceCharge>
  <cac:AllowanceCharge>
    <cbc:ChargeIndicator>true</cbc:ChargeIndicator>
    <cbc:AllowanceChargeReasonCode>FC</cbc:AllowanceChargeReasonCode>
    <cbc:AllowanceChargeReason>Freight</cbc:AllowanceChargeReason>
    <cbc:Amount currencyID="EUR">20.00</cbc:Amount>
    <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
  </cac:AllowanceCharge>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">20.63</cbc:TaxAmount>
    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">82.50</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="EUR">20.63</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
    </cac:TaxSubtotal>
    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">100.00</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="EUR">0.00</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>Z</cbc:ID><cbc:Percent>0</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
    </cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="SEK">230.00</cbc:TaxAmount>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">172.50</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">182.50</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">203.13</cbc:TaxInclusiveAmount>
    <cbc:AllowanceTotalAmount currencyID="EUR">10.00</cbc:AllowanceTotalAmount>
    <cbc:ChargeTotalAmount currencyID="EUR">20.00</cbc:ChargeTotalAmount>
    <cbc:PrepaidAmount currencyID="EUR">50.00</cbc:PrepaidAmount>
    <cbc:PayableRoundingAmount currencyID="EUR">-0.13</cbc:PayableRoundingAmount>
    <cbc:PayableAmount currencyID="EUR">153.00</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:Note>Line note</cbc:Note>
    <cbc:InvoicedQuantity unitCode="EA">10</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">102.50</cbc:LineExtensionAmount>
    <cbc:AccountingCost>6000</cbc:AccountingCost>
    <cac:InvoicePeriod><cbc:StartDate>2026-02-01</cbc:StartDate><cbc:EndDate>2026-02-14</cbc:EndDate></cac:InvoicePeriod>
    <cac:OrderLineReference><cbc:LineID>3</cbc:LineID></cac:OrderLineReference>
    <cac:DocumentReference>
      <cbc:ID schemeID="ABZ">OBJ-L1</cbc:ID>
      <cbc:DocumentTypeCode>130</cbc:DocumentTypeCode>
    </cac:DocumentReference>
    <cac:Item>
      <cbc:Description>Blue pens, box of 10</cbc:Description>
      <cbc:Name>Pens</cbc:Name>
      <cac:BuyersItemIdentification><cbc:ID>B-1</cbc:ID></cac:BuyersItemIdentification>
      <cac:SellersItemIdentification><cbc:ID>S-1</cbc:ID></cac:SellersItemIdentification>
      <cac:StandardItemIdentification><cbc:ID schemeID="0160">07300010000001</cbc:ID></cac:StandardItemIdentification>
      <cac:OriginCountry><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:OriginCountry>
      <cac:CommodityClassification>
        <cbc:ItemClassificationCode listID="STI" listVersionID="19.05.01">44121704</cbc:ItemClassificationCode>
      </cac:CommodityClassification>
      <cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
      <cac:AdditionalItemProperty><cbc:Name>Colour</cbc:Name><cbc:Value>Blue</cbc:Value></cac:AdditionalItemProperty>
    </cac:Item>
    <cac:Price>
      <cbc:PriceAmount currencyID="EUR">10.25</cbc:PriceAmount>
      <cbc:BaseQuantity unitCode="EA">1</cbc:BaseQuantity>
      <cac:AllowanceCharge>
        <cbc:ChargeIndicator>false</cbc:ChargeIndicator>
        <cbc:Amount currencyID="EUR">0.75</cbc:Amount>
        <cbc:BaseAmount currencyID="EUR">11.00</cbc:BaseAmount>
      </cac:AllowanceCharge>
    </cac:Price>
  </cac:InvoiceLine>
  <cac:InvoiceLine>
    <cbc:ID>2</cbc:ID>
    <cbc:InvoicedQuantity unitCode="HUR">2</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount>
    <cac:AllowanceCharge>
      <cbc:ChargeIndicator>true</cbc:ChargeIndicator>
      <cbc:AllowanceChargeReason>Set-up</cbc:AllowanceChargeReason>
      <cbc:Amount currencyID="EUR">5.00</cbc:Amount>
    </cac:AllowanceCharge>
    <cac:AllowanceCharge>
      <cbc:ChargeIndicator>false</cbc:ChargeIndicator>
      <cbc:AllowanceChargeReasonCode>95</cbc:AllowanceChargeReasonCode>
      <cbc:Amount currencyID="EUR">5.00</cbc:Amount>
    </cac:AllowanceCharge>
    <cac:Item>
      <cbc:Name>Export consulting</cbc:Name>
      <cac:ClassifiedTaxCategory><cbc:ID>Z</cbc:ID><cbc:Percent>0</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">50.00</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
  <cac:InvoiceLine>
    <cbc:ID>3</cbc:ID>
    <cbc:InvoicedQuantity unitCode="EA">-1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">-30.00</cbc:LineExtensionAmount>
    <cac:Item>
      <cbc:Name>Returned stapler</cbc:Name>
      <cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">30.00</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</Invoice>
"""


@pytest.fixture(scope="module")
def invoice() -> Invoice:
    return parse(FULL_INVOICE)


def test_document_header(invoice: Invoice) -> None:
    assert invoice.kind is DocumentKind.INVOICE
    assert invoice.customization_id == "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
    assert invoice.profile_id == "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
    assert invoice.id == "INV-2026-001"
    assert invoice.issue_date == date(2026, 3, 1)
    assert invoice.due_date == date(2026, 3, 31)
    assert invoice.type_code == "380"
    assert not invoice.is_credit_note
    assert invoice.notes == ("First note\nsecond line", "Second note")
    assert invoice.tax_point_date == date(2026, 2, 28)
    assert invoice.currency == "EUR"
    assert invoice.tax_currency == "SEK"
    assert invoice.accounting_reference == "4217:2323:2323"
    assert invoice.buyer_reference == "REF-0042"
    assert invoice.invoice_period is not None
    assert (invoice.invoice_period.start_date, invoice.invoice_period.end_date) == (
        date(2026, 2, 1),
        date(2026, 2, 28),
    )
    assert invoice.payment_terms == "Net 30 days"


def test_references(invoice: Invoice) -> None:
    assert invoice.order_reference == "PO-778"  # BT-13
    assert invoice.sales_order_reference == "SO-12"  # BT-14
    assert invoice.contract_reference == "CONTRACT-2026-01"  # BT-12
    assert invoice.project_reference == "PROJ-9"  # BT-11
    assert invoice.receiving_advice_reference == "RECADV-6"  # BT-15
    assert invoice.despatch_advice_reference == "DESADV-5"  # BT-16
    assert invoice.tender_or_lot_reference == "TENDER-7"  # BT-17
    assert invoice.invoiced_object_id == Identifier("OBJ-1", "AAG")  # BT-18
    assert invoice.preceding_invoices == (  # BG-3
        PrecedingInvoice("INV-2025-099", date(2025, 12, 15)),
        PrecedingInvoice("INV-2025-100", None),
    )
    timesheet, spec = invoice.supporting_documents  # BG-24, without the invoiced object
    assert (timesheet.id, timesheet.description) == ("TIMESHEET", "Hours worked")
    assert (timesheet.attachment_mime_code, timesheet.attachment_filename) == ("application/pdf", "hours.pdf")
    assert (spec.id, spec.external_uri) == ("SPEC", "https://example.com/spec")


def test_seller(invoice: Invoice) -> None:
    seller = invoice.seller
    assert seller is not None
    assert seller.name == "Seller AS"  # BT-27
    assert seller.trading_name == "Seller Trading"  # BT-28
    assert seller.identifiers == (  # BT-29, BT-90
        Identifier("5790000435968", "0088"),
        Identifier("DE98ZZZ09999999999", "SEPA"),
    )
    assert seller.legal_registration_id == Identifier("999888777", "0192")  # BT-30
    assert seller.vat_id == "NO999888777MVA"  # BT-31
    assert seller.tax_registration_id == "Foretaksregisteret"  # BT-32
    assert seller.legal_form == "Share capital 30 000 NOK"  # BT-33
    assert seller.endpoint_id == Identifier("999888777", "0192")  # BT-34
    address = seller.address
    assert address is not None
    assert address.street_name == "Main Street 1"
    assert address.additional_street_name == "Floor 2"
    assert address.address_line == "Gate 3"
    assert address.city_name == "Oslo"
    assert address.postal_zone == "0150"
    assert address.country_subdivision == "Oslo county"
    assert address.country_code == "NO"
    assert seller.contact is not None
    assert seller.contact.name == "Kari Nordmann"
    assert seller.contact.telephone == "+47 22 00 00 00"
    assert seller.contact.email == "kari@seller.example"


def test_buyer_payee_tax_representative_delivery(invoice: Invoice) -> None:
    buyer = invoice.buyer
    assert buyer is not None
    assert buyer.name == "The Ministry"  # BT-44
    assert buyer.trading_name == "Ministry Trading Name"  # BT-45
    assert buyer.identifiers == (Identifier("7300010000001", "0088"),)  # BT-46
    assert buyer.legal_registration_id == Identifier("5567321707", "0007")  # BT-47
    assert buyer.vat_id == "SE556732170701"  # BT-48
    assert buyer.endpoint_id == Identifier("5567321707", "0007")  # BT-49
    assert buyer.address is not None
    assert (buyer.address.city_name, buyer.address.country_code, buyer.address.street_name) == (
        "Stockholm",
        "SE",
        None,
    )
    assert buyer.contact is not None
    assert (buyer.contact.name, buyer.contact.email) == ("Ann Buyer", None)

    payee = invoice.payee
    assert payee is not None
    assert payee.name == "Factoring Ltd"
    assert payee.identifier == Identifier("7350053850019", "0088")
    assert payee.legal_registration_id == Identifier("5566778899", "0007")

    representative = invoice.tax_representative
    assert representative is not None
    assert (representative.name, representative.vat_id) == ("Tax Rep AS", "NO888777666MVA")
    assert representative.address is not None
    assert representative.address.country_code == "NO"

    delivery = invoice.delivery
    assert delivery is not None
    assert delivery.party_name == "Warehouse North"
    assert delivery.location_id == Identifier("7300010000099", "0088")
    assert delivery.actual_delivery_date == date(2026, 2, 20)
    assert delivery.address is not None
    assert delivery.address.street_name == "Dock 4"


def test_payment_means(invoice: Invoice) -> None:
    (means,) = invoice.payment_means
    assert means.code == "30"
    assert means.text == "Credit transfer"
    assert means.remittance_information == "INV-2026-001"
    assert means.payee_account is not None
    assert means.payee_account.id == "NO9386011117947"
    assert means.payee_account.name == "Seller AS operating account"
    assert means.payee_account.service_provider_id == "DNBANOKK"
    assert means.card is None
    assert means.mandate is None


def test_document_allowances_and_charges(invoice: Invoice) -> None:
    (allowance,) = invoice.allowances
    assert allowance.is_charge is False
    assert allowance.amount == eur("10.00")
    assert allowance.base_amount == eur("100.00")
    assert allowance.percentage == Decimal("10")
    assert (allowance.vat_category_code, allowance.vat_rate) == ("S", Decimal("25"))
    assert (allowance.reason, allowance.reason_code) == ("Discount", "95")
    (charge,) = invoice.charges
    assert charge.is_charge is True
    assert charge.amount == eur("20.00")
    assert charge.base_amount is None
    assert (charge.reason, charge.reason_code) == ("Freight", "FC")


def test_vat_breakdown_with_two_categories(invoice: Invoice) -> None:
    standard, zero = invoice.vat_breakdown
    assert (standard.category_code, standard.rate) == ("S", Decimal("25"))
    assert (standard.taxable_amount, standard.tax_amount) == (eur("82.50"), eur("20.63"))
    assert (zero.category_code, zero.rate) == ("Z", Decimal("0"))
    assert (zero.taxable_amount, zero.tax_amount) == (eur("100.00"), eur("0.00"))


def test_totals_keep_values_and_currencies(invoice: Invoice) -> None:
    totals = invoice.totals
    assert totals.line_extension_amount == eur("172.50")
    assert totals.allowance_total_amount == eur("10.00")
    assert totals.charge_total_amount == eur("20.00")
    assert totals.tax_exclusive_amount == eur("182.50")
    assert totals.tax_amount == eur("20.63")  # BT-110, document currency
    assert totals.tax_amount_in_accounting_currency == Amount(Decimal("230.00"), "SEK")  # BT-111
    assert totals.tax_inclusive_amount == eur("203.13")
    assert totals.prepaid_amount == eur("50.00")
    assert totals.rounding_amount == eur("-0.13")
    assert totals.payable_amount == eur("153.00")
    assert str(totals.payable_amount.value) == "153.00"  # the scale the document wrote is kept
    assert check_totals(invoice) == []


def test_line_with_every_term(invoice: Invoice) -> None:
    line = invoice.lines[0]
    assert line.id == "1"  # BT-126
    assert line.note == "Line note"  # BT-127
    assert line.object_id == Identifier("OBJ-L1", "ABZ")  # BT-128
    assert line.quantity == Quantity(Decimal("10"), "EA")  # BT-129, BT-130
    assert line.net_amount == eur("102.50")  # BT-131
    assert line.order_line_reference == "3"  # BT-132
    assert line.accounting_reference == "6000"  # BT-133
    assert line.period is not None
    assert (line.period.start_date, line.period.end_date) == (date(2026, 2, 1), date(2026, 2, 14))
    assert line.price is not None
    assert line.price.net_price == eur("10.25")  # BT-146
    assert line.price.discount == eur("0.75")  # BT-147
    assert line.price.gross_price == eur("11.00")  # BT-148
    assert line.price.base_quantity == Quantity(Decimal("1"), "EA")  # BT-149, BT-150
    assert (line.vat_category_code, line.vat_rate) == ("S", Decimal("25"))  # BT-151, BT-152
    item = line.item
    assert item is not None
    assert item.name == "Pens"  # BT-153
    assert item.description == "Blue pens, box of 10"  # BT-154
    assert item.sellers_id == "S-1"  # BT-155
    assert item.buyers_id == "B-1"  # BT-156
    assert item.standard_id == Identifier("07300010000001", "0160")  # BT-157
    assert item.classifications == (ItemClassification("44121704", "STI", "19.05.01"),)  # BT-158
    assert item.origin_country == "DE"  # BT-159
    assert item.attributes == (ItemAttribute("Colour", "Blue"),)  # BG-32
    assert line.allowances_charges == ()


def test_line_allowances_and_charges(invoice: Invoice) -> None:
    line = invoice.lines[1]
    (charge,) = line.charges
    (allowance,) = line.allowances
    assert (charge.amount, charge.reason, charge.reason_code) == (eur("5.00"), "Set-up", None)
    assert (allowance.amount, allowance.reason, allowance.reason_code) == (eur("5.00"), None, "95")
    assert (line.vat_category_code, line.vat_rate) == ("Z", Decimal("0"))
    assert line.price is not None
    assert line.price.discount is None
    assert line.price.base_quantity is None


def test_negative_line(invoice: Invoice) -> None:
    line = invoice.lines[2]
    assert line.quantity == Quantity(Decimal("-1"), "EA")
    assert line.net_amount == eur("-30.00")


CREDIT_NOTE = f"""{CREDIT_NOTE_OPEN}
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>CN-17</cbc:ID>
  <cbc:IssueDate>2026-04-01</cbc:IssueDate>
  <cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>REF-0042</cbc:BuyerReference>
  <cac:BillingReference>
    <cac:InvoiceDocumentReference><cbc:ID>INV-2026-001</cbc:ID><cbc:IssueDate>2026-03-01</cbc:IssueDate></cac:InvoiceDocumentReference>
  </cac:BillingReference>
  <cac:AdditionalDocumentReference>
    <cbc:ID>PROJ-9</cbc:ID>
    <cbc:DocumentTypeCode>50</cbc:DocumentTypeCode>
  </cac:AdditionalDocumentReference>
  <cac:AccountingSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="0192">999888777</cbc:EndpointID>
    <cac:PartyLegalEntity><cbc:RegistrationName>Seller AS</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party>
    <cac:PartyLegalEntity><cbc:RegistrationName>The Ministry</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingCustomerParty>
  <cac:PaymentMeans>
    <cbc:PaymentMeansCode>54</cbc:PaymentMeansCode>
    <cbc:PaymentDueDate>2026-04-15</cbc:PaymentDueDate>
    <cac:CardAccount>
      <cbc:PrimaryAccountNumberID>1234</cbc:PrimaryAccountNumberID>
      <cbc:NetworkID>VISA</cbc:NetworkID>
      <cbc:HolderName>Ann Buyer</cbc:HolderName>
    </cac:CardAccount>
  </cac:PaymentMeans>
  <cac:PaymentMeans>
    <cbc:PaymentMeansCode>59</cbc:PaymentMeansCode>
    <cac:PaymentMandate>
      <cbc:ID>MANDATE-1</cbc:ID>
      <cac:PayerFinancialAccount><cbc:ID>SE4550000000058398257466</cbc:ID></cac:PayerFinancialAccount>
    </cac:PaymentMandate>
  </cac:PaymentMeans>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">25.00</cbc:TaxAmount>
    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">100.00</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="EUR">25.00</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25.00</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
    </cac:TaxSubtotal>
    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">40.00</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="EUR">0.00</cbc:TaxAmount>
      <cac:TaxCategory>
        <cbc:ID>E</cbc:ID>
        <cbc:Percent>0</cbc:Percent>
        <cbc:TaxExemptionReasonCode>VATEX-EU-132-1G</cbc:TaxExemptionReasonCode>
        <cbc:TaxExemptionReason>Exempt: education</cbc:TaxExemptionReason>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
      </cac:TaxCategory>
    </cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">140.00</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">140.00</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">165.00</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">165.00</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:CreditNoteLine>
    <cbc:ID>1</cbc:ID>
    <cbc:CreditedQuantity unitCode="EA">4</cbc:CreditedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount>
    <cac:Item>
      <cbc:Name>Pens</cbc:Name>
      <cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">25.00</cbc:PriceAmount></cac:Price>
  </cac:CreditNoteLine>
  <cac:CreditNoteLine>
    <cbc:ID>2</cbc:ID>
    <cbc:CreditedQuantity unitCode="HUR">1</cbc:CreditedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">40.00</cbc:LineExtensionAmount>
    <cac:Item>
      <cbc:Name>Course</cbc:Name>
      <cac:ClassifiedTaxCategory><cbc:ID>E</cbc:ID><cbc:Percent>0</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">40.00</cbc:PriceAmount></cac:Price>
  </cac:CreditNoteLine>
</CreditNote>
"""


def test_credit_note() -> None:
    note = parse(CREDIT_NOTE)
    assert note.kind is DocumentKind.CREDIT_NOTE
    assert note.type_code == "381"
    assert note.is_credit_note
    assert note.id == "CN-17"
    assert note.preceding_invoices == (PrecedingInvoice("INV-2026-001", date(2026, 3, 1)),)
    assert note.project_reference == "PROJ-9"  # BT-11 travels as a type 50 document reference
    assert note.supporting_documents == ()
    assert note.due_date == date(2026, 4, 15)  # BT-9 from cac:PaymentMeans in a CreditNote
    assert [line.quantity for line in note.lines] == [Quantity(Decimal("4"), "EA"), Quantity(Decimal("1"), "HUR")]
    assert [line.net_amount for line in note.lines] == [eur("100.00"), eur("40.00")]
    assert note.totals.allowance_total_amount is None
    assert note.totals.prepaid_amount is None
    assert check_totals(note) == []


def test_credit_note_vat_exemption_and_payment_cards_and_mandates() -> None:
    note = parse(CREDIT_NOTE)
    exempt = note.vat_breakdown[1]
    assert (exempt.category_code, exempt.rate) == ("E", Decimal("0"))
    assert exempt.exemption_reason_code == "VATEX-EU-132-1G"
    assert exempt.exemption_reason == "Exempt: education"
    card_means, debit_means = note.payment_means
    assert card_means.code == "54"
    assert card_means.card is not None
    assert card_means.card.primary_account_number == "1234"
    assert card_means.card.network_id == "VISA"
    assert card_means.card.holder_name == "Ann Buyer"
    assert debit_means.code == "59"
    assert debit_means.mandate is not None
    assert debit_means.mandate.mandate_id == "MANDATE-1"
    assert debit_means.mandate.debited_account_id == "SE4550000000058398257466"


def test_fragment_with_nothing_but_an_id_still_parses() -> None:
    fragment = parse(f"{INVOICE_OPEN}<cbc:ID>X</cbc:ID></Invoice>")
    assert fragment.id == "X"
    assert fragment.issue_date is None
    assert fragment.currency is None
    assert fragment.seller is None
    assert fragment.lines == ()
    assert fragment.totals.payable_amount is None
    assert check_totals(fragment) == []


def test_missing_mandatory_money_still_gives_an_object() -> None:
    doc = parse(
        f"""{INVOICE_OPEN}
        <cbc:ID>X</cbc:ID>
        <cac:AllowanceCharge>
          <cbc:AllowanceChargeReason>No indicator, no amount</cbc:AllowanceChargeReason>
        </cac:AllowanceCharge>
        <cac:TaxTotal><cac:TaxSubtotal><cac:TaxCategory><cbc:ID>S</cbc:ID></cac:TaxCategory></cac:TaxSubtotal></cac:TaxTotal>
        <cac:LegalMonetaryTotal><cbc:PayableAmount currencyID="EUR">10.00</cbc:PayableAmount></cac:LegalMonetaryTotal>
        <cac:InvoiceLine><cbc:ID>1</cbc:ID><cac:Item/><cac:Price/></cac:InvoiceLine>
        </Invoice>"""
    )
    (ac,) = doc.allowances_charges
    assert ac.is_charge is None
    assert ac.amount is None
    assert doc.allowances == ()
    assert doc.charges == ()
    (breakdown,) = doc.vat_breakdown
    assert (breakdown.category_code, breakdown.taxable_amount, breakdown.tax_amount) == ("S", None, None)
    (line,) = doc.lines
    assert (line.quantity, line.net_amount) == (None, None)
    assert line.price is not None
    assert line.price.net_price is None
    assert line.item is not None
    assert line.item.name is None
    assert doc.totals.payable_amount == eur("10.00")
    assert doc.totals.tax_amount is None


def amount_doc(text: str) -> str:
    return (
        f"{INVOICE_OPEN}<cac:LegalMonetaryTotal>"
        f'<cbc:PayableAmount currencyID="EUR">{text}</cbc:PayableAmount>'
        "</cac:LegalMonetaryTotal></Invoice>"
    )


@pytest.mark.parametrize(
    "text", ["NaN", "nan", "Infinity", "-inf", "1e5", "1E-2", "1,50", "", "   ", "1.2.3", "+-1", "12 EUR", "0x10"]
)
def test_amounts_outside_xs_decimal_are_refused(text: str) -> None:
    with pytest.raises(UblParseError) as caught:
        parse(amount_doc(text))
    assert caught.value.element == "PayableAmount"
    assert caught.value.line == 1
    assert isinstance(caught.value, PermanentError)  # the worker gives up at once: it will never parse
    assert isinstance(caught.value, EInvoiceError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(" 12.50 ", "12.50"), ("+3", "3"), ("-0.5", "-0.5"), (".5", "0.5"), ("5.", "5"), ("\n 7 \t", "7")],
)
def test_amounts_in_xs_decimal_are_read_exactly(text: str, expected: str) -> None:
    payable = parse(amount_doc(text)).totals.payable_amount
    assert payable is not None
    assert payable.value == Decimal(expected)


@pytest.mark.parametrize("text", ["2026-02-30", "2026-2-1", "01.02.2026", "20260201", "", "2026-02-01T10:00:00"])
def test_malformed_dates_are_refused(text: str) -> None:
    with pytest.raises(UblParseError, match="IssueDate"):
        parse(f"{INVOICE_OPEN}<cbc:IssueDate>{text}</cbc:IssueDate></Invoice>")


@pytest.mark.parametrize("text", ["2026-02-01", " 2026-02-01 ", "2026-02-01Z", "2026-02-01+01:00"])
def test_dates_with_or_without_time_zone(text: str) -> None:
    assert parse(f"{INVOICE_OPEN}<cbc:IssueDate>{text}</cbc:IssueDate></Invoice>").issue_date == date(2026, 2, 1)


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("1", True), ("false", False), (" 0 ", False)])
def test_charge_indicator_booleans(text: str, expected: bool) -> None:
    doc = parse(
        f"{INVOICE_OPEN}<cac:AllowanceCharge><cbc:ChargeIndicator>{text}</cbc:ChargeIndicator>"
        "</cac:AllowanceCharge></Invoice>"
    )
    assert doc.allowances_charges[0].is_charge is expected


@pytest.mark.parametrize("text", ["True", "yes", "", "2"])
def test_malformed_charge_indicator_is_refused(text: str) -> None:
    with pytest.raises(UblParseError, match="ChargeIndicator"):
        parse(
            f"{INVOICE_OPEN}<cac:AllowanceCharge><cbc:ChargeIndicator>{text}</cbc:ChargeIndicator>"
            "</cac:AllowanceCharge></Invoice>"
        )


@pytest.mark.parametrize("element", ["InvoicedQuantity", "BaseQuantity", "Percent"])
def test_malformed_quantities_and_rates_are_refused(element: str) -> None:
    parts = {
        "InvoicedQuantity": "<cbc:InvoicedQuantity unitCode='EA'>1e3</cbc:InvoicedQuantity>",
        "BaseQuantity": "<cac:Price><cbc:BaseQuantity>NaN</cbc:BaseQuantity></cac:Price>",
        "Percent": "<cac:Item><cac:ClassifiedTaxCategory><cbc:Percent>25%</cbc:Percent>"
        "</cac:ClassifiedTaxCategory></cac:Item>",
    }
    with pytest.raises(UblParseError, match=element):
        parse(f"{INVOICE_OPEN}<cac:InvoiceLine>{parts[element]}</cac:InvoiceLine></Invoice>")


def test_comments_and_whitespace_around_values_are_ignored() -> None:
    doc = parse(
        f"""{INVOICE_OPEN}
        <!-- a comment before the id -->
        <cbc:ID>
            INV-1
        </cbc:ID>
        <cac:AccountingSupplierParty><!-- c --><cac:Party><!-- c -->
          <cac:PartyName><!-- c --><cbc:Name>Seller</cbc:Name></cac:PartyName>
        </cac:Party></cac:AccountingSupplierParty>
        </Invoice>"""
    )
    assert doc.id == "INV-1"
    assert doc.seller is not None
    assert doc.seller.trading_name == "Seller"


def test_empty_element_is_an_empty_string_not_none() -> None:
    doc = parse(f"{INVOICE_OPEN}<cbc:BuyerReference/></Invoice>")
    assert doc.buyer_reference == ""
    assert doc.order_reference is None


def test_tax_total_in_tax_currency_is_bt_111_whatever_the_order() -> None:
    doc = parse(
        f"""{INVOICE_OPEN}
        <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
        <cbc:TaxCurrencyCode>SEK</cbc:TaxCurrencyCode>
        <cac:TaxTotal><cbc:TaxAmount currencyID="SEK">110.00</cbc:TaxAmount></cac:TaxTotal>
        <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">10.00</cbc:TaxAmount></cac:TaxTotal>
        </Invoice>"""
    )
    assert doc.totals.tax_amount == eur("10.00")
    assert doc.totals.tax_amount_in_accounting_currency == Amount(Decimal("110.00"), "SEK")


def test_tax_currency_equal_to_document_currency_gives_no_bt_111() -> None:
    doc = parse(
        f"""{INVOICE_OPEN}
        <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
        <cbc:TaxCurrencyCode>EUR</cbc:TaxCurrencyCode>
        <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">10.00</cbc:TaxAmount></cac:TaxTotal>
        </Invoice>"""
    )
    assert doc.totals.tax_amount == eur("10.00")
    assert doc.totals.tax_amount_in_accounting_currency is None


def test_amount_without_currency_keeps_none() -> None:
    payable = parse(
        f"{INVOICE_OPEN}<cac:LegalMonetaryTotal><cbc:PayableAmount>1</cbc:PayableAmount>"
        "</cac:LegalMonetaryTotal></Invoice>"
    ).totals.payable_amount
    assert payable == Amount(Decimal("1"), None)


def test_totals_disagreement_is_reported_not_raised() -> None:
    wrong = FULL_INVOICE.replace(
        '<cbc:PayableAmount currencyID="EUR">153.00</cbc:PayableAmount>',
        '<cbc:PayableAmount currencyID="EUR">153.01</cbc:PayableAmount>',
    )
    assert [f.rule for f in check_totals(parse(wrong))] == ["BR-CO-16"]


@pytest.mark.parametrize(
    "xml",
    [
        '<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>',
        "<Invoice/>",  # no namespace
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"/>',
    ],
)
def test_other_roots_are_refused(xml: str) -> None:
    with pytest.raises(UblParseError, match="not a UBL Invoice or CreditNote"):
        parse(xml)


def test_parse_invoice_bytes_reads_a_credit_note() -> None:
    assert parse_invoice_bytes(CREDIT_NOTE.encode("utf-8")) == parse(CREDIT_NOTE)


def test_parse_invoice_bytes_keeps_the_intake_refusals() -> None:
    with pytest.raises(NotWellFormedError):
        parse_invoice_bytes(b"<Invoice")
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>' + FULL_INVOICE.split("?>", 1)[1].encode()
    with pytest.raises(UnsafeXmlError):
        parse_invoice_bytes(doctype)
    with pytest.raises(UnsupportedDocumentError):
        parse_invoice_bytes(b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>')


def test_parse_invoice_bytes_refuses_bad_values_like_parse_invoice() -> None:
    with pytest.raises(UblParseError, match="PayableAmount"):
        parse_invoice_bytes(amount_doc("1e5").encode())


_XML_TEXT = st.text(
    # Characters XML allows in text as they are ("]]>" is not allowed, so no ">").
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="<&>")
    | st.sampled_from("\t\n \u3000"),
    max_size=20,
)


@given(st.one_of(_XML_TEXT, st.from_regex(r"\A[+-]?[0-9]{0,6}(\.[0-9]{0,4})?\Z")))
def test_any_amount_text_either_reads_exactly_or_is_refused(text: str) -> None:
    try:
        payable = parse(amount_doc(text)).totals.payable_amount
    except UblParseError:
        return
    assert payable is not None
    assert payable.value == Decimal(text.strip(" \t\n"))


def test_only_xml_whitespace_is_trimmed() -> None:
    with pytest.raises(UblParseError):
        parse(f"{INVOICE_OPEN}<cbc:IssueDate>\u30002026-01-01</cbc:IssueDate></Invoice>")
    assert parse(f"{INVOICE_OPEN}<cbc:ID>\u3000X\n</cbc:ID></Invoice>").id == "\u3000X"


@given(st.one_of(_XML_TEXT, st.dates().map(date.isoformat)))
def test_any_date_text_either_reads_or_is_refused(text: str) -> None:
    try:
        issue_date = parse(f"{INVOICE_OPEN}<cbc:IssueDate>{text}</cbc:IssueDate></Invoice>").issue_date
    except UblParseError:
        return
    assert issue_date is not None
    assert issue_date.isoformat() == text.strip(" \t\n")[:10]


# --- the pipeline's parse ----------------------------------------------------------------------


def test_parse_for_pipeline_reads_invoices_and_credit_notes() -> None:
    assert parse_for_pipeline(FULL_INVOICE.encode("utf-8")) == parse(FULL_INVOICE)
    assert parse_for_pipeline(CREDIT_NOTE.encode("utf-8")).kind is DocumentKind.CREDIT_NOTE


@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        (b"<Invoice", NotWellFormedError),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><Invoice/>', UnsafeXmlError),
        (b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>', UnsupportedDocumentError),
    ],
)
def test_parse_for_pipeline_refuses_what_does_not_parse_with_one_permanent_error(
    raw: bytes, cause: type[Exception]
) -> None:
    with pytest.raises(DocumentParseError, match="the document cannot be parsed") as caught:
        parse_for_pipeline(raw)
    assert isinstance(caught.value, PermanentError)
    assert isinstance(caught.value.__cause__, cause)


def test_parse_for_pipeline_refuses_a_bad_value_naming_the_element() -> None:
    with pytest.raises(DocumentParseError, match="PayableAmount") as caught:
        parse_for_pipeline(amount_doc("1e5").encode())
    assert isinstance(caught.value, UblParseError)
    assert caught.value.element == "PayableAmount"


def test_parse_for_pipeline_keeps_the_limits_it_is_given() -> None:
    raw = FULL_INVOICE.encode("utf-8")
    with pytest.raises(DocumentParseError, match="too large"):
        parse_for_pipeline(raw, max_bytes=len(raw) - 1)
    with pytest.raises(DocumentParseError, match="nesting deeper than 3"):
        parse_for_pipeline(raw, max_depth=3)
    assert parse_for_pipeline(raw, max_bytes=len(raw)).id == "INV-2026-001"


# --- the header intake reads -------------------------------------------------------------------


def header(xml: str) -> DocumentHeader:
    return read_header(etree.fromstring(xml.encode("utf-8"), _PARSER))


def test_read_header_gives_intake_its_fields() -> None:
    assert header(FULL_INVOICE) == DocumentHeader(
        document_type="invoice",
        customization_id="urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0",
        number="INV-2026-001",
        issue_date=date(2026, 3, 1),
        currency="EUR",
        payable_amount=Decimal("153.00"),
        seller_endpoint=("0192", "999888777"),
        seller_vat_ids=("NO999888777MVA",),
        seller_tax_ids=("Foretaksregisteret",),
        seller_legal_ids=("999888777",),
        buyer_endpoint=("0007", "5567321707"),
    )
    credit_note = header(CREDIT_NOTE)
    assert (credit_note.document_type, credit_note.number, credit_note.buyer_endpoint) == ("credit_note", "CN-17", None)


def test_read_header_refuses_other_roots() -> None:
    with pytest.raises(UnsupportedDocumentError, match="not an invoice or a credit note"):
        header('<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1656.25", Decimal("1656.25")),
        (" \u300012.50\n", Decimal("12.50")),  # stripped of any white space, not only XML's
        ("1e5", Decimal("1E+5")),  # read as Python reads it; validation refuses it later
        ("1" * 40, Decimal("1" * 40)),
        ("1" * 41, None),  # longer than an amount column is meant to hold
        ("NaN", None),
        ("-Infinity", None),
        ("12,50", None),
        ("", None),
    ],
)
def test_the_header_amount_is_read_leniently(text: str, expected: Decimal | None) -> None:
    assert header(amount_doc(text)).payable_amount == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", date(2026, 11, 1)),
        (" 2026-11-01 ", date(2026, 11, 1)),
        ("2026-02-30", None),
        ("01.11.2026", None),
        ("", None),
    ],
)
def test_the_header_issue_date_is_read_leniently(text: str, expected: date | None) -> None:
    assert header(f"{INVOICE_OPEN}<cbc:IssueDate>{text}</cbc:IssueDate></Invoice>").issue_date == expected


# Pieces of a document's root, in any order, repeated or left out: the header must be what
# ElementPath's find gives for each path (the first element the path reaches, in document order),
# wherever the pieces stand, before the lines or after them.
_PIECES = {
    "id": "<cbc:ID> N-{n} </cbc:ID>",
    "blank id": "<cbc:ID> </cbc:ID>",
    "date": "<cbc:IssueDate>2026-0{m}-1{n}</cbc:IssueDate>",
    "currency": "<cbc:DocumentCurrencyCode>SEK</cbc:DocumentCurrencyCode>",
    "customization": "<cbc:CustomizationID>urn:x:{n}</cbc:CustomizationID>",
    "total": "<cac:LegalMonetaryTotal><cbc:PayableAmount>{n}.5</cbc:PayableAmount></cac:LegalMonetaryTotal>",
    "total without amount": "<cac:LegalMonetaryTotal><cbc:LineExtensionAmount>1</cbc:LineExtensionAmount>"
    "</cac:LegalMonetaryTotal>",
    "seller": "<cac:AccountingSupplierParty><cac:Party><cbc:EndpointID schemeID='0192'>S{n}</cbc:EndpointID>"
    "<cac:PartyTaxScheme><cbc:CompanyID>V{n}</cbc:CompanyID><cac:TaxScheme><cbc:ID>vat</cbc:ID></cac:TaxScheme>"
    "</cac:PartyTaxScheme><cac:PartyTaxScheme><cbc:CompanyID>T{n}</cbc:CompanyID></cac:PartyTaxScheme>"
    "<cac:PartyLegalEntity><cbc:CompanyID> L{n} </cbc:CompanyID></cac:PartyLegalEntity>"
    "<cac:PartyLegalEntity><cbc:CompanyID/></cac:PartyLegalEntity></cac:Party></cac:AccountingSupplierParty>",
    "seller without party": "<cac:AccountingSupplierParty/>",
    "buyer": "<cac:AccountingCustomerParty><cac:Party><cbc:EndpointID> B{n} </cbc:EndpointID></cac:Party>"
    "</cac:AccountingCustomerParty>",
    "buyer without endpoint": "<cac:AccountingCustomerParty><cac:Party/></cac:AccountingCustomerParty>",
    "line": "<cac:InvoiceLine><cbc:ID>{n}</cbc:ID></cac:InvoiceLine>",
    "comment": "<!-- {n} -->",
}


def _found_by_element_path(root: etree._Element) -> DocumentHeader:
    """The header as ElementPath reads it, one ``find`` per path (the reader intake had)."""

    def text(node: etree._Element | None, path: str) -> str | None:
        found = None if node is None else node.find(path, PREFIXES)
        return None if found is None or found.text is None else (found.text.strip() or None)

    def endpoint(party: etree._Element | None) -> tuple[str, str] | None:
        found = None if party is None else party.find("cbc:EndpointID", PREFIXES)
        if found is None or not (found.text or "").strip():
            return None
        return (found.get("schemeID") or "").strip(), (found.text or "").strip()

    seller = root.find("cac:AccountingSupplierParty/cac:Party", PREFIXES)
    schemes = [] if seller is None else seller.findall("cac:PartyTaxScheme", PREFIXES)
    entities = [] if seller is None else seller.findall("cac:PartyLegalEntity", PREFIXES)
    ids = [(text(s, "cbc:CompanyID"), (text(s, "cac:TaxScheme/cbc:ID") or "").upper() == "VAT") for s in schemes]
    issue_date, amount = text(root, "cbc:IssueDate"), text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount")
    return DocumentHeader(
        document_type="invoice",
        customization_id=text(root, "cbc:CustomizationID"),
        number=text(root, "cbc:ID"),
        issue_date=date.fromisoformat(issue_date) if issue_date else None,
        currency=text(root, "cbc:DocumentCurrencyCode"),
        payable_amount=Decimal(amount) if amount else None,
        seller_endpoint=endpoint(seller),
        seller_vat_ids=tuple(i for i, is_vat in ids if i and is_vat),
        seller_tax_ids=tuple(i for i, is_vat in ids if i and not is_vat),
        seller_legal_ids=tuple(i for i in (text(e, "cbc:CompanyID") for e in entities) if i),
        buyer_endpoint=endpoint(root.find("cac:AccountingCustomerParty/cac:Party", PREFIXES)),
    )


@given(st.lists(st.tuples(st.sampled_from(sorted(_PIECES)), st.integers(1, 9)), max_size=14))
def test_the_header_is_what_element_path_finds_wherever_its_elements_stand(pieces: list[tuple[str, int]]) -> None:
    body = "".join(_PIECES[name].format(n=n, m=n % 9 + 1) for name, n in pieces)
    root = etree.fromstring(f"{INVOICE_OPEN}{body}</Invoice>".encode(), _PARSER)
    assert read_header(root) == _found_by_element_path(root)
