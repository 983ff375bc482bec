"""What documents hold on a commitment: reserve, release, consume, and the properties the issue
asks for (remaining never below zero beyond tolerance; reserve then release is neutral; an invoice
and its full credit note leave the commitment as it was)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einvoice.domain.commitments import Commitment, LineReservation, Reservation, Tolerances
from einvoice.domain.invoice import PrecedingInvoice
from einvoice.errors import MatchingError, ReservationError
from einvoice.matching import EarlierDocument, History, consume, holding, match, release, reserve
from einvoice.matching.reservations import amount_limit, quantity_limit

from .builders import NUMBER, commitment, commitment_line, d, invoice, line, tolerances

HELD = Reservation(NUMBER, d("121.00"), (LineReservation("1", d(10)),))
GIVEN_BACK = Reservation(NUMBER, d("-121.00"), (LineReservation("1", d(-10)),), gives_back=True)


def figures(c: Commitment) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return c.reserved, c.consumed, c.remaining, c.lines[0].invoiced


def test_reserve_holds_the_amount_and_the_quantities() -> None:
    held = reserve(commitment(), HELD)
    assert figures(held) == (d("121.00"), d(0), d("4879.00"), d(10))
    assert held.to_dict()["lines"][0]["invoiced"] == "10"


def test_release_gives_it_back_and_consume_moves_it_to_consumed() -> None:
    held = reserve(commitment(), HELD)
    assert release(held, HELD) == commitment()
    assert figures(consume(held, HELD)) == (d(0), d("121.00"), d("4879.00"), d(10))


def test_a_credit_note_gives_back_only_when_posted() -> None:
    posted = consume(reserve(commitment(), HELD), HELD)
    assert reserve(posted, GIVEN_BACK) == posted  # pending: nothing freed for other invoices yet
    assert release(posted, GIVEN_BACK) == posted
    assert consume(posted, GIVEN_BACK) == commitment()


@pytest.mark.parametrize(
    ("step", "reservation", "message"),
    [
        (reserve, Reservation("PO-9", d(1)), "the reservation is on commitment PO-9, not on PO-2026-0042"),
        (reserve, Reservation(NUMBER, d(1), (LineReservation("7", d(1)),)), "commitment PO-2026-0042 has no line 7"),
        (reserve, Reservation(NUMBER, d("5000.01")), "5000.01 is more than the 5000.00 remaining"),
        (reserve, Reservation(NUMBER, d(1), (LineReservation("1", d("100.01")),)), "would have 100.01 invoiced"),
        (release, HELD, "holds 0 reserved, not 121.00"),
        (consume, HELD, "holds 0 reserved, not 121.00"),
        (consume, GIVEN_BACK, "has 0 consumed, less than the 121.00 a credit note gives back"),
    ],
)
def test_what_no_set_of_documents_could_hold_is_refused(step, reservation: Reservation, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ReservationError, match=message) as excinfo:
        step(commitment(), reservation)
    assert isinstance(excinfo.value, MatchingError)


def test_reserve_allows_the_tolerance_and_not_a_cent_more() -> None:
    tolerant = commitment(tolerances=tolerances(amount_percent="1", quantity_percent="10"))
    reserve(tolerant, Reservation(NUMBER, d("5050.00"), (LineReservation("1", d(110)),)))
    with pytest.raises(ReservationError):
        reserve(tolerant, Reservation(NUMBER, d("5050.01")))
    with pytest.raises(ReservationError):
        reserve(tolerant, Reservation(NUMBER, d(1), (LineReservation("1", d("110.001")),)))


def test_holding_sums_what_documents_hold_on_one_commitment() -> None:
    other = Reservation("K-7", d("9.00"))
    credit = Reservation(NUMBER, d("-21.00"), (LineReservation("1", d(-2)),), gives_back=True)
    assert holding([HELD, other, credit], NUMBER) == Reservation(NUMBER, d("100.00"), (LineReservation("1", d(8)),))


# --- properties -------------------------------------------------------------------------------

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3000.00"), places=2)
quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("60"), places=3)
percents = st.none() | st.decimals(min_value=Decimal(0), max_value=Decimal(20), places=2)
amounts = st.none() | st.decimals(min_value=Decimal(0), max_value=Decimal(500), places=2)


@st.composite
def commitments(draw: st.DrawFn) -> Commitment:
    return commitment(
        # priced at 0, as the invoices below: only the budget and the quantities decide
        commitment_line(
            quantity=draw(st.decimals(min_value=Decimal(1), max_value=Decimal(200), places=2)), unit_price=Decimal(0)
        ),
        amount=draw(st.decimals(min_value=Decimal(1), max_value=Decimal(10000), places=2)),
        tolerances=Tolerances(
            quantity_percent=draw(percents), amount_percent=draw(percents), amount_amount=draw(amounts)
        ),
    )


# One step: an invoice (total, quantity) to match and reserve, or the release or posting of a held one.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), money, quantities),
        st.tuples(st.just("release"), st.integers(0, 30), st.just(Decimal(0))),
        st.tuples(st.just("post"), st.integers(0, 30), st.just(Decimal(0))),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(commitments(), steps)
def test_remaining_never_goes_below_zero_beyond_tolerance(start: Commitment, script: list) -> None:  # type: ignore[type-arg]
    current = start
    held: list[Reservation] = []
    posted: list[Reservation] = []
    allowance = amount_limit(start).allowance(start.amount)
    line_allowance = quantity_limit(start).allowance(start.lines[0].quantity)
    for number, (kind, value, quantity) in enumerate(script):
        if kind == "invoice":
            document = invoice(line(quantity=str(quantity), price="0"), total=value, number=f"INV-{number}")
            result, reservation = match(document, [current], config=None)
            if result.matched:
                current = reserve(current, reservation)
                held.append(reservation)
        elif held:
            reservation = held.pop(int(value) % len(held))
            if kind == "release":
                current = release(current, reservation)
            else:
                current = consume(current, reservation)
                posted.append(reservation)
        assert current.remaining >= -allowance
        assert current.lines[0].invoiced <= current.lines[0].quantity + line_allowance
        # the commitment's figures are the sum of what its documents hold
        assert current.reserved == sum((r.amount for r in held), Decimal(0))
        assert current.consumed == sum((r.amount for r in posted), Decimal(0))
        assert current.lines[0].invoiced == sum((r.quantity("1") for r in (*held, *posted)), Decimal(0))


@settings(max_examples=150, deadline=None)
@given(commitments(), money, quantities, st.decimals(min_value=Decimal(0), max_value=Decimal(5000), places=2))
def test_reserve_then_release_is_neutral(start: Commitment, total: Decimal, quantity: Decimal, spent: Decimal) -> None:
    start = commitment(*start.lines, amount=start.amount + spent, consumed=spent, tolerances=start.tolerances)
    result, reservation = match(invoice(line(quantity=str(quantity), price="0"), total=total), [start])
    if result.matched:
        assert release(reserve(start, reservation), reservation) == start


@settings(max_examples=150, deadline=None)
@given(
    commitments(),
    st.lists(st.tuples(money, quantities), min_size=1, max_size=5),
    st.integers(min_value=0),
)
def test_an_invoice_and_its_full_credit_note_leave_the_commitment_as_it_was(
    start: Commitment, earlier: list[tuple[Decimal, Decimal]], pick: int
) -> None:
    # other invoices before it, posted, so that the commitment is not empty
    current = start
    for i, (total, quantity) in enumerate(earlier):
        result, reservation = match(
            invoice(line(quantity=str(quantity), price="0"), total=total, number=f"E-{i}"), [current]
        )
        if result.matched:
            current = consume(reserve(current, reservation), reservation)
    before = current
    total, quantity = earlier[pick % len(earlier)]
    sent = invoice(line(quantity=str(quantity), price="0"), total=total, number="INV-1", issued=date(2026, 3, 1))
    result, taken = match(sent, [current])
    if not result.matched:
        return
    current = consume(reserve(current, taken), taken)
    credited = EarlierDocument("doc-1", "INV-1", date(2026, 3, 1), total, reservation=taken)
    note = invoice(
        line(quantity=str(quantity), price="0"),
        total=total,
        number="CN-1",
        credit_note=True,
        order=None,
        preceding=(PrecedingInvoice("INV-1", date(2026, 3, 1)),),
    )
    credit, given_back = match(note, [current], History(earlier=(credited,)))
    assert credit.matched, credit.reasons
    assert consume(reserve(current, given_back), given_back) == before
