"""The matcher's settings: EINVOICE_MATCH_* into MatchConfig."""

from __future__ import annotations

from decimal import Decimal

import pytest

from einvoice.matching import MatchConfig
from einvoice.settings import Settings


def test_the_defaults_are_the_issues() -> None:
    assert MatchConfig.from_settings(Settings()) == MatchConfig(
        duplicate_window_days=7,
        anomaly_deviations=Decimal(3),
        anomaly_invoices=30,
        anomaly_minimum=5,
        description_similarity=90.0,
    )


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINVOICE_MATCH_DUPLICATE_WINDOW_DAYS", "10")
    monkeypatch.setenv("EINVOICE_MATCH_ANOMALY_DEVIATIONS", "2.5")
    monkeypatch.setenv("EINVOICE_MATCH_ANOMALY_INVOICES", "50")
    monkeypatch.setenv("EINVOICE_MATCH_ANOMALY_MINIMUM", "8")
    monkeypatch.setenv("EINVOICE_MATCH_DESCRIPTION_SIMILARITY", "95")
    assert MatchConfig.from_settings(Settings()) == MatchConfig(10, Decimal("2.5"), 50, 8, 95.0)
