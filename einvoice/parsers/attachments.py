"""The embedded attachments of a UBL invoice or credit note (BG-24, BT-125): the parsed document
(``domain.invoice.SupportingDocument``) keeps what an attachment is, not its bytes; the bytes are
read from the XML as received, with the project's safe parser, when a person downloads one.

The attachments are numbered as the parsed document lists its supporting documents, from 1: every
``cac:AdditionalDocumentReference`` of the root except the invoiced object (``DocumentTypeCode``
130, BT-18) and a credit note's project (50, BT-11).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from lxml import etree

from einvoice.parsers import safe_xml
from einvoice.parsers.namespaces import cac, cbc
from einvoice.parsers.ubl import _INVOICED_OBJECT_CODE, _PROJECT_CODE

#: What a download without a (usable) mime code is sent as.
OCTET_STREAM = "application/octet-stream"
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True, slots=True)
class EmbeddedAttachment:
    number: int  # 1-based, as the parsed document lists its supporting documents
    content: bytes
    mime_code: str
    filename: str | None


def _supporting(root: etree._Element) -> list[etree._Element]:
    found = []
    for element in root.iterchildren(cac.AdditionalDocumentReference):
        code = element.findtext(cbc.DocumentTypeCode)
        if code is None or code.strip() not in (_INVOICED_OBJECT_CODE, _PROJECT_CODE):
            found.append(element)
    return found


def embedded_attachment(raw: bytes, number: int) -> EmbeddedAttachment | None:
    """The ``number``-th supporting document's embedded bytes (base64-decoded), mime code (one
    that is not ``type/subtype`` is ``application/octet-stream``) and filename; None when there is
    no such document, it has no embedded object (an external URI only), or its content is not
    base64. The XML was accepted at intake: it is parsed again with the same refusals (no DOCTYPE,
    no XInclude), with no size limit below its own."""
    root = safe_xml.parse(raw, max_bytes=max(len(raw), safe_xml.DEFAULT_MAX_BYTES)).getroot()
    documents = _supporting(root)
    if not 1 <= number <= len(documents):
        return None
    embedded = documents[number - 1].find(f"{cac.Attachment}/{cbc.EmbeddedDocumentBinaryObject}")
    if embedded is None:
        return None
    try:
        content = base64.b64decode("".join((embedded.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    mime = (embedded.get("mimeCode") or "").strip()
    filename = (embedded.get("filename") or "").strip() or None
    return EmbeddedAttachment(number, content, mime if _MIME.fullmatch(mime) else OCTET_STREAM, filename)


__all__ = ["OCTET_STREAM", "EmbeddedAttachment", "embedded_attachment"]
