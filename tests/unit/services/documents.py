"""Small UBL documents for tests that exercise intake and the pipeline, not the validators."""

from __future__ import annotations

SELLER_ENDPOINT = "0192:123456785"
SELLER_VAT = "NO123456785MVA"
SELLER_LEGAL_ID = "123456785"
BUYER_ENDPOINT = "0192:987654325"


def invoice(
    number: str = "INV-1",
    *,
    issue_date: str = "2026-11-01",
    seller_endpoint: str = SELLER_ENDPOINT,
    seller_vat: str | None = SELLER_VAT,
    seller_legal_id: str | None = SELLER_LEGAL_ID,
    buyer_endpoint: str | None = BUYER_ENDPOINT,
    amount: str = "125.00",
    note: str = "",
) -> bytes:
    """A UBL Invoice with the fields intake reads (not a complete, valid BIS 3 invoice)."""
    seller_scheme, seller_id = seller_endpoint.split(":", 1)
    vat = (
        f"<cac:PartyTaxScheme><cbc:CompanyID>{seller_vat}</cbc:CompanyID>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
        if seller_vat
        else ""
    )
    legal = (
        f"<cac:PartyLegalEntity><cbc:RegistrationName>Acme</cbc:RegistrationName>"
        f"<cbc:CompanyID>{seller_legal_id}</cbc:CompanyID></cac:PartyLegalEntity>"
        if seller_legal_id
        else ""
    )
    if buyer_endpoint:
        buyer_scheme, buyer_id = buyer_endpoint.split(":", 1)
        buyer = f'<cbc:EndpointID schemeID="{buyer_scheme}">{buyer_id}</cbc:EndpointID>'
    else:
        buyer = ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>{number}</cbc:ID>
  <cbc:IssueDate>{issue_date}</cbc:IssueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:Note>{note}</cbc:Note>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cac:AccountingSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="{seller_scheme}">{seller_id}</cbc:EndpointID>{vat}{legal}
  </cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party>{buyer}</cac:Party></cac:AccountingCustomerParty>
  <cac:LegalMonetaryTotal><cbc:PayableAmount currencyID="EUR">{amount}</cbc:PayableAmount></cac:LegalMonetaryTotal>
</Invoice>
""".encode()
