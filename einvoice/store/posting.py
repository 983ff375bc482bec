"""Posting's storage: each institution's chart of accounts (versioned by the date it is in force
from), its posting profile, the journal entry kept for each document, read and written as the
domain types of ``einvoice.domain.journal``; the ERPs and the institutions each serves, exchange
rates, payments. Nothing here commits: the unit of work does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Date, String, Table, Text, and_, any_, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from einvoice.domain.journal import Account, AccountKind, ChartOfAccounts, PostingProfile
from einvoice.store import writes
from einvoice.store.ports import Books, ErpRecord, InstitutionRecord, RateRecord, record_of, record_or_none
from einvoice.store.tables import (
    AccountRow,
    DocumentRow,
    ErpInstitutionRow,
    ErpRow,
    ExchangeRateRow,
    InstitutionRow,
    JournalEntryRow,
    PaymentRow,
    PostingProfileRow,
)

_ENTRIES: Table = JournalEntryRow.__table__  # type: ignore[assignment]
_ERPS: Table = ErpRow.__table__  # type: ignore[assignment]
_INSTITUTIONS: Table = InstitutionRow.__table__  # type: ignore[assignment]
_SERVED: Table = ErpInstitutionRow.__table__  # type: ignore[assignment]
_RATES: Table = ExchangeRateRow.__table__  # type: ignore[assignment]


def _chart_of(rows: Sequence[Any]) -> ChartOfAccounts | None:
    """The chart of one version's account rows (``effective_from``, ``number``, ``name``,
    ``kind``, by number); None for no rows."""
    if not rows:
        return None
    accounts = tuple(Account(r.number, r.name, AccountKind(r.kind)) for r in rows)
    return ChartOfAccounts(rows[0].effective_from, accounts)


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
        """The chart in force on ``at`` (the latest loaded when None), or None when none is. One
        statement (the version's date in a subquery): a chart has at least one account."""
        when = select(func.max(AccountRow.effective_from)).where(AccountRow.institution_id == institution_id)
        if at is not None:
            when = when.where(AccountRow.effective_from <= at)
        rows = self.session.execute(
            select(AccountRow.effective_from, AccountRow.number, AccountRow.name, AccountRow.kind)
            .where(
                AccountRow.institution_id == institution_id,
                AccountRow.effective_from == when.correlate(None).scalar_subquery(),
            )
            .order_by(AccountRow.number)
        ).all()
        return _chart_of(rows)

    def books(self, institution_id: str, on: date) -> Books | None:
        """What posting a document of the institution reads, in one statement: its endpoint, its
        posting profile (None when none was set) and the chart in force on ``on`` (None when
        none is); None when there is no such institution. The profile is read as text and parsed
        once, whatever the number of accounts. The statement is built once; on PostgreSQL it goes
        to the driver (posting reads it for every document, in the finish that approves it)."""
        statement, compiled = _books()
        values = {"k_institution": institution_id, "k_on": on}
        if self.session.get_bind().dialect.name == "postgresql":
            from einvoice.store.repositories import _pg_pipeline, flush_pending, rows_ahead

            found = rows_ahead(self.session, ("books", institution_id, on))
            if found is None:
                flush_pending(self.session)
                found = _pg_pipeline(self.session, [], compiled.sql, compiled.parameters(values))
        else:
            found = [tuple(row) for row in self.session.execute(statement, values)]
        if not found:
            return None
        rows = [_BooksRow(*row) for row in found]
        first = rows[0]
        profile = PostingProfile.from_dict(json.loads(first.profile)) if first.profile is not None else None
        chart = _chart_of(rows) if first.number is not None else None
        return Books(f"{first.endpoint_scheme}:{first.endpoint_id}", profile, chart)

    def read_books_ahead(self, institution_id: str, on: date) -> None:
        """Read what ``books(institution_id, on)`` reads with the next round trip (``read_ahead``)."""
        from einvoice.store.repositories import read_ahead

        _, compiled = _books()
        parameters = compiled.parameters({"k_institution": institution_id, "k_on": on})
        read_ahead(self.session, ("books", institution_id, on), compiled.sql, parameters)

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
        """Keep a document's journal entry (one per document: a second raises DuplicateKeyError)."""
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

    def waiting_for_setup(self, institution_id: str | None, status: str) -> Sequence[str]:
        """Ids of the institution's (None: every institution's) documents held in ``status`` with a
        reason (``failure_reason``)."""
        query = select(DocumentRow.id).where(DocumentRow.status == status, DocumentRow.failure_reason.is_not(None))
        if institution_id is not None:
            query = query.where(DocumentRow.institution_id == institution_id)
        return self.session.scalars(query.order_by(DocumentRow.received_at, DocumentRow.id)).all()

    def entry_by_batch(self, batch: str) -> JournalEntryRow | None:
        """The journal entry exported in the file batch ``batch``, or None."""
        return self.session.scalars(select(JournalEntryRow).where(JournalEntryRow.batch == batch)).first()

    def confirm_entry(self, document_id: str, *, at: datetime, by: str) -> bool:
        """Record that the ERP confirmed the document's entry, unless it was confirmed before;
        return whether this did."""
        row = self.session.get(JournalEntryRow, document_id)
        if row is None or row.confirmed_at is not None:
            return False
        row.confirmed_at, row.confirmed_by = at, by[:200]
        self.session.flush()
        return True

    def confirm_unconfirmed(
        self, entry_ids: Sequence[str], *, at: datetime, by: str, institution_ids: Collection[str] | None = None
    ) -> dict[str, str]:
        """Record that the ERP confirmed the entries ``entry_ids`` (those of ``institution_ids``
        when given) that are not confirmed yet, in one statement; the document id of each entry it
        confirmed, by entry id (none for an unknown entry, another institution's, or one confirmed
        before). On PostgreSQL the entries are locked in entry id order, so that two confirmations
        of overlapping entries queue instead of deadlocking, and a confirmation that waited for
        another skips what that one confirmed."""
        if not entry_ids:
            return {}
        values = {"k_entries": list(entry_ids), "new_at": at, "new_by": by[:200]}
        if institution_ids is not None:
            values["k_institutions"] = list(institution_ids)
        statement, compiled = _confirm_unconfirmed(institution_ids is not None)
        if self.session.get_bind().dialect.name == "postgresql":
            # on the driver: its transaction begun with it, one round trip (the acknowledgements'
            # hot path: an ERP confirms every entry)
            from einvoice.store.repositories import pg_round_trip

            [(rows, _)] = pg_round_trip(self.session, [(compiled.sql, compiled.parameters(values))])
        else:
            rows = [tuple(row) for row in self.session.execute(statement, values)]
        return {str(entry_id): str(document_id) for entry_id, document_id in rows}

    def entries_by_ids(self, entry_ids: Collection[str]) -> Sequence[JournalEntryRow]:
        """The journal entries of these ids that exist."""
        if not entry_ids:
            return []
        return self.session.scalars(select(JournalEntryRow).where(JournalEntryRow.entry_id.in_(list(entry_ids)))).all()

    def unconfirmed_batches(self, limit: int = 1000) -> Sequence[JournalEntryRow]:
        """Entries exported in a file batch that no confirmation was recorded for yet."""
        return self.session.scalars(
            select(JournalEntryRow)
            .where(JournalEntryRow.confirmed_at.is_(None), JournalEntryRow.batch.is_not(None))
            .order_by(JournalEntryRow.created_at, JournalEntryRow.document_id)
            .limit(limit)
        ).all()

    def feed(
        self, institution_ids: Collection[str], *, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[JournalEntryRow]:
        """Unconfirmed entries of ``institution_ids`` in their stable order (created, document id),
        those after the position ``after``, at most ``limit``."""
        query = select(JournalEntryRow).where(
            JournalEntryRow.confirmed_at.is_(None), JournalEntryRow.institution_id.in_(list(institution_ids))
        )
        if after is not None:
            created_at, document_id = after
            query = query.where(
                or_(
                    JournalEntryRow.created_at > created_at,
                    and_(JournalEntryRow.created_at == created_at, JournalEntryRow.document_id > document_id),
                )
            )
        order = (JournalEntryRow.created_at, JournalEntryRow.document_id)
        return self.session.scalars(query.order_by(*order).limit(limit)).all()

    def posted_entries(self, institution_id: str, start: date, end: date) -> Sequence[JournalEntryRow]:
        """The institution's entries whose document is ``posted``, by posting date in [start, end]."""
        return self.session.scalars(
            select(JournalEntryRow)
            .join(DocumentRow, DocumentRow.id == JournalEntryRow.document_id)
            .where(
                JournalEntryRow.institution_id == institution_id,
                JournalEntryRow.posting_date.between(start, end),
                DocumentRow.status == "posted",
            )
            .order_by(JournalEntryRow.posting_date, JournalEntryRow.document_id)
        ).all()

    # --- ERPs ------------------------------------------------------------------------------------

    def add_erp(self, row: ErpRow, institution_ids: Iterable[str]) -> ErpRow:
        """Register an ERP and the institutions it serves (a name taken raises DuplicateKeyError)."""
        self.session.add(row)
        self.session.flush()
        self.session.add_all(ErpInstitutionRow(erp_id=row.id, institution_id=i) for i in set(institution_ids))
        self.session.flush()
        return row

    def erp_by_name(self, name: str) -> ErpRow | None:
        return self.session.scalars(select(ErpRow).where(ErpRow.name == name)).first()

    def erp_by_key_hash(self, key_hash: str) -> ErpRecord | None:
        """The ERP holding the key of sha256 ``key_hash``, read as plain columns (before every
        request of an ERP)."""
        row = self.session.execute(select(_ERPS).where(_ERPS.c.api_key_hash == key_hash)).first()
        return record_or_none(ErpRecord, row)

    def erp_institutions(self, erp_id: str) -> list[InstitutionRecord]:
        """The institutions the ERP serves, by endpoint, read as plain columns."""
        institutions, served = _INSTITUTIONS, _SERVED
        rows = self.session.execute(
            select(institutions)
            .join(served, served.c.institution_id == institutions.c.id)
            .where(served.c.erp_id == erp_id)
            .order_by(institutions.c.endpoint_scheme, institutions.c.endpoint_id)
        )
        return [record_of(InstitutionRecord, row) for row in rows]

    # --- exchange rates --------------------------------------------------------------------------

    def put_rates(self, rows: Iterable[ExchangeRateRow]) -> int:
        """Store rates, replacing those of the same base, currency and date; return how many."""
        count = 0
        for row in rows:
            self.session.merge(row)
            count += 1
        self.session.flush()
        return count

    def rate_on(self, base: str, currency: str, on: date) -> RateRecord | None:
        """The latest rate of ``currency`` against ``base`` on or before ``on``, or None. Posting
        reads it for every foreign-currency document without BT-111, in the finish that approves
        it: a statement built once, on PostgreSQL on the driver."""
        statement, compiled = _rate_on()
        values = {"k_base": base, "k_currency": currency, "k_on": on}
        if self.session.get_bind().dialect.name == "postgresql":
            from einvoice.store.repositories import _pg_pipeline, flush_pending

            flush_pending(self.session)
            found = _pg_pipeline(self.session, [], compiled.sql, compiled.parameters(values))
            return record_or_none(RateRecord, writes.table_row(_RATES, found[0]) if found else None)
        return record_or_none(RateRecord, self.session.execute(statement, values).first())

    # --- payments --------------------------------------------------------------------------------

    def payment(self, document_id: str) -> PaymentRow | None:
        return self.session.get(PaymentRow, document_id)


@functools.cache
def _rate_on() -> tuple[Any, writes.Compiled]:
    """``PostingRepository.rate_on``'s statement (bound: ``k_base``, ``k_currency``, ``k_on``), and
    the same compiled for PostgreSQL."""
    rates = _RATES
    statement = (
        select(rates)
        .where(
            rates.c.base == bindparam("k_base"),
            rates.c.currency == bindparam("k_currency"),
            rates.c.rate_date <= bindparam("k_on", type_=Date()),
        )
        .order_by(rates.c.rate_date.desc())
        .limit(1)
    )
    return statement, writes.compile_postgres(statement)


class _BooksRow(NamedTuple):
    endpoint_scheme: str
    endpoint_id: str
    profile: str | None
    effective_from: date | None
    number: str | None
    name: str | None
    kind: str | None


@functools.cache
def _books() -> tuple[Any, writes.Compiled]:
    """``PostingRepository.books``'s statement (bound: ``k_institution``, ``k_on``), and the same
    compiled for PostgreSQL: the institution, its profile as text and the accounts of the chart
    in force on ``k_on`` (the latest version from on or before it), a row per account."""
    version = (
        select(func.max(AccountRow.effective_from))
        .where(
            AccountRow.institution_id == bindparam("k_institution"),
            AccountRow.effective_from <= bindparam("k_on", type_=Date()),
        )
        .correlate(None)
        .scalar_subquery()
    )
    statement = (
        select(
            InstitutionRow.endpoint_scheme,
            InstitutionRow.endpoint_id,
            cast(PostingProfileRow.data, Text).label("profile"),
            AccountRow.effective_from,
            AccountRow.number,
            AccountRow.name,
            AccountRow.kind,
        )
        .select_from(InstitutionRow)
        .outerjoin(PostingProfileRow, PostingProfileRow.institution_id == InstitutionRow.id)
        .outerjoin(
            AccountRow, and_(AccountRow.institution_id == InstitutionRow.id, AccountRow.effective_from == version)
        )
        .where(InstitutionRow.id == bindparam("k_institution"))
        .order_by(AccountRow.number)
    )
    return statement, writes.compile_postgres(statement)


@functools.cache
def _confirm_unconfirmed(of_institutions: bool) -> tuple[Any, writes.Compiled]:
    """``PostingRepository.confirm_unconfirmed``'s statement (bound: ``k_entries``, ``new_at``,
    ``new_by``, and with ``of_institutions`` ``k_institutions``), and the same compiled for
    PostgreSQL (the ids and institutions as arrays). The entries are picked, and on PostgreSQL
    locked, in entry id order by a subquery, then updated."""
    table = _ENTRIES

    def confirm(entries: Any, institutions: Any) -> Any:
        picked = (
            select(table.c.entry_id)
            .where(entries, table.c.confirmed_at.is_(None), *([institutions] if of_institutions else []))
            .order_by(table.c.entry_id)
            .with_for_update()
        )
        return (
            update(table)
            .where(table.c.entry_id.in_(picked), table.c.confirmed_at.is_(None))
            .values(confirmed_at=bindparam("new_at", type_=table.c.confirmed_at.type), confirmed_by=bindparam("new_by"))
            .returning(table.c.entry_id, table.c.document_id)
        )

    listed = (
        table.c.entry_id.in_(bindparam("k_entries", expanding=True)),
        table.c.institution_id.in_(bindparam("k_institutions", expanding=True)),
    )
    arrayed = (
        table.c.entry_id == any_(bindparam("k_entries", type_=ARRAY(String))),
        table.c.institution_id == any_(bindparam("k_institutions", type_=ARRAY(String))),
    )
    return confirm(*listed), writes.compile_postgres(confirm(*arrayed))
