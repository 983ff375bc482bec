"""Checks of the identifiers a party is registered with: Peppol endpoints (BT-34, BT-49) and VAT
identifiers (BT-31).

Each check returns ``None`` for an identifier that passes, else one sentence saying what is wrong
and by which rule, so that a refusal names the rule. The check digits and formats come from
python-stdnum; where the Peppol BIS Billing 3.0 rules check a scheme themselves (PEPPOL-COMMON-R040
and its neighbours), the sentence names that rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum import ean, iban, lei, vatin
from stdnum.au import abn
from stdnum.be import vat as be_vat
from stdnum.ch import uid as ch_uid
from stdnum.dk import cvr
from stdnum.ee import registrikood
from stdnum.exceptions import ValidationError
from stdnum.fi import ytunnus
from stdnum.fr import siren, siret
from stdnum.is_ import kennitala
from stdnum.it import codicefiscale, iva
from stdnum.jp import cn as jp_cn
from stdnum.lv import pvn
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr
from stdnum.sg import uen
from stdnum.us import ein
from stdnum.util import get_cc_module

# The Electronic Address Scheme (EAS) codes Peppol BIS Billing 3.0 accepts for an endpoint: release
# 2026.5, the variable ``eaid`` of PEPPOL-EN16931-UBL.xslt, which rule PEPPOL-EN16931-CL008 checks.
# tests/conformance/test_identifiers.py compares it with the installed stylesheet.
PEPPOL_EAS_RELEASE = "peppol-bis3-2026.5"
_EAS_CODES = (
    "0002 0007 0009 0060 0088 0096 0097 0106 0130 0135 0142 0151 0183 0184 0188 0190 0191 0192 0195 0196 "
    "0198 0199 0200 0201 0204 0208 0209 0210 0211 0216 0218 0221 0225 0230 0235 0240 0242 0244 0245 0246 "
    "0248 9910 9913 9914 9915 9918 9919 9920 9922 9923 9924 9925 9926 9927 9928 9929 9930 9931 9932 9933 "
    "9934 9935 9936 9937 9938 9939 9940 9941 9942 9943 9944 9945 9946 9947 9948 9949 9950 9951 9952 9953 "
    "9957 9959"
)
PEPPOL_EAS_CODES = frozenset(_EAS_CODES.split(" "))

# The EAS codes that are a country's VAT number.
_VAT_SCHEMES = {
    "9910": "HU", "9914": "AT", "9920": "ES", "9922": "AD", "9923": "AL", "9924": "BA", "9925": "BE",
    "9926": "BG", "9927": "CH", "9928": "CY", "9929": "CZ", "9930": "DE", "9931": "EE", "9932": "GB",
    "9933": "GR", "9934": "HR", "9935": "IE", "9936": "LI", "9937": "LT", "9938": "LU", "9939": "LV",
    "9940": "MC", "9941": "ME", "9942": "MK", "9943": "MT", "9944": "NL", "9945": "PL", "9946": "PT",
    "9947": "RO", "9948": "RS", "9949": "SI", "9950": "SK", "9951": "SM", "9952": "TR", "9953": "VA",
    "9957": "FR",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Scheme:
    name: str
    check: Callable[[str], object]  # raises stdnum's ValidationError (or ValueError) when wrong
    rule: str | None = None  # the Peppol rule that checks the same, if any


def _digits(count: int) -> Callable[[str], None]:
    def check(value: str) -> None:
        if not re.fullmatch(rf"[0-9]{{{count}}}", value):
            raise ValueError(f"it has {count} digits")

    return check


def _gln(value: str) -> None:
    # A GLN is 13 digits with the GS1 mod-10 check digit (the EAN-13 one).
    if not re.fullmatch(r"[0-9]{13}", value):
        raise ValueError("it has 13 digits")
    ean.validate(value)


def _danish(value: str, *, prefix_required: bool) -> None:
    digits = value[2:] if value.startswith("DK") else value
    if prefix_required and not value.startswith("DK"):
        raise ValueError("it is DK and 8 digits")
    if not re.fullmatch(r"[0-9]{8}", digits):
        raise ValueError("it has 8 digits" + (" after DK" if prefix_required else ", or DK and 8 digits"))
    cvr.validate(digits)


def _be_enterprise(value: str) -> None:
    if not re.fullmatch(r"[0-9]{10}", value):
        raise ValueError("it has 10 digits")
    be_vat.validate(value)


def _ipa(value: str) -> None:
    if not re.fullmatch(r"[0-9A-Za-z]{6}", value):
        raise ValueError("it has 6 letters or digits")


def _ovt(value: str) -> None:
    # Finnish OVT code: 0037, the 8-digit Y-tunnus, up to 5 characters of the organisation's own.
    if not re.fullmatch(r"0037[0-9]{8}[0-9A-Za-z]{0,5}", value):
        raise ValueError("it is 0037, the 8-digit Y-tunnus and up to 5 more characters")
    ytunnus.validate(value[4:12])


def _siren_or_siret(value: str) -> None:
    (siret if len(value) == 14 else siren).validate(value)


def _vat_of(country: str) -> Callable[[str], object]:
    module = get_cc_module(country.lower(), "vat")
    if module is None:
        return _form_only
    return lambda value: module.validate(value)


def _form_only(value: str) -> None:
    if not re.fullmatch(r"[0-9A-Za-z+*.-]{2,20}", value):
        raise ValueError("it is 2 to 20 letters and digits")


# Schemes whose identifiers have a known form or check digit. The others in PEPPOL_EAS_CODES are
# accepted as written (no space, at most 128 characters).
_SCHEMES: dict[str, _Scheme] = {
    "0002": _Scheme("French SIREN or SIRET number", _siren_or_siret),
    "0007": _Scheme("Swedish organisation number", se_orgnr.validate, "PEPPOL-COMMON-R049"),
    "0009": _Scheme("French SIRET number", siret.validate),
    "0088": _Scheme("GLN (GS1 Global Location Number)", _gln, "PEPPOL-COMMON-R040"),
    "0096": _Scheme("Danish P number", _digits(10), "PEPPOL-COMMON-R052"),
    "0106": _Scheme("Dutch KvK number", _digits(8), "PEPPOL-COMMON-R054"),
    "0151": _Scheme("Australian Business Number", abn.validate, "PEPPOL-COMMON-R050"),
    "0183": _Scheme("Swiss UID", ch_uid.validate),
    "0184": _Scheme("Danish CVR number", lambda v: _danish(v, prefix_required=False), "PEPPOL-COMMON-R042"),
    "0188": _Scheme("Japanese corporate number", jp_cn.validate),
    "0190": _Scheme("Dutch OIN", _digits(20), "PEPPOL-COMMON-R055"),
    "0191": _Scheme("Estonian registry code", registrikood.validate),
    "0192": _Scheme("Norwegian organisation number", no_orgnr.validate, "PEPPOL-COMMON-R041"),
    "0195": _Scheme("Singapore UEN", uen.validate),
    "0196": _Scheme("Icelandic kennitala", kennitala.validate),
    "0198": _Scheme("Danish ERST number", lambda v: _danish(v, prefix_required=True), "PEPPOL-COMMON-R053"),
    "0199": _Scheme("LEI", lei.validate),
    "0201": _Scheme("Italian IPA code", _ipa, "PEPPOL-COMMON-R044"),
    "0208": _Scheme("Belgian enterprise number", _be_enterprise, "PEPPOL-COMMON-R043"),
    "0210": _Scheme("Italian codice fiscale", codicefiscale.validate, "PEPPOL-COMMON-R045"),
    "0211": _Scheme("Italian partita IVA", iva.validate, "PEPPOL-COMMON-R047"),
    "0216": _Scheme("Finnish OVT code", _ovt),
    "0218": _Scheme("Latvian registration number", pvn.validate),
    "9918": _Scheme("IBAN", iban.validate),
    "9959": _Scheme("US Employer Identification Number", ein.validate),
} | {
    scheme: _Scheme(f"{country} VAT number", _vat_of(country), "PEPPOL-COMMON-R056-1" if scheme == "9944" else None)
    for scheme, country in _VAT_SCHEMES.items()
}


def _reason(exc: Exception) -> str:
    """stdnum's message ("The number has an invalid length.") as a clause."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[0].lower() + text[1:]


def endpoint_problem(scheme: str, identifier: str) -> str | None:
    """Return why ``scheme:identifier`` is not a Peppol endpoint (BT-34, BT-49), or None when it is.

    The scheme must be in the Peppol EAS code list; an identifier of a scheme with a known form or
    check digit (GLN, Norwegian, Swedish, Danish, Belgian, Latvian organisation numbers, VAT numbers…)
    must have it.
    """
    if scheme not in PEPPOL_EAS_CODES:
        return (
            f"scheme {scheme} is not in the Peppol Electronic Address Scheme code list "
            f"(rule PEPPOL-EN16931-CL008; e.g. 0192 Norway, 0007 Sweden, 0088 GLN, 0208 Belgium)"
        )
    known = _SCHEMES.get(scheme)
    if known is None:
        return None
    try:
        known.check(identifier)
    except (ValidationError, ValueError) as exc:
        rule = f"rule {known.rule}" if known.rule else f"scheme {scheme}"
        if isinstance(exc, ValidationError):
            return f"{identifier!r} is not a valid {known.name}: {_reason(exc)} ({rule})"
        return f"{identifier!r} is not a valid {known.name}: {exc} ({rule})"
    return None


_VAT_FORM = re.compile(r"[A-Z]{2}[0-9A-Za-z+*.]{2,13}")


def vat_problem(vat: str) -> str | None:
    """Return why ``vat`` is not a VAT identifier (BT-31), or None when it is.

    It must begin with its country's two-letter prefix (EN 16931 rule BR-CO-09; Greece: EL); where
    python-stdnum knows the country's VAT number, its form and check digits must be right, elsewhere
    the prefix must be followed by 2 to 13 letters or digits.
    """
    if not re.match(r"[A-Z]{2}", vat):
        return (
            "a VAT identifier begins with its country's two-letter code, capitals "
            "(rule BR-CO-09), e.g. NO123456785MVA, SE556000016701, DE136695976"
        )
    country = vat[:2]
    if get_cc_module("gr" if country == "EL" else country.lower(), "vat") is None:
        if not _VAT_FORM.fullmatch(vat):
            return f"{country} VAT identifier: after the country code come 2 to 13 letters or digits, no spaces"
        return None
    try:
        vatin.validate(vat)
    except ValidationError as exc:
        return f"not a valid {country} VAT number: {_reason(exc)}"
    return None
