"""The review rules: reasons from a match result, who may approve what, four eyes."""

from __future__ import annotations

from decimal import Decimal

from einvoice.domain.review import ApprovalRule, Role, check_approval, reason_codes, reason_words


def test_reason_codes_come_from_the_match_result_the_duplicate_mark_and_the_state() -> None:
    result = {
        "outcome": "exception",
        "reasons": [{"code": "PRICE_VARIANCE", "message": "line 1: 12.00 against 10.00"}],
        "warnings": [{"code": "AMOUNT_ANOMALY", "message": "ten times the usual"}],
    }
    assert reason_codes("exception", result, "abc") == ("PRICE_VARIANCE", "AMOUNT_ANOMALY", "SUSPECTED_DUPLICATE")
    assert reason_codes("under_query", None) == ("UNDER_QUERY",)
    assert reason_codes("matched", {"reasons": ["no commitment matching yet"]}) == ("APPROVAL_REQUIRED",)
    assert reason_words(result) == (
        "price over tolerance: line 1: 12.00 against 10.00",
        "unusual amount for this supplier: ten times the usual",
    )


def check(role: Role = Role.APPROVER, codes: tuple[str, ...] = (), comment: str | None = "ok", **kw: object) -> object:
    arguments: dict[str, object] = {
        "role": role,
        "username": "ari",
        "codes": codes,
        "comment": comment,
        "amount": Decimal("500"),
        "rule": ApprovalRule(),
        "first_approver": None,
    }
    arguments.update(kw)
    return check_approval(**arguments)  # type: ignore[arg-type]


def test_over_a_variance_an_accountant_may_not_approve_and_an_approver_must_comment() -> None:
    assert "approver role" in (check(Role.ACCOUNTANT, ("PRICE_VARIANCE",)).refused or "")  # type: ignore[attr-defined]
    assert "comment is required" in (check(codes=("PRICE_VARIANCE",), comment=" ").refused or "")  # type: ignore[attr-defined]
    assert check(codes=("PRICE_VARIANCE",)).refused is None  # type: ignore[attr-defined]
    assert "comment is required" in (check(Role.ACCOUNTANT, ("SUSPECTED_DUPLICATE",), None).refused or "")  # type: ignore[attr-defined]
    assert check(Role.ACCOUNTANT, ("NO_COMMITMENT",), None).refused is None  # type: ignore[attr-defined]


def test_above_the_four_eyes_limit_the_first_approval_is_not_final_and_the_second_needs_another_person() -> None:
    rule = ApprovalRule(two_people_above=Decimal("100"))
    first = check(rule=rule)
    assert (first.refused, first.final) == (None, False)  # type: ignore[attr-defined]
    assert check(rule=ApprovalRule(two_people_above=Decimal("500"))).final is True  # type: ignore[attr-defined]
    same = check(rule=rule, first_approver="ari")
    assert "another person" in (same.refused or "")  # type: ignore[attr-defined]
    other = check(rule=rule, first_approver="bea")
    assert (other.refused, other.final) == (None, True)  # type: ignore[attr-defined]
