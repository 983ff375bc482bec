"""XSD layer: the UBL 2.1 schemas through lxml, one loaded schema per file, reused.

A loaded ``etree.XMLSchema`` is used under a lock: libxml2 validation contexts are cheap to create,
but sharing one schema object between threads is not documented as safe.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from lxml import etree

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.errors import ValidationEngineError
from einvoice.parsers.namespaces import PREFIXES
from einvoice.validation.limits import capped_findings
from einvoice.validation.report import offending_value

XSD_RULE = "XSD"

# The official schemas are local, trusted files; still, nothing is fetched from the network.
_SCHEMA_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class XsdValidator:
    """Validates documents against XSD files, loading each file once (lazily)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schemas: dict[Path, etree.XMLSchema] = {}
        self._by_path: dict[Path, etree.XMLSchema] = {}  # as given by callers: no resolve() per document
        self.load_seconds: dict[Path, float] = {}

    def schema(self, xsd: Path) -> etree.XMLSchema:
        """Return the loaded schema for ``xsd``. Raises ``ValidationEngineError`` if it cannot load."""
        schema = self._by_path.get(xsd)  # absolute paths only: the working directory cannot change them
        if schema is not None:
            return schema
        key = xsd.resolve()
        with self._lock:
            schema = self._schemas.get(key)
            if schema is None:
                started = time.perf_counter()
                try:
                    schema = etree.XMLSchema(etree.parse(str(key), _SCHEMA_PARSER))
                except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
                    raise ValidationEngineError(f"cannot load XML schema {key}: {exc}") from None
                self._schemas[key] = schema
                self.load_seconds[key] = time.perf_counter() - started
            if xsd.is_absolute():
                self._by_path[xsd] = schema
            return schema

    def validate(self, xsd: Path, tree: etree._ElementTree, *, limit: int | None = None) -> list[Finding]:
        """Return one fatal finding per schema error (empty when the document is schema-valid).

        With ``limit``, only the first ``limit`` errors become findings, followed by one
        information finding counting the rest (``limits.RULE_CAPPED``).
        """
        schema = self.schema(xsd)
        with self._lock:
            ok = schema.validate(tree)
            errors = [] if ok else list(cast("Iterable[etree._LogEntry]", schema.error_log))
        if not errors:
            return []
        omitted = 0
        if limit is not None and len(errors) > limit:
            errors, omitted = errors[:limit], len(errors) - limit
        # libxml2 writes paths with the document's prefixes and messages with {namespace}names.
        namespaces = {**UBL_PREFIXES, **{p: uri for p, uri in tree.getroot().nsmap.items() if p}}
        prefixes = {uri: p for p, uri in namespaces.items()}
        findings = [_finding(tree, error, namespaces, prefixes) for error in errors]
        if omitted and limit is not None:
            findings.extend(capped_findings({XSD_RULE: omitted}, Layer.XSD, limit))
        return findings


# Prefixes for messages when the document does not declare its own.
UBL_PREFIXES = PREFIXES
_CLARK = re.compile(r"\{([^}]*)\}([\w.\-]+)")


def _finding(
    tree: etree._ElementTree, error: etree._LogEntry, namespaces: dict[str, str], prefixes: dict[str, str]
) -> Finding:
    location = error.path or None
    value = None
    if location:
        try:
            nodes = tree.xpath(location, namespaces=namespaces)
        except etree.XPathError:
            nodes = []
        node = nodes[0] if isinstance(nodes, list) and nodes else None
        if isinstance(node, etree._Element) and len(node) == 0:
            value = offending_value(node.text)
    message = _CLARK.sub(
        lambda m: f"{prefixes[m.group(1)]}:{m.group(2)}" if m.group(1) in prefixes else m.group(0), error.message
    )
    return Finding(
        rule=XSD_RULE,
        severity=Severity.FATAL,
        layer=Layer.XSD,
        message=message,
        location=location,
        line=error.line or None,
        test=error.type_name,
        value=value,
    )
