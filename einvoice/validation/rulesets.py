"""Which official artefacts apply to a document: by its CustomizationID (BT-24) and receipt time.

- Peppol BIS Billing 3.0 (``PEPPOL_BIS3``, or an id extending it with further ``#…`` or ``:…``
  parts): UBL 2.1 XSD, then the Peppol release's own ``CEN-EN16931-UBL.xslt`` (layer en16931)
  and ``PEPPOL-EN16931-UBL.xslt`` (layer peppol).
- EN 16931 (``EN16931`` exactly, or another CIUS/extension of it): UBL 2.1 XSD, then the CEN
  ``EN16931-UBL-validation.xslt``.
- Anything else, or no CustomizationID: as EN 16931, with a note that becomes an information
  finding: "CustomizationID '…' is not recognised; validated against EN 16931 only".
- The other Peppol BIS documents whose rules the engine holds (``TRANSACTIONS``: Order T01,
  Despatch Advice T16, Invoice Response T111, Message Level Response T71), each by its root
  element and CustomizationID, as phive and the KoSIT validator choose a scenario: UBL 2.1 XSD of
  the document type, then the transaction's stylesheet (layer peppol). Such a document with
  another CustomizationID has no rule set: ``UnsupportedDocumentError``.

A rule set names its version (the release of the set holding its stylesheets, ``peppol-bis3
2026.5``) and every artefact it uses, with set, version, path and sha256 (``RuleSet.artefacts``),
so that a report says exactly what its verdict rests on.

Which release: among the sets of a family (``ubl``, ``en16931``, ``peppol-bis3``, ``peppol-poacc``) in the manifest,
those in force at ``at`` (``in_force_from <= at <= in_force_until``, until open when null); of
those, the newest by ``in_force_from``. Peppol changeovers are expressed in the manifest: a new
release gets its mandatory date as ``in_force_from``; the previous one keeps ``in_force_until``
null (or a phase-out date), so from the mandatory date the newest wins and before it the previous
one still applies. A receipt time before the oldest release the manifest knows is validated with
that oldest release, and the report says so in a note (the engine cannot hold every release ever
published; refusing to validate older documents would help nobody). A gap between two releases or
a time after the last one ends is a manifest error and raises ``RuleSetError``.

Severity overrides live in ``einvoice.validation.overrides``; ``apply_overrides`` is re-exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from lxml import etree

from einvoice.domain.findings import Layer
from einvoice.errors import RuleSetError, UnsupportedDocumentError
from einvoice.parsers.safe_xml import UBL_NS_PREFIX, DocumentType, detect_type
from einvoice.settings import Settings
from einvoice.validation import artefacts
from einvoice.validation.artefacts import ArtefactSet, Manifest
from einvoice.validation.overrides import Override, apply_overrides, load_overrides, utc_day
from einvoice.validation.report import ArtefactRef

__all__ = [
    "EN16931",
    "PEPPOL_BIS3",
    "TRANSACTIONS",
    "Override",
    "RuleSet",
    "RuleSetError",
    "RuleSetName",
    "Stylesheet",
    "Transaction",
    "apply_overrides",
    "document_type_of",
    "load_overrides",
    "select",
    "xsd_relpath",
]

PEPPOL_BIS3 = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
EN16931 = "urn:cen.eu:en16931:2017"

RuleSetName = Literal[
    "peppol-bis3", "en16931", "peppol-order", "peppol-despatch-advice", "peppol-invoice-response", "peppol-mlr"
]
RulesChoice = Literal["auto", "en16931", "peppol-bis3"]
BILLING_TYPES = (DocumentType.INVOICE.value, DocumentType.CREDIT_NOTE.value)


@dataclass(frozen=True)
class Transaction:
    """A Peppol BIS document other than an invoice, validated when its root element and
    CustomizationID are these (KoSIT calls such an entry a scenario)."""

    name: RuleSetName  # the rule set's name in reports
    title: str
    document_type: str  # the UBL 2.1 root element (and main schema) of the document
    customization_id: str
    family: str  # the artefact family whose set holds the stylesheet
    stylesheet: str


# CustomizationIDs as the stylesheets test them and the OpenPeppol samples carry them.
TRANSACTIONS = (
    Transaction(
        "peppol-order",
        "Peppol Order transaction 3 (T01)",
        "Order",
        "urn:fdc:peppol.eu:poacc:trns:order:3",
        "peppol-bis3",
        "PEPPOLBIS-T01.xslt",
    ),
    Transaction(
        "peppol-despatch-advice",
        "Peppol Despatch Advice transaction 3 (T16)",
        "DespatchAdvice",
        "urn:fdc:peppol.eu:poacc:trns:despatch_advice:3",
        "peppol-poacc",
        "PEPPOLBIS-T16.xslt",
    ),
    Transaction(
        "peppol-invoice-response",
        "Peppol Invoice Response transaction 3 (T111)",
        "ApplicationResponse",
        "urn:fdc:peppol.eu:poacc:trns:invoice_response:3",
        "peppol-bis3",
        "PEPPOLBIS-T111.xslt",
    ),
    Transaction(
        "peppol-mlr",
        "Peppol Message Level Response transaction 3 (T71)",
        "ApplicationResponse",
        "urn:fdc:peppol.eu:poacc:trns:mlr:3",
        "peppol-poacc",
        "PEPPOLBIS-T71.xslt",
    ),
)
_TRANSACTION_TYPES = tuple(dict.fromkeys(t.document_type for t in TRANSACTIONS))

# Stylesheets of each family, relative to the set's folder.
_PEPPOL_STYLESHEETS = (
    (Layer.EN16931, "CEN-EN16931-UBL.xslt"),
    (Layer.PEPPOL, "PEPPOL-EN16931-UBL.xslt"),
)
_CEN_STYLESHEETS = ((Layer.EN16931, "EN16931-UBL-validation.xslt"),)


@dataclass(frozen=True)
class Stylesheet:
    layer: Layer
    set_id: str
    relpath: str

    @property
    def path(self) -> Path:
        """The installed file (``artefacts.path``: raises ``ArtefactMissingError`` if not installed)."""
        return artefacts.path(self.set_id, self.relpath)

    def resolve(self, settings: Settings | None = None) -> Path:
        """As ``path``, with explicit settings."""
        return artefacts.path(self.set_id, self.relpath, settings)


@dataclass(frozen=True)
class RuleSet:
    name: RuleSetName
    set_ids: tuple[str, ...]  # every artefact set used, XSD first
    xsd_set_id: str
    stylesheets: tuple[Stylesheet, ...]  # in the order they run
    notes: tuple[str, ...] = ()  # information findings for the report
    version: str = ""  # the release of the set holding the stylesheets: "2026.5", "1.3.16"
    xsd_relpath: str = "xsd/maindoc/UBL-Invoice-2.1.xsd"  # the document type's main schema
    artefacts: tuple[ArtefactRef, ...] = ()  # every file used, XSD first, as reports name them


def xsd_relpath(document_type: DocumentType | str) -> str:
    """The UBL 2.1 main schema of a document type, relative to the ``ubl-2.1`` set."""
    value = document_type.value if isinstance(document_type, DocumentType) else str(document_type)
    if value in BILLING_TYPES or value in _TRANSACTION_TYPES:
        return f"xsd/maindoc/UBL-{value}-2.1.xsd"
    raise ValueError(f"no UBL 2.1 schema for document type {value!r}")


def document_type_of(root: etree._Element) -> str:
    """The document type of a parsed document's root: ``Invoice``, ``CreditNote``, or a UBL 2.1
    root that a transaction of ``TRANSACTIONS`` uses (``Order``, ``DespatchAdvice``,
    ``ApplicationResponse``). Raises ``UnsupportedDocumentError`` for any other root."""
    try:
        return detect_type(root).value
    except UnsupportedDocumentError:
        if not isinstance(root.tag, str):
            raise
        qname = etree.QName(root)
        if qname.localname in _TRANSACTION_TYPES and qname.namespace == f"{UBL_NS_PREFIX}{qname.localname}-2":
            return qname.localname
        if not (qname.namespace or "").startswith(UBL_NS_PREFIX):
            raise
    known = ", ".join([*BILLING_TYPES, *_TRANSACTION_TYPES])
    raise UnsupportedDocumentError(
        f"unsupported document type: {root.tag} (no rule set for UBL {qname.localname}; the engine validates "
        f"UBL 2.1 {known})"
    )


def _transaction(document_type: str, cid: str) -> Transaction:
    for transaction in TRANSACTIONS:
        if transaction.document_type == document_type and _extends(cid, transaction.customization_id):
            return transaction
    known = ", ".join(t.customization_id for t in TRANSACTIONS if t.document_type == document_type)
    given = f"CustomizationID '{cid}'" if cid else "no CustomizationID"
    raise UnsupportedDocumentError(f"{document_type} with {given}: no rule set for it (known: {known})")


def in_force(manifest: Manifest, family: str, at: datetime | date | None = None) -> tuple[ArtefactSet, str | None]:
    """The newest set of ``family`` in force at ``at`` (default: today, UTC), and a note when none was.

    Before the oldest known set comes into force, that oldest set is returned with a note saying so.
    Raises ``RuleSetError`` when the family has no set at all, or ``at`` falls in a gap or after the end.
    """
    day = utc_day(at)
    family_sets = manifest.family(family)
    candidates = [s for s in family_sets if s.in_force(day)]
    if not candidates and family_sets:
        oldest = min(family_sets, key=lambda s: (s.in_force_from, s.id))
        if day < oldest.in_force_from:
            note = (
                f"no {family} release known to this engine was in force on {day.isoformat()}; "
                f"validated with the oldest known, {oldest.id} (in force from {oldest.in_force_from.isoformat()})"
            )
            return oldest, note
    if not candidates:
        known = (
            ", ".join(f"{s.id} ({s.in_force_from}..{s.in_force_until or ''})" for s in manifest.family(family))
            or "none in the manifest"
        )
        raise RuleSetError(f"no {family} artefact set is in force on {day.isoformat()} (known: {known})")
    return max(candidates, key=lambda s: (s.in_force_from, s.id)), None


def _extends(customization_id: str, base: str) -> bool:
    """``base`` itself, or an extension of it (e.g. "…billing:3.0#conformant#urn:…" or a national
    sub-profile: further ``#…`` or ``:…`` parts)."""
    if customization_id == base:
        return True
    return customization_id.startswith(base) and customization_id[len(base)] in "#:"


def _is_peppol(customization_id: str) -> bool:
    return _extends(customization_id, PEPPOL_BIS3)


def _is_en16931(customization_id: str) -> bool:
    return customization_id == EN16931 or customization_id.startswith(EN16931 + "#")


def select(
    customization_id: str | None,
    *,
    document_type: DocumentType | str = DocumentType.INVOICE,
    at: datetime | date | None = None,
    rules: RulesChoice | str = "auto",
    manifest: Manifest | None = None,
) -> RuleSet:
    """Return the rule set for a document of ``document_type`` (its root element, as
    ``document_type_of`` names it) with this CustomizationID (BT-24) received at ``at``.

    ``rules`` forces ``en16931`` or ``peppol-bis3`` for an invoice or credit note instead of
    deciding by the CustomizationID. Raises ``UnsupportedDocumentError`` when no rule set covers
    the document (another document type, or a transaction with an unknown CustomizationID),
    ``RuleSetError`` when the manifest has a gap at ``at`` (see the module docstring), ``ValueError``
    for an unknown ``rules`` value, ``ArtefactError`` when the manifest cannot be read.
    """
    if rules not in ("auto", "en16931", "peppol-bis3"):
        raise ValueError(f"rules must be auto, en16931 or peppol-bis3, not {rules!r}")
    manifest = manifest or artefacts.load_manifest()
    cid = (customization_id or "").strip()
    kind = document_type.value if isinstance(document_type, DocumentType) else str(document_type)
    if kind not in BILLING_TYPES:
        if rules != "auto":
            raise UnsupportedDocumentError(f"rule set {rules} is for Invoice and CreditNote, not {kind}")
        transaction = _transaction(kind, cid)
        return _rule_set(
            manifest, transaction.name, kind, transaction.family, ((Layer.PEPPOL, transaction.stylesheet),), [], at
        )
    notes: list[str] = []
    if rules == "auto":
        if cid and _is_peppol(cid):
            name: RuleSetName = "peppol-bis3"
        else:
            name = "en16931"
            if not cid:
                notes.append("CustomizationID is missing; validated against EN 16931 only")
            elif not _is_en16931(cid):
                notes.append(f"CustomizationID '{cid}' is not recognised; validated against EN 16931 only")
            elif cid != EN16931 and cid.startswith(EN16931 + "#compliant#urn:fdc:peppol.eu:"):
                notes.append(f"CustomizationID '{cid}' is not Peppol BIS Billing 3.0; validated against EN 16931 only")
            elif cid != EN16931:
                notes.append(f"CustomizationID '{cid}' names a CIUS or extension; validated against EN 16931 only")
    else:
        name = "peppol-bis3" if rules == "peppol-bis3" else "en16931"
        notes.append(f"rule set {name} chosen explicitly (CustomizationID '{cid}')")

    if name == "peppol-bis3":
        return _rule_set(manifest, name, kind, "peppol-bis3", _PEPPOL_STYLESHEETS, notes, at)
    return _rule_set(manifest, name, kind, "en16931", _CEN_STYLESHEETS, notes, at)


def _rule_set(
    manifest: Manifest,
    name: RuleSetName,
    document_type: str,
    family: str,
    layers: tuple[tuple[Layer, str], ...],
    notes: list[str],
    at: datetime | date | None,
) -> RuleSet:
    """The rule set ``name``: the UBL XSD of ``document_type`` and the stylesheets ``layers`` from
    the sets in force at ``at``, with the artefacts as the manifest records them."""
    xsd_set, xsd_note = in_force(manifest, "ubl", at)
    rules_set, rules_note = in_force(manifest, family, at)
    notes.extend(note for note in (xsd_note, rules_note) if note)
    xsd = xsd_relpath(document_type)
    stylesheets = tuple(Stylesheet(layer, rules_set.id, relpath) for layer, relpath in layers)
    used = [(Layer.XSD, xsd_set, xsd), *((s.layer, rules_set, s.relpath) for s in stylesheets)]
    refs = []
    for layer, artefact_set, relpath in used:
        entry = artefact_set.file(relpath)
        if entry is None:
            raise RuleSetError(f"artefact set {artefact_set.id} has no {relpath} in the manifest")
        refs.append(ArtefactRef(layer.value, artefact_set.id, artefact_set.version, relpath, entry.sha256))
    return RuleSet(
        name=name,
        set_ids=(xsd_set.id, rules_set.id),
        xsd_set_id=xsd_set.id,
        stylesheets=stylesheets,
        notes=tuple(notes),
        version=rules_set.version,
        xsd_relpath=xsd,
        artefacts=tuple(refs),
    )
