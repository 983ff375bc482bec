"""The matcher's own settings (the commitments carry their tolerances; these are the engine's)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from einvoice.settings import Settings


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """``duplicate_window_days``: issue dates at most this many days apart make two documents of
    one supplier with the same BT-112 and another number a ``SUSPECTED_DUPLICATE``.
    ``anomaly_deviations``, ``anomaly_invoices``, ``anomaly_minimum``: ``AMOUNT_ANOMALY`` when BT-112
    is more than that many standard deviations from the mean of the supplier's last
    ``anomaly_invoices`` invoices with the institution, and only with at least ``anomaly_minimum``.
    ``description_similarity``: an invoice line matches a commitment line by description when
    rapidfuzz's ``token_sort_ratio`` of the two (0 to 100) is above it and the unit code is the same."""

    duplicate_window_days: int = 7
    anomaly_deviations: Decimal = Decimal(3)
    anomaly_invoices: int = 30
    anomaly_minimum: int = 5
    description_similarity: float = 90.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MatchConfig:
        """The configuration ``EINVOICE_MATCH_*`` gives (``Settings``)."""
        return cls(
            duplicate_window_days=settings.match_duplicate_window_days,
            anomaly_deviations=settings.match_anomaly_deviations,
            anomaly_invoices=settings.match_anomaly_invoices,
            anomaly_minimum=settings.match_anomaly_minimum,
            description_similarity=settings.match_description_similarity,
        )
