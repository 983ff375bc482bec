"""The store on PostgreSQL only: lost connections, one round trip per intake, claim and finish,
plans that read a document by its key whatever the backlog, the relay's plain index scans.
(``test_store.py`` runs the store's tests on both databases.)"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from einvoice import messaging
from einvoice.errors import TransientError
from einvoice.services import InstitutionView, SupplierView
from einvoice.services.intake import IdempotencyConflictError, SubmitOutcome, submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork, make_engine, statistics
from einvoice.store.ports import DocumentRecord, EarlierQuery, SupplierRecord, record_of
from einvoice.store.repositories import _PG_GENERIC_PLAN, _PG_PLAN_AS_CONFIGURED, _PLANNER_SETTINGS, pg_round_trip
from einvoice.store.statistics import analyze_stale
from einvoice.store.tables import ApprovalRuleRow, Base, DocumentRow, SupplierRow
from einvoice.store.writes import DocumentChange, Step
from tests.integration.databases import fresh_postgres_database, record_round_trips, terminate_other_backends
from tests.integration.test_store import submit_many
from tests.unit.services import documents

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """PostgreSQL only, in this module."""
    with fresh_postgres_database(postgres_url) as url:
        yield url


def test_a_lost_connection_during_intake_answers_transient_and_the_next_submission_succeeds(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    def submit(number: str) -> SubmitOutcome:
        return submit_document(
            uow_factory, supplier=supplier, raw=documents.invoice(number), idempotency_key=None, settings=Settings()
        )

    submit("LOST-0")  # the pool now holds a connection, used a moment ago: no ping before the next use
    terminate_other_backends(database_url)
    with pytest.raises(TransientError):
        submit("LOST-1")
    assert submit("LOST-1").created
    with uow_factory() as uow:
        assert len(uow.documents.list_for_supplier(supplier.id)) == 2


def test_intake_of_a_new_document_is_one_round_trip(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
) -> None:
    def submit(number: str) -> SubmitOutcome:
        return submit_document(
            uow_factory, supplier=supplier, raw=documents.invoice(number), idempotency_key=None, settings=Settings()
        )

    submit("RT-0")  # institutions cached
    sent = record_round_trips(monkeypatch)
    pipelines = []
    pipeline = psycopg.Connection.pipeline
    monkeypatch.setattr(psycopg.Connection, "pipeline", lambda self: pipelines.append(1) or pipeline(self))
    assert submit("RT-1").created
    # The lock and the statement, sent together, committed at the pipeline's sync: no BEGIN or
    # COMMIT of their own, nothing else.
    assert sent == [("SELECT", True), ("WITH", True)]
    assert len(pipelines) == 1


def _plan_nodes(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(node type, relation, index) of every node of a plan."""
    nodes = [(plan["Node Type"], plan.get("Relation Name", ""), plan.get("Index Name", ""))]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def _document_indexes(plan: dict[str, Any]) -> list[str]:
    """How a plan reads the documents table: the index of each scan of it ('Seq Scan' for none)."""
    return [
        "Seq Scan" if index == "" else index
        for node, relation, index in _plan_nodes(plan)
        if (relation == "documents" and node == "Seq Scan")
        or index.startswith(("pk_documents", "ix_documents", "uq_documents"))
    ]


def _record_statements(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """From now on, every (statement, parameters) a psycopg cursor executes, in order."""
    sent: list[tuple[str, Any]] = []
    execute = psycopg.Cursor.execute

    def recording_execute(self: psycopg.Cursor[Any], query: Any, params: Any = None, **kwargs: Any) -> Any:
        sent.append((str(query), params))
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording_execute)
    return sent


@pytest.mark.parametrize("statistics", [False, True], ids=["no statistics", "analyzed"])
def test_a_document_s_statements_read_it_by_key_whatever_the_backlog(
    database_url: str,
    uow_factory: Callable[[], UnitOfWork],
    supplier: SupplierView,
    monkeypatch: pytest.MonkeyPatch,
    statistics: bool,
) -> None:
    # A backlog of one supplier's documents waiting for validation, some already through.
    ids = submit_many(uow_factory, supplier, "BACKLOG", 120)
    now = datetime.now(UTC)
    for document_id in ids[:40]:
        with uow_factory() as uow:
            assert uow.documents.compare_and_set(
                document_id, expected=["received"], values={"status": "approved"}, at=now
            )
            uow.commit()
    admin = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    if statistics:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("ANALYZE")
    sent = _record_statements(monkeypatch)

    def submit(raw: bytes, key: str | None = None) -> SubmitOutcome:
        return submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=key, settings=Settings())

    assert submit(documents.invoice("BACKLOG-7", note="again"), "k").document.suspected_duplicate_of == ids[7]
    assert not submit(documents.invoice("BACKLOG-8")).created  # a repeat: looked up by its sha256
    with pytest.raises(IdempotencyConflictError):  # other bytes under a key used: looked up by the key
        submit(documents.invoice("BACKLOG-9", note="other"), "k")
    target = ids[-1]
    with uow_factory() as uow:
        lease = {"lease_token": "t", "lease_expires_at": now + timedelta(minutes=5)}
        claim = DocumentChange(
            target,
            ("received",),
            {"status": "validating", **lease},
            now,
            steps=(Step("received", "validating", "worker:validate"),),
            read="row+raw",
        )
        assert uow.documents.write(claim).changed
        finish = DocumentChange(
            target,
            ("validating",),
            {"status": "validated", "lease_token": None},
            now,
            steps=(Step("validating", "validated", "worker:validate"),),
            holder="t",
            findings=[],
            message="match",
        )
        assert uow.documents.write(finish).changed
        assert uow.documents.compare_and_set(target, expected=["validated"], values={"status": "matching"}, at=now)
        uow.commit()
    monkeypatch.undo()

    plans = {}
    with psycopg.connect(admin) as connection:
        for query, params in sent:
            if "documents" in query and query.split()[0] in ("SELECT", "WITH", "UPDATE"):
                row = connection.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
                assert row is not None
                plans[query] = _document_indexes(row[0][0]["Plan"])
    # intake, the repeats' lookups, claim, finish, compare-and-set
    assert len(plans) >= 6, list(plans)
    by_key = {
        "pk_documents",
        "ix_documents_number_key",
        "uq_documents_sha256_supplier_id",
        "uq_documents_idempotency_key_supplier_id",
    }
    for statement, indexes in plans.items():
        assert indexes, statement
        assert set(indexes) <= by_key, (statement, indexes)


def _history_read(
    database_url: str,
    uow_factory: Callable[[], UnitOfWork],
    supplier: SupplierView,
    monkeypatch: pytest.MonkeyPatch,
    *,
    analyzed: bool = False,
) -> tuple[str, list[tuple[str, Any]], list[str | None]]:
    """A fresh database analyzed early (autovacuum behind): its statistics say a few documents,
    the table holds hundreds, all of one supplier (``analyzed``: the statistics taken again).
    Matching's history read for the last of them: the server's URL, the statements sent, and
    the planner's settings after it in the same transaction."""
    submit_many(uow_factory, supplier, "EARLY", 20)
    admin = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("ANALYZE")
    ids = submit_many(uow_factory, supplier, "LATER", 300)
    if analyzed:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("ANALYZE")
    with uow_factory() as uow:
        last = uow.documents.get(ids[-1])
        assert last is not None
        query = EarlierQuery(
            supplier_id=supplier.id,
            before=(last.received_at, last.id),
            numbers=frozenset({"LATER-299"}),
            issued_from=date(2026, 1, 1),
            issued_to=date(2026, 12, 31),
            amount=Decimal("125.00"),
            institution_id=last.institution_id,
            last=30,
            holdings=False,
        )
        sent = _record_statements(monkeypatch)
        assert len(uow.documents.earlier_of_supplier(query)) == 30
        monkeypatch.undo()
        connection = uow.session.connection()
        settings = [connection.exec_driver_sql(f"SHOW {name}").scalar() for name in _PLANNER_SETTINGS]
    return admin, sent, settings


def test_matching_s_history_reads_documents_by_key_when_the_statistics_are_older_than_the_table(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The history's statement must read the documents its parts found by key: as a plain join,
    # the planner scanned the whole table for every invoice matched.
    admin, sent, _ = _history_read(database_url, uow_factory, supplier, monkeypatch)
    (history,) = [(sql, params) for sql, params in sent if "wanted" in sql]
    with psycopg.connect(admin) as connection:
        row = connection.execute(f"EXPLAIN (FORMAT JSON) {history[0]}", history[1]).fetchone()
        assert row is not None
    assert "Seq Scan" not in _document_indexes(row[0][0]["Plan"])


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _generic_plan(connection: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The plan PostgreSQL makes for ``sql`` (psycopg's ``%(name)s`` placeholders) for any values,
    as for a prepared statement run with ``plan_cache_mode = force_generic_plan``."""
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    connection.execute(f"PREPARE generic AS {_PLACEHOLDER.sub(placeholder, sql)}")
    connection.execute(_PG_GENERIC_PLAN[0])  # for the rest of this transaction, as in the finish
    arguments = ", ".join(psycopg.sql.Literal(params[name]).as_string(connection) for name in names)
    row = connection.execute(f"EXPLAIN (FORMAT JSON) EXECUTE generic({arguments})").fetchone()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


@pytest.mark.parametrize("statistics", ["older than the table", "analyzed"])
def test_matching_s_history_is_planned_once_per_connection_and_reads_by_key(
    database_url: str,
    uow_factory: Callable[[], UnitOfWork],
    supplier: SupplierView,
    monkeypatch: pytest.MonkeyPatch,
    statistics: str,
) -> None:
    # PostgreSQL planned the history afresh for every invoice (its plan for any values, by its
    # estimate, cost more than one for the values): the statement asks for that plan, which reads
    # the documents by index, and leaves the settings as it found them for the rest of the finish.
    admin, sent, settings = _history_read(
        database_url, uow_factory, supplier, monkeypatch, analyzed=statistics == "analyzed"
    )
    assert settings == ["auto", "on", "on"]
    statements = [sql for sql, _ in sent]
    at = next(i for i, sql in enumerate(statements) if "wanted" in sql)
    assert statements[:at] == [_PG_GENERIC_PLAN[0]]
    assert statements[at + 1 :] == [_PG_PLAN_AS_CONFIGURED[0]]
    with psycopg.connect(admin) as connection:
        plan = _generic_plan(connection, *sent[at])
    indexes = _document_indexes(plan)
    assert indexes
    assert "Seq Scan" not in indexes, indexes


def test_matching_s_history_puts_back_the_planner_settings_it_found(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    # Whatever they were (here changed by the transaction itself), not the server's defaults.
    ids = submit_many(uow_factory, supplier, "SET", 3)
    with uow_factory() as uow:
        connection = uow.session.connection()
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        last = uow.documents.get(ids[-1])
        assert last is not None
        query = EarlierQuery(supplier_id=supplier.id, before=(last.received_at, last.id), numbers=frozenset({"SET-0"}))
        assert [row.number for row in uow.documents.earlier_of_supplier(query)] == ["SET-0"]
        settings = [connection.exec_driver_sql(f"SHOW {name}").scalar() for name in _PLANNER_SETTINGS]
    assert settings == ["force_custom_plan", "on", "off"]


def test_a_read_only_unit_of_work_asks_the_server_nothing_to_end_with_commit(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _record_statements(monkeypatch)
    commands: list[bytes] = []
    command = psycopg.Connection._exec_command

    def recording_command(self: psycopg.Connection[Any], command_: Any, *args: Any, **kwargs: Any) -> Any:
        commands.append(bytes(command_))
        return command(self, command_, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "_exec_command", recording_command)
    with uow_factory() as uow:
        assert uow.suppliers.get(supplier.id) is not None
    monkeypatch.undo()
    assert len(sent) == 1  # the lookup, and no question whether anything was written
    assert commands == [b"BEGIN", b"COMMIT"]


def test_a_unit_of_work_left_without_commit_after_a_write_on_the_driver_rolls_it_back(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    # Statements run on the driver in one round trip (the finish, the claim) note what they did
    # as those SQLAlchemy runs do: a write among them is rolled back when no commit follows.
    with uow_factory() as uow:
        pg_round_trip(
            uow.session,
            [
                ("SELECT id FROM suppliers WHERE id = %(id)s", {"id": supplier.id}),
                ("UPDATE suppliers SET active = false WHERE id = %(id)s", {"id": supplier.id}),
            ],
        )
    with uow_factory() as uow:
        record = uow.suppliers.get(supplier.id)
        assert record is not None
        assert record.active


def test_the_relay_polls_by_a_plain_index_scan_however_many_were_sent_and_keeps_prepared_statements(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sent rows leave dead entries in the index of unsent ones until vacuum; only a plain index
    # scan marks them dead as it passes, a bitmap or sequential scan reads them on every poll.
    submit_many(uow_factory, supplier, "SENT", 150)
    relay = messaging.OutboxRelay(uow_factory, lambda a, d: None, batch_size=50, batch_sender=lambda items: None)
    assert relay.drain() == 150
    commands: list[bytes] = []
    command = psycopg.Connection._exec_command

    def recording_command(self: psycopg.Connection[Any], command_: Any, *args: Any, **kwargs: Any) -> Any:
        commands.append(bytes(command_))
        return command(self, command_, *args, **kwargs)

    sent = _record_statements(monkeypatch)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", recording_command)
    assert relay.relay_once() == 0
    monkeypatch.undo()
    # An empty poll ends with COMMIT: at a ROLLBACK psycopg drops the connection's prepared statements.
    assert commands == [b"BEGIN", b"COMMIT"]
    admin = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin) as connection:
        (take,) = [(query, params) for query, params in sent if "outbox" in query]
        for query, params in sent[: sent.index(take)]:
            connection.execute(query, params)  # what the relay sets for its transaction
        row = connection.execute(f"EXPLAIN (FORMAT JSON) {take[0]}", take[1]).fetchone()
        assert row is not None
    scans = [node for node in _plan_nodes(row[0][0]["Plan"]) if node[1] == "outbox" or "Scan" in node[0]]
    assert scans
    assert {node_type for node_type, _, _ in scans} <= {"Index Scan", "ModifyTable"}, scans
    assert ("Index Scan", "outbox", "ix_outbox_pending") in scans


def test_read_only_units_of_work_keep_the_connections_prepared_statements(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    # psycopg prepares a statement run five times on a connection and forgets them all at a
    # ROLLBACK: a read-only unit of work (a key's lookup before each request) ends with COMMIT.
    def prepared() -> int:
        with uow_factory() as uow:
            return int(uow.session.connection().exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar())

    for _ in range(8):
        with uow_factory() as uow:
            assert uow.suppliers.get(supplier.id) is not None  # left without commit: nothing written
    assert prepared() >= 1


def test_a_unit_of_work_left_without_commit_after_a_write_still_rolls_it_back(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    with uow_factory() as uow:
        uow.suppliers.set_active(supplier.id, False)  # written, never committed
    with uow_factory() as uow:
        record = uow.suppliers.get(supplier.id)
        assert record is not None
        assert record.active


def test_statistics_upkeep_analyzes_the_tables_that_grew_so_that_cached_plans_read_by_key(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    # Statistics taken at 20 documents, then 300 more: a plan cached meanwhile (a prepared
    # statement's generic plan, or a foreign key's check, which the server caches alike per
    # connection) keeps scanning the whole table until the statistics change.
    submit_many(uow_factory, supplier, "EARLY", 20)
    admin = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    engine = make_engine(database_url)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("ANALYZE")
        autovacuum = connection.execute("SELECT current_setting('autovacuum')").fetchone()
        connection.execute("SET plan_cache_mode = force_generic_plan")
        # the text of the server's own check of a foreign key to documents
        connection.execute(
            "PREPARE parent(text) AS SELECT 1 FROM ONLY documents x WHERE id::text = $1::text FOR KEY SHARE OF x"
        )

        def plan() -> str:
            return "\n".join(str(row[0]) for row in connection.execute("EXPLAIN EXECUTE parent('x')"))

        def counted() -> float:
            row = connection.execute("SELECT reltuples FROM pg_class WHERE relname = 'documents'").fetchone()
            assert row is not None
            return float(row[0])

        assert "Seq Scan on documents" in plan()
        submit_many(uow_factory, supplier, "LATER", 300)
        # The statistics still count 20 documents, and a quiet server keeps the plan made from them.
        # (Not asserted: a server busy with other databases' DDL may drop its cached plans meanwhile,
        # as it did under the parallel suite, and plan again from the table's present size.)
        assert counted() == 20
        if autovacuum == ("on",):  # the server's autovacuum analyzes; the upkeep leaves it alone
            assert analyze_stale(engine, Base.metadata.tables) == []
            return
        # another process of the engine at it: this one skips
        with psycopg.connect(admin, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (statistics._LOCK,))
            assert analyze_stale(engine, Base.metadata.tables) == []
        analyzed = analyze_stale(engine, Base.metadata.tables)
        assert {"documents", "transitions", "outbox", "document_contents"} <= set(analyzed)
        assert "suppliers" not in analyzed  # one row since the ANALYZE
        assert "Index Scan using pk_documents on documents" in plan()
        assert counted() == 320
        assert analyze_stale(engine, Base.metadata.tables) == []  # nothing changed since
        connection.execute("UPDATE documents SET size = size")  # 320 rows changed
        connection.execute("SELECT pg_stat_force_next_flush()")
        connection.execute("SELECT 1")  # the change counted in the server's statistics
        # however many processes look, a table is analyzed once per interval at most
        assert analyze_stale(engine, Base.metadata.tables, every=3600) == []
        assert analyze_stale(engine, Base.metadata.tables, every=0) == ["documents"]
    engine.dispose()


def test_the_received_xml_and_the_parsed_form_are_stored_compressed_by_lz4(database_url: str) -> None:
    admin = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin) as connection:
        offered = connection.execute(
            "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
        ).fetchone()
        assert offered is not None
        settings = dict(
            connection.execute(
                "SELECT attrelid::regclass::text || '.' || attname, attcompression FROM pg_attribute"
                " WHERE (attrelid, attname) IN"
                " (('document_contents'::regclass, 'raw'), ('parsed_documents'::regclass, 'data'))"
            ).fetchall()
        )
        expected = "l" if "lz4" in offered[0] else ""
        assert settings == {"document_contents.raw": expected, "parsed_documents.data": expected}


def test_a_key_s_lookup_alone_in_its_unit_of_work_is_one_round_trip_with_what_the_orm_reads(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
) -> None:
    (document_id,) = submit_many(uow_factory, supplier, "KEY", 1)
    with uow_factory() as uow:
        row = uow.session.get(SupplierRow, supplier.id)  # type: ignore[attr-defined]
        assert row is not None
        key_hash, by_orm = row.api_key_hash, record_of(SupplierRecord, row)
        document_by_orm = record_of(DocumentRecord, uow.session.get(DocumentRow, document_id))  # type: ignore[attr-defined]
    sent = record_round_trips(monkeypatch)
    with uow_factory() as uow:
        assert uow.suppliers.by_key_hash(key_hash) == by_orm
    # the statement committed as it ran: no BEGIN, no COMMIT
    assert sent == [("SELECT", True)]
    with uow_factory() as uow:
        assert uow.documents.get(document_id) == document_by_orm
        # in a transaction under way, the lookup joins it and sees what it wrote
        uow.suppliers.set_active(supplier.id, False)
        found = uow.suppliers.by_key_hash(key_hash)
        assert found is not None
        assert not found.active
    with uow_factory() as uow:  # not committed: rolled back
        found = uow.suppliers.by_key_hash(key_hash)
        assert found is not None
        assert found.active


def test_an_acknowledgement_s_confirmation_goes_with_its_transaction_s_begin_in_one_round_trip(
    uow_factory: Callable[[], UnitOfWork], monkeypatch: pytest.MonkeyPatch
) -> None:
    with uow_factory() as uow:  # the pool's connection opened
        uow.posting.confirm_unconfirmed(["je_none"], at=datetime.now(UTC), by="erp")
    sent = record_round_trips(monkeypatch)
    with uow_factory() as uow:
        assert uow.posting.confirm_unconfirmed(["je_none"], at=datetime.now(UTC), by="erp") == {}
        assert (
            uow.posting.confirm_unconfirmed(["je_none", "je_x"], at=datetime.now(UTC), by="erp", institution_ids=["i"])
            == {}
        )
    # the second in the transaction the first began; changing nothing, it ends with COMMIT
    assert sent == [("UPDATE", True), ("b'BEGIN'", True), ("UPDATE", True), ("b'COMMIT'", False)]


def test_statistics_upkeep_leaves_alone_the_tables_its_role_does_not_own(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    submit_many(uow_factory, supplier, "OWNED", 60)
    admin = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    role = f"einvoice_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN")
        try:
            connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
            connection.execute("UPDATE documents SET size = size")  # 60 rows changed, counted at once:
            connection.execute("SELECT pg_stat_force_next_flush()")
            connection.execute("SELECT 1")
            reader = make_engine(make_url(database_url).set(username=role).render_as_string(hide_password=False))
            try:
                # the server would only warn, and the tables stay stale: every look would try again
                assert analyze_stale(reader, Base.metadata.tables) == []
            finally:
                reader.dispose()
            engine = make_engine(database_url)
            try:
                assert "documents" in analyze_stale(engine, Base.metadata.tables)  # the owner's
            finally:
                engine.dispose()
        finally:
            connection.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            connection.execute(f"DROP ROLE {role}")


def test_a_read_ahead_goes_with_the_next_round_trip_and_its_rows_are_given_once_in_its_transaction(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = datetime.now(UTC)
    with uow_factory() as uow:
        uow.users.set_approval_rule(
            ApprovalRuleRow(institution_id=institution.id, person_above=Decimal("500"), updated_at=at)
        )
        uow.commit()
    sent = record_round_trips(monkeypatch)
    with uow_factory() as uow:
        uow.users.read_approval_rule_ahead(institution.id)
        assert sent == []  # queued, not sent
        pg_round_trip(uow.session, [("SELECT 1", {})])  # the next round trip carries it, first
        assert sent == [("SELECT", True), ("b'BEGIN'", True), ("SELECT", True)]
        rule = uow.users.approval_rule(institution.id)
        assert rule is not None
        assert rule.person_above == Decimal("500")
        assert len(sent) == 3  # given from what was read ahead: no round trip of its own
        assert uow.users.approval_rule(institution.id) == rule  # given once: then read as usual
        assert len(sent) == 4
        # queued but asked for before any round trip: read as usual, and not sent afterwards
        uow.users.read_approval_rule_ahead(institution.id)
        assert uow.users.approval_rule(institution.id) == rule
        pg_round_trip(uow.session, [("SELECT 1", {})])
        assert sent[5:] == [("SELECT", True)]
        # read ahead in one transaction, not asked for there: not given to the next
        uow.users.read_approval_rule_ahead(institution.id)
        pg_round_trip(uow.session, [("SELECT 1", {})])
        uow.commit()
        before = len(sent)
        assert uow.users.approval_rule(institution.id) == rule
        assert len(sent) == before + 1
