"""What documents hold on a commitment, as pure arithmetic on ``Commitment``.

The commitment's figures are the sum of what its documents hold: ``reserved`` is what matched
invoices not yet posted hold, ``consumed`` what posted documents hold, a line's ``invoiced`` the
quantities both hold. Three steps change them:

- ``reserve``: a matched invoice holds its BT-112 and its quantities (``reserved``, ``invoiced``
  go up). A credit note's give-back holds nothing yet: budget freed before the credit note is
  posted could be spent by another invoice and then taken back by the credit note's rejection.
- ``release``: the reverse of ``reserve``, for a rejection or a re-match before posting.
- ``consume``: posting. An invoice's reservation moves from ``reserved`` to ``consumed``; a credit
  note gives back: ``consumed`` and the lines' ``invoiced`` go down by what it credits.

So an invoice and its full credit note, both posted, leave the commitment as it was, and reserving
then releasing changes nothing. Each function returns the new ``Commitment`` and raises
``ReservationError`` rather than leave a figure that no set of documents could hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import Decimal

from einvoice.domain.commitments import Commitment, CommitmentLine, LineReservation, Reservation
from einvoice.errors import ReservationError
from einvoice.matching.tolerance import Limit


def amount_limit(commitment: Commitment) -> Limit:
    """The commitment's tolerance on its amount (``amount_percent`` of it, ``amount_amount``)."""
    tolerances = commitment.tolerances
    return Limit(tolerances.amount_percent, tolerances.amount_amount)


def quantity_limit(commitment: Commitment) -> Limit:
    """The commitment's tolerance on a line's quantity (``quantity_percent`` of it)."""
    return Limit(commitment.tolerances.quantity_percent, None)


def price_limit(commitment: Commitment) -> Limit:
    """The commitment's tolerance on a unit price (``price_percent`` of it, ``price_amount``)."""
    tolerances = commitment.tolerances
    return Limit(tolerances.price_percent, tolerances.price_amount)


def _check(reservation: Reservation, commitment: Commitment) -> None:
    if reservation.commitment != commitment.number:
        raise ReservationError(f"the reservation is on commitment {reservation.commitment}, not on {commitment.number}")
    known = {line.id for line in commitment.lines}
    for held in reservation.lines:
        if held.line not in known:
            raise ReservationError(f"commitment {commitment.number} has no line {held.line}")


def _lines(commitment: Commitment, reservation: Reservation, sign: int) -> tuple[CommitmentLine, ...]:
    lines = []
    for line in commitment.lines:
        quantity = reservation.quantity(line.id)
        if quantity:
            invoiced = line.invoiced + sign * quantity
            if invoiced < 0:
                raise ReservationError(
                    f"line {line.id} of commitment {commitment.number} would have {invoiced} invoiced"
                )
            line = dataclasses.replace(line, invoiced=invoiced)
        lines.append(line)
    return tuple(lines)


def reserve(commitment: Commitment, reservation: Reservation) -> Commitment:
    """The commitment with an invoice's reservation held on it (a credit note's give-back holds
    nothing until ``consume``). Raises ``ReservationError`` when it would take the commitment
    beyond its amount plus tolerance, or a line beyond its ordered quantity plus tolerance: the
    same limits ``match`` checks, kept here too for the write that takes the reservation under the
    commitment's lock."""
    _check(reservation, commitment)
    if reservation.gives_back:
        return commitment
    overrun = reservation.amount - commitment.remaining
    if amount_limit(commitment).exceeded(overrun, commitment.amount):
        raise ReservationError(
            f"{reservation.amount} is more than the {commitment.remaining} remaining on commitment "
            f"{commitment.number} (tolerance {amount_limit(commitment).describe()})"
        )
    lines = _lines(commitment, reservation, +1)
    for line in lines:
        if reservation.quantity(line.id) > 0 and quantity_limit(commitment).exceeded(
            line.invoiced - line.quantity, line.quantity
        ):
            raise ReservationError(
                f"line {line.id} of commitment {commitment.number} would have {line.invoiced} invoiced "
                f"of {line.quantity} ordered (tolerance {quantity_limit(commitment).describe()})"
            )
    return dataclasses.replace(commitment, reserved=commitment.reserved + reservation.amount, lines=lines)


def release(commitment: Commitment, reservation: Reservation) -> Commitment:
    """The commitment without a reservation that ``reserve`` put on it and that was not consumed
    (a rejection, a re-match). Releasing a credit note's give-back changes nothing. Raises
    ``ReservationError`` when the commitment does not hold that much."""
    _check(reservation, commitment)
    if reservation.gives_back:
        return commitment
    reserved = commitment.reserved - reservation.amount
    if reserved < 0:
        raise ReservationError(
            f"commitment {commitment.number} holds {commitment.reserved} reserved, not {reservation.amount}"
        )
    return dataclasses.replace(commitment, reserved=reserved, lines=_lines(commitment, reservation, -1))


def consume(commitment: Commitment, reservation: Reservation) -> Commitment:
    """The commitment after the document is posted: an invoice's reservation becomes consumed; a
    credit note gives back, lowering ``consumed`` and the lines' ``invoiced``. Raises
    ``ReservationError`` when the commitment does not hold that much."""
    _check(reservation, commitment)
    if reservation.gives_back:
        consumed = commitment.consumed + reservation.amount
        if consumed < 0:
            raise ReservationError(
                f"commitment {commitment.number} has {commitment.consumed} consumed, "
                f"less than the {-reservation.amount} a credit note gives back"
            )
        return dataclasses.replace(commitment, consumed=consumed, lines=_lines(commitment, reservation, +1))
    reserved = commitment.reserved - reservation.amount
    if reserved < 0:
        raise ReservationError(
            f"commitment {commitment.number} holds {commitment.reserved} reserved, not {reservation.amount}"
        )
    return dataclasses.replace(commitment, reserved=reserved, consumed=commitment.consumed + reservation.amount)


def holding(reservations: Iterable[Reservation], number: str) -> Reservation:
    """The sum of what ``reservations`` hold on commitment ``number`` (the others left out), as one
    reservation: what a credit note may give back of the invoices it credits."""
    amount = Decimal("0.00")
    quantities: dict[str, Decimal] = {}
    for reservation in reservations:
        if reservation.commitment != number:
            continue
        amount += reservation.amount
        for line in reservation.lines:
            quantities[line.line] = quantities.get(line.line, Decimal(0)) + line.quantity
    return Reservation(number, amount, tuple(LineReservation(k, v) for k, v in quantities.items()))
