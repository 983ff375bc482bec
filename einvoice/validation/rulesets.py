"""Which official artefacts apply to a document: by its CustomizationID (BT-24) and receipt time.

- Peppol BIS Billing 3.0 (``PEPPOL_BIS3``, or an id extending it with further ``#…`` or ``:…``
  parts): UBL 2.1 XSD, then the Peppol release's own ``CEN-EN16931-UBL.xslt`` (layer en16931)
  and ``PEPPOL-EN16931-UBL.xslt`` (layer peppol).
- EN 16931 (``EN16931`` exactly, or another CIUS/extension of it): UBL 2.1 XSD, then the CEN
  ``EN16931-UBL-validation.xslt``.
- Anything else, or no CustomizationID: as EN 16931, with a note that becomes an information
  finding: "CustomizationID '…' is not recognised; validated against EN 16931 only".

Which release: among the sets of a family (``ubl``, ``en16931``, ``peppol-bis3``) in the manifest,
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

from einvoice.domain.findings import Layer
from einvoice.errors import ArtefactError
from einvoice.parsers.safe_xml import DocumentType
from einvoice.settings import Settings
from einvoice.validation import artefacts
from einvoice.validation.artefacts import ArtefactSet, Manifest
from einvoice.validation.overrides import Override, apply_overrides, load_overrides, utc_day

__all__ = [
    "EN16931",
    "PEPPOL_BIS3",
    "Override",
    "RuleSet",
    "RuleSetError",
    "RuleSetName",
    "Stylesheet",
    "apply_overrides",
    "load_overrides",
    "select",
    "xsd_relpath",
]

PEPPOL_BIS3 = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
EN16931 = "urn:cen.eu:en16931:2017"

RuleSetName = Literal["peppol-bis3", "en16931"]
RulesChoice = Literal["auto", "en16931", "peppol-bis3"]

# Stylesheets of each family, relative to the set's folder.
_PEPPOL_STYLESHEETS = (
    (Layer.EN16931, "CEN-EN16931-UBL.xslt"),
    (Layer.PEPPOL, "PEPPOL-EN16931-UBL.xslt"),
)
_CEN_STYLESHEETS = ((Layer.EN16931, "EN16931-UBL-validation.xslt"),)


class RuleSetError(ArtefactError):
    """No artefact set of the needed kind is in force at the document's receipt time."""


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


def xsd_relpath(document_type: DocumentType | str) -> str:
    """The UBL 2.1 main schema of a document type, relative to the ``ubl-2.1`` set."""
    value = document_type.value if isinstance(document_type, DocumentType) else str(document_type)
    if value == DocumentType.INVOICE.value:
        return "xsd/maindoc/UBL-Invoice-2.1.xsd"
    if value == DocumentType.CREDIT_NOTE.value:
        return "xsd/maindoc/UBL-CreditNote-2.1.xsd"
    raise ValueError(f"no UBL 2.1 schema for document type {value!r}")


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


def _is_peppol(customization_id: str) -> bool:
    if customization_id == PEPPOL_BIS3:
        return True
    # An extension of Peppol BIS 3 (e.g. "…billing:3.0#conformant#urn:…" or a national sub-profile).
    return customization_id.startswith(PEPPOL_BIS3) and customization_id[len(PEPPOL_BIS3)] in "#:"


def _is_en16931(customization_id: str) -> bool:
    return customization_id == EN16931 or customization_id.startswith(EN16931 + "#")


def select(
    customization_id: str | None,
    *,
    at: datetime | date | None = None,
    rules: RulesChoice | str = "auto",
    manifest: Manifest | None = None,
) -> RuleSet:
    """Return the rule set for a document with this CustomizationID (BT-24) received at ``at``.

    ``rules`` forces ``en16931`` or ``peppol-bis3`` instead of deciding by the CustomizationID.
    Raises ``RuleSetError`` when the manifest has a gap at ``at`` (see the module docstring), ``ValueError``
    for an unknown ``rules`` value, ``ArtefactError`` when the manifest cannot be read.
    """
    if rules not in ("auto", "en16931", "peppol-bis3"):
        raise ValueError(f"rules must be auto, en16931 or peppol-bis3, not {rules!r}")
    manifest = manifest or artefacts.load_manifest()
    cid = (customization_id or "").strip()
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

    xsd_set, xsd_note = in_force(manifest, "ubl", at)
    rules_set, rules_note = in_force(manifest, "peppol-bis3" if name == "peppol-bis3" else "en16931", at)
    notes.extend(note for note in (xsd_note, rules_note) if note)
    layers = _PEPPOL_STYLESHEETS if name == "peppol-bis3" else _CEN_STYLESHEETS
    stylesheets = tuple(Stylesheet(layer, rules_set.id, relpath) for layer, relpath in layers)
    for stylesheet in stylesheets:
        if rules_set.file(stylesheet.relpath) is None:
            raise RuleSetError(f"artefact set {rules_set.id} has no {stylesheet.relpath} in the manifest")
    return RuleSet(
        name=name,
        set_ids=(xsd_set.id, rules_set.id),
        xsd_set_id=xsd_set.id,
        stylesheets=stylesheets,
        notes=tuple(notes),
    )
