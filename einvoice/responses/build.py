"""The UBL ApplicationResponse documents the buyer sends the supplier: the Peppol Invoice Response
(BIS 63, T111) for each business step of an invoice, and the Message Level Response (BIS 36, T71)
for a document rejected by validation. Pure: the facts in, the XML bytes out; no I/O, no clock.

Both are built as the official samples are (``peppol-2026.5/Invoice reponse use cases``,
``MessageLevelResponse_Example.xml``) and pass the UBL 2.1 ApplicationResponse XSD and the T111 or
T71 stylesheet without a fatal finding (``einvoice.validation.validate``; tested for every kind).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.parsers.namespaces import CAC_NS, CBC_NS, UBL_NS_PREFIX
from einvoice.responses.codes import NEEDS_CLARIFICATION, check_clarification, check_transition

APPLICATION_RESPONSE_NS = UBL_NS_PREFIX + "ApplicationResponse-2"
INVOICE_RESPONSE_CUSTOMIZATION = "urn:fdc:peppol.eu:poacc:trns:invoice_response:3"
INVOICE_RESPONSE_PROFILE = "urn:fdc:peppol.eu:poacc:bis:invoice_response:3"
MLR_CUSTOMIZATION = "urn:fdc:peppol.eu:poacc:trns:mlr:3"
MLR_PROFILE = "urn:fdc:peppol.eu:poacc:bis:mlr:3"
#: At most this many line responses in a Message Level Response; the description says how many
#: more findings there were.
MLR_MAX_LINES = 100
#: UNCL 1001 codes of what is answered: an invoice, a credit note.
DOCUMENT_TYPE_CODES = {"invoice": "380", "credit_note": "381"}
#: Finding layers whose failures are syntax (``SV``); every other fatal finding is a business rule (``BV``).
SYNTAX_LAYERS = frozenset({Layer.INTAKE, Layer.XSD})

_NSMAP = {None: APPLICATION_RESPONSE_NS, "cac": CAC_NS, "cbc": CBC_NS}


@dataclass(frozen=True, slots=True)
class Party:
    """A sender or receiver: its Peppol endpoint (``scheme``, ``id``, e.g. ``0088``,
    ``7300010000001``) and its registered name."""

    scheme: str
    endpoint_id: str
    name: str

    @classmethod
    def from_endpoint(cls, endpoint: str, name: str) -> Party:
        """From the engine's ``scheme:id`` form of an endpoint."""
        scheme, _, endpoint_id = endpoint.partition(":")
        return cls(scheme, endpoint_id, name)


@dataclass(frozen=True, slots=True)
class Answered:
    """The document a response answers: its number (BT-1) and UNCL 1001 type code (380, 381)."""

    number: str
    type_code: str = "380"


def _cbc(parent: etree._Element, name: str, text: str, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CBC_NS}}}{name}", attributes)
    element.text = text
    return element


def _cac(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC_NS}}}{name}")


def _header(customization: str, profile: str, response_id: str, issued_at: datetime) -> etree._Element:
    root = etree.Element(f"{{{APPLICATION_RESPONSE_NS}}}ApplicationResponse", nsmap=_NSMAP)  # type: ignore[arg-type]
    _cbc(root, "CustomizationID", customization)
    _cbc(root, "ProfileID", profile)
    _cbc(root, "ID", response_id)
    _cbc(root, "IssueDate", issued_at.date().isoformat())
    _cbc(root, "IssueTime", issued_at.strftime("%H:%M:%S"))
    return root


def _party(root: etree._Element, role: str, party: Party, *, legal_entity: bool) -> None:
    element = _cac(root, role)
    _cbc(element, "EndpointID", party.endpoint_id, schemeID=party.scheme)
    if legal_entity:
        _cbc(_cac(element, "PartyLegalEntity"), "RegistrationName", party.name)


def _reference(parent: etree._Element, answered: Answered) -> None:
    reference = _cac(parent, "DocumentReference")
    _cbc(reference, "ID", answered.number)
    _cbc(reference, "DocumentTypeCode", answered.type_code)


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _words(text: str | None) -> str | None:
    return " ".join(text.split()) if text and text.strip() else None


def invoice_response(
    *,
    response_id: str,
    issued_at: datetime,
    sender: Party,
    receiver: Party,
    answered: Answered,
    code: str,
    reason: str | None = None,
    action: str | None = None,
    note: str | None = None,
    effective: date | None = None,
    previous: Iterable[str] = (),
) -> bytes:
    """A Peppol Invoice Response (T111): ``sender`` (the buyer) tells ``receiver`` (the seller) the
    status ``code`` (AB, IP, UQ, CA, RE, AP, PD) of the ``answered`` invoice, with a status reason
    (``OPStatusReason``) and action (``OPStatusAction``) where it has them, and ``note``: words for
    the supplier (on the reason's status; with neither code, on reason ``NON`` where the code
    needs no clarification).

    Raises ResponseError for what the specification does not allow: a clarification the code
    cannot carry (``check_clarification``) or a code that may not follow the ``previous`` ones
    (``check_transition``)."""
    note = _words(note)
    if note is not None and reason is None and action is None and code not in NEEDS_CLARIFICATION:
        reason = "NON"
    check_clarification(code, reason, action, note)
    check_transition(previous, code)
    root = _header(INVOICE_RESPONSE_CUSTOMIZATION, INVOICE_RESPONSE_PROFILE, response_id, issued_at)
    _party(root, "SenderParty", sender, legal_entity=True)
    _party(root, "ReceiverParty", receiver, legal_entity=True)
    document_response = _cac(root, "DocumentResponse")
    response = _cac(document_response, "Response")
    _cbc(response, "ResponseCode", code)
    if effective is not None:
        _cbc(response, "EffectiveDate", effective.isoformat())
    written = False
    for list_id, value in (("OPStatusReason", reason), ("OPStatusAction", action)):
        if value is None:
            continue
        status = _cac(response, "Status")
        _cbc(status, "StatusReasonCode", value, listID=list_id)
        if note is not None and not written:
            _cbc(status, "StatusReason", note)
            written = True
    _reference(document_response, answered)
    return _bytes(root)


def _line_id(finding: Finding) -> str:
    return finding.location or "NA"


def message_level_response(
    *,
    response_id: str,
    issued_at: datetime,
    sender: Party,
    receiver: Party,
    answered: Answered,
    findings: Sequence[Finding],
    max_lines: int = MLR_MAX_LINES,
) -> bytes:
    """A Peppol Message Level Response (T71) rejecting the ``answered`` document: response code
    ``RE`` with a description, and one line response per fatal finding (at most ``max_lines``;
    the description says how many were left out): ``LineID`` the finding's XPath or ``NA``,
    status reason ``SV`` for syntax (intake, XSD) and ``BV`` for a business rule, the rule id and
    message as the description."""
    fatal = [f for f in findings if f.severity is Severity.FATAL]
    shown = fatal[: max(0, max_lines)]
    description = f"Rejected by validation: {len(fatal)} fatal finding{'s' if len(fatal) != 1 else ''}"
    if len(shown) < len(fatal):
        description += f"; the first {len(shown)} are listed, {len(fatal) - len(shown)} more are not"
    root = _header(MLR_CUSTOMIZATION, MLR_PROFILE, response_id, issued_at)
    _party(root, "SenderParty", sender, legal_entity=False)
    _party(root, "ReceiverParty", receiver, legal_entity=False)
    document_response = _cac(root, "DocumentResponse")
    response = _cac(document_response, "Response")
    _cbc(response, "ResponseCode", "RE")
    _cbc(response, "Description", description)
    _reference(document_response, answered)
    for finding in shown:
        line = _cac(document_response, "LineResponse")
        _cbc(_cac(line, "LineReference"), "LineID", _line_id(finding))
        line_response = _cac(line, "Response")
        _cbc(line_response, "ResponseCode", "RE")
        _cbc(line_response, "Description", _words(f"[{finding.rule}] {finding.message}") or finding.rule)
        _cbc(_cac(line_response, "Status"), "StatusReasonCode", "SV" if finding.layer in SYNTAX_LAYERS else "BV")
    return _bytes(root)
