"""The embedded attachments read back from the XML as received (BG-24): numbered as the parsed
document lists its supporting documents, decoded, their mime code kept only when it is one."""

from __future__ import annotations

import base64
from datetime import date

import pytest

from einvoice.benchmarks.pipeline import invoice_xml
from einvoice.errors import UnsafeXmlError
from einvoice.parsers.attachments import OCTET_STREAM, embedded_attachment
from einvoice.parsers.ubl import parse_invoice_bytes

CONTENT = b"line 1\nline 2\n"


def _reference(identifier: str, inner: str, type_code: str | None = None) -> str:
    code = f"<cbc:DocumentTypeCode>{type_code}</cbc:DocumentTypeCode>" if type_code else ""
    return (
        f"<cac:AdditionalDocumentReference><cbc:ID>{identifier}</cbc:ID>{code}{inner}</cac:AdditionalDocumentReference>"
    )


def _embedded(mime: str = "text/csv", filename: str = "hours.csv", text: str | None = None) -> str:
    data = text if text is not None else base64.b64encode(CONTENT).decode()
    return (
        f'<cac:Attachment><cbc:EmbeddedDocumentBinaryObject mimeCode="{mime}" filename="{filename}">{data}'
        "</cbc:EmbeddedDocumentBinaryObject></cac:Attachment>"
    )


def _invoice(*references: str) -> bytes:
    body = invoice_xml(number="ATT-1", issue_date=date(2026, 11, 2))
    return body.replace(
        b"<cac:AccountingSupplierParty>", "".join(references).encode() + b"<cac:AccountingSupplierParty>"
    )


def test_attachments_are_numbered_as_the_parsed_document_lists_them() -> None:
    raw = _invoice(
        _reference("OBJ-1", "", type_code="130"),  # the invoiced object (BT-18): not a supporting document
        _reference(
            "LINK-1",
            "<cac:Attachment><cac:ExternalReference><cbc:URI>https://x.example/a</cbc:URI>"
            "</cac:ExternalReference></cac:Attachment>",
        ),
        _reference("CSV-1", _embedded()),
    )
    listed = parse_invoice_bytes(raw).supporting_documents
    assert [d.id for d in listed] == ["LINK-1", "CSV-1"]
    assert embedded_attachment(raw, 1) is None  # a link elsewhere has no bytes here
    found = embedded_attachment(raw, 2)
    assert found is not None
    assert (found.content, found.mime_code, found.filename) == (CONTENT, "text/csv", listed[1].attachment_filename)
    assert embedded_attachment(raw, 0) is None
    assert embedded_attachment(raw, 3) is None


def test_base64_across_lines_is_decoded() -> None:
    encoded = base64.b64encode(CONTENT).decode()
    found = embedded_attachment(_invoice(_reference("A", _embedded(text=f"\n  {encoded[:8]}\n  {encoded[8:]}\n"))), 1)
    assert found is not None
    assert found.content == CONTENT


@pytest.mark.parametrize("mime", ["text/html; charset=utf-8", "html", "", "text/ html"])
def test_a_mime_code_that_is_not_type_and_subtype_downloads_as_octets(mime: str) -> None:
    found = embedded_attachment(_invoice(_reference("A", _embedded(mime=mime))), 1)
    assert found is not None
    assert found.mime_code == OCTET_STREAM


def test_content_that_is_not_base64_is_no_attachment() -> None:
    assert embedded_attachment(_invoice(_reference("A", _embedded(text="not base64 at all!"))), 1) is None


def test_the_xml_is_read_with_the_safe_parser() -> None:
    raw = _invoice(_reference("A", _embedded()))
    head, _, rest = raw.partition(b"?>")
    with pytest.raises(UnsafeXmlError):
        embedded_attachment(head + b'?>\n<!DOCTYPE Invoice [<!ENTITY x "x">]>' + rest, 1)
