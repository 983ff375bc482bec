"""Posting use cases: each institution's chart of accounts and posting profile, and the posting of
an approved document: its journal entry built (``einvoice.posting``), kept, and delivered to the
ERP through a connector, ``posted`` once the ERP confirmed it.

The POST stage of ``services.process`` calls a ``Poster``; ``EntryPoster`` is the one that builds
and delivers entries (wired by ``bootstrap.make_poster`` when ``EINVOICE_POSTING_ENABLED``) through
a connector: ``FolderConnector`` (file batches), ``PullConnector`` (the ERP's pull feed,
``services.erp``) or ``PushConnector`` (HTTP, ``posting.push``). When the institution's books are
not ready for a document (no complete posting profile, an account the profile or the chart lacks,
no exchange rate) it raises PostingNotReadyError, and the stage holds the document in ``approved``
with the reason until ``set_posting_profile`` or ``import_rates`` sends it on. An entry delivered
but not yet confirmed holds the document in ``posting`` until the confirmation comes
(``erp.confirm_entry``: an acknowledgement, a batch's ``.ack``, ``einvoice erp confirm``).
With the pull connector, where keeping the entry is delivering it, the POST stage posts in the
finish that approves the document (``EntryPoster.post_in_finish``): the entry's row is written
with the document's change.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from einvoice.domain.commitments import Commitment
from einvoice.domain.invoice import Invoice
from einvoice.domain.journal import Account, AccountKind, ChartOfAccounts, ExchangeRate, PostingProfile
from einvoice.domain.states import DocumentStatus
from einvoice.errors import NotFoundError, PermanentError, PostingNotReadyError, PostingSetupError
from einvoice.posting import build_entry, exchange_rate_from_document
from einvoice.posting.files import ACK_SUFFIX, FileExport
from einvoice.posting.ledger import TrialBalance, trial_balance
from einvoice.posting.push import PushSender
from einvoice.posting.rates import entry_rate, parse_rates
from einvoice.services import DocumentView
from einvoice.services.accounts import registered_institution
from einvoice.services.matching import MATCHED, matched_commitment
from einvoice.services.process import POST, Delivery
from einvoice.store import UnitOfWork
from einvoice.store.tables import ExchangeRateRow, JournalEntryRow

S = DocumentStatus
CHART_COLUMNS = ("number", "name", "kind")


def _now() -> datetime:
    return datetime.now(UTC)


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
        institution = registered_institution(uow, endpoint)
        profile = uow.posting.profile(institution.id)
        if profile is not None:
            _check_profile_in_chart(profile, chart)
        uow.posting.replace_chart(institution.id, effective_from, accounts)
        uow.commit()
    return chart


def chart_of_accounts(uow: UnitOfWork, *, endpoint: str, at: date | None = None) -> ChartOfAccounts | None:
    """The chart in force on ``at`` (the latest loaded when None). Raises NotFoundError."""
    with uow:
        return uow.posting.chart(registered_institution(uow, endpoint).id, at)


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
        institution = registered_institution(uow, endpoint)
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
        return uow.posting.profile(registered_institution(uow, endpoint).id)


# --- posting a document -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeptEntry:
    """A journal entry as ``journal_entries`` keeps it."""

    document_id: str
    entry_id: str
    data: dict[str, Any]
    batch: str | None
    confirmed_at: datetime | None
    confirmed_by: str | None = None


#: Finds the commitment a document was matched to (``services.matching.matched_commitment``: the
#: one its ``match_result`` names; None when it names none).
CommitmentLookup = Callable[[UnitOfWork, DocumentView, Invoice], Commitment | None]


class Connector(Protocol):
    """Delivers a kept entry to the ERP: who confirmed it (``confirmed_by``), or None and what the
    entry now waits for. Raises ErpDeliveryError (try again later) or PermanentError. A connector
    whose delivery is keeping the entry (no I/O: the pull feed) says so with a class attribute
    ``keeping_delivers = True``; the POST stage then posts in the finish that approves."""

    def deliver(self, uow_factory: Callable[[], UnitOfWork], kept: KeptEntry) -> tuple[str | None, str]: ...


class FolderConnector:
    """Entries written as file batches (``posting.files``), confirmed by ``<batch>.ack`` (the ERP's
    import writes it; ``collect_file_acks`` finds it) or by ``einvoice erp confirm``."""

    def __init__(self, export: FileExport) -> None:
        self.export = export

    def deliver(self, uow_factory: Callable[[], UnitOfWork], kept: KeptEntry) -> tuple[str | None, str]:
        batch = kept.batch or self.export.batch_name(kept.entry_id)
        self.export.write(batch, [kept.data])
        if kept.batch is None:
            with uow_factory() as uow:
                uow.posting.mark_exported(kept.document_id, batch=batch)
                uow.commit()
        if self.export.confirmed(batch):
            return f"file:{batch}{ACK_SUFFIX}", ""
        return None, f"journal entry {kept.entry_id} exported as {batch}; waiting for its {ACK_SUFFIX}"


class PullConnector:
    """Entries taken by the ERP's own posting jobs (``GET /v1/erp/entries``), each confirmed by its
    acknowledgement (``POST /v1/erp/entries/{id}/ack``): keeping the entry is delivering it, so the
    POST stage posts in the finish that approves the document (``keeping_delivers``)."""

    keeping_delivers = True

    def deliver(self, uow_factory: Callable[[], UnitOfWork], kept: KeptEntry) -> tuple[str | None, str]:
        return None, f"journal entry {kept.entry_id} offered to the ERP's pull feed; waiting for its acknowledgement"


class PushConnector:
    """Entries sent to the ERP's URL (``posting.push``): a 2xx answer confirms."""

    def __init__(self, sender: PushSender) -> None:
        self.sender = sender

    def deliver(self, uow_factory: Callable[[], UnitOfWork], kept: KeptEntry) -> tuple[str | None, str]:
        status = self.sender.send(kept.data)
        return f"push:{status}", ""


class EntryPoster:
    """The ``Poster`` port: builds the document's journal entry once (kept in ``journal_entries``,
    so every retry delivers the same entry) and delivers it through the ``connector`` (a
    ``FileExport`` stands for the folder connector). Returns the ``Delivery``: confirmed (a push
    answered 2xx, a batch's ``.ack`` found, an acknowledgement recorded before), or waiting for
    the ERP's confirmation, which the POST stage holds the document in ``posting`` for.
    PostingNotReadyError when the institution's books are not ready for the document (no
    complete profile, no exchange rate for its currency); ErpDeliveryError when the ERP did not
    take it this time; PermanentError when the document has no parsed form or no registered
    institution, or the ERP refuses the entry."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        connector: Connector | FileExport,
        *,
        commitments: CommitmentLookup | None = matched_commitment,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.uow_factory = uow_factory
        self.connector: Connector = FolderConnector(connector) if isinstance(connector, FileExport) else connector
        self.commitments = commitments
        self.clock = clock

    @property
    def posts_in_finish(self) -> bool:
        """Whether delivering needs no slow I/O (``Connector.keeping_delivers``: the pull feed),
        so that the POST stage posts in the finish that approves the document
        (``process.FinishPoster``)."""
        return getattr(self.connector, "keeping_delivers", False) is True

    def entry(self, document: DocumentView) -> KeptEntry:
        """The document's journal entry: the one kept, or one built and kept now."""
        with self.uow_factory() as uow:
            row = uow.posting.entry(document.id)
            if row is not None:
                return _kept(row)
            invoice = uow.documents.parsed(document.id)
            if invoice is None:
                raise PermanentError(f"document {document.id} has no parsed document to post")
            row = uow.posting.add_entry(JournalEntryRow(**self._built(uow, document, invoice, {})))
            uow.commit()
            return _kept(row)

    def _built(
        self, uow: UnitOfWork, document: DocumentView, invoice: Invoice, known: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``journal_entries`` row of the document's entry, built now from what ``uow`` reads:
        its institution's books (endpoint, posting profile, chart), the exchange rate and the
        commitment (the one matching locked in the same finish, when ``known`` holds it)."""
        now = self.clock()
        # the institution's endpoint, profile and chart in force, in one statement
        books = uow.posting.books(document.institution_id, now.date()) if document.institution_id else None
        if books is None:
            raise PermanentError(f"document {document.id} is addressed to no registered institution")
        endpoint, profile = books.endpoint, books.profile
        if profile is None:
            raise PostingNotReadyError(f"institution {endpoint} has no posting profile")
        missing = profile.missing()
        if missing:
            raise PostingNotReadyError(f"the posting profile of {endpoint} lacks {', '.join(missing)}")
        if self.commitments is None:
            commitment = None
        elif MATCHED in known:
            commitment = known[MATCHED]
        else:
            commitment = self.commitments(uow, document, invoice)
        entry = build_entry(
            invoice,
            profile,
            document_id=document.id,
            posting_date=now.date(),
            institution=endpoint,
            commitment=commitment,
            exchange_rate=_configured_rate(uow, invoice, profile.accounting_currency),
            chart=books.chart,
        )
        return {
            "document_id": document.id,
            "entry_id": entry.id,
            "institution_id": document.institution_id,
            "data": entry.to_dict(),
            "created_at": now,
            "posting_date": entry.posting_date,
        }

    def __call__(self, document: DocumentView, /) -> Delivery:
        kept = self.entry(document)
        if kept.confirmed_at is not None:  # acknowledged (or its batch confirmed) before this run
            return Delivery(kept.entry_id, kept.confirmed_by or "the ERP")
        confirmed_by, waiting = self.connector.deliver(self.uow_factory, kept)
        if confirmed_by is None:
            return Delivery(kept.entry_id, None, waiting)
        with self.uow_factory() as uow:
            uow.posting.confirm_entry(document.id, at=self.clock(), by=confirmed_by)
            uow.commit()
        return Delivery(kept.entry_id, confirmed_by)

    def read_ahead(self, uow: UnitOfWork, document: DocumentView, /) -> None:
        """Queue the read of the institution's books that ``_built`` makes (``Stage.reads_ahead``)."""
        if document.institution_id:
            uow.posting.read_books_ahead(document.institution_id, self.clock().date())

    def post_in_finish(
        self,
        uow: UnitOfWork,
        document: DocumentView,
        invoice: Invoice,
        /,
        *,
        look_for_kept: bool,
        known: Mapping[str, Any],
    ) -> tuple[Delivery, dict[str, Any] | None]:
        """Posting in the POST stage's finish (``posts_in_finish``), through its unit of work: the
        ``Delivery`` of the entry kept before (looked for when ``look_for_kept``) or of one built
        now, and the new entry's ``journal_entries`` row, for the finish to write with the
        document's change (None for one kept before)."""
        row = uow.posting.entry(document.id) if look_for_kept else None
        if row is not None:
            kept, new = _kept(row), None
            if kept.confirmed_at is not None:  # acknowledged before this run
                return Delivery(kept.entry_id, kept.confirmed_by or "the ERP"), None
        else:
            new = self._built(uow, document, invoice, known)
            kept = KeptEntry(document.id, new["entry_id"], new["data"], None, None)
        confirmed_by, waiting = self.connector.deliver(self.uow_factory, kept)
        if confirmed_by is None:
            return Delivery(kept.entry_id, None, waiting), new
        if new is not None:
            new |= {"confirmed_at": self.clock(), "confirmed_by": confirmed_by[:200]}
        else:
            uow.posting.confirm_entry(document.id, at=self.clock(), by=confirmed_by)
        return Delivery(kept.entry_id, confirmed_by), new


def _kept(row: JournalEntryRow) -> KeptEntry:
    return KeptEntry(row.document_id, row.entry_id, dict(row.data), row.batch, row.confirmed_at, row.confirmed_by)


def _configured_rate(uow: UnitOfWork, invoice: Invoice, accounting_currency: str) -> ExchangeRate | None:
    """The rate of a foreign-currency document that states no VAT in accounting currency (BT-111):
    the latest loaded (``import_rates``) on or before its issue date (BT-2); None for a document
    in the accounting currency or one that states BT-111. PostingNotReadyError when none is."""
    currency = invoice.currency or accounting_currency
    if currency == accounting_currency or exchange_rate_from_document(invoice, accounting_currency) is not None:
        return None
    on = invoice.issue_date or _now().date()
    row = uow.posting.rate_on(accounting_currency, currency, on)
    if row is None:
        raise PostingNotReadyError(
            f"no exchange rate from {currency} to {accounting_currency} on or before {on.isoformat()} "
            "(einvoice rates import)"
        )
    return entry_rate(row.rate, row.rate_date, row.source)


def confirm_batch(uow_factory: Callable[[], UnitOfWork], export: FileExport, batch: str, *, by: str) -> str:
    """Confirm a file batch by hand (``einvoice erp confirm``): its ``.ack`` written, and its
    document ``posted`` (``erp.confirm_entry``); return the document's state. Raises
    FileNotFoundError, ValueError (not a batch name), NotFoundError (no entry went out in it)."""
    from einvoice.services.erp import confirm_entry

    export.confirm(batch)
    with uow_factory() as uow:
        row = uow.posting.entry_by_batch(batch)
        if row is None:
            raise NotFoundError(f"no journal entry was exported in {batch}")
        entry_id = row.entry_id
    return confirm_entry(uow_factory, entry_id, by=by).status


def collect_file_acks(uow_factory: Callable[[], UnitOfWork], export: FileExport) -> list[str]:
    """Confirm every exported entry whose batch the ERP acknowledged (``<batch>.ack`` beside it)
    since the last look; return their entry ids. Run by the sweeper's loop when the folder
    connector is on."""
    from einvoice.services.erp import confirm_entry

    with uow_factory() as uow:
        waiting = [(row.entry_id, row.batch) for row in uow.posting.unconfirmed_batches()]
    confirmed = []
    for entry_id, batch in waiting:
        if batch is not None and export.confirmed(batch):
            confirm_entry(uow_factory, entry_id, by=f"file:{batch}{ACK_SUFFIX}")
            confirmed.append(entry_id)
    return confirmed


# --- exchange rates -------------------------------------------------------------------------------


def import_rates(
    uow_factory: Callable[[], UnitOfWork], text: str, *, base: str = "EUR", source: str, now: datetime | None = None
) -> tuple[int, list[str]]:
    """Load exchange rates (``posting.rates.parse_rates``: the ECB reference-rate CSV, or
    ``currency,date,rate``), replacing those of the same currency and date, and send on the
    documents held in ``approved`` (a message for the post stage each: those still without a
    rate are held again); return how many rates and the ids sent on. Raises PostingSetupError."""
    rates = parse_rates(text)
    base = base.strip().upper()
    now = now or _now()
    with uow_factory() as uow:
        count = uow.posting.put_rates(
            ExchangeRateRow(
                base=base, currency=r.currency, rate_date=r.on, rate=r.rate, source=source[:200], loaded_at=now
            )
            for r in rates
            if r.currency != base
        )
        waiting = list(uow.posting.waiting_for_setup(None, S.APPROVED))
        for document_id in waiting:
            uow.outbox.add(document_id, POST.name, now=now)
        uow.commit()
    return count, waiting


# --- the trial balance ----------------------------------------------------------------------------


def institution_trial_balance(uow: UnitOfWork, *, endpoint: str, start: date, end: date) -> TrialBalance:
    """Debits, credits and balance per account of the institution's posted entries whose posting
    date is from ``start`` to ``end`` (both included), accounts named from the chart in force on
    ``end``. Raises NotFoundError, PostingSetupError (``end`` before ``start``)."""
    if end < start:
        raise PostingSetupError(f"the period ends ({end}) before it starts ({start})")
    with uow:
        institution = registered_institution(uow, endpoint)
        entries = [row.data for row in uow.posting.posted_entries(institution.id, start, end)]
        chart = uow.posting.chart(institution.id, end)
    names = {a.number: a.name for a in chart.accounts} if chart is not None else {}
    return trial_balance(entries, names)


def entry_of(uow: UnitOfWork, document_id: str) -> dict[str, Any] | None:
    """The journal entry JSON of a document, or None."""
    with uow:
        row = uow.posting.entry(document_id)
        return None if row is None else dict(row.data)


__all__ = [
    "EntryPoster",
    "FolderConnector",
    "PullConnector",
    "PushConnector",
    "chart_of_accounts",
    "collect_file_acks",
    "confirm_batch",
    "entry_of",
    "import_accounts",
    "import_rates",
    "institution_trial_balance",
    "parse_chart",
    "posting_profile",
    "set_posting_profile",
]
