"""SVRL parsing, location resolution and the lean stylesheet transformation (no artefacts needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from einvoice.domain.findings import Layer, Severity
from einvoice.errors import ValidationEngineError
from einvoice.validation.schematron import (
    SVRL_NS,
    XSL_NS,
    SchematronRunner,
    findings_from_svrl,
    lean_stylesheet,
    locate,
    parse_svrl,
)

INV = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

DOC = f"""<Invoice xmlns="{INV}" xmlns:cac="{CAC}" xmlns:cbc="{CBC}">
  <cbc:ID>1</cbc:ID>
  <cac:InvoiceLine><cbc:ID>A</cbc:ID></cac:InvoiceLine>
  <cac:InvoiceLine>
    <cbc:ID>B</cbc:ID>
    <cbc:LineExtensionAmount currencyID="EUR">10.00</cbc:LineExtensionAmount>
  </cac:InvoiceLine>
  <plain xmlns=""><x>no namespace</x></plain>
</Invoice>"""

SVRL = f"""<svrl:schematron-output xmlns:svrl="{SVRL_NS}">
  <svrl:active-pattern id="p"/>
  <svrl:fired-rule context="cac:InvoiceLine"/>
  <svrl:failed-assert test="exists(cbc:Note)" id="BR-99" flag="fatal" location="/*:Invoice[1]">
    <svrl:text>[BR-99]-An invoice   shall have a note.</svrl:text>
  </svrl:failed-assert>
  <svrl:successful-report test="true()" id="X-1" flag="warning" location="/">
    <svrl:text>reported</svrl:text>
  </svrl:successful-report>
  <svrl:failed-assert test="false()" id="X-2" location="/">
    <svrl:text>no flag</svrl:text>
  </svrl:failed-assert>
</svrl:schematron-output>"""


@pytest.fixture
def tree() -> etree._ElementTree:
    return etree.ElementTree(etree.fromstring(DOC.encode()))


def test_parse_svrl_reads_asserts_and_reports_in_order() -> None:
    fired = parse_svrl(SVRL)
    assert [f.rule for f in fired] == ["BR-99", "X-1", "X-2"]
    assert fired[0].message == "An invoice shall have a note."
    assert fired[0].test == "exists(cbc:Note)"
    assert fired[0].flag == "fatal"


def test_findings_take_severity_from_flag_and_missing_flag_is_fatal() -> None:
    findings = findings_from_svrl(parse_svrl(SVRL), Layer.PEPPOL)
    assert [f.severity for f in findings] == [Severity.FATAL, Severity.WARNING, Severity.FATAL]
    assert {f.layer for f in findings} == {Layer.PEPPOL}


def test_parse_svrl_refuses_what_is_not_svrl() -> None:
    with pytest.raises(ValidationEngineError):
        parse_svrl("<html/>")
    with pytest.raises(ValidationEngineError):
        parse_svrl("not xml")


def test_locate_namespaced_steps_positions_and_attributes(tree: etree._ElementTree) -> None:
    base = f"/*:Invoice[namespace-uri()='{INV}'][1]/*:InvoiceLine[namespace-uri()='{CAC}'][2]"
    element, attribute = locate(tree, base)  # type: ignore[misc]
    assert element.sourceline == 4
    assert attribute is None
    amount = f"{base}/*:LineExtensionAmount[namespace-uri()='{CBC}'][1]"
    element, attribute = locate(tree, amount + "/@currencyID")  # type: ignore[misc]
    assert element.text == "10.00"
    assert attribute == "EUR"
    element, _ = locate(tree, f"/*:Invoice[namespace-uri()='{INV}'][1]/plain[1]/x[1]")  # type: ignore[misc]
    assert element.text == "no namespace"
    element, attribute = locate(  # type: ignore[misc]
        tree, amount + "/@*[local-name()='currencyID' and namespace-uri()='']"
    )
    assert attribute == "EUR"


@pytest.mark.parametrize(
    "location",
    [
        None,
        "",
        "relative/path",
        f"/*:Invoice[namespace-uri()='{INV}'][1]/*:Missing[namespace-uri()='x'][1]",
        f"/*:Invoice[namespace-uri()='{INV}'][1]/*:InvoiceLine[namespace-uri()='{CAC}'][3]",
        "/weird::axis",
    ],
)
def test_locate_gives_none_when_it_cannot(tree: etree._ElementTree, location: str | None) -> None:
    assert locate(tree, location) is None


def test_locate_root(tree: etree._ElementTree) -> None:
    element, _ = locate(tree, "/")  # type: ignore[misc]
    assert element is tree.getroot()


SKELETON = f"""<xsl:stylesheet xmlns:xsl="{XSL_NS}" xmlns:svrl="{SVRL_NS}" version="2.0">
<xsl:template match="text()" priority="-1"/>
<xsl:template match="/">
  <svrl:schematron-output>
    <svrl:active-pattern><xsl:apply-templates/></svrl:active-pattern>
    <xsl:apply-templates mode="M1" select="/"/>
  </svrl:schematron-output>
</xsl:template>
<xsl:template match="a" mode="M1" priority="1000">
  <svrl:fired-rule context="a"/>
  <xsl:choose><xsl:when test="b"/><xsl:otherwise><svrl:failed-assert id="R1"/></xsl:otherwise></xsl:choose>
  <xsl:apply-templates mode="M1" select="@*|*"/>
</xsl:template>
</xsl:stylesheet>"""


def test_lean_stylesheet_drops_fired_rules_and_idle_walks_only() -> None:
    lean = etree.fromstring(lean_stylesheet(SKELETON).encode())
    assert not list(lean.iter(f"{{{SVRL_NS}}}fired-rule"))
    pattern = next(lean.iter(f"{{{SVRL_NS}}}active-pattern"))
    assert len(pattern) == 0
    assert len(list(lean.iter(f"{{{SVRL_NS}}}failed-assert"))) == 1
    assert len(list(lean.iter(f"{{{XSL_NS}}}apply-templates"))) == 2  # the pattern walks stay


def test_lean_stylesheet_leaves_stylesheets_with_other_default_templates_alone() -> None:
    text = SKELETON.replace('<xsl:template match="text()" priority="-1"/>', '<xsl:template match="b">!</xsl:template>')
    assert lean_stylesheet(text) == text


CODE_LIST = SKELETON.replace(
    '<xsl:template match="text()" priority="-1"/>',
    """<xsl:template match="text()" priority="-1"/>
<xsl:variable name="CODES" select="tokenize('AED EUR USD', '\\s')"/>
<xsl:variable name="GAPS" select="tokenize('AED  EUR', '\\s')"/>""",
).replace(
    '<xsl:when test="b"/><xsl:otherwise><svrl:failed-assert id="R1"/>',
    '<xsl:when test="some $code in $CODES satisfies @currencyID = $code"/>'
    '<xsl:when test="some $code in $GAPS satisfies normalize-space(text()) = $code"/>'
    '<xsl:otherwise><svrl:failed-assert id="R1" test="some $code in $CODES satisfies @currencyID = $code"/>',
)


def test_lean_stylesheet_checks_code_lists_by_substring_only_where_it_is_exact() -> None:
    lean = etree.fromstring(lean_stylesheet(CODE_LIST).encode())
    tests = [w.get("test") for w in lean.iter(f"{{{XSL_NS}}}when")]
    assert tests[0] == (
        "some $code in @currencyID satisfies "
        "(not(contains($code, ' ')) and contains(' AED EUR USD ', concat(' ', $code, ' ')))"
    )
    assert tests[1] == "some $code in $GAPS satisfies normalize-space(text()) = $code"  # an empty code: kept
    # what the SVRL reports as the test is the official text
    assert (
        next(lean.iter(f"{{{SVRL_NS}}}failed-assert")).get("test")
        == "some $code in $CODES satisfies @currencyID = $code"
    )


def test_lean_stylesheet_keeps_code_lists_that_are_rebound_or_collated() -> None:
    rebound = CODE_LIST.replace(
        '<svrl:fired-rule context="a"/>',
        '<svrl:fired-rule context="a"/><xsl:variable name="x" select="for $CODES in 1 return 1"/>',
    )
    local = CODE_LIST.replace(
        '<svrl:fired-rule context="a"/>', '<svrl:fired-rule context="a"/><xsl:variable name="CODES" select="()"/>'
    )
    collated = CODE_LIST.replace('version="2.0"', 'version="2.0" default-collation="http://example.com/c"')
    for text in (rebound, local, collated):
        lean = etree.fromstring(lean_stylesheet(text).encode())
        assert any("$CODES satisfies" in (w.get("test") or "") for w in lean.iter(f"{{{XSL_NS}}}when"))


def test_parse_svrl_without_fired_rules_skips_the_parse_but_still_checks_the_root() -> None:
    empty = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<svrl:schematron-output xmlns:x="y"\n  xmlns:svrl="{SVRL_NS}"'
        ' title="t"><svrl:active-pattern/></svrl:schematron-output>'
    )
    assert parse_svrl(empty) == ()
    assert parse_svrl(empty.encode()) == ()
    for wrong in (
        empty.replace(SVRL_NS, "urn:other"),
        empty.replace("svrl:schematron-output", "svrl:other"),
        "<html/>",
        "",
    ):
        with pytest.raises(ValidationEngineError):
            parse_svrl(wrong)


def test_runner_compiles_the_same_text_once(tmp_path: Path) -> None:
    first, second = tmp_path / "a.xslt", tmp_path / "b.xslt"
    first.write_text(SKELETON, encoding="utf-8")
    second.write_text("<!-- licence header -->\n" + SKELETON, encoding="utf-8")
    runner = SchematronRunner()
    executable = runner.compile(first)
    assert runner.compile(second) is executable
    assert runner.compile(tmp_path / "." / "a.xslt") is executable
    assert set(runner.compiled) == {first.resolve(), second.resolve()}


def _assert(test: str, rule: str) -> str:
    return (
        f'<xsl:choose><xsl:when test="{test}"/><xsl:otherwise><svrl:failed-assert test="{test}" id="{rule}"/>'
        "</xsl:otherwise></xsl:choose><!--ASSERT -->"
    )


SHALL_NOT = SKELETON.replace('version="2.0"', 'version="2.0" xmlns:a="urn:a"').replace(
    '<xsl:choose><xsl:when test="b"/><xsl:otherwise><svrl:failed-assert id="R1"/></xsl:otherwise></xsl:choose>',
    _assert("not(a:x/a:y)", "R1")
    + _assert("not(a:x/a:z/@k)", "R2")
    + _assert("not(a:w)", "R3")
    + _assert("not(//@foo)", "R4")
    + _assert("count(//@bar) = 0", "R5")
    + _assert("not((a:p|a:q)/a:r)", "R6")
    + _assert("not((a:p|a:q)/a:s)", "R7")
    + _assert("not(//@baz[1])", "R8"),
)


def test_lean_stylesheet_shares_scans_and_guards_shall_not_be_used_runs() -> None:
    lean = etree.fromstring(lean_stylesheet(SHALL_NOT).encode())
    rule = next(t for t in lean.iter(f"{{{XSL_NS}}}template") if t.get("match") == "a")
    variables = {v.get("name"): v.get("select") for v in rule.iterchildren(f"{{{XSL_NS}}}variable")}
    assert variables == {"lean-attributes": "//@*", "lean-union-1": "(a:p|a:q)"}
    tests = [w.get("test") for w in rule.iter(f"{{{XSL_NS}}}when")]
    assert tests == [
        "not(a:x/a:y)",
        "not(a:x/a:z/@k)",
        "not(a:w)",
        "not($lean-attributes/self::attribute(foo))",
        "count($lean-attributes/self::attribute(bar)) = 0",
        "not($lean-union-1/a:r)",
        "not($lean-union-1/a:s)",
        "not(//@baz[1])",  # a predicate on the step: left alone
    ]
    guards = {g.get("test"): [w.get("test") for w in g.iter(f"{{{XSL_NS}}}when")] for g in rule.iter(f"{{{XSL_NS}}}if")}
    assert guards == {"a:x": ["not(a:x/a:y)", "not(a:x/a:z/@k)"], "$lean-union-1": tests[5:7]}
    # the asserts, and what they write, keep their order
    assert [f.get("id") for f in rule.iter(f"{{{SVRL_NS}}}failed-assert")] == [f"R{n}" for n in range(1, 9)]


def test_lean_stylesheet_walks_a_pattern_only_when_its_global_conditions_can_hold() -> None:
    national = SKELETON.replace(
        'match="a" mode="M1"', "match=\"x[$country = 'NO'] | y/a[$flag and b] | z[$c = 'A' or $c='B']\" mode=\"M1\""
    )
    lean = etree.fromstring(lean_stylesheet(national).encode())
    guard = next(i for i in lean.iter(f"{{{XSL_NS}}}if") if i.get("test") == "$lean-run-M1")
    assert [a.get("mode") for a in guard.iter(f"{{{XSL_NS}}}apply-templates")] == ["M1"]
    variable = guard.getprevious()
    assert variable is not None
    assert variable.get("name") == "lean-run-M1"
    assert [(a.get("select"), a.get("mode")) for a in variable] == [("/", "lean-run-M1")]
    # each condition is tested as a pattern: one that raises an error does not match, as in the rules
    tests = {
        t.get("match"): t[0].get("select")
        for t in lean.iterchildren(f"{{{XSL_NS}}}template")
        if t.get("mode") == "lean-run-M1"
    }
    assert tests == {
        "document-node()[boolean($country = 'NO')]": "true()",
        "document-node()[boolean($flag)]": "true()",
        "document-node()[boolean($c = 'A' or $c='B')]": "true()",
        "document-node()": "false()",
    }
    # one rule without such a condition: the walk stays unconditional
    for mixed in (national.replace("| y/a[$flag and b]", "| y/a[b]"), national.replace("or $c='B'", "or b")):
        assert "lean-run-M1" not in lean_stylesheet(mixed)
