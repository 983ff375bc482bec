"""The XML namespaces of the documents the engine reads, written once.

UBL 2.1 document and component namespaces, the prefixes people read them by (``PREFIXES``, for
XPath and for messages), the Clark names of the two roots, and ``cbc``/``cac``: attribute access
to the Clark names of UBL elements (``cbc.PayableAmount`` is
``{urn:…:CommonBasicComponents-2}PayableAmount``), which ``find``, ``iterchildren`` and tag
comparisons take without a prefix map.
"""

from __future__ import annotations

UBL_NS_PREFIX = "urn:oasis:names:specification:ubl:schema:xsd:"
INVOICE_NS = UBL_NS_PREFIX + "Invoice-2"
CREDIT_NOTE_NS = UBL_NS_PREFIX + "CreditNote-2"
CBC_NS = UBL_NS_PREFIX + "CommonBasicComponents-2"
CAC_NS = UBL_NS_PREFIX + "CommonAggregateComponents-2"
EXT_NS = UBL_NS_PREFIX + "CommonExtensionComponents-2"

#: Documents the engine recognises only to refuse them with a hint.
CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
SBDH_NS = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
XINCLUDE_NS = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")

#: The usual UBL prefixes (as in the specifications and the Peppol examples).
PREFIXES = {
    "cbc": CBC_NS,
    "cac": CAC_NS,
    "ext": EXT_NS,
    "ubl": INVOICE_NS,
    "cn": CREDIT_NOTE_NS,
}

INVOICE_TAG = f"{{{INVOICE_NS}}}Invoice"
CREDIT_NOTE_TAG = f"{{{CREDIT_NOTE_NS}}}CreditNote"


class Tags:
    """``Tags(CBC_NS).StreetName`` is the Clark name of cbc:StreetName, built once and then cached."""

    def __init__(self, namespace: str) -> None:
        self._prefix = f"{{{namespace}}}"

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):  # not a UBL name: keep copy, pickle and friends from getting a tag
            raise AttributeError(name)
        tag = self._prefix + name
        setattr(self, name, tag)  # later lookups are plain attribute reads
        return tag


cbc = Tags(CBC_NS)
cac = Tags(CAC_NS)

ORDER_NS = UBL_NS_PREFIX + "Order-2"
DESPATCH_ADVICE_NS = UBL_NS_PREFIX + "DespatchAdvice-2"
ORDER_TAG = f"{{{ORDER_NS}}}Order"
DESPATCH_ADVICE_TAG = f"{{{DESPATCH_ADVICE_NS}}}DespatchAdvice"
