"""Posting to the ERP: the journal entry builder (``builder``, pure) and the connectors that
deliver entries (``connectors``: files for ERPs that import them).

    entry = build_entry(invoice, profile, document_id=..., posting_date=..., commitment=...)
    entry.balanced            # always True
    entry.to_dict()           # the JSON the ERP receives
"""

from __future__ import annotations

from einvoice.posting.builder import SELF_ASSESSED, build_entry, entry_id, exchange_rate_from_document, net_by_account

__all__ = ["SELF_ASSESSED", "build_entry", "entry_id", "exchange_rate_from_document", "net_by_account"]
