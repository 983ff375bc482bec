"""Posting use cases: each institution's chart of accounts and posting profile, and the posting of
an approved document: its journal entry built (``einvoice.posting``), kept, and delivered to the
ERP through a connector, ``posted`` once the ERP confirmed it.

The POST stage of ``services.process`` calls a ``Poster``; ``EntryPoster`` is the one that builds
and delivers entries (wired by ``bootstrap.make_poster`` when ``EINVOICE_POSTING_ENABLED``). When
the institution's books are not ready for a document (no complete posting profile, an account the
profile or the chart lacks, no exchange rate) it raises PostingNotReadyError, and the stage holds
the document in ``approved`` with the reason until ``set_posting_profile`` sends it on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from einvoice.domain.commitments import Commitment
from einvoice.domain.invoice import Invoice
from einvoice.domain.journal import Account, AccountKind, ChartOfAccounts, PostingProfile
from einvoice.domain.states import DocumentStatus
from einvoice.errors import ErpDeliveryError, NotFoundError, PermanentError, PostingNotReadyError, PostingSetupError
from einvoice.posting import build_entry
from einvoice.posting.files import FileExport
from einvoice.services import DocumentView
from einvoice.services.accounts import parse_endpoint
from einvoice.services.matching import matched_commitment
from einvoice.services.process import POST
from einvoice.store import UnitOfWork
from einvoice.store.tables import InstitutionRow, JournalEntryRow

S = DocumentStatus
CHART_COLUMNS = ("number", "name", "kind")


def _now() -> datetime:
    return datetime.now(UTC)


def _institution(uow: UnitOfWork, endpoint: str) -> InstitutionRow:
    scheme, endpoint_id = parse_endpoint(endpoint)
    row = uow.institutions.by_endpoint(scheme, endpoint_id)
    if row is None:
        raise NotFoundError(f"no institution with endpoint {endpoint}")
    return row


# --- charts of accounts -------------------------------------------------------------------------


def parse_chart(text: str) -> tuple[Account, ...]:
    """The accounts of a chart in CSV (a header ``number,name,kind``, then one account a row;
    kind: asset, liability, equity, income or expense). Raises PostingSetupError naming the row."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = tuple((name or "").strip().lower() for name in reader.fieldnames or ())
    if header[:3] != CHART_COLUMNS:
        raise PostingSetupError(f"the chart's header must be {','.join(CHART_COLUMNS)}, not {','.join(header)}")
    accounts: dict[str, Account] = {}
    for row in reader:
        values = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
        number, name, kind = values.get("number", ""), values.get("name", ""), values.get("kind", "").lower()
        where = f"row {reader.line_num}"
        if not number or len(number) > 32:
            raise PostingSetupError(f"{where}: an account number of 1 to 32 characters, not {number!r}")
        if not name or len(name) > 200:
            raise PostingSetupError(f"{where}: account {number} needs a name of at most 200 characters")
        try:
            account_kind = AccountKind(kind)
        except ValueError:
            kinds = ", ".join(k.value for k in AccountKind)
            raise PostingSetupError(f"{where}: account {number}: kind is one of {kinds}, not {kind!r}") from None
        if number in accounts:
            raise PostingSetupError(f"{where}: account {number} is listed twice")
        accounts[number] = Account(number, name, account_kind)
    if not accounts:
        raise PostingSetupError("the chart lists no account")
    return tuple(accounts.values())


def import_accounts(uow: UnitOfWork, *, endpoint: str, text: str, effective_from: date) -> ChartOfAccounts:
    """Load an institution's chart of accounts (CSV, ``parse_chart``) in force from
    ``effective_from``, replacing one of the same date. Raises NotFoundError, PostingSetupError
    (a malformed row, or an account the institution's posting profile names missing from it)."""
    accounts = parse_chart(text)
    chart = ChartOfAccounts(effective_from, accounts)
    with uow:
        institution = _institution(uow, endpoint)
        profile = uow.posting.profile(institution.id)
        if profile is not None:
            _check_profile_in_chart(profile, chart)
        uow.posting.replace_chart(institution.id, effective_from, accounts)
        uow.commit()
    return chart


def chart_of_accounts(uow: UnitOfWork, *, endpoint: str, at: date | None = None) -> ChartOfAccounts | None:
    """The chart in force on ``at`` (the latest loaded when None). Raises NotFoundError."""
    with uow:
        return uow.posting.chart(_institution(uow, endpoint).id, at)


def _check_profile_in_chart(profile: PostingProfile, chart: ChartOfAccounts) -> None:
    unknown = chart.unknown(profile)
    if unknown:
        named = ", ".join(f"{where} {account}" for where, account in sorted(unknown.items()))
        raise PostingSetupError(
            f"accounts the posting profile names are not in the chart in force from {chart.effective_from}: {named}"
        )


# --- posting profiles ---------------------------------------------------------------------------


def set_posting_profile(
    uow: UnitOfWork, *, endpoint: str, data: Mapping[str, Any], now: datetime | None = None
) -> tuple[PostingProfile, list[str]]:
    """Set an institution's posting profile from its JSON form, and send on the documents that
    waited in ``approved`` for it (a message for the post stage each); return the profile and their
    ids. Raises NotFoundError, PostingSetupError (ProfileError: an unknown key, a value of the
    wrong kind; or an account not in the institution's latest chart of accounts)."""
    profile = PostingProfile.from_dict(data)
    now = now or _now()
    with uow:
        institution = _institution(uow, endpoint)
        chart = uow.posting.chart(institution.id)
        if chart is not None:
            _check_profile_in_chart(profile, chart)
        uow.posting.set_profile(institution.id, profile, at=now)
        waiting = list(uow.posting.waiting_for_setup(institution.id, S.APPROVED))
        for document_id in waiting:
            uow.outbox.add(document_id, POST.name, now=now)
        uow.commit()
    return profile, waiting


def posting_profile(uow: UnitOfWork, *, endpoint: str) -> PostingProfile | None:
    """The institution's posting profile, or None. Raises NotFoundError."""
    with uow:
        return uow.posting.profile(_institution(uow, endpoint).id)


# --- posting a document -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeptEntry:
    """A journal entry as ``journal_entries`` keeps it."""

    entry_id: str
    data: dict[str, Any]
    batch: str | None
    confirmed_at: datetime | None


#: Finds the commitment a document was matched to (``services.matching.matched_commitment``: the
#: one its ``match_result`` names; None when it names none).
CommitmentLookup = Callable[[UnitOfWork, DocumentView, Invoice], Commitment | None]


class EntryPoster:
    """The ``Poster`` port: builds the document's journal entry once (kept in ``journal_entries``,
    so every retry delivers the same entry), writes it as a file batch, and returns the entry id
    once the ERP confirmed the batch. Until then it raises ErpDeliveryError (transient: the POST
    stage records ``posting_failed`` and the message is retried with backoff, then ``dead``).
    PostingNotReadyError when the institution's books are not ready for the document;
    PermanentError when the document has no parsed form or no registered institution."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        export: FileExport,
        *,
        commitments: CommitmentLookup | None = matched_commitment,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.uow_factory = uow_factory
        self.export = export
        self.commitments = commitments
        self.clock = clock

    def entry(self, document: DocumentView) -> KeptEntry:
        """The document's journal entry: the one kept, or one built and kept now."""
        with self.uow_factory() as uow:
            row = uow.posting.entry(document.id)
            if row is not None:
                return KeptEntry(row.entry_id, dict(row.data), row.batch, row.confirmed_at)
            invoice = uow.documents.parsed(document.id)
            if invoice is None:
                raise PermanentError(f"document {document.id} has no parsed document to post")
            institution = uow.institutions.get(document.institution_id) if document.institution_id else None
            if institution is None:
                raise PermanentError(f"document {document.id} is addressed to no registered institution")
            endpoint = f"{institution.endpoint_scheme}:{institution.endpoint_id}"
            profile = uow.posting.profile(institution.id)
            if profile is None:
                raise PostingNotReadyError(f"institution {endpoint} has no posting profile")
            missing = profile.missing()
            if missing:
                raise PostingNotReadyError(f"the posting profile of {endpoint} lacks {', '.join(missing)}")
            now = self.clock()
            commitment = self.commitments(uow, document, invoice) if self.commitments is not None else None
            entry = build_entry(
                invoice,
                profile,
                document_id=document.id,
                posting_date=now.date(),
                institution=endpoint,
                commitment=commitment,
                chart=uow.posting.chart(institution.id, now.date()),
            )
            uow.posting.add_entry(
                JournalEntryRow(
                    document_id=document.id,
                    entry_id=entry.id,
                    institution_id=institution.id,
                    data=entry.to_dict(),
                    created_at=now,
                )
            )
            uow.commit()
            return KeptEntry(entry.id, entry.to_dict(), None, None)

    def __call__(self, document: DocumentView, raw: bytes, /) -> str:
        kept = self.entry(document)
        batch = kept.batch or self.export.batch_name(kept.entry_id)
        self.export.write(batch, [kept.data])
        confirmed = self.export.confirmed(batch)
        if kept.batch is None or (confirmed and kept.confirmed_at is None):
            with self.uow_factory() as uow:
                uow.posting.mark_exported(
                    document.id,
                    batch=batch,
                    confirmed_at=self.clock() if confirmed else None,
                    confirmed_by=f"file:{batch}.ack" if confirmed else None,
                )
                uow.commit()
        if not confirmed:
            raise ErpDeliveryError(f"journal entry {kept.entry_id} exported as {batch}; waiting for its .ack")
        return kept.entry_id


def confirm_batch(export: FileExport, batch: str) -> None:
    """Confirm a file batch by hand (``einvoice erp confirm``): the next retry of its document
    finds the confirmation and records it ``posted``."""
    export.confirm(batch)


def entry_of(uow: UnitOfWork, document_id: str) -> dict[str, Any] | None:
    """The journal entry JSON of a document, or None."""
    with uow:
        row = uow.posting.entry(document_id)
        return None if row is None else dict(row.data)


__all__ = [
    "EntryPoster",
    "chart_of_accounts",
    "confirm_batch",
    "entry_of",
    "import_accounts",
    "parse_chart",
    "posting_profile",
    "set_posting_profile",
]
