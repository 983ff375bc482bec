"""AMOUNT_ANOMALY's float shortcut (``history._clearly_within``) only ever says "within" where the
exact figures in Decimal say so too: near the limit the Decimal computation decides."""

from __future__ import annotations

import statistics
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from einvoice.matching.history import _clearly_within

cents = st.integers(min_value=-(10**13), max_value=10**13).map(lambda n: Decimal(n) / 100)


def exactly_within(amount: Decimal, values: list[Decimal], deviations: Decimal) -> bool:
    return abs(amount - statistics.mean(values)) <= deviations * statistics.stdev(values)


@settings(max_examples=400, deadline=None)
@given(
    values=st.lists(cents, min_size=2, max_size=40),
    amount=cents,
    deviations=st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(1), Decimal(3), Decimal("3.25")]),
)
def test_the_estimate_says_within_only_where_the_exact_figures_do(
    values: list[Decimal], amount: Decimal, deviations: Decimal
) -> None:
    if _clearly_within(amount, values, deviations):
        assert exactly_within(amount, values, deviations)


@given(values=st.lists(cents, min_size=2, max_size=40), deviations=st.sampled_from([Decimal(1), Decimal(3)]))
def test_the_limit_itself_is_left_to_the_exact_figures(values: list[Decimal], deviations: Decimal) -> None:
    mean, limit = statistics.mean(values), deviations * statistics.stdev(values)
    assert not _clearly_within(mean + limit, values, deviations) or limit == 0
