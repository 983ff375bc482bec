"""Tolerances, exactly: whether a variance stays within the limits a commitment sets.

A variance is within tolerance when it exceeds neither the percentage nor the absolute limit that
is set; a limit not set allows nothing, and no limit set at all means exact. Every comparison is
made in ``Decimal`` with unlimited precision (sums and products of decimals are exact there), so
100.002 against 100 with a "0%" allowance is a variance, and 1800.01 against 1800 too.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

# Additions, subtractions and multiplications are exact in this context; Inexact would say otherwise.
_EXACT = Context(
    prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact]
)
_TENTH = Decimal("0.1")


def plain(value: Decimal) -> str:
    """A percentage or a count as people write it: ``2`` for 2.00, ``2.5`` for 2.50, never ``2E+1``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True, slots=True)
class Limit:
    """The limits on one kind of variance: a percentage of the committed figure, an absolute one
    (in the figure's own terms: money for prices and amounts), either, both or none."""

    percent: Decimal | None = None
    amount: Decimal | None = None

    def describe(self) -> str:
        """As a reason shows it: ``2% / 1.00``, ``2%``, ``1.00``, or ``exact`` when none is set."""
        parts = []
        if self.percent is not None:
            parts.append(f"{plain(self.percent)}%")
        if self.amount is not None:
            parts.append(str(self.amount))
        return " / ".join(parts) or "exact"

    def exceeded(self, variance: Decimal, committed: Decimal, *, scale: Decimal = Decimal(1)) -> tuple[str, ...]:
        """The limits ``variance`` exceeds (``"2%"``, ``"1.00"``, or ``"exact"`` when none is set);
        empty when it is within them. ``committed`` is the figure the percentage is of; ``scale``
        multiplies the absolute limit (a price compared per base quantity: BT-146 against the
        committed unit price times BT-149, so nothing is divided)."""
        with localcontext(_EXACT):
            if variance <= 0:
                return ()
            if self.percent is None and self.amount is None:
                return ("exact",)
            over = []
            if self.percent is not None and variance * 100 > self.percent * abs(committed):
                over.append(f"{plain(self.percent)}%")
            if self.amount is not None and variance > self.amount * abs(scale):
                over.append(str(self.amount))
            return tuple(over)

    def allowance(self, committed: Decimal) -> Decimal:
        """The largest variance within the limits on ``committed`` (0 when none is set): the
        smaller of the set percentage of it and the set absolute limit."""
        with localcontext(_EXACT):
            bounds = []
            if self.percent is not None:
                bounds.append(self.percent * abs(committed) / 100)
            if self.amount is not None:
                bounds.append(self.amount)
            return max(min(bounds), Decimal(0)) if bounds else Decimal(0)


def percent_change(actual: Decimal, expected: Decimal) -> Decimal | None:
    """How far ``actual`` is from ``expected``, in percent of it, to one decimal (half up); None
    when ``expected`` is zero. For messages only: the decisions compare without dividing."""
    if expected == 0:
        return None
    return ((actual - expected) * 100 / abs(expected)).quantize(_TENTH, rounding=ROUND_HALF_UP)
