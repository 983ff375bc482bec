"""Repositories: the queries the services need, and nothing else.

They return immutable records (``ports.InstitutionRecord``, ``DocumentRecord``, …) or domain
objects, never the ORM rows they read: a record stays valid after its unit of work, and a change is
made by a write method, not by assigning to what a query returned. Nothing here commits: the unit
of work does.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import (
    Float,
    Integer,
    Select,
    String,
    Table,
    Update,
    any_,
    bindparam,
    case,
    cast,
    delete,
    event,
    func,
    insert,
    literal_column,
    null,
    select,
    true,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from einvoice.domain.findings import Finding
from einvoice.domain.invoice import Invoice
from einvoice.domain.money import amount_key
from einvoice.parsers.invoice_dict import FORMAT_VERSION, invoice_from_dict, invoice_to_dict
from einvoice.store import writes
from einvoice.store.engine import note_statements
from einvoice.store.ports import (
    NOT_HISTORY,
    ApprovalRuleRecord,
    DecisionRecord,
    DocumentRecord,
    EarlierQuery,
    EarlierRow,
    InstitutionRecord,
    ResponseRecord,
    SessionRecord,
    SupplierRecord,
    TransitionRecord,
    UserRecord,
    finding_of,
    record_of,
    record_or_none,
)
from einvoice.store.tables import (
    SUPPLIER_NUMBER,
    ApprovalRuleRow,
    Base,
    DecisionRow,
    DocumentContentRow,
    DocumentRow,
    FindingRow,
    InstitutionRow,
    OutboxRow,
    ParsedDocumentRow,
    ResponseRow,
    SupplierRow,
    TransitionRow,
    UserInstitutionRow,
    UserRow,
    UserSessionRow,
    number_key,
)

P = TypeVar("P", InstitutionRecord, SupplierRecord)


def _table(row_class: type[Any]) -> Table:
    table: Table = row_class.__table__
    return table


def flush_pending(session: Session) -> None:
    """Flush what the unit of work changed through the ORM, as an ORM query would before it reads:
    for the reads that go to the driver, past the session."""
    if session.new or session.dirty or session.deleted:
        session.flush()


#: ``Session.info`` keys: reads queued to go with the unit of work's next round trip
#: (``read_ahead``), and the rows of those sent, by key.
_AHEAD_QUEUED = "einvoice.read_ahead.queued"
_AHEAD_ROWS = "einvoice.read_ahead.rows"


def read_ahead(session: Session, key: Hashable, sql: str, parameters: Mapping[str, Any]) -> None:
    """Queue a read (SQL for the driver and its parameters) the unit of work will make, to be sent
    with its next round trip on PostgreSQL (``pg_round_trip``), where it costs no round trip of
    its own; ``rows_ahead(session, key)`` gives its rows then. For reads of what the unit of work
    itself does not change: a stage's finish reads ahead what the stages it runs at once will
    read (``Stage.reads_ahead``: the approval limits, the institution's books) with the supplier's
    history. PostgreSQL only; elsewhere nothing is queued."""
    if session.get_bind().dialect.name == "postgresql":
        session.info.setdefault(_AHEAD_QUEUED, {})[key] = (sql, parameters)


@event.listens_for(Session, "after_transaction_end")
def _forget_reads_ahead(session: Session, _transaction: Any) -> None:
    """Reads ahead belong to the transaction they were sent in: what one read is not given to the next."""
    session.info.pop(_AHEAD_QUEUED, None)
    session.info.pop(_AHEAD_ROWS, None)


def rows_ahead(session: Session, key: Hashable) -> list[tuple[Any, ...]] | None:
    """The rows of the read queued as ``key`` (``read_ahead``) once it was sent, given once; None
    when it was not (then it is not sent either: the caller reads as it would have)."""
    queued = session.info.get(_AHEAD_QUEUED)
    if queued:
        queued.pop(key, None)
    rows = session.info.get(_AHEAD_ROWS)
    return rows.pop(key, None) if rows else None


def _row_by(session: Session, row_class: type[Any], equal: Mapping[str, Any], *, for_update: bool = False) -> Any:
    """The first row of ``row_class``'s table whose columns equal ``equal`` (``for_update``:
    locked until the transaction ends), as an object with the columns' names, or None; what the
    unit of work changed through the ORM is flushed first, as an ORM query would. For the reads by
    key that run for every request or document (a key's lookup, a document, the approval limits):
    the ORM's identity map and row objects cost more than the statement.

    On PostgreSQL the statement goes to the driver, compiled once per table and columns: in the
    transaction under way when there is one (what it wrote is seen), else (nothing begun, no
    lock asked for) committed as it runs, one round trip with no ``BEGIN`` or ``COMMIT``: the
    lookup of the API key before each request, alone in its unit of work, took three."""
    flush_pending(session)
    table = _table(row_class)
    lookup = _lookup(table.name, tuple(equal), for_update)
    if session.get_bind().dialect.name != "postgresql":
        return session.execute(lookup.query, dict(equal)).first()
    rows = None if for_update else rows_ahead(session, _row_by_key(table, equal))
    if rows is None:
        rows = _pg_pipeline(session, [], lookup.compiled.sql, lookup.compiled.parameters(equal), commit=not for_update)
    return writes.table_row(table, rows[0]) if rows else None


def read_row_by_ahead(session: Session, row_class: type[Any], equal: Mapping[str, Any]) -> None:
    """Read what ``_row_by(session, row_class, equal)`` reads with the next round trip
    (``read_ahead``); ``_row_by`` then gives those rows."""
    table = _table(row_class)
    lookup = _lookup(table.name, tuple(equal), False)
    read_ahead(session, _row_by_key(table, equal), lookup.compiled.sql, lookup.compiled.parameters(equal))


def _row_by_key(table: Table, equal: Mapping[str, Any]) -> Hashable:
    return ("row_by", table.name, tuple(equal.items()))


@functools.cache
def _by_ids() -> writes.Compiled:
    """PostgreSQL: the documents of the array ``ids``."""
    table = _table(DocumentRow)
    return writes.compile_postgres(select(table).where(table.c.id == any_(bindparam("ids", type_=ARRAY(String)))))


class _Lookup(NamedTuple):
    query: Select[Any]
    compiled: writes.Compiled


@functools.cache
def _lookup(table_name: str, columns: tuple[str, ...], for_update: bool) -> _Lookup:
    table = Base.metadata.tables[table_name]
    query = select(table).where(*(table.c[name] == bindparam(name) for name in columns)).limit(1)
    if for_update:
        query = query.with_for_update()
    return _Lookup(query, writes.compile_postgres(query))


# The PostgreSQL planner picks among the indexes that match a statement's conditions by their
# estimated cost; with no or few statistics (a new database, or autovacuum off) those estimates
# are all alike, and with statistics a waiting state looks rare (most documents are final). A
# wrong pick reads every document of a supplier, or the whole backlog of a state, to find one.
# So each lookup is written so that only one index matches it: a document by its primary key
# with its state checked on the row found (``(status IN (…)) IS TRUE``, the same truth in a WHERE
# clause as ``status IN (…)``, but no index condition), a repeat by its sha256 or idempotency
# key with the supplier checked on the row, a number by its ``number_key``.


def _on_the_row(condition: Any) -> Any:
    """``condition`` checked on the rows an index found, never used to choose the index."""
    return condition.is_(true())


def _status_guard(expected: Collection[str]) -> Any:
    return _on_the_row(_table(DocumentRow).c.status.in_(list(expected)))


def _added(session: Session, row: Any) -> Any:
    """``row`` added and flushed (its defaults, such as a new id, filled in)."""
    session.add(row)
    session.flush()
    return row


def _changed(session: Session, row_class: type[Any], key: str, **values: Any) -> Any:
    """The row of ``row_class`` with primary key ``key``, ``values`` set on it (written at the next
    flush, with whatever else changed on it in this unit of work). Raises LookupError when there
    is no such row."""
    row = session.get(row_class, key)
    if row is None:
        raise LookupError(f"no {row_class.__tablename__} row {key}")
    for name, value in values.items():
        setattr(row, name, value)
    return row


class _Parties(Generic[P]):
    """What institutions and suppliers share: registered by their Peppol endpoint, found by the
    hash of their API key, listed by name."""

    row_class: type[InstitutionRow] | type[SupplierRow]
    record: type[P]

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Any) -> P:
        return record_of(self.record, _added(self.session, row))

    def get(self, party_id: str) -> P | None:
        return record_or_none(self.record, self.session.get(self.row_class, party_id))

    def by_key_hash(self, key_hash: str) -> P | None:
        return self._first(api_key_hash=key_hash)

    def by_endpoint(self, scheme: str, endpoint_id: str) -> P | None:
        return self._first(endpoint_scheme=scheme, endpoint_id=endpoint_id)

    def list(self) -> Sequence[P]:
        rows = self.session.scalars(select(self.row_class).order_by(self.row_class.name, self.row_class.id))
        return [record_of(self.record, row) for row in rows]

    def set_api_key_hash(self, party_id: str, key_hash: str) -> P:
        """Give the party a new API key (its sha256); the one issued before stops working."""
        return record_of(self.record, _changed(self.session, self.row_class, party_id, api_key_hash=key_hash))

    def _first(self, **equal: str) -> P | None:
        """The record of the first row whose columns equal ``equal`` (``_row_by``: the key's lookup
        runs before every request)."""
        return record_or_none(self.record, _row_by(self.session, self.row_class, equal))


class InstitutionRepository(_Parties[InstitutionRecord]):
    row_class = InstitutionRow
    record = InstitutionRecord


class SupplierRepository(_Parties[SupplierRecord]):
    row_class = SupplierRow
    record = SupplierRecord

    def by_identifier(self, column: str, value: str) -> SupplierRecord | None:
        """The supplier whose ``vat_id`` or ``legal_id`` (``column``) is ``value`` (compact form)."""
        if column not in ("vat_id", "legal_id"):
            raise ValueError(f"suppliers are not found by {column}")
        return self._first(**{column: value})

    def set_active(self, supplier_id: str, active: bool) -> SupplierRecord:
        """Allow or stop the supplier's submissions."""
        return record_of(SupplierRecord, _changed(self.session, SupplierRow, supplier_id, active=active))

    def holding_identifiers(self, values: Collection[str], *, other_than: str) -> set[str]:
        """Which of ``values`` (identifiers in their compact form) another supplier than
        ``other_than`` has registered as its VAT, legal or tax registration identifier."""
        if not values:
            return set()
        wanted = list(values)
        held = union(
            *(
                select(column).where(column.in_(wanted), SupplierRow.id != other_than)
                for column in (SupplierRow.vat_id, SupplierRow.legal_id, SupplierRow.tax_id)
            )
        )
        return {value for value in self.session.scalars(held).all() if value is not None}


class DocumentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- documents -----------------------------------------------------------------------------

    def add_refused(
        self,
        values: dict[str, Any],
        raw: bytes,
        *,
        actor: str,
        detail: str,
        findings: Sequence[dict[str, Any]],
    ) -> None:
        """Add a document refused at intake (``values``: its columns, status ``refused``), its bytes,
        its one transition (``detail``: why) and its findings; no message, no duplicate check
        (a refused document is no invoice to pay). Refusals are rare: part by part on any database."""
        key = number_key(values["supplier_id"], values.get("number"), values.get("issue_year"))
        new = writes.NewDocument(
            {**values, "number_key": key}, raw, actor=actor, message=None, findings=tuple(findings)
        )
        writes.insert_new_document(self.session.connection(), new, None, detail=detail)

    def add_received(
        self,
        values: dict[str, Any],
        raw: bytes,
        *,
        actor: str,
        next_action: str,
        not_duplicate_of: Collection[str] = (),
        commit: bool = False,
        rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> str | None:
        """Add an accepted document (``values``: its columns, ``id`` and ``status`` among them), its
        bytes, its first transition and its first message (``next_action``), as one
        ``writes.NewDocument``. A document with a number (BT-1) and an issue year is first
        serialised with the others of its supplier, number and year (``lock_number``), then
        marked a suspected duplicate of the earliest of them whose status is not in
        ``not_duplicate_of`` (``writes.earlier_with_key``, the one lookup every path into the
        pipeline uses); its transition says so. Returns that earlier document's id, or None. A
        unique-constraint race surfaces here as DuplicateKeyError.

        ``commit``: the caller's unit of work holds nothing else, so the document may be committed
        here (the caller still commits the unit of work). On PostgreSQL the lock and one statement
        then go in one round trip, in the pipeline's implicit transaction; without ``commit``, or
        when the unit of work has begun a transaction already, they join that transaction. ``rows``:
        extra rows by table, written with it (the supplier's ``AB`` response)."""
        key = number_key(values["supplier_id"], values.get("number"), values.get("issue_year"))
        new = writes.NewDocument(
            {**values, "number_key": key},
            raw,
            actor=actor,
            message=next_action,
            not_duplicate_of=tuple(not_duplicate_of),
            rows=rows or {},
        )
        if self.session.get_bind().dialect.name != "postgresql":
            earlier = self.earlier_with_key(key, not_duplicate_of=new.not_duplicate_of)
            writes.insert_new_document(self.session.connection(), new, earlier)
            return earlier
        statement, parameters = writes.new_document_statement(new)
        lock = [(_PG_LOCK, (_number_lock_key(key),))] if key else []
        returned = _pg_pipeline(self.session, lock, statement, parameters, commit)
        return returned[0][0] if returned else None

    def earlier_with_key(self, key: str | None, *, not_duplicate_of: Collection[str] = ()) -> str | None:
        """The id of the earliest document with this ``number_key`` (the supplier's BT-1 number
        in an issue year) whose status is not in ``not_duplicate_of``: the document one entering
        the pipeline now is a suspected duplicate of, or None. Takes the number's lock first
        (``lock_number``), so that documents entering together still see each other."""
        if key is None:
            return None
        self.lock_number(key)
        skip = tuple(not_duplicate_of)
        parameters = {"v_number_key": key, **{f"skip_{n}": state for n, state in enumerate(skip)}}
        earlier: str | None = self.session.connection().execute(writes.earlier_with_key(len(skip)), parameters).scalar()
        return earlier

    def write(self, change: writes.DocumentChange, *, commit: bool = False) -> writes.Written:
        """Write ``change`` (a guarded change of one document and the rows that go with it), or
        nothing when its guard fails. PostgreSQL: one statement in one round trip (with
        ``commit``, committed as it runs when the unit of work has begun no transaction yet);
        elsewhere part by part in the unit of work's transaction."""
        if self.session.get_bind().dialect.name == "postgresql":
            statement, parameters = writes.one_statement(change)
            written = writes.written_from(change, _pg_pipeline(self.session, [], statement, parameters, commit))
        else:
            written = writes.run_sequentially(self.session.connection(), change)
        if written.changed:
            self._expire(change.document_id)
        return written

    def write_many(self, changes: Sequence[writes.DocumentChange]) -> list[writes.Written]:
        """Write each of ``changes`` as ``write`` does, in the unit of work's transaction, and
        return what each did, in order. PostgreSQL: all in one round trip (each its one statement,
        run in turn)."""
        if not changes:
            return []
        if self.session.get_bind().dialect.name == "postgresql":
            results = pg_round_trip(self.session, [writes.one_statement(change) for change in changes])
            written = [writes.written_from(change, rows) for change, (rows, _) in zip(changes, results, strict=True)]
        else:
            connection = self.session.connection()
            written = [writes.run_sequentially(connection, change) for change in changes]
        for change, one in zip(changes, written, strict=True):
            if one.changed:
                self._expire(change.document_id)
        return written

    def get_many(self, document_ids: Collection[str]) -> dict[str, DocumentRecord]:
        """The documents of these ids that exist, as the database has them now, by id: one
        statement."""
        if not document_ids:
            return {}
        flush_pending(self.session)
        table = _table(DocumentRow)
        ids = sorted(set(document_ids))
        if self.session.get_bind().dialect.name == "postgresql":
            compiled = _by_ids()
            found = _pg_pipeline(self.session, [], compiled.sql, compiled.parameters({"ids": ids}))
            rows = [writes.table_row(table, row) for row in found]
        else:
            rows = list(self.session.execute(select(table).where(table.c.id.in_(ids))))
        return {row.id: record_of(DocumentRecord, row) for row in rows}

    def get(self, document_id: str, *, for_update: bool = False) -> DocumentRecord | None:
        """The document as the database has it now (``_row_by``: the stages, acknowledgements
        and pages read documents by key all the time); ``for_update``: locked until the
        transaction ends."""
        row = _row_by(self.session, DocumentRow, {"id": document_id}, for_update=for_update)
        return record_or_none(DocumentRecord, row)

    def by_sha256(self, supplier_id: str, sha256: str) -> DocumentRecord | None:
        return self._first(DocumentRow.sha256 == sha256, _on_the_row(DocumentRow.supplier_id == supplier_id))

    def by_idempotency_key(self, supplier_id: str, key: str) -> DocumentRecord | None:
        return self._first(DocumentRow.idempotency_key == key, _on_the_row(DocumentRow.supplier_id == supplier_id))

    def _first(self, *conditions: Any) -> DocumentRecord | None:
        return record_or_none(DocumentRecord, self.session.scalars(select(DocumentRow).where(*conditions)).first())

    def _all(self, query: Select[Any]) -> list[DocumentRecord]:
        return [record_of(DocumentRecord, row) for row in self.session.scalars(query)]

    def lock_number(self, key: str) -> None:
        """Serialise intake of documents with the same ``number_key`` (supplier, BT-1, year) until the
        transaction ends, so that two of them arriving together still see each other. PostgreSQL:
        a transaction-scoped advisory lock; SQLite: the write lock taken at BEGIN already does."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.connection().exec_driver_sql(_PG_LOCK, (_number_lock_key(key),))

    def raw(self, document_id: str) -> bytes | None:
        contents = _table(DocumentContentRow)
        raw: bytes | None = (
            self.session.connection()
            .execute(select(contents.c.raw).where(contents.c.document_id == document_id))
            .scalar()
        )
        return raw

    def list_for_supplier(
        self, supplier_id: str, *, status: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[DocumentRecord]:
        query = select(DocumentRow).where(DocumentRow.supplier_id == supplier_id)
        if status is not None:
            query = query.where(DocumentRow.status == status)
        if since is not None:
            query = query.where(DocumentRow.received_at >= since)
        query = query.order_by(DocumentRow.received_at.desc(), DocumentRow.id.desc()).limit(limit)
        return self._all(query)

    def compare_and_set(
        self,
        document_id: str,
        *,
        expected: Collection[str],
        values: dict[str, Any],
        at: datetime,
        steps: Sequence[writes.Step] = (),
        holder: str | writes.Anyone | None = writes.ANYONE,
        findings: Sequence[dict[str, Any]] | None = None,
        message: str | None = None,
    ) -> bool:
        """Update the document only if its status is one of ``expected`` and, unless ``holder``
        is ``ANYONE``, ``holder`` holds its lease (None: no one does), with the transitions,
        findings and message that go with it (``writes.DocumentChange``). Returns whether it
        did: the guard that makes stages idempotent and lets exactly one of several concurrent
        workers win."""
        change = writes.DocumentChange(
            document_id,
            tuple(expected),
            values,
            at,
            steps=tuple(steps),
            holder=holder,
            findings=findings,
            message=message,
        )
        return self.write(change).changed

    def _expire(self, document_id: str) -> None:
        """A copy of the document already loaded in this session is stale after a Core update
        (looked up, not loaded)."""
        existing = self.session.identity_map.get(self.session.identity_key(DocumentRow, document_id))
        if existing is not None:
            self.session.expire(existing)

    def stuck(
        self,
        *,
        idle_statuses: Collection[str],
        idle_before: datetime,
        working_statuses: Collection[str],
        now: datetime,
        limit: int = 500,
        resting_with_reason: Collection[str] = (),
    ) -> list[DocumentRecord]:
        """Documents waiting in an idle state since before ``idle_before``, or held in a
        working state by a lease that has run out. A document in one of ``resting_with_reason``
        with a ``failure_reason`` (and, in a working state, no lease) waits for a person, a
        setting or a confirmation, not for a message: left out."""
        idle = DocumentRow.status.in_(list(idle_statuses)) & (DocumentRow.status_changed_at < idle_before)
        expired = DocumentRow.status.in_(list(working_statuses)) & (
            DocumentRow.lease_expires_at.is_(None) | (DocumentRow.lease_expires_at < now)
        )
        if resting_with_reason:
            resting = DocumentRow.status.in_(list(resting_with_reason)) & DocumentRow.failure_reason.is_not(None)
            idle &= ~resting
            expired &= ~(resting & DocumentRow.lease_token.is_(None))
        return self._all(select(DocumentRow).where(idle | expired).order_by(DocumentRow.status_changed_at).limit(limit))

    def oldest_status_change(self, statuses: Collection[str]) -> datetime | None:
        """When the document longest in one of ``statuses`` entered it."""
        return self.session.scalar(
            select(func.min(DocumentRow.status_changed_at)).where(DocumentRow.status.in_(list(statuses)))
        )

    def count_by_status(self) -> dict[str, int]:
        rows = self.session.execute(select(DocumentRow.status, func.count()).group_by(DocumentRow.status))
        return {status: int(count) for status, count in rows}

    # --- history and findings ------------------------------------------------------------------

    def transitions(self, document_id: str) -> list[TransitionRecord]:
        rows = self.session.scalars(
            select(TransitionRow).where(TransitionRow.document_id == document_id).order_by(TransitionRow.id)
        )
        return [record_of(TransitionRecord, row) for row in rows]

    def stage_durations(
        self, since: datetime, states: Collection[str], *, limit: int = 5_000
    ) -> dict[str, list[float]]:
        """Seconds spent in each of ``states`` by the documents that left it, among the newest
        ``limit`` state changes since ``since`` (a transition to the same state is no change):
        each departure paired in SQL with the document's change before it, which entered the
        state. Read backwards along the primary key and stopping at ``limit``, so a scrape costs
        the same however busy the last hour was; only the pairs leave the server."""
        if not states:
            return {}
        t = _table(TransitionRow)
        newest = (
            select(t.c.id, t.c.document_id, t.c.from_status, t.c.to_status, t.c.at)
            .where(t.c.at >= since, t.c.from_status.is_distinct_from(t.c.to_status))
            .order_by(t.c.id.desc())
            .limit(limit)
            .subquery("newest")
        )
        by, order = newest.c.document_id, newest.c.id
        paired = select(
            newest.c.from_status,
            newest.c.at,
            func.lag(newest.c.to_status).over(partition_by=by, order_by=order).label("entered"),
            func.lag(newest.c.at, type_=newest.c.at.type).over(partition_by=by, order_by=order).label("entered_at"),
        ).subquery("paired")
        left = (paired.c.from_status.in_(sorted(states)), paired.c.entered == paired.c.from_status)
        durations: dict[str, list[float]] = {}
        if self.session.get_bind().dialect.name == "postgresql":
            seconds = cast(func.extract("epoch", paired.c.at - paired.c.entered_at), Float)
            for state, value in self.session.execute(select(paired.c.from_status, seconds).where(*left)):
                durations.setdefault(state, []).append(value)
        else:
            rows = self.session.execute(select(paired.c.from_status, paired.c.at, paired.c.entered_at).where(*left))
            for state, at, entered_at in rows:
                durations.setdefault(state, []).append((at - entered_at).total_seconds())
        return durations

    def findings(self, document_id: str) -> list[Finding]:
        rows = self.session.scalars(
            select(FindingRow).where(FindingRow.document_id == document_id).order_by(FindingRow.position)
        )
        return [finding_of(row) for row in rows]

    # --- responses to the supplier --------------------------------------------------------------

    def responses(self, document_id: str) -> list[ResponseRecord]:
        """The responses the document got, oldest first."""
        rows = self.session.scalars(
            select(ResponseRow).where(ResponseRow.document_id == document_id).order_by(ResponseRow.id)
        )
        return [record_of(ResponseRecord, row) for row in rows]

    def response(self, document_id: str, response_id: int) -> ResponseRecord | None:
        """One response of the document; None for an unknown id or another document's."""
        row = self.session.get(ResponseRow, response_id)
        return record_of(ResponseRecord, row) if row is not None and row.document_id == document_id else None

    # --- a supplier's earlier documents (matching's history) -----------------------------------

    def earlier_of_supplier(self, query: EarlierQuery) -> list[EarlierRow]:
        """The supplier's documents received before ``query.before`` (received_at, id), neither
        rejected nor refused, that matching's history needs: those numbered one of
        ``query.numbers``, those of BT-112 ``query.amount`` issued within ``query.issued_from``
        to ``issued_to``, its credit notes, and its last ``query.last`` invoices with
        ``query.institution_id`` by issue date. Each with its BT-112, whether it is a credit note
        and a credit note's BT-25 numbers, from the parsed form when stored (None, False, none
        for a document not parsed yet),
        and its ``match_result`` unless ``query.holdings`` is false (then None: it is long).
        The statement is built once per shape (``_earlier_statement``): matching runs it for every
        document, and building it cost more than running it."""
        window = query.issued_from is not None and query.issued_to is not None and query.amount is not None
        last = query.institution_id is not None and query.last > 0
        received_at, document_id = query.before
        parameters: dict[str, Any] = {
            "supplier_id": query.supplier_id,
            "received_at": received_at,
            "document_id": document_id,
        }
        if query.numbers:  # looked up as supplier_id:number (tables.SUPPLIER_NUMBER)
            parameters["numbers"] = sorted(f"{query.supplier_id}:{number}" for number in query.numbers)
        if window:
            assert query.amount is not None
            parameters |= {
                "issued_from": query.issued_from,
                "issued_to": query.issued_to,
                "amount": amount_key(query.amount),
            }
        if last:
            parameters["institution_id"] = query.institution_id
        how_many = query.last if last else 0
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":  # on the driver: matching runs it for every document
            compiled = _earlier_postgres(bool(query.numbers), window, how_many, query.holdings)
            steps = [_PG_GENERIC_PLAN, (compiled.sql, compiled.parameters(parameters)), _PG_PLAN_AS_CONFIGURED]
            [_, (found, _), _] = pg_round_trip(self.session, steps)
            rows: Iterable[Any] = [_EarlierColumns(*row) for row in found]
        else:
            rows = connection.execute(
                _earlier_statement(bool(query.numbers), window, how_many, query.holdings), parameters
            )
        return [
            EarlierRow(
                id=row.id,
                number=row.number,
                issue_date=row.issue_date,
                institution_id=row.institution_id,
                match_result=row.match_result,
                amount=row.amount,
                credit_note=bool(row.credit_note),
                preceding=tuple(_numbers(row.preceding)),
            )
            for row in rows
        ]

    # --- the parsed document -------------------------------------------------------------------

    def add_parsed(self, document_id: str, invoice: Invoice, *, at: datetime) -> None:
        """Store ``invoice`` as the document's parsed form (``parsed_row``), in place of any
        stored before."""
        parsed = _table(ParsedDocumentRow)
        documents = _table(DocumentRow)
        connection = self.session.connection()
        supplier_id = connection.execute(select(documents.c.supplier_id).where(documents.c.id == document_id)).scalar()
        connection.execute(delete(parsed).where(parsed.c.document_id == document_id))
        connection.execute(insert(parsed), [parsed_row(document_id, invoice, at, supplier_id=supplier_id)])

    def parsed(self, document_id: str) -> Invoice | None:
        """The document's parsed ``Invoice``; None when none is stored (a document not, or not
        yet, found valid, or validated before parsed documents were kept). Raises
        ``StoredInvoiceError`` for data this engine cannot read (another format version)."""
        parsed = _table(ParsedDocumentRow)
        row = (
            self.session.connection()
            .execute(select(parsed.c.data, parsed.c.format_version).where(parsed.c.document_id == document_id))
            .first()
        )
        if row is None:
            return None
        return invoice_from_dict(row.data, format_version=row.format_version)


class _EarlierColumns(NamedTuple):
    id: str
    number: str | None
    issue_date: Any
    institution_id: str | None
    match_result: str | None
    amount: str | None
    credit_note: bool | None
    preceding: Any


@functools.cache
def _earlier_postgres(numbers: bool, window: bool, last: int, holdings: bool) -> writes.Compiled:
    """``_earlier_statement`` for the driver, ``numbers`` as one array."""
    return writes.compile_postgres(_earlier_statement(numbers, window, last, holdings, array=True))


def _constant(value: str | int) -> Any:
    """``value`` written into the statement's text rather than bound: a constant of the engine's
    own (a state, a kind of document, a count from the settings), never a caller's value."""
    if isinstance(value, int):
        return literal_column(str(int(value)), Integer)
    if not re.fullmatch(r"[a-z_]+", value):  # pragma: no cover - the engine's names only
        raise ValueError(f"not a constant: {value!r}")
    return literal_column(f"'{value}'", String)


@functools.cache
def _earlier_statement(
    numbers: bool, window: bool, last: int, holdings: bool = True, *, array: bool = False
) -> Select[Any]:
    """``earlier_of_supplier``'s statement for the parts a query has (``last``: how many of the
    supplier's last invoices with the institution, 0 for none), with its values as bound
    parameters (``supplier_id``, ``received_at``, ``document_id``; ``numbers``; ``issued_from``,
    ``issued_to``, ``amount``; ``institution_id``).

    The engine's constants (the states left out, the kinds of document, the counts) are written
    into the text: bound, they left PostgreSQL's plan for any values (a prepared statement's
    generic plan, which ``earlier_of_supplier`` asks for: ``_PG_GENERIC_PLAN``) scanning the whole
    table for the credit notes and the last invoices; written in, that plan reads by index as a
    plan for the values does."""
    d, p = _table(DocumentRow), _table(ParsedDocumentRow)
    received_at = bindparam("received_at", type_=d.c.received_at.type)
    document_id = bindparam("document_id", type_=d.c.id.type)
    earlier = (d.c.received_at < received_at) | ((d.c.received_at == received_at) & (d.c.id < document_id))
    history = d.c.status.not_in([_constant(status) for status in sorted(NOT_HISTORY)])

    base = [d.c.supplier_id == bindparam("supplier_id"), history, earlier]
    # One part per reason to look, each served by an index of its own (``ix_documents_supplier_*``)
    # and bounded by what it looks for: an OR of them would read every document of the supplier.
    credit_notes = select(d.c.id).where(
        d.c.supplier_id == bindparam("supplier_id"), d.c.document_type == _constant("credit_note")
    )
    parts: list[Any] = [credit_notes]
    if numbers:  # by the one key that only its index holds: ``supplier_id:number``
        key = SUPPLIER_NUMBER
        if array:
            named = key == any_(bindparam("numbers", type_=ARRAY(String)))
        else:
            named = key.in_(bindparam("numbers", expanding=True))
        parts.append(select(d.c.id).where(named))
    if window:  # the same BT-112 within the window: read beside the parsed form, never out of it
        around = p.c.issue_date.between(bindparam("issued_from"), bindparam("issued_to"))
        same = p.c.tax_inclusive_amount == bindparam("amount", type_=p.c.tax_inclusive_amount.type)
        parts.append(select(p.c.document_id).where(p.c.supplier_id == bindparam("supplier_id"), same, around))
    if last:
        recent = (
            select(d.c.id)
            .where(*base, d.c.document_type == _constant("invoice"), d.c.institution_id == bindparam("institution_id"))
            .order_by(d.c.issue_date.desc(), d.c.received_at.desc())
            .limit(_constant(last))
        )
        parts.append(select(recent.subquery().c.id))
    combined: Any = union(*parts) if len(parts) > 1 else parts[0]
    wanted = combined.subquery("wanted")
    columns = (
        d.c.id,
        d.c.number,
        d.c.issue_date,
        d.c.institution_id,
        d.c.match_result if holdings else null().label("match_result"),
        p.c.tax_inclusive_amount.label("amount"),
        p.c.credit_note,
        # BT-25 counts for credit notes only: reading it decompresses the whole parsed form
        case((p.c.credit_note, p.c.data["preceding_invoices"])).label("preceding"),
    )
    if not array:  # SQLite: the documents the parts found, each by its primary key
        return (
            select(*columns)
            .select_from(wanted.join(d, d.c.id == wanted.c.id).outerjoin(p, p.c.document_id == d.c.id))
            .where(history, earlier)
            .order_by(d.c.received_at, d.c.id)
        )
    # PostgreSQL: each document the parts found is read by its primary key in a lateral subquery
    # that LIMIT keeps from being merged into the outer join. As a plain join, the planner chose
    # a scan of the whole documents table when its statistics were older than the table (a fresh
    # database, autovacuum behind): 7.8 ms a document at 1,500 documents instead of about 1.
    found = (
        select(*columns, d.c.received_at)
        .select_from(d.outerjoin(p, p.c.document_id == d.c.id))
        .where(d.c.id == wanted.c.id, history, earlier)
        .limit(_constant(1))
        .lateral("found")
    )
    return (
        select(*(found.c[column.name] for column in columns))
        .select_from(wanted.join(found, true()))
        .order_by(found.c.received_at, found.c.id)
    )


def _numbers(preceding: Any) -> list[str]:
    """The invoice numbers (BT-25) of a parsed ``preceding_invoices`` (JSON, or its text)."""
    if isinstance(preceding, str):
        preceding = json.loads(preceding)
    return [str(p["id"]) for p in preceding or () if isinstance(p, dict) and p.get("id")]


def parsed_row(document_id: str, invoice: Invoice, at: datetime, *, supplier_id: str | None) -> dict[str, Any]:
    """The column values of the ``parsed_documents`` row that keeps ``invoice``, parsed from the
    document ``document_id`` of the supplier ``supplier_id`` at ``at`` (timezone-aware): ``data``
    is ``invoice_to_dict(invoice)``, a dict of JSON types (SQLAlchemy's JSON type writes it; in
    SQL text, bind ``json.dumps`` of it and cast it to ``jsonb`` on PostgreSQL),
    ``format_version`` its ``FORMAT_VERSION``; beside it what matching's history reads of every
    earlier document: BT-112 (``amount_key``), whether it is a credit note, and the supplier and
    BT-2 by which the documents of an amount are found."""
    total = invoice.totals.tax_inclusive_amount
    return {
        "document_id": document_id,
        "data": invoice_to_dict(invoice),
        "format_version": FORMAT_VERSION,
        "parsed_at": at,
        "tax_inclusive_amount": amount_key(total.value) if total is not None else None,
        "credit_note": invoice.is_credit_note,
        "supplier_id": supplier_id,
        "issue_date": invoice.issue_date,
    }


class UserRepository:
    """Users of the accountants' pages, the institutions each sees, their sessions."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: UserRow, institution_ids: Iterable[str]) -> UserRecord:
        _added(self.session, row)
        for institution_id in institution_ids:
            self.session.add(UserInstitutionRow(user_id=row.id, institution_id=institution_id))
        self.session.flush()
        return record_of(UserRecord, row)

    def get(self, user_id: str) -> UserRecord | None:
        return record_or_none(UserRecord, self.session.get(UserRow, user_id))

    def by_username(self, username: str) -> UserRecord | None:
        return record_or_none(
            UserRecord, self.session.scalars(select(UserRow).where(UserRow.username == username)).first()
        )

    def list(self) -> list[UserRecord]:
        return [record_of(UserRecord, row) for row in self.session.scalars(select(UserRow).order_by(UserRow.username))]

    def institutions_of(self, user_id: str) -> Sequence[InstitutionRecord]:
        rows = self.session.scalars(
            select(InstitutionRow)
            .join(UserInstitutionRow, UserInstitutionRow.institution_id == InstitutionRow.id)
            .where(UserInstitutionRow.user_id == user_id)
            .order_by(InstitutionRow.name, InstitutionRow.id)
        )
        return [record_of(InstitutionRecord, row) for row in rows]

    def set_active(self, user_id: str, active: bool) -> UserRecord:
        """Allow or stop the user's sign-ins (their sessions: ``end_sessions_of``)."""
        return record_of(UserRecord, _changed(self.session, UserRow, user_id, active=active))

    def set_password(self, user_id: str, password_hash: str, *, changed_at: datetime | None) -> UserRecord:
        """Keep ``password_hash`` as the user's password; ``changed_at``: a new password, None: the
        same one hashed again."""
        changes: dict[str, Any] = {"password_hash": password_hash}
        if changed_at is not None:
            changes["password_changed_at"] = changed_at
        return record_of(UserRecord, _changed(self.session, UserRow, user_id, **changes))

    def set_failed_sign_ins(self, user_id: str, count: int, *, locked_until: datetime | None) -> UserRecord:
        """Count the user's failed sign-ins in a row, and lock them out until ``locked_until``."""
        row = _changed(self.session, UserRow, user_id, failed_sign_ins=count, locked_until=locked_until)
        return record_of(UserRecord, row)

    def add_session(self, row: UserSessionRow) -> None:
        _added(self.session, row)

    def session_by_hash(self, token_hash: str) -> SessionRecord | None:
        return record_or_none(SessionRecord, self.session.get(UserSessionRow, token_hash))

    def touch_session(self, token_hash: str, at: datetime) -> None:
        """The session was used at ``at`` (its idle time starts again)."""
        _changed(self.session, UserSessionRow, token_hash, last_seen_at=at)

    def end_session(self, token_hash: str) -> None:
        sessions = _table(UserSessionRow)
        self.session.execute(delete(sessions).where(sessions.c.token_hash == token_hash))

    def end_sessions_of(self, user_id: str) -> None:
        sessions = _table(UserSessionRow)
        self.session.execute(delete(sessions).where(sessions.c.user_id == user_id))

    def end_expired_sessions(self, now: datetime) -> None:
        sessions = _table(UserSessionRow)
        self.session.execute(delete(sessions).where(sessions.c.expires_at < now))

    # --- approval rules and decisions ------------------------------------------------------------

    def approval_rule(self, institution_id: str) -> ApprovalRuleRecord | None:
        """The institution's approval limits (``_row_by``: matching reads them for every invoice
        it matches), or as read ahead (``read_approval_rule_ahead``)."""
        row = _row_by(self.session, ApprovalRuleRow, {"institution_id": institution_id})
        return record_or_none(ApprovalRuleRecord, row)

    def read_approval_rule_ahead(self, institution_id: str) -> None:
        """Read the institution's approval limits with the next round trip (``read_ahead``)."""
        read_row_by_ahead(self.session, ApprovalRuleRow, {"institution_id": institution_id})

    def set_approval_rule(self, row: ApprovalRuleRow) -> None:
        self.session.merge(row)
        self.session.flush()

    def decisions(self, document_id: str) -> Sequence[DecisionRecord]:
        rows = self.session.scalars(
            select(DecisionRow).where(DecisionRow.document_id == document_id).order_by(DecisionRow.id)
        )
        return [record_of(DecisionRecord, row) for row in rows]


class OutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, document_id: str, action: str, *, now: datetime) -> None:
        self.session.connection().execute(
            insert(_table(OutboxRow)), [{"document_id": document_id, "action": action, "created_at": now}]
        )

    def claim_pending(self, limit: int = 100) -> Sequence[OutboxRow]:
        """Unsent rows, oldest first, locked for this transaction (PostgreSQL: rows another relay
        holds are skipped; SQLite: the write transaction itself serialises relays)."""
        return self.session.scalars(
            select(OutboxRow)
            .where(OutboxRow.sent_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()

    def take_pending(self, limit: int = 100, *, now: datetime) -> list[tuple[int, str, str]]:
        """Mark up to ``limit`` unsent rows sent at ``now`` and return their (id, action,
        document_id), oldest first: ``claim_pending`` and ``mark_sent`` in one statement, for a
        relay that hands the whole batch over or nothing (it rolls back when the broker did not
        take it). Locked as ``claim_pending`` locks.

        On PostgreSQL the unsent rows are found by a plain index scan, never a bitmap or
        sequential scan (planner settings for this transaction only, sent with the statement):
        a row marked sent leaves its unsent index entry behind until vacuum, and only a plain
        index scan marks such entries dead as it passes them. Otherwise, wherever autovacuum is
        off or behind, every poll of every relay would read all of them again."""
        parameters = {"limit": limit, "now": now}
        if self.session.get_bind().dialect.name == "postgresql":
            compiled = _take_pending_postgres()
            rows = _pg_pipeline(self.session, _PG_PLAIN_INDEX_SCANS, compiled.sql, compiled.parameters(parameters))
            return sorted((row[0], row[1], row[2]) for row in rows)
        taken = self.session.connection().execute(_take_pending_statement("sqlite"), parameters)
        return sorted((row[0], row[1], row[2]) for row in taken)

    def mark_sent(self, rows: Iterable[OutboxRow], *, now: datetime) -> None:
        ids = [row.id for row in rows]
        if ids:
            self.session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids))
                .values(sent_at=now)
                .execution_options(synchronize_session=False)
            )

    def last_written_at(self, document_id: str) -> datetime | None:
        """When the newest message for the document was written (sent or not)."""
        return self.session.scalar(select(func.max(OutboxRow.created_at)).where(OutboxRow.document_id == document_id))

    def pending_count(self) -> int:
        return int(self.session.scalar(select(func.count()).where(OutboxRow.sent_at.is_(None))) or 0)

    def oldest_pending_created_at(self) -> datetime | None:
        return self.session.scalar(select(func.min(OutboxRow.created_at)).where(OutboxRow.sent_at.is_(None)))

    def purge_sent(self, *, before: datetime) -> int:
        """Delete rows sent before ``before``; return how many."""
        result = self.session.execute(
            delete(OutboxRow)
            .where(OutboxRow.sent_at.is_not(None), OutboxRow.sent_at < before)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


# --- the outbox relay's batch ---------------------------------------------------------------------


@functools.cache
def _take_pending_statement(dialect: str) -> Update:
    """Mark a batch of unsent rows sent and read it back: one UPDATE … RETURNING. On PostgreSQL the
    batch is ``id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED))``, which reads the outbox by its
    primary key, one row at a time; elsewhere ``id IN (SELECT …)``."""
    outbox = _table(OutboxRow)
    unsent = outbox.alias("unsent")
    pending = (
        select(unsent.c.id)
        .where(unsent.c.sent_at.is_(None))
        .order_by(unsent.c.id)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    batch = outbox.c.id == any_(func.array(pending)) if dialect == "postgresql" else outbox.c.id.in_(pending)
    return (
        update(outbox)
        .where(batch)
        .values(sent_at=bindparam("now", type_=outbox.c.sent_at.type))
        .returning(outbox.c.id, outbox.c.action, outbox.c.document_id)
    )


@functools.cache
def _take_pending_postgres() -> writes.Compiled:
    return writes.compile_postgres(_take_pending_statement("postgresql"))


_PG_PLAIN_INDEX_SCANS = [("SET LOCAL enable_seqscan = off", ()), ("SET LOCAL enable_bitmapscan = off", ())]
#: Around matching's history (``_earlier_statement``), in the same round trip: one plan for any
#: values, made once per connection (and again after the tables' statistics change), instead of
#: a plan for every invoice, which was PostgreSQL's own choice by estimated cost (1.1 ms of its
#: CPU each, where the statement takes 0.25 to 0.45 ms to run). Made with sequential and bitmap
#: scans ruled out: with statistics older than the table (a new database that grew fast), the
#: plan for any values scanned the whole table, or all the supplier's documents, where the one for
#: the values read by index. The first statement keeps the settings it changes (in
#: ``einvoice.*`` settings of the transaction), the second puts them back for the statements
#: after it: two statements, where a ``SET LOCAL`` each way cost six.
_PLANNER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off", "enable_bitmapscan": "off"}
_PG_GENERIC_PLAN: tuple[str, dict[str, Any]] = (
    "WITH kept AS MATERIALIZED (SELECT "
    + ", ".join(f"current_setting('{name}') AS {name}" for name in _PLANNER_SETTINGS)
    + ") SELECT "
    + ", ".join(f"set_config('einvoice.{name}', kept.{name}, true)" for name in _PLANNER_SETTINGS)
    + ", "
    + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in _PLANNER_SETTINGS.items())
    + " FROM kept",
    {},
)
_PG_PLAN_AS_CONFIGURED: tuple[str, dict[str, Any]] = (
    "SELECT "
    + ", ".join(f"set_config('{name}', current_setting('einvoice.{name}'), true)" for name in _PLANNER_SETTINGS),
    {},
)


# --- PostgreSQL: statements in one round trip ------------------------------------------------------
#
# The hot paths go to the driver: a stage's claim or finish is one statement (``writes``); intake
# sends the number's advisory lock and one statement (lookup of an earlier document with the
# number, the document, its bytes, its transition and its message as data-modifying CTEs)
# together in a psycopg pipeline. The lock must be a statement of its own: a statement's snapshot
# is taken when it starts, so only a lookup in a later statement sees a document committed by
# the transaction it waited for.

_PG_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


def _number_lock_key(key: str) -> str:
    return f"einvoice-number:{key}"


def pg_round_trip(
    session: Session, steps: Sequence[tuple[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]]]
) -> list[tuple[list[tuple[Any, ...]], int]]:
    """Run ``steps`` (SQL for the driver and its parameters: a mapping, or a sequence of them to
    run it once for each) in the session's transaction on PostgreSQL, in one round trip (a
    psycopg pipeline); the rows and row count of each. Each statement starts when the one before
    it has finished on the server, so a statement after one that waited for a row lock sees what
    the transaction it waited for committed. The reads queued by ``read_ahead`` go first, their
    rows kept for ``rows_ahead``. Errors are raised as for ``_pg_pipeline``."""
    import psycopg

    queued = session.info.pop(_AHEAD_QUEUED, None)
    ahead = list(queued.items()) if queued else []
    if ahead:
        steps = [*(step for _, step in ahead), *steps]
    connection = session.connection()
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    cursors = [driver.cursor() for _ in steps]
    try:
        try:
            with driver.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext():
                for cursor, (sql, parameters) in zip(cursors, steps, strict=True):
                    if isinstance(parameters, Mapping):
                        cursor.execute(sql, parameters)
                    else:
                        cursor.executemany(sql, parameters)
            note_statements(
                connection.info, [(sql, c.statusmessage) for c, (sql, _) in zip(cursors, steps, strict=True)]
            )
            # ``pgresult.nfields``, not ``description``: that builds a column object for every column
            results = [(cursor.fetchall() if _has_rows(cursor) else [], cursor.rowcount) for cursor in cursors]
            if ahead:
                kept = session.info.setdefault(_AHEAD_ROWS, {})
                kept.update((key, rows) for (key, _), (rows, _) in zip(ahead, results, strict=False))
                results = results[len(ahead) :]
            return results
        except psycopg.Error as exc:
            connection._handle_dbapi_exception(exc, steps[-1][0], None, None, None)
            raise  # pragma: no cover - _handle_dbapi_exception raises
    finally:
        for cursor in cursors:
            cursor.close()


def _has_rows(cursor: Any) -> bool:
    """Whether the cursor's last statement returned rows (a result with columns)."""
    result = cursor.pgresult
    return result is not None and result.nfields > 0


def _pg_pipeline(
    session: Session,
    before: Sequence[tuple[str, Sequence[Any]]],
    statement: str,
    parameters: dict[str, Any],
    commit: bool = False,
) -> list[tuple[Any, ...]]:
    """Run ``before`` (statements whose results are not needed) and ``statement`` in one round
    trip on the session's connection; return ``statement``'s rows.

    With ``commit`` and no transaction begun on the connection yet, they run in the pipeline's
    implicit transaction (autocommit: committed at its sync, rolled back on any error); else in
    the current transaction. Errors are raised as SQLAlchemy raises them, with its handling of
    lost connections (the connection, and the pool's older ones, invalidated)."""
    import psycopg

    connection = session.connection()
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    pipelined = psycopg.Pipeline.is_supported()  # libpq 14 or later (the binary package bundles one)
    own = pipelined and commit and driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    cursor = driver.cursor()
    try:
        if own:
            driver.autocommit = True
        try:
            with driver.pipeline() if pipelined else contextlib.nullcontext():
                for sql, args in before:
                    cursor.execute(sql, args)
                cursor.execute(statement, parameters)
            # the statements before share the cursor: their tags are gone, their text tells
            note_statements(connection.info, [*((sql, None) for sql, _ in before), (statement, cursor.statusmessage)])
            rows = cursor.fetchall()
        finally:
            if own and not (driver.closed or driver.broken):
                driver.autocommit = False
    except psycopg.Error as exc:
        # The same wrapping, events and invalidation as for a statement SQLAlchemy ran itself.
        connection._handle_dbapi_exception(exc, statement, None, None, None)
    finally:
        cursor.close()
    return rows
