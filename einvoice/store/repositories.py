"""Repositories: the queries the services need, and nothing else.

They return ORM rows; services turn rows into views. Nothing here commits: the unit of work does.
"""

from __future__ import annotations

import contextlib
import functools
import json
import types
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    Update,
    bindparam,
    delete,
    func,
    insert,
    select,
    true,
    union,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from einvoice.domain.invoice import Invoice
from einvoice.parsers.invoice_dict import FORMAT_VERSION, invoice_from_dict, invoice_to_dict
from einvoice.store.tables import (
    DocumentContentRow,
    DocumentRow,
    FindingRow,
    InstitutionRow,
    OutboxRow,
    ParsedDocumentRow,
    SupplierRow,
    TransitionRow,
    number_key,
)
from einvoice.store.types import DecimalText, UTCDateTime


def _table(row_class: type[Any]) -> Table:
    table: Table = row_class.__table__
    return table


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


_STATUS_GUARD_SQL = "(status = {}) IS TRUE"


class InstitutionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: InstitutionRow) -> InstitutionRow:
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, institution_id: str) -> InstitutionRow | None:
        return self.session.get(InstitutionRow, institution_id)

    def by_endpoint(self, scheme: str, endpoint_id: str) -> InstitutionRow | None:
        return self.session.scalars(
            select(InstitutionRow).where(
                InstitutionRow.endpoint_scheme == scheme, InstitutionRow.endpoint_id == endpoint_id
            )
        ).first()

    def list(self) -> Sequence[InstitutionRow]:
        return self.session.scalars(select(InstitutionRow).order_by(InstitutionRow.name, InstitutionRow.id)).all()


class SupplierRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: SupplierRow) -> SupplierRow:
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, supplier_id: str) -> SupplierRow | None:
        return self.session.get(SupplierRow, supplier_id)

    def by_key_hash(self, key_hash: str) -> SupplierRow | None:
        return self.session.scalars(select(SupplierRow).where(SupplierRow.api_key_hash == key_hash)).first()

    def by_endpoint(self, scheme: str, endpoint_id: str) -> SupplierRow | None:
        return self.session.scalars(
            select(SupplierRow).where(SupplierRow.endpoint_scheme == scheme, SupplierRow.endpoint_id == endpoint_id)
        ).first()

    def list(self) -> Sequence[SupplierRow]:
        return self.session.scalars(select(SupplierRow).order_by(SupplierRow.name, SupplierRow.id)).all()

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

    def add(self, row: DocumentRow, raw: bytes) -> DocumentRow:
        """Add a document and its bytes; flushes, so a unique-constraint race surfaces here."""
        row.number_key = number_key(row.supplier_id, row.number, row.issue_year)
        self.session.add(row)
        self.session.flush()
        self.session.add(DocumentContentRow(document_id=row.id, raw=raw))
        self.session.flush()
        return row

    def add_received(
        self,
        values: dict[str, Any],
        raw: bytes,
        *,
        actor: str,
        next_action: str,
        not_duplicate_of: Collection[str] = (),
        commit: bool = False,
    ) -> str | None:
        """Add an accepted document (``values``: its columns, ``id`` and ``status`` among them), its
        bytes, its first transition and its first message (``next_action``). A document with a
        number (BT-1) and an issue year is first serialised with the others of its supplier, number
        and year (``lock_number``), then marked a suspected duplicate of the earliest of them whose
        status is not in ``not_duplicate_of`` (``first_with_number``); its transition says so.
        Returns that earlier document's id, or None. A unique-constraint race surfaces here as
        IntegrityError.

        ``commit``: the caller's unit of work holds nothing else, so the document may be committed
        here (the caller still commits the unit of work). On PostgreSQL the lock and one statement
        (the lookup and the four inserts as data-modifying CTEs) then go in one round trip, in
        the pipeline's implicit transaction; without ``commit``, or when the unit of work has
        begun a transaction already, they join that transaction."""
        key = number_key(values["supplier_id"], values.get("number"), values.get("issue_year"))
        values = {**values, "number_key": key}
        lock_key = _number_lock_key(key) if key else None
        at = values["received_at"]
        if self.session.get_bind().dialect.name != "postgresql":
            earlier = None
            if key is not None:
                self.lock_number(key)
                first = self.first_with_number(key, exclude_status=not_duplicate_of)
                earlier = first.id if first is not None else None
            connection = self.session.connection()
            connection.execute(insert(_table(DocumentRow)), [{**values, "suspected_duplicate_of": earlier}])
            connection.execute(insert(_table(DocumentContentRow)), [{"document_id": values["id"], "raw": raw}])
            detail = f"suspected duplicate of {earlier}" if earlier else None
            self.add_transition(
                values["id"], from_status=None, to_status=values["status"], actor=actor, at=at, detail=detail
            )
            OutboxRepository(self.session).add(values["id"], next_action, now=at)
            return earlier
        names = tuple(sorted(values))
        statement = _pg_received_statement(names)
        parameters = {f"v_{name}": _pg_value(values[name]) for name in names}
        parameters.update(raw=raw, actor=actor, action=next_action, skip=list(not_duplicate_of))
        rows = _pg_pipeline(self.session, [(_PG_LOCK, (lock_key,))] if lock_key else [], statement, parameters, commit)
        return rows[0][0] if rows else None

    def get(self, document_id: str, *, for_update: bool = False) -> DocumentRow | None:
        if for_update:
            return self.session.scalars(
                select(DocumentRow)
                .where(DocumentRow.id == document_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
        return self.session.get(DocumentRow, document_id)

    def refresh(self, row: DocumentRow) -> None:
        self.session.refresh(row)

    def by_sha256(self, supplier_id: str, sha256: str) -> DocumentRow | None:
        return self.session.scalars(
            select(DocumentRow).where(DocumentRow.sha256 == sha256, _on_the_row(DocumentRow.supplier_id == supplier_id))
        ).first()

    def by_idempotency_key(self, supplier_id: str, key: str) -> DocumentRow | None:
        return self.session.scalars(
            select(DocumentRow).where(
                DocumentRow.idempotency_key == key, _on_the_row(DocumentRow.supplier_id == supplier_id)
            )
        ).first()

    def first_with_number(
        self, key: str, *, exclude_status: Collection[str] = (), other_than: str | None = None
    ) -> DocumentRow | None:
        """The earliest document with this ``number_key`` (the supplier's BT-1 number in an issue
        year), leaving out those in ``exclude_status`` and the document ``other_than``."""
        query = select(DocumentRow).where(DocumentRow.number_key == key)
        if exclude_status:
            query = query.where(DocumentRow.status.not_in(list(exclude_status)))
        if other_than is not None:
            query = query.where(DocumentRow.id != other_than)
        return self.session.scalars(query.order_by(DocumentRow.received_at, DocumentRow.id)).first()

    def earlier_with_number(self, row: DocumentRow, *, not_duplicate_of: Collection[str] = ()) -> str | None:
        """The id of the document ``row`` would be a suspected duplicate of on entering the
        pipeline now: the earliest other document of its supplier, number and year whose status
        is not in ``not_duplicate_of``, or None. Takes the number's lock first (``lock_number``),
        as ``add_received`` does, so that documents entering together still see each other."""
        if row.number_key is None:
            return None
        self.lock_number(row.number_key)
        first = self.first_with_number(row.number_key, exclude_status=not_duplicate_of, other_than=row.id)
        return first.id if first is not None else None

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
    ) -> Sequence[DocumentRow]:
        query = select(DocumentRow).where(DocumentRow.supplier_id == supplier_id)
        if status is not None:
            query = query.where(DocumentRow.status == status)
        if since is not None:
            query = query.where(DocumentRow.received_at >= since)
        query = query.order_by(DocumentRow.received_at.desc(), DocumentRow.id.desc()).limit(limit)
        return self.session.scalars(query).all()

    def compare_and_set(
        self,
        document_id: str,
        *,
        expected: Collection[str],
        values: dict[str, Any],
        lease_token: str | None = None,
        lease_free: bool = False,
    ) -> bool:
        """Update the document only if its status is one of ``expected`` and, when given, it holds
        ``lease_token`` (with ``lease_free``: no one holds it). Returns whether it did: the guard
        that makes stages idempotent and lets exactly one of several concurrent workers win."""
        documents = _table(DocumentRow)
        statement = update(documents).where(documents.c.id == document_id, _status_guard(expected)).values(**values)
        if lease_free:
            statement = statement.where(documents.c.lease_token.is_(None))
        elif lease_token is not None:
            statement = statement.where(documents.c.lease_token == lease_token)
        result = self.session.connection().execute(statement)  # Core: no ORM bookkeeping
        changed = bool(result.rowcount)
        if changed:
            self._expire(document_id)
        return changed

    def _expire(self, document_id: str) -> None:
        """A copy of the document already loaded in this session is stale after a Core update
        (looked up, not loaded)."""
        existing = self.session.identity_map.get(self.session.identity_key(DocumentRow, document_id))
        if existing is not None:
            self.session.expire(existing)

    def claim(self, document_id: str, *, expected: Collection[str], values: dict[str, Any]) -> Any:
        """Update the document only if its status is one of ``expected``, and return its columns as
        they are now (one ``UPDATE … RETURNING``: the guard and the read in one round trip; a row
        with the attributes of a DocumentRow, not an ORM object); None when the guard failed."""
        documents = _table(DocumentRow)
        statement = (
            update(documents)
            .where(documents.c.id == document_id, _status_guard(expected))
            .values(**values)
            .returning(*documents.c)
        )
        return self.session.connection().execute(statement).first()

    def claim_for_stage(
        self,
        document_id: str,
        *,
        waiting: str,
        working: str,
        token: str,
        expires: datetime,
        actor: str,
        at: datetime,
        with_raw: bool,
        commit: bool = False,
    ) -> tuple[Any, bytes | None] | None:
        """Move the document from ``waiting`` to ``working`` under the lease ``token`` (until
        ``expires``), record that transition, and return its columns as they are now (a row with
        the attributes of a DocumentRow) with its bytes when ``with_raw``; None when it was not
        waiting there. PostgreSQL: one statement (data-modifying CTE); elsewhere three.
        ``commit``: as for ``add_received`` (PostgreSQL: committed as it runs, when the unit of
        work has begun no transaction yet)."""
        values = {"status": working, "status_changed_at": at, "lease_token": token, "lease_expires_at": expires}
        if self.session.get_bind().dialect.name != "postgresql":
            row = self.claim(document_id, expected=[waiting], values=values)
            if row is None:
                return None
            self.add_steps(document_id, [(waiting, working, actor, None)], at=at)
            return row, self.raw(document_id) if with_raw else None
        rows = _pg_pipeline(
            self.session,
            [],
            _pg_claim_statement(with_raw),
            {"document_id": document_id, "waiting": waiting, "actor": actor, **_prefixed(values)},
            commit,
        )
        if not rows:
            return None
        row = _document_columns(rows[0])
        return row, rows[0][-1]

    def finish_stage(
        self,
        document_id: str,
        *,
        working: str,
        token: str | None,
        values: dict[str, Any],
        steps: Sequence[tuple[str | None, str, str, str | None]],
        at: datetime,
        findings: Sequence[dict[str, Any]] | None = None,
        next_action: str | None = None,
        commit: bool = False,
    ) -> bool:
        """Move the document from ``working`` (held under ``token``; None: whoever holds it) to the
        last state of ``steps`` ((from, to, actor, detail), recorded as transitions in order),
        free its lease, set ``values``, replace its findings with ``findings`` (None: leave them)
        and write an outbox row for ``next_action``. Returns False, writing nothing, when the
        guard fails (the claim was lost). PostgreSQL: one statement; elsewhere one per part.
        ``commit``: as for ``claim_for_stage``."""
        values = {
            "status": steps[-1][1],
            "status_changed_at": at,
            "lease_token": None,
            "lease_expires_at": None,
            **values,
        }
        if self.session.get_bind().dialect.name != "postgresql":
            if not self.compare_and_set(document_id, expected=[working], values=values, lease_token=token):
                return False
            self.add_steps(document_id, steps, at=at)
            if findings is not None:
                self.set_findings(document_id, findings)
            if next_action is not None:
                OutboxRepository(self.session).add(document_id, next_action, now=at)
            return True
        statement = _pg_finish_statement(
            tuple(sorted(values)), token is not None, findings is not None, next_action is not None
        )
        parameters: dict[str, Any] = {
            "document_id": document_id,
            "working": working,
            "at_": _pg_value(at),
            "steps": json.dumps(
                [
                    {"n": n, "from_status": f, "to_status": t, "actor": a, "detail": d}
                    for n, (f, t, a, d) in enumerate(steps)
                ]
            ),
            **_prefixed({name: _pg_value(value) for name, value in values.items()}),
        }
        if token is not None:
            parameters["token"] = token
        if findings is not None:
            parameters["findings"] = json.dumps([{**f, "position": n} for n, f in enumerate(findings)], default=str)
        if next_action is not None:
            parameters["action"] = next_action
        changed = bool(_pg_pipeline(self.session, [], statement, parameters, commit)[0][0])
        if changed:
            self._expire(document_id)
        return changed

    def stuck(
        self,
        *,
        idle_statuses: Collection[str],
        idle_before: datetime,
        working_statuses: Collection[str],
        now: datetime,
        limit: int = 500,
    ) -> Sequence[DocumentRow]:
        """Documents waiting in an idle state since before ``idle_before``, or held in a
        working state by a lease that has run out."""
        idle = DocumentRow.status.in_(list(idle_statuses)) & (DocumentRow.status_changed_at < idle_before)
        expired = DocumentRow.status.in_(list(working_statuses)) & (
            DocumentRow.lease_expires_at.is_(None) | (DocumentRow.lease_expires_at < now)
        )
        return self.session.scalars(
            select(DocumentRow).where(idle | expired).order_by(DocumentRow.status_changed_at).limit(limit)
        ).all()

    def oldest_status_change(self, statuses: Collection[str]) -> datetime | None:
        """When the document longest in one of ``statuses`` entered it."""
        return self.session.scalar(
            select(func.min(DocumentRow.status_changed_at)).where(DocumentRow.status.in_(list(statuses)))
        )

    def count_by_status(self) -> dict[str, int]:
        rows = self.session.execute(select(DocumentRow.status, func.count()).group_by(DocumentRow.status))
        return {status: int(count) for status, count in rows}

    # --- history and findings ------------------------------------------------------------------

    def add_transition(
        self,
        document_id: str,
        *,
        from_status: str | None,
        to_status: str,
        actor: str,
        at: datetime,
        detail: str | None = None,
    ) -> None:
        self.add_steps(document_id, [(from_status, to_status, actor, detail)], at=at)

    def add_steps(
        self, document_id: str, steps: Sequence[tuple[str | None, str, str, str | None]], *, at: datetime
    ) -> None:
        """Record ``steps`` ((from, to, actor, detail)), each with its own actor, in one statement."""
        if steps:
            self.session.connection().execute(
                insert(_table(TransitionRow)),
                [
                    {"document_id": document_id, "from_status": f, "to_status": t, "actor": a, "at": at, "detail": d}
                    for f, t, a, d in steps
                ],
            )

    def transitions(self, document_id: str) -> Sequence[TransitionRow]:
        return self.session.scalars(
            select(TransitionRow).where(TransitionRow.document_id == document_id).order_by(TransitionRow.id)
        ).all()

    def transitions_since(self, since: datetime, *, limit: int = 5_000) -> Sequence[Any]:
        """(document_id, from_status, to_status, at) of the newest ``limit`` transitions since
        ``since``, oldest first: plain rows, not ORM objects. Read backwards along the primary key
        and stopping at ``limit``, so a scrape costs the same however busy the last hour was."""
        rows = list(
            self.session.execute(
                select(TransitionRow.document_id, TransitionRow.from_status, TransitionRow.to_status, TransitionRow.at)
                .where(TransitionRow.at >= since)
                .order_by(TransitionRow.id.desc())
                .limit(limit)
            )
        )
        rows.reverse()
        return rows

    def replace_findings(self, document_id: str, findings: Iterable[FindingRow]) -> None:
        for old in self.findings(document_id):
            self.session.delete(old)
        self.session.flush()
        for position, row in enumerate(findings):
            row.document_id = document_id
            row.position = position
            self.session.add(row)

    def set_findings(self, document_id: str, findings: Sequence[dict[str, Any]]) -> None:
        """Replace the document's findings with ``findings`` (column values, in order) in at most
        two statements; for stages that hold the document and loaded none of its findings."""
        findings_table = _table(FindingRow)
        connection = self.session.connection()
        connection.execute(delete(findings_table).where(findings_table.c.document_id == document_id))
        if findings:
            connection.execute(
                insert(findings_table),
                [{**f, "document_id": document_id, "position": n} for n, f in enumerate(findings)],
            )

    def findings(self, document_id: str) -> Sequence[FindingRow]:
        return self.session.scalars(
            select(FindingRow).where(FindingRow.document_id == document_id).order_by(FindingRow.position)
        ).all()

    # --- the parsed document -------------------------------------------------------------------

    def add_parsed(self, document_id: str, invoice: Invoice, *, at: datetime) -> None:
        """Store ``invoice`` as the document's parsed form (``parsed_row``), in place of any
        stored before."""
        parsed = _table(ParsedDocumentRow)
        connection = self.session.connection()
        connection.execute(delete(parsed).where(parsed.c.document_id == document_id))
        connection.execute(insert(parsed), [parsed_row(document_id, invoice, at)])

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


def parsed_row(document_id: str, invoice: Invoice, at: datetime) -> dict[str, Any]:
    """The column values of the ``parsed_documents`` row that keeps ``invoice``, parsed from the
    document ``document_id`` at ``at`` (timezone-aware): ``data`` is ``invoice_to_dict(invoice)``,
    a dict of JSON types (SQLAlchemy's JSON type writes it; in SQL text, bind ``json.dumps`` of it
    and cast it to ``jsonb`` on PostgreSQL), ``format_version`` its ``FORMAT_VERSION``."""
    return {
        "document_id": document_id,
        "data": invoice_to_dict(invoice),
        "format_version": FORMAT_VERSION,
        "parsed_at": at,
    }


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
            rows = _pg_pipeline(self.session, _PG_PLAIN_INDEX_SCANS, _PG_TAKE_PENDING, parameters)
            return sorted((row[0], row[1], row[2]) for row in rows)
        taken = self.session.connection().execute(_take_pending_statement(), parameters)
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


# --- PostgreSQL: a stage's claim and finish in one statement each --------------------------------
#
# Data-modifying CTEs: the guarded UPDATE of the document and the rows that go with it
# (transitions, findings, outbox) in one round trip. The inserts select from the UPDATE's
# RETURNING, so when the guard fails they insert nothing. Statements are built once per shape and
# reused: no statement construction or cache-key work per call.


def _prefixed(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as the bind parameters the statements below name them (``v_<column>``)."""
    return {f"v_{name}": value for name, value in values.items()}


_PG_DIALECT = postgresql.dialect()


def _document_columns(row: Sequence[Any]) -> Any:
    """The leading columns of a driver row, in the order of the documents table, as an object
    with a DocumentRow's attributes and values (what the column types give back)."""
    values = {}
    for value, column_ in zip(row, _table(DocumentRow).c, strict=False):
        if value is not None and isinstance(column_.type, UTCDateTime | DecimalText):
            value = column_.type.process_result_value(value, _PG_DIALECT)
        values[column_.name] = value
    return types.SimpleNamespace(**values)


_CLAIM_VALUES = ("lease_expires_at", "lease_token", "status", "status_changed_at")


@functools.cache
def _pg_claim_statement(with_raw: bool) -> str:
    documents = _table(DocumentRow)
    transitions = _table(TransitionRow)
    contents = _table(DocumentContentRow)
    columns = ", ".join(c.name for c in documents.c)
    raw = f"(SELECT raw FROM {contents.name} WHERE document_id = claimed.id)" if with_raw else "NULL"
    return f"""
        WITH claimed AS (
            UPDATE {documents.name}
               SET status = %(v_status)s, status_changed_at = %(v_status_changed_at)s,
                   lease_token = %(v_lease_token)s, lease_expires_at = %(v_lease_expires_at)s
             WHERE id = %(document_id)s AND {_STATUS_GUARD_SQL.format("%(waiting)s")}
         RETURNING {columns}
        ), transition AS (
            INSERT INTO {transitions.name} (document_id, from_status, to_status, actor, at)
            SELECT id, %(waiting)s, status, %(actor)s, status_changed_at FROM claimed
        )
        SELECT {", ".join(f"claimed.{c.name}" for c in documents.c)}, {raw} AS raw FROM claimed
    """


@functools.cache
def _pg_finish_statement(
    value_names: tuple[str, ...], guard_token: bool, with_findings: bool, with_message: bool
) -> str:
    documents = _table(DocumentRow)
    transitions = _table(TransitionRow)
    findings = _table(FindingRow)
    outbox = _table(OutboxRow)
    assignments = ", ".join(f"{name} = %(v_{name})s" for name in value_names)
    guard = " AND lease_token = %(token)s" if guard_token else ""
    parts = [
        f"""finished AS (
            UPDATE {documents.name} SET {assignments}
             WHERE id = %(document_id)s AND {_STATUS_GUARD_SQL.format("%(working)s")}{guard}
         RETURNING id
        )""",
        f"""steps AS (
            INSERT INTO {transitions.name} (document_id, from_status, to_status, actor, at, detail)
            SELECT finished.id, s.from_status, s.to_status, s.actor, %(at_)s, s.detail
              FROM finished,
                   jsonb_to_recordset(CAST(%(steps)s AS jsonb))
                   AS s(n integer, from_status text, to_status text, actor text, detail text)
             ORDER BY s.n
        )""",
    ]
    if with_findings:
        names = [c.name for c in findings.c if c.name not in ("id", "document_id")]
        types_ = {c.name: ("integer" if c.name in ("position", "line") else "text") for c in findings.c}
        parts.append(f"old_findings AS (DELETE FROM {findings.name} WHERE document_id IN (SELECT id FROM finished))")
        parts.append(
            f"""new_findings AS (
            INSERT INTO {findings.name} (document_id, {", ".join(names)})
            SELECT finished.id, {", ".join(f"f.{n}" for n in names)}
              FROM finished,
                   jsonb_to_recordset(CAST(%(findings)s AS jsonb))
                   AS f({", ".join(f"{n} {types_[n]}" for n in names)})
             ORDER BY f.position
        )"""
        )
    if with_message:
        parts.append(
            f"""message AS (
            INSERT INTO {outbox.name} (document_id, action, created_at)
            SELECT id, %(action)s, %(at_)s FROM finished
        )"""
        )
    return "WITH " + ",\n".join(parts) + "\nSELECT count(*) FROM finished"


@functools.cache
def _take_pending_statement() -> Update:
    outbox = _table(OutboxRow)
    unsent = outbox.alias("unsent")
    pending = (
        select(unsent.c.id)
        .where(unsent.c.sent_at.is_(None))
        .order_by(unsent.c.id)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        update(outbox)
        .where(outbox.c.id.in_(pending.scalar_subquery()))
        .values(sent_at=bindparam("now", type_=outbox.c.sent_at.type))
        .returning(outbox.c.id, outbox.c.action, outbox.c.document_id)
    )


_PG_PLAIN_INDEX_SCANS = [("SET LOCAL enable_seqscan = off", ()), ("SET LOCAL enable_bitmapscan = off", ())]
_PG_TAKE_PENDING = f"""
    UPDATE {_table(OutboxRow).name} SET sent_at = %(now)s
     WHERE id = ANY(ARRAY(SELECT id FROM {_table(OutboxRow).name} WHERE sent_at IS NULL
                           ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
    RETURNING id, action, document_id
"""


# --- PostgreSQL: an accepted document in one round trip ------------------------------------------
#
# Intake's hot path goes to the driver: the advisory lock and one statement (lookup of an earlier
# document with the number, the document, its bytes, its transition and its message as
# data-modifying CTEs) are sent together in a psycopg pipeline. The lock must be a statement of
# its own: a statement's snapshot is taken when it starts, so only a lookup in a later statement
# sees a document committed by the transaction it waited for.

_PG_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


def _number_lock_key(key: str) -> str:
    return f"einvoice-number:{key}"


def _pg_value(value: Any) -> Any:
    """A column value as the driver takes it (what ``DecimalText`` and ``UTCDateTime`` do)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value


@functools.cache
def _pg_received_statement(names: tuple[str, ...]) -> str:
    documents = _table(DocumentRow)
    unknown = set(names) - set(documents.c.keys())
    if unknown:
        raise KeyError(f"not columns of {documents.name}: {sorted(unknown)}")
    earlier = f"""SELECT id FROM {documents.name}
             WHERE number_key = %(v_number_key)s AND status <> ALL(%(skip)s)
             ORDER BY received_at, id LIMIT 1"""
    return f"""
        WITH earlier AS ({earlier}
        ), new_document AS (
            INSERT INTO {documents.name} ({", ".join(names)}, suspected_duplicate_of)
            VALUES ({", ".join(f"%(v_{name})s" for name in names)}, (SELECT id FROM earlier))
        ), new_content AS (
            INSERT INTO {_table(DocumentContentRow).name} (document_id, raw) VALUES (%(v_id)s, %(raw)b)
        ), new_transition AS (
            INSERT INTO {_table(TransitionRow).name} (document_id, from_status, to_status, actor, at, detail)
            VALUES (%(v_id)s, NULL, %(v_status)s, %(actor)s, %(v_received_at)s,
                    'suspected duplicate of ' || (SELECT id FROM earlier))
        )
        INSERT INTO {_table(OutboxRow).name} (document_id, action, created_at)
        VALUES (%(v_id)s, %(action)s, %(v_received_at)s)
        RETURNING (SELECT id FROM earlier)
    """


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
