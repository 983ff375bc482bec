"""Document states and what each kind of state means to the pipeline (DESIGN.md, "The flow of one document").

``received → validating → rejected | validated → matching → exception | matched → approved → posting →
posted``, with ``posting_failed`` (retrying), ``dead`` (needs a person) and ``refused`` (at intake).
A person's decisions add ``under_query`` (the supplier was asked for information) and
``awaiting_second_approval`` (four eyes: one approval recorded, another person's needed).
"""

from __future__ import annotations

from enum import StrEnum


class DocumentStatus(StrEnum):
    """Where a document stands (DESIGN.md, "The flow of one document")."""

    RECEIVED = "received"
    VALIDATING = "validating"
    REJECTED = "rejected"
    VALIDATED = "validated"
    MATCHING = "matching"
    EXCEPTION = "exception"
    MATCHED = "matched"
    APPROVED = "approved"
    POSTING = "posting"
    POSTED = "posted"
    POSTING_FAILED = "posting_failed"
    DEAD = "dead"
    REFUSED = "refused"  # refused at intake; recorded so the supplier can look it up
    UNDER_QUERY = "under_query"  # an accountant asked the supplier for information
    AWAITING_SECOND_APPROVAL = "awaiting_second_approval"  # approved once; four eyes need another person


S = DocumentStatus

# Which states wait for a stage, which a stage works in, and where a stage resumes are declared
# with the stages themselves (``services.process.REGISTRY``) and derived from it.

#: States nothing automatic moves on from (a person or a later issue's stage may).
FINAL_STATES = frozenset({S.REJECTED, S.EXCEPTION, S.POSTED, S.DEAD, S.REFUSED})
#: Where documents rest today: the final states, and ``approved`` until posting is built.
RESTING_STATES = FINAL_STATES | {S.APPROVED}
#: States in which a document waits for a person's decision (the accountants' queue); ``matched``
#: only when the approval rules held it back (``domain.review``).
REVIEW_STATES = frozenset({S.EXCEPTION, S.MATCHED, S.UNDER_QUERY, S.AWAITING_SECOND_APPROVAL})
