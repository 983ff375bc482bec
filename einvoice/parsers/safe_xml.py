"""Safe intake of untrusted XML: the only place the engine turns supplier bytes into a tree.

What is refused, and why:

- anything larger than ``max_bytes``, before a byte is parsed (``DocumentTooLargeError``);
- any DOCTYPE. A UBL document never needs one, and a DOCTYPE is where entity declarations
  (billion laughs, XXE, parameter entities) and external DTDs live. The prolog is scanned before
  parsing, so an entity bomb is never even tokenised; ``docinfo`` is checked again after parsing
  for encodings the scan cannot read (``UnsafeXmlError``);
- XInclude elements. The engine never processes XInclude, but a document carrying ``xi:include``
  has no business reason to and might be processed by a less careful consumer downstream, so it
  is refused rather than passed on (``UnsafeXmlError``);
- nesting deeper than ``max_depth`` (``UnsafeXmlError``). libxml2 itself stops at 256 levels
  without ``huge_tree``, after reading only the first levels, so a 100,000-deep document is refused
  in well under a millisecond with no tree built; a smaller ``max_depth`` is checked after parsing.
  The effective limit is ``min(max_depth, 256)``;
- bytes that are not well-formed XML in their declared or detected encoding: wrong declared
  encoding, UTF-16 without a BOM, invalid bytes, empty input (``NotWellFormedError``, with line
  and column).

The lxml parser is built per call (a few microseconds): lxml parsers must not be shared between
threads, and a parser per call needs no thread-local bookkeeping.

``harden_saxon`` closes saxonche's own doors: after the stylesheets are compiled, no protocol is
allowed, so ``document()``, ``doc()``, ``unparsed-text()`` and any DTD or entity fetch Saxon makes
fail instead of reading ``file://`` or ``http://`` resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lxml import etree

from einvoice.errors import DocumentTooLargeError, NotWellFormedError, UnsafeXmlError, UnsupportedDocumentError
from einvoice.parsers.namespaces import CII_NS, CREDIT_NOTE_TAG, INVOICE_TAG, SBDH_NS, UBL_NS_PREFIX, XINCLUDE_NS

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "SAXON_ALLOWED_PROTOCOLS",
    "DocumentType",
    "ParsedXml",
    "detect_type",
    "harden_saxon",
    "parse",
    "parse_document",
]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 256
LIBXML2_MAX_DEPTH = 256  # libxml2's own nesting limit when huge_tree is off

SAXON_ALLOWED_PROTOCOLS = "http://saxon.sf.net/feature/allowedProtocols"


class DocumentType(StrEnum):
    """The two document types the engine processes (EN 16931 BT-3 distinguishes further)."""

    INVOICE = "Invoice"
    CREDIT_NOTE = "CreditNote"


_ROOTS = {INVOICE_TAG: DocumentType.INVOICE, CREDIT_NOTE_TAG: DocumentType.CREDIT_NOTE}


@dataclass(frozen=True)
class ParsedXml:
    """A document that passed intake. ``document_type`` is None only if built by hand."""

    tree: etree._ElementTree
    root: etree._Element
    document_type: DocumentType | None
    root_name: str  # Clark name, {namespace}LocalName


# --- prolog scan ---------------------------------------------------------------------------------

# Whitespace, the XML declaration, comments and processing instructions may precede a DOCTYPE.
_PROLOG_MISC = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_UTF8_BOM = b"\xef\xbb\xbf"


# (first bytes, codec) as in XML 1.0 Appendix F; UTF-32 before UTF-16, their BOMs share a prefix.
_WIDE_ENCODINGS = (
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16"),
    (b"\xff\xfe", "utf-16"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)


def _prolog_text(data: bytes) -> bytes:
    """The document as ASCII-compatible bytes for the prolog scan."""
    if data.startswith(_UTF8_BOM):
        return data[len(_UTF8_BOM) :]
    for prefix, codec in _WIDE_ENCODINGS:
        if data.startswith(prefix):
            return data.decode(codec, errors="replace").encode("ascii", errors="replace")
    # ASCII-compatible encodings as they are; EBCDIC is refused by libxml2 as unsupported.
    return data


def _check_prolog(data: bytes) -> None:
    text = _prolog_text(data)
    end = _PROLOG_MISC.match(text)
    rest = text[end.end() if end else 0 :]
    if rest.startswith(b"<!DOCTYPE"):
        raise UnsafeXmlError("unsafe XML: a DOCTYPE is not allowed (no DTDs, no entity declarations)")


# Files people send instead of the XML, told by their first bytes.
_UBL_PLEASE = "send the UBL 2.1 Invoice or CreditNote XML (Peppol BIS Billing 3.0) itself"
_HYBRID_PDF_MARKERS = (b"factur-x", b"zugferd", b"xrechnung")


def _not_xml(data: bytes) -> str | None:
    """What ``data`` is when it is a well-known file that is not XML (a PDF, a ZIP archive), with
    what to send instead; None otherwise."""
    head = data.lstrip()[:8]
    if head.startswith(b"%PDF-"):
        lowered = data.lower()
        if any(marker in lowered for marker in _HYBRID_PDF_MARKERS):
            return (
                "not XML: a Factur-X/ZUGFeRD PDF (a PDF with a UN/CEFACT CII invoice attached); "
                f"{_UBL_PLEASE}, not the PDF nor its CII attachment"
            )
        return f"not XML: a PDF document; {_UBL_PLEASE} (a PDF copy can travel inside it as an attachment, BG-24)"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return f"not XML: a ZIP archive (or an Office document); unpack it and {_UBL_PLEASE}, one file at a time"
    if head.startswith(b"\x1f\x8b"):
        return f"not XML: a gzip-compressed file; unpack it and {_UBL_PLEASE}"
    return None


# --- parse ---------------------------------------------------------------------------------------

_POSITION_SUFFIX = re.compile(r",\s*line \d+, column \d+.*$", re.DOTALL)
_STRING_SUFFIX = re.compile(r"\s*\(<string>, line \d+\)\s*$")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        attribute_defaults=False,
        remove_blank_text=False,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _syntax_error(exc: etree.XMLSyntaxError, max_depth: int) -> Exception:
    raw = str(exc.msg or exc)
    message = _one_line(_STRING_SUFFIX.sub("", _POSITION_SUFFIX.sub("", raw)))
    line, column = exc.position if exc.position else (exc.lineno or 0, 0)
    if "Excessive depth" in raw or "use XML_PARSE_HUGE" in raw:
        limit = min(max_depth, LIBXML2_MAX_DEPTH)
        return UnsafeXmlError(f"unsafe XML: element nesting deeper than {limit} levels (line {line}, column {column})")
    if "Detected an entity reference loop" in raw or "amplification" in raw:
        return UnsafeXmlError(f"unsafe XML: entity expansion refused (line {line}, column {column})")
    return NotWellFormedError(f"not well-formed: line {line}, column {column}: {message or 'parse error'}")


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> etree._ElementTree:
    """Parse untrusted bytes with every resolver off; return the tree.

    Raises ``DocumentTooLargeError`` (over ``max_bytes``), ``UnsafeXmlError`` (DOCTYPE, entity
    declarations, XInclude, nesting deeper than ``max_depth``) or ``NotWellFormedError``
    ('not well-formed: line N, column M: …', or 'not XML: a PDF document; send …' for a PDF, a
    Factur-X PDF, a ZIP or gzip file). Every message is one line.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse() takes bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise DocumentTooLargeError(f"document too large: {len(data):,} bytes, the limit is {max_bytes:,} bytes")
    if not data.strip():
        raise NotWellFormedError("not well-formed: line 1, column 1: empty document")
    what = _not_xml(data)
    if what:
        raise NotWellFormedError(what)
    _check_prolog(data)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, max_depth) from None
    except ValueError as exc:  # e.g. lxml refusing an encoding it cannot handle
        raise NotWellFormedError(f"not well-formed: line 1, column 1: {_one_line(str(exc))}") from None
    tree = root.getroottree()
    docinfo: Any = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXmlError("unsafe XML: a DOCTYPE is not allowed (no DTDs, no entity declarations)")
    for namespace in XINCLUDE_NS:
        found = next(root.iter(f"{{{namespace}}}*"), None)
        if found is not None:
            raise UnsafeXmlError(f"unsafe XML: XInclude is not allowed (line {found.sourceline})")
    if max_depth < LIBXML2_MAX_DEPTH:
        # An element at depth max_depth + 1 exists? Evaluated in C, linear in the document.
        too_deep = root.xpath("(" + "/*" * (max_depth + 1) + ")[1]")
        if isinstance(too_deep, list) and too_deep:
            element = too_deep[0]
            line = element.sourceline if isinstance(element, etree._Element) else None
            raise UnsafeXmlError(f"unsafe XML: element nesting deeper than {max_depth} levels (line {line})")
    return tree


# --- document type -------------------------------------------------------------------------------


def _hint(namespace: str, local: str) -> str:
    if namespace == CII_NS:
        return "UN/CEFACT Cross Industry Invoice is not accepted; send UBL 2.1 (Peppol BIS Billing 3.0)"
    if namespace == SBDH_NS:
        return "unwrap the Standard Business Document Header and send the UBL invoice or credit note inside it"
    if local in ("Invoice", "CreditNote"):
        return f"the root element has the wrong namespace; a UBL 2.1 {local} uses {UBL_NS_PREFIX}{local}-2"
    if namespace.startswith(UBL_NS_PREFIX):
        return f"UBL {local} is not an invoice or a credit note; only Invoice and CreditNote are processed here"
    return "only UBL 2.1 Invoice and CreditNote (Peppol BIS Billing 3.0 / EN 16931) are processed"


def detect_type(root: etree._Element) -> DocumentType:
    """Return the document type named by the root element.

    Raises ``UnsupportedDocumentError`` ('unsupported document type: {ns}Root (hint)').
    """
    tag = root.tag
    if not isinstance(tag, str):  # comment or processing instruction
        raise UnsupportedDocumentError("unsupported document type: the root is not an element")
    found = _ROOTS.get(tag)
    if found is not None:
        return found
    qname = etree.QName(root)
    namespace = qname.namespace or ""
    raise UnsupportedDocumentError(f"unsupported document type: {tag} ({_hint(namespace, qname.localname)})")


def parse_document(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> ParsedXml:
    """``parse`` then ``detect_type``; return the tree, its root and document type.

    Raises what ``parse`` and ``detect_type`` raise.
    """
    tree = parse(data, max_bytes=max_bytes, max_depth=max_depth)
    root = tree.getroot()
    document_type = detect_type(root)
    return ParsedXml(tree=tree, root=root, document_type=document_type, root_name=str(root.tag))


# --- Saxon ---------------------------------------------------------------------------------------


def harden_saxon(processor: Any) -> None:
    """Forbid every URI protocol to a ``saxonche.PySaxonProcessor``; call after compiling.

    Sets the Saxon feature ``allowedProtocols`` to the empty string: from then on ``document()``,
    ``doc()``, ``unparsed-text()``, ``collection()`` and DTD or entity fetches made through Saxon
    fail ('Access to URI … has been prohibited'). Stylesheets must be compiled before, since
    compiling reads their modules through the same resolver; documents must then be handed to Saxon
    as text or a node, not as a file name.
    """
    processor.set_configuration_property(SAXON_ALLOWED_PROTOCOLS, "")
