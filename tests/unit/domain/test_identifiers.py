"""Endpoint and VAT identifier checks (python-stdnum, the Peppol EAS code list)."""

from __future__ import annotations

import pytest

from einvoice.domain.identifiers import PEPPOL_EAS_CODES, endpoint_problem, vat_problem


@pytest.mark.parametrize(
    ("scheme", "identifier"),
    [
        ("0192", "987654325"),  # Norwegian organisation number, mod 11
        ("0088", "4000001000005"),  # GLN, GS1 mod 10
        ("0007", "5560000167"),  # Swedish organisation number, Luhn
        ("0184", "13585628"),  # Danish CVR
        ("0184", "DK13585628"),
        ("0208", "0403019261"),  # Belgian enterprise number, mod 97
        ("0218", "40003245752"),  # Latvian registration number
        ("0216", "003720000008"),  # Finnish OVT: 0037 + Y-tunnus 2000000-8
        ("9944", "NL004495445B01"),
        ("0130", "anything-goes"),  # a scheme without a known form
    ],
)
def test_good_endpoints_pass(scheme: str, identifier: str) -> None:
    assert endpoint_problem(scheme, identifier) is None


@pytest.mark.parametrize(
    ("scheme", "identifier", "says"),
    [
        ("9999", "123", "PEPPOL-EN16931-CL008"),
        ("0088", "123", "GLN"),
        ("0088", "123", "PEPPOL-COMMON-R040"),
        ("0088", "4000001000006", "check digit"),
        ("0192", "987654321", "PEPPOL-COMMON-R041"),
        ("0184", "13585627", "Danish CVR"),
        ("0208", "0403019262", "PEPPOL-COMMON-R043"),
        ("0218", "40003245753", "Latvian registration number"),
        ("0007", "5560000168", "Swedish organisation number"),
        ("0216", "003720000006", "Finnish OVT"),
    ],
)
def test_bad_endpoints_say_what_and_which_rule(scheme: str, identifier: str, says: str) -> None:
    problem = endpoint_problem(scheme, identifier)
    assert problem is not None
    assert says in problem


def test_every_checked_scheme_is_a_peppol_scheme() -> None:
    from einvoice.domain import identifiers

    assert set(identifiers._SCHEMES) <= PEPPOL_EAS_CODES


@pytest.mark.parametrize("vat", ["NO123456785MVA", "SE556000016701", "DE136695976", "EL094259216", "BA4200000000000"])
def test_good_vat_identifiers_pass(vat: str) -> None:
    assert vat_problem(vat) is None


@pytest.mark.parametrize(
    ("vat", "says"),
    [
        ("not a vat", "BR-CO-09"),
        ("136695976", "two-letter code"),
        ("GB1232434", "not a valid GB VAT number"),
        ("NO123456789MVA", "check digit"),
        ("BA 42", "no spaces"),
    ],
)
def test_bad_vat_identifiers_say_why(vat: str, says: str) -> None:
    problem = vat_problem(vat)
    assert problem is not None
    assert says in problem
