"""Matching: an invoice against the purchase commitments of its buyer institution. Pure: no
database, web framework or XML parser; the register reads what it needs and applies what it
decides.

Entry point::

    result, reservation = match(invoice, candidates, history, config)

- ``invoice``: the parsed ``Invoice`` (``uow.documents.parsed(id)``);
- ``candidates``: the institution's commitments whose number one of its references (BT-13, BT-12,
  BT-10) equals, and for a credit note the commitment its invoices hold on;
- ``history``: ``History(earlier=(EarlierDocument, …), supplier_id=…)``, the supplier's earlier
  documents (duplicates, the amount anomaly, the invoices a credit note credits);
- ``config``: ``MatchConfig`` (``MatchConfig.from_settings(settings)``).

``result`` is the ``MatchResult`` (``result.to_dict()`` is the API's ``match_result``);
``reservation`` what the document takes of the commitment, applied with ``reserve`` (then
``consume`` on posting, or ``release`` on rejection or re-match). The rules: docs/matching.md.
"""

from einvoice.domain.commitments import NO_RESERVATION, LineReservation, MatchResult, Reservation
from einvoice.matching.config import MatchConfig
from einvoice.matching.history import EarlierDocument, History
from einvoice.matching.matcher import find_commitment, match
from einvoice.matching.reservations import consume, holding, release, reserve
from einvoice.matching.tolerance import Limit

__all__ = [
    "NO_RESERVATION",
    "EarlierDocument",
    "History",
    "Limit",
    "LineReservation",
    "MatchConfig",
    "MatchResult",
    "Reservation",
    "consume",
    "find_commitment",
    "holding",
    "match",
    "release",
    "reserve",
]
