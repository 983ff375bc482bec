"""Values the stylesheets convert, checked for their lexical form before the stylesheets run.

The official stylesheets cast amounts, quantities, percentages and indicators to ``xs:decimal``
and ``xs:boolean`` (``xs:decimal(cbc:PayableAmount)``, ``cbc:ChargeIndicator = true()``). A
value that is not of that form (``1e400``, ``NaN``, ``INF``, ``abc``, ``1,00``, an empty
element, ``1e2``, ``0x10``) does not make a rule fail: it stops the whole stylesheet with a
dynamic error ("Cannot convert string … to xs:decimal"), which is the supplier's error, not the
engine's. Each such value is a fatal finding here (``XML-DECIMAL``, ``XML-BOOLEAN``, layer
``xsd``: the UBL schema types them so), with its location and line, so the document is
``invalid`` whatever the stylesheets then manage to say.

Which elements: in UBL 2.1 every ``cbc`` element whose name ends in ``Amount``, ``Measure``,
``Numeric``, ``Percent``, ``Quantity`` or ``Rate`` is of an ``xs:decimal`` type (except
``TimeAmount``, a text), and every one ending in ``Indicator`` is ``xs:boolean``; a test checks
this against the installed UBL schema.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from typing import Literal

from lxml import etree

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.validation.report import offending_value

CBC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
RULE_DECIMAL = "XML-DECIMAL"
RULE_BOOLEAN = "XML-BOOLEAN"

DECIMAL_SUFFIXES = ("Amount", "Measure", "Numeric", "Percent", "Quantity", "Rate")
NOT_DECIMAL = frozenset({"TimeAmount"})
BOOLEAN_SUFFIX = "Indicator"

# XML Schema's lexical forms, with the whitespace the types collapse (space, tab, CR, LF only).
_DECIMAL = re.compile(r"[ \t\r\n]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*")
_BOOLEAN = re.compile(r"[ \t\r\n]*(?:true|false|1|0)[ \t\r\n]*")
_CBC_ANY = f"{{{CBC_NS}}}*"
_CBC_OPEN = "{" + CBC_NS + "}"
_CBC_PREFIX_LENGTH = len(_CBC_OPEN)

Kind = Literal["decimal", "boolean"]
_RULES: dict[Kind, tuple[str, re.Pattern[str], str]] = {
    "decimal": (
        RULE_DECIMAL,
        _DECIMAL,
        "is not a decimal number (xs:decimal: an optional sign, digits, an optional point and digits;"
        " no exponent, no grouping, no NaN or INF)",
    ),
    "boolean": (RULE_BOOLEAN, _BOOLEAN, "is not a boolean (xs:boolean: true, false, 1 or 0)"),
}


def kind_of(local_name: str) -> Kind | None:
    """The XML Schema type a ``cbc`` element of this name has, where a stylesheet converts it."""
    if local_name.endswith(DECIMAL_SUFFIXES) and local_name not in NOT_DECIMAL:
        return "decimal"
    if local_name.endswith(BOOLEAN_SUFFIX):
        return "boolean"
    return None


def _text(element: etree._Element) -> str:
    if len(element) == 0:
        return element.text or ""
    return "".join(str(text) for text in element.itertext())


@functools.lru_cache(maxsize=4096)
def _kind_of_tag(tag: str) -> Kind | None:
    """``kind_of`` a ``cbc`` element's tag (``{namespace}Name``), worked out once per name: every
    document has a hundred or more such elements, of a few dozen names."""
    return kind_of(tag[_CBC_PREFIX_LENGTH:])


def _bad(element: etree._Element) -> Kind | None:
    kind = _kind_of_tag(str(element.tag))
    if kind is not None and _RULES[kind][1].fullmatch(_text(element)) is None:
        return kind
    return None


def check(tree: etree._ElementTree, *, limit: int) -> tuple[list[Finding], dict[str, int]]:
    """Fatal findings for values that are not of their type's lexical form (at most ``limit`` per
    rule, in document order), and how many of each rule were left out."""
    root = tree.getroot()
    # The usual case: every value is fine, found without building a single location.
    if not any(_bad(element) is not None for element in root.iter(_CBC_ANY)):
        return [], {}
    findings: list[Finding] = []
    counts: Counter[str] = Counter()
    for element, steps in _walk(root):
        kind = _bad(element) if isinstance(element.tag, str) and element.tag.startswith(_CBC_OPEN) else None
        if kind is None:
            continue
        rule, _, says = _RULES[kind]
        counts[rule] += 1
        if counts[rule] > limit:
            continue
        shown = offending_value(_text(element))
        findings.append(
            Finding(
                rule=rule,
                severity=Severity.FATAL,
                layer=Layer.XSD,
                message=f"cbc:{etree.QName(element).localname}: {shown or ''!r} {says}",
                location="".join(steps),
                line=element.sourceline if isinstance(element.sourceline, int) else None,
                test=f"xs:{kind}",
                value=shown,
            )
        )
    omitted = {rule: count - limit for rule, count in counts.items() if count > limit}
    return findings, omitted


def _step(element: etree._Element, position: int) -> str:
    name = etree.QName(element)
    return f"/*:{name.localname}[namespace-uri()='{name.namespace or ''}'][{position}]"


def _walk(root: etree._Element) -> Iterator[tuple[etree._Element, list[str]]]:
    """Every element below ``root`` with the steps of its location, written as the official
    stylesheets write theirs (``/*:Invoice[namespace-uri()='…'][1]/*:InvoiceLine[…][3]/…``; join
    them for the location). One walk: each position is counted once, where counting preceding
    siblings for every element costs the square of their number. The list is reused: join it
    before the next step."""
    steps = [_step(root, 1)]
    frames: list[tuple[Iterator[etree._Element], Counter[str]]] = [(iter(root), Counter())]
    while frames:
        children, seen = frames[-1]
        child = next(children, None)
        if child is None:
            frames.pop()
            steps.pop()
            continue
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        seen[child.tag] += 1
        steps.append(_step(child, seen[child.tag]))
        yield child, steps
        frames.append((iter(child), Counter()))
