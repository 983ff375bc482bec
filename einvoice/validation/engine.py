"""Orchestration: safe intake -> rule selection -> XSD -> Schematron stylesheets -> overrides -> report.

Every layer runs even when an earlier one found errors (an XSD failure does not hide Schematron
findings); only a document that is not well-formed, unsafe or of an unsupported type stops at
intake. A layer that cannot run (missing artefact, stylesheet failure) gives the verdict ``error``
with the cause as a finding of layer ``engine``, never ``valid``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree

from einvoice.domain.findings import (
    RULE_ENGINE,
    RULE_NOT_WELL_FORMED,
    RULE_SELECTION,
    RULE_TOO_LARGE,
    RULE_UNSAFE,
    RULE_UNSUPPORTED,
    Finding,
    Layer,
    Severity,
)
from einvoice.errors import (
    ArtefactError,
    DocumentTooLargeError,
    EInvoiceError,
    IntakeError,
    NotWellFormedError,
    UnsafeXmlError,
    UnsupportedDocumentError,
    ValidationEngineError,
)
from einvoice.parsers.namespaces import CBC_NS
from einvoice.settings import Settings
from einvoice.validation import lexical
from einvoice.validation.limits import cap_per_rule, capped_findings
from einvoice.validation.report import ValidationReport, Verdict
from einvoice.validation.schematron import SchematronRunner, findings_from_svrl
from einvoice.validation.xsd import XsdValidator

if TYPE_CHECKING:
    from einvoice.validation.rulesets import RuleSet

_CUSTOMIZATION_ID = f"{{{CBC_NS}}}CustomizationID"
_LINE_IN_MESSAGE = re.compile(r"\bline (\d+)")
RULE_CHOICES = ("auto", "en16931", "peppol-bis3")
#: How long an artefact found installed and intact is trusted before it is checked again.
ARTEFACT_RECHECK_SECONDS = 10.0

RULE_STOPPED = "SCHEMATRON-STOPPED"

#: Called with each layer's findings as soon as the layer is done (what a subprocess reports
#: before it is stopped at a limit).
Progress = Callable[[Sequence[Finding]], None]

# How intake refusals are reported: the first matching kind wins (too large is also unsafe).
_INTAKE_REFUSALS: tuple[tuple[type[IntakeError], str, Verdict], ...] = (
    (UnsupportedDocumentError, RULE_UNSUPPORTED, "unsupported"),
    (DocumentTooLargeError, RULE_TOO_LARGE, "invalid"),
    (NotWellFormedError, RULE_NOT_WELL_FORMED, "invalid"),
    (UnsafeXmlError, RULE_UNSAFE, "invalid"),
    (IntakeError, RULE_UNSAFE, "invalid"),
)


class Validator:
    """Holds what is expensive to build: loaded schemas and compiled stylesheets.

    Thread-safe: concurrent calls are serialised where saxonche and libxml2 schema objects are used
    (one lock each), so threads share one set of compiled stylesheets but do not run in parallel
    through them. For throughput use one ``Validator`` per process (the CLI's ``--jobs``).
    Nothing is compiled until first use or ``prepare()``.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._settings_lock = threading.Lock()
        self.xsd = XsdValidator()
        self.schematron = SchematronRunner(harden=_harden_saxon)
        self._artefacts: dict[tuple[str, str], tuple[float, Path]] = {}

    @property
    def settings(self) -> Settings:
        with self._settings_lock:
            if self._settings is None:
                self._settings = Settings()
            return self._settings

    def prepare(self, rules: Iterable[str] = ("peppol-bis3", "en16931")) -> dict[str, float]:
        """Compile the stylesheets of the named rule sets now; return compile seconds per stylesheet.

        Raises ``ArtefactMissingError`` or ``ValidationEngineError`` when one cannot be compiled.
        """
        from einvoice.validation import rulesets

        times: dict[str, float] = {}
        for name in rules:
            ruleset = rulesets.select(None, rules=name)
            for stylesheet in ruleset.stylesheets:
                path = self._artefact(stylesheet.set_id, stylesheet.relpath)
                self.schematron.compile(path)
                times[f"{stylesheet.set_id}/{stylesheet.relpath}"] = self.schematron.compile_seconds[path.resolve()]
        return times

    def _artefact(self, set_id: str, relpath: str) -> Path:
        """The installed artefact's path, checked against the manifest (``artefacts.path``) on
        first use and again once ``ARTEFACT_RECHECK_SECONDS`` have passed: not on every document,
        where the checks (manifest and file status) cost more than the XSD layer."""
        from einvoice.validation import artefacts

        key = (set_id, relpath)
        checked = self._artefacts.get(key)
        now = time.monotonic()
        if checked is not None and now - checked[0] < ARTEFACT_RECHECK_SECONDS:
            return checked[1]
        found = artefacts.path(set_id, relpath, self.settings)
        self._artefacts[key] = (now, found)
        return found

    def validate(
        self,
        data: bytes | Path,
        *,
        file: str | None = None,
        rules: str = "auto",
        skip_xsd: bool = False,
        at: date | datetime | None = None,
        institution: str | None = None,
        svrl: bool = False,
        progress: Progress | None = None,
    ) -> ValidationReport:
        """Validate one document; return its report (the verdict is never ``valid`` on engine failure).

        ``data`` is the document's bytes or a path to read them from (``OSError`` propagates).
        ``rules``: ``auto`` (by cbc:CustomizationID), ``en16931`` or ``peppol-bis3``.
        ``svrl=True`` keeps each stylesheet's raw SVRL in ``report.svrl``. ``progress`` is called
        with each layer's findings (before overrides) as soon as the layer is done.
        Raises ``ValueError`` for an unknown ``rules`` value.
        """
        if rules not in RULE_CHOICES:
            raise ValueError(f"rules must be one of {', '.join(RULE_CHOICES)}, not {rules!r}")
        if isinstance(data, Path):
            file = file if file is not None else str(data)
            data = data.read_bytes()
        return _Run(self, data, file, rules, skip_xsd, at, institution, svrl, progress).run()


class _Run:
    """One validation: collects findings and timings as the layers run."""

    def __init__(
        self,
        validator: Validator,
        data: bytes,
        file: str | None,
        rules: str,
        skip_xsd: bool,
        at: date | datetime | None,
        institution: str | None,
        keep_svrl: bool,
        progress: Progress | None = None,
    ) -> None:
        self.v = validator
        self.progress = progress
        self.data = data
        self.file = file
        self.rules = rules
        self.skip_xsd = skip_xsd
        self.at = at
        self.institution = institution
        self.keep_svrl = keep_svrl
        self.findings: list[Finding] = []
        self.timings: dict[str, float] = {}
        self.engine_failed = False
        self.values_unreadable = False  # a value the stylesheets convert is not of its type
        self.svrl: dict[str, str] | None = {} if keep_svrl else None
        self.document_type: str | None = None
        self.customization_id: str | None = None
        self.ruleset: RuleSet | None = None

    def report(self, verdict: Verdict | None = None) -> ValidationReport:
        if verdict is None:
            if self.engine_failed:
                verdict = "error"
            elif any(f.severity is Severity.FATAL for f in self.findings):
                verdict = "invalid"
            else:
                verdict = "valid"
        return ValidationReport(
            file=self.file,
            document_type=self.document_type,
            customization_id=self.customization_id,
            rules=self.ruleset.name if self.ruleset else None,
            verdict=verdict,
            findings=tuple(self.findings),
            svrl=self.svrl,
            timings=self.timings,
            rules_version=self.ruleset.version if self.ruleset else None,
            artefacts=self.ruleset.artefacts if self.ruleset else (),
        )

    def engine_error(self, layer: str, exc: Exception) -> None:
        self.engine_failed = True
        self.findings.append(
            Finding(
                rule=RULE_ENGINE,
                severity=Severity.FATAL,
                layer=Layer.ENGINE,
                message=f"{layer} layer could not run: {exc}",
            )
        )

    def add(self, findings: Sequence[Finding]) -> None:
        """Record a layer's findings (and tell ``progress``)."""
        self.findings.extend(findings)
        if self.progress is not None and findings:
            self.progress(tuple(findings))

    def run(self) -> ValidationReport:
        from einvoice.parsers import safe_xml
        from einvoice.validation import rulesets

        settings = self.v.settings
        limit = settings.validation_findings_per_rule
        # --- intake -----------------------------------------------------------------------------
        started = time.perf_counter()
        try:
            tree: etree._ElementTree = safe_xml.parse(
                self.data, max_bytes=settings.max_document_bytes, max_depth=settings.max_xml_depth
            )
            document_type = rulesets.document_type_of(tree.getroot())
        except IntakeError as exc:
            rule, verdict = next((r, v) for kind, r, v in _INTAKE_REFUSALS if isinstance(exc, kind))
            self.findings.append(_intake(rule, exc))
            return self.report(verdict)
        finally:
            self.timings["parse"] = time.perf_counter() - started
        root = tree.getroot()
        self.document_type = document_type
        element = root.find(_CUSTOMIZATION_ID)
        if element is not None and element.text:
            self.customization_id = element.text.strip()

        # --- rule selection ---------------------------------------------------------------------
        try:
            ruleset = rulesets.select(self.customization_id, document_type=document_type, at=self.at, rules=self.rules)
        except UnsupportedDocumentError as exc:  # an Order, say, that is no Peppol transaction
            self.findings.append(_intake(RULE_UNSUPPORTED, exc))
            return self.report("unsupported")
        except EInvoiceError as exc:
            self.engine_error("rule selection", exc)
            return self.report()
        self.ruleset = ruleset
        for note in ruleset.notes:
            self.findings.append(
                Finding(rule=RULE_SELECTION, severity=Severity.INFORMATION, layer=Layer.INTAKE, message=note)
            )

        # --- XSD --------------------------------------------------------------------------------
        if not self.skip_xsd:
            started = time.perf_counter()
            try:
                xsd = self.v._artefact(ruleset.xsd_set_id, ruleset.xsd_relpath)
                self.add(self.v.xsd.validate(xsd, tree, limit=limit))
            except (ArtefactError, ValidationEngineError) as exc:
                self.engine_error("xsd", exc)
            self.timings["xsd"] = time.perf_counter() - started

        # --- values the stylesheets convert (also with skip_xsd: they guard the stylesheets) -----
        unreadable, omitted = lexical.check(tree, limit=limit)
        self.values_unreadable = bool(unreadable)
        self.add([*unreadable, *capped_findings(omitted, Layer.XSD, limit)])

        # --- Schematron -------------------------------------------------------------------------
        if ruleset.stylesheets:
            self._schematron(tree, ruleset.stylesheets, limit)

        # --- overrides --------------------------------------------------------------------------
        try:
            self.findings = list(
                rulesets.apply_overrides(
                    self.findings, institution=self.institution, at=self.at, settings=self.v.settings
                )
            )
        except EInvoiceError as exc:
            self.engine_error("override", exc)
        return self.report()

    def _schematron(self, tree: etree._ElementTree, stylesheets: Iterable[Any], limit: int) -> None:
        runner = self.v.schematron
        started = time.perf_counter()
        try:
            # Saxon reads the tree lxml accepted, re-serialised: no DTD, no entities, always UTF-8.
            document = runner.parse(etree.tostring(tree.getroot(), encoding="unicode"))
        except ValidationEngineError as exc:
            self.engine_error("schematron", exc)
            return
        finally:
            self.timings["parse_saxon"] = time.perf_counter() - started
        for stylesheet in stylesheets:
            layer: Layer = stylesheet.layer
            started = time.perf_counter()
            try:
                path = self.v._artefact(stylesheet.set_id, stylesheet.relpath)
            except ArtefactError as exc:
                self.engine_error(layer.value, exc)
                continue
            try:
                result = runner.run(path, document)
            except ValidationEngineError as exc:
                if self.values_unreadable:
                    # The document's own values stopped it (see the XML-DECIMAL/BOOLEAN findings):
                    # the supplier's error, reported as such, not the engine's.
                    self.add([_stopped(layer, stylesheet.relpath, exc)])
                else:
                    self.engine_error(layer.value, exc)
                continue
            finally:
                self.timings[layer.value] = self.timings.get(layer.value, 0.0) + (time.perf_counter() - started)
            if self.svrl is not None:
                key = layer.value if layer.value not in self.svrl else f"{layer.value}:{stylesheet.relpath}"
                self.svrl[key] = result.svrl
            fired, omitted = cap_per_rule(result.fired, lambda f: f.rule or "UNNAMED", limit)
            self.add([*findings_from_svrl(tuple(fired), layer, tree), *capped_findings(omitted, layer, limit)])


def _stopped(layer: Layer, relpath: str, exc: Exception) -> Finding:
    return Finding(
        rule=RULE_STOPPED,
        severity=Severity.INFORMATION,
        layer=layer,
        message=(
            f"{relpath} stopped at a value that is not of its type, so its rules are not reported;"
            f" correct the values the XML-DECIMAL and XML-BOOLEAN findings name ({str(exc)[:300]})"
        ),
    )


def _intake(rule: str, exc: Exception) -> Finding:
    message = str(exc)
    match = _LINE_IN_MESSAGE.search(message) if isinstance(exc, NotWellFormedError) else None
    return Finding(
        rule=rule,
        severity=Severity.FATAL,
        layer=Layer.INTAKE,
        message=message,
        line=int(match.group(1)) if match else None,
    )


def _harden_saxon(processor: Any) -> None:
    from einvoice.parsers import safe_xml

    safe_xml.harden_saxon(processor)
