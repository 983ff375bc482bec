"""The pure matcher: every reason code and the warning, at and just beyond every tolerance limit."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest
from rapidfuzz import fuzz, utils

from einvoice.domain.commitments import (
    NO_RESERVATION,
    CommitmentKind,
    CommitmentStatus,
    LineReservation,
    Reservation,
    Supplier,
)
from einvoice.domain.invoice import Identifier, PrecedingInvoice
from einvoice.errors import MatchingError, PermanentError
from einvoice.matching import EarlierDocument, History, MatchConfig, match

from .builders import (
    ISSUE_MATCH_RESULT,
    NUMBER,
    SUPPLIER_ID,
    commitment,
    commitment_line,
    d,
    invoice,
    line,
    replace,
    tolerances,
)


def codes(result_and_reservation: tuple) -> list[str]:  # type: ignore[type-arg]
    result, _ = result_and_reservation
    return [reason.code for reason in result.reasons]


def only(result_and_reservation: tuple, code: str):  # type: ignore[no-untyped-def, type-arg]
    result, _ = result_and_reservation
    found = [reason for reason in result.reasons if reason.code == code]
    assert len(found) == 1, result.reasons
    return found[0]


# --- the entry point ---------------------------------------------------------------------------


def test_an_invoice_within_its_order_is_matched_and_reserves_its_total_and_quantities() -> None:
    result, reservation = match(invoice(line(quantity="10")), [commitment()])
    assert result.outcome == "matched"
    assert result.commitment == NUMBER
    assert result.reasons == ()
    assert reservation == Reservation(NUMBER, d("42.35"), (LineReservation("1", d(10)),))
    assert result.to_dict() == {
        "outcome": "matched",
        "commitment": NUMBER,
        "reasons": [],
        "warnings": [],
        "lines": [{"line": "1", "commitment_line": "1", "by": "order_line_reference", "outcome": "matched"}],
        "reserved": "42.35",
    }


def test_the_issues_example_gives_the_issues_json() -> None:
    tol = tolerances(price_percent="2", price_amount="1.00")
    lines = (line("1", "10"), line("2", "5", "3.80", order_line=None, sellers_id="SKU-1"))
    result, reservation = match(invoice(*lines), [commitment(tolerances=tol)])
    assert reservation is NO_RESERVATION
    assert result.to_dict() == ISSUE_MATCH_RESULT


def test_every_reason_is_listed_not_only_the_first() -> None:
    closed = commitment(status=CommitmentStatus.CLOSED, valid_to=date(2026, 2, 1))
    found = codes(match(invoice(line(quantity="200", price="4")), [closed]))
    assert found == ["OUTSIDE_VALIDITY", "COMMITMENT_CLOSED", "PRICE_VARIANCE", "QUANTITY_EXCEEDS_ORDERED"]


def test_a_document_without_bt112_cannot_be_matched() -> None:
    broken = replace(invoice(), totals=replace(invoice().totals, tax_inclusive_amount=None))
    with pytest.raises(MatchingError) as excinfo:
        match(broken, [commitment()])
    assert isinstance(excinfo.value, PermanentError)


def test_matching_imports_no_io_libraries() -> None:
    code = (
        "import sys, einvoice.matching; "
        "print(sorted(m for m in ('lxml', 'sqlalchemy', 'fastapi', 'dramatiq', 'saxonche') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- 1. finding the commitment ----------------------------------------------------------------

CONTRACT = commitment(number="K-7", kind=CommitmentKind.CONTRACT, lines=())
FRAMEWORK = commitment(number="FW-1", kind=CommitmentKind.FRAMEWORK, lines=())


def test_the_order_reference_names_an_order() -> None:
    result, _ = match(invoice(order=NUMBER, buyer_reference="dept 4"), [commitment(), CONTRACT])
    assert result.commitment == NUMBER


def test_na_as_order_reference_means_none_and_the_contract_reference_is_used() -> None:
    result, _ = match(invoice(order="NA", contract="K-7"), [commitment(number="NA"), CONTRACT])
    assert (result.outcome, result.commitment) == ("matched", "K-7")


def test_the_contract_reference_names_a_contract_or_a_framework() -> None:
    assert match(invoice(order=None, contract="FW-1"), [FRAMEWORK])[0].commitment == "FW-1"
    # ... but not an order of that number: never a guess
    assert codes(match(invoice(order=None, contract=NUMBER), [commitment()])) == ["NO_COMMITMENT"]


def test_the_order_reference_does_not_name_a_contract() -> None:
    assert codes(match(invoice(order="K-7"), [CONTRACT])) == ["NO_COMMITMENT"]


def test_the_buyer_reference_equal_to_a_commitment_number_names_it() -> None:
    result, _ = match(invoice(order=None, buyer_reference="K-7"), [CONTRACT])
    assert (result.outcome, result.commitment) == ("matched", "K-7")


def test_no_commitment_names_the_references_it_looked_for() -> None:
    reason = only(match(invoice(order="PO-9", buyer_reference="B-1"), [commitment()]), "NO_COMMITMENT")
    assert reason.message == (
        "No commitment of the institution is named by the order reference (BT-13) PO-9, the buyer reference (BT-10) B-1"
    )
    assert reason.actual == "PO-9, B-1"
    none = only(match(invoice(order=None), []), "NO_COMMITMENT")
    assert none.message == "The invoice has no order (BT-13), contract (BT-12) or buyer reference (BT-10)"


def test_references_naming_different_commitments_are_ambiguous() -> None:
    result, reservation = match(invoice(order=NUMBER, contract="K-7"), [commitment(), CONTRACT])
    assert [r.code for r in result.reasons] == ["AMBIGUOUS_COMMITMENT"]
    assert result.commitment is None
    assert result.reasons[0].actual == f"order {NUMBER}, contract K-7"
    assert reservation is NO_RESERVATION
    # the buyer reference counts too, when it equals another commitment's number
    assert codes(match(invoice(order=NUMBER, buyer_reference="K-7"), [commitment(), CONTRACT])) == [
        "AMBIGUOUS_COMMITMENT"
    ]


def test_references_naming_the_same_commitment_are_not_ambiguous() -> None:
    result, _ = match(invoice(order=NUMBER, buyer_reference=NUMBER), [commitment()])
    assert result.outcome == "matched"


# --- 2. header checks ---------------------------------------------------------------------------


def test_supplier_mismatch_by_the_registered_supplier() -> None:
    assert codes(match(invoice(), [commitment()], History(supplier_id="sup-2"))) == ["SUPPLIER_MISMATCH"]
    assert codes(match(invoice(), [commitment()], History(supplier_id=SUPPLIER_ID))) == []


def test_supplier_by_any_one_identifier_when_the_registered_supplier_is_not_given() -> None:
    by_vat = commitment(supplier=Supplier(endpoint="0088:1111111111111", vat="LV 40003000000"))
    assert codes(match(invoice(), [by_vat])) == []
    by_legal_id = commitment(supplier=Supplier(legal_id="40003000000"))
    assert codes(match(invoice(), [by_legal_id])) == []
    other = commitment(supplier=Supplier(endpoint="0088:1111111111111", vat="LV11111111111"))
    reason = only(match(invoice(), [other]), "SUPPLIER_MISMATCH")
    assert reason.expected == "endpoint 0088:1111111111111, vat LV11111111111"
    assert reason.actual == "endpoint 0088:7300010000001, vat LV40003000000, legal_id 40003000000"


def test_currency_mismatch_skips_the_comparisons_of_money() -> None:
    found = codes(match(invoice(line(price="9.99"), currency="USD", total="99999.00"), [commitment()]))
    assert found == ["CURRENCY_MISMATCH"]


@pytest.mark.parametrize(
    ("issued", "outside"),
    [
        (date(2026, 1, 1), False),
        (date(2025, 12, 31), True),
        (date(2026, 12, 31), False),
        (date(2027, 1, 1), True),
    ],
)
def test_outside_validity_includes_both_ends(issued: date, outside: bool) -> None:
    found = codes(match(invoice(issued=issued), [commitment()]))
    assert found == (["OUTSIDE_VALIDITY"] if outside else [])


def test_an_open_ended_validity_has_no_limit_on_that_side() -> None:
    assert codes(match(invoice(issued=date(2040, 1, 1)), [commitment(valid_to=None)])) == []


def test_a_closed_commitment() -> None:
    reason = only(match(invoice(), [commitment(status=CommitmentStatus.CLOSED)]), "COMMITMENT_CLOSED")
    assert (reason.expected, reason.actual) == ("open", "closed")


# --- 3. matching lines ----------------------------------------------------------------------------

TWO_LINES = (
    commitment_line(),
    commitment_line(
        id="2",
        seller_item_id="SKU-2",
        standard_item_id="0160:7300010000024",
        description="Toner cartridge black",
        quantity=d(10),
        unit_code="EA",
        unit_price=d("80.00"),
    ),
)


def lines_of(result_and_reservation: tuple) -> list[tuple[str | None, str | None]]:  # type: ignore[type-arg]
    result, _ = result_and_reservation
    return [(m.commitment_line, m.by.value if m.by else None) for m in result.lines]


def test_lines_by_order_line_reference_then_item_ids_then_description() -> None:
    lines = (
        line("1", "3", "80.00", order_line="2", unit="EA", name="whatever"),
        line("2", "3", "80.00", order_line=None, sellers_id="SKU-2", unit="EA", name="whatever"),
        line("3", "3", "80.00", order_line=None, standard_id=Identifier("7300010000024", "0160"), unit="EA"),
        line("4", order_line=None, name="printer paper, A4"),
        line("5", order_line="9", sellers_id="SKU-1"),  # names no line: the item id decides
    )
    result = match(invoice(*lines), [commitment(*TWO_LINES, amount=d("9999.00"))])
    assert lines_of(result) == [
        ("2", "order_line_reference"),
        ("2", "item_id"),
        ("2", "item_id"),
        ("1", "description"),
        ("1", "item_id"),
    ]
    assert codes(result) == []


def test_description_similarity_must_be_above_the_threshold_with_the_same_unit() -> None:
    text = "Printer paper A4 80g"
    score = fuzz.token_sort_ratio(text, "Printer paper A4", processor=utils.default_process)
    paper = invoice(line(order_line=None, name=text))
    at = match(paper, [commitment()], config=MatchConfig(description_similarity=score))
    assert codes(at) == ["LINE_UNMATCHED"]
    above = match(paper, [commitment()], config=MatchConfig(description_similarity=score - 0.01))
    assert lines_of(above) == [("1", "description")]
    other_unit = invoice(line(order_line=None, name="Printer paper A4", unit="EA"))
    assert codes(match(other_unit, [commitment()])) == ["LINE_UNMATCHED"]


def test_an_unmatched_line_says_what_was_tried() -> None:
    unknown = invoice(line(order_line="9", sellers_id="SKU-9", name="Stapler"))
    reason = only(match(unknown, [commitment()]), "LINE_UNMATCHED")
    assert reason.line == "1"
    assert reason.message == (
        f"Line 1 matches no line of commitment {NUMBER}: its order line reference 9 (BT-132) names no line of "
        f"{NUMBER}; no line has its item id (BT-155, BT-157); no line with unit C62 has a description similar "
        "enough (above 90)"
    )
    result, _ = match(unknown, [commitment()])
    assert [m.to_dict() for m in result.lines] == [
        {"line": "1", "commitment_line": None, "by": None, "outcome": "unmatched"}
    ]


def test_two_lines_equally_good_are_no_match() -> None:
    twins = (commitment_line(), commitment_line(id="2"))
    assert codes(match(invoice(line(order_line=None, sellers_id="SKU-1")), [commitment(*twins)])) == ["LINE_UNMATCHED"]
    by_text = invoice(line(order_line=None, name="Printer paper A4"))
    no_ids = tuple(replace(c, seller_item_id=None, standard_item_id=None) for c in twins)
    assert codes(match(by_text, [commitment(*no_ids)])) == ["LINE_UNMATCHED"]


def test_a_commitment_without_lines_controls_the_amount_only() -> None:
    result, reservation = match(invoice(line(price="99.90", order_line="77"), order=None, contract="K-7"), [CONTRACT])
    assert (result.outcome, result.lines) == ("matched", ())
    assert reservation == Reservation("K-7", d("1208.79"))


# --- 4. line checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "price", "exceeded"),
    [
        ({"price_percent": "2", "price_amount": "1.00"}, "3.57", None),  # 2% exactly
        ({"price_percent": "2", "price_amount": "1.00"}, "3.5701", "2%"),
        ({"price_percent": "2", "price_amount": "1.00"}, "3.43", None),
        ({"price_percent": "2", "price_amount": "1.00"}, "3.4299", "2%"),
        ({"price_percent": "50", "price_amount": "0.10"}, "3.60", None),
        ({"price_percent": "50", "price_amount": "0.10"}, "3.6001", "0.10"),
        ({"price_percent": "1", "price_amount": "0.01"}, "3.60", "1% / 0.01"),
        ({"price_amount": "0.10"}, "3.60", None),
        ({"price_amount": "0.10"}, "3.61", "0.10"),
        ({"price_percent": "0"}, "3.50", None),
        ({"price_percent": "0"}, "3.5000001", "0%"),
        ({}, "3.50", None),
        ({}, "3.500", None),
        ({}, "3.5001", "exact"),
        ({}, "3.4999", "exact"),
    ],
)
def test_price_variance_at_and_just_beyond_the_limits(limits: dict[str, str], price: str, exceeded: str | None) -> None:
    result = match(invoice(line(price=price)), [commitment(tolerances=tolerances(**limits))])
    if exceeded is None:
        assert codes(result) == []
    else:
        reason = only(result, "PRICE_VARIANCE")
        assert reason.message.endswith(f"(limit {exceeded})")
        assert (reason.expected, reason.actual, reason.commitment_line) == ("3.50", price, "1")


def test_price_tolerance_strings_and_a_price_below() -> None:
    reason = only(match(invoice(line(price="3.00")), [commitment()]), "PRICE_VARIANCE")
    assert reason.tolerance == "exact"
    assert reason.message == "Unit price 3.00 is 14.3% below the committed 3.50 (limit exact)"
    half = only(
        match(invoice(line(price="4")), [commitment(tolerances=tolerances(price_percent="2.50"))]), "PRICE_VARIANCE"
    )
    assert half.tolerance == "2.5%"


def test_the_price_is_bt146_over_the_base_quantity_bt149() -> None:
    per_ten = match(invoice(line(quantity="10", price="35.00", base="10")), [commitment()])
    assert codes(per_ten) == []
    reason = only(match(invoice(line(quantity="10", price="35.01", base="10")), [commitment()]), "PRICE_VARIANCE")
    assert reason.actual == "3.501"
    assert reason.message == "Unit price 3.501 (35.01 per 10) is 0.0% above the committed 3.50 (limit exact)"
    # the absolute limit is per unit: 0.01 a unit allows 0.10 on a price per 10
    tol = tolerances(price_amount="0.01")
    assert codes(match(invoice(line(quantity="10", price="35.10", base="10")), [commitment(tolerances=tol)])) == []
    assert codes(match(invoice(line(quantity="10", price="35.11", base="10")), [commitment(tolerances=tol)])) == [
        "PRICE_VARIANCE"
    ]


def test_no_hidden_slack_100_002_against_100_at_0_percent() -> None:
    hundred = commitment(commitment_line(unit_price=d(100)), tolerances=tolerances(price_percent="0"))
    assert codes(match(invoice(line(quantity="1", price="100.002")), [hundred])) == ["PRICE_VARIANCE"]


@pytest.mark.parametrize(
    ("percent", "quantity", "already", "exceeds"),
    [
        (None, "100", "0", False),
        (None, "100.01", "0", True),
        ("0", "40", "60", False),
        ("0", "41", "60", True),
        ("10", "110", "0", False),
        ("10", "110.0001", "0", True),
        ("10", "50", "60", False),
        ("10", "50.0001", "60", True),
    ],
)
def test_quantity_exceeds_ordered_counts_what_earlier_invoices_took(
    percent: str | None, quantity: str, already: str, exceeds: bool
) -> None:
    tol = tolerances(quantity_percent=percent) if percent is not None else tolerances()
    target = commitment(commitment_line(invoiced=d(already)), tolerances=tol, amount=d("99999.00"))
    result = match(invoice(line(quantity=quantity)), [target])
    if not exceeds:
        assert codes(result) == []
        return
    reason = only(result, "QUANTITY_EXCEEDS_ORDERED")
    assert (reason.expected, reason.actual) == ("100", str(d(already) + d(quantity)))
    assert reason.tolerance == ("exact" if percent is None else f"{percent}%")


def test_no_hidden_slack_1800_01_against_1800() -> None:
    target = commitment(commitment_line(quantity=d(1800)), tolerances=tolerances(quantity_percent="0"), amount=d(99999))
    reason = only(match(invoice(line(quantity="1800.01")), [target]), "QUANTITY_EXCEEDS_ORDERED")
    assert reason.message == "Quantity 1800.01 invoiced on commitment line 1 is more than the 1800 ordered (limit 0%)"


def test_two_invoice_lines_on_one_commitment_line_add_up() -> None:
    result = match(invoice(line("1", "60"), line("2", "41")), [commitment()])
    reason = only(result, "QUANTITY_EXCEEDS_ORDERED")
    assert (reason.line, reason.actual) == ("2", "101")


@pytest.mark.parametrize(("quantity", "exceeds"), [("40", False), ("40.001", True)])
def test_quantity_exceeds_received_when_receipts_are_required(quantity: str, exceeds: bool) -> None:
    three_way = commitment(commitment_line(received=d(40)), receipt_required=True)
    assert codes(match(invoice(line(quantity=quantity)), [three_way])) == (
        ["QUANTITY_EXCEEDS_RECEIVED"] if exceeds else []
    )
    two_way = commitment(commitment_line(received=d(40)))
    assert codes(match(invoice(line(quantity=quantity)), [two_way])) == []


def test_received_counts_what_earlier_invoices_took_and_the_quantity_tolerance() -> None:
    three_way = commitment(
        commitment_line(received=d(40), invoiced=d(30)),
        receipt_required=True,
        tolerances=tolerances(quantity_percent="5"),
    )
    assert codes(match(invoice(line(quantity="12")), [three_way])) == []  # 42 of 40 received: 5%
    reason = only(match(invoice(line(quantity="12.01")), [three_way]), "QUANTITY_EXCEEDS_RECEIVED")
    assert (reason.expected, reason.actual, reason.tolerance) == ("40", "42.01", "5%")


def test_unit_mismatch_and_its_quantity_is_not_compared() -> None:
    reason = only(match(invoice(line(quantity="1000", unit="KGM")), [commitment()]), "UNIT_MISMATCH")
    assert (reason.expected, reason.actual) == ("C62", "KGM")
    assert codes(match(invoice(line(quantity="1000", unit="KGM")), [commitment()])) == ["UNIT_MISMATCH"]


@pytest.mark.parametrize(
    ("category", "rate", "mismatch"),
    [("S", "21", False), ("S", "21.00", False), ("S", "12", True), ("Z", "21", True), ("E", None, True)],
)
def test_vat_mismatch_category_or_rate(category: str, rate: str | None, mismatch: bool) -> None:
    result = match(invoice(line(category=category, rate=rate)), [commitment()])
    if not mismatch:
        assert codes(result) == []
        return
    reason = only(result, "VAT_MISMATCH")
    assert reason.expected == "S 21%"


# --- 5. budget --------------------------------------------------------------------------------------

HALF_SPENT = {"reserved": d("3000.00"), "consumed": d("1000.00")}  # 1000.00 remaining


@pytest.mark.parametrize(
    ("limits", "total", "exceeded"),
    [
        ({}, "1000.00", None),
        ({}, "1000.01", "exact"),
        ({"amount_percent": "0", "amount_amount": "0.00"}, "1000.01", "0% / 0.00"),
        ({"amount_percent": "1"}, "1050.00", None),  # 1% of the 5000.00 commitment
        ({"amount_percent": "1"}, "1050.01", "1%"),
        ({"amount_percent": "1", "amount_amount": "20.00"}, "1020.00", None),
        ({"amount_percent": "1", "amount_amount": "20.00"}, "1020.01", "20.00"),
        ({"amount_amount": "100.00"}, "1100.00", None),
        ({"amount_amount": "100.00"}, "1100.01", "100.00"),
    ],
)
def test_amount_exceeds_remaining_at_and_just_beyond_the_limits(
    limits: dict[str, str], total: str, exceeded: str | None
) -> None:
    target = commitment(commitment_line(quantity=d(10000)), tolerances=tolerances(**limits), **HALF_SPENT)
    result = match(invoice(total=total), [target])
    if exceeded is None:
        assert codes(result) == []
        assert result[1].amount == d(total)
        return
    reason = only(result, "AMOUNT_EXCEEDS_REMAINING")
    assert (reason.expected, reason.actual) == ("1000.00", total)
    assert reason.message == (
        f"Total {total} is more than the 1000.00 remaining of commitment {NUMBER}'s 5000.00 (limit {exceeded})"
    )


# --- 6. duplicates ----------------------------------------------------------------------------------


def earlier(number: str, issued: date, amount: str = "42.35", **changes: object) -> EarlierDocument:
    return EarlierDocument(id=f"doc-{number}", number=number, issue_date=issued, amount=d(amount), **changes)  # type: ignore[arg-type]


def test_duplicate_same_number_and_issue_year() -> None:
    history = History(earlier=(earlier("INV-1", date(2026, 11, 30), "7.00"),))
    reason = only(match(invoice(number="INV-1"), [commitment()], history), "DUPLICATE")
    assert reason.message == (
        "Number INV-1 of 2026 was already used by this supplier (document doc-INV-1, issued 2026-11-30)"
    )
    last_year = History(earlier=(earlier("INV-1", date(2025, 3, 1), "7.00"),))
    assert codes(match(invoice(number="INV-1"), [commitment()], last_year)) == []


@pytest.mark.parametrize(("days", "suspected"), [(0, True), (7, True), (-7, True), (8, False), (-8, False)])
def test_suspected_duplicate_same_total_within_the_window(days: int, suspected: bool) -> None:
    from datetime import timedelta

    history = History(earlier=(earlier("INV-0", date(2026, 3, 1) + timedelta(days=days)),))
    found = codes(match(invoice(number="INV-1"), [commitment()], history))
    assert found == (["SUSPECTED_DUPLICATE"] if suspected else [])


def test_the_duplicate_window_is_configured() -> None:
    history = History(earlier=(earlier("INV-0", date(2026, 3, 9)),))
    assert codes(match(invoice(), [commitment()], history, MatchConfig(duplicate_window_days=8))) == [
        "SUSPECTED_DUPLICATE"
    ]
    assert codes(match(invoice(), [commitment()], history, MatchConfig(duplicate_window_days=7))) == []


def test_not_a_suspected_duplicate_another_total_or_another_kind() -> None:
    other_total = History(earlier=(earlier("INV-0", date(2026, 3, 1), "42.36"),))
    assert codes(match(invoice(), [commitment()], other_total)) == []
    credit_note = History(earlier=(earlier("CN-0", date(2026, 3, 1), credit_note=True),))
    assert codes(match(invoice(), [commitment()], credit_note)) == []


def test_duplicates_are_found_without_a_commitment_too() -> None:
    history = History(earlier=(earlier("INV-1", date(2026, 1, 2)),))
    assert codes(match(invoice(order="PO-9"), [], history)) == ["NO_COMMITMENT", "DUPLICATE"]


# --- 7. credit notes --------------------------------------------------------------------------------

HELD = Reservation(NUMBER, d("121.00"), (LineReservation("1", d(10)),))
CREDITED = EarlierDocument(
    id="doc-inv", number="INV-1", issue_date=date(2026, 2, 1), amount=d("121.00"), reservation=HELD
)
BY_INV_1 = (PrecedingInvoice("INV-1", date(2026, 2, 1)),)


def credit_note(*lines, total: str | None = None, preceding=BY_INV_1, **changes):  # type: ignore[no-untyped-def]
    return invoice(
        *(lines or (line(quantity="10", price="10.00"),)),
        number="CN-1",
        credit_note=True,
        preceding=preceding,
        total=total,
        order=None,
        **changes,
    )


POSTED = commitment(commitment_line(unit_price=d("10.00"), invoiced=d(10)), consumed=d("121.00"))


def test_a_credit_note_gives_back_what_its_invoice_holds() -> None:
    result, reservation = match(credit_note(), [POSTED], History(earlier=(CREDITED,)))
    assert (result.outcome, result.commitment, result.reserved) == ("matched", NUMBER, d("-121.00"))
    assert reservation == Reservation(NUMBER, d("-121.00"), (LineReservation("1", d(-10)),), gives_back=True)


def test_a_credit_note_is_not_checked_for_price_validity_or_budget() -> None:
    spent = replace(POSTED, valid_to=date(2026, 1, 31), status=CommitmentStatus.CLOSED, consumed=d("5000.00"))
    cheaper = credit_note(line(quantity="10", price="1.00"), total="121.00")
    result, _ = match(cheaper, [spent], History(earlier=(CREDITED,)))
    assert result.outcome == "matched"


@pytest.mark.parametrize(
    ("preceding", "history", "why"),
    [
        ((), (CREDITED,), "the credit note names no preceding invoice (BT-25)"),
        ((PrecedingInvoice("INV-9"),), (CREDITED,), "no invoice INV-9 of this supplier was found"),
        (BY_INV_1, (replace(CREDITED, reservation=None),), "invoice INV-1 holds nothing on any commitment"),
        (
            (PrecedingInvoice("INV-1"),),
            (CREDITED, replace(CREDITED, id="doc-2", issue_date=date(2025, 2, 1))),
            "2 invoices numbered INV-1 and no issue date (BT-26) to tell",
        ),
        (BY_INV_1, (replace(CREDITED, credit_note=True),), "no invoice INV-1 of this supplier was found"),
    ],
)
def test_credit_note_unresolved(preceding: tuple, history: tuple, why: str) -> None:  # type: ignore[type-arg]
    result = match(credit_note(preceding=preceding), [POSTED], History(earlier=history))
    reason = only(result, "CREDIT_NOTE_UNRESOLVED")
    assert reason.message == f"The credit note's invoice cannot be resolved: {why}"
    assert result[1] is NO_RESERVATION


def test_the_issue_date_bt26_tells_two_invoices_of_one_number_apart() -> None:
    history = History(earlier=(CREDITED, replace(CREDITED, id="doc-2", issue_date=date(2025, 2, 1), reservation=None)))
    assert match(credit_note(), [POSTED], history)[0].outcome == "matched"


@pytest.mark.parametrize(("total", "exceeds"), [("121.00", False), ("121.01", True)])
def test_credit_exceeds_invoice_amount(total: str, exceeds: bool) -> None:
    result = match(credit_note(total=total), [POSTED], History(earlier=(CREDITED,)))
    assert codes(result) == (["CREDIT_EXCEEDS_INVOICE"] if exceeds else [])


@pytest.mark.parametrize(("quantity", "exceeds"), [("10", False), ("10.001", True)])
def test_credit_exceeds_invoice_quantity_on_a_line(quantity: str, exceeds: bool) -> None:
    note = credit_note(line(quantity=quantity, price="1.00"), total="12.10")
    result = match(note, [POSTED], History(earlier=(CREDITED,)))
    if exceeds:
        reason = only(result, "CREDIT_EXCEEDS_INVOICE")
        assert (reason.line, reason.commitment_line, reason.expected, reason.actual) == ("1", "1", "10", quantity)
    else:
        assert codes(result) == []


def test_earlier_credit_notes_lower_what_may_still_be_given_back() -> None:
    first = EarlierDocument(
        id="doc-cn0",
        number="CN-0",
        issue_date=date(2026, 2, 10),
        amount=d("60.50"),
        credit_note=True,
        preceding=("INV-1",),
        reservation=Reservation(NUMBER, d("-60.50"), (LineReservation("1", d(-5)),), gives_back=True),
    )
    history = History(earlier=(CREDITED, first))
    half = credit_note(line(quantity="5", price="10.00"))
    assert match(half, [POSTED], history)[0].outcome == "matched"
    found = codes(match(credit_note(line(quantity="6", price="10.00")), [POSTED], history))
    assert found == ["CREDIT_EXCEEDS_INVOICE", "CREDIT_EXCEEDS_INVOICE"]


def test_invoices_holding_on_different_commitments_make_a_credit_note_ambiguous() -> None:
    other = EarlierDocument(
        id="doc-inv2",
        number="INV-2",
        issue_date=date(2026, 2, 2),
        amount=d("1.00"),
        reservation=Reservation("K-7", d("1.00")),
    )
    both = (*BY_INV_1, PrecedingInvoice("INV-2"))
    found = codes(match(credit_note(preceding=both), [POSTED, CONTRACT], History(earlier=(CREDITED, other))))
    assert found == ["AMBIGUOUS_COMMITMENT"]


# --- 8. the warning ---------------------------------------------------------------------------------

PAST = (Decimal("100.00"), Decimal("110.00"), Decimal("90.00"), Decimal("100.00"), Decimal("100.00"))
# mean 100.00, sample standard deviation sqrt(50) = 7.0711: 3 of them 21.2132


def past(amounts: tuple[Decimal, ...] = PAST, **changes: object) -> History:
    return History(
        earlier=tuple(
            EarlierDocument(id=f"d{i}", number=f"P-{i}", issue_date=date(2025, 1, 1 + i), amount=a, **changes)  # type: ignore[arg-type]
            for i, a in enumerate(amounts)
        )
    )


@pytest.mark.parametrize(("total", "warned"), [("121.21", False), ("121.22", True), ("78.79", False), ("78.78", True)])
def test_amount_anomaly_beyond_three_standard_deviations(total: str, warned: bool) -> None:
    target = commitment(lines=())
    result, reservation = match(invoice(total=total), [target], past())
    assert result.outcome == "matched"  # a warning never stops the invoice
    assert reservation.amount == d(total)
    assert [w.code for w in result.warnings] == (["AMOUNT_ANOMALY"] if warned else [])
    if warned:
        warning = result.warnings[0]
        assert warning.tolerance == "3 standard deviations of 5 invoices"
        assert warning.expected == "78.79 to 121.21"
        assert result.to_dict()["warnings"][0]["code"] == "AMOUNT_ANOMALY"


def test_amount_anomaly_needs_the_minimum_of_invoices_and_reads_only_the_last_ones() -> None:
    target = commitment(lines=())
    assert match(invoice(total="500.00"), [target], past(PAST[:4]))[0].warnings == ()
    fewer = MatchConfig(anomaly_minimum=4)
    assert len(match(invoice(total="500.00"), [target], past(PAST[:4]), fewer)[0].warnings) == 1
    # by issue date, the oldest of six is 10000.00: the last 5 leave it out, the last 6 take it in
    history = past((Decimal("10000.00"), *PAST))
    assert len(match(invoice(total="500.00"), [target], history, MatchConfig(anomaly_invoices=5))[0].warnings) == 1
    assert match(invoice(total="500.00"), [target], history, MatchConfig(anomaly_invoices=6))[0].warnings == ()


def test_amount_anomaly_counts_only_invoices_with_the_institution() -> None:
    target = commitment(lines=())
    assert match(invoice(total="500.00"), [target], past(same_institution=False))[0].warnings == ()
    assert match(invoice(total="500.00"), [target], past(credit_note=True))[0].warnings == ()


def test_amount_anomaly_deviations_are_configured() -> None:
    two = MatchConfig(anomaly_deviations=Decimal(2))
    assert len(match(invoice(total="115.00"), [commitment(lines=())], past(), two)[0].warnings) == 1
    assert match(invoice(total="114.14"), [commitment(lines=())], past(), two)[0].warnings == ()
