"""Every invoice and credit note in the shared corpus parses, and its parsed totals agree.

Two independent readings of each sample are compared: the parser's domain ``Invoice``, and plain
XPath over the same document. ``check_totals`` must report nothing for any complete sample:
the official EN 16931 1.3.16 stylesheet, run over all of them, flags none for BR-CO-10..16 (and
none of them is invalid in its totals), so ``KNOWN_TOTALS_DISAGREEMENTS`` is empty. Should a
future corpus bring a deliberately wrong sample, it goes there by name with the official rule
that flags it, never under a blanket skip.

Each sample and fragment that parses survives the stored form (``parsers.invoice_dict``) unchanged,
and intake's header (``read_header``) agrees with the parse.

The EN 16931 unit tests are fragments: each must either parse or be refused with
``UblParseError`` for a value outside its lexical space (listed below), and for the BR-CO-10..16
tests ``check_totals`` must come to the same verdict as the official rule.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from einvoice.domain.invoice import DocumentKind, Invoice, check_totals
from einvoice.domain.money import Amount
from einvoice.errors import DocumentParseError
from einvoice.parsers import safe_xml
from einvoice.parsers.invoice_dict import invoice_from_dict, invoice_to_dict
from einvoice.parsers.namespaces import CREDIT_NOTE_TAG, INVOICE_TAG, PREFIXES
from einvoice.parsers.ubl import UblParseError, parse_for_pipeline, parse_invoice, parse_invoice_bytes, read_header
from tests.conftest import CORPUS_DIR

SAMPLE_GLOBS = (
    "en16931-1.3.16/ubl/examples/*",
    "en16931-1.3.16/test/testfiles/*",
    "peppol-bis3/rules/examples/*",
    "peppol-bis3/rules/snippets/*",
    "peppol-2026.5/billing/*",
    "peppol-2026.5/*",  # SB-*.xml, and Order, DespatchAdvice, ApplicationResponse examples
)
UNIT_TEST_GLOBS = ("en16931-1.3.16/test/Invoice-unit-UBL/*", "en16931-1.3.16/test/CreditNote-unit-UBL/*")

# Complete samples that disagree in their totals on purpose: {relative path: official rule and why}.
KNOWN_TOTALS_DISAGREEMENTS: dict[str, str] = {}

# Unit-test fragments refused by the parser: {(file, test number): element with a bad value}.
# All are values the UBL XSD refuses too; the tests they sit in are about other rules.
REFUSED_FRAGMENTS = {
    ("Invoice-unit-UBL/BR-03.xml", 0): "IssueDate",  # '123'
    ("CreditNote-unit-UBL/BR-03.xml", 0): "IssueDate",  # '123'
    ("Invoice-unit-UBL/BR-CL-23.xml", 0): "InvoicedQuantity",  # empty
    ("Invoice-unit-UBL/BR-CL-23.xml", 1): "InvoicedQuantity",  # empty
    ("Invoice-unit-UBL/BR-IC-11.xml", 2): "ActualDeliveryDate",  # empty
    ("Invoice-unit-UBL/BR-IC-11.xml", 4): "ActualDeliveryDate",  # empty
    ("Invoice-unit-UBL/BR-IC-11.xml", 5): "ActualDeliveryDate",  # empty
}

# Unit tests where check_totals and the official rule differ: {(file, test number): why}.
TOTALS_RULE_DIVERGENCES = {
    ("Invoice-unit-UBL/BR-CO-15.xml", 7): (
        "two cac:TaxTotal/cbc:TaxAmount in the document currency (700.00 and 715): BR-CO-15 demands "
        "exactly one; the model has room for one BT-110 and keeps the first, which agrees"
    ),
    ("CreditNote-unit-UBL/BR-CO-15.xml", 7): "as in Invoice-unit-UBL/BR-CO-15.xml test 7",
}

BR_CO_TOTALS = frozenset(f"BR-CO-{n}" for n in range(10, 17))
VEFA = "{http://difi.no/xsd/vefa/validator/1.0}"
NS = PREFIXES
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _files(globs: tuple[str, ...]) -> list[str]:
    if not CORPUS_DIR.is_dir():
        return []
    found = {p for pattern in globs for p in CORPUS_DIR.glob(pattern) if p.is_file() and p.suffix.lower() == ".xml"}
    return sorted(str(p.relative_to(CORPUS_DIR)) for p in found)


def _root(path: Path) -> etree._Element:
    return etree.parse(str(path), _PARSER).getroot()


SAMPLES = _files(SAMPLE_GLOBS)
UNIT_TESTS = _files(UNIT_TEST_GLOBS)


def test_the_corpus_is_all_there(corpus_dir: Path) -> None:
    invoices = [s for s in SAMPLES if _root(corpus_dir / s).tag in (INVOICE_TAG, CREDIT_NOTE_TAG)]
    assert len(invoices) == 91
    assert len(UNIT_TESTS) == 277
    assert set(KNOWN_TOTALS_DISAGREEMENTS) <= set(invoices)


def _amount(root: etree._Element, path: str) -> Decimal | None:
    found = root.xpath(f"string({path})", namespaces=NS)
    assert isinstance(found, str)
    return Decimal(found.strip()) if found.strip() else None


def _value(amount: Amount | None) -> Decimal | None:
    return None if amount is None else amount.value


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_parses_and_totals_agree(corpus_dir: Path, sample: str) -> None:
    root = _root(corpus_dir / sample)
    if root.tag not in (INVOICE_TAG, CREDIT_NOTE_TAG):
        with pytest.raises(UblParseError):  # an Order, DespatchAdvice, ApplicationResponse, ...
            parse_invoice(root)
        return

    invoice = parse_invoice(root)
    assert parse_invoice_bytes((corpus_dir / sample).read_bytes()) == invoice  # through safe_xml intake

    _assert_complete(invoice, root)
    _assert_totals_as_written(invoice, root)
    findings = check_totals(invoice)
    if sample in KNOWN_TOTALS_DISAGREEMENTS:
        assert findings, f"listed as disagreeing ({KNOWN_TOTALS_DISAGREEMENTS[sample]}), but agrees"
    else:
        assert findings == [], [f.message for f in findings]


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_survives_the_stored_form_and_its_header_agrees(corpus_dir: Path, sample: str) -> None:
    raw = (corpus_dir / sample).read_bytes()
    if _root(corpus_dir / sample).tag not in (INVOICE_TAG, CREDIT_NOTE_TAG):
        with pytest.raises(DocumentParseError):
            parse_for_pipeline(raw)
        return
    invoice = parse_for_pipeline(raw)
    stored = json.loads(json.dumps(invoice_to_dict(invoice)))
    back = invoice_from_dict(stored)
    assert back == invoice
    assert repr(back) == repr(invoice)
    assert len(stored["lines"]) == len(invoice.lines) > 0

    # Intake's header and the parse agree on every field they share.
    header = read_header(safe_xml.parse(raw).getroot())
    assert invoice.seller is not None
    assert invoice.buyer is not None
    assert (header.number, header.issue_date, header.currency, header.customization_id) == (
        invoice.id,
        invoice.issue_date,
        invoice.currency,
        invoice.customization_id,
    )
    assert header.payable_amount == _value(invoice.totals.payable_amount)
    assert header.document_type == invoice.kind.value
    for endpoint, party in ((header.seller_endpoint, invoice.seller), (header.buyer_endpoint, invoice.buyer)):
        stated = party.endpoint_id
        assert endpoint == (None if stated is None else (stated.scheme, stated.value))
    assert header.seller_vat_ids[:1] == ((invoice.seller.vat_id,) if invoice.seller.vat_id else ())
    assert header.seller_tax_ids[:1] == (
        (invoice.seller.tax_registration_id,) if invoice.seller.tax_registration_id else ()
    )
    legal = invoice.seller.legal_registration_id
    assert header.seller_legal_ids[:1] == ((legal.value,) if legal else ())


def _assert_complete(invoice: Invoice, root: etree._Element) -> None:
    is_credit_note = root.tag == CREDIT_NOTE_TAG
    assert invoice.kind is (DocumentKind.CREDIT_NOTE if is_credit_note else DocumentKind.INVOICE)
    assert invoice.id
    assert invoice.issue_date is not None
    assert invoice.type_code
    assert invoice.currency
    assert invoice.customization_id
    assert invoice.seller is not None
    assert invoice.seller.name
    assert invoice.buyer is not None
    assert invoice.buyer.name
    line_tag = "cac:CreditNoteLine" if is_credit_note else "cac:InvoiceLine"
    assert len(invoice.lines) == len(root.findall(line_tag, NS)) > 0
    for line in invoice.lines:
        assert line.id
        assert line.quantity is not None
        assert line.net_amount is not None
        assert line.net_amount.currency == invoice.currency
        assert line.item is not None
        assert line.item.name is not None
        assert line.vat_category_code
    assert len(invoice.vat_breakdown) == len(root.findall("cac:TaxTotal/cac:TaxSubtotal", NS)) > 0


def _assert_totals_as_written(invoice: Invoice, root: etree._Element) -> None:
    totals = invoice.totals
    monetary = "cac:LegalMonetaryTotal/cbc:"
    for field, element in (
        ("line_extension_amount", "LineExtensionAmount"),
        ("allowance_total_amount", "AllowanceTotalAmount"),
        ("charge_total_amount", "ChargeTotalAmount"),
        ("tax_exclusive_amount", "TaxExclusiveAmount"),
        ("tax_inclusive_amount", "TaxInclusiveAmount"),
        ("prepaid_amount", "PrepaidAmount"),
        ("rounding_amount", "PayableRoundingAmount"),
        ("payable_amount", "PayableAmount"),
    ):
        assert _value(getattr(totals, field)) == _amount(root, monetary + element), field
    currency = invoice.currency
    assert _value(totals.tax_amount) == _amount(root, f"cac:TaxTotal/cbc:TaxAmount[@currencyID='{currency}']")
    if invoice.tax_currency and invoice.tax_currency != currency:
        expected = _amount(root, f"cac:TaxTotal/cbc:TaxAmount[@currencyID='{invoice.tax_currency}']")
        assert _value(totals.tax_amount_in_accounting_currency) == expected
    else:
        assert totals.tax_amount_in_accounting_currency is None
    for field in ("line_extension_amount", "tax_exclusive_amount", "tax_inclusive_amount", "payable_amount"):
        amount = getattr(totals, field)
        assert amount is not None
        assert amount.currency == currency, field


def _unit_tests(path: Path) -> list[tuple[int, etree._Element, etree._Element]]:
    """(test number, vefa assert, document) for each test in a vefa testSet."""
    result = []
    for number, test in enumerate(_root(path).iter(f"{VEFA}test")):
        document = next((c for c in test if c.tag in (INVOICE_TAG, CREDIT_NOTE_TAG)), None)
        expectation = test.find(f"{VEFA}assert")
        if document is not None and expectation is not None:
            result.append((number, expectation, document))
    return result


@pytest.mark.parametrize("test_set", UNIT_TESTS)
def test_unit_test_fragments_parse_or_are_refused_as_listed(corpus_dir: Path, test_set: str) -> None:
    name = test_set.removeprefix("en16931-1.3.16/test/")
    for number, expectation, document in _unit_tests(corpus_dir / test_set):
        refused = REFUSED_FRAGMENTS.get((name, number))
        if refused is not None:
            with pytest.raises(UblParseError) as caught:
                parse_invoice(document)
            assert caught.value.element == refused, f"test {number}: {caught.value}"
            continue
        invoice = parse_invoice(document)
        # Fragments leave out what complete samples never do: the stored form keeps that too.
        assert invoice_from_dict(json.loads(json.dumps(invoice_to_dict(invoice)))) == invoice, f"test {number}"

        rules_fired = {f.rule for f in check_totals(invoice)}
        for outcome in ("success", "error", "warning"):
            for rule_element in expectation.findall(f"{VEFA}{outcome}"):
                rule = (rule_element.text or "").strip()
                if rule not in BR_CO_TOTALS:
                    continue
                agrees = (rule in rules_fired) == (outcome != "success")
                divergence = TOTALS_RULE_DIVERGENCES.get((name, number))
                assert agrees or divergence, f"test {number}: {rule} expected {outcome}, fired: {sorted(rules_fired)}"
                assert not (agrees and divergence), f"test {number} listed as diverging, but agrees"
