"""One write path for the pipeline: a change of a document described once, as data, and run by
one of two executors.

Every pipeline write is a guarded change of one document together with the rows that go with
it, all written or none: a stage's claim (``received`` to ``validating`` under a lease, its
transition, its bytes read back) and finish (the outcome, its transitions with their actors,
findings, the next message, extra rows such as the parsed document), the sweeper taking back an
abandoned document, a person sending a dead one on. ``DocumentChange`` describes such a write;
``NewDocument`` describes intake's insert (with its duplicate lookup).

The statements are built once per *shape* (which columns change, which parts are present) from
the table metadata with SQLAlchemy Core, and cached:

- ``run_sequentially`` runs the parts one after another on the session's connection (SQLite, or
  any database): the guarded UPDATE first, the rest only when it changed the row;
- ``run_in_one_statement`` runs them on PostgreSQL as one statement of data-modifying CTEs, the
  inserts selecting from the UPDATE's ``RETURNING`` (so a failed guard inserts nothing), sent
  through the driver in one round trip (``pipeline.run``), compiled once per shape so that
  psycopg prepares it after a few executions.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BindParameter,
    Connection,
    Integer,
    LargeBinary,
    Table,
    Text,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.elements import ColumnElement

from einvoice.store.tables import Base, DocumentContentRow, DocumentRow, FindingRow, OutboxRow, TransitionRow

#: Tables whose rows of a document a change replaces rather than adds to: a document's reasons
#: are those of its latest match result. Each has a serial key, so that the PostgreSQL statement
#: may delete the old rows and insert the new ones together.
REPLACED = frozenset({"document_reasons"})
DOCUMENTS: Table = DocumentRow.__table__  # type: ignore[assignment]
CONTENTS: Table = DocumentContentRow.__table__  # type: ignore[assignment]
TRANSITIONS: Table = TransitionRow.__table__  # type: ignore[assignment]
FINDINGS: Table = FindingRow.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
PG_DIALECT: Dialect = postgresql.psycopg.dialect()


class Anyone:
    """The lease guard that lets any holder (or none) through."""

    def __repr__(self) -> str:
        return "ANYONE"


ANYONE = Anyone()


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded change of state: who or what made it, and why."""

    from_status: str | None
    to_status: str
    actor: str
    detail: str | None = None


Read = Literal["row", "row+raw"] | None


@dataclass(frozen=True)
class DocumentChange:
    """A guarded change of one document and the rows that go with it.

    Written only if the document is in one of ``expected`` states and, unless ``holder`` is
    ``ANYONE``, its lease is held by ``holder`` (None: by no one). Then: the columns ``values``
    are set, ``steps`` recorded as transitions (all at ``at``), its findings replaced by
    ``findings`` (column values in order; None leaves them), an outbox row written for
    ``message``, and ``rows`` inserted (extra rows by table name, ``document_id`` filled in); for a
    table of ``REPLACED``, the rows given (even none) take the place of the document's rows there.
    ``read`` returns the document's columns as they are afterwards (and its bytes)."""

    document_id: str
    expected: tuple[str, ...]
    values: Mapping[str, Any]
    at: datetime
    steps: tuple[Step, ...] = ()
    holder: str | Anyone | None = ANYONE
    findings: Sequence[Mapping[str, Any]] | None = None
    message: str | None = None
    rows: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    read: Read = None

    @property
    def shape(self) -> _Shape:
        return _Shape(
            values=tuple(sorted(self.values)),
            expected=len(self.expected),
            holder="any" if self.holder is ANYONE else ("free" if self.holder is None else "token"),
            findings=self.findings is not None,
            message=self.message is not None,
            rows=tuple(
                sorted(
                    (table, _columns(table) if table in REPLACED else tuple(sorted(set(rows[0]) - {"document_id"})))
                    for table, rows in self.rows.items()
                    if rows or table in REPLACED
                )
            ),
            read=self.read,
        )


@dataclass(frozen=True)
class NewDocument:
    """An accepted document: its row (``values``, every column intake sets), its bytes, its first
    transition (by ``actor``), its first message (None: none), findings and extra ``rows``. With a
    ``duplicate_key`` (the supplier's number and year, ``tables.number_key``) it is marked a
    suspected duplicate of the earliest document with that key whose status is not in
    ``not_duplicate_of``; the caller holds the number's lock."""

    values: Mapping[str, Any]
    raw: bytes
    actor: str
    message: str | None
    not_duplicate_of: tuple[str, ...] = ()
    findings: tuple[Mapping[str, Any], ...] = ()
    #: Extra rows by table name (``document_id`` filled in), such as the supplier's ``AB`` response.
    rows: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    @property
    def duplicate_key(self) -> str | None:
        key: str | None = self.values.get("number_key")
        return key

    @property
    def rows_shape(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(
            sorted((table, tuple(sorted(set(rows[0]) - {"document_id"}))) for table, rows in self.rows.items() if rows)
        )


@dataclass(frozen=True)
class Written:
    """What a change did: whether the guard let it through, and what ``read`` asked for."""

    changed: bool
    row: Any = None  # an object with a DocumentRow's attributes
    raw: bytes | None = None


@dataclass(frozen=True)
class _Shape:
    values: tuple[str, ...]
    expected: int
    holder: str
    findings: bool
    message: bool
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    read: Read


# --- the parts, built once per shape --------------------------------------------------------------


def _guarded_update(shape: _Shape) -> Any:
    """UPDATE documents SET <values> WHERE id = :document_id AND status IN (:expected_n…) [AND lease].

    The state is checked on the row the primary key found, never used to pick an index
    (``(…) IS TRUE``; see ``repositories``)."""
    states = DOCUMENTS.c.status.in_([bindparam(f"expected_{n}", type_=Text()) for n in range(shape.expected)])
    conditions: list[ColumnElement[bool]] = [DOCUMENTS.c.id == bindparam("document_id"), states.is_(true())]
    if shape.holder == "token":
        conditions.append(DOCUMENTS.c.lease_token == bindparam("holder"))
    elif shape.holder == "free":
        conditions.append(DOCUMENTS.c.lease_token.is_(None))
    values = {name: bindparam(f"v_{name}", type_=DOCUMENTS.c[name].type) for name in shape.values}
    return update(DOCUMENTS).where(*conditions).values(values)


def _table(name: str) -> Table:
    table: Table = Base.metadata.tables[name]
    return table


@functools.cache
def _columns(table_name: str) -> tuple[str, ...]:
    """The columns a replaced table's rows carry (all but the serial key and the document)."""
    return tuple(sorted(c.name for c in _table(table_name).c if c.name not in ("id", "document_id")))


@functools.cache
def _delete_rows(table_name: str) -> Any:
    table = _table(table_name)
    return delete(table).where(table.c.document_id == bindparam("document_id"))


@functools.cache
def _sequential_update(shape: _Shape) -> Any:
    statement = _guarded_update(shape)
    return statement.returning(*DOCUMENTS.c) if shape.read else statement


@functools.cache
def _insert(table_name: str) -> Any:
    return insert(_table(table_name))


_DELETE_FINDINGS = delete(FINDINGS).where(FINDINGS.c.document_id == bindparam("document_id"))
_RAW = select(CONTENTS.c.raw).where(CONTENTS.c.document_id == bindparam("document_id"))


def _parameters(change: DocumentChange) -> dict[str, Any]:
    parameters: dict[str, Any] = {"document_id": change.document_id}
    parameters.update({f"expected_{n}": state for n, state in enumerate(change.expected)})
    parameters.update({f"v_{name}": value for name, value in change.values.items()})
    if isinstance(change.holder, str):
        parameters["holder"] = change.holder
    return parameters


def _step_rows(change: DocumentChange) -> list[dict[str, Any]]:
    return [
        {
            "document_id": change.document_id,
            "from_status": s.from_status,
            "to_status": s.to_status,
            "actor": s.actor,
            "at": change.at,
            "detail": s.detail,
        }
        for s in change.steps
    ]


def _finding_rows(document_id: str, findings: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The findings' rows of the document, numbered in order."""
    return [{**f, "document_id": document_id, "position": n} for n, f in enumerate(findings or ())]


def run_sequentially(connection: Connection, change: DocumentChange) -> Written:
    """Run ``change`` part by part on ``connection`` (in its transaction)."""
    result = connection.execute(_sequential_update(change.shape), _parameters(change))
    row = result.first() if change.read else None
    if (row is None) if change.read else not result.rowcount:
        return Written(False)
    if change.steps:
        connection.execute(_insert(TRANSITIONS.name), _step_rows(change))
    if change.findings is not None:
        connection.execute(_DELETE_FINDINGS, {"document_id": change.document_id})
        if change.findings:
            connection.execute(_insert(FINDINGS.name), _finding_rows(change.document_id, change.findings))
    if change.message is not None:
        connection.execute(
            _insert(OUTBOX.name),
            [{"document_id": change.document_id, "action": change.message, "created_at": change.at}],
        )
    for table_name, rows in change.rows.items():
        if table_name in REPLACED:
            connection.execute(_delete_rows(table_name), {"document_id": change.document_id})
        if rows:
            connection.execute(_insert(table_name), [{**r, "document_id": change.document_id} for r in rows])
    raw = connection.execute(_RAW, {"document_id": change.document_id}).scalar() if change.read == "row+raw" else None
    return Written(True, row, raw)


# --- PostgreSQL: the same parts as one statement --------------------------------------------------


def _recordset(name: str, table: Table, columns: Sequence[str]) -> Any:
    """``jsonb_to_recordset(:name) AS <name>(col type, …)``: rows passed as one JSON parameter, so
    the statement's text is the same however many rows there are."""
    typed = [column(c, table.c[c].type if c in table.c else Integer()) for c in columns]
    source = func.jsonb_to_recordset(cast(bindparam(name), postgresql.JSONB))
    return source.table_valued(*typed).render_derived(name=f"{name}_rs", with_types=True)


_STEP_COLUMNS = ("n", "from_status", "to_status", "actor", "detail")


@dataclass(frozen=True)
class Compiled:
    sql: str
    processors: Mapping[str, Any]  # bind name -> the column type's bind processor (or None)
    literals: Mapping[str, Any]  # the values the statement itself binds (a LIMIT, a NULL, a text)

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The driver's parameters: the statement's own values and ``values``, each through its
        column type's bind processing."""
        out = {}
        for name, value in {**self.literals, **values}.items():
            process = self.processors.get(name)
            out[name] = process(value) if process is not None and value is not None else value
        return out


def compile_postgres(statement: Any) -> Compiled:
    compiled = statement.compile(dialect=PG_DIALECT)
    binds: Mapping[str, BindParameter[Any]] = compiled.binds
    return Compiled(
        compiled.string,
        {name: bp.type.bind_processor(PG_DIALECT) for name, bp in binds.items()},
        {name: bp.effective_value for name, bp in binds.items() if not bp.required},
    )


@functools.cache
def _one_statement(shape: _Shape) -> Compiled:
    changed = _guarded_update(shape)
    changed = changed.returning(*DOCUMENTS.c) if shape.read else changed.returning(DOCUMENTS.c.id)
    changed = changed.cte("changed")
    at = bindparam("at", type_=TRANSITIONS.c.at.type)
    parts = []
    steps = _recordset("steps", TRANSITIONS, _STEP_COLUMNS)
    parts.append(
        insert(TRANSITIONS)
        .from_select(
            ["document_id", "from_status", "to_status", "actor", "at", "detail"],
            select(changed.c.id, steps.c.from_status, steps.c.to_status, steps.c.actor, at, steps.c.detail)
            .select_from(changed)
            .join(steps, true())
            .order_by(steps.c.n),
        )
        .cte("new_steps")
    )
    if shape.findings:
        names = [c.name for c in FINDINGS.c if c.name not in ("id", "document_id")]
        found = _recordset("findings", FINDINGS, names)
        parts.append(delete(FINDINGS).where(FINDINGS.c.document_id.in_(select(changed.c.id))).cte("old_findings"))
        parts.append(
            insert(FINDINGS)
            .from_select(
                ["document_id", *names],
                select(changed.c.id, *(found.c[n] for n in names))
                .select_from(changed)
                .join(found, true())
                .order_by(found.c.position),
            )
            .cte("new_findings")
        )
    if shape.message:
        created = bindparam("at", type_=OUTBOX.c.created_at.type)
        parts.append(
            insert(OUTBOX)
            .from_select(["document_id", "action", "created_at"], select(changed.c.id, bindparam("action"), created))
            .cte("message")
        )
    for table_name, columns in shape.rows:
        table = _table(table_name)
        if table_name in REPLACED:
            parts.append(delete(table).where(table.c.document_id.in_(select(changed.c.id))).cte(f"old_{table_name}"))
        extra = _recordset(f"rows_{table_name}", table, columns)
        parts.append(
            insert(table)
            .from_select(
                ["document_id", *columns],
                select(changed.c.id, *(extra.c[c] for c in columns)).select_from(changed).join(extra, true()),
            )
            .cte(f"new_{table_name}")
        )
    if shape.read:
        raw = (
            select(CONTENTS.c.raw).where(CONTENTS.c.document_id == changed.c.id).scalar_subquery()
            if shape.read == "row+raw"
            else literal(None, LargeBinary())
        )
        final: Any = select(*(changed.c[c.name] for c in DOCUMENTS.c), raw.label("raw"))
    else:
        final = select(func.count()).select_from(changed)
    return compile_postgres(final.add_cte(*parts))


#: orjson's options for the JSON the statements read: dict keys of any type as text, and dates and
#: times left to ``str`` as ``json.dumps(default=str)`` writes them (``2026-03-02 10:00:00+00:00``).
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def json_text(value: Any) -> str:
    """``value`` as JSON text for a statement's parameter; what JSON does not know (a Decimal, a
    date) as its ``str``. orjson: the finish of every stage writes its rows as JSON, and the
    standard library's encoder took ten times as long."""
    return orjson.dumps(value, default=str, option=_JSON_OPTIONS).decode()


@functools.cache
def _bind_processors(table: Table) -> dict[str, Any]:
    """Each column's bind processing on PostgreSQL (None for JSON columns: embedded as they are)."""
    return {c.name: None if isinstance(c.type, sqltypes.JSON) else c.type.bind_processor(PG_DIALECT) for c in table.c}


def _json_rows(table: Table, rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as the JSON ``jsonb_to_recordset`` reads (``document_id`` left out: the statement
    takes it from the changed document), each value first through its column type, except JSON
    columns, whose values are embedded as they are."""
    processors = _bind_processors(table)
    out = []
    for row in rows:
        converted = {}
        for name, value in row.items():
            if name == "document_id":
                continue
            process = processors.get(name)
            converted[name] = process(value) if process is not None and value is not None else value
        out.append(converted)
    return json_text(out)


def one_statement(change: DocumentChange) -> tuple[str, dict[str, Any]]:
    """The PostgreSQL statement for ``change`` and its driver parameters."""
    compiled = _one_statement(change.shape)
    parameters = _parameters(change) | {"at": change.at}
    parameters["steps"] = json_text(
        [
            {"n": n, "from_status": s.from_status, "to_status": s.to_status, "actor": s.actor, "detail": s.detail}
            for n, s in enumerate(change.steps)
        ]
    )
    if change.findings is not None:
        parameters["findings"] = _json_rows(FINDINGS, _finding_rows(change.document_id, change.findings))
    if change.message is not None:
        parameters["action"] = change.message
    for table_name, rows in change.rows.items():
        if rows or table_name in REPLACED:
            parameters[f"rows_{table_name}"] = _json_rows(_table(table_name), rows)
    return compiled.sql, compiled.parameters(parameters)


def written_from(change: DocumentChange, rows: Sequence[Sequence[Any]]) -> Written:
    """What ``one_statement``'s result rows say."""
    if not change.read:
        return Written(bool(rows and rows[0][0]))
    if not rows:
        return Written(False)
    return Written(True, document_columns(rows[0]), rows[0][-1] if change.read == "row+raw" else None)


def document_columns(row: Sequence[Any]) -> Any:
    """The leading columns of a driver row, in the order of the documents table, as an object
    with a DocumentRow's attributes (``table_row``)."""
    return table_row(DOCUMENTS, row)


def table_row(table: Table, row: Sequence[Any]) -> Any:
    """The leading columns of a driver row, in the order of ``table``'s columns, as an object with
    their names, each value through its column type's result processing on PostgreSQL (a
    DecimalText's text as a Decimal, a UTCDateTime in UTC)."""
    return types.SimpleNamespace(
        **{
            name: process(value) if process is not None and value is not None else value
            for (name, process), value in zip(_result_processors(table), row, strict=False)
        }
    )


@functools.cache
def _result_processors(table: Table) -> tuple[tuple[str, Any], ...]:
    return tuple((c.name, c.type.dialect_impl(PG_DIALECT).result_processor(PG_DIALECT, None)) for c in table.c)


# --- intake's insert -------------------------------------------------------------------------------


def _earlier(skip: int) -> Any:
    """The earliest document with the new one's number key whose state is not one of ``skip``."""
    query = select(DOCUMENTS.c.id).where(DOCUMENTS.c.number_key == bindparam("v_number_key"))
    if skip:
        query = query.where(DOCUMENTS.c.status.not_in([bindparam(f"skip_{n}", type_=Text()) for n in range(skip)]))
    return query.order_by(DOCUMENTS.c.received_at, DOCUMENTS.c.id).limit(1)


@functools.cache
def earlier_with_key(skip: int) -> Any:
    return _earlier(skip)


def new_document_parameters(new: NewDocument) -> dict[str, Any]:
    parameters = {f"v_{name}": value for name, value in new.values.items()}
    parameters.update({f"skip_{n}": state for n, state in enumerate(new.not_duplicate_of)})
    parameters.update(raw=new.raw, actor=new.actor, action=new.message)
    for table_name, rows in new.rows.items():
        if rows:
            parameters[f"rows_{table_name}"] = _json_rows(_table(table_name), rows)
    return parameters


@functools.cache
def _new_document_statement(
    names: tuple[str, ...], skip: int, rows: tuple[tuple[str, tuple[str, ...]], ...] = ()
) -> Compiled:
    unknown = set(names) - set(DOCUMENTS.c.keys())
    if unknown:
        raise KeyError(f"not columns of {DOCUMENTS.name}: {sorted(unknown)}")
    earlier = _earlier(skip).cte("earlier")
    earlier_id = select(earlier.c.id).scalar_subquery()
    value = {name: bindparam(f"v_{name}", type_=DOCUMENTS.c[name].type) for name in names}
    document = insert(DOCUMENTS).values({**value, "suspected_duplicate_of": earlier_id}).cte("new_document")
    content = (
        insert(CONTENTS).values(document_id=value["id"], raw=bindparam("raw", type_=LargeBinary())).cte("new_content")
    )
    transition = (
        insert(TRANSITIONS)
        .values(
            document_id=value["id"],
            from_status=None,
            to_status=value["status"],
            actor=bindparam("actor"),
            at=value["received_at"],
            detail=literal("suspected duplicate of ") + earlier_id,
        )
        .cte("new_transition")
    )
    extra = []
    for table_name, columns in rows:
        table = _table(table_name)
        source = _recordset(f"rows_{table_name}", table, columns)
        extra.append(
            insert(table)
            .from_select(["document_id", *columns], select(value["id"], *(source.c[c] for c in columns)))
            .cte(f"new_{table_name}")
        )
    message = (
        insert(OUTBOX)
        .values(document_id=value["id"], action=bindparam("action"), created_at=value["received_at"])
        .returning(earlier_id)
        .add_cte(earlier, document, content, transition, *extra)
    )
    return compile_postgres(message)


def new_document_statement(new: NewDocument) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: the earlier document's lookup, the document, its bytes, its transition and its
    message in one statement, returning the earlier document's id (or NULL)."""
    compiled = _new_document_statement(tuple(sorted(new.values)), len(new.not_duplicate_of), new.rows_shape)
    return compiled.sql, compiled.parameters(new_document_parameters(new))


def insert_new_document(
    connection: Connection, new: NewDocument, earlier: str | None, *, detail: str | None = None
) -> None:
    """Run intake's insert part by part (SQLite, or any database); ``earlier``: the document it
    is a suspected duplicate of (looked up by the caller under the number's lock); ``detail``: the
    first transition's, when not that."""
    values = dict(new.values)
    document_id, at = values["id"], values["received_at"]
    connection.execute(_insert(DOCUMENTS.name), [{**values, "suspected_duplicate_of": earlier}])
    connection.execute(_insert(CONTENTS.name), [{"document_id": document_id, "raw": new.raw}])
    first = {"document_id": document_id, "from_status": None, "to_status": values["status"], "actor": new.actor}
    detail = detail or (f"suspected duplicate of {earlier}" if earlier else None)
    connection.execute(_insert(TRANSITIONS.name), [{**first, "at": at, "detail": detail}])
    if new.findings:
        connection.execute(_insert(FINDINGS.name), _finding_rows(document_id, new.findings))
    if new.message is not None:
        connection.execute(
            _insert(OUTBOX.name), [{"document_id": document_id, "action": new.message, "created_at": at}]
        )
    for table_name, rows in new.rows.items():
        if rows:
            connection.execute(_insert(table_name), [{**r, "document_id": document_id} for r in rows])
