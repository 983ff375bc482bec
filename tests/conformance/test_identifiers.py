"""The EAS code list registration checks against is the one the installed Peppol rules apply."""

from __future__ import annotations

import re
from pathlib import Path

from einvoice.domain.identifiers import PEPPOL_EAS_CODES, PEPPOL_EAS_RELEASE


def test_the_eas_codes_are_those_of_rule_peppol_en16931_cl008(rules_dir: Path) -> None:
    stylesheet = (rules_dir / PEPPOL_EAS_RELEASE / "PEPPOL-EN16931-UBL.xslt").read_text(encoding="utf-8")
    match = re.search(r"""<xsl:variable name="eaid" select="tokenize\('([0-9 ]+)'""", stylesheet)
    assert match is not None, "the stylesheet no longer holds the EAS codes in the variable eaid"
    assert "$eaid" in stylesheet.split("PEPPOL-EN16931-CL008", 1)[0].rsplit("<xsl:when", 1)[1]
    assert set(match[1].split()) == PEPPOL_EAS_CODES
