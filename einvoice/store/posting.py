"""Posting's storage: each institution's chart of accounts (versioned by the date it is in force
from), its posting profile, and the journal entry kept for each document, read and written as the
domain types of ``einvoice.domain.journal``. Nothing here commits: the unit of work does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from einvoice.domain.journal import Account, AccountKind, ChartOfAccounts, PostingProfile
from einvoice.store.tables import AccountRow, DocumentRow, JournalEntryRow, PostingProfileRow


class PostingRepository:
    """Charts of accounts, posting profiles and journal entries (``ports.PostingStore``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- charts of accounts --------------------------------------------------------------------

    def replace_chart(self, institution_id: str, effective_from: date, accounts: Iterable[Account]) -> None:
        """Store the chart in force from ``effective_from`` (replacing one of the same date)."""
        self.session.execute(
            delete(AccountRow).where(
                AccountRow.institution_id == institution_id, AccountRow.effective_from == effective_from
            )
        )
        self.session.add_all(
            AccountRow(
                institution_id=institution_id,
                effective_from=effective_from,
                number=account.number,
                name=account.name,
                kind=account.kind.value,
            )
            for account in accounts
        )
        self.session.flush()

    def chart(self, institution_id: str, at: date | None = None) -> ChartOfAccounts | None:
        """The chart in force on ``at`` (the latest loaded when None), or None when none is."""
        when = select(func.max(AccountRow.effective_from)).where(AccountRow.institution_id == institution_id)
        if at is not None:
            when = when.where(AccountRow.effective_from <= at)
        effective = self.session.scalar(when)
        if effective is None:
            return None
        rows = self.session.scalars(
            select(AccountRow)
            .where(AccountRow.institution_id == institution_id, AccountRow.effective_from == effective)
            .order_by(AccountRow.number)
        ).all()
        return ChartOfAccounts(effective, tuple(Account(r.number, r.name, AccountKind(r.kind)) for r in rows))

    # --- posting profiles ----------------------------------------------------------------------

    def profile(self, institution_id: str) -> PostingProfile | None:
        """The institution's posting profile, or None when none was set."""
        row = self.session.get(PostingProfileRow, institution_id)
        return None if row is None else PostingProfile.from_dict(row.data)

    def set_profile(self, institution_id: str, profile: PostingProfile, *, at: datetime) -> None:
        """Store the institution's posting profile (replacing the one it had)."""
        row = self.session.get(PostingProfileRow, institution_id)
        if row is None:
            self.session.add(PostingProfileRow(institution_id=institution_id, data=profile.to_dict(), updated_at=at))
        else:
            row.data, row.updated_at = profile.to_dict(), at
        self.session.flush()

    # --- journal entries -----------------------------------------------------------------------

    def entry(self, document_id: str) -> JournalEntryRow | None:
        """The journal entry kept for the document, or None."""
        return self.session.get(JournalEntryRow, document_id)

    def add_entry(self, row: JournalEntryRow) -> JournalEntryRow:
        """Keep a document's journal entry (one per document: a second raises IntegrityError)."""
        self.session.add(row)
        self.session.flush()
        return row

    def mark_exported(
        self, document_id: str, *, batch: str, confirmed_at: datetime | None = None, confirmed_by: str | None = None
    ) -> None:
        """Record the batch the document's entry went out in and, once, who confirmed it and when."""
        row = self.session.get(JournalEntryRow, document_id)
        if row is None:
            return
        row.batch = batch
        if confirmed_at is not None and row.confirmed_at is None:
            row.confirmed_at, row.confirmed_by = confirmed_at, confirmed_by
        self.session.flush()

    def waiting_for_setup(self, institution_id: str, status: str) -> Sequence[str]:
        """Ids of the institution's documents held in ``status`` with a reason (``failure_reason``)."""
        return self.session.scalars(
            select(DocumentRow.id)
            .where(
                DocumentRow.institution_id == institution_id,
                DocumentRow.status == status,
                DocumentRow.failure_reason.is_not(None),
            )
            .order_by(DocumentRow.received_at, DocumentRow.id)
        ).all()
