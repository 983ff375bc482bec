"""Schematron layers: the official compiled stylesheets run through saxonche, SVRL turned into findings.

Threading model: saxonche is not safe to share across threads, and it wants one ``PySaxonProcessor``
per process. A ``SchematronRunner`` therefore owns one processor and the stylesheets compiled with
it, and serialises every call with a lock. Use one runner per process (``einvoice.validation`` keeps
a lazily created default); worker processes each build their own.

Stylesheets are compiled lazily, on first use, from their text (the compiled artefacts include and
import nothing), and cached for the life of the runner. After each compile the processor is
hardened (no protocols allowed), so a running stylesheet cannot reach files or the network through
``document()``, ``unparsed-text()``, entities or DTDs.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.errors import ValidationEngineError
from einvoice.validation.report import offending_value

SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_FIRED = (f"{{{SVRL_NS}}}failed-assert", f"{{{SVRL_NS}}}successful-report")
_TEXT = f"{{{SVRL_NS}}}text"
_SVRL_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=False)


@dataclass(frozen=True, slots=True)
class SvrlResult:
    """What one stylesheet said about one document: its raw SVRL and the rules that fired."""

    svrl: str
    fired: tuple[FiredRule, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class FiredRule:
    """One ``svrl:failed-assert`` or ``svrl:successful-report``, as the stylesheet wrote it."""

    rule: str
    flag: str | None
    location: str | None
    test: str | None
    message: str


def parse_svrl(svrl: str | bytes) -> tuple[FiredRule, ...]:
    """Return the failed asserts and successful reports of an SVRL document, in document order.

    Raises ``ValidationEngineError`` when the text is not SVRL.
    """
    data = svrl.encode("utf-8") if isinstance(svrl, str) else svrl
    if _nothing_fired(data):
        return ()  # nothing fired: no need to build the tree (most documents are valid)
    try:
        root = etree.fromstring(data, _SVRL_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValidationEngineError(f"stylesheet output is not XML: {exc}") from None
    if root.tag != f"{{{SVRL_NS}}}schematron-output":
        raise ValidationEngineError(f"stylesheet output is not SVRL (root element {root.tag})")
    fired = []
    for element in root.iter(*_FIRED):
        text = element.find(_TEXT)
        message = " ".join("".join(str(t) for t in text.itertext()).split()) if text is not None else ""
        rule = element.get("id") or ""
        fired.append(
            FiredRule(
                rule=rule,
                flag=element.get("flag") or element.get("role"),
                location=element.get("location"),
                test=element.get("test"),
                message=_strip_rule_prefix(message, rule),
            )
        )
    return tuple(fired)


_FIRED_NAMES = (b"failed-assert", b"successful-report")  # in the name of any such element, whatever its prefix
_ROOT_NAME = re.compile(rb"<(?:([A-Za-z_][\w.\-]*):)?schematron-output[\s/>]")


def _nothing_fired(data: bytes) -> bool:
    """True when ``data`` is an SVRL document with no failed assert and no successful report.

    A cheap look at the text instead of a parse, for the common case (a valid document). It only
    answers True when the root element is ``schematron-output`` declaring the SVRL namespace for
    its own prefix, as Saxon writes it; anything else is left to the XML parser.
    """
    if any(name in data for name in _FIRED_NAMES):
        return False
    head = data[:8192]
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2 :].lstrip()
    match = _ROOT_NAME.match(head)
    if match is None:
        return False
    tag = head[: head.find(b">") + 1]
    prefix = match.group(1)
    declaration = (b" xmlns:" + prefix if prefix else b" xmlns") + b'="' + SVRL_NS.encode() + b'"'
    return declaration in tag.replace(b"\n", b" ").replace(b"\t", b" ").replace(b"\r", b" ")


def _strip_rule_prefix(message: str, rule: str) -> str:
    # The official messages start with "[BR-52]-"; the rule id is reported on its own.
    prefix = f"[{rule}]"
    if rule and message.startswith(prefix):
        return message[len(prefix) :].lstrip("- ").strip() or message
    return message


def findings_from_svrl(
    fired: tuple[FiredRule, ...], layer: Layer, tree: etree._ElementTree | None = None
) -> list[Finding]:
    """Map fired rules to findings of ``layer`` (severity from the flag; an unknown flag is fatal).

    With the document's ``tree``, each finding also gets the source line and the offending value
    at its location (best effort: None where the location cannot be resolved).
    """
    findings = []
    for f in fired:
        line, value = line_and_value(tree, f.location) if tree is not None else (None, None)
        findings.append(
            Finding(
                rule=f.rule or "UNNAMED",
                severity=Severity.from_flag(f.flag),
                layer=layer,
                message=f.message,
                location=f.location,
                line=line,
                test=f.test,
                value=value,
            )
        )
    return findings


def line_and_value(tree: etree._ElementTree, location: str | None) -> tuple[int | None, str | None]:
    """The source line and the offending value (attribute, or text of a leaf element) at a location."""
    found = locate(tree, location)
    if found is None:
        return None, None
    element, attribute = found
    line = element.sourceline if isinstance(element.sourceline, int) else None
    if attribute is not None:
        return line, offending_value(attribute)
    return line, offending_value(element.text) if len(element) == 0 else None


XSL_NS = "http://www.w3.org/1999/XSL/Transform"
_XSL_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def lean_stylesheet(text: str) -> str:
    """The same rules without the output nobody reads: a cheaper stylesheet with identical asserts.

    The ISO Schematron skeleton writes an ``svrl:fired-rule`` element for every rule context it
    visits, and walks the whole document once per pattern in the default mode, where the only
    template (text() -> nothing) produces no output. Both cost time on every document and neither
    changes which asserts fail or what they report. This removes them, and leaves the stylesheet
    unchanged if it has any other default-mode template (then the walks might matter).

    Each pattern's walk visits ``@*|*`` of every element. In a pattern (mode) where no rule can
    match an attribute, an attribute only reaches the catch-all template, which does nothing with
    it; there the walk selects ``*`` only.

    In a pattern whose every rule context ends in an element step (``cac:A/cbc:B[...]`` or
    ``*[...]``, not ``node()`` or an attribute) and whose every rule continues the walk below its
    node, the recursive walk becomes one ``apply-templates`` over ``//(those names)`` (or ``//*``):
    the same elements, in document order, the same template choice per element, no recursion.

    Failed asserts and successful reports are untouched.
    """
    root = etree.fromstring(text.encode("utf-8"), _XSL_PARSER)
    for template in root.iterchildren(f"{{{XSL_NS}}}template"):
        if template.get("mode") is None and template.get("match") not in ("/", "text()"):
            return text
        if (
            template.get("match") == "text()"
            and template.get("mode") is None
            and (len(template) or (template.text and template.text.strip()))
        ):
            return text
    for fired in list(root.iter(f"{{{SVRL_NS}}}fired-rule")):
        _remove(fired)
    for walk in list(root.iter(f"{{{XSL_NS}}}apply-templates")):
        parent = walk.getparent()
        if not walk.attrib and len(walk) == 0 and parent is not None and parent.tag == f"{{{SVRL_NS}}}active-pattern":
            _remove(walk)
    _skip_attributes_where_no_rule_matches_them(root)
    _select_named_contexts_directly(root)
    _code_lists_as_strings(root)
    _share_work_between_asserts(root)
    _skip_patterns_that_cannot_match(root)
    return etree.tostring(root, encoding="unicode")


_CATCH_ALL = "@*|node()"
_WALK = "@*|*"


def _skip_attributes_where_no_rule_matches_them(root: etree._Element) -> None:
    templates = list(root.iterchildren(f"{{{XSL_NS}}}template"))
    attribute_modes = {
        t.get("mode")
        for t in templates
        if t.get("mode")
        and t.get("match")
        and t.get("match") != _CATCH_ALL
        and _may_match_attribute(t.get("match", ""))
    }
    for template in templates:
        mode = template.get("mode")
        if not mode or mode in attribute_modes:
            continue
        for walk in template.iter(f"{{{XSL_NS}}}apply-templates"):
            if walk.get("mode") == mode and walk.get("select") == _WALK:
                walk.set("select", "*")


_NAMED_STEP = re.compile(r"^[A-Za-z_][\w.\-]*:[A-Za-z_][\w.\-]*$")


def _last_steps(pattern: str) -> list[str]:
    """The last step of each ``|`` alternative of a match pattern, predicates removed."""
    depth, top = 0, []
    for char in pattern:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0:
            top.append(char)
    return [alternative.strip().rsplit("/", 1)[-1].strip() for alternative in "".join(top).split("|")]


def _select_named_contexts_directly(root: etree._Element) -> None:
    templates = list(root.iterchildren(f"{{{XSL_NS}}}template"))
    names_by_mode: dict[str, set[str] | None] = {}
    for template in templates:
        mode, match = template.get("mode"), template.get("match") or ""
        if not mode or not mode.startswith("M") or match in (_CATCH_ALL, "text()"):
            continue
        steps = _last_steps(match)
        known = names_by_mode.setdefault(mode, set())
        if known is None:
            continue
        if all(step == "*" or (_NAMED_STEP.match(step) and step.split(":")[0] in root.nsmap) for step in steps):
            known.update(steps)
        else:
            names_by_mode[mode] = None  # a rule may match any element: keep the walk
    for mode, names in names_by_mode.items():
        if not names:
            continue
        starts = [
            a for a in root.iter(f"{{{XSL_NS}}}apply-templates") if a.get("mode") == mode and a.get("select") == "/"
        ]
        mode_templates = [t for t in templates if t.get("mode") == mode]
        recursions = [
            a
            for t in mode_templates
            for a in t.iter(f"{{{XSL_NS}}}apply-templates")
            if a.get("mode") == mode and a.get("select") in (_WALK, "*")
        ]
        recursing = {a.getparent() for a in recursions}
        if len(starts) != 1 or any(t not in recursing for t in mode_templates if t.get("match") != "text()"):
            continue  # a rule that stops the walk below it: the walk must stay as it is
        starts[0].set("select", "//*" if "*" in names else "//(" + " | ".join(sorted(names)) + ")")
        for recursion in recursions:
            _remove(recursion)


_TOKENIZED_LIST = re.compile(r"^\s*tokenize\('([^']*)',\s*'\\s'\)\s*$")
_SOME_CODE = re.compile(
    r"some \$(?P<var>[\w\-]+) in \$(?P<list>[\w\-]+)\s+satisfies\s+"
    r"(?P<value>@[\w\-]+|normalize-space\(text\(\)\)) = \$(?P=var)(?![\w\-])"
)


def _code_lists_as_strings(root: etree._Element) -> None:
    """Code-list checks: one substring search instead of a loop over the list.

    The Peppol rules test codes as ``some $code in $ISO4217 satisfies @currencyID = $code``, where
    ``$ISO4217`` is a global ``tokenize('AED AFN ...', '\\s')``: a loop over ~180 codes for every
    amount in the document. The test becomes
    ``some $code in @currencyID satisfies (not(contains($code, ' ')) and contains(' AED AFN ... ',
    concat(' ', $code, ' ')))``, with the list written once, its codes separated by single spaces.

    Why the answer is the same: ``X = $code`` compares strings by code point (no default collation
    is declared, which is checked). When ``X`` is empty (no attribute), both are false. Otherwise
    let v be its string value. Codes contain no whitespace (the list is split on it), and the
    rewrite is applied only when no code is empty or contains an apostrophe. If v is empty or
    contains a space, it equals no code, and ``' ' || v || ' '`` occurs nowhere in a list of
    non-empty codes joined by single spaces (v empty would need two adjacent spaces; a space in
    v would straddle two codes). If v has neither, ``' ' || v || ' '`` occurs in ``' ' || list
    || ' '`` exactly when v is one of the codes. A tab or line break in v occurs in no code and
    nowhere in the joined list, so both are false. ``normalize-space(text())`` over several text
    nodes is a type error in both forms.

    Only ``xsl:when``/``xsl:if`` tests are changed (the ``test`` attribute written to the SVRL is
    not), and only for lists declared once, as a global, and never rebound.
    """
    attributes = [
        (str(name), str(value)) for e in root.iter() if isinstance(e.tag, str) for name, value in e.attrib.items()
    ]
    if any(name in ("default-collation", "xpath-default-namespace") for name, _ in attributes):
        return
    declared: dict[str, int] = {}
    for element in root.iter(f"{{{XSL_NS}}}variable", f"{{{XSL_NS}}}param"):
        name = element.get("name")
        if name:
            declared[name] = declared.get(name, 0) + 1
    lists: dict[str, str] = {}
    for variable in root.iterchildren(f"{{{XSL_NS}}}variable"):
        name, select = variable.get("name"), variable.get("select")
        match = _TOKENIZED_LIST.match(select or "")
        if not name or match is None or declared.get(name) != 1:
            continue
        codes = re.split(r"[ \t\n\r]", match.group(1))
        if all(codes) and not any("'" in code for code in codes):
            lists[name] = " " + " ".join(codes) + " "
    if not lists:
        return
    rebinding = re.compile(r"(?:for|some|every|let)\s+\$(" + "|".join(map(re.escape, lists)) + r")(?![\w\-])")
    if any(rebinding.search(value) for _, value in attributes):
        return

    def replace(match: re.Match[str]) -> str:
        joined = lists.get(match.group("list"))
        if joined is None:
            return match.group(0)
        var, value = match.group("var"), match.group("value")
        return (
            f"some ${var} in {value} satisfies "
            f"(not(contains(${var}, ' ')) and contains('{joined}', concat(' ', ${var}, ' ')))"
        )

    for test in root.iter(f"{{{XSL_NS}}}when", f"{{{XSL_NS}}}if"):
        if test.get("test"):
            test.set("test", _SOME_CODE.sub(replace, test.get("test", "")))


_QNAME = r"[A-Za-z_][\w.\-]*:[A-Za-z_][\w.\-]*"
_ALL_ATTRIBUTES_NAMED = re.compile(r"(?<![\w.\-:/)\]])//@([A-Za-z_][\w.\-]*)(?![\w.\-:(\[/])")
_UNION_STEP = re.compile(r"(?<![\w.\-:/)\]$])\((" + _QNAME + r"(?:\s*\|\s*" + _QNAME + r")+)\)(?=/)")
_NOT_PATH = re.compile(r"^\s*not\(((?:\$[\w\-]+|" + _QNAME + r")(?:/" + _QNAME + r")*(?:/@[A-Za-z_][\w.\-]*)?)\)\s*$")
_LEAN_VARIABLE = "lean-"


def _assert_test(choose: etree._Element) -> etree._Element | None:
    """The ``xsl:when`` of an assert as the skeleton writes it: an empty ``when``, an ``otherwise``."""
    if choose.tag != f"{{{XSL_NS}}}choose" or len(choose) != 2:
        return None
    when, otherwise = choose[0], choose[1]
    if (
        when.tag != f"{{{XSL_NS}}}when"
        or otherwise.tag != f"{{{XSL_NS}}}otherwise"
        or len(when)
        or not when.get("test")
    ):
        return None
    if when.text and when.text.strip():
        return None
    return when


def _share_work_between_asserts(root: etree._Element) -> None:
    """Asserts of one rule that scan the same nodes share the scan; "shall not be used" runs are guarded.

    The CEN rule on the document root holds ~700 asserts, most of them "shall not be used":
    ``not(cac:AccountingSupplierParty/cac:Party/cac:PartyIdentification/cbc:ID/@schemeAgencyID)``,
    ``not((cac:InvoiceLine|cac:CreditNoteLine)/cac:Item/cbc:PackQuantity)``, ``not(//@schemeName)``.
    Evaluated one by one, each walks again what the previous one walked. Within one rule template
    (one context node, the asserts its direct children):

    - ``//@name`` (every attribute of that name in the document) becomes
      ``$lean-attributes/self::attribute(name)``, with ``$lean-attributes`` = ``//@*`` bound once at
      the top of the template: the same attributes (an unprefixed name in an attribute test means
      no namespace, as in ``@name``), one walk instead of one per assert. Only where the step
      stands alone (no predicate, nothing after it), so no positional predicate changes meaning.
    - a parenthesised union of names at the start of a path, ``(cac:InvoiceLine|cac:CreditNoteLine)/``,
      used by at least two asserts, becomes one variable bound to that union at the top of the
      template: the same nodes, in document order, evaluated once.
    - consecutive asserts ``not(P/...)`` whose paths (child steps only, perhaps ending in an
      attribute) share the prefix ``P`` are wrapped in ``<xsl:if test="P">``, and so on for longer
      shared prefixes: when ``P`` selects nothing, every ``not(P/...)`` holds and its assert writes
      nothing, which is what the skipped ``xsl:if`` writes. Child steps raise no errors, and the
      asserts keep their order, so the output is the same, in the same order.

    Variable names starting with ``lean-`` must not be used by the stylesheet (checked).
    """
    for element in root.iter(f"{{{XSL_NS}}}variable", f"{{{XSL_NS}}}param"):
        if (element.get("name") or "").startswith(_LEAN_VARIABLE):
            return
    for template in root.iterchildren(f"{{{XSL_NS}}}template"):
        if not (template.get("mode") or "").startswith("M"):
            continue
        asserts = [when for child in template if (when := _assert_test(child)) is not None]
        if len(asserts) < 2 or any(child.tag == f"{{{XSL_NS}}}param" for child in template):
            continue
        declarations: list[tuple[str, str]] = []
        # every attribute of a name, anywhere in the document
        if sum(bool(_ALL_ATTRIBUTES_NAMED.search(w.get("test", ""))) for w in asserts) >= 2:
            declarations.append(("lean-attributes", "//@*"))
            for when in asserts:
                when.set(
                    "test",
                    _ALL_ATTRIBUTES_NAMED.sub(r"$lean-attributes/self::attribute(\1)", when.get("test", "")),
                )
        # the same union of children at the start of many paths
        unions: dict[str, int] = {}
        for when in asserts:
            for union in set(_UNION_STEP.findall(when.get("test", ""))):
                unions[union] = unions.get(union, 0) + 1
        for number, union in enumerate(sorted(u for u, n in unions.items() if n >= 2), start=1):
            name = f"lean-union-{number}"
            declarations.append((name, f"({union})"))
            pattern = re.compile(r"(?<![\w.\-:/)\]$])\(" + re.escape(union) + r"\)(?=/)")
            for when in asserts:
                when.set("test", pattern.sub(f"${name}", when.get("test", "")))
        for name, select in reversed(declarations):
            variable = etree.Element(f"{{{XSL_NS}}}variable", name=name, select=select)
            variable.tail = template.text
            template.insert(0, variable)
        _guard_runs(template)


def _guard_runs(template: etree._Element) -> None:
    children = list(template)
    run: list[tuple[etree._Element, list[str]]] = []
    for child in [*children, None]:
        if child is not None and not isinstance(child.tag, str):
            continue  # a comment in the stylesheet writes nothing: it does not end a run
        when = _assert_test(child) if child is not None else None
        match = _NOT_PATH.match(when.get("test", "")) if when is not None else None
        if child is not None and match is not None:
            run.append((child, match.group(1).split("/")))
            continue
        _guard(template, run, 0)
        run = []


def _guard(parent: etree._Element, items: list[tuple[etree._Element, list[str]]], depth: int) -> None:
    """Wrap each stretch of ``items`` sharing the step at ``depth`` in a guard on the shared prefix."""
    start = 0
    while start < len(items):
        step = items[start][1][depth] if len(items[start][1]) > depth else None
        end = start + 1
        while end < len(items) and len(items[end][1]) > depth and items[end][1][depth] == step:
            end += 1
        group = items[start:end]
        if step is not None and not step.startswith("@") and len(group) >= 2:
            guard = etree.Element(f"{{{XSL_NS}}}if", test="/".join(group[0][1][: depth + 1]))
            first = group[0][0]
            first.addprevious(guard)
            guard.tail = first.tail
            for element, _ in group:
                guard.append(element)  # moves it, keeping the order
            _guard(guard, group, depth + 1)
        start = end


def _top_level(text: str, separator: str) -> list[str] | None:
    """Split ``text`` on ``separator`` outside brackets, parentheses and string literals."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        char = text[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            start = i = i + len(separator)
            continue
        i += 1
    if depth or quote:
        return None
    return [*parts, text[start:]]


def _predicates(alternative: str) -> list[str]:
    """The predicates written at the top level of one pattern alternative (any step)."""
    found, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(alternative):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "[":
            if depth == 0:
                start = i + 1
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                found.append(alternative[start:i])
    return found


_GLOBAL_CONDITION = re.compile(r"^\s*\$[A-Za-z_][\w.\-]*(?:\s*!?=\s*'[^']*')?\s*$")


def _skip_patterns_that_cannot_match(root: etree._Element) -> None:
    """Do not walk the document for a pattern none of whose rules can match it (national rules).

    The Peppol national patterns guard every rule context with global variables:
    ``ubl-invoice:Invoice[$DKSupplierCountry = 'DK']``, ``cbc:LineID[$supplierCountryIsNL]``,
    ``(/ubl-invoice:Invoice | /ubl-creditnote:CreditNote)[$supplierCountryIsDE and ...]``. If, in
    every ``|`` alternative of every rule of a pattern, some predicate has a conjunct (split on a
    top-level ``and``) that is ``$variable`` or ``$variable = 'literal'`` (or ``!=``), or an ``or``
    of these, then when all
    those conjuncts are false no rule matches any node: every node goes to the pattern's
    catch-all templates, which write nothing. (A predicate ``[$v]`` whose value is false as a
    boolean is false for every node, also when ``$v`` is a number: 0 or NaN is no position.)
    The pattern's walk then runs only when one of ``boolean(c1)``, ``boolean(c2)``, ... holds.

    A condition that raises an error (a global built from two supplier VAT numbers, say: the
    effective boolean value of two strings) must count as false, as it does in the rules: an error
    while matching a pattern makes Saxon treat the pattern as not matching (with a warning), so no
    rule whose predicate holds the failing conjunct can match. ``xsl:try`` cannot be used for this:
    Saxon does not let it catch an error raised while evaluating a global variable or parameter,
    which then fails the whole transformation where the official stylesheet reports its findings.
    So each condition is itself tested as a pattern, ``document-node()[boolean(c)]``, one template
    per condition in a mode of its own, with the same error handling as the rules it stands for.
    """
    templates = list(root.iterchildren(f"{{{XSL_NS}}}template"))
    conditions_by_mode: dict[str, list[str] | None] = {}
    for template in templates:
        mode, match = template.get("mode"), template.get("match") or ""
        if not mode or not mode.startswith("M") or match in (_CATCH_ALL, "text()"):
            continue
        conditions = conditions_by_mode.setdefault(mode, [])
        if conditions is None:
            continue
        alternatives = _top_level(match, "|")
        found: list[str] = []
        for alternative in alternatives or []:
            conjuncts = [
                c.strip()
                for predicate in _predicates(alternative)
                for c in (_top_level(predicate, " and ") or [])
                if all(_GLOBAL_CONDITION.match(d) for d in (_top_level(c, " or ") or ["("]))
            ]
            if not conjuncts:
                break
            found.append(conjuncts[0])
        if alternatives is None or len(found) != len(alternatives):
            conditions_by_mode[mode] = None  # a rule that may match whatever the globals say
            continue
        conditions.extend(found)
    for mode, conditions in conditions_by_mode.items():
        if not conditions:
            continue
        walks = [a for a in root.iter(f"{{{XSL_NS}}}apply-templates") if a.get("mode") == mode]
        starts = [a for a in walks if (a.get("select") or "").startswith("/")]
        if len(starts) != 1 or any(t.get("mode") == mode for t in starts[0].iterancestors()):
            continue
        start = starts[0]
        name = f"lean-run-{mode}"
        if any(v.get("name") == name for v in root.iter(f"{{{XSL_NS}}}variable")):
            continue
        unique = list(dict.fromkeys(conditions))
        for priority, condition in enumerate(unique, start=1):
            holds = etree.SubElement(
                root, f"{{{XSL_NS}}}template", match=f"document-node()[boolean({condition})]", mode=name
            )
            holds.set("priority", str(priority))
            etree.SubElement(holds, f"{{{XSL_NS}}}sequence", select="true()")
        otherwise = etree.SubElement(root, f"{{{XSL_NS}}}template", match="document-node()", mode=name, priority="0")
        etree.SubElement(otherwise, f"{{{XSL_NS}}}sequence", select="false()")
        variable = etree.Element(f"{{{XSL_NS}}}variable", name=name)
        variable.set("as", "Q{http://www.w3.org/2001/XMLSchema}boolean")
        etree.SubElement(variable, f"{{{XSL_NS}}}apply-templates", select="/", mode=name)
        guard = etree.Element(f"{{{XSL_NS}}}if", test=f"${name}")
        start.addprevious(variable)
        variable.tail = start.tail
        start.addprevious(guard)
        guard.tail = start.tail
        guard.append(start)
        start.tail = None


def _may_match_attribute(pattern: str) -> bool:
    """True unless every alternative of the pattern ends in a step that cannot select an attribute."""
    return any(
        last.startswith(("@", "attribute::", "attribute("))
        or (
            "(" in last.split("::")[0]
            and not last.startswith(("element(", "text(", "comment(", "processing-instruction("))
        )
        for last in _last_steps(pattern)
    )


def _remove(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is None:
        return
    # keep the text that follows the element
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


class SchematronRunner:
    """One saxonche processor and the stylesheets compiled with it. Thread-safe through a lock.

    ``harden`` is called with the processor after every compile (``safe_xml.harden_saxon``).
    ``lean=True`` compiles ``lean_stylesheet(official text)``; ``False`` the official text as is.
    """

    def __init__(self, harden: Callable[[Any], None] | None = None, *, lean: bool = True) -> None:
        self.lean = lean
        self._lock = threading.RLock()
        self._processor: Any = None
        self._compiler: Any = None
        self._executables: dict[Path, Any] = {}
        self._by_path: dict[Path, Any] = {}  # as given by callers: no resolve() per run
        self._by_text: dict[str, Any] = {}  # sha256 of the compiled text -> executable
        self._harden = harden
        self.compile_seconds: dict[Path, float] = {}

    # --- lifetime ----------------------------------------------------------------------------

    def _ensure_processor(self) -> Any:
        if self._processor is None:
            from saxonche import PySaxonProcessor

            self._processor = PySaxonProcessor(license=False)
            self._compiler = self._processor.new_xslt30_processor()
        return self._processor

    def compile(self, stylesheet: Path) -> Any:
        """Return the executable for ``stylesheet``, compiling it on first use.

        Raises ``ValidationEngineError`` when the stylesheet cannot be read or compiled.

        Two files whose (lean) text is the same share one executable: EN 16931's
        ``EN16931-UBL-validation.xslt`` and a Peppol release's ``CEN-EN16931-UBL.xslt`` differ only
        by a leading comment, so the second costs a read and a hash instead of a compile.
        """
        executable = self._by_path.get(stylesheet)  # absolute paths only: cwd cannot change them
        if executable is not None:
            return executable
        key = stylesheet.resolve()
        with self._lock:
            executable = self._executables.get(key)
            if executable is not None:
                if stylesheet.is_absolute():
                    self._by_path[stylesheet] = executable
                return executable
            self._ensure_processor()
            try:
                text = key.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValidationEngineError(f"cannot read stylesheet {key}: {exc}") from None
            started = time.perf_counter()
            try:
                if self.lean:
                    text = lean_stylesheet(text)
                digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
                executable = self._by_text.get(digest)
                if executable is None:
                    executable = self._compiler.compile_stylesheet(stylesheet_text=text)
            except Exception as exc:  # saxonche raises its own PySaxonApiError
                raise ValidationEngineError(f"cannot compile stylesheet {key.name}: {exc}") from None
            if executable is None:
                raise ValidationEngineError(f"cannot compile stylesheet {key.name}")
            self.compile_seconds[key] = time.perf_counter() - started
            if self._harden is not None:
                self._harden(self._processor)
            self._by_text[digest] = executable
            self._executables[key] = executable
            if stylesheet.is_absolute():
                self._by_path[stylesheet] = executable
            return executable

    @property
    def compiled(self) -> tuple[Path, ...]:
        return tuple(self._executables)

    # --- running -----------------------------------------------------------------------------

    def parse(self, xml_text: str) -> Any:
        """Build a saxonche document node from text lxml has already accepted."""
        with self._lock:
            processor = self._ensure_processor()
            try:
                return processor.parse_xml(xml_text=xml_text)
            except Exception as exc:
                raise ValidationEngineError(f"saxonche could not read the document: {exc}") from None

    def run(self, stylesheet: Path, document: Any) -> SvrlResult:
        """Run one compiled stylesheet over a document node from ``parse``; return its SVRL.

        Raises ``ValidationEngineError`` when the stylesheet fails or does not return SVRL.
        """
        executable = self.compile(stylesheet)
        with self._lock:
            started = time.perf_counter()
            try:
                # The official stylesheets read the root from global variables.
                executable.set_global_context_item(xdm_item=document)
                svrl = executable.apply_templates_returning_string(xdm_value=document)
            except Exception as exc:
                raise ValidationEngineError(f"stylesheet {stylesheet.name} failed: {exc}") from None
            if not svrl:
                raise ValidationEngineError(f"stylesheet {stylesheet.name} returned nothing")
            fired = parse_svrl(svrl)
            return SvrlResult(svrl=svrl, fired=fired, seconds=time.perf_counter() - started)


# --- SVRL locations -> lxml nodes ---------------------------------------------------------------

# Steps written by the skeleton's "schematron-get-full-path" mode:
#   *:Name[namespace-uri()='ns'][3]    Name[2]    @attr    @*[local-name()='a' and namespace-uri()='ns']
_STEP = re.compile(
    r"""^(?:
        \*:(?P<local>[\w.\-]+)\[namespace-uri\(\)='(?P<ns>[^']*)'\](?:\[(?P<pos>\d+)\])?
      | (?P<plain>[\w.\-]+)(?:\[(?P<ppos>\d+)\])?
      | @(?P<attr>[\w.\-]+)
      | @\*\[local-name\(\)='(?P<alocal>[^']*)'\s+and\s+namespace-uri\(\)='(?P<ans>[^']*)'\]
    )$""",
    re.VERBOSE,
)


def _split_steps(location: str) -> list[str] | None:
    steps: list[str] = []
    current: list[str] = []
    depth = 0
    for char in location:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "/" and depth == 0:
            steps.append("".join(current))
            current = []
        else:
            current.append(char)
    steps.append("".join(current))
    if not location.startswith("/") or steps[0] != "":
        return None
    return [s for s in steps[1:] if s != ""]


def locate(tree: etree._ElementTree, location: str | None) -> tuple[etree._Element, str | None] | None:
    """Walk an SVRL location over ``tree``. Returns (element, attribute value or None) or None."""
    if not location:
        return None
    steps = _split_steps(location)
    if steps is None:
        return None
    root = tree.getroot()
    if not steps:
        return root, None
    current: etree._Element | None = None
    for index, step in enumerate(steps):
        match = _STEP.match(step)
        if match is None:
            return None
        if match.group("attr") or match.group("alocal") is not None:
            if current is None or index != len(steps) - 1:
                return None
            if match.group("attr"):
                name = match.group("attr")
            else:
                ns = match.group("ans")
                name = f"{{{ns}}}{match.group('alocal')}" if ns else match.group("alocal")
            return current, current.get(name)
        if match.group("local") is not None:
            ns = match.group("ns")
            tag = f"{{{ns}}}{match.group('local')}" if ns else match.group("local")
            position = int(match.group("pos") or 1)
        else:
            tag = match.group("plain")
            position = int(match.group("ppos") or 1)
        if current is None:
            if root.tag != tag or position != 1:
                return None
            current = root
            continue
        nxt = None
        for count, child in enumerate(current.iterchildren(tag), start=1):
            if count == position:
                nxt = child
                break
        if nxt is None:
            return None
        current = nxt
    return (current, None) if current is not None else None
