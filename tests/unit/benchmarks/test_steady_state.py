"""``bench post``'s verdict on keeping up: the rate of posting while submissions go on, and whether
the latency from receipt to ``posted`` grows through the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from einvoice.benchmarks.post import steady_state

START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _run(rate: float, capacity: float, seconds: float, base_latency: float) -> list[tuple[datetime, datetime]]:
    """Documents received at ``rate`` for ``seconds``, posted in order at most ``capacity`` a
    second, each no sooner than ``base_latency`` after its receipt."""
    times = []
    free = START
    for n in range(int(rate * seconds)):
        received = START + timedelta(seconds=n / rate)
        posted = max(received + timedelta(seconds=base_latency), free)
        free = posted + timedelta(seconds=1 / capacity)
        times.append((received, posted))
    return times


def test_a_pipeline_that_keeps_up_posts_at_the_offered_rate_with_a_flat_latency() -> None:
    figures = steady_state(_run(100, 1000, 15, 0.5), START, 15.0)
    assert figures["steady_posted_per_second"] == pytest.approx(100, rel=0.02)
    assert figures["to_posted_p50_first_third_s"] == pytest.approx(0.5, abs=0.01)
    assert figures["to_posted_p50_last_third_s"] == pytest.approx(0.5, abs=0.01)


def test_one_that_does_not_posts_at_its_capacity_and_its_latency_grows() -> None:
    figures = steady_state(_run(100, 80, 15, 0.5), START, 15.0)
    assert figures["steady_posted_per_second"] == pytest.approx(80, rel=0.02)
    first, last = figures["to_posted_p50_first_third_s"], figures["to_posted_p50_last_third_s"]
    assert first is not None
    assert last is not None
    assert last > first + 1.5  # a fifth more offered than taken: 2 s behind after 10 s more


def test_submissions_shorter_than_the_settling_time_give_no_steady_rate() -> None:
    figures = steady_state(_run(100, 1000, 3, 0.5), START, 3.0)
    assert figures["steady_posted_per_second"] is None
    assert figures["to_posted_p50_first_third_s"] == pytest.approx(0.5, abs=0.01)
