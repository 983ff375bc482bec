"""Safe intake: limits, refusals and error messages of ``einvoice.parsers.safe_xml``."""

from __future__ import annotations

import threading

import pytest
from lxml import etree

from einvoice.errors import (
    DocumentTooLargeError,
    IntakeError,
    NotWellFormedError,
    UnsafeXmlError,
    UnsupportedDocumentError,
)
from einvoice.parsers import safe_xml
from einvoice.parsers.safe_xml import DocumentType, ParsedXml

INVOICE = b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>1</ID></Invoice>'
CREDIT_NOTE = b'<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"/>'


def test_invoice_is_parsed_and_typed() -> None:
    parsed = safe_xml.parse_document(INVOICE)
    assert isinstance(parsed, ParsedXml)
    assert parsed.document_type is DocumentType.INVOICE
    assert parsed.root_name == "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
    assert parsed.root is parsed.tree.getroot()
    assert isinstance(parsed.tree, etree._ElementTree)


def test_credit_note_is_typed() -> None:
    assert safe_xml.parse_document(CREDIT_NOTE).document_type is DocumentType.CREDIT_NOTE


def test_document_type_values_match_root_names() -> None:
    assert DocumentType.INVOICE.value == "Invoice"
    assert DocumentType.CREDIT_NOTE.value == "CreditNote"


def test_utf8_bom_is_accepted() -> None:
    data = b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>' + INVOICE
    assert safe_xml.parse_document(data).document_type is DocumentType.INVOICE


def test_utf16_with_bom_and_declaration_is_accepted() -> None:
    data = ('<?xml version="1.0" encoding="UTF-16"?>' + INVOICE.decode()).encode("utf-16")
    assert safe_xml.parse_document(data).document_type is DocumentType.INVOICE


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(DocumentTooLargeError, match="document too large: 101 bytes, the limit is 100 bytes"):
        safe_xml.parse(b"<" * 101, max_bytes=100)


def test_too_large_is_an_unsafe_xml_error_and_an_intake_error() -> None:
    assert issubclass(DocumentTooLargeError, UnsafeXmlError)
    assert issubclass(UnsafeXmlError, IntakeError)


@pytest.mark.parametrize("data", [b"", b"  \n\t "])
def test_empty_body_is_not_well_formed(data: bytes) -> None:
    with pytest.raises(NotWellFormedError, match=r"^not well-formed: line 1, column 1: empty document$"):
        safe_xml.parse(data)


def test_not_well_formed_message_has_line_and_column() -> None:
    with pytest.raises(NotWellFormedError) as info:
        safe_xml.parse(b"<a>\n  <b></a>")
    message = str(info.value)
    assert message.startswith("not well-formed: line 2, column ")
    assert "\n" not in message
    assert "<string>" not in message


def test_declared_utf8_with_latin1_bytes_is_not_well_formed() -> None:
    with pytest.raises(NotWellFormedError, match=r"line 1, column \d+: .*encoding"):
        safe_xml.parse(b'<?xml version="1.0" encoding="UTF-8"?><a>caf\xe9</a>')


def test_utf16_without_bom_is_not_well_formed() -> None:
    with pytest.raises(NotWellFormedError, match=r"^not well-formed: line 1, column \d+: "):
        safe_xml.parse("<a>é</a>".encode("utf-16-le"))


def test_declared_utf16_but_single_byte_content_is_not_well_formed() -> None:
    with pytest.raises(NotWellFormedError):
        safe_xml.parse(b'<?xml version="1.0" encoding="UTF-16"?><a/>')


@pytest.mark.parametrize("data", [b"not xml at all", b"\x00\x01\x02\x03", b'{"json": true}'])
def test_not_xml_bytes_are_not_well_formed(data: bytes) -> None:
    with pytest.raises(NotWellFormedError, match=r"^not well-formed: line \d+, column \d+: "):
        safe_xml.parse(data)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"%PDF-1.7\n", "a PDF document"),
        (b"%PDF-1.7\n<< /F (factur-x.xml) >>", "a Factur-X/ZUGFeRD PDF"),
        (b"PK\x03\x04\x14\x00", "a ZIP archive"),
        (b"\x1f\x8b\x08\x00", "a gzip-compressed file"),
    ],
)
def test_a_known_file_that_is_not_xml_is_named_with_what_to_send(data: bytes, named: str) -> None:
    with pytest.raises(NotWellFormedError, match=f"^not XML: {named}.*send the UBL 2.1 Invoice or CreditNote XML"):
        safe_xml.parse(data)


def test_undeclared_entity_reference_is_not_well_formed() -> None:
    with pytest.raises(NotWellFormedError, match="Entity 'foo' not defined"):
        safe_xml.parse(b"<a>&foo;</a>")


def test_predefined_and_character_entities_are_fine() -> None:
    root = safe_xml.parse(b"<a>&lt;&amp;&#233;</a>").getroot()
    assert root.text == "<&é"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE a><a/>",
        b'<?xml version="1.0"?>\n<!-- c --><?pi x?>\n  <!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
        b'\xef\xbb\xbf<!DOCTYPE a SYSTEM "a.dtd"><a/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a><a/>'.encode("utf-16"),
    ],
)
def test_any_doctype_is_refused(data: bytes) -> None:
    with pytest.raises(UnsafeXmlError, match="DOCTYPE is not allowed"):
        safe_xml.parse(data)


def test_doctype_text_inside_a_comment_in_the_body_is_not_a_doctype() -> None:
    root = safe_xml.parse(b"<a><!-- <!DOCTYPE x> --></a>").getroot()
    assert root.tag == "a"


def test_xinclude_is_refused_not_processed() -> None:
    data = b'<a xmlns:xi="http://www.w3.org/2001/XInclude">\n<xi:include href="/etc/passwd" parse="text"/></a>'
    with pytest.raises(UnsafeXmlError, match=r"XInclude is not allowed \(line 2\)"):
        safe_xml.parse(data)


def test_depth_at_the_limit_is_accepted_and_beyond_refused() -> None:
    safe_xml.parse(b"<a>" * 256 + b"</a>" * 256)
    with pytest.raises(UnsafeXmlError, match="nesting deeper than 256 levels"):
        safe_xml.parse(b"<a>" * 257 + b"</a>" * 257)


def test_smaller_max_depth_is_enforced() -> None:
    safe_xml.parse(b"<a>" * 10 + b"</a>" * 10, max_depth=10)
    with pytest.raises(UnsafeXmlError, match="nesting deeper than 10 levels"):
        safe_xml.parse(b"<a>" * 11 + b"</a>" * 11, max_depth=10)


def test_bytes_only() -> None:
    with pytest.raises(TypeError):
        safe_xml.parse("<a/>")  # type: ignore[arg-type]


def test_bytearray_is_accepted() -> None:
    assert safe_xml.parse(bytearray(INVOICE)).getroot() is not None


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (
            b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"/>',
            "Cross Industry Invoice is not accepted",
        ),
        (b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>', "UBL Order is not an invoice"),
        (b"<Invoice/>", "wrong namespace"),
        (
            b'<StandardBusinessDocument xmlns="http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"/>',
            "Standard Business Document Header",
        ),
        (b"<html/>", "only UBL 2.1 Invoice and CreditNote"),
    ],
)
def test_unsupported_roots_name_the_root_and_give_a_hint(data: bytes, hint: str) -> None:
    with pytest.raises(UnsupportedDocumentError) as info:
        safe_xml.parse_document(data)
    message = str(info.value)
    assert message.startswith("unsupported document type: ")
    assert hint in message
    assert "\n" not in message


def test_detect_type_on_a_root() -> None:
    root = etree.fromstring(CREDIT_NOTE)
    assert safe_xml.detect_type(root) is DocumentType.CREDIT_NOTE


def test_parse_is_thread_safe() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                assert safe_xml.parse_document(INVOICE).document_type is DocumentType.INVOICE
                with pytest.raises(NotWellFormedError):
                    safe_xml.parse(b"<a>")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


class _FakeProcessor:
    def __init__(self) -> None:
        self.properties: dict[str, str] = {}

    def set_configuration_property(self, name: str, value: str) -> None:
        self.properties[name] = value


def test_harden_saxon_allows_no_protocol() -> None:
    processor = _FakeProcessor()
    safe_xml.harden_saxon(processor)
    assert processor.properties == {"http://saxon.sf.net/feature/allowedProtocols": ""}
